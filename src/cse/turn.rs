//! Ordering the requests of one originator without serializing their commits.
//!
//! Each request of an originator gets a [`Turn`] in a chain. A write waits only until the
//! request before it has *submitted* its write (the writer applies writes in submission order),
//! then submits its own and lets the next one go, so a device that pipelines CREATEs gets
//! group commit. Anything that reads (or talks to the network) waits until the request before
//! it has *completed*, so it sees every earlier write of the same originator. A turn that is
//! dropped, whatever way the request ended, lets the next one go.

use std::sync::{Arc, Condvar, Mutex};

/// A one-way gate: closed until opened, then open for good.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    fn wait(&self) {
        let (lock, cv) = &*self.0;
        let mut open = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*open {
            open = cv.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn opened() -> Gate {
        let g = Gate::default();
        g.open();
        g
    }
}

/// Hands out the turns of one originator, in arrival order.
pub struct Sequence {
    last_submitted: Gate,
    last_completed: Gate,
}

impl Default for Sequence {
    fn default() -> Self {
        Sequence {
            last_submitted: Gate::opened(),
            last_completed: Gate::opened(),
        }
    }
}

impl Sequence {
    pub fn next_turn(&mut self) -> Turn {
        let turn = Turn {
            prev_submitted: self.last_submitted.clone(),
            prev_completed: self.last_completed.clone(),
            submitted: Gate::default(),
            completed: Gate::default(),
        };
        self.last_submitted = turn.submitted.clone();
        self.last_completed = turn.completed.clone();
        turn
    }
}

/// One request's place in its originator's order.
pub struct Turn {
    prev_submitted: Gate,
    prev_completed: Gate,
    submitted: Gate,
    completed: Gate,
}

impl Turn {
    /// Before a write: every earlier write of the originator is queued for the writer.
    pub fn before_write(&self) {
        self.prev_submitted.wait();
    }

    /// After queuing the write: the next request may go on.
    pub fn write_queued(&self) {
        self.submitted.open();
    }

    /// Before reading or calling out: every earlier request of the originator is done.
    pub fn before_read(&self) {
        self.prev_completed.wait();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Completion implies submission for whoever waits on either. A request completes only
        // after the one before it did, so the chain of completions stays in order.
        self.prev_completed.wait();
        self.submitted.open();
        self.completed.open();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn writes_are_queued_in_turn_order_even_when_started_out_of_order() {
        let mut seq = Sequence::default();
        let turns: Vec<Turn> = (0..5).map(|_| seq.next_turn()).collect();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        // Start them in reverse.
        for (i, turn) in turns.into_iter().enumerate().rev() {
            let order = order.clone();
            handles.push(std::thread::spawn(move || {
                turn.before_write();
                order.lock().unwrap().push(i);
                turn.write_queued();
                std::thread::sleep(Duration::from_millis(5));
            }));
            std::thread::sleep(Duration::from_millis(2));
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_read_waits_for_the_earlier_request_to_complete() {
        let mut seq = Sequence::default();
        let first = seq.next_turn();
        let second = seq.next_turn();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let reader = std::thread::spawn(move || {
            second.before_read();
            d.load(Ordering::SeqCst)
        });
        std::thread::sleep(Duration::from_millis(20));
        first.before_write();
        first.write_queued();
        done.store(1, Ordering::SeqCst);
        drop(first);
        assert_eq!(
            reader.join().unwrap(),
            1,
            "the read ran only after the write completed"
        );
    }

    #[test]
    fn a_dropped_turn_lets_the_next_go() {
        let mut seq = Sequence::default();
        let a = seq.next_turn();
        let b = seq.next_turn();
        drop(a);
        b.before_read();
        b.before_write();
    }
}
