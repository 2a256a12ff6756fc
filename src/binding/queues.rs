//! Queues by key, each drained in order by a worker of its own that ends after a while
//! without work: an originator's requests (MQTT link), a notification target's notifications
//! (delivery). A key's items keep their order; different keys never wait for each other.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;
use tokio::sync::mpsc;

/// Queues kept before ended ones are swept out of the map.
const SWEEP_AT: usize = 1024;

/// The queues, and per key some state `S` that lives as long as its queue.
pub struct KeyedQueues<K, T, S = ()> {
    queues: HashMap<K, (mpsc::Sender<T>, S)>,
    capacity: usize,
    /// Running queues at most: a client cannot make more keys (originator levels,
    /// notification targets) than this hold a queue and a worker each.
    max_keys: usize,
}

/// What became of a pushed item.
pub enum Pushed<T> {
    /// Queued behind the key's earlier items.
    Queued,
    /// The key had no running queue: this new one holds the item, and its receiver is for a
    /// new worker to drain (with [`next_or_idle`]).
    Started(mpsc::Receiver<T>),
    /// The key's queue is full, or there are `max_keys` queues already; the item is handed
    /// back.
    Full(T),
}

impl<K: Hash + Eq + Clone, T, S: Clone + Default> KeyedQueues<K, T, S> {
    /// At most `max_keys` queues that hold `capacity` items each.
    pub fn new(capacity: usize, max_keys: usize) -> Self {
        KeyedQueues {
            queues: HashMap::new(),
            capacity,
            max_keys,
        }
    }

    /// The state of `key`'s running queue, or a fresh one if it has none.
    pub fn state(&self, key: &K) -> S {
        match self.queues.get(key) {
            Some((q, state)) if !q.is_closed() => state.clone(),
            _ => S::default(),
        }
    }

    /// Queues `item` for `key`; a new queue starts with `state` (only then is `key` copied).
    pub fn push(&mut self, key: &K, item: T, state: S) -> Pushed<T> {
        let mut item = item;
        if let Some((queue, _)) = self.queues.get(key) {
            match queue.try_send(item) {
                Ok(()) => return Pushed::Queued,
                Err(mpsc::error::TrySendError::Full(back)) => return Pushed::Full(back),
                // Its worker ended for idleness: start another.
                Err(mpsc::error::TrySendError::Closed(back)) => item = back,
            }
        }
        if self.queues.len() >= SWEEP_AT.min(self.max_keys) {
            self.queues.retain(|_, (q, _)| !q.is_closed());
        }
        if self.queues.len() >= self.max_keys {
            return Pushed::Full(item);
        }
        let (tx, rx) = mpsc::channel(self.capacity);
        // A fresh channel with a live receiver has room.
        let _ = tx.try_send(item);
        self.queues.insert(key.clone(), (tx, state));
        Pushed::Started(rx)
    }
}

/// A worker's next item, or `None` once its queue is gone or has been idle for `idle`. An
/// idle queue refuses new items first (they start a new queue) and then hands out what
/// arrived meanwhile, so nothing pushed is lost and no new worker overtakes this one.
pub async fn next_or_idle<T>(queue: &mut mpsc::Receiver<T>, idle: Duration) -> Option<T> {
    match tokio::time::timeout(idle, queue.recv()).await {
        Ok(item) => item,
        Err(_) => {
            queue.close();
            queue.try_recv().ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_of_a_key_queue_in_order_and_a_full_queue_hands_back() {
        let mut q: KeyedQueues<&str, u32> = KeyedQueues::new(2, 10);
        let Pushed::Started(mut a) = q.push(&"a", 1, ()) else {
            panic!("a new key starts a queue")
        };
        assert!(matches!(q.push(&"a", 2, ()), Pushed::Queued));
        assert!(matches!(q.push(&"a", 3, ()), Pushed::Full(3)));
        assert!(matches!(q.push(&"b", 9, ()), Pushed::Started(_)));
        assert_eq!(a.recv().await, Some(1));
        assert_eq!(a.recv().await, Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_worker_ends_and_the_next_item_starts_another() {
        let mut q: KeyedQueues<&str, u32, u8> = KeyedQueues::new(4, 10);
        let Pushed::Started(mut rx) = q.push(&"k", 1, 7) else {
            panic!()
        };
        assert_eq!(q.state(&"k"), 7);
        let idle = Duration::from_secs(30);
        assert_eq!(next_or_idle(&mut rx, idle).await, Some(1));
        assert_eq!(next_or_idle(&mut rx, idle).await, None, "idle: ended");
        assert_eq!(q.state(&"k"), 0, "an ended queue's state is gone");
        assert!(matches!(q.push(&"k", 2, 0), Pushed::Started(_)));
    }

    #[tokio::test]
    async fn no_more_than_max_keys_queues_run() {
        let mut q: KeyedQueues<u32, u32> = KeyedQueues::new(4, 3);
        let mut workers = Vec::new();
        for k in 0..3 {
            let Pushed::Started(rx) = q.push(&k, k, ()) else {
                panic!()
            };
            workers.push(rx);
        }
        assert!(matches!(q.push(&3, 3, ()), Pushed::Full(3)));
        assert!(
            matches!(q.push(&1, 9, ()), Pushed::Queued),
            "known keys still queue"
        );
        // A worker that ended makes room.
        drop(workers.remove(0));
        assert!(matches!(q.push(&3, 3, ()), Pushed::Started(_)));
    }
}
