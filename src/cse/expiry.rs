//! Removes resources whose expiration time (`et`) has passed.

use super::{resources, Cse};
use crate::onem2m::{time, Error};
use std::time::Duration;

/// Resources removed per sweep at most; the next sweep goes on.
const BATCH: usize = 256;

/// Deletes what has expired by now; returns how many resources went (subtrees count once).
pub fn sweep(cse: &Cse) -> Result<usize, Error> {
    let now = time::now();
    let due = cse.store.read(|r| r.expired(&now, BATCH))?;
    if due.is_empty() {
        return Ok(0);
    }
    let rules = cse.rules.clone();
    let (n, notices) = cse.store.write(move |w| {
        let mut n = 0;
        let mut out = Vec::new();
        for ri in due {
            // An earlier deletion in this batch may have taken it with its parent.
            if let Some(res) = w.get(&ri)? {
                if res.et().is_some_and(|et| et <= now.as_str()) {
                    resources::delete(w, &rules, &res, &mut out)?;
                    n += 1;
                }
            }
        }
        Ok::<_, Error>((n, out))
    })?;
    cse.dispatch(notices);
    Ok(n)
}

/// Sweeps once a second on a thread of its own for as long as the process runs.
pub fn spawn(cse: Cse) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("m2mhub-expiry".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            if cse.is_stopping() {
                return;
            }
            match sweep(&cse) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(count = n, "expired resources removed"),
                Err(e) => tracing::error!(error = %e, "expiry sweep failed"),
            }
        })
        .map(|_| ())
}
