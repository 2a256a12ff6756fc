//! `<accessControlPolicy>` (ty 1): `pv`, the privileges it grants on the resources whose
//! `acpi` names it, and `pvs`, those it grants on itself (TS-0001 §9.6.2). And `acpi` on
//! every type that has one: the policies it names must be ACPs of this CSE, and are kept as
//! their resource IDs. Once a write that changes either is committed, the in-memory
//! [`Policies`](super::super::policies::Policies) learn it.

use super::super::access::{self, Action, Object, Originator};
use super::super::policies::{Acp, Policies};
use super::super::Rules;
use crate::onem2m::acp::Privileges;
use crate::onem2m::address::{parse_target, shorten};
use crate::onem2m::{Error, ResourceType, Target};
use crate::store::{Reader, Resource, Writer};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The most policies one `acpi` names.
pub const MAX_ACPI: usize = 16;
/// The most policies directly under one resource (an AE, a remote CSE, the CSEBase): every
/// policy is kept in memory, so that no AE can fill it.
pub const MAX_ACPS_PER_PARENT: usize = 32;

/// Refuses a new policy under `parent` when it has [`MAX_ACPS_PER_PARENT`] already.
pub fn room_under(r: &Reader, parent: &Resource) -> Result<(), Error> {
    let code = ResourceType::AccessControlPolicy.code();
    if r.children_of_type(&parent.ri, code)?.len() >= MAX_ACPS_PER_PARENT {
        return Err(Error::not_allowed(format!(
            "{} has {MAX_ACPS_PER_PARENT} accessControlPolicy resources already; delete one \
             first",
            parent.srn
        )));
    }
    Ok(())
}

/// Naming policies in a CREATE: the new resource would otherwise follow its parent's, so
/// choosing its own is an UPDATE of what governs it, and needs update on the parent. An AE
/// or remote CSE registering starts a subtree of its own, and chooses freely. (Without this,
/// an originator granted create of subscriptions could make one that the data's owner can
/// neither read nor delete.)
pub fn may_name_on_create(
    r: &Reader,
    rules: &Rules,
    who: &Originator,
    ty: ResourceType,
    parent: &Resource,
) -> Result<(), Error> {
    if matches!(ty, ResourceType::Ae | ResourceType::RemoteCse) {
        return Ok(());
    }
    access::authorize(r, rules, who, Action::Update, Object::Resource(parent)).map_err(|e| {
        Error::no_privilege(format!(
            "{}: a new resource that names policies (acpi) needs update on its parent",
            e.dbg
        ))
    })
}

/// Checks `pv` and `pvs` of a new or updated ACP: 4000 for rules that are wrong, 5001 for
/// parts m2mhub does not evaluate.
pub fn check(attrs: &Map<String, Value>, rules: &Rules) -> Result<(), Error> {
    for name in ["pv", "pvs"] {
        if let Some(v) = attrs.get(name) {
            let read = Privileges::parse(v, name, &rules.me)?;
            // TS-0001 §9.6.2: a policy nobody may manage (but the admin) is refused.
            if name == "pvs" && read.is_empty() {
                return Err(Error::bad_request(
                    "pvs must hold at least one rule (TS-0001 §9.6.2): without one, nobody \
                     but the admin could read, change or delete the policy",
                ));
            }
        }
    }
    Ok(())
}

/// After an ACP is stored (created or updated): once committed, decisions use its rules.
pub fn stored(w: &Writer, rules: &Rules, acp: &Resource) {
    let read = Acp::read(acp, &rules.me);
    let (policies, ri) = (rules.policies.clone(), acp.ri.clone());
    w.after_commit(move || policies.set_acp(&ri, read));
    w.end_batch();
}

/// Reads the `acpi` of a CREATE or UPDATE and brings it to the stored form: the resource IDs
/// of the ACPs it names, which must exist on this CSE (4000 otherwise). `Some(ids)` when the
/// request sets it (an empty list, or `null` on UPDATE, removes it); `None` when it does
/// not.
pub fn take_acpi(
    r: &Reader,
    rules: &Rules,
    attrs: &mut Map<String, Value>,
) -> Result<Option<Vec<String>>, Error> {
    let ids = match attrs.get("acpi") {
        None => return Ok(None),
        Some(Value::Null) => Vec::new(),
        Some(v) => crate::cse::notify::string_list(Some(v)),
    };
    if ids.len() > MAX_ACPI {
        return Err(Error::bad_request(format!(
            "acpi names {} policies; at most {MAX_ACPI} are accepted",
            ids.len()
        )));
    }
    let mut ris: Vec<String> = Vec::with_capacity(ids.len());
    for id in &ids {
        let acp = find(r, rules, id)?;
        if !ris.contains(&acp.ri) {
            ris.push(acp.ri);
        }
    }
    if ris.is_empty() {
        attrs.remove("acpi");
    } else {
        attrs.insert("acpi".into(), json!(ris));
    }
    Ok(Some(ris))
}

/// The ACP an `acpi` entry names, in any address form of this CSE.
fn find(r: &Reader, rules: &Rules, id: &str) -> Result<Resource, Error> {
    // One answer whatever is there instead, so that acpi cannot tell what exists.
    let not_acp = || {
        Error::bad_request(format!(
            "acpi entry '{}' is not an accessControlPolicy of this CSE: acpi lists the \
             resource IDs (or addresses) of accessControlPolicy resources of this CSE",
            shorten(id)
        ))
    };
    let base = match parse_target(id, &rules.me) {
        Ok(Target::Local { base, virt: None }) => base,
        _ => return Err(not_acp()),
    };
    match super::resolve(r, &base, None, id) {
        Ok(found) if found.ty == ResourceType::AccessControlPolicy => Ok(found),
        _ => Err(not_acp()),
    }
}

/// Before the subtree at `target` is deleted: the policies in it, and what it named, go
/// with it, and resources elsewhere that name its ACPs stop naming them (as ACME does); a
/// resource left naming none is back to the default rule, rather than closed to its owner.
pub fn deleting(w: &Writer, rules: &Rules, target: &Resource) -> Result<(), Error> {
    if !rules.policies.has_within(&target.srn) {
        return Ok(());
    }
    let gone = rules.policies.acps_within(&target.srn);
    let now = crate::onem2m::time::now();
    for (srn, ids) in rules.policies.naming(&gone, &target.srn) {
        let Some(mut res) = w.get_by_srn(&srn)? else {
            continue;
        };
        let left: Vec<String> = ids.into_iter().filter(|id| !gone.contains(id)).collect();
        if left.is_empty() {
            res.attrs.remove("acpi");
        } else {
            res.attrs.insert("acpi".into(), json!(left));
        }
        res.attrs.insert("lt".into(), json!(now));
        w.update(&res)?;
        acpi_set(w, &rules.policies, &srn, left);
    }
    let (policies, srn) = (rules.policies.clone(), target.srn.clone());
    w.after_commit(move || policies.subtree_gone(&srn));
    w.end_batch();
    Ok(())
}

/// After the `acpi` of the resource at `srn` was set: once committed, it is governed by them.
pub fn acpi_set(w: &Writer, policies: &Arc<Policies>, srn: &str, ris: Vec<String>) {
    let (policies, srn) = (policies.clone(), srn.to_string());
    w.after_commit(move || policies.set_named(&srn, ris));
    w.end_batch();
}
