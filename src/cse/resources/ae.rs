//! `<AE>` (ty 2): registration and the AE-ID rules of TS-0001 §10.2.2.2.

use super::super::Rules;
use crate::onem2m::Error;
use crate::store::Writer;
use rand::Rng;
use serde_json::{json, Map, Value};

/// Decides the AE-ID of a registering AE from its originator:
/// empty or `C` → a CSE-assigned `C…` ID; `S` → an `S…` ID; `C…`/`S…` → kept as asked.
/// An AE-ID that is already registered is refused with 4105 CONFLICT (Release 2/3
/// behaviour, which the foundation issue asks for; Release 4 ACME uses 4117).
pub fn register(
    w: &Writer,
    _rules: &Rules,
    originator: &str,
    _requested: Option<&str>,
) -> Result<String, Error> {
    let aei = match originator {
        "" | "C" => assign('C'),
        "S" => assign('S'),
        id if (id.starts_with('C') || id.starts_with('S')) && valid_id(id) => id.to_string(),
        other => {
            return Err(Error::bad_request(format!(
                "cannot register originator '{other}': an AE-ID starts with 'C' or 'S' and has no \
                 '/', ':', '#', '+' or spaces; send 'C' or leave fr empty to get one assigned"
            )))
        }
    };
    if w.get(&aei)?.is_some() {
        return Err(Error::conflict(format!(
            "originator {aei} is already registered"
        )));
    }
    Ok(aei)
}

fn assign(prefix: char) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    std::iter::once(prefix)
        .chain((0..12).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char))
        .collect()
}

/// AE-IDs end up in MQTT topic levels and paths.
fn valid_id(id: &str) -> bool {
    id.len() <= 255
        && !id.chars().any(|c| {
            matches!(c, '/' | ':' | '#' | '+' | '?') || c.is_whitespace() || c.is_control()
        })
}

/// Fills in what the CSE sets on a new AE and checks `api`.
pub fn init(attrs: &mut Map<String, Value>, aei: &str, _rules: &Rules) -> Result<(), Error> {
    let api = attrs.get("api").and_then(Value::as_str).unwrap_or_default();
    // App-IDs are registered (`R…`) or not (`N…`); lower-case `r` was common before Rel-4.
    if !(api.starts_with('N') || api.starts_with('R') || api.starts_with('r')) || api.len() < 2 {
        return Err(Error::bad_request(format!(
            "api '{api}' must start with 'N' (non-registered App-ID) or 'R' (registered)"
        )));
    }
    attrs.insert("aei".into(), json!(aei));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigned_ids_keep_the_prefix() {
        let c = assign('C');
        assert!(c.starts_with('C') && c.len() == 13 && valid_id(&c));
        assert!(assign('S').starts_with('S'));
        assert_ne!(assign('C'), assign('C'));
    }

    #[test]
    fn ids_that_break_topics_are_invalid() {
        assert!(valid_id("Cabc-1_x.y"));
        for bad in ["C/a", "C:a", "C#", "C+", "C a"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
