//! RETRIEVE of one resource (`rcn` 1), or of it with the children the originator may see
//! (`rcn` 4). Discovery (`fu` 1) is in [`crate::cse::discovery`].

use super::super::access::{self, Action, Originator};
use super::super::pipeline::{result_content, Success};
use super::super::{resources, Cse};
use crate::onem2m::{Base, Error, RequestPrimitive, Rsc, Virtual};
use serde_json::Value;

pub fn run(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: &Originator,
    base: &Base,
    virt: Option<Virtual>,
) -> Result<Success, Error> {
    let rcn = result_content(req.rcn, 1, &[1, 4], "RETRIEVE")?;
    let mut partial = None;
    let pc = cse.store.read(|r| -> Result<Value, Error> {
        let target = access::target(
            r,
            &cse.rules,
            originator,
            Action::Retrieve,
            base,
            virt,
            &req.to,
        )?;
        if rcn == 4 {
            // At most so many children, and so many bytes of them: the rest is left out, and
            // the answer says so (cnst 2, cnot the number given).
            let (children, more) = r.children_within(
                &target.ri,
                resources::MAX_CHILDREN_IN_RESPONSE,
                resources::MAX_RESULT_BYTES,
                |c| access::visible(&cse.rules, originator, Action::Retrieve, c),
            )?;
            if more {
                partial = Some(children.len() as u64);
            }
            return Ok(resources::with_children(&target, &children));
        }
        Ok(target.to_pc())
    })?;
    Ok(Success {
        rsc: Rsc::OK,
        pc: Some(pc),
        partial,
    })
}
