//! Who may act as which originator (TS-0010 §8): the bindings of identities to originators,
//! kept in memory, so that the bindings can decide every request and every PUBLISH without a
//! database read.
//!
//! A credential (a user of the password file, or a client certificate's CN) may act as:
//! * the originator of its own name (`Cdevice`, or `/id-mn`);
//! * every AE-ID it registered, and every CSE-ID of a remote CSE it registered, with the
//!   entities behind that CSE (`/id-mn/Cae`); these are stored with the registration (the
//!   `binding` table), so they survive a restart;
//! * the admin originator only if it is the credential of that name.
//!
//! An anonymous client on this machine may act as anyone; an anonymous client from the
//! network (`anonymous = "everyone"`) as anyone but the admin. Nobody acts as the CSE itself.

use crate::auth::Identity;
use crate::onem2m::address::local_originator;
use crate::onem2m::topic::id_from_topic;
use crate::onem2m::CseIdentity;
use crate::store::Reader;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// Names reserved for the credential of that name (the password file's users).
pub type Reserved = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub struct Bindings {
    me: CseIdentity,
    admin: String,
    /// Registered originator (AE-ID, or CSE-ID with its slash) → the credential that
    /// registered it.
    registered: RwLock<HashMap<String, String>>,
    reserved: OnceLock<Reserved>,
    /// Credentials proved with a client certificate so far (password file users are
    /// [reserved](Self::set_reserved)).
    certified: RwLock<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Bindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bindings")
            .field("registered", &self.registered.read().map(|m| m.len()).ok())
            .finish()
    }
}

impl Bindings {
    /// No registrations yet.
    pub fn new(me: &CseIdentity, admin: &str) -> Bindings {
        Bindings {
            me: me.clone(),
            admin: admin.to_string(),
            registered: RwLock::new(HashMap::new()),
            reserved: OnceLock::new(),
            certified: RwLock::new(Default::default()),
        }
    }

    /// A client authenticated as `identity`, presenting a certificate with subject CN `cn` if
    /// any. An identity that is that CN was proved by the certificate: from now on it is a
    /// known credential.
    pub fn authenticated(&self, cn: Option<&str>, identity: &Identity) {
        if let (Some(cn), Some(c)) = (cn, identity.credential()) {
            if cn == c {
                self.certified(c);
            }
        }
    }

    fn certified(&self, credential: &str) {
        let known = self
            .certified
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(credential);
        if !known {
            self.certified
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(credential.to_string());
        }
    }

    /// Whether `name` is a credential this CSE knows: a password file user, or a
    /// certificate CN that has connected.
    pub fn is_credential(&self, name: &str) -> bool {
        self.reserved.get().is_some_and(|r| r(name))
            || self
                .certified
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(name)
    }

    /// The bindings stored in the database.
    pub fn load(
        r: &Reader,
        me: &CseIdentity,
        admin: &str,
    ) -> Result<Bindings, crate::store::StoreError> {
        let b = Bindings::new(me, admin);
        *b.registered.write().unwrap_or_else(|p| p.into_inner()) =
            r.bindings()?.into_iter().collect();
        Ok(b)
    }

    /// Says which names are reserved for a credential of that name; the first call wins.
    pub fn set_reserved(&self, reserved: Reserved) {
        let _ = self.reserved.set(reserved);
    }

    /// An originator in the form bindings are kept in: CSE-relative for this CSE's entities
    /// (`Cae`), SP-relative for others (`/id-mn`, `/id-mn/Cae`). Topic levels (`id-mn:Cae`)
    /// and absolute IDs of our service provider are read too.
    pub fn normalize(&self, originator: &str) -> String {
        let id = if originator.contains(':') && !originator.contains('/') {
            id_from_topic(originator)
        } else {
            originator.to_string()
        };
        local_originator(&id, &self.me)
    }

    /// Whether `originator` names this CSE (its CSE-ID, in any form).
    pub fn is_cse(&self, originator: &str) -> bool {
        self.names_me(&self.normalize(originator))
    }

    /// Whether a [normalized](Self::normalize) originator is this CSE.
    fn names_me(&self, normalized: &str) -> bool {
        normalized == self.me.csi || normalized == self.me.id()
    }

    /// May `identity` act as `originator` (in any form)?
    pub fn may_act_as(&self, identity: &Identity, originator: &str) -> bool {
        let o = self.normalize(originator);
        // Nobody acts as this CSE.
        if o.is_empty() || self.names_me(&o) {
            return false;
        }
        match identity {
            Identity::Local => true,
            Identity::Anonymous => o != self.admin,
            Identity::Credential(c) => self.credential_may(c, &o),
        }
    }

    fn credential_may(&self, credential: &str, o: &str) -> bool {
        if o == self.normalize(credential) {
            return true;
        }
        if o == self.admin {
            return false;
        }
        let registered = self.registered.read().unwrap_or_else(|p| p.into_inner());
        let by = |key: &str| registered.get(key).is_some_and(|c| c == credential);
        // A CSE writes its CSE-ID into topics without the slash: level id-mn is /id-mn.
        if by(o) || (!o.starts_with('/') && by(&format!("/{o}"))) {
            return true;
        }
        // An entity behind a remote CSE the credential registered: /id-mn/Cae.
        let behind_cse = o
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .map(|(csi, _)| format!("/{csi}"));
        behind_cse.is_some_and(|csi| by(&csi))
    }

    /// The credential whose budget a request of `originator` (in any form) counts against:
    /// the credential itself, or the one that registered the originator (or the remote CSE
    /// it is behind). `None` for an originator no credential holds.
    pub fn credential_of(&self, originator: &str) -> Option<String> {
        let o = self.normalize(originator);
        if self.is_credential(&o) {
            return Some(o);
        }
        let registered = self.registered.read().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = registered.get(&o) {
            return Some(c.clone());
        }
        if !o.starts_with('/') {
            return registered.get(&format!("/{o}")).cloned();
        }
        let csi = o
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .map(|(csi, _)| format!("/{csi}"))?;
        registered.get(&csi).cloned()
    }

    /// May `identity` register the AE-ID it asks for (`None`: one the CSE assigns)? No AE
    /// takes the admin's name. A credential registers as itself, or has the CSE assign an
    /// AE-ID: so no credential takes another's name, not even one that is created later (a
    /// certificate's CN cannot be known in advance). Anonymous clients may ask for any name
    /// but a password file user's.
    pub fn may_register(&self, identity: &Identity, aei: Option<&str>) -> Result<(), String> {
        let Some(aei) = aei else { return Ok(()) };
        if aei == self.admin {
            return Err(format!("{aei} is the admin originator, not an AE-ID"));
        }
        match identity {
            Identity::Local => Ok(()),
            Identity::Credential(c) if aei == c => Ok(()),
            Identity::Credential(c) => Err(format!(
                "credential '{c}' registers as '{c}', or asks for an AE-ID to be assigned \
                 (fr empty or C), not as '{aei}'"
            )),
            Identity::Anonymous => {
                if self.reserved.get().is_some_and(|r| r(aei)) {
                    Err(format!(
                        "the AE-ID {aei} is reserved for the credential of that name"
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// May `identity` register a remote CSE with CSE-ID `csi` (`/id-mn`)? A CSE registers
    /// with the credential of its own CSE-ID (`id-mn`): no credential takes a CSE-ID, and
    /// with it the entities behind that CSE, that is not its own.
    pub fn may_register_cse(&self, identity: &Identity, csi: &str) -> Result<(), String> {
        match identity {
            Identity::Local | Identity::Anonymous => Ok(()),
            Identity::Credential(c) if c.trim_start_matches('/') == csi.trim_start_matches('/') => {
                Ok(())
            }
            Identity::Credential(c) => Err(format!(
                "a CSE registers with the credential of its CSE-ID; '{c}' is not {csi}"
            )),
        }
    }

    /// After a registration is committed.
    pub fn bound(&self, originator: &str, credential: &str) {
        self.registered
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(originator.to_string(), credential.to_string());
    }

    /// After a deregistration is committed.
    pub fn unbound(&self, originator: &str) {
        self.registered
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(originator);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings() -> Bindings {
        let me = CseIdentity {
            csi: "/id-in".into(),
            rn: "cse-in".into(),
            sp_id: "sp.example".into(),
        };
        let b = Bindings::new(&me, "CAdmin");
        b.set_reserved(Arc::new(|n| n == "Cbob"));
        b
    }

    fn cred(c: &str) -> Identity {
        Identity::Credential(c.into())
    }

    #[test]
    fn a_credential_acts_as_itself_and_what_it_registered() {
        let b = bindings();
        let alice = cred("alice");
        assert!(b.may_act_as(&alice, "alice"));
        assert!(!b.may_act_as(&alice, "Cae1"));
        b.bound("Cae1", "alice");
        for form in [
            "Cae1",
            "/id-in/Cae1",
            "id-in:Cae1",
            "//sp.example/id-in/Cae1",
        ] {
            assert!(b.may_act_as(&alice, form), "{form}");
        }
        assert!(!b.may_act_as(&cred("mallory"), "Cae1"));
        b.unbound("Cae1");
        assert!(!b.may_act_as(&alice, "Cae1"));
    }

    #[test]
    fn a_remote_cse_vouches_for_its_entities() {
        let b = bindings();
        b.bound("/id-mn", "gw1");
        let gw = cred("gw1");
        assert!(b.may_act_as(&gw, "/id-mn"));
        assert!(b.may_act_as(&gw, "id-mn"), "its CSE-ID as a topic level");
        assert!(b.may_act_as(&gw, "id-mn:Cae"));
        assert!(b.may_act_as(&gw, "/id-mn/Cae"));
        assert!(!b.may_act_as(&gw, "/id-mnx/Cae"));
        assert!(!b.may_act_as(&cred("other"), "id-mn:Cae"));
    }

    #[test]
    fn the_admin_and_the_cse_itself() {
        let b = bindings();
        assert!(b.may_act_as(&cred("CAdmin"), "CAdmin"));
        assert!(!b.may_act_as(&cred("alice"), "CAdmin"));
        assert!(b.may_act_as(&Identity::Local, "CAdmin"));
        assert!(!b.may_act_as(&Identity::Anonymous, "CAdmin"));
        assert!(b.may_act_as(&Identity::Anonymous, "Canyone"));
        for who in [Identity::Local, cred("id-in"), cred("/id-in")] {
            assert!(!b.may_act_as(&who, "id-in"));
            assert!(!b.may_act_as(&who, "/id-in"));
        }
        assert!(b.is_cse("id-in") && b.is_cse("/id-in") && !b.is_cse("Cae"));
    }

    #[test]
    fn registration_names() {
        let b = bindings();
        assert!(b.may_register(&Identity::Local, Some("CAdmin")).is_err());
        assert!(b.may_register(&cred("alice"), None).is_ok());
        assert!(
            b.may_register(&cred("alice"), Some("Cnew")).is_err(),
            "not its name"
        );
        assert!(b.may_register(&cred("Cbob"), Some("Cbob")).is_ok());
        assert!(b.may_register(&cred("alice"), Some("Cbob")).is_err());
        assert!(b.may_register(&Identity::Local, Some("Cbob")).is_ok());
        assert!(
            b.may_register(&Identity::Anonymous, Some("Cbob")).is_err(),
            "Cbob is a user"
        );
        assert!(b.may_register(&Identity::Anonymous, Some("Cnew")).is_ok());
        assert!(b.may_register_cse(&cred("id-mn"), "/id-mn").is_ok());
        assert!(b.may_register_cse(&cred("/id-mn"), "/id-mn").is_ok());
        assert!(b.may_register_cse(&cred("Cb"), "/alice").is_err());
        assert!(b.may_register_cse(&Identity::Local, "/id-mn").is_ok());
    }
}
