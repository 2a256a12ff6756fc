//! The CSE's in-process link to the embedded broker. It subscribes to the request topics of
//! this CSE, hands each request to the dispatcher, and publishes the answer on the matching
//! response topic.
//!
//! Ordering: requests from one originator (one topic originator level) are taken in the order
//! the broker delivered them, so a device that pipelines CREATEs finds its last one in `la`,
//! and their answers leave in that order. Their writes are queued for the store at once and
//! commit together; a read waits for the writes before it. Requests from different originators
//! run concurrently, so a slow one holds up nobody else.

use super::broker::EmbeddedBroker;
use crate::binding::Serialization;
use crate::cse::{Begun, Blocked, Cse, Write};
use crate::onem2m::address::originator_to_local;
use crate::onem2m::topic::{id_from_topic, id_to_topic, Topic, TopicKind};
use crate::onem2m::{
    Error, MqttUrl, Operation, RequestPrimitive, ResourceType, ResponsePrimitive, Rsc,
};
use crate::sync::lock;
use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, StreamExt};
use rand::Rng;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
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

/// Where the CSE publishes: the embedded broker's router, or its client session on an outside
/// broker.
enum Outlet {
    Router(Mutex<LinkTx>),
    Client(rumqttc::AsyncClient),
}

/// The CSE's MQTT session, whichever broker it is on: it publishes answers and the CSE's own
/// requests (notifications, on `/oneM2M/req/<cse-id>/<receiver>/json`), and takes the answers
/// to those on `/oneM2M/resp/<cse-id>/...`.
pub struct LocalLink {
    outlet: Outlet,
    cse_id: String,
    pending: Mutex<HashMap<String, oneshot::Sender<ResponsePrimitive>>>,
}

impl LocalLink {
    /// `false` when the publish could not be handed to the broker (logged).
    fn publish(&self, topic: String, body: Vec<u8>) -> bool {
        let sent = match &self.outlet {
            Outlet::Router(tx) => lock(tx)
                .publish(topic.clone(), body)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Outlet::Client(c) => c
                .try_publish(topic.clone(), rumqttc::QoS::AtLeastOnce, false, body)
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = &sent {
            tracing::error!(%topic, error = %e, "cannot publish");
        }
        sent.is_ok()
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
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(req.rqi.clone(), tx);
        if !self.publish_request(receiver, req) {
            lock(&self.pending).remove(&req.rqi);
            return Err(format!("cannot publish to {receiver}"));
        }
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

/// The topic filters the CSE subscribes to.
fn filters(cse: &Cse, relay_for: &[String]) -> Vec<String> {
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
    let local = Arc::new(LocalLink {
        outlet: Outlet::Router(Mutex::new(tx)),
        cse_id: cse.identity().id().to_string(),
        pending: Mutex::new(HashMap::new()),
    });
    tokio::spawn(run(
        broker,
        Dispatcher::new(cse, local.clone()),
        rx,
        relay_for,
    ));
    Ok(local)
}

/// External broker mode: the CSE is a client of a broker the site already runs (Mosquitto,
/// EMQX, VerneMQ…), with the same topics and behaviour. Its client ID is `C::<cse-id>`, with a
/// persistent session; subscriptions are renewed whenever the broker lost them.
pub async fn serve_external(
    url: &str,
    cse: Cse,
    relay_for: Vec<String>,
) -> anyhow::Result<Arc<LocalLink>> {
    let parsed = MqttUrl::parse(url).map_err(|e| anyhow::anyhow!("mqtt.broker: {e}"))?;
    let id = cse.identity().id().to_string();
    let mut opts = rumqttc::MqttOptions::new(format!("C::{id}"), parsed.host, parsed.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(false);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 1024);
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let local = Arc::new(LocalLink {
        outlet: Outlet::Client(client.clone()),
        cse_id: id,
        pending: Mutex::new(HashMap::new()),
    });
    let filters = filters(&cse, &relay_for);
    let mut dispatcher = Dispatcher::new(cse, local.clone());
    let (up_tx, up_rx) = oneshot::channel();
    tokio::spawn(async move {
        // Ready once the broker holds our subscriptions: a request published before its SUBACK
        // may find no subscriber and be dropped.
        let mut up = Some(up_tx);
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                    if ack.session_present {
                        if let Some(up) = up.take() {
                            let _ = up.send(Ok(()));
                        }
                    } else {
                        let _ = client.try_subscribe_many(filters.iter().map(|f| {
                            rumqttc::SubscribeFilter::new(f.clone(), rumqttc::QoS::AtLeastOnce)
                        }));
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(ack))) => {
                    let refused: Vec<&str> = ack
                        .return_codes
                        .iter()
                        .zip(&filters)
                        .filter(|(code, _)| {
                            matches!(code, rumqttc::mqttbytes::v4::SubscribeReasonCode::Failure)
                        })
                        .map(|(_, f)| f.as_str())
                        .collect();
                    let result = if refused.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("the broker refused the subscriptions {refused:?}"))
                    };
                    match up.take() {
                        Some(up) => {
                            let failed = result.is_err();
                            let _ = up.send(result);
                            if failed {
                                return;
                            }
                        }
                        None => {
                            if let Err(e) = result {
                                tracing::error!(error = %e, "requests on these topics are not served");
                            }
                        }
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if !dispatcher
                        .incoming(Bytes::from(p.topic.into_bytes()), p.payload)
                        .await
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(up) = up.take() {
                        let _ = up.send(Err(e.to_string()));
                        return;
                    }
                    tracing::warn!(error = %e, "lost the MQTT broker; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(10), up_rx).await {
        Ok(Ok(Ok(()))) => Ok(local),
        Ok(Ok(Err(e))) => Err(anyhow::anyhow!(
            "cannot connect to the MQTT broker {url}: {e}"
        )),
        _ => Err(anyhow::anyhow!(
            "cannot connect to the MQTT broker {url}: not connected and subscribed within 10 s"
        )),
    }
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

/// One incoming request: its topic and body, and its place in the pending budget.
struct Job {
    topic: Bytes,
    payload: Bytes,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

/// Requests one originator may have queued or in progress; more are answered "busy" at once,
/// so that one device cannot take the whole budget and stall everyone else.
const PER_ORIGINATOR: usize = 256;

/// Hands incoming publishes to per-originator queues (answers to the CSE's own requests go
/// to the pending map instead).
struct Dispatcher {
    cse: Cse,
    local: Arc<LocalLink>,
    budget: Arc<Semaphore>,
    queues: HashMap<Bytes, (mpsc::UnboundedSender<Job>, Arc<Semaphore>)>,
}

impl Dispatcher {
    fn new(cse: Cse, local: Arc<LocalLink>) -> Self {
        Dispatcher {
            cse,
            local,
            budget: Arc::new(Semaphore::new(MAX_PENDING)),
            queues: HashMap::new(),
        }
    }

    /// Takes one publish; `false` once the dispatcher can take no more.
    async fn incoming(&mut self, topic: Bytes, payload: Bytes) -> bool {
        if topic.starts_with(b"/oneM2M/resp/") {
            self.local.answered(&payload);
            return true;
        }
        let key = queue_key(&topic);
        let own = match self.queues.get(&key) {
            Some((q, own)) if !q.is_closed() => own.clone(),
            _ => Arc::new(Semaphore::new(PER_ORIGINATOR)),
        };
        // Never wait here: this loop also takes the answers the CSE itself waits for.
        let permits = match (
            self.budget.clone().try_acquire_owned(),
            own.clone().try_acquire_owned(),
        ) {
            (Ok(all), Ok(mine)) => (all, mine),
            _ => {
                busy(self.local.clone(), topic, payload);
                return true;
            }
        };
        let mut job = Job {
            topic,
            payload,
            _permits: permits,
        };
        // The queue may have just ended for idleness; then start a new one.
        if let Some((queue, _)) = self.queues.get(&key) {
            match queue.send(job) {
                Ok(()) => return true,
                Err(mpsc::error::SendError(back)) => job = back,
            }
        }
        if self.queues.len() >= 1024 {
            self.queues.retain(|_, (q, _)| !q.is_closed());
        }
        let (qtx, qrx) = mpsc::unbounded_channel();
        // A fresh channel with a live receiver accepts the job.
        let _ = qtx.send(job);
        self.queues.insert(key, (qtx, own));
        tokio::spawn(serve_queue(self.cse.clone(), self.local.clone(), qrx));
        true
    }
}

/// Answers a request that arrived while its originator (or the CSE) had too many in progress.
fn busy(local: Arc<LocalLink>, topic: Bytes, payload: Bytes) {
    tokio::spawn(async move {
        let Some(parsed) = std::str::from_utf8(&topic).ok().and_then(Topic::parse) else {
            return;
        };
        tracing::warn!(
            originator = parsed.originator,
            "too many requests in progress; answered busy"
        );
        let rqi = Serialization::Json
            .decode(&payload)
            .ok()
            .and_then(|v| RequestPrimitive::from_value(v).ok())
            .map(|r| r.rqi)
            .unwrap_or_default();
        let err = Error::internal(
            "the CSE is busy: too many requests from this originator are in progress; try again",
        );
        let rsp = ResponsePrimitive::error(&err, rqi, None);
        local.publish(
            parsed.response_topic("json"),
            Serialization::Json.encode(&rsp.to_value()),
        );
    });
}

async fn run(
    broker: Arc<EmbeddedBroker>,
    mut dispatcher: Dispatcher,
    mut rx: LinkRx,
    relay_for: Vec<String>,
) {
    loop {
        match rx.next().await {
            Ok(Some(Notification::Forward(forward))) => {
                if !dispatcher
                    .incoming(forward.publish.topic, forward.publish.payload)
                    .await
                {
                    return;
                }
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

/// Answers of one originator in progress at once. Writes in progress hold no thread (they
/// wait in the store's queue), so this only bounds the memory one originator's burst holds.
const PIPELINE: usize = 64;

/// Reads (blocking-path requests) of one originator running at once. More only make the
/// threads take turns on the cores: with 16 in flight from each of 4 devices, allowing all of
/// them cut retrieve `la` from 29,900 to 22,300/s on 2 cores.
const READS_AT_ONCE: usize = 2;

/// The topic and body of an answer to publish, if one is due.
type Outgoing = Option<(String, Vec<u8>)>;

/// An answer on its way: resolves once the request is done.
type Answer = Pin<Box<dyn Future<Output = Outgoing> + Send>>;

/// Handles one originator's requests in arrival order until it has been idle for a while.
///
/// Each request is taken as far as it goes at once ([`Cse::begin`]): a write is queued for the
/// store right away, so the writes of a device that pipelines reach the store in order and
/// commit together, and no thread waits for them. Reads (and whatever else runs on a blocking
/// thread) run side by side, but never beside a write of the same originator: a read waits
/// until the writes before it are answered, and a write until the reads before it are, so each
/// sees exactly what was sent before it. Answers leave in arrival order.
async fn serve_queue(cse: Cse, local: Arc<LocalLink>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut running = Running::default();
    loop {
        let job = if running.is_empty() {
            match tokio::time::timeout(IDLE, jobs.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(_) => {
                    // Refuse new jobs (the dispatcher starts a new queue for them), then finish
                    // what was queued meanwhile. Nothing is in progress, so the new queue
                    // cannot overtake anything of this one.
                    jobs.close();
                    match jobs.try_recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                }
            }
        } else {
            let room = running.len() < PIPELINE;
            tokio::select! {
                biased;
                Some(out) = running.next() => {
                    send(&local, out);
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
            _permits: permits,
        } = job;
        match start(&cse, &topic, &payload) {
            Step::Now(out) => running.push(
                Kind::Answered,
                Box::pin(async move {
                    drop(permits);
                    out
                }),
            ),
            Step::Write(write, reply) => {
                running
                    .send_until(&local, |r| r.count(Kind::Blocking) == 0)
                    .await;
                let pending = write.submit();
                running.push(
                    Kind::Write,
                    Box::pin(async move {
                        let out = reply.encode(pending.finish().await);
                        drop(permits);
                        out
                    }),
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
                        drop(permits);
                        out
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
    kinds: std::collections::VecDeque<Kind>,
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
    async fn next(&mut self) -> Option<Outgoing> {
        let out = self.answers.next().await?;
        self.kinds.pop_front();
        Some(out)
    }

    /// Sends the oldest answers as they become ready until `enough` holds (or none is left).
    async fn send_until(&mut self, local: &LocalLink, enough: impl Fn(&Running) -> bool) {
        while !enough(self) {
            match self.next().await {
                Some(out) => send(local, out),
                None => break,
            }
        }
    }
}

fn send(local: &LocalLink, out: Outgoing) {
    if let Some((topic, body)) = out {
        local.publish(topic, body);
    }
}

/// How one incoming publish proceeds.
#[allow(clippy::large_enum_variant)] // as `Begun`: the large variant is the hot one
enum Step {
    /// Answered already (or nothing to answer).
    Now(Outgoing),
    /// A write for the store.
    Write(Write, Reply),
    /// A request for a blocking thread.
    Blocking(Box<Blocked>, Reply),
}

/// Where and how the answer to a request goes.
struct Reply {
    topic: String,
    ser: Serialization,
}

impl Reply {
    fn encode(&self, rsp: Option<ResponsePrimitive>) -> Outgoing {
        rsp.map(|rsp| (self.topic.clone(), self.ser.encode(&rsp.to_value())))
    }
}

/// Reads one incoming publish and takes it as far as it goes without waiting.
fn start(cse: &Cse, topic: &Bytes, payload: &Bytes) -> Step {
    let Ok(topic) = std::str::from_utf8(topic) else {
        tracing::warn!("ignoring a publish whose topic is not UTF-8");
        return Step::Now(None);
    };
    let Some(parsed) = Topic::parse(topic) else {
        tracing::warn!(%topic, "ignoring a publish on a malformed oneM2M topic");
        return Step::Now(None);
    };
    let Some(ser) = Serialization::from_topic_level(parsed.serialization) else {
        let level = parsed.serialization.unwrap_or_default();
        tracing::warn!(%topic, "request in an unsupported serialization");
        let err = Error::new(
            Rsc::UNSUPPORTED_MEDIA_TYPE,
            format!("serialization '{level}' is not supported; publish to .../json"),
        );
        let reply = Reply {
            topic: parsed.response_topic("json"),
            ser: Serialization::Json,
        };
        return Step::Now(reply.encode(Some(ResponsePrimitive::error(&err, "", None))));
    };
    let reply = Reply {
        topic: parsed.response_topic(ser.name()),
        ser,
    };
    let reject = |err: Error, rqi: Option<String>, rvi: Option<String>| {
        tracing::warn!(originator = parsed.originator, rsc = err.rsc.code(), dbg = %err.dbg, "request rejected");
        Step::Now(reply.encode(Some(ResponsePrimitive::error(
            &err,
            rqi.unwrap_or_default(),
            rvi,
        ))))
    };
    let body = match ser.decode(payload) {
        Ok(v) => v,
        Err(msg) => return reject(Error::bad_request(msg), None, None),
    };
    let mut req = match RequestPrimitive::from_value(body) {
        Ok(r) => r,
        Err(e) => return reject(e.error, e.rqi, None),
    };
    if let Err(err) = check_topic(cse, &parsed, &mut req) {
        return reject(err, Some(req.rqi), req.rvi);
    }
    match cse.begin(req) {
        Begun::Answered(rsp) => Step::Now(reply.encode(rsp)),
        Begun::Write(write) => Step::Write(write, reply),
        Begun::Blocking(blocked) => Step::Blocking(blocked, reply),
    }
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
                // A CSE forwarding for one of its entities publishes under its own ID with the
                // entity's SP-relative ID in fr (/id-mn/Cae on topic level id-mn).
                Some(fr) if fr.starts_with(&format!("/{}/", topic.originator)) => {}
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
