//! `<contentInstance>` (ty 4): content size, state tag, and the container's limits.

use crate::onem2m::{time, Error, Rsc};
use crate::store::Resource;
use serde_json::{json, Map, Value};

/// Fills in `cs` and `st` of a new instance under `cnt`, and refuses content larger than the
/// container's `mbs` (5207 NOT_ACCEPTABLE, as ACME does). With `mia` set, the instance's
/// expiration time is brought forward to `ct + mia`, so that expiry removes it on time.
pub fn init(cnt: &Resource, attrs: &mut Map<String, Value>, now: &str) -> Result<(), Error> {
    let cs = match attrs.get("con") {
        Some(Value::String(s)) => s.len(),
        Some(other) => other.to_string().len(),
        None => 0,
    } as u64;
    if let Some(mbs) = cnt.int("mbs") {
        if cs > mbs {
            return Err(Error::new(
                Rsc::NOT_ACCEPTABLE,
                format!("content of {cs} bytes exceeds the container's maximum byte size (mbs) of {mbs}"),
            ));
        }
    }
    attrs.insert("cs".into(), json!(cs));
    attrs.insert("st".into(), json!(cnt.int("st").unwrap_or(0) + 1));
    if let Some(mia) = cnt.int("mia") {
        // `mia` is at most time::MAX_SECONDS, so from any valid `now` this stays in range;
        // if it did not, the instance would simply keep its own `et`.
        if let Some(limit) = time::parse(now).and_then(|t| time::after(t, mia)) {
            let keep = attrs
                .get("et")
                .and_then(Value::as_str)
                .and_then(time::parse)
                .is_some_and(|et| et <= limit);
            if !keep {
                attrs.insert("et".into(), json!(time::format(limit)));
            }
        }
    }
    Ok(())
}
