//! The CSE's MQTT session, whichever broker it is on: it takes the requests published on this
//! CSE's request topics and hands them on ([`Dispatcher`]), publishes their answers, and sends
//! the CSE's own requests (notifications, forwarding) and matches their answers by `rqi`.
//!
//! On the embedded broker the session is an in-process link into the router ([`serve`]); on
//! an outside broker it is a client session ([`super::external`]). What happens to a request
//! is the same on both: [`crate::cse::admission`] decides whether it is taken,
//! [`super::ordering`] keeps each originator's requests in order, and [`super::inbound`] reads
//! and checks it.

use super::broker::EmbeddedBroker;
use super::inbound::{self, Outgoing};
use super::ordering::{Job, Queues};
use crate::binding::Serialization;
use crate::client::replies::{NoAnswer, Replies};
use crate::client::Publisher;
use crate::cse::notify::PEER_ANSWER_WITHIN;
use crate::cse::Cse;
use crate::onem2m::topic::{Topic, TopicKind};
use crate::onem2m::{RequestPrimitive, ResponsePrimitive};
use crate::sync::lock;
use bytes::Bytes;
use rand::Rng;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Where the CSE publishes: the embedded broker's router, or its client session on an outside
/// broker.
pub(super) enum Outlet {
    Router(Mutex<LinkTx>),
    Session(Publisher),
}

/// The CSE's MQTT session: it publishes answers and the CSE's own requests (on
/// `/oneM2M/req/<cse-id>/<receiver>/json`), and takes the answers to those on
/// `/oneM2M/resp/<cse-id>/...`.
pub struct LocalLink {
    outlet: Outlet,
    cse_id: String,
    replies: Replies,
    probes: Probes,
    /// The topic form each AE uses for itself.
    forms: super::forms::TopicForms,
    /// Set by [`drain`](LocalLink::drain) once every request taken before it has arrived:
    /// later ones are answered busy.
    closing: std::sync::atomic::AtomicBool,
}

/// Probes for a drain: a publish on each request topic the CSE subscribes to, under an
/// originator level no device knows. When a probe comes back, everything the broker took on
/// that topic filter before it has reached the link (the router appends a filter's messages
/// in order and forwards them in order).
struct Probes {
    /// The originator level of probe topics.
    originator: String,
    /// One topic per request filter.
    topics: Vec<String>,
    /// Probe payloads on their way, and who waits for each.
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl LocalLink {
    /// `receivers` are the receiver levels of the request topics served (ours, and those of
    /// the CSEs we relay for).
    pub(super) fn new(outlet: Outlet, cse_id: &str, receivers: &[String]) -> Self {
        let originator = format!("m2mhub-drain-{:016x}", rand::random::<u64>());
        let mut topics: Vec<String> = receivers
            .iter()
            .map(|r| format!("/oneM2M/req/{originator}/{r}/json"))
            .collect();
        topics.push(format!("/oneM2M/reg_req/{originator}/{cse_id}/json"));
        LocalLink {
            outlet,
            cse_id: cse_id.to_string(),
            replies: Replies::default(),
            forms: Default::default(),
            closing: Default::default(),
            probes: Probes {
                originator,
                topics,
                waiting: Mutex::new(HashMap::new()),
            },
        }
    }

    /// Graceful shutdown of the MQTT side: returns once every request the broker took
    /// before the call has been answered and its answer handed to the broker (or when
    /// `until` passes: `false`). What devices send after the call is answered busy (5000):
    /// the drain ends however much they send.
    pub async fn drain(&self, cse: &Cse, until: tokio::time::Instant) -> bool {
        // Everything taken so far has reached the link...
        let arrived = self.barrier(until).await;
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if !arrived {
            return false;
        }
        // ...and has been answered...
        while cse.admission().held() > 0 {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // ...and the broker took the answers in: it processes our publishes in order.
        if !self.barrier(until).await {
            return false;
        }
        // The connections write them out; give them a moment, and the devices time to
        // acknowledge, before their sockets close.
        let grace = tokio::time::Instant::now() + Duration::from_millis(100);
        tokio::time::sleep_until(grace.min(until)).await;
        true
    }

    /// Publishes a probe on every request topic and waits until all came back.
    async fn barrier(&self, until: tokio::time::Instant) -> bool {
        let round: u64 = rand::random();
        let mut back = Vec::new();
        let mut sent = true;
        for (i, topic) in self.probes.topics.iter().enumerate() {
            let token = format!("{round:016x}-{i}");
            let (tx, rx) = oneshot::channel();
            lock(&self.probes.waiting).insert(token.clone(), tx);
            back.push(rx);
            if !self.publish(topic.clone(), token.into_bytes()) {
                sent = false;
                break;
            }
        }
        let all = futures_util::future::join_all(back);
        let done = sent
            && matches!(tokio::time::timeout_at(until, all).await, Ok(v) if v.iter().all(Result::is_ok));
        if !done {
            let prefix = format!("{round:016x}-");
            lock(&self.probes.waiting).retain(|token, _| !token.starts_with(&prefix));
        }
        done
    }

    /// A probe that came back, if `topic` is a probe topic.
    fn probe_returned(&self, topic: &[u8], payload: &[u8]) -> bool {
        let is_probe = std::str::from_utf8(topic)
            .ok()
            .and_then(Topic::parse)
            .is_some_and(|t| t.originator == self.probes.originator);
        if is_probe {
            let token = String::from_utf8_lossy(payload);
            if let Some(tx) = lock(&self.probes.waiting).remove(token.as_ref()) {
                let _ = tx.send(());
            }
        }
        is_probe
    }

    /// `false` when the publish could not be handed to the broker (logged). Never blocks.
    fn publish(&self, topic: String, body: Vec<u8>) -> bool {
        let sent = match &self.outlet {
            Outlet::Router(tx) => lock(tx)
                .publish_nowait(topic.clone(), body)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Outlet::Session(out) => out.try_publish(topic.clone(), body),
        };
        if let Err(e) = &sent {
            tracing::error!(%topic, error = %e, "cannot publish");
        }
        sent.is_ok()
    }

    /// Publishes an answer, if one is due.
    pub(super) fn send(&self, out: Outgoing) {
        if let Some((topic, body)) = out {
            self.publish(topic, body);
        }
    }

    /// Publishes `req` to `receiver` (an ID in topic form, sent in the form that entity uses
    /// for itself) without waiting for an answer.
    pub fn publish_request(&self, receiver: &str, req: &RequestPrimitive) -> bool {
        let receiver = self.forms.level(receiver);
        let topic = format!("/oneM2M/req/{}/{receiver}/json", self.cse_id);
        self.publish(topic, Serialization::Json.encode(&req.to_value()))
    }

    /// Publishes `req` to `receiver` and waits for its answer.
    pub async fn request(
        &self,
        receiver: &str,
        req: &RequestPrimitive,
    ) -> Result<ResponsePrimitive, String> {
        // The answer counts only on the receiver's own response topic, which the broker lets
        // nobody else publish to.
        let level = self.forms.level(receiver);
        let answer = self.replies.expect_from(&req.rqi, Some(&level));
        if !self.publish_request(receiver, req) {
            return Err(format!("cannot publish to {receiver}"));
        }
        match answer.wait(PEER_ANSWER_WITHIN).await {
            Ok(rsp) => Ok(rsp),
            Err(NoAnswer::Timeout | NoAnswer::Closed) => Err(format!(
                "{receiver} did not answer within {PEER_ANSWER_WITHIN:?}"
            )),
        }
    }
}

/// The receiver levels of the request topics the CSE serves: its own, and those of the CSEs
/// it relays for.
pub(super) fn receivers(cse: &Cse, relay_for: &[String]) -> Vec<String> {
    std::iter::once(cse.identity().id().to_string())
        .chain(relay_for.iter().cloned())
        .collect()
}

/// The topic filters the CSE subscribes to.
pub(super) fn filters(cse: &Cse, relay_for: &[String]) -> Vec<String> {
    let id = cse.identity().id();
    // `#` also matches the parent level, so Release-1 topics without a serialization arrive too.
    let mut f = vec![
        format!("/oneM2M/req/+/{id}/#"),
        format!("/oneM2M/reg_req/+/{id}/#"),
        format!("/oneM2M/resp/{id}/+/#"),
    ];
    f.extend(
        relay_for
            .iter()
            .map(|other| format!("/oneM2M/req/+/{other}/#")),
    );
    f
}

/// Takes the session's incoming publishes: answers to the CSE's own requests go to whoever
/// waits for them, requests to their originator's queue (or a busy answer).
pub(super) struct Dispatcher {
    cse: Cse,
    local: Arc<LocalLink>,
    queues: Queues,
}

impl Dispatcher {
    pub(super) fn new(cse: Cse, local: Arc<LocalLink>) -> Self {
        Dispatcher {
            cse,
            local,
            queues: Queues::default(),
        }
    }

    /// Takes one publish. Never waits: this loop also takes the answers the CSE itself waits
    /// for.
    /// `source` is the publisher's address, when the broker knows it.
    pub(super) fn incoming(&mut self, topic: Bytes, payload: Bytes, source: Option<IpAddr>) {
        if topic.starts_with(b"/oneM2M/resp/") {
            // With or without the serialization suffix (OpenMTC's clients answer on
            // Release-1 topics). The receiver level says who answered.
            let from = std::str::from_utf8(&topic)
                .ok()
                .and_then(Topic::parse)
                .map(|t| t.receiver.to_string());
            self.local
                .replies
                .answer_json_from(from.as_deref(), &payload);
            return;
        }
        if self.local.probe_returned(&topic, &payload) {
            return;
        }
        // A view into the topic's bytes, not a copy.
        let key = topic.slice(..inbound::originator_key(&topic).len());
        if self.local.closing.load(std::sync::atomic::Ordering::SeqCst) {
            let why = "it is shutting down";
            self.local.send(inbound::busy(&topic, &payload, why));
            return;
        }
        let allowance = self.queues.allowance(&key);
        let parsed = std::str::from_utf8(&topic).ok().and_then(Topic::parse);
        if let Some(t) = parsed.as_ref().filter(|t| t.kind == TopicKind::Req) {
            self.local.forms.saw(&self.local.cse_id, t.originator);
        }
        // The budget of the credential this originator belongs to, if any.
        let credential = parsed.and_then(|t| self.cse.bindings().credential_of(t.originator));
        let admitted = match self
            .cse
            .admission()
            .admit(credential.as_deref(), Some(&allowance))
        {
            Ok(admitted) => admitted,
            Err(why) => {
                self.local.send(inbound::busy(&topic, &payload, why));
                return;
            }
        };
        let job = Job {
            topic,
            payload,
            source,
            admitted,
        };
        self.queues
            .push(&key, allowance, job, &self.cse, &self.local);
    }
}

/// Subscribes the CSE to its request topics (and to the answers to its own requests) on the
/// embedded broker and serves them until the process ends. Returns once the subscriptions are
/// in place.
///
/// `relay_for` names other CSEs (our registrar) whose requests devices may publish on our
/// broker (`mqtt://gateway:1883#id-in`): those are taken in and forwarded.
pub async fn serve(
    broker: Arc<EmbeddedBroker>,
    cse: Cse,
    relay_for: Vec<String>,
) -> anyhow::Result<Arc<LocalLink>> {
    let (tx, rx) = connect(&broker, &cse, &relay_for)?;
    let local = Arc::new(LocalLink::new(
        Outlet::Router(Mutex::new(tx)),
        cse.identity().id(),
        &receivers(&cse, &relay_for),
    ));
    tokio::spawn(run(
        broker,
        Dispatcher::new(cse, local.clone()),
        rx,
        relay_for,
    ));
    Ok(local)
}

fn connect(
    broker: &EmbeddedBroker,
    cse: &Cse,
    relay_for: &[String],
) -> anyhow::Result<(LinkTx, LinkRx)> {
    // A device that connected with the link's client ID would take over its session, so the
    // ID is not guessable.
    let suffix: u64 = rand::thread_rng().gen();
    let (mut tx, rx) = broker.link(&format!("m2mhub-cse-{suffix:016x}"))?;
    for f in filters(cse, relay_for) {
        tx.subscribe(f)?;
    }
    Ok((tx, rx))
}

/// The in-process link's loop: takes what the router forwards, and links in again if the
/// router dropped it.
async fn run(
    broker: Arc<EmbeddedBroker>,
    mut dispatcher: Dispatcher,
    mut rx: LinkRx,
    relay_for: Vec<String>,
) {
    loop {
        match rx.next().await {
            Ok(Some(Notification::Forward(forward))) => dispatcher.incoming(
                forward.publish.topic,
                forward.publish.payload,
                forward.publish.source,
            ),
            // The router paused us because our buffer filled; we have drained it.
            Ok(Some(Notification::Unschedule)) => {
                if rx.wake().await.is_err() {
                    tracing::warn!("in-process MQTT link lost its router");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "in-process MQTT link failed; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
                match connect(&broker, &dispatcher.cse, &relay_for) {
                    Ok((new_tx, new_rx)) => {
                        if let Outlet::Router(tx) = &dispatcher.local.outlet {
                            *lock(tx) = new_tx;
                        }
                        rx = new_rx;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot reconnect the in-process MQTT link")
                    }
                }
            }
        }
    }
}
