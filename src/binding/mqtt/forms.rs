//! The form each AE uses for its own ID on its request topics, remembered so that what the
//! CSE sends it (NOTIFY, verification) goes to the topic it subscribes to.
//!
//! TS-0010 §6.4 puts an entity's ID on the topic in the form that entity uses on MQTT. An AE
//! may name itself by its AE-ID (`CTestGUI`) or SP-relative with `:` for `/`
//! (`in-cse-1:CTestGUI`, as OpenMTC's applications do, subscribing to
//! `/oneM2M/req/+/in-cse-1:CTestGUI/#` only). The CSE sends to the AE-ID form unless the AE
//! was last seen using the other.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// AEs whose form is remembered at most; past it, new ones get the AE-ID form (a client
/// cannot make the CSE hold an unbounded map).
const MAX_FORMS: usize = 65_536;

#[derive(Default)]
pub struct TopicForms {
    /// Whether any form is remembered: until one is, nothing is locked.
    any: AtomicBool,
    /// AE-ID → the topic level it uses (`CTestGUI` → `in-cse-1:CTestGUI`).
    forms: RwLock<HashMap<String, String>>,
}

impl TopicForms {
    /// An originator level seen on a request topic of this CSE (`cse_id`, without slash).
    pub fn saw(&self, cse_id: &str, level: &str) {
        match level.split_once(':') {
            // An AE-ID is at most 255 bytes (longer ones are refused at registration).
            Some((csi, aei))
                if csi == cse_id && !aei.is_empty() && aei.len() <= 255 && !aei.contains(':') =>
            {
                let known = self.read().get(aei).is_some_and(|l| l.as_str() == level);
                if known {
                    return;
                }
                let mut forms = self.forms.write().unwrap_or_else(|p| p.into_inner());
                if forms.len() < MAX_FORMS || forms.contains_key(aei) {
                    forms.insert(aei.to_string(), level.to_string());
                    self.any.store(true, Ordering::Release);
                }
            }
            // Another CSE's entity, or a CSE: not ours to remember.
            Some(_) => {}
            // The AE-ID form: forget another form this AE used before.
            None => {
                if self.any.load(Ordering::Acquire) && self.read().contains_key(level) {
                    self.forms
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(level);
                }
            }
        }
    }

    /// The topic level to send to for `receiver` (an ID in topic form).
    pub fn level<'a>(&self, receiver: &'a str) -> Cow<'a, str> {
        if !self.any.load(Ordering::Acquire) {
            return Cow::Borrowed(receiver);
        }
        match self.read().get(receiver) {
            Some(level) => Cow::Owned(level.clone()),
            None => Cow::Borrowed(receiver),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, String>> {
        self.forms.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_form_an_ae_used_wins() {
        let f = TopicForms::default();
        assert_eq!(f.level("CTestGUI"), "CTestGUI");
        f.saw("in-cse-1", "in-cse-1:CTestGUI");
        assert_eq!(f.level("CTestGUI"), "in-cse-1:CTestGUI");
        assert_eq!(f.level("Cother"), "Cother");
        // Back to the AE-ID form.
        f.saw("in-cse-1", "CTestGUI");
        assert_eq!(f.level("CTestGUI"), "CTestGUI");
        // Another CSE's entity, or a CSE, is not remembered.
        f.saw("in-cse-1", "mn-cse-1:CTestIPE");
        assert_eq!(f.level("CTestIPE"), "CTestIPE");
        f.saw("in-cse-1", "mn-cse-1");
        assert_eq!(f.level("mn-cse-1"), "mn-cse-1");
    }

    #[test]
    fn the_map_is_bounded_and_ids_too_long_are_not_kept() {
        let f = TopicForms::default();
        for i in 0..MAX_FORMS {
            f.saw("id-in", &format!("id-in:C{i}"));
        }
        f.saw("id-in", "id-in:Cone-too-many");
        assert_eq!(f.level("Cone-too-many"), "Cone-too-many");
        // One already known still changes form.
        f.saw("id-in", "C0");
        assert_eq!(f.level("C0"), "C0");
        f.saw("id-in", "id-in:C0");
        assert_eq!(f.level("C0"), "id-in:C0");
        let long = format!("id-in:C{}", "x".repeat(300));
        f.saw("id-in", &long);
        assert_eq!(f.level(&long[6..]), &long[6..]);
    }
}
