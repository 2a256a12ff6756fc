//! CREATE: the checks that need no I/O, the write that creates the resource, and for a
//! subscription the verification of its targets before that write.

use super::super::access::{self, Originator};
use super::super::attributes;
use super::super::notify::string_list;
use super::super::pipeline::{result_content, Success, WriteFn};
use super::super::reach;
use super::super::resources::{self, NewResource};
use super::super::Cse;
use crate::onem2m::{Base, Error, RequestPrimitive, ResourceType, Rsc, Virtual};
use serde_json::{json, Map, Value};

/// What a CREATE asks for, checked: the type, the answer wanted (`rcn`) and the attributes.
pub struct Asked {
    ty: ResourceType,
    rcn: u64,
    attrs: Map<String, Value>,
}

/// The checks on a CREATE that need no I/O.
pub fn content(req: &RequestPrimitive, virt: Option<Virtual>) -> Result<Asked, Error> {
    let ty = match req.ty {
        None => return Err(Error::bad_request("missing ty in CREATE request")),
        Some(ty) => u16::try_from(ty)
            .ok()
            .and_then(ResourceType::from_u16)
            .ok_or_else(|| Error::bad_request(format!("resource type {ty} is not supported")))?,
    };
    if !resources::creatable(ty) {
        return Err(Error::new(
            if ty == ResourceType::CseBase {
                Rsc::OPERATION_NOT_ALLOWED
            } else {
                Rsc::NOT_IMPLEMENTED
            },
            format!(
                "creating {} (ty {}) is not supported",
                ty.root_name(),
                ty.code()
            ),
        ));
    }
    if virt.is_some() {
        return Err(Error::not_allowed("nothing can be created under la or ol"));
    }
    let rcn = result_content(req.rcn, 1, &[0, 1, 2, 3], "CREATE")?;
    let mut attrs = resources::content(req.pc.as_ref(), ty)?;
    attributes::tidy(ty, attributes::Op::Create, &mut attrs);
    attributes::validate(ty, attributes::Op::Create, &attrs)?;
    Ok(Asked { ty, rcn, attrs })
}

/// The write that creates the resource, with the answer `rcn` asks for. `preset_ri` is a
/// resource ID chosen before the write (a subscription's, known to its verification).
#[allow(clippy::too_many_arguments)]
pub fn write(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: Originator,
    credential: Option<String>,
    parent: Base,
    asked: Asked,
    preset_ri: Option<String>,
) -> WriteFn {
    let rules = cse.rules.clone();
    let Asked { ty, rcn, attrs } = asked;
    let new = NewResource {
        ty,
        attrs,
        requested_id: req.fr.clone(),
        ri: preset_ri,
        credential,
        rvi: req.rvi.clone(),
    };
    Box::new(move |w, out| {
        let created = resources::create(w, &rules, &originator, &parent, new, out)?;
        let pc = match rcn {
            0 => None,
            2 => Some(json!({ "m2m:uri": created.srn })),
            3 => {
                let short = created.ty.root_name().trim_start_matches("m2m:");
                Some(json!({ "m2m:rce": { short: created.attrs, "uri": created.srn } }))
            }
            _ => Some(created.to_pc()),
        };
        Ok(Success {
            rsc: Rsc::CREATED,
            pc,
            partial: None,
        })
    })
}

/// A CREATE on the blocking path: a subscription's targets (`nu`, `su`) are verified first
/// (only by someone allowed to subscribe there: nobody else makes this CSE call out), and a
/// `poa` is checked against the outbound policy; then the write.
pub fn verified(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: Originator,
    credential: Option<String>,
    base: Base,
    virt: Option<Virtual>,
) -> Result<Success, Error> {
    let asked = content(req, virt)?;
    let mut preset_ri = None;
    if let Some(poa) = reach::poa_set(req) {
        cse.check_poa(&poa)?;
    }
    if asked.ty == ResourceType::Subscription {
        let parent = cse.store.read(|r| {
            let parent = resources::resolve(r, &base, None, &req.to)?;
            access::may_subscribe(r, &cse.rules, &originator, &parent)?;
            Ok::<_, Error>(parent)
        })?;
        let ri = format!("sub{:012x}", rand::random::<u64>() >> 16);
        // Its structured address, as it will be (for `sur`).
        let rn = asked.attrs.get("rn").and_then(Value::as_str).unwrap_or(&ri);
        let srn = format!("{}/{rn}", parent.srn);
        // `su` is called on deletion: it is a target like those of `nu`.
        let mut targets = string_list(asked.attrs.get("nu"));
        resources::subscription::check_target_count(&targets)?;
        let su = asked.attrs.get("su").and_then(Value::as_str);
        targets.extend(su.filter(|su| !su.is_empty()).map(str::to_string));
        cse.verify(&originator.id, &srn, &targets)?;
        preset_ri = Some(ri);
    }
    cse.write(write(
        cse, req, originator, credential, base, asked, preset_ri,
    ))
}
