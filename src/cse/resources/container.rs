//! `<container>` (ty 3): the counters `cni`, `cbs`, `st`, and the limits `mni`, `mbs`, `mia`
//! that evict the oldest content instances.

use super::super::notify::{self, Notice};
use super::super::Rules;
use crate::onem2m::{time, Error, ResourceType};
use crate::store::{Resource, Writer};
use serde_json::{json, Map, Value};

pub fn init(attrs: &mut Map<String, Value>) {
    attrs.insert("cni".into(), json!(0));
    attrs.insert("cbs".into(), json!(0));
    attrs.insert("st".into(), json!(0));
}

/// After a content instance was stored under `cnt` (as read before the insert).
pub fn instance_added(
    w: &Writer,
    rules: &Rules,
    mut cnt: Resource,
    cin: &Resource,
    now: &str,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    let cs = cin.int("cs").unwrap_or(0);
    add(&mut cnt, "cni", 1);
    add(&mut cnt, "cbs", cs as i64);
    cnt.attrs
        .insert("st".into(), json!(cin.int("st").unwrap_or(0)));
    cnt.attrs.insert("lt".into(), json!(now));
    enforce_limits(w, rules, &mut cnt, now, out)?;
    w.update(&cnt)?;
    Ok(())
}

/// After an UPDATE of the container's attributes: the state tag moves and lowered limits
/// take effect at once.
pub fn updated(
    w: &Writer,
    rules: &Rules,
    cnt: &mut Resource,
    now: &str,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    add(cnt, "st", 1);
    enforce_limits(w, rules, cnt, now, out)
}

/// Before a content instance is deleted on its own (DELETE, `la`/`ol`, expiry).
pub fn instance_removed(w: &Writer, cin: &Resource) -> Result<(), Error> {
    let Some(mut cnt) = w.get(&cin.pi)? else {
        return Ok(());
    };
    uncount(&mut cnt, cin);
    w.update(&cnt)?;
    Ok(())
}

/// Takes an instance out of the container's `cni` and `cbs`.
fn uncount(cnt: &mut Resource, cin: &Resource) {
    add(cnt, "cni", -1);
    add(cnt, "cbs", -(cin.int("cs").unwrap_or(0) as i64));
}

fn add(r: &mut Resource, name: &str, delta: i64) {
    let v = (r.int(name).unwrap_or(0) as i64 + delta).max(0);
    r.attrs.insert(name.into(), json!(v));
}

/// Deletes the oldest instances while the container is over `mni` or `mbs`, or while the
/// oldest is older than `mia` seconds. Updates `cni`/`cbs` in `cnt`; the caller stores it.
fn enforce_limits(
    w: &Writer,
    rules: &Rules,
    cnt: &mut Resource,
    now: &str,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    let (mni, mbs, mia) = (cnt.int("mni"), cnt.int("mbs"), cnt.int("mia"));
    if mni.is_none() && mbs.is_none() && mia.is_none() {
        return Ok(());
    }
    let cutoff = mia.and_then(|secs| time::before(time::parse(now)?, secs));
    loop {
        let cni = cnt.int("cni").unwrap_or(0);
        let cbs = cnt.int("cbs").unwrap_or(0);
        let over = mni.is_some_and(|m| cni > m) || mbs.is_some_and(|m| cbs > m);
        if !over && cutoff.is_none() {
            break;
        }
        let Some(oldest) = w.edge_child(&cnt.ri, ResourceType::ContentInstance.code(), false)?
        else {
            break;
        };
        let too_old = cutoff.is_some_and(|c| {
            oldest
                .str("ct")
                .and_then(time::parse)
                .is_some_and(|ct| ct < c)
        });
        if !over && !too_old {
            break;
        }
        notify::child_deleted(w, rules, cnt, &oldest, out)?;
        w.delete_subtree(&oldest)?;
        uncount(cnt, &oldest);
    }
    Ok(())
}
