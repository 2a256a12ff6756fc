//! Admission control: how many requests the link holds (queued or in progress) at once, in
//! all and per originator. A request beyond either limit is answered busy (5000) at once
//! instead of being held, so that one device cannot take the whole budget and stall everyone
//! else, and the link never stops reading: its input also carries the answers the CSE itself
//! waits for.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests queued or being handled at once, in all.
const MAX_PENDING: usize = 1024;
/// Requests one originator may have queued or in progress.
pub const PER_ORIGINATOR: usize = 256;

/// The link's budget of requests.
pub struct Admission {
    budget: Arc<Semaphore>,
}

/// One originator's share of the budget.
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
    _own: OwnedSemaphorePermit,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            budget: Arc::new(Semaphore::new(MAX_PENDING)),
        }
    }
}

impl Admission {
    /// Admits one request of the originator with `allowance`, or says why not: that
    /// originator, or everyone together, has too many in progress. Never waits.
    pub fn admit(&self, allowance: &Allowance) -> Result<Admitted, &'static str> {
        let own = allowance
            .0
            .clone()
            .try_acquire_owned()
            .map_err(|_| "too many requests of this originator are in progress")?;
        let all = self
            .budget
            .clone()
            .try_acquire_owned()
            .map_err(|_| "too many requests are in progress")?;
        Ok(Admitted {
            _all: all,
            _own: own,
        })
    }

    /// Requests admitted and not yet answered.
    pub fn held(&self) -> usize {
        MAX_PENDING - self.budget.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_originator_cannot_take_the_whole_budget() {
        let admission = Admission::default();
        let greedy = Allowance::default();
        let held: Vec<_> = std::iter::from_fn(|| admission.admit(&greedy).ok()).collect();
        assert_eq!(held.len(), PER_ORIGINATOR);
        assert_eq!(admission.held(), PER_ORIGINATOR);
        assert!(admission.admit(&Allowance::default()).is_ok());
        drop(held);
        assert_eq!(
            admission.held(),
            0,
            "answered requests give their place back"
        );
    }

    #[test]
    fn the_budget_bounds_everyone_together() {
        let admission = Admission::default();
        let mut held = Vec::new();
        for _ in 0..MAX_PENDING / PER_ORIGINATOR {
            let a = Allowance::default();
            held.extend(std::iter::from_fn(|| admission.admit(&a).ok()));
        }
        assert_eq!(admission.held(), MAX_PENDING);
        assert_eq!(
            admission.admit(&Allowance::default()).err(),
            Some("too many requests are in progress")
        );
    }
}
