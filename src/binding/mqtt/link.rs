//! The CSE's in-process link to the embedded broker. It subscribes to the request topics of
//! this CSE, hands each request to the dispatcher on a blocking thread, and publishes the
//! answer on the matching response topic.
//!
//! Ordering: requests from one originator (one topic originator level) are handled one after
//! another, in the order the broker delivered them, so a device that pipelines CREATEs finds
//! its last one in `la`. Requests from different originators run concurrently, so a slow one
//! holds up nobody else.

use super::broker::EmbeddedBroker;
use crate::binding::Serialization;
use crate::cse::Cse;
use crate::onem2m::address::originator_to_local;
use crate::onem2m::topic::{id_from_topic, id_to_topic, Topic, TopicKind};
use crate::onem2m::{Error, Operation, RequestPrimitive, ResourceType, ResponsePrimitive, Rsc};
use bytes::Bytes;
use rand::Rng;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Requests queued or being handled at once; beyond this the link stops reading and the broker
/// buffers.
const MAX_PENDING: usize = 1024;
/// An originator's queue ends after this long without requests.
const IDLE: Duration = Duration::from_secs(30);

/// How long the CSE waits for the answer to a request it sends over the link.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The CSE's side of the link for requests it sends itself (notifications): publish on
/// `/oneM2M/req/<cse-id>/<receiver>/json`, answers come back on `/oneM2M/resp/<cse-id>/...`.
pub struct LocalLink {
    tx: Arc<Mutex<LinkTx>>,
    cse_id: String,
    pending: Mutex<HashMap<String, oneshot::Sender<ResponsePrimitive>>>,
}

impl LocalLink {
    /// Publishes `req` to `receiver` (an ID in topic form) without waiting for an answer.
    pub fn publish_request(&self, receiver: &str, req: &RequestPrimitive) {
        let topic = format!("/oneM2M/req/{}/{receiver}/json", self.cse_id);
        publish(&self.tx, topic, Serialization::Json.encode(&req.to_value()));
    }

    /// Publishes `req` to `receiver` and waits for its answer.
    pub async fn request(
        &self,
        receiver: &str,
        req: &RequestPrimitive,
    ) -> Result<ResponsePrimitive, String> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(req.rqi.clone(), tx);
        self.publish_request(receiver, req);
        let answer = tokio::time::timeout(ANSWER_WITHIN, rx).await;
        lock(&self.pending).remove(&req.rqi);
        match answer {
            Ok(Ok(rsp)) => Ok(rsp),
            _ => Err(format!(
                "{receiver} did not answer within {ANSWER_WITHIN:?}"
            )),
        }
    }

    /// An answer to one of our requests, with or without the serialization suffix (OpenMTC's
    /// clients answer on Release-1 topics).
    fn answered(&self, payload: &[u8]) {
        let rsp = Serialization::Json
            .decode(payload)
            .map_err(Error::bad_request)
            .and_then(ResponsePrimitive::from_value);
        match rsp {
            Ok(rsp) => {
                if let Some(tx) = lock(&self.pending).remove(&rsp.rqi) {
                    let _ = tx.send(rsp);
                }
            }
            Err(e) => tracing::debug!(dbg = %e.dbg, "ignoring an unreadable response"),
        }
    }
}

/// Subscribes the CSE to its request topics (and to the answers to its own requests) and
/// serves them until the process ends. Returns once the subscriptions are in place.
///
/// `relay_for` names other CSEs (our registrar) whose requests devices may publish on our
/// broker (`mqtt://gateway:1883#id-in`): those are taken in and forwarded.
pub async fn serve(
    broker: Arc<EmbeddedBroker>,
    cse: Cse,
    relay_for: Vec<String>,
) -> anyhow::Result<Arc<LocalLink>> {
    let (tx, rx) = connect(&broker, &cse, &relay_for)?;
    let local = Arc::new(LocalLink {
        tx: Arc::new(Mutex::new(tx)),
        cse_id: cse.identity().id().to_string(),
        pending: Mutex::new(HashMap::new()),
    });
    tokio::spawn(run(broker, cse, local.clone(), rx, relay_for));
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
    let id = cse.identity().id();
    // `#` also matches the parent level, so Release-1 topics without a serialization arrive too.
    for kind in ["req", "reg_req"] {
        tx.subscribe(format!("/oneM2M/{kind}/+/{id}/#"))?;
    }
    tx.subscribe(format!("/oneM2M/resp/{id}/+/#"))?;
    for other in relay_for {
        tx.subscribe(format!("/oneM2M/req/+/{other}/#"))?;
    }
    Ok((tx, rx))
}

/// One incoming request: its topic and body, and its place in the pending budget.
struct Job {
    topic: Bytes,
    payload: Bytes,
    _permit: OwnedSemaphorePermit,
}

async fn run(
    broker: Arc<EmbeddedBroker>,
    cse: Cse,
    local: Arc<LocalLink>,
    mut rx: LinkRx,
    relay_for: Vec<String>,
) {
    let tx = local.tx.clone();
    let budget = Arc::new(Semaphore::new(MAX_PENDING));
    let mut queues: HashMap<Bytes, mpsc::UnboundedSender<Job>> = HashMap::new();
    loop {
        match rx.next().await {
            Ok(Some(Notification::Forward(forward)))
                if forward.publish.topic.starts_with(b"/oneM2M/resp/") =>
            {
                local.answered(&forward.publish.payload);
            }
            Ok(Some(Notification::Forward(forward))) => {
                let Ok(permit) = budget.clone().acquire_owned().await else {
                    return;
                };
                let key = queue_key(&forward.publish.topic);
                let mut job = Job {
                    topic: forward.publish.topic,
                    payload: forward.publish.payload,
                    _permit: permit,
                };
                // The queue may have just ended for idleness; then start a new one.
                if let Some(queue) = queues.get(&key) {
                    match queue.send(job) {
                        Ok(()) => continue,
                        Err(mpsc::error::SendError(back)) => job = back,
                    }
                }
                if queues.len() >= 1024 {
                    queues.retain(|_, q| !q.is_closed());
                }
                let (qtx, qrx) = mpsc::unbounded_channel();
                // A fresh channel with a live receiver accepts the job.
                let _ = qtx.send(job);
                queues.insert(key, qtx);
                tokio::spawn(serve_queue(cse.clone(), tx.clone(), qrx));
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
                match connect(&broker, &cse, &relay_for) {
                    Ok((new_tx, new_rx)) => {
                        *lock(&tx) = new_tx;
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

/// Requests are ordered per topic originator level (`/oneM2M/<kind>/<originator>/...`).
fn queue_key(topic: &Bytes) -> Bytes {
    let end = topic
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .nth(4)
        .map_or(topic.len(), |(i, _)| i);
    topic.slice(..end)
}

/// Handles one originator's requests in order until it has been idle for a while.
async fn serve_queue(cse: Cse, tx: Arc<Mutex<LinkTx>>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    loop {
        let job = match tokio::time::timeout(IDLE, jobs.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                // Refuse new jobs, then finish what was queued meanwhile.
                jobs.close();
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            }
        };
        let (cse, tx) = (cse.clone(), tx.clone());
        let done = tokio::task::spawn_blocking(move || {
            if let Some((topic, body)) = handle(&cse, &job.topic, &job.payload) {
                publish(&tx, topic, body);
            }
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "request handler panicked");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn publish(tx: &Mutex<LinkTx>, topic: String, body: Vec<u8>) {
    if let Err(e) = lock(tx).publish(topic.clone(), body) {
        tracing::error!(%topic, error = %e, "cannot publish response");
    }
}

/// Turns one incoming publish into the topic and body of its answer, if one is due.
fn handle(cse: &Cse, topic: &Bytes, payload: &Bytes) -> Option<(String, Vec<u8>)> {
    let Ok(topic) = std::str::from_utf8(topic) else {
        tracing::warn!("ignoring a publish whose topic is not UTF-8");
        return None;
    };
    let Some(parsed) = Topic::parse(topic) else {
        tracing::warn!(%topic, "ignoring a publish on a malformed oneM2M topic");
        return None;
    };
    let (ser, rsp) = match Serialization::from_topic_level(parsed.serialization) {
        Some(ser) => (ser, answer(cse, &parsed, ser, payload)),
        None => {
            let level = parsed.serialization.unwrap_or_default();
            tracing::warn!(%topic, "request in an unsupported serialization");
            let err = Error::new(
                Rsc::UNSUPPORTED_MEDIA_TYPE,
                format!("serialization '{level}' is not supported; publish to .../json"),
            );
            (
                Serialization::Json,
                Some(ResponsePrimitive::error(&err, "", None)),
            )
        }
    };
    let rsp = rsp?;
    Some((
        parsed.response_topic(ser.name()),
        ser.encode(&rsp.to_value()),
    ))
}

fn answer(
    cse: &Cse,
    topic: &Topic,
    ser: Serialization,
    payload: &[u8],
) -> Option<ResponsePrimitive> {
    let reject = |err: Error, rqi: Option<String>, rvi: Option<String>| {
        tracing::warn!(originator = topic.originator, rsc = err.rsc.code(), dbg = %err.dbg, "request rejected");
        Some(ResponsePrimitive::error(&err, rqi.unwrap_or_default(), rvi))
    };
    let body = match ser.decode(payload) {
        Ok(v) => v,
        Err(msg) => return reject(Error::bad_request(msg), None, None),
    };
    let mut req = match RequestPrimitive::from_value(body) {
        Ok(r) => r,
        Err(e) => return reject(e.error, e.rqi, None),
    };
    if let Err(err) = check_topic(cse, topic, &mut req) {
        return reject(err, Some(req.rqi), req.rvi);
    }
    cse.handle(&req)
}

/// TS-0010 consistency between the topic and the primitive.
/// * On `req` topics the originator level names the sender: `fr` must be the same entity
///   (compared after bringing both to CSE-relative form); a request without `fr` takes it from
///   the topic, as Mobius does; an empty `fr` (an AE asking for an ID) is left to the CSE,
///   which accepts it only for a registration. A mismatch is 4103 ORIGINATOR_HAS_NO_PRIVILEGE: the primitive
///   claims an identity its topic does not carry.
/// * On `reg_req` topics the originator level is a Credential-ID, not an AE-ID, so it is not
///   compared; only registrations (CREATE of an AE or remoteCSE) are allowed there (4000 else).
fn check_topic(cse: &Cse, topic: &Topic, req: &mut RequestPrimitive) -> Result<(), Error> {
    let me = cse.identity();
    match topic.kind {
        TopicKind::Req => {
            // Addressed to another CSE we relay for: a CSE-relative target is relative to it.
            if topic.receiver != me.id() && !req.to.starts_with('/') {
                req.to = format!("/{}/{}", topic.receiver.replace(':', "/"), req.to);
            }
            let in_topic = originator_to_local(&id_from_topic(topic.originator), me);
            match &req.fr {
                None => req.fr = Some(in_topic),
                // No identity yet: only a registration can succeed, the CSE decides.
                Some(fr) if fr.is_empty() => {}
                Some(fr) if originator_to_local(fr, me) == in_topic => {}
                // A CSE writes its own ID into the topic without the slash: /id-mn → id-mn.
                Some(fr) if fr.starts_with('/') && id_to_topic(fr) == topic.originator => {}
                Some(fr) => {
                    return Err(Error::no_privilege(format!(
                        "originator '{fr}' does not match the topic's originator '{}'",
                        topic.originator
                    )))
                }
            }
            Ok(())
        }
        TopicKind::RegReq => {
            let registration = req.op == Operation::Create
                && [ResourceType::Ae, ResourceType::RemoteCse]
                    .iter()
                    .any(|t| req.ty == Some(t.code() as u64));
            if registration {
                Ok(())
            } else {
                Err(Error::bad_request(
                    "only registrations (CREATE of an AE or remoteCSE) may be sent on reg_req",
                ))
            }
        }
        // Not subscribed to; a response addressed to the CSE is not a request.
        TopicKind::Resp | TopicKind::RegResp => Err(Error::bad_request("not a request topic")),
    }
}
