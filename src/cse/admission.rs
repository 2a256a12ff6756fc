//! Admission control, for both bindings: how many requests the CSE holds (queued or in
//! progress) at once, in all, per credential, and (over MQTT, where each originator's
//! requests are ordered) per originator. A request beyond any of these is answered busy
//! (5000) at once instead of being held, with the budget that ran out in `dbg`, so that one
//! client cannot take the whole budget and stall everyone else.
//!
//! A credential's budget covers every originator it acts as (the AEs it registered, the
//! remote CSE it is), whichever binding and however many connections it uses. Anonymous
//! clients (on loopback, or from a network declared trusted) share the global budget, bounded
//! per originator over MQTT and per connection over HTTP (one request at a time each, at most
//! `http.max_connections`).

use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests queued or being handled at once, in all.
pub const MAX_PENDING: usize = 1024;
/// Requests one credential may have queued or in progress.
pub const PER_CREDENTIAL: usize = 256;
/// Requests one originator may have queued or in progress over MQTT.
pub const PER_ORIGINATOR: usize = 256;

/// The CSE's budget of requests.
pub struct Admission {
    all: Arc<Semaphore>,
    /// By credential; as many as the password file and the site CA allow.
    credentials: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// One originator's share of the budget (kept by the MQTT binding with its queue).
#[derive(Clone)]
pub struct Allowance(Arc<Semaphore>);

impl Default for Allowance {
    fn default() -> Self {
        Allowance(Arc::new(Semaphore::new(PER_ORIGINATOR)))
    }
}

/// A request's place in the budget, given back when it is dropped (once answered).
pub struct Admitted {
    _all: OwnedSemaphorePermit,
    _credential: Option<OwnedSemaphorePermit>,
    _originator: Option<OwnedSemaphorePermit>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            all: Arc::new(Semaphore::new(MAX_PENDING)),
            credentials: Mutex::new(HashMap::new()),
        }
    }
}

impl Admission {
    /// Admits one request of `credential` (if the client has one) and of the originator with
    /// `allowance` (over MQTT), or says which budget ran out. Never waits.
    pub fn admit(
        &self,
        credential: Option<&str>,
        allowance: Option<&Allowance>,
    ) -> Result<Admitted, &'static str> {
        let originator = allowance
            .map(|a| a.0.clone().try_acquire_owned())
            .transpose()
            .map_err(|_| "too many requests of this originator are in progress")?;
        let credential = credential
            .map(|c| {
                let share = lock(&self.credentials)
                    .entry(c.to_string())
                    .or_insert_with(|| Arc::new(Semaphore::new(PER_CREDENTIAL)))
                    .clone();
                share.try_acquire_owned()
            })
            .transpose()
            .map_err(|_| "too many requests of this credential are in progress")?;
        let all = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| "too many requests are in progress")?;
        Ok(Admitted {
            _all: all,
            _credential: credential,
            _originator: originator,
        })
    }

    /// Requests admitted and not yet answered.
    pub fn held(&self) -> usize {
        MAX_PENDING - self.all.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_originator_cannot_take_the_whole_budget() {
        let admission = Admission::default();
        let greedy = Allowance::default();
        let held: Vec<_> =
            std::iter::from_fn(|| admission.admit(None, Some(&greedy)).ok()).collect();
        assert_eq!(held.len(), PER_ORIGINATOR);
        assert_eq!(admission.held(), PER_ORIGINATOR);
        assert!(admission.admit(None, Some(&Allowance::default())).is_ok());
        drop(held);
        assert_eq!(
            admission.held(),
            0,
            "answered requests give their place back"
        );
    }

    #[test]
    fn a_credential_has_one_share_whatever_originators_it_uses() {
        let admission = Admission::default();
        let mut held = Vec::new();
        for _ in 0..4 {
            let level = Allowance::default();
            held.extend(std::iter::from_fn(|| {
                admission.admit(Some("greedy"), Some(&level)).ok()
            }));
        }
        assert_eq!(held.len(), PER_CREDENTIAL);
        assert_eq!(
            admission.admit(Some("greedy"), None).err(),
            Some("too many requests of this credential are in progress")
        );
        // Others still get in.
        assert!(admission.admit(Some("bystander"), None).is_ok());
        assert!(admission.admit(None, Some(&Allowance::default())).is_ok());
    }

    #[test]
    fn the_budget_bounds_everyone_together() {
        let admission = Admission::default();
        let mut held = Vec::new();
        for _ in 0..MAX_PENDING / PER_ORIGINATOR {
            let a = Allowance::default();
            held.extend(std::iter::from_fn(|| admission.admit(None, Some(&a)).ok()));
        }
        assert_eq!(admission.held(), MAX_PENDING);
        assert_eq!(
            admission.admit(None, Some(&Allowance::default())).err(),
            Some("too many requests are in progress")
        );
    }
}
