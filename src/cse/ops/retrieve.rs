//! RETRIEVE of one resource (`rcn` 1), or of it with the children the originator may see
//! (`rcn` 4). Discovery (`fu` 1) is in [`crate::cse::discovery`].

use super::super::access::{self, Action};
use super::super::pipeline::{result_content, Success};
use super::super::{resources, Cse};
use crate::onem2m::{Base, Error, RequestPrimitive, Rsc, Virtual};
use serde_json::Value;

pub fn run(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: &str,
    base: &Base,
    virt: Option<Virtual>,
) -> Result<Success, Error> {
    let rcn = result_content(req.rcn, 1, &[1, 4], "RETRIEVE")?;
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
            let children: Vec<_> = r
                .children(&target.ri, resources::MAX_CHILDREN_IN_RESPONSE)?
                .into_iter()
                .filter(|c| access::visible(r, &cse.rules, originator, c))
                .collect();
            return Ok(resources::with_children(&target, &children));
        }
        Ok(target.to_pc())
    })?;
    Ok(Success {
        rsc: Rsc::OK,
        pc: Some(pc),
    })
}
