//! Requests for other CSEs. A request whose target is on another CSE goes on to it (or
//! towards it, through our registrar); its answer comes back as it is. [`relay`] is the one
//! step that sends a request on and waits for the answer, for forwarding and for NOTIFYs
//! relayed to an AE.

use super::access::{self, Action, Object, Originator};
use super::pipeline::Success;
use super::reach::{self, Target};
use super::Cse;
use crate::onem2m::{Error, RequestPrimitive, ResponseType, Rsc};

/// Forwards `req` to the CSE `csi`, with the originator in SP-relative form (TS-0004
/// §7.3.2.6). The hosting CSE does the access control on its resource.
pub fn forward(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: &Originator,
    csi: &str,
) -> Result<Success, Error> {
    let hop = cse.store.read(|r| {
        // Our own CSEBase's name used as a CSE-ID (a Mobius device's `/cse-in`): say so
        // first, whoever asks, rather than refuse to forward it.
        let hint = reach::own_name_hint(&cse.rules, csi);
        if !hint.is_empty() && r.get(csi.trim_start_matches('/'))?.is_none() {
            return Err(Error::new(
                Rsc::TARGET_NOT_REACHABLE,
                format!("CSE {csi} is not registered with this CSE{hint}"),
            ));
        }
        access::authorize(
            r,
            &cse.rules,
            originator,
            Action::Forward(req.op),
            Object::Cse(csi),
        )?;
        reach::next_hop(r, &cse.rules, csi)
    })?;
    let mut fwd = req.clone();
    let id = &originator.id;
    fwd.fr = Some(if id.is_empty() || id.starts_with('/') {
        id.clone()
    } else {
        format!("{}/{id}", cse.rules.me.csi)
    });
    fwd.rt = ResponseType::Blocking;
    relay(cse, &hop, fwd, "fwd", &format!("CSE {csi}"))
}

/// Sends a request on to another entity and passes its answer back.
pub fn relay(
    cse: &Cse,
    target: &Target,
    mut req: RequestPrimitive,
    kind: &str,
    who: &str,
) -> Result<Success, Error> {
    let delivery = cse.delivery().ok_or_else(|| {
        Error::new(
            Rsc::TARGET_NOT_REACHABLE,
            "no transport to other entities is running",
        )
    })?;
    // Our own request identifier on the way on: originators' rqis need not be unique across
    // originators, and answers are matched by rqi. Our answer keeps the originator's rqi.
    req.rqi = super::notify::fresh_rqi(kind);
    let rsp = delivery.request(target, req).map_err(|why| {
        if why == super::notify::SHUTTING_DOWN {
            return super::notify::shutting_down();
        }
        Error::new(
            Rsc::TARGET_NOT_REACHABLE,
            format!("{who} did not answer: {why}"),
        )
    })?;
    Ok(Success {
        rsc: rsp.rsc,
        pc: rsp.pc,
        partial: rsp.partial,
    })
}
