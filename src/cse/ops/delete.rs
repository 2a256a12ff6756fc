//! DELETE: the resource and its subtree, with the notifications that causes.

use super::super::access::{self, Action, Originator};
use super::super::pipeline::{result_content, Success, WriteFn};
use super::super::{resources, Cse};
use crate::onem2m::{Base, Error, RequestPrimitive, ResourceType, Rsc, Virtual};

pub fn write(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: Originator,
    base: Base,
    virt: Option<Virtual>,
) -> Result<WriteFn, Error> {
    let rcn = result_content(req.rcn, 0, &[0, 1], "DELETE")?;
    let rules = cse.rules.clone();
    let to = req.to.clone();
    Ok(Box::new(move |w, out| {
        let target = access::target(w, &rules, &originator, Action::Delete, &base, virt, &to)?;
        if target.ty == ResourceType::CseBase {
            return Err(Error::not_allowed("the CSEBase cannot be deleted"));
        }
        resources::delete(w, &rules, &target, out)?;
        Ok(Success {
            rsc: Rsc::DELETED,
            pc: (rcn == 1).then(|| target.to_pc()),
            partial: None,
        })
    }))
}
