//! `<subscription>` (ty 23): what it reports and how (digest §7). Verification of new
//! notification targets happens before the write, in [`crate::cse`].

use crate::onem2m::{Error, Rsc};
use crate::store::Resource;
use serde_json::{Map, Value};

/// The event types a subscription reports (`enc.net`; 1, update, when it names none).
pub fn event_types(attrs: &Map<String, Value>) -> Vec<u64> {
    attrs
        .get("enc")
        .and_then(|e| e.get("net"))
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_else(|| vec![1])
}

/// The child types a subscription limits its child events to (`enc.chty`), if it does.
pub fn child_types(attrs: &Map<String, Value>) -> Option<Vec<u64>> {
    attrs
        .get("enc")
        .and_then(|e| e.get("chty"))
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_u64).collect())
}

/// Who subscribed: the `cr` the CSE records on every subscription, or for one stored before
/// it did, the subscription's owner. Empty for the CSE's own.
pub fn subscriber(sub: &Resource) -> &str {
    sub.str("cr").unwrap_or(&sub.owner)
}

/// Attributes of the subscription that this CSE accepts in a request but does not act on yet;
/// refused with 5001 rather than silently ignored.
const NOT_YET: &[&str] = &["bn", "pn", "nsp", "rl", "nfu", "gpi"];

/// Notification targets one subscription may list (`nu`): each is verified, and each gets
/// every notification.
pub const MAX_TARGETS: usize = 16;

/// Refuses (4000) a `nu` of more than [`MAX_TARGETS`], before any of them is verified.
pub fn check_target_count(nu: &[String]) -> Result<(), Error> {
    if nu.len() > MAX_TARGETS {
        return Err(Error::bad_request(format!(
            "nu lists more than {MAX_TARGETS} notification targets"
        )));
    }
    Ok(())
}

/// Checks a subscription's attributes (on CREATE, or merged with the stored ones on UPDATE).
pub fn init(attrs: &Map<String, Value>) -> Result<(), Error> {
    let not_yet = |what: String| Err(Error::new(Rsc::NOT_IMPLEMENTED, what));
    if let Some(name) = NOT_YET
        .iter()
        .find(|n| attrs.get(**n).is_some_and(|v| !v.is_null()))
    {
        return not_yet(format!(
            "subscription attribute '{name}' is not supported yet"
        ));
    }
    if attrs.get("ln").and_then(Value::as_bool) == Some(true) {
        return not_yet("latestNotify (ln) is not supported yet".into());
    }
    let nu = attrs.get("nu").and_then(Value::as_array);
    if nu.is_none_or(|l| l.is_empty() || l.iter().any(|n| n.as_str().is_none_or(str::is_empty))) {
        return Err(Error::bad_request(
            "nu must list at least one notification target",
        ));
    }
    if nu.is_some_and(|l| l.len() > MAX_TARGETS) {
        return Err(Error::bad_request(format!(
            "nu lists more than {MAX_TARGETS} notification targets"
        )));
    }
    let nct = attrs.get("nct").and_then(Value::as_u64);
    match nct {
        None | Some(1..=3) => {}
        Some(n) => {
            return not_yet(format!(
                "notificationContentType (nct) {n} is not supported; use 1, 2 or 3"
            ))
        }
    }
    // TS-0001 Table 9.6.8-4: "modified attributes" is for updates only.
    if nct == Some(2) && event_types(attrs).iter().any(|n| *n != 1) {
        return Err(Error::bad_request(
            "nct 2 (modified attributes) goes with net 1 (update) only (TS-0001 Table 9.6.8-4)",
        ));
    }
    if attrs.get("exc").and_then(Value::as_u64) == Some(0) {
        return Err(Error::bad_request("exc must be at least 1"));
    }
    if let Some(enc) = attrs.get("enc") {
        let enc = enc
            .as_object()
            .ok_or_else(|| Error::bad_request("enc must be an object such as {\"net\": [3]}"))?;
        for (k, v) in enc {
            let list = v.as_array().filter(|l| l.iter().all(Value::is_u64));
            match k.as_str() {
                "net" => {
                    let list = list.ok_or_else(|| {
                        Error::bad_request("enc.net must be a list of event types")
                    })?;
                    if let Some(n) = list
                        .iter()
                        .filter_map(Value::as_u64)
                        .find(|n| !(1..=4).contains(n))
                    {
                        return not_yet(format!("enc.net {n} is not supported; use 1 to 4"));
                    }
                }
                "chty" => {
                    list.ok_or_else(|| {
                        Error::bad_request("enc.chty must be a list of resource types")
                    })?;
                }
                other => return not_yet(format!("enc.{other} is not supported yet")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> Result<(), Error> {
        init(v.as_object().unwrap())
    }

    #[test]
    fn modified_attributes_are_for_updates_only() {
        check(json!({"nu":["Cae"],"nct":2})).unwrap();
        check(json!({"nu":["Cae"],"nct":2,"enc":{"net":[1]}})).unwrap();
        let e = check(json!({"nu":["Cae"],"nct":2,"enc":{"net":[1,3]}})).unwrap_err();
        assert_eq!(e.rsc, Rsc::BAD_REQUEST, "{}", e.dbg);
        check(json!({"nu":["Cae"],"nct":3,"enc":{"net":[3,4]}})).unwrap();
    }

    #[test]
    fn accepts_what_it_implements() {
        check(json!({"nu":["Cae"]})).unwrap();
        check(json!({"nu":["http://x"],"enc":{"net":[1,2,3,4],"chty":[4]},"nct":3,"exc":3,"su":"Cae","ln":false})).unwrap();
    }

    #[test]
    fn refuses_the_rest_with_the_right_code() {
        for (v, rsc) in [
            (json!({}), Rsc::BAD_REQUEST),
            (json!({"nu":[]}), Rsc::BAD_REQUEST),
            (json!({"nu":[""]}), Rsc::BAD_REQUEST),
            (json!({"nu":["a"],"exc":0}), Rsc::BAD_REQUEST),
            (json!({"nu":["a"],"enc":[3]}), Rsc::BAD_REQUEST),
            (json!({"nu":["a"],"enc":{"net":"3"}}), Rsc::BAD_REQUEST),
            (json!({"nu":["a"],"enc":{"net":[7]}}), Rsc::NOT_IMPLEMENTED),
            (
                json!({"nu":["a"],"enc":{"atr":["x"]}}),
                Rsc::NOT_IMPLEMENTED,
            ),
            (json!({"nu":["a"],"nct":4}), Rsc::NOT_IMPLEMENTED),
            (json!({"nu":["a"],"bn":{"num":2}}), Rsc::NOT_IMPLEMENTED),
            (json!({"nu":["a"],"ln":true}), Rsc::NOT_IMPLEMENTED),
        ] {
            assert_eq!(check(v.clone()).unwrap_err().rsc, rsc, "{v}");
        }
    }
}
