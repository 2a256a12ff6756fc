//! Locking shared state.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking it over if a thread panicked while holding it. Every mutex in m2mhub
/// guards a map, a queue or a handle that a panic cannot leave half-changed, so carrying on
/// beats spreading the panic to every later user (a request handler's panic must not take
/// the broker's link or the store down with it).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
