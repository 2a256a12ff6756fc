//! NOTIFY to one of our AEs (typically forwarded by another CSE): it goes on to the AE's
//! point of access, and the AE's answer is the answer.

use super::super::access::{self, Action, Object, Originator};
use super::super::pipeline::Success;
use super::super::{forward, reach, resources, Cse};
use crate::onem2m::{Base, Error, RequestPrimitive, ResourceType, Rsc, Virtual};

pub fn run(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: &Originator,
    base: &Base,
    virt: Option<Virtual>,
) -> Result<Success, Error> {
    let (ri, target) = cse.store.read(|r| {
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
        let ri = ae.ri.clone();
        let target = reach::ae_target(r, &cse.rules, ae)
            .map_err(|why| Error::new(Rsc::TARGET_NOT_REACHABLE, why))?;
        Ok::<_, Error>((ri, target))
    })?;
    let mut fwd = req.clone();
    fwd.to = ri.clone();
    forward::relay(cse, &target, fwd, "notify", &format!("AE {ri}"))
}
