//! Per-originator ordering: each originator's requests are handled in the order the broker
//! delivered them, and their answers leave in that order, while different originators run
//! side by side.
//!
//! Each originator has a queue and a task, which end after a while without requests. A write
//! is queued for the store right away, so the writes of a device that pipelines reach the
//! store in order and commit together, and no thread waits for them. Reads (and whatever else
//! runs on a blocking thread) run side by side, but never beside a write of the same
//! originator: a read waits until the writes before it are answered, and a write until the
//! reads before it are, so each sees exactly what was sent before it.

use super::inbound::{self, Outgoing, Step};
use super::link::LocalLink;
use crate::binding::queues::{next_or_idle, KeyedQueues, Pushed};
use crate::cse::admission::{Admitted, Allowance, PER_ORIGINATOR};
use crate::cse::Cse;
use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Originators with a running queue at most (each ends 30 s after its last request): a
/// device per connection of the default `max_connections` twice over.
const MAX_ORIGINATORS: usize = 20_000;

/// An originator's queue ends after this long without requests.
const IDLE: Duration = Duration::from_secs(30);

/// Answers of one originator in progress at once. Writes in progress hold no thread (they
/// wait in the store's queue), so this only bounds the memory one originator's burst holds.
const PIPELINE: usize = 64;

/// Reads (blocking-path requests) of one originator running at once. More only make the
/// threads take turns on the cores: with 16 in flight from each of 4 devices, allowing all of
/// them cut retrieve `la` from 29,900 to 22,300/s on 2 cores.
const READS_AT_ONCE: usize = 2;

/// One incoming request: its topic and body, and its place in the budget.
pub struct Job {
    pub topic: Bytes,
    pub payload: Bytes,
    /// The publisher's address, when the broker knows it.
    pub source: Option<std::net::IpAddr>,
    pub admitted: Admitted,
}

/// The originators' queues, by [`inbound::originator_key`], each with its share of the
/// budget.
pub struct Queues(KeyedQueues<Bytes, Job, Allowance>);

impl Default for Queues {
    fn default() -> Self {
        // Admission lets no originator hold more than its allowance, so a queue never fills;
        // a new originator past MAX_ORIGINATORS is answered busy.
        Queues(KeyedQueues::new(PER_ORIGINATOR, MAX_ORIGINATORS))
    }
}

impl Queues {
    /// The share of the budget of the originator with this key.
    pub fn allowance(&self, key: &Bytes) -> Allowance {
        self.0.state(key)
    }

    /// Queues `job` behind the originator's earlier requests, starting its queue if it has
    /// none (or its queue just ended for idleness).
    pub fn push(
        &mut self,
        key: &Bytes,
        allowance: Allowance,
        job: Job,
        cse: &Cse,
        local: &Arc<LocalLink>,
    ) {
        match self.0.push(key, job, allowance) {
            Pushed::Queued => {}
            Pushed::Started(jobs) => {
                tokio::spawn(serve_queue(cse.clone(), local.clone(), jobs));
            }
            Pushed::Full(job) => local.send(inbound::busy(
                &job.topic,
                &job.payload,
                "too many requests of this originator are queued, or too many originators are active",
            )),
        }
    }
}

/// An answer on its way: resolves once the request is done, with the request's place in the
/// budget, given back once the answer is handed to the broker.
type Answer = Pin<Box<dyn Future<Output = (Outgoing, Admitted)> + Send>>;

/// Handles one originator's requests in arrival order until it has been idle for a while.
async fn serve_queue(cse: Cse, local: Arc<LocalLink>, mut jobs: mpsc::Receiver<Job>) {
    let mut running = Running::default();
    loop {
        let job = if running.is_empty() {
            // Nothing is in progress, so a new queue for this originator cannot overtake
            // anything of this one.
            match next_or_idle(&mut jobs, IDLE).await {
                Some(job) => job,
                None => return,
            }
        } else {
            let room = running.len() < PIPELINE;
            tokio::select! {
                biased;
                Some(done) = running.next() => {
                    send(&local, done);
                    continue;
                }
                job = jobs.recv(), if room => match job {
                    Some(job) => job,
                    None => {
                        running.send_until(&local, Running::is_empty).await;
                        return;
                    }
                },
            }
        };
        let Job {
            topic,
            payload,
            source,
            admitted,
        } = job;
        match inbound::start(&cse, &topic, &payload, source) {
            Step::Now(out) => {
                running.push(Kind::Answered, Box::pin(async move { (out, admitted) }))
            }
            Step::Write(write, reply) => {
                running
                    .send_until(&local, |r| r.count(Kind::Blocking) == 0)
                    .await;
                let pending = write.submit();
                running.push(
                    Kind::Write,
                    Box::pin(async move { (reply.encode(pending.finish().await), admitted) }),
                );
            }
            Step::Blocking(blocked, reply) => {
                running
                    .send_until(&local, |r| {
                        r.count(Kind::Write) == 0 && r.count(Kind::Blocking) < READS_AT_ONCE
                    })
                    .await;
                let handle = tokio::task::spawn_blocking(move || blocked.run());
                running.push(
                    Kind::Blocking,
                    Box::pin(async move {
                        let out = match handle.await {
                            Ok(rsp) => reply.encode(rsp),
                            Err(e) => {
                                tracing::error!(error = %e, "request handler panicked");
                                None
                            }
                        };
                        (out, admitted)
                    }),
                );
            }
        }
    }
}

/// What an answer in progress waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Answered,
    Write,
    Blocking,
}

/// An originator's answers in progress, in arrival order.
#[derive(Default)]
struct Running {
    answers: FuturesOrdered<Answer>,
    kinds: VecDeque<Kind>,
}

impl Running {
    fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Answers of `kind` in progress (at most `PIPELINE` to count).
    fn count(&self, kind: Kind) -> usize {
        self.kinds.iter().filter(|k| **k == kind).count()
    }

    fn push(&mut self, kind: Kind, answer: Answer) {
        self.kinds.push_back(kind);
        self.answers.push_back(answer);
    }

    /// The oldest answer, once it is ready.
    async fn next(&mut self) -> Option<(Outgoing, Admitted)> {
        let out = self.answers.next().await?;
        self.kinds.pop_front();
        Some(out)
    }

    /// Sends the oldest answers as they become ready until `enough` holds (or none is left).
    async fn send_until(&mut self, local: &LocalLink, enough: impl Fn(&Running) -> bool) {
        while !enough(self) {
            match self.next().await {
                Some(done) => send(local, done),
                None => break,
            }
        }
    }
}

/// Hands an answer to the broker; only then does its request leave the budget (a drain waits
/// for the budget to empty).
fn send(local: &LocalLink, (out, admitted): (Outgoing, Admitted)) {
    local.send(out);
    drop(admitted);
}
