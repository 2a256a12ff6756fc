//! The CSE's MQTT session, whichever broker it is on: it takes the requests published on this
//! CSE's request topics and hands them on ([`Dispatcher`]), publishes their answers, and sends
//! the CSE's own requests (notifications, forwarding) and matches their answers by `rqi`.
//!
//! On the embedded broker the session is an in-process link into the router ([`serve`]); on
//! an outside broker it is a client session ([`super::external`]). What happens to a request
//! is the same on both: [`super::admission`] decides whether it is taken,
//! [`super::ordering`] keeps each originator's requests in order, and [`super::inbound`] reads
//! and checks it.

use super::admission::Admission;
use super::broker::EmbeddedBroker;
use super::inbound::{self, Outgoing};
use super::ordering::{Job, Queues};
use crate::binding::Serialization;
use crate::client::replies::{NoAnswer, Replies};
use crate::client::Publisher;
use crate::cse::notify::PEER_ANSWER_WITHIN;
use crate::cse::Cse;
use crate::onem2m::{RequestPrimitive, ResponsePrimitive};
use crate::sync::lock;
use bytes::Bytes;
use rand::Rng;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

impl LocalLink {
    pub(super) fn new(outlet: Outlet, cse_id: &str) -> Self {
        LocalLink {
            outlet,
            cse_id: cse_id.to_string(),
            replies: Replies::default(),
        }
    }

    /// `false` when the publish could not be handed to the broker (logged). Never waits.
    fn publish(&self, topic: String, body: Vec<u8>) -> bool {
        let sent = match &self.outlet {
            Outlet::Router(tx) => lock(tx)
                .publish(topic.clone(), body)
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

    /// Publishes `req` to `receiver` (an ID in topic form) without waiting for an answer.
    pub fn publish_request(&self, receiver: &str, req: &RequestPrimitive) -> bool {
        let topic = format!("/oneM2M/req/{}/{receiver}/json", self.cse_id);
        self.publish(topic, Serialization::Json.encode(&req.to_value()))
    }

    /// Publishes `req` to `receiver` and waits for its answer.
    pub async fn request(
        &self,
        receiver: &str,
        req: &RequestPrimitive,
    ) -> Result<ResponsePrimitive, String> {
        let answer = self.replies.expect(&req.rqi);
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
    admission: Admission,
    queues: Queues,
}

impl Dispatcher {
    pub(super) fn new(cse: Cse, local: Arc<LocalLink>) -> Self {
        Dispatcher {
            cse,
            local,
            admission: Admission::default(),
            queues: Queues::default(),
        }
    }

    /// Takes one publish. Never waits: this loop also takes the answers the CSE itself waits
    /// for.
    pub(super) fn incoming(&mut self, topic: Bytes, payload: Bytes) {
        if topic.starts_with(b"/oneM2M/resp/") {
            // With or without the serialization suffix (OpenMTC's clients answer on
            // Release-1 topics).
            self.local.replies.answer_json(&payload);
            return;
        }
        let key = Bytes::copy_from_slice(inbound::originator_key(&topic));
        let allowance = self.queues.allowance(&key);
        let Some(admitted) = self.admission.admit(&allowance) else {
            self.local.send(inbound::busy(&topic, &payload));
            return;
        };
        let job = Job {
            topic,
            payload,
            admitted,
        };
        self.queues
            .push(key, allowance, job, &self.cse, &self.local);
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
            Ok(Some(Notification::Forward(forward))) => {
                dispatcher.incoming(forward.publish.topic, forward.publish.payload)
            }
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
