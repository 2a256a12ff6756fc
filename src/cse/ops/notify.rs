//! NOTIFY to one of our AEs (typically forwarded by another CSE): it goes on to the AE's
//! point of access, and the AE's answer is the answer.

use super::super::access::{self, Action, Object};
use super::super::pipeline::Success;
use super::super::{forward, reach, resources, Cse};
use crate::onem2m::{Base, Error, RequestPrimitive, ResourceType, Rsc, Virtual};
use crate::store::StoreError;

pub fn run(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: &str,
    base: &Base,
    virt: Option<Virtual>,
) -> Result<Success, Error> {
    let ae = cse.store.read(|r| {
        let ae = resources::resolve(r, base, virt, &req.to)?;
        if ae.ty != ResourceType::Ae {
            return Err(Error::not_allowed(format!(
                "NOTIFY goes to an AE; {} is a {}",
                req.to,
                ae.ty.root_name()
            )));
        }
        access::authorize(
            r,
            &cse.rules,
            originator,
            Action::Notify,
            Object::Resource(&ae),
        )?;
        Ok::<_, Error>(ae)
    })?;
    let target = cse
        .store
        .read(|r| Ok::<_, StoreError>(reach::resolve_target(r, &cse.rules, &ae.ri, &ae.ri)))?
        .map_err(|why| Error::new(Rsc::TARGET_NOT_REACHABLE, why))?;
    let mut fwd = req.clone();
    fwd.to = ae.ri.clone();
    forward::relay(cse, &target, fwd, "notify", &format!("AE {}", ae.ri))
}
