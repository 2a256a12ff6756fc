//! `<AE>` (ty 2): registration and the AE-ID rules of TS-0001 §10.2.2.2.

use super::super::Rules;
use crate::onem2m::{Error, Rsc};
use crate::store::Writer;
use rand::Rng;
use serde_json::{json, Map, Value};

/// Decides the AE-ID of a registering AE from its originator:
/// empty or `C` → a CSE-assigned `C…` ID; `S` → an `S…` ID; `C…`/`S…` → kept as asked.
/// An AE-ID that is already registered is refused with 4117
/// ORIGINATOR_HAS_ALREADY_REGISTERED (TS-0004 §7.4.5.2.1, as ACME answers); a name taken
/// under the CSEBase stays 4105 CONFLICT.
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
        return Err(Error::new(
            Rsc::ORIGINATOR_HAS_ALREADY_REGISTERED,
            format!("originator {aei} is already registered"),
        ));
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
///
/// App-IDs are registered (`R…`) or not (`N…`) since Release 3; lower-case `r` was common
/// before Release 4. A request of an earlier release (`rvi` 1, 2 or 2a, or none, which is
/// Release 1) may use any App-ID: OpenMTC sends `rvi` 2a and `api: "dummy"`, Mobius
/// devices no `rvi` and names such as `measure_co2`.
pub fn init(attrs: &mut Map<String, Value>, aei: &str, rvi: Option<&str>) -> Result<(), Error> {
    let api = attrs.get("api").and_then(Value::as_str).unwrap_or_default();
    let before_release_3 = matches!(rvi, None | Some("1" | "2" | "2a"));
    if api.is_empty() {
        return Err(Error::bad_request("api (the App-ID) must not be empty"));
    }
    if before_release_3 {
        attrs.insert("aei".into(), json!(aei));
        return Ok(());
    }
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
