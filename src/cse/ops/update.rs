//! UPDATE: the write that changes the attributes, and for a subscription the verification of
//! the targets its new `nu` adds, before that write.

use super::super::access::{self, Action, Object, Originator};
use super::super::notify::string_list;
use super::super::pipeline::{result_content, Success, WriteFn};
use super::super::{reach, resources, Cse};
use crate::onem2m::{Base, Error, RequestPrimitive, ResourceType, Rsc, Virtual};
use serde_json::Value;

pub fn write(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: Originator,
    base: Base,
    virt: Option<Virtual>,
) -> Result<WriteFn, Error> {
    if virt.is_some() {
        return Err(Error::not_allowed("la and ol cannot be updated"));
    }
    let rcn = result_content(req.rcn, 1, &[0, 1], "UPDATE")?;
    let pc = req
        .pc
        .clone()
        .ok_or_else(|| Error::bad_request("an UPDATE needs content (pc)"))?;
    let rules = cse.rules.clone();
    let to = req.to.clone();
    Ok(Box::new(move |w, out| {
        let updated = resources::update(w, &rules, &originator, &base, &to, pc, out)?;
        Ok(Success {
            rsc: Rsc::UPDATED,
            pc: (rcn == 1).then(|| updated.to_pc()),
            partial: None,
        })
    }))
}

/// An UPDATE on the blocking path: the notification targets a subscription's new `nu` and
/// `su` add are verified before they are stored (only for someone allowed to update it), and
/// a new `poa` is checked against the outbound policy.
pub fn verified(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: Originator,
    base: Base,
    virt: Option<Virtual>,
) -> Result<Success, Error> {
    if let Some(poa) = reach::poa_set(req) {
        cse.check_poa(&poa)?;
    }
    let sub = req.pc.as_ref().and_then(|pc| pc.get("m2m:sub"));
    let (new_nus, new_su) = (
        sub.and_then(|s| s.get("nu")),
        sub.and_then(|s| s.get("su")).and_then(Value::as_str),
    );
    if new_nus.is_some() || new_su.is_some() {
        let current = cse.store.read(|r| {
            let current = resources::resolve(r, &base, None, &req.to)?;
            if current.ty == ResourceType::Subscription {
                let object = Object::Resource(&current);
                access::authorize(r, &cse.rules, &originator, Action::Update, object)?;
            }
            Ok::<_, Error>(current)
        })?;
        if current.ty == ResourceType::Subscription {
            if new_nus.is_some() {
                resources::subscription::check_target_count(&string_list(new_nus))?;
            }
            let old = string_list(current.attrs.get("nu"));
            let mut added: Vec<String> = string_list(new_nus)
                .into_iter()
                .filter(|n| !old.contains(n))
                .collect();
            added.extend(
                new_su
                    .filter(|su| !su.is_empty() && current.str("su") != Some(*su))
                    .map(str::to_string),
            );
            cse.verify(&originator.id, &current.srn, &added)?;
        }
    }
    cse.write(write(cse, req, originator, base, virt)?)
}
