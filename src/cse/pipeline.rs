//! The request pipeline, the same for every binding: the checks that need no I/O, then the
//! operation ([`super::ops`]), then the response primitive, logged.
//!
//! [`Cse::begin`] takes a request as far as it goes without waiting: an answer (a request
//! refused by the checks), a [`Write`] for the store (plain creates, updates and deletes: the
//! hot path, which holds no thread while it waits for its commit), or a [`Blocked`] request for
//! a blocking thread (reads, discovery, forwarding, NOTIFY, and subscriptions, whose
//! verification calls out).

use super::access::Originator;
use super::notify::Notice;
use super::Bindings;
use super::{discovery, forward, ops, reach, Cse};
use crate::auth::Identity;
use crate::onem2m::address::too_long;
use crate::onem2m::address::{self, parse_target, shorten, Virtual};
use crate::onem2m::primitive::{echoed_rvi, SUPPORTED_RELEASES};
use crate::onem2m::{
    Base, Error, Operation, RequestPrimitive, ResourceType, ResponsePrimitive, ResponseType, Rsc,
    Target,
};
use crate::store::{Submitted, Writer};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The outcome of a request that succeeded.
pub(super) struct Success {
    pub rsc: Rsc,
    pub pc: Option<Value>,
    /// A partial result: the offset of what was left out (`cnst`/`cnot`).
    pub partial: Option<u64>,
}

/// A write to run in the store's transaction; it collects the notices it causes.
pub(super) type WriteFn =
    Box<dyn FnOnce(&Writer, &mut Vec<Notice>) -> Result<Success, Error> + Send + 'static>;

/// Who sent a request, as far as its binding established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A client the HTTP binding authenticated (or let in anonymously): `fr` must be an
    /// originator bound to it.
    Client(Identity),
    /// MQTT: the broker let the publisher use this topic originator level, and the link
    /// checked `fr` against it. On `reg_req` the level is a credential; on `req` it is the
    /// originator itself.
    Topic(String),
}

impl Origin {
    /// The identity registrations are checked against. Over MQTT the CSE sees only the topic
    /// level: a level that is a known credential is held to that credential's rules (the
    /// broker lets only that credential use it on `reg_req`); any other level was used by a
    /// client without credentials, held to the anonymous rules.
    fn identity(&self, bindings: &Bindings) -> Identity {
        match self {
            Origin::Client(id) => id.clone(),
            Origin::Topic(level) if bindings.is_credential(level) => {
                Identity::Credential(level.clone())
            }
            Origin::Topic(_) => Identity::Anonymous,
        }
    }

    /// The credential a registration is bound to: the identity's, or over MQTT the topic
    /// level (TS-0010's Credential-ID).
    fn credential(&self) -> Option<String> {
        match self {
            Origin::Client(id) => id.credential().map(str::to_string),
            Origin::Topic(level) => Some(level.clone()),
        }
    }
}

/// What the checks found: who asks, and where the request goes.
pub struct Checked {
    originator: Originator,
    /// The credential a registration is bound to, if any.
    credential: Option<String>,
    route: Route,
}

enum Route {
    /// Another CSE's resource: forwarded.
    Remote(String),
    /// A discovery under a local resource.
    Discover {
        base: Base,
        virt: Option<Virtual>,
        filter: discovery::Filter,
    },
    Local {
        base: Base,
        virt: Option<Virtual>,
    },
}

/// What a request turned into, without waiting for anything (see [`Cse::begin`]).
// The large variant is the hot one (a write); boxing it would cost an allocation per request
// for a value that lives only until the caller's `match`.
#[allow(clippy::large_enum_variant)]
pub enum Begun {
    /// Answered at once (`None`: no answer is due).
    Answered(Option<ResponsePrimitive>),
    /// A write for the store: [`Write::submit`].
    Write(Write),
    /// It must run on a blocking thread: [`Blocked::run`].
    Blocking(Box<Blocked>),
}

impl Cse {
    /// Takes a request as far as it goes without waiting. Never blocks.
    ///
    /// Writes reach the store in the order they are [submitted](Write::submit), so a binding
    /// that submits in arrival order keeps one originator's writes in order without waiting for
    /// their commits.
    ///
    /// `addr` is where the request came from, when the binding knows (for access control
    /// policies that name address ranges).
    pub fn begin(&self, req: RequestPrimitive, origin: Origin, addr: Option<IpAddr>) -> Begun {
        let mut guard = InFlight::enter(&self.in_flight);
        let started = Instant::now();
        let planned = self
            .check(&req, &origin, addr)
            .and_then(|checked| {
                // A registration that asks for an AE-ID (fr empty, C or S) has no originator
                // of its own yet: devices doing that at once may well share an rqi.
                let anonymous_registration =
                    matches!(checked.originator.id.as_str(), "" | "C" | "S");
                let fresh = req.rqi.is_empty()
                    || anonymous_registration
                    || self
                        .request_ids
                        .take(&checked.originator.id, &req.rqi, &mut guard);
                if !fresh {
                    return Err(Error::bad_request(format!(
                        "a request with rqi '{}' from this originator is still in progress",
                        shorten(&req.rqi)
                    )));
                }
                Ok(checked)
            })
            .and_then(|checked| self.plan(&req, checked));
        match planned {
            Err(e) => Begun::Answered(self.respond(&req, started, Err(e))),
            Ok(Plan::Write(f)) => Begun::Write(Write {
                f,
                cse: self.clone(),
                req,
                started,
                guard,
            }),
            Ok(Plan::Blocking(checked)) => Begun::Blocking(Box::new(Blocked {
                cse: self.clone(),
                req,
                checked: *checked,
                started,
                _guard: guard,
            })),
        }
    }

    /// The checks every request passes before anything is read: release, response type,
    /// originator (and whether its sender may use it), filter criteria, and where the target
    /// is.
    fn check(
        &self,
        req: &RequestPrimitive,
        origin: &Origin,
        addr: Option<IpAddr>,
    ) -> Result<Checked, Error> {
        if let Some(rvi) = &req.rvi {
            if !SUPPORTED_RELEASES.contains(&rvi.as_str()) {
                return Err(Error::new(
                    Rsc::RELEASE_VERSION_NOT_SUPPORTED,
                    format!(
                        "release version '{}' is not supported; use one of {SUPPORTED_RELEASES:?}",
                        shorten(rvi)
                    ),
                ));
            }
        }
        if let Some(rqet) = &req.rqet {
            if expired(rqet)? {
                return Err(Error::new(
                    Rsc::REQUEST_TIMEOUT,
                    format!(
                        "the request expired at {} (rqet) before it was handled",
                        shorten(rqet)
                    ),
                ));
            }
        }
        match req.rt {
            ResponseType::NonBlockingSync | ResponseType::NonBlockingAsync => {
                return Err(Error::new(
                    Rsc::NON_BLOCKING_REQUEST_NOT_SUPPORTED,
                    "non-blocking requests are not supported; send rt 3 (blocking) or leave rt out",
                ))
            }
            ResponseType::Blocking | ResponseType::FlexBlocking | ResponseType::NoResponse => {}
        }
        if req.ty.is_some() && req.op != Operation::Create {
            return Err(Error::bad_request("ty is only allowed in a CREATE request"));
        }
        let discovery =
            match &req.fc {
                None => None,
                Some(fc) => match discovery::Filter::from_fc(fc)? {
                    Some(f) if req.op == Operation::Retrieve => Some(f),
                    Some(_) => return Err(Error::bad_request("discovery (fu 1) is a RETRIEVE")),
                    None => return Err(Error::new(
                        Rsc::NOT_IMPLEMENTED,
                        "conditional retrieval (filter criteria without fu 1) is not supported yet",
                    )),
                },
            };
        // The MQTT binding's parser refuses these already; HTTP headers arrive here unchecked.
        if let Some(e) = req.fr.as_deref().and_then(|fr| too_long("fr", fr)) {
            return Err(e);
        }
        let registering =
            req.op == Operation::Create && req.ty == Some(ResourceType::Ae.code() as u64);
        let originator = match req.fr.as_deref() {
            // One form for every check after this one (ownership, the admin, policies'
            // rules): CSE-relative for our entities, SP-relative for other CSEs'.
            Some(fr) if !fr.is_empty() => address::local_originator(fr, &self.rules.me),
            _ if registering => String::new(),
            _ => return Err(Error::bad_request("missing originator (fr)")),
        };
        let registering_cse =
            req.op == Operation::Create && req.ty == Some(ResourceType::RemoteCse.code() as u64);
        if registering_cse {
            self.rules
                .bindings
                .may_register_cse(&origin.identity(&self.rules.bindings), &originator)
                .map_err(Error::no_privilege)?;
        } else {
            self.check_sender(origin, &originator, registering)?;
        }
        // Only a registration binds its credential.
        let credential = if registering || registering_cse {
            origin.credential()
        } else {
            None
        };
        let route = match parse_target(&req.to, &self.rules.me)? {
            Target::Remote { csi } => Route::Remote(csi),
            Target::Local { base, virt } => match discovery {
                Some(filter) => Route::Discover { base, virt, filter },
                None => Route::Local { base, virt },
            },
        };
        Ok(Checked {
            originator: Originator::new(originator, addr),
            credential,
            route,
        })
    }

    /// Whether the sender may use `originator`: an AE registration may not take the admin's
    /// name or another credential's; anything else must be an originator bound to the
    /// sender (over MQTT the broker and the link have made sure of that).
    fn check_sender(
        &self,
        origin: &Origin,
        originator: &str,
        registering: bool,
    ) -> Result<(), Error> {
        let bindings = &self.rules.bindings;
        if registering {
            let asked = (!matches!(originator, "" | "C" | "S")).then_some(originator);
            bindings
                .may_register(&origin.identity(bindings), asked)
                .map_err(Error::no_privilege)?;
        } else if let Origin::Client(id) = origin {
            if !originator.is_empty() && !bindings.may_act_as(id, originator) {
                let who = match id {
                    Identity::Credential(c) => format!("credential '{c}'"),
                    _ => "an anonymous client".to_string(),
                };
                return Err(Error::no_privilege(format!(
                    "{who} may not act as originator '{}'",
                    shorten(originator)
                )));
            }
        }
        Ok(())
    }

    /// A plain create, update or delete becomes a write for the store; the rest goes on to
    /// the blocking path.
    fn plan(&self, req: &RequestPrimitive, checked: Checked) -> Result<Plan, Error> {
        // Subscriptions verify their targets (they call out), and a `poa` is checked against
        // the outbound policy (it may resolve a name), before they are written.
        let sets_poa = reach::poa_set(req).is_some();
        let needs_blocking = match req.op {
            Operation::Create => {
                sets_poa || req.ty == Some(ResourceType::Subscription.code() as u64)
            }
            Operation::Update => {
                sets_poa || req.pc.as_ref().and_then(|pc| pc.get("m2m:sub")).is_some()
            }
            Operation::Delete => false,
            Operation::Retrieve | Operation::Notify => true,
        };
        match checked {
            Checked {
                originator,
                credential,
                route: Route::Local { base, virt },
            } if !needs_blocking => Ok(Plan::Write(match req.op {
                Operation::Create => {
                    let new = ops::create::content(req, virt)?;
                    ops::create::write(self, req, originator, credential, base, new, None)
                }
                Operation::Update => ops::update::write(self, req, originator, base, virt)?,
                _ => ops::delete::write(self, req, originator, base, virt)?,
            })),
            checked => Ok(Plan::Blocking(Box::new(checked))),
        }
    }

    /// Requests that read, call out, or verify before they write. Blocking.
    fn run_blocking(&self, req: &RequestPrimitive, checked: Checked) -> Result<Success, Error> {
        let Checked {
            originator,
            credential,
            route,
        } = checked;
        let (base, virt) = match route {
            Route::Remote(csi) => return forward::forward(self, req, &originator, &csi),
            Route::Discover { base, virt, filter } => {
                return discovery::run(self, req, &originator, &base, virt, &filter)
            }
            Route::Local { base, virt } => (base, virt),
        };
        match req.op {
            Operation::Create => {
                ops::create::verified(self, req, originator, credential, base, virt)
            }
            Operation::Retrieve => ops::retrieve::run(self, req, &originator, &base, virt),
            Operation::Update => ops::update::verified(self, req, originator, base, virt),
            Operation::Delete => self.write(ops::delete::write(self, req, originator, base, virt)?),
            Operation::Notify => ops::notify::run(self, req, &originator, &base, virt),
        }
    }

    /// Runs a write, waits for its commit, then sends the notifications it caused. Blocking.
    pub(super) fn write(&self, f: WriteFn) -> Result<Success, Error> {
        self.committed(self.submit_write(f).wait())
    }

    /// Queues a write for the store, collecting the notices it causes.
    fn submit_write(&self, f: WriteFn) -> Submitted<(Success, Vec<Notice>), Error> {
        self.store.submit(move |w| {
            let mut notices = Vec::new();
            let done = f(w, &mut notices)?;
            Ok::<_, Error>((done, notices))
        })
    }

    /// After a write ended: sends the notifications it caused, if it was committed.
    fn committed(&self, result: Result<(Success, Vec<Notice>), Error>) -> Result<Success, Error> {
        let (done, notices) = result?;
        self.dispatch(notices);
        Ok(done)
    }

    /// The response to `req` for `result`, logged; `None` if the request asked for none.
    fn respond(
        &self,
        req: &RequestPrimitive,
        started: Instant,
        result: Result<Success, Error>,
    ) -> Option<ResponsePrimitive> {
        let rsp = match result {
            Ok(ok) => {
                let rvi = echoed_rvi(req.rvi.clone());
                let mut rsp = ResponsePrimitive::new(ok.rsc, &req.rqi, rvi, ok.pc);
                rsp.partial = ok.partial;
                rsp
            }
            Err(e) => {
                if e.rsc == Rsc::INTERNAL_SERVER_ERROR {
                    tracing::error!(rqi = %req.rqi, to = %req.to, dbg = %e.dbg, "request failed");
                } else {
                    tracing::warn!(op = ?req.op, to = %req.to, fr = ?req.fr, rqi = %req.rqi,
                        rsc = e.rsc.code(), dbg = %e.dbg, "request rejected");
                }
                ResponsePrimitive::error(&e, &req.rqi, echoed_rvi(req.rvi.clone()))
            }
        };
        tracing::debug!(op = ?req.op, to = %req.to, fr = ?req.fr, rqi = %req.rqi,
            rsc = rsp.rsc.code(), us = started.elapsed().as_micros() as u64, "request");
        (req.rt != ResponseType::NoResponse).then_some(rsp)
    }
}

enum Plan {
    Write(WriteFn),
    Blocking(Box<Checked>),
}

/// A request's write, ready for the store.
pub struct Write {
    f: WriteFn,
    cse: Cse,
    req: RequestPrimitive,
    started: Instant,
    guard: InFlight,
}

impl Write {
    /// Queues the write for the store; writes run in the order they are submitted.
    pub fn submit(self) -> PendingWrite {
        let Write {
            f,
            cse,
            req,
            started,
            guard,
        } = self;
        PendingWrite {
            submitted: cse.submit_write(f),
            cse,
            req,
            started,
            _guard: guard,
        }
    }
}

/// A write on its way to the disk; its answer once committed.
pub struct PendingWrite {
    cse: Cse,
    req: RequestPrimitive,
    started: Instant,
    submitted: Submitted<(Success, Vec<Notice>), Error>,
    _guard: InFlight,
}

impl PendingWrite {
    /// Waits (without blocking a thread) for the commit, queues the notifications the write
    /// caused, and gives the answer.
    pub async fn finish(self) -> Option<ResponsePrimitive> {
        let PendingWrite {
            cse,
            req,
            started,
            submitted,
            _guard,
        } = self;
        let result = cse.committed(submitted.done().await);
        cse.respond(&req, started, result)
    }
}

/// A request for the blocking path.
pub struct Blocked {
    cse: Cse,
    req: RequestPrimitive,
    checked: Checked,
    started: Instant,
    _guard: InFlight,
}

impl Blocked {
    /// Handles the request to its answer. Blocking: run it on a blocking thread.
    pub fn run(self) -> Option<ResponsePrimitive> {
        let result = self.cse.run_blocking(&self.req, self.checked);
        self.cse.respond(&self.req, self.started, result)
    }
}

/// Whether `rqet` has passed. An absolute time (basic or extended form) is compared with
/// now; a relative one (milliseconds) counts from when the request was sent, which is not
/// known here, so from now: it has not passed.
fn expired(rqet: &str) -> Result<bool, Error> {
    if !rqet.is_empty() && rqet.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(false);
    }
    let at = crate::onem2m::time::parse_lenient(rqet).ok_or_else(|| {
        Error::bad_request(format!(
            "rqet '{}' is neither a timestamp nor a number of milliseconds",
            shorten(rqet)
        ))
    })?;
    Ok(at <= chrono::Utc::now())
}

/// Checks `rcn` against what this CSE supports for the operation.
pub(super) fn result_content(
    rcn: Option<u64>,
    default: u64,
    allowed: &[u64],
    op: &str,
) -> Result<u64, Error> {
    let rcn = rcn.unwrap_or(default);
    if allowed.contains(&rcn) {
        Ok(rcn)
    } else {
        Err(Error::bad_request(format!(
            "rcn {rcn} is not supported for {op}; use one of {allowed:?}"
        )))
    }
}

/// Counts a request in [`Cse::in_flight`] until it ends, however it ends; and holds its
/// place among the request identifiers in progress, if it took one.
struct InFlight {
    count: Arc<AtomicUsize>,
    id: Option<(Arc<RequestIds>, u64)>,
}

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight {
            count: count.clone(),
            id: None,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
        if let Some((ids, id)) = self.id.take() {
            crate::sync::lock(&ids.0).remove(&id);
        }
    }
}

/// The (originator, `rqi`) pairs of the requests in progress, hashed: TS-0001 makes a request
/// identifier unique per originator, so a second request with the same pair while the first
/// is in progress (a retransmission, or a client that reuses identifiers) is refused instead
/// of being done twice.
#[derive(Default)]
pub(super) struct RequestIds(
    std::sync::Mutex<std::collections::HashSet<u64>>,
    std::hash::RandomState,
);

impl RequestIds {
    /// Takes `(originator, rqi)` for `guard`'s request; false if it is taken already.
    fn take(self: &Arc<Self>, originator: &str, rqi: &str, guard: &mut InFlight) -> bool {
        use std::hash::BuildHasher;
        let id = self.1.hash_one((originator, rqi));
        if !crate::sync::lock(&self.0).insert(id) {
            return false;
        }
        guard.id = Some((self.clone(), id));
        true
    }
}
