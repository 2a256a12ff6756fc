//! Log lines for events a client can cause by the thousand (a refused connection, a dropped
//! notification): the first is logged, then at most one a minute, with how many were not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often a throttled event is logged at most.
const EVERY: Duration = Duration::from_secs(60);

/// One kind of event. Make it a `static`.
pub struct Throttle {
    /// Milliseconds since [`epoch`] at which the next line may be written.
    next_ms: AtomicU64,
    /// Events since the last line.
    quiet: AtomicU64,
    /// Events in all (for metrics).
    total: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Throttle {
    pub const fn new() -> Throttle {
        Throttle {
            next_ms: AtomicU64::new(0),
            quiet: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    /// Counts one event. Returns `Some(n)` when it should be logged, `n` being the events not
    /// logged since the last line.
    pub fn hit(&self) -> Option<u64> {
        self.total.fetch_add(1, Ordering::Relaxed);
        let now = epoch().elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + EVERY.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.quiet.swap(0, Ordering::Relaxed));
        }
        self.quiet.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Events counted since the start.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_then_the_rest_are_counted() {
        let t = Throttle::new();
        assert_eq!(t.hit(), Some(0));
        for _ in 0..5 {
            assert_eq!(t.hit(), None);
        }
        assert_eq!(t.total(), 6);
        // A minute later the next line says how many were not logged.
        t.next_ms.store(0, Ordering::Relaxed);
        assert_eq!(t.hit(), Some(5));
    }
}
