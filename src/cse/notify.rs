//! Subscriptions at work: which events a `<subscription>` reports (`enc.net`, `chty`), what a
//! notification carries (`nct`), the expiration counter (`exc`), deletion notifications
//! (`sud` to `su`); then dispatching the notifications, and verifying new targets.
//!
//! Notices are collected inside the write transaction that caused them, so that what is
//! reported is exactly what was committed; they are dispatched only after the commit, to a
//! [`Delivery`] that never blocks request handling. Where a target is reached is
//! [`super::reach`].

use super::reach::{self, Target};
use super::resources::subscription;
use super::{Cse, Rules};
use crate::onem2m::address;
use crate::onem2m::{Error, RequestPrimitive, ResourceType, Rsc};
use crate::store::{Resource, StoreError, Writer};
use serde_json::{json, Map, Value};

/// How long the CSE waits for the answer to a request it sends itself: a verification request,
/// a forwarded request, a relayed NOTIFY.
pub const PEER_ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// What [`Delivery::request`] fails with when shutdown cut the call short: the request is
/// then answered 5000 (try again), not as if its target had failed.
pub const SHUTTING_DOWN: &str = "the CSE is shutting down";

/// The answer to a request whose call out shutdown cut short.
pub fn shutting_down() -> Error {
    Error::internal("the CSE is shutting down; try again")
}

/// Event types of `enc.net` (TS-0004 notificationEventType).
pub const NET_UPDATE: u64 = 1;
pub const NET_DELETE: u64 = 2;
pub const NET_CREATE_CHILD: u64 = 3;
pub const NET_DELETE_CHILD: u64 = 4;

/// A notification to send once the transaction that caused it has committed.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Notification targets (the subscription's `nu`, or its `su` for a deletion notice).
    pub targets: Vec<String>,
    /// The subscriber: the receiver of an `mqtt://` target without a path.
    pub subscriber: String,
    /// `{"m2m:sgn": {...}}`
    pub pc: Value,
    /// What the subscriber must still be allowed to retrieve when the notice is sent (the
    /// subscribed-to resource, and the child an event is about), by the policies committed
    /// by then: a write that takes access away is not reported to those it shuts out.
    pub readable: Vec<Resource>,
}

/// What access control needs of a resource (no attributes): for [`Notice::readable`].
fn stub(res: &Resource) -> Resource {
    Resource {
        ty: res.ty,
        ri: res.ri.clone(),
        pi: res.pi.clone(),
        rn: String::new(),
        srn: res.srn.clone(),
        owner: res.owner.clone(),
        attrs: Map::new(),
    }
}

/// Sends NOTIFY requests. Implemented by the bindings.
pub trait Delivery: Send + Sync {
    /// Sends and waits for the answer (verification, forwarding). Blocking.
    fn request(
        &self,
        target: &Target,
        req: RequestPrimitive,
    ) -> Result<crate::onem2m::ResponsePrimitive, String>;
    /// Queues for delivery with retries; returns at once.
    fn enqueue(&self, target: Target, req: RequestPrimitive);
    /// Whether the outbound policy lets the CSE call the host of `url` (an http(s):// or
    /// mqtt(s):// address a client set). Blocking: it may resolve a host name.
    fn permits(&self, url: &str) -> Result<(), String>;
}

/// The subscription's reference, `sur`: its structured address in SP-relative form
/// (`/id-in/cse-in/ae/cnt/sub`), as OpenMTC's and Mobius's CSEs send it (their applications
/// find their handler, or the container's name, in it); TS-0004 allows any address form. A
/// notification to an absolute `nu` carries it in absolute form (see [`request`]).
pub fn sur(rules: &Rules, sub_srn: &str) -> String {
    format!("{}/{sub_srn}", rules.me.csi)
}

/// The strings of a JSON list (non-strings are skipped; validation reports them).
pub fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The representation of `res` a subscription asks for with its `nct`.
fn representation(sub: &Resource, res: &Resource, modified: Option<&Map<String, Value>>) -> Value {
    match sub.int("nct").unwrap_or(1) {
        2 => {
            let attrs = modified.cloned().unwrap_or_else(|| res.attrs.clone());
            json!({ res.ty.root_name(): attrs })
        }
        3 => json!({ "m2m:uri": res.ri }),
        _ => res.to_pc(),
    }
}

/// Reports `net` about `res` to every subscription directly under `subscribed`.
fn fire(
    w: &Writer,
    rules: &Rules,
    subscribed: &Resource,
    net: u64,
    res: &Resource,
    modified: Option<&Map<String, Value>>,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    for mut sub in w.children_of_type(&subscribed.ri, ResourceType::Subscription.code())? {
        if sub.ri == res.ri || !subscription::event_types(&sub.attrs).contains(&net) {
            continue;
        }
        if matches!(net, NET_CREATE_CHILD | NET_DELETE_CHILD) {
            if let Some(tys) = subscription::child_types(&sub.attrs) {
                if !tys.contains(&(res.ty.code() as u64)) {
                    continue;
                }
            }
        }
        // A subscriber whose access was taken away since is told nothing more; nor of a
        // child it may not retrieve.
        let subscriber = subscription::subscriber(&sub).to_string();
        let child_event = matches!(net, NET_CREATE_CHILD | NET_DELETE_CHILD);
        if !super::access::may_still_notify(rules, &subscriber, subscribed)
            || (child_event && !super::access::may_still_notify(rules, &subscriber, res))
        {
            continue;
        }
        let mut readable = vec![stub(subscribed)];
        if child_event {
            readable.push(stub(res));
        }
        out.push(Notice {
            targets: string_list(sub.attrs.get("nu")),
            subscriber,
            readable,
            pc: with_creator(
                &sub,
                json!({
                    "nev": { "net": net, "rep": representation(&sub, res, modified) },
                    "sur": sur(rules, &sub.srn),
                }),
            ),
        });
        // The expiration counter: the subscription ends after that many notifications.
        if let Some(exc) = sub.int("exc") {
            if exc <= 1 {
                removed(rules, &sub, out);
                super::resources::access_control_policy::deleting(w, rules, &sub)?;
                w.delete_subtree(&sub)?;
            } else {
                sub.attrs.insert("exc".into(), json!(exc - 1));
                w.update(&sub)?;
            }
        }
    }
    Ok(())
}

/// A deletion notice to `su` for a subscription that is going away.
fn removed(rules: &Rules, sub: &Resource, out: &mut Vec<Notice>) {
    if let Some(su) = sub.str("su").filter(|s| !s.is_empty()) {
        out.push(Notice {
            targets: vec![su.to_string()],
            subscriber: subscription::subscriber(sub).to_string(),
            readable: Vec::new(),
            pc: with_creator(sub, json!({ "sud": true, "sur": sur(rules, &sub.srn) })),
        });
    }
}

/// `{"m2m:sgn": sgn}`, with the subscription's `cr` when it has one (TS-0004 §7.5.1.2.2: a
/// notification carries the subscriber, for the receiver to decide on it).
fn with_creator(sub: &Resource, mut sgn: Value) -> Value {
    if let Some(cr) = sub.str("cr") {
        sgn["cr"] = json!(cr);
    }
    json!({ "m2m:sgn": sgn })
}

/// `child` was created under `parent` (net 3).
pub fn child_created(
    w: &Writer,
    rules: &Rules,
    parent: &Resource,
    child: &Resource,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    fire(w, rules, parent, NET_CREATE_CHILD, child, None, out)
}

/// `res` was updated; `modified` holds the attributes the request changed (net 1).
pub fn updated(
    w: &Writer,
    rules: &Rules,
    res: &Resource,
    modified: &Map<String, Value>,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    fire(w, rules, res, NET_UPDATE, res, Some(modified), out)
}

/// `res` (with its subtree) is about to be deleted: net 2 to its own subscriptions, net 4 to
/// its parent's, and a deletion notice for every subscription in the subtree.
pub fn deleting(
    w: &Writer,
    rules: &Rules,
    res: &Resource,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    if res.ty == ResourceType::Subscription {
        removed(rules, res, out);
    } else {
        fire(w, rules, res, NET_DELETE, res, None, out)?;
        let mut subs = Vec::new();
        w.walk_subtree(&res.srn, &[ResourceType::Subscription.code()], |s| {
            subs.push(s);
            true
        })?;
        for sub in subs {
            removed(rules, &sub, out);
        }
    }
    if let Some(parent) = w.get(&res.pi)? {
        child_deleted(w, rules, &parent, res, out)?;
    }
    Ok(())
}

/// `child` of `parent` was deleted (net 4); also used for evicted content instances.
pub fn child_deleted(
    w: &Writer,
    rules: &Rules,
    parent: &Resource,
    child: &Resource,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    fire(w, rules, parent, NET_DELETE_CHILD, child, None, out)
}

/// A request identifier for a request this CSE sends itself.
pub fn fresh_rqi(kind: &str) -> String {
    format!("{kind}-{:016x}", rand::random::<u64>())
}

/// A NOTIFY request from this CSE to `to` carrying `pc`.
pub fn request(rules: &Rules, to: &str, mut pc: Value) -> RequestPrimitive {
    // `sur` in the form of the target: absolute for an absolute `nu`.
    if to.starts_with("//") {
        if let Some(sur) = pc.pointer_mut("/m2m:sgn/sur") {
            if let Some(s) = sur.as_str().filter(|s| !s.starts_with("//")) {
                *sur = json!(format!("//{}{s}", rules.me.sp_id));
            }
        }
    }
    let rqi = fresh_rqi("notify");
    let mut req = RequestPrimitive::new(
        crate::onem2m::Operation::Notify,
        to,
        rules.me.csi.clone(),
        rqi,
    );
    req.pc = Some(pc);
    req
}

/// Writes whose notices wait for the notification thread at most: past it, they are dropped
/// (and logged) rather than held without bound.
const MAX_PENDING_NOTICES: usize = 16_384;

/// Notifications whose target could not be resolved.
pub static UNRESOLVED: crate::throttle::Throttle = crate::throttle::Throttle::new();

/// The notification thread's view of the CSE: it resolves each notice's targets (a read of
/// the store, so not on an async worker) and queues the notifications, in the order the writes
/// committed.
pub(super) struct Notifier {
    pub store: crate::store::Store,
    pub rules: std::sync::Arc<Rules>,
    pub delivery: std::sync::Arc<std::sync::OnceLock<std::sync::Arc<dyn Delivery>>>,
}

impl Notifier {
    /// Starts the thread; it ends when every sender is gone.
    pub fn spawn(self) -> std::io::Result<flume::Sender<Vec<Notice>>> {
        let (tx, rx) = flume::bounded::<Vec<Notice>>(MAX_PENDING_NOTICES);
        std::thread::Builder::new()
            .name("m2mhub-notify".into())
            .spawn(move || {
                for notices in rx {
                    // One bad notice does not end the thread, and every later notification.
                    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.dispatch(notices)
                    }));
                    if done.is_err() {
                        tracing::error!("notifications of a write dropped: their dispatch failed");
                    }
                }
            })?;
        Ok(tx)
    }

    fn dispatch(&self, notices: Vec<Notice>) {
        let Some(delivery) = self.delivery.get() else {
            tracing::warn!(
                count = notices.len(),
                "notifications dropped: no delivery is running"
            );
            return;
        };
        for notice in notices {
            let shut_out = notice
                .readable
                .iter()
                .any(|res| !super::access::may_still_notify(&self.rules, &notice.subscriber, res));
            if shut_out {
                continue;
            }
            for nu in &notice.targets {
                let target = self.store.read(|r| {
                    Ok::<_, StoreError>(reach::resolve_target(
                        r,
                        &self.rules,
                        nu,
                        &notice.subscriber,
                    ))
                });
                match target {
                    Ok(Ok(target)) => {
                        delivery.enqueue(target, request(&self.rules, nu, notice.pc.clone()))
                    }
                    Ok(Err(why)) => {
                        if let Some(quiet) = UNRESOLVED.hit() {
                            tracing::warn!(%nu, %why, not_logged_since_last_line = quiet, "cannot deliver a notification");
                        }
                    }
                    Err(e) => {
                        tracing::error!(%nu, error = %e, "cannot resolve a notification target")
                    }
                }
            }
        }
    }
}

impl Cse {
    /// Hands the notices of a committed write to the notification thread. Never blocks.
    pub(super) fn dispatch(&self, notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        match self.notices.try_send(notices) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(dropped)) => {
                if let Some(quiet) = crate::binding::delivery::DROPPED.hit() {
                    tracing::warn!(
                        count = dropped.len(),
                        not_logged_since_last_line = quiet,
                        "notifications dropped: too many are waiting to be sent"
                    );
                }
            }
            Err(flume::TrySendError::Disconnected(_)) => {
                tracing::error!("notifications dropped: the notification thread is gone")
            }
        }
    }

    /// Sends a verification request to every target in `nus` that is not the subscriber
    /// itself, all at once; any answer other than 2000 fails the request with 5204 (digest
    /// §7.1). Blocking, for at most one peer timeout whatever the number of targets.
    ///
    /// Whatever went wrong (nothing listens, nothing answers, something that is not a oneM2M
    /// entity answers, or one answers with an error), the client gets one text, so that
    /// verification cannot tell it what listens where; the log has the reason. A target the
    /// outbound policy refuses is said to be refused: that reveals the policy, not the network.
    pub(super) fn verify(
        &self,
        originator: &str,
        sub_srn: &str,
        nus: &[String],
    ) -> Result<(), Error> {
        let fail = |nu: &str, why: &str| {
            Error::new(
                Rsc::SUBSCRIPTION_VERIFICATION_INITIATION_FAILED,
                format!(
                    "verification of notification target '{}' failed: {why}",
                    address::shorten(nu)
                ),
            )
        };
        const UNCONFIRMED: &str = "it did not confirm the verification request";
        // The targets of `nu`, and `su`.
        if nus.len() > super::resources::subscription::MAX_TARGETS + 1 {
            return Err(Error::bad_request(format!(
                "nu lists more than {} notification targets",
                super::resources::subscription::MAX_TARGETS
            )));
        }
        let mut calls = Vec::new();
        for nu in nus {
            if !originator.is_empty() && address::local_originator(nu, &self.rules.me) == originator
            {
                continue;
            }
            let target = self.store.read(|r| {
                // The subscriber named by its structured address is the subscriber too.
                if !nu.contains("://") && nu.contains('/') {
                    if let Some(ae) = r.get_by_srn(nu)? {
                        if ae.ri == originator {
                            return Ok(None);
                        }
                    }
                }
                Ok::<_, StoreError>(Some(reach::resolve_target(r, &self.rules, nu, originator)))
            })?;
            let target: Target = match target {
                None => continue,
                Some(t) => t.map_err(|why| fail(nu, &why))?,
            };
            let delivery = self
                .delivery()
                .ok_or_else(|| fail(nu, "no notification delivery is running"))?;
            if nu.contains("://") {
                delivery.permits(nu).map_err(|why| fail(nu, &why))?;
            }
            let mut sgn = json!({ "vrq": true, "sur": sur(&self.rules, sub_srn) });
            if !originator.is_empty() {
                sgn["cr"] = json!(originator);
            }
            calls.push((
                nu,
                target,
                request(&self.rules, nu, json!({ "m2m:sgn": sgn })),
            ));
        }
        let Some(delivery) = self.delivery() else {
            return Ok(());
        };
        // Each call blocks a thread of its own for at most the peer timeout; the first runs
        // on this one. A thread that cannot be made fails its target, not the process.
        let answers: Vec<_> = std::thread::scope(|scope| {
            let mut calls = calls.into_iter();
            let first = calls.next();
            let running: Vec<_> = calls
                .map(|(nu, target, req)| {
                    let call = std::thread::Builder::new()
                        .name("m2mhub-verify".into())
                        .spawn_scoped(scope, move || delivery.request(&target, req));
                    (nu, call)
                })
                .collect();
            let mut answers: Vec<_> = first
                .map(|(nu, target, req)| (nu, Some(delivery.request(&target, req))))
                .into_iter()
                .collect();
            answers.extend(
                running
                    .into_iter()
                    .map(|(nu, call)| (nu, call.ok().and_then(|c| c.join().ok()))),
            );
            answers
        });
        for (nu, answer) in answers {
            let why = match answer {
                // Any success (OpenMTC's receivers answer 2001 or 2004, some 2000 without a body).
                Some(Ok(rsp)) if (2000..3000).contains(&rsp.rsc.code()) => continue,
                Some(Ok(rsp)) => format!("it answered {}", rsp.rsc),
                Some(Err(why)) if why == SHUTTING_DOWN => return Err(shutting_down()),
                Some(Err(why)) => why,
                None => "the verification could not be run".to_string(),
            };
            tracing::info!(%originator, nu = %address::shorten(nu), %why, "subscription verification failed");
            return Err(fail(nu, UNCONFIRMED));
        }
        Ok(())
    }
}
