//! The CSE: one dispatcher from request primitive to response primitive, whatever transport
//! the request came on. Validation and access control happen here; each resource type has its
//! module under [`resources`]; [`expiry`] removes resources whose `et` has passed.

mod access;
mod attributes;
mod bootstrap;
mod discovery;
pub mod expiry;
mod resources;

use crate::config::{Config, CseKind};
use crate::onem2m::address::{self, parse_target};
use crate::onem2m::primitive::SUPPORTED_RELEASES;
use crate::onem2m::{
    Base, CseIdentity, Error, Operation, RequestPrimitive, ResourceType, ResponsePrimitive,
    ResponseType, Rsc, Target,
};
use crate::store::{Store, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;
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
}

#[derive(Clone)]
pub struct Cse {
    rules: Arc<Rules>,
    store: Store,
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
        };
        bootstrap::ensure_cse_base(&store, &rules)?;
        Ok(Cse {
            rules: Arc::new(rules),
            store,
        })
    }

    pub fn identity(&self) -> &CseIdentity {
        &self.rules.me
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handles one request. Blocking (it waits for the store): call it from a blocking thread.
    /// Returns `None` when the request asked for no response (`rt` = 5).
    pub fn handle(&self, req: &RequestPrimitive) -> Option<ResponsePrimitive> {
        let started = Instant::now();
        let rsp = match self.process(req) {
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

    fn process(&self, req: &RequestPrimitive) -> Result<Success, Error> {
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
        let registering =
            req.op == Operation::Create && req.ty == Some(ResourceType::Ae.code() as u64);
        let originator = match req.fr.as_deref() {
            Some(fr) if !fr.is_empty() => address::originator_to_local(fr, &self.rules.me),
            _ if registering => String::new(),
            _ => return Err(Error::bad_request("missing originator (fr)")),
        };
        let (base, virt) = match parse_target(&req.to, &self.rules.me)? {
            Target::Local { base, virt } => (base, virt),
            Target::Remote { csi } => {
                return Err(Error::new(
                    Rsc::TARGET_NOT_REACHABLE,
                    format!("'{}' is on CSE {csi}, which this CSE does not know", req.to),
                ))
            }
        };
        if let Some(filter) = discovery {
            return self.discover(req, &originator, &base, virt, &filter);
        }
        match req.op {
            Operation::Create => self.create(req, originator, base, virt),
            Operation::Retrieve => self.retrieve(req, &originator, &base, virt),
            Operation::Update => self.update(req, originator, base, virt),
            Operation::Delete => self.delete(req, originator, base, virt),
            Operation::Notify => Err(Error::not_allowed(
                "this CSE does not accept NOTIFY requests for its resources",
            )),
        }
    }

    fn create(
        &self,
        req: &RequestPrimitive,
        originator: String,
        parent: Base,
        virt: Option<address::Virtual>,
    ) -> Result<Success, Error> {
        let ty = match req.ty {
            None => return Err(Error::bad_request("missing ty in CREATE request")),
            Some(ty) => u16::try_from(ty)
                .ok()
                .and_then(ResourceType::from_u16)
                .ok_or_else(|| {
                    Error::bad_request(format!("resource type {ty} is not supported"))
                })?,
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
        let rules = self.rules.clone();
        let requested_id = req.fr.clone();
        let created = self.store.write(move |w| {
            resources::create(
                w,
                &rules,
                &originator,
                requested_id.as_deref(),
                &parent,
                ty,
                attrs,
            )
        })?;
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
                let children = r.children(&target.ri, resources::MAX_CHILDREN_IN_RESPONSE)?;
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

    fn update(
        &self,
        req: &RequestPrimitive,
        originator: String,
        base: Base,
        virt: Option<address::Virtual>,
    ) -> Result<Success, Error> {
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
        let updated = self
            .store
            .write(move |w| resources::update(w, &rules, &originator, &base, &to, pc))?;
        Ok(Success {
            rsc: Rsc::UPDATED,
            pc: (rcn == 1).then(|| updated.to_pc()),
        })
    }

    fn delete(
        &self,
        req: &RequestPrimitive,
        originator: String,
        base: Base,
        virt: Option<address::Virtual>,
    ) -> Result<Success, Error> {
        let rcn = result_content(req.rcn, 0, &[0, 1], "DELETE")?;
        let rules = self.rules.clone();
        let to = req.to.clone();
        let deleted = self.store.write(move |w| {
            let target = resources::resolve(w, &base, virt, &to)?;
            access::check(&rules, &originator, Operation::Delete, &target)?;
            if target.ty == ResourceType::CseBase {
                return Err(Error::not_allowed("the CSEBase cannot be deleted"));
            }
            resources::delete(w, &target)?;
            Ok::<_, Error>(target)
        })?;
        Ok(Success {
            rsc: Rsc::DELETED,
            pc: (rcn == 1).then(|| deleted.to_pc()),
        })
    }
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
