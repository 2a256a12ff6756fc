//! The CSE: one dispatcher from request primitive to response primitive, whatever transport
//! the request came on.
//!
//! * [`pipeline`]: the checks every request passes, the choice between a write and the
//!   blocking path, and the response ([`Cse::begin`]).
//! * [`access`]: the one access step every path goes through; [`policies`]: the access
//!   control policies it reads, kept in memory.
//! * [`ops`]: one module per operation (create, retrieve, update, delete, notify);
//!   [`discovery`] for RETRIEVE with `fu` 1.
//! * [`forward`]: requests for other CSEs, and the relay step they share with NOTIFY.
//! * [`notify`]: subscriptions at work, dispatching notifications, verifying targets;
//!   [`reach`]: where a target or another CSE is reached.
//! * [`resources`]: what is shared by every resource type, then one module per type, with
//!   [`attributes`] for their attribute tables.
//! * [`bootstrap`] (the CSEBase) and [`expiry`] (`et`).

mod access;
pub mod admission;
mod attributes;
mod bindings;
mod bootstrap;
mod discovery;
pub mod expiry;
mod forward;
pub mod notify;
mod ops;
mod pipeline;
mod policies;
pub mod reach;
mod resources;

pub use access::Originator;
pub use bindings::Bindings;
pub use pipeline::{Begun, Blocked, Checked, Origin, PendingWrite, Write};
pub use resources::remote_cse::Registrar;

use crate::config::{Config, CseKind};
use crate::onem2m::{CseIdentity, Error};
use crate::store::{Store, StoreError};
use notify::Delivery;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(rn) => {
                Error::conflict(format!("a resource named '{rn}' already exists there"))
            }
            StoreError::Busy => {
                Error::internal("the CSE is busy: too many writes are waiting; try again")
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
    /// Who may act as which originator.
    pub bindings: Arc<Bindings>,
    /// The access control policies, and which resources they govern.
    pub policies: Arc<policies::Policies>,
    /// Seconds ahead of its creation that a resource without `et` expires (0: never).
    pub default_lifetime_s: u64,
}

/// A handle on the CSE; cheap to clone.
#[derive(Clone)]
pub struct Cse {
    rules: Arc<Rules>,
    store: Store,
    /// How notifications and relayed requests leave; set once the bindings are up.
    delivery: Arc<OnceLock<Arc<dyn Delivery>>>,
    /// Requests being handled right now.
    in_flight: Arc<AtomicUsize>,
    /// Set when the appliance shuts down; background work ends.
    stopping: Arc<AtomicBool>,
    /// The budget of requests held at once, for both bindings.
    admission: Arc<admission::Admission>,
    /// Notices of committed writes, on their way to the notification thread.
    notices: flume::Sender<Vec<notify::Notice>>,
    /// The request identifiers in progress, per originator.
    request_ids: Arc<pipeline::RequestIds>,
}

impl Cse {
    /// Opens the CSE on `store`, creating the CSEBase on first start and refusing a database
    /// that belongs to another CSE.
    pub fn open(config: &Config, store: Store) -> Result<Cse, Error> {
        let me = CseIdentity {
            csi: format!("/{}", config.cse.id),
            rn: config.cse.name.clone(),
            sp_id: config.cse.sp_id.clone(),
        };
        bootstrap::ensure_cse_base(&store, &me, config.cse.kind)?;
        let (bindings, policies) = store.read(|r| {
            Ok::<_, StoreError>((
                Bindings::load(r, &me, &config.cse.admin)?,
                policies::Policies::load(r, &me)?,
            ))
        })?;
        let rules = Rules {
            me,
            kind: config.cse.kind,
            admin: config.cse.admin.clone(),
            registrar: config.remote_cse.first().map(|r| format!("/{}", r.cse_id)),
            bindings: Arc::new(bindings),
            policies: Arc::new(policies),
            default_lifetime_s: config.cse.default_lifetime_s,
        };
        let rules = Arc::new(rules);
        let delivery = Arc::new(OnceLock::new());
        let notices = notify::Notifier {
            store: store.clone(),
            rules: rules.clone(),
            delivery: delivery.clone(),
        }
        .spawn()
        .map_err(|e| Error::internal(format!("cannot start the notification thread: {e}")))?;
        Ok(Cse {
            rules,
            store,
            delivery,
            in_flight: Arc::new(AtomicUsize::new(0)),
            stopping: Arc::new(AtomicBool::new(false)),
            admission: Arc::default(),
            notices,
            request_ids: Arc::default(),
        })
    }

    pub fn identity(&self) -> &CseIdentity {
        &self.rules.me
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Who may act as which originator: the bindings ask this for every request and PUBLISH.
    pub fn bindings(&self) -> &Arc<Bindings> {
        &self.rules.bindings
    }

    /// Our CSEBase's address, `/id-mn/cse-mn`.
    pub fn cse_base_address(&self) -> String {
        format!("{}/{}", self.rules.me.csi, self.rules.me.rn)
    }

    pub fn kind(&self) -> CseKind {
        self.rules.kind
    }

    /// Creates or refreshes the local `<remoteCSE>` that stands for our registrar, from what
    /// its CSEBase says (`cb`, `cst`, `srv`) and how we reach it (`poa`). Waits for the
    /// commit without holding a thread.
    pub async fn mirror_registrar(&self, registrar: Registrar) -> Result<(), Error> {
        let me = self.rules.me.clone();
        self.store
            .submit(move |w| resources::remote_cse::mirror_registrar(w, &me, &registrar))
            .done()
            .await
    }

    /// The budget every binding takes a request's place from before handling it.
    pub fn admission(&self) -> &admission::Admission {
        &self.admission
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

    /// Installs how notifications and relayed requests are sent; the first call wins.
    pub fn set_delivery(&self, delivery: Arc<dyn Delivery>) {
        let _ = self.delivery.set(delivery);
    }

    fn delivery(&self) -> Option<&Arc<dyn Delivery>> {
        self.delivery.get()
    }
}
