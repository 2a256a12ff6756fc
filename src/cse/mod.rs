//! The CSE: one dispatcher from request primitive to response primitive, whatever transport
//! the request came on. Validation and access control happen here; each resource type has its
//! module under [`resources`]; [`expiry`] removes resources whose `et` has passed.

mod access;
mod attributes;
mod bootstrap;
mod discovery;
pub mod expiry;
pub mod notify;
mod resources;

use crate::config::{Config, CseKind};
use crate::onem2m::address::{self, parse_target};
use crate::onem2m::primitive::{too_long, SUPPORTED_RELEASES};
use crate::onem2m::{
    Base, CseIdentity, Error, Operation, RequestPrimitive, ResourceType, ResponsePrimitive,
    ResponseType, Rsc, Target,
};
use crate::store::{Store, StoreError, Submitted};
use notify::{string_list, Delivery, Notice};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(rn) => {
                Error::conflict(format!("a resource named '{rn}' already exists there"))
            }
            other => {
                tracing::error!(error = %other, "store failure");
                Error::internal(format!("storage failure: {other}"))
            }
        }
    }
}

/// What every part of request handling needs to know about this CSE.
#[derive(Debug, Clone)]
pub struct Rules {
    pub me: CseIdentity,
    pub kind: CseKind,
    /// The originator that may do everything.
    pub admin: String,
    /// The CSE-ID (with its slash) of our registrar, if we register with one: requests for
    /// CSEs we do not know go there.
    pub registrar: Option<String>,
}

#[derive(Clone)]
pub struct Cse {
    rules: Arc<Rules>,
    store: Store,
    /// How notifications leave; set once the bindings are up.
    delivery: Arc<OnceLock<Arc<dyn Delivery>>>,
    /// Requests being handled right now.
    in_flight: Arc<AtomicUsize>,
    /// Set when the appliance shuts down; background work ends.
    stopping: Arc<AtomicBool>,
}

/// The outcome of a request that succeeded.
struct Success {
    rsc: Rsc,
    pc: Option<Value>,
}

impl Cse {
    /// Opens the CSE on `store`, creating the CSEBase on first start and refusing a database
    /// that belongs to another CSE.
    pub fn open(config: &Config, store: Store) -> Result<Cse, Error> {
        let rules = Rules {
            me: CseIdentity {
                csi: format!("/{}", config.cse.id),
                rn: config.cse.name.clone(),
                sp_id: config.cse.sp_id.clone(),
            },
            kind: config.cse.kind,
            admin: config.cse.admin.clone(),
            registrar: config.remote_cse.first().map(|r| format!("/{}", r.cse_id)),
        };
        bootstrap::ensure_cse_base(&store, &rules)?;
        Ok(Cse {
            rules: Arc::new(rules),
            store,
            delivery: Arc::new(OnceLock::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            stopping: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Our CSEBase's address, `/id-mn/cse-mn`.
    pub fn cse_base_address(&self) -> String {
        format!("{}/{}", self.rules.me.csi, self.rules.me.rn)
    }

    pub fn kind(&self) -> CseKind {
        self.rules.kind
    }

    /// Creates or refreshes the local `<remoteCSE>` that stands for our registrar, from what
    /// its CSEBase says (`cb`, `cst`, `srv`) and how we reach it (`poa`).
    pub fn mirror_registrar(
        &self,
        csi: &str,
        cb: &str,
        poa: &[String],
        from: &serde_json::Map<String, Value>,
    ) -> Result<(), Error> {
        let me = self.rules.me.clone();
        let (csi, cb, poa, from) = (csi.to_string(), cb.to_string(), poa.to_vec(), from.clone());
        self.store.write(move |w| {
            let id = csi.trim_start_matches('/').to_string();
            let now = crate::onem2m::time::now();
            let mut res = match w.get(&id)? {
                Some(r) if r.ty == ResourceType::RemoteCse => r,
                Some(r) => {
                    return Err(Error::conflict(format!(
                        "resource {id} is a {}, not the registrar's remoteCSE",
                        r.ty.root_name()
                    )))
                }
                None => {
                    let mut attrs = serde_json::Map::new();
                    for (k, v) in [
                        ("ty", json!(ResourceType::RemoteCse.code())),
                        ("ri", json!(id)),
                        ("rn", json!(id)),
                        ("pi", json!(me.id())),
                        ("ct", json!(now)),
                    ] {
                        attrs.insert(k.into(), v);
                    }
                    let res = crate::store::Resource {
                        ty: ResourceType::RemoteCse,
                        ri: id.clone(),
                        pi: me.id().to_string(),
                        rn: id.clone(),
                        srn: format!("{}/{id}", me.rn),
                        owner: csi.clone(),
                        attrs,
                    };
                    w.insert(&res)?;
                    res
                }
            };
            let a = &mut res.attrs;
            a.insert("csi".into(), json!(csi));
            a.insert("cb".into(), json!(cb));
            a.insert("poa".into(), json!(poa));
            a.insert("rr".into(), json!(true));
            a.insert("lt".into(), json!(now));
            for k in ["cst", "srv", "csz"] {
                if let Some(v) = from.get(k) {
                    a.insert(k.into(), v.clone());
                }
            }
            w.update(&res)?;
            Ok(())
        })
    }

    /// Requests being handled right now (graceful shutdown waits for none).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Tells background work (expiry) to end.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Installs how notifications are sent; the first call wins.
    pub fn set_delivery(&self, delivery: Arc<dyn Delivery>) {
        let _ = self.delivery.set(delivery);
    }

    /// Resolves each notice's targets and queues the notifications. Never blocks on delivery.
    fn dispatch(&self, notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        let Some(delivery) = self.delivery.get() else {
            tracing::warn!(
                count = notices.len(),
                "notifications dropped: no delivery is running"
            );
            return;
        };
        for notice in notices {
            for nu in &notice.targets {
                let target = self.store.read(|r| {
                    Ok::<_, StoreError>(notify::resolve_target(r, &self.rules, nu, &notice.owner))
                });
                match target {
                    Ok(Ok(target)) => delivery
                        .enqueue(target, notify::request(&self.rules, nu, notice.pc.clone())),
                    Ok(Err(why)) => tracing::warn!(%nu, %why, "cannot deliver a notification"),
                    Err(e) => {
                        tracing::error!(%nu, error = %e, "cannot resolve a notification target")
                    }
                }
            }
        }
    }

    /// Sends a verification request to every target in `nus` that is not the subscriber
    /// itself; any answer other than 2000 fails the request with 5204 (digest §7.1).
    fn verify(&self, originator: &str, sub_ri: &str, nus: &[String]) -> Result<(), Error> {
        let fail = |nu: &str, why: String| {
            Error::new(
                Rsc::SUBSCRIPTION_VERIFICATION_INITIATION_FAILED,
                format!("verification of notification target '{nu}' failed: {why}"),
            )
        };
        for nu in nus {
            if !originator.is_empty()
                && address::originator_to_local(nu, &self.rules.me) == originator
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
                Ok::<_, StoreError>(Some(notify::resolve_target(r, &self.rules, nu, originator)))
            })?;
            let target = match target {
                None => continue,
                Some(t) => t.map_err(|why| fail(nu, why))?,
            };
            let delivery = self
                .delivery
                .get()
                .ok_or_else(|| fail(nu, "no notification delivery is running".into()))?;
            let mut sgn = json!({ "vrq": true, "sur": notify::sur(&self.rules, sub_ri) });
            if !originator.is_empty() {
                sgn["cr"] = json!(originator);
            }
            let req = notify::request(&self.rules, nu, json!({ "m2m:sgn": sgn }));
            match delivery.request(&target, req) {
                Ok(rsp) if rsp.rsc == Rsc::OK => {}
                Ok(rsp) => return Err(fail(nu, format!("the target answered {}", rsp.rsc))),
                Err(why) => return Err(fail(nu, why)),
            }
        }
        Ok(())
    }

    pub fn identity(&self) -> &CseIdentity {
        &self.rules.me
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Takes a request as far as it goes without waiting: an answer (a request refused by the
    /// checks, which need no I/O), a write for the store (creates, updates and deletes, the hot
    /// path), or the rest, which must run on a blocking thread (reads, discovery, forwarding,
    /// and subscriptions, whose verification calls out). Never blocks.
    ///
    /// Writes reach the store in the order they are [submitted](Write::submit), so a binding
    /// that submits in arrival order keeps one originator's writes in order without waiting for
    /// their commits.
    pub fn begin(&self, req: RequestPrimitive) -> Begun {
        let guard = InFlight::enter(&self.in_flight);
        let started = Instant::now();
        let planned = self
            .check(&req)
            .and_then(|checked| self.plan_write(&req, checked));
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
            Ok(ok) => ResponsePrimitive::new(ok.rsc, &req.rqi, req.rvi.clone(), ok.pc),
            Err(e) => {
                if e.rsc == Rsc::INTERNAL_SERVER_ERROR {
                    tracing::error!(rqi = %req.rqi, to = %req.to, dbg = %e.dbg, "request failed");
                } else {
                    tracing::warn!(op = ?req.op, to = %req.to, fr = ?req.fr, rqi = %req.rqi,
                        rsc = e.rsc.code(), dbg = %e.dbg, "request rejected");
                }
                ResponsePrimitive::error(&e, &req.rqi, req.rvi.clone())
            }
        };
        tracing::debug!(op = ?req.op, to = %req.to, fr = ?req.fr, rqi = %req.rqi,
            rsc = rsp.rsc.code(), us = started.elapsed().as_micros() as u64, "request");
        (req.rt != ResponseType::NoResponse).then_some(rsp)
    }

    /// The checks every request passes before anything is read: release, response type,
    /// originator, filter criteria, and where the target is.
    fn check(&self, req: &RequestPrimitive) -> Result<Checked, Error> {
        if let Some(rvi) = &req.rvi {
            if !SUPPORTED_RELEASES.contains(&rvi.as_str()) {
                return Err(Error::new(
                    Rsc::RELEASE_VERSION_NOT_SUPPORTED,
                    format!("release version '{rvi}' is not supported; use one of {SUPPORTED_RELEASES:?}"),
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
            Some(fr) if !fr.is_empty() => address::originator_to_local(fr, &self.rules.me),
            _ if registering => String::new(),
            _ => return Err(Error::bad_request("missing originator (fr)")),
        };
        let route = match parse_target(&req.to, &self.rules.me)? {
            Target::Remote { csi } => Route::Remote(csi),
            Target::Local { base, virt } => match discovery {
                Some(filter) => Route::Discover { base, virt, filter },
                None => Route::Local { base, virt },
            },
        };
        Ok(Checked { originator, route })
    }

    /// A plain create, update or delete becomes a write for the store; the rest goes on to
    /// the blocking path.
    fn plan_write(&self, req: &RequestPrimitive, checked: Checked) -> Result<Plan, Error> {
        let Checked { originator, route } = checked;
        let Route::Local { base, virt } = route else {
            return Ok(Plan::Blocking(Box::new(Checked { originator, route })));
        };
        // Subscriptions verify their targets (they call out) before they are written.
        let needs_blocking = match req.op {
            Operation::Create => req.ty == Some(ResourceType::Subscription.code() as u64),
            Operation::Update => req.pc.as_ref().and_then(|pc| pc.get("m2m:sub")).is_some(),
            Operation::Delete => false,
            Operation::Retrieve | Operation::Notify => true,
        };
        if needs_blocking {
            return Ok(Plan::Blocking(Box::new(Checked {
                originator,
                route: Route::Local { base, virt },
            })));
        }
        Ok(Plan::Write(match req.op {
            Operation::Create => {
                let (ty, rcn, attrs) = create_content(req, virt)?;
                self.create_write(req, originator, base, ty, rcn, attrs, None)
            }
            Operation::Update => self.update_write(req, originator, base, virt)?,
            _ => self.delete_write(req, originator, base, virt)?,
        }))
    }

    /// Requests that read, call out, or verify before they write. Blocking.
    fn process_blocking(&self, req: &RequestPrimitive, checked: Checked) -> Result<Success, Error> {
        let Checked { originator, route } = checked;
        let (base, virt) = match route {
            Route::Remote(csi) => return self.forward(req, &originator, &csi),
            Route::Discover { base, virt, filter } => {
                return self.discover(req, &originator, &base, virt, &filter)
            }
            Route::Local { base, virt } => (base, virt),
        };
        match req.op {
            Operation::Create => {
                let (ty, rcn, attrs) = create_content(req, virt)?;
                let mut preset_ri = None;
                if ty == ResourceType::Subscription {
                    // Only someone allowed to subscribe there makes this CSE call out to
                    // verify.
                    let target = self
                        .store
                        .read(|r| resources::resolve(r, &base, None, &req.to))?;
                    access::check(&self.rules, &originator, Operation::Create, &target)?;
                    let ri = format!("sub{:012x}", rand::random::<u64>() >> 16);
                    self.verify(&originator, &ri, &string_list(attrs.get("nu")))?;
                    preset_ri = Some(ri);
                }
                self.write(self.create_write(req, originator, base, ty, rcn, attrs, preset_ri))
            }
            Operation::Retrieve => self.retrieve(req, &originator, &base, virt),
            Operation::Update => {
                // New notification targets of a subscription are verified before they are
                // stored.
                if let Some(new_nus) = req
                    .pc
                    .as_ref()
                    .and_then(|pc| pc.get("m2m:sub"))
                    .and_then(|s| s.get("nu"))
                {
                    let current = self
                        .store
                        .read(|r| resources::resolve(r, &base, None, &req.to))?;
                    if current.ty == ResourceType::Subscription {
                        access::check(&self.rules, &originator, Operation::Update, &current)?;
                        let old = string_list(current.attrs.get("nu"));
                        let added: Vec<String> = string_list(Some(new_nus))
                            .into_iter()
                            .filter(|n| !old.contains(n))
                            .collect();
                        self.verify(&originator, &current.ri, &added)?;
                    }
                }
                self.write(self.update_write(req, originator, base, virt)?)
            }
            Operation::Delete => self.write(self.delete_write(req, originator, base, virt)?),
            Operation::Notify => self.notify_entity(req, &base, virt),
        }
    }

    /// Runs a write, waits for its commit, then sends the notifications it caused. Blocking.
    fn write(&self, f: WriteFn) -> Result<Success, Error> {
        self.committed(self.submit_write(f).wait())
    }

    /// A request for a resource on another CSE goes on to it (or towards it, through our
    /// registrar), with the originator in SP-relative form (TS-0004 §7.3.2.6); its answer comes
    /// back as it is. The hosting CSE does the access control.
    fn forward(
        &self,
        req: &RequestPrimitive,
        originator: &str,
        csi: &str,
    ) -> Result<Success, Error> {
        let hop = self.store.read(|r| notify::next_hop(r, &self.rules, csi))?;
        let mut fwd = req.clone();
        fwd.fr = Some(if originator.is_empty() || originator.starts_with('/') {
            originator.to_string()
        } else {
            format!("{}/{originator}", self.rules.me.csi)
        });
        fwd.rt = ResponseType::Blocking;
        self.relay(&hop, fwd, "fwd", &format!("CSE {csi}"))
    }

    /// A NOTIFY for one of our AEs (typically forwarded by another CSE) goes on to the AE's
    /// point of access; the AE's answer is the answer.
    fn notify_entity(
        &self,
        req: &RequestPrimitive,
        base: &Base,
        virt: Option<address::Virtual>,
    ) -> Result<Success, Error> {
        let ae = self
            .store
            .read(|r| resources::resolve(r, base, virt, &req.to))?;
        if ae.ty != ResourceType::Ae {
            return Err(Error::not_allowed(format!(
                "NOTIFY goes to an AE; {} is a {}",
                req.to,
                ae.ty.root_name()
            )));
        }
        let target = self
            .store
            .read(|r| Ok::<_, StoreError>(notify::resolve_target(r, &self.rules, &ae.ri, &ae.ri)))?
            .map_err(|why| Error::new(Rsc::TARGET_NOT_REACHABLE, why))?;
        let mut fwd = req.clone();
        fwd.to = ae.ri.clone();
        self.relay(&target, fwd, "notify", &format!("AE {}", ae.ri))
    }

    /// Sends a request on to another entity and passes its answer back.
    fn relay(
        &self,
        target: &notify::Target,
        mut req: RequestPrimitive,
        kind: &str,
        who: &str,
    ) -> Result<Success, Error> {
        let delivery = self.delivery.get().ok_or_else(|| {
            Error::new(
                Rsc::TARGET_NOT_REACHABLE,
                "no transport to other entities is running",
            )
        })?;
        // Our own request identifier on the way on: originators' rqis need not be unique across
        // originators, and answers are matched by rqi. Our answer keeps the originator's rqi.
        req.rqi = notify::fresh_rqi(kind);
        let rsp = delivery.request(target, req).map_err(|why| {
            Error::new(
                Rsc::TARGET_NOT_REACHABLE,
                format!("{who} did not answer: {why}"),
            )
        })?;
        Ok(Success {
            rsc: rsp.rsc,
            pc: rsp.pc,
        })
    }

    /// The write that creates the resource, with the answer `rcn` asks for.
    #[allow(clippy::too_many_arguments)]
    fn create_write(
        &self,
        req: &RequestPrimitive,
        originator: String,
        parent: Base,
        ty: ResourceType,
        rcn: u64,
        attrs: serde_json::Map<String, Value>,
        preset_ri: Option<String>,
    ) -> WriteFn {
        let rules = self.rules.clone();
        let new = resources::NewResource {
            ty,
            attrs,
            requested_id: req.fr.clone(),
            ri: preset_ri,
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
            })
        })
    }

    fn retrieve(
        &self,
        req: &RequestPrimitive,
        originator: &str,
        base: &Base,
        virt: Option<address::Virtual>,
    ) -> Result<Success, Error> {
        let rcn = result_content(req.rcn, 1, &[1, 4], "RETRIEVE")?;
        let pc = self.store.read(|r| -> Result<Value, Error> {
            let target = resources::resolve(r, base, virt, &req.to)?;
            access::check(&self.rules, originator, Operation::Retrieve, &target)?;
            if rcn == 4 {
                // Only the children the originator may read (the CSEBase is readable by all).
                let children: Vec<_> = r
                    .children(&target.ri, resources::MAX_CHILDREN_IN_RESPONSE)?
                    .into_iter()
                    .filter(|c| {
                        access::check(&self.rules, originator, Operation::Retrieve, c).is_ok()
                    })
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

    fn discover(
        &self,
        req: &RequestPrimitive,
        originator: &str,
        base: &Base,
        virt: Option<address::Virtual>,
        filter: &discovery::Filter,
    ) -> Result<Success, Error> {
        if virt.is_some() {
            return Err(Error::bad_request(
                "discovery under la or ol is not possible",
            ));
        }
        result_content(req.rcn, 11, &[11], "discovery")?;
        let drt = match req.drt.unwrap_or(1) {
            d @ (1 | 2) => d,
            d => {
                return Err(Error::bad_request(format!(
                    "drt {d} is not 1 (structured) or 2 (unstructured)"
                )))
            }
        };
        let pc = self.store.read(|r| {
            discovery::discover(r, &self.rules, originator, base, &req.to, filter, drt)
        })?;
        Ok(Success {
            rsc: Rsc::OK,
            pc: Some(pc),
        })
    }

    fn update_write(
        &self,
        req: &RequestPrimitive,
        originator: String,
        base: Base,
        virt: Option<address::Virtual>,
    ) -> Result<WriteFn, Error> {
        if virt.is_some() {
            return Err(Error::not_allowed("la and ol cannot be updated"));
        }
        let rcn = result_content(req.rcn, 1, &[0, 1], "UPDATE")?;
        let pc = req
            .pc
            .clone()
            .ok_or_else(|| Error::bad_request("an UPDATE needs content (pc)"))?;
        let rules = self.rules.clone();
        let to = req.to.clone();
        Ok(Box::new(move |w, out| {
            let updated = resources::update(w, &rules, &originator, &base, &to, pc, out)?;
            Ok(Success {
                rsc: Rsc::UPDATED,
                pc: (rcn == 1).then(|| updated.to_pc()),
            })
        }))
    }

    fn delete_write(
        &self,
        req: &RequestPrimitive,
        originator: String,
        base: Base,
        virt: Option<address::Virtual>,
    ) -> Result<WriteFn, Error> {
        let rcn = result_content(req.rcn, 0, &[0, 1], "DELETE")?;
        let rules = self.rules.clone();
        let to = req.to.clone();
        Ok(Box::new(move |w, out| {
            let target = resources::resolve(w, &base, virt, &to)?;
            access::check(&rules, &originator, Operation::Delete, &target)?;
            if target.ty == ResourceType::CseBase {
                return Err(Error::not_allowed("the CSEBase cannot be deleted"));
            }
            resources::delete(w, &rules, &target, out)?;
            Ok(Success {
                rsc: Rsc::DELETED,
                pc: (rcn == 1).then(|| target.to_pc()),
            })
        }))
    }
}

/// The checks on a CREATE that need no I/O: the type, the answer asked for, and the content.
fn create_content(
    req: &RequestPrimitive,
    virt: Option<address::Virtual>,
) -> Result<(ResourceType, u64, serde_json::Map<String, Value>), Error> {
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
    let attrs = resources::content(req.pc.as_ref(), ty)?;
    attributes::validate(ty, attributes::Op::Create, &attrs)?;
    Ok((ty, rcn, attrs))
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
        let result = self.cse.process_blocking(&self.req, self.checked);
        self.cse.respond(&self.req, self.started, result)
    }
}

/// A write to run in the store's transaction; it collects the notices it causes.
type WriteFn = Box<
    dyn FnOnce(&crate::store::Writer, &mut Vec<Notice>) -> Result<Success, Error> + Send + 'static,
>;

enum Plan {
    Write(WriteFn),
    Blocking(Box<Checked>),
}

/// What the checks found: who asks, and where the request goes.
pub struct Checked {
    originator: String,
    route: Route,
}

enum Route {
    /// Another CSE's resource: forwarded.
    Remote(String),
    /// A discovery under a local resource.
    Discover {
        base: Base,
        virt: Option<address::Virtual>,
        filter: discovery::Filter,
    },
    Local {
        base: Base,
        virt: Option<address::Virtual>,
    },
}

/// Checks `rcn` against what this CSE supports for the operation.
fn result_content(rcn: Option<u64>, default: u64, allowed: &[u64], op: &str) -> Result<u64, Error> {
    let rcn = rcn.unwrap_or(default);
    if allowed.contains(&rcn) {
        Ok(rcn)
    } else {
        Err(Error::bad_request(format!(
            "rcn {rcn} is not supported for {op}; use one of {allowed:?}"
        )))
    }
}

/// Counts a request in [`Cse::in_flight`] until it ends, however it ends.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
