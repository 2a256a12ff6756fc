//! One MQTT client session over rumqttc, as every MQTT client of m2mhub runs it: the client
//! library, the CSE's session on an external broker, and its connections to other brokers.
//!
//! * [`Session::connect`] returns once the broker acknowledged the connection and the initial
//!   subscriptions (a request published before its SUBACK may find no subscriber).
//! * [`Session::subscribe`] waits for the SUBACK of exactly its own SUBSCRIBE, and fails when
//!   the broker refuses the filter.
//! * The session reconnects by itself; when the broker lost the session (`session_present`
//!   false), every filter subscribed so far is subscribed again.
//! * Incoming publishes go to an [`Inbox`], in order.

use crate::config::Secret;
use crate::sync::lock;
use bytes::Bytes;
use rumqttc::mqttbytes::v4::SubscribeReasonCode;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Where a session's incoming publishes go.
pub trait Inbox: Send + 'static {
    /// Takes one publish (`out` publishes on the same session, for an answer); returning
    /// `false` ends the session.
    fn publish(
        &mut self,
        out: &Publisher,
        topic: String,
        payload: Bytes,
    ) -> impl Future<Output = bool> + Send;
}

/// Publishes on a session; cheap to clone.
#[derive(Clone)]
pub struct Publisher(AsyncClient);

impl Publisher {
    /// Publishes at QoS 1, waiting for room in the request queue.
    pub async fn publish(&self, topic: String, body: Vec<u8>) -> Result<(), String> {
        self.0
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .map_err(|e| e.to_string())
    }

    /// Publishes at QoS 1 if the request queue has room; never waits.
    pub fn try_publish(&self, topic: String, body: Vec<u8>) -> Result<(), String> {
        self.0
            .try_publish(topic, QoS::AtLeastOnce, false, body)
            .map_err(|e| e.to_string())
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    /// `false` asks the broker to keep the session (and queued QoS 1 messages) across
    /// disconnects.
    pub clean_session: bool,
    pub keep_alive: Duration,
    /// Largest packet sent or received.
    pub max_packet: usize,
    /// Requests queued for the connection at most.
    pub capacity: usize,
    /// How long [`Session::connect`] waits for CONNACK and the initial SUBACK.
    pub connect_within: Duration,
    /// User name and password for the broker.
    pub credentials: Option<(String, Secret)>,
    /// TLS (`mqtts://`): how the broker's certificate is verified, and ours presented.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl SessionOptions {
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>) -> Self {
        SessionOptions {
            host: host.into(),
            port,
            client_id: client_id.into(),
            clean_session: true,
            keep_alive: Duration::from_secs(30),
            max_packet: 1 << 20,
            capacity: 64,
            connect_within: Duration::from_secs(10),
            credentials: None,
            tls: None,
        }
    }
}

/// A connected session; dropping it ends the connection.
pub struct Session {
    client: AsyncClient,
    subs: Arc<Subscriptions>,
    /// One SUBSCRIBE in progress at a time from [`Session::subscribe`].
    subscribing: tokio::sync::Mutex<()>,
    /// The running connection; `None` once [detached](Session::detach).
    driver: Option<tokio::task::AbortHandle>,
}

/// The filters of a session and the SUBSCRIBEs waiting for their SUBACK.
#[derive(Default)]
struct Subscriptions {
    state: Mutex<SubState>,
}

#[derive(Default)]
struct SubState {
    /// Every filter subscribed so far, renewed when the broker lost the session.
    filters: Vec<String>,
    /// SUBSCRIBEs queued but not yet sent, in order; `None` for a renewal nobody waits for.
    queued: VecDeque<Option<SubWaiter>>,
    /// SUBSCRIBEs sent, by packet identifier.
    sent: HashMap<u16, SubWaiter>,
}

/// Who waits for a SUBACK, and the filters it asked for.
struct SubWaiter {
    filters: Vec<String>,
    done: oneshot::Sender<Result<(), String>>,
}

impl Subscriptions {
    /// Queues one SUBSCRIBE for `filters`; the order of queued requests is the order in which
    /// rumqttc sends them, so each SUBACK can be matched to its request.
    fn queue(
        &self,
        client: &AsyncClient,
        filters: Vec<String>,
        waiter: Option<oneshot::Sender<Result<(), String>>>,
    ) -> Result<(), String> {
        let mut state = lock(&self.state);
        let many = filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
        client
            .try_subscribe_many(many)
            .map_err(|e| format!("cannot subscribe: {e}"))?;
        state
            .queued
            .push_back(waiter.map(|done| SubWaiter { filters, done }));
        Ok(())
    }

    fn sent(&self, pkid: u16) {
        let mut state = lock(&self.state);
        if let Some(Some(waiter)) = state.queued.pop_front() {
            state.sent.insert(pkid, waiter);
        }
    }

    fn acked(&self, pkid: u16, codes: &[SubscribeReasonCode]) {
        let mut state = lock(&self.state);
        let Some(waiter) = state.sent.remove(&pkid) else {
            let refused = codes
                .iter()
                .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                .count();
            if refused > 0 {
                tracing::error!(refused, "the broker refused renewed subscriptions");
            }
            return;
        };
        let refused: Vec<&str> = codes
            .iter()
            .zip(&waiter.filters)
            .filter(|(c, _)| matches!(c, SubscribeReasonCode::Failure))
            .map(|(_, f)| f.as_str())
            .collect();
        let result = if refused.is_empty() {
            for f in &waiter.filters {
                if !state.filters.contains(f) {
                    state.filters.push(f.clone());
                }
            }
            Ok(())
        } else {
            Err(format!("the broker refused the subscriptions {refused:?}"))
        };
        let _ = waiter.done.send(result);
    }

    /// A new connection: SUBSCRIBEs in flight on the old one are lost (and their packet
    /// identifiers may come back for new ones). When the broker starts a new session, rumqttc
    /// also drops the requests that were still queued when the old connection failed, so
    /// their waits fail too: a caller sees an error and may subscribe again.
    fn connected(&self, session_present: bool) {
        let mut state = lock(&self.state);
        let lost: Vec<SubWaiter> = if session_present {
            state.sent.drain().map(|(_, w)| w).collect()
        } else {
            let queued: Vec<SubWaiter> = state.queued.drain(..).flatten().collect();
            state.sent.drain().map(|(_, w)| w).chain(queued).collect()
        };
        for waiter in lost {
            let _ = waiter.done.send(Err("the connection was lost".into()));
        }
    }

    /// After a reconnect: when the broker lost the session, every filter is subscribed again.
    fn renew(&self, client: &AsyncClient, session_present: bool) {
        let filters = lock(&self.state).filters.clone();
        if !session_present && !filters.is_empty() {
            if let Err(e) = self.queue(client, filters, None) {
                tracing::warn!(error = %e, "cannot renew subscriptions");
            }
        }
    }
}

impl Session {
    /// Connects, subscribes to `filters`, and returns once both are acknowledged; the error
    /// says why not.
    pub async fn connect(
        opts: SessionOptions,
        filters: Vec<String>,
        inbox: impl Inbox,
    ) -> Result<Session, String> {
        Session::connect_with(opts, filters, |_| (inbox, ()))
            .await
            .map(|(session, ())| session)
    }

    /// As [`connect`](Self::connect), for an inbox that publishes on the session itself: `make`
    /// gets the session's publisher before anything arrives, and returns the inbox and
    /// whatever else it made with the publisher.
    pub async fn connect_with<I: Inbox, T>(
        opts: SessionOptions,
        filters: Vec<String>,
        make: impl FnOnce(Publisher) -> (I, T),
    ) -> Result<(Session, T), String> {
        let mut mqtt = MqttOptions::new(opts.client_id.clone(), opts.host.clone(), opts.port);
        mqtt.set_keep_alive(opts.keep_alive);
        mqtt.set_clean_session(opts.clean_session);
        mqtt.set_max_packet_size(opts.max_packet, opts.max_packet);
        if let Some((user, password)) = &opts.credentials {
            mqtt.set_credentials(user.clone(), password.expose());
        }
        if let Some(tls) = &opts.tls {
            mqtt.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.clone()),
            ));
        }
        let (client, mut eventloop) = AsyncClient::new(mqtt, opts.capacity);
        let mut net = eventloop.network_options();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(opts.connect_within.as_secs().max(1));
        eventloop.set_network_options(net);

        let (inbox, made) = make(Publisher(client.clone()));
        let subs = Arc::new(Subscriptions::default());
        let (up_tx, up_rx) = oneshot::channel();
        let driver = tokio::spawn(drive(
            eventloop,
            client.clone(),
            subs.clone(),
            filters,
            inbox,
            up_tx,
        ))
        .abort_handle();
        let up = match tokio::time::timeout(opts.connect_within, up_rx).await {
            Ok(Ok(up)) => up,
            Ok(Err(_)) => Err("the connection ended".to_string()),
            Err(_) => Err(format!(
                "not connected and subscribed within {:?}",
                opts.connect_within
            )),
        };
        if let Err(e) = up {
            driver.abort();
            return Err(e);
        }
        let session = Session {
            client,
            subs,
            subscribing: tokio::sync::Mutex::new(()),
            driver: Some(driver),
        };
        Ok((session, made))
    }

    /// Keeps the connection running for the rest of the process, without a handle.
    pub fn detach(mut self) {
        self.driver = None;
    }

    /// Subscribes to `filter` at QoS 1 unless already subscribed, and waits (at most `within`)
    /// for the broker to acknowledge it.
    pub async fn subscribe(&self, filter: &str, within: Duration) -> Result<(), String> {
        let _one_at_a_time = self.subscribing.lock().await;
        if lock(&self.subs.state).filters.iter().any(|f| f == filter) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.subs
            .queue(&self.client, vec![filter.to_string()], Some(tx))?;
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the session ended".into()),
            Err(_) => Err(format!("no SUBACK within {within:?}")),
        }
    }

    /// Publishes on this session.
    pub fn publisher(&self) -> Publisher {
        Publisher(self.client.clone())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

/// Runs the connection: reconnects, renews subscriptions, hands publishes to the inbox.
async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subs: Arc<Subscriptions>,
    initial: Vec<String>,
    mut inbox: impl Inbox,
    up: oneshot::Sender<Result<(), String>>,
) {
    let out = Publisher(client.clone());
    // Until the first CONNACK (and the initial SUBACK), failures go to `connect`.
    let mut up = Some(up);
    let mut initial_ack: Option<oneshot::Receiver<Result<(), String>>> = None;
    loop {
        let event = tokio::select! {
            biased;
            acked = async { initial_ack.as_mut().expect("guarded").await }, if initial_ack.is_some() => {
                initial_ack = None;
                let result = acked.unwrap_or_else(|_| Err("the connection was lost".into()));
                let failed = result.is_err();
                if let Some(up) = up.take() {
                    let _ = up.send(result);
                }
                if failed {
                    return;
                }
                continue;
            }
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                subs.connected(ack.session_present);
                if up.is_some() {
                    // The first connection: subscribe to the initial filters, even when a
                    // persistent session holds some (the list may have changed since).
                    if initial.is_empty() {
                        if let Some(up) = up.take() {
                            let _ = up.send(Ok(()));
                        }
                    } else {
                        let (tx, rx) = oneshot::channel();
                        if let Err(e) = subs.queue(&client, initial.clone(), Some(tx)) {
                            if let Some(up) = up.take() {
                                let _ = up.send(Err(e));
                            }
                            return;
                        }
                        initial_ack = Some(rx);
                    }
                } else {
                    subs.renew(&client, ack.session_present);
                }
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => subs.sent(pkid),
            Ok(Event::Incoming(Packet::SubAck(ack))) => subs.acked(ack.pkid, &ack.return_codes),
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if !inbox.publish(&out, p.topic, p.payload).await {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                // Before the first connection: a refusal (nothing listens, or the broker says
                // no) is final. A connection the broker closed while it still settled an older
                // one with our client ID is tried again until `connect` gives up.
                let final_ = matches!(
                    &e,
                    rumqttc::ConnectionError::ConnectionRefused(_)
                        | rumqttc::ConnectionError::Tls(_)
                ) || matches!(&e, rumqttc::ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
                if let Some(tx) = up.take() {
                    if final_ {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                    up = Some(tx);
                    initial_ack = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                tracing::warn!(error = %e, "MQTT connection lost; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
