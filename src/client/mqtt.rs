//! The MQTT transport (TS-0010): requests go to `/oneM2M/req/<originator>/<cse-id>/json`
//! (`reg_req` with a credential for a registration without an AE-ID yet), QoS 1, and are
//! correlated with their responses by `rqi`.

use super::notify::{Incoming, Notifications};
use super::{ClientError, Endpoint, Options, Transport};
use crate::onem2m::topic::{id_to_topic, Topic, TopicKind};
use crate::onem2m::{
    Error, MqttUrl, Operation, RequestPrimitive, ResourceType, ResponsePrimitive, Rsc,
};
use crate::sync::lock;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Largest packet sent or received (a `rcn=4` retrieve can be large).
const MAX_PACKET: usize = 1 << 20;
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

pub struct MqttTransport {
    client: AsyncClient,
    /// The receiving CSE's ID from the endpoint fragment.
    cse_id: Option<String>,
    /// Where this client reaches its broker, for the `poa` it registers.
    broker: String,
    /// Topic originator level for registrations (`reg_req`).
    credential: String,
    timeout: Duration,
    shared: Arc<Shared>,
    subscribing: tokio::sync::Mutex<()>,
    driver: tokio::task::AbortHandle,
}

struct Shared {
    client: AsyncClient,
    pending: Mutex<HashMap<String, oneshot::Sender<ResponsePrimitive>>>,
    /// Every filter subscribed so far, renewed after a reconnect.
    filters: Mutex<Vec<String>>,
    /// Count of SUBACKs received.
    subacks: watch::Sender<u64>,
    /// Notification receivers by the receiver level of `/oneM2M/req/<from>/<receiver>/...`.
    receivers: Mutex<HashMap<String, mpsc::Sender<Incoming>>>,
}

impl MqttTransport {
    pub async fn connect(
        endpoint: &Endpoint,
        originator: &str,
        opts: &Options,
    ) -> Result<Self, ClientError> {
        let Endpoint::Mqtt {
            host,
            port,
            cse_id,
            tls,
        } = endpoint
        else {
            return Err(ClientError::Endpoint(
                format!("{endpoint:?}"),
                "not an MQTT endpoint".into(),
            ));
        };
        let client_id = opts
            .client_id
            .clone()
            .unwrap_or_else(|| default_client_id(originator));
        let mut mqtt = MqttOptions::new(client_id.clone(), host.clone(), *port);
        mqtt.set_keep_alive(Duration::from_secs(30));
        mqtt.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
        let mut net = eventloop.network_options();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(opts.timeout.as_secs().max(1));
        eventloop.set_network_options(net);

        let shared = Arc::new(Shared {
            client: client.clone(),
            pending: Mutex::new(HashMap::new()),
            filters: Mutex::new(Vec::new()),
            subacks: watch::channel(0).0,
            receivers: Mutex::new(HashMap::new()),
        });
        let (up_tx, up_rx) = oneshot::channel();
        let driver = tokio::spawn(drive(eventloop, shared.clone(), up_tx)).abort_handle();
        let where_ = MqttUrl {
            host: host.clone(),
            port: *port,
            tls: *tls,
            path: None,
            fragment: None,
        }
        .broker();
        match tokio::time::timeout(opts.timeout, up_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                driver.abort();
                return Err(ClientError::Connect(where_, e));
            }
            _ => {
                driver.abort();
                return Err(ClientError::Connect(where_, "no CONNACK in time".into()));
            }
        }
        Ok(MqttTransport {
            client,
            cse_id: cse_id.clone(),
            broker: where_,
            credential: client_id.replace(['/', '+', '#'], "_"),
            timeout: opts.timeout,
            shared,
            subscribing: tokio::sync::Mutex::new(()),
            driver,
        })
    }

    /// Subscribes to `filter` once, waiting for the broker's SUBACK.
    async fn ensure_subscribed(&self, filter: &str) -> Result<(), ClientError> {
        let _one_at_a_time = self.subscribing.lock().await;
        if lock(&self.shared.filters).iter().any(|f| f == filter) {
            return Ok(());
        }
        let mut acks = self.shared.subacks.subscribe();
        let before = *acks.borrow_and_update();
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let acked = tokio::time::timeout(self.timeout, acks.wait_for(|n| *n > before)).await;
        match acked {
            Ok(Ok(_)) => {
                lock(&self.shared.filters).push(filter.to_string());
                Ok(())
            }
            _ => Err(ClientError::Timeout(self.timeout)),
        }
    }

    /// The receiver level of the request topic: the endpoint's fragment, else the CSE-ID in
    /// an SP-relative or absolute `to`.
    fn receiver(&self, to: &str) -> Result<String, ClientError> {
        if let Some(id) = &self.cse_id {
            return Ok(id.clone());
        }
        let csi = if let Some(abs) = to.strip_prefix("//") {
            abs.split('/').nth(1)
        } else {
            to.strip_prefix('/').and_then(|sp| sp.split('/').next())
        };
        csi.filter(|c| !c.is_empty()).map(str::to_string).ok_or_else(|| {
            ClientError::Endpoint(
                self.broker.clone(),
                format!("'{to}' does not name a CSE; add the receiving CSE-ID to the endpoint, e.g. {}#id-in", self.broker),
            )
        })
    }
}

impl Drop for MqttTransport {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// TS-0010 practice: `C::<cse-id>` for a CSE, `A::<ae-id>` for an AE, random before
/// registration.
fn default_client_id(originator: &str) -> String {
    match originator {
        "" | "C" | "S" => format!("A::reg-{:016x}", rand::random::<u64>()),
        o if o.starts_with('/') => format!("C::{}", id_to_topic(o)),
        o => format!("A::{}", id_to_topic(o)),
    }
}

fn is_registration(req: &RequestPrimitive) -> bool {
    let unnamed = matches!(req.fr.as_deref(), None | Some("") | Some("C") | Some("S"));
    let registers = [ResourceType::Ae, ResourceType::RemoteCse]
        .iter()
        .any(|t| req.ty == Some(t.code() as u64));
    req.op == Operation::Create && registers && unnamed
}

impl MqttTransport {
    /// Sends `req` to the entity whose ID (in topic form) is `receiver`, whatever the
    /// endpoint's fragment says: how a CSE notifies an AE on a broker.
    pub async fn send_to(
        &self,
        receiver: &str,
        req: RequestPrimitive,
    ) -> Result<ResponsePrimitive, ClientError> {
        self.exchange(receiver.to_string(), req).await
    }

    async fn exchange(
        &self,
        receiver: String,
        req: RequestPrimitive,
    ) -> Result<ResponsePrimitive, ClientError> {
        let (topic, filter) = if is_registration(&req) {
            (
                format!("/oneM2M/reg_req/{}/{receiver}/json", self.credential),
                format!("/oneM2M/reg_resp/{}/+/#", self.credential),
            )
        } else {
            let me = id_to_topic(req.fr.as_deref().unwrap_or_default());
            (
                format!("/oneM2M/req/{me}/{receiver}/json"),
                format!("/oneM2M/resp/{me}/+/#"),
            )
        };
        self.ensure_subscribed(&filter).await?;
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(req.rqi.clone(), tx);
        let body = serde_json::to_vec(&req.to_value()).unwrap_or_default();
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
        {
            lock(&self.shared.pending).remove(&req.rqi);
            return Err(ClientError::Transport(e.to_string()));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(rsp)) => Ok(rsp),
            Ok(Err(_)) => Err(ClientError::Transport("connection closed".into())),
            Err(_) => {
                lock(&self.shared.pending).remove(&req.rqi);
                Err(ClientError::Timeout(self.timeout))
            }
        }
    }
}

impl Transport for MqttTransport {
    async fn send(&self, req: RequestPrimitive) -> Result<ResponsePrimitive, ClientError> {
        let receiver = self.receiver(&req.to)?;
        self.exchange(receiver, req).await
    }

    /// Subscribes to `/oneM2M/req/+/<originator>/#`; the `poa` is this broker.
    async fn notifications(
        &self,
        originator: &str,
        _listen: Option<SocketAddr>,
    ) -> Result<(Notifications, String), ClientError> {
        let me = id_to_topic(originator);
        let (tx, rx) = mpsc::channel(1024);
        lock(&self.shared.receivers).insert(me.clone(), tx);
        self.ensure_subscribed(&format!("/oneM2M/req/+/{me}/#"))
            .await?;
        Ok((Notifications { rx, server: None }, self.broker.clone()))
    }
}

async fn drive(
    mut eventloop: EventLoop,
    shared: Arc<Shared>,
    up: oneshot::Sender<Result<(), String>>,
) {
    let mut up = Some(up);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if let Some(up) = up.take() {
                    let _ = up.send(Ok(()));
                } else if !ack.session_present {
                    // A new session after a reconnect: subscribe again.
                    for f in lock(&shared.filters).iter() {
                        let _ = shared.client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                shared.subacks.send_modify(|n| *n += 1);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => route(&shared, &p.topic, &p.payload),
            Ok(_) => {}
            Err(e) => {
                // Nothing listening: say so at once. A connection that the broker closed while
                // it still settled a previous one with our client ID (rumqttd reuses connection
                // IDs, so a late disconnect of the old session can hit the new one) is tried
                // again until `connect` gives up.
                let refused = matches!(&e, rumqttc::ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
                if up.is_some() && refused {
                    if let Some(up) = up.take() {
                        let _ = up.send(Err(e.to_string()));
                    }
                    return;
                }
                let pause = if up.is_some() {
                    Duration::from_millis(50)
                } else {
                    Duration::from_secs(1)
                };
                tracing::debug!(error = %e, "MQTT connection lost; reconnecting");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

fn route(shared: &Arc<Shared>, topic: &str, payload: &[u8]) {
    let Some(t) = Topic::parse(topic) else { return };
    match t.kind {
        TopicKind::Resp | TopicKind::RegResp => {
            let Ok(rsp) = serde_json::from_slice(payload)
                .map_err(|_| ())
                .and_then(|v| ResponsePrimitive::from_value(v).map_err(|_| ()))
            else {
                tracing::debug!(%topic, "ignoring a response that is not a response primitive");
                return;
            };
            if let Some(tx) = lock(&shared.pending).remove(&rsp.rqi) {
                let _ = tx.send(rsp);
            }
        }
        TopicKind::Req => {
            let Some(tx) = lock(&shared.receivers).get(t.receiver).cloned() else {
                return;
            };
            let response_topic = t.response_topic("json");
            let parsed = serde_json::from_slice(payload)
                .map_err(|e| Error::bad_request(format!("body is not valid JSON: {e}")))
                .and_then(|v| RequestPrimitive::from_value(v).map_err(|e| e.error));
            let client = shared.client.clone();
            tokio::spawn(async move {
                let rsp = match parsed {
                    Ok(req) if req.op == Operation::Notify => {
                        let (rqi, rvi) = (req.rqi.clone(), req.rvi.clone());
                        let (incoming, answer) = Incoming::new(req);
                        let rsc = if tx.send(incoming).await.is_ok() {
                            tokio::time::timeout(ANSWER_WITHIN, answer)
                                .await
                                .ok()
                                .and_then(Result::ok)
                                .unwrap_or(Rsc::OK)
                        } else {
                            Rsc::TARGET_NOT_REACHABLE
                        };
                        ResponsePrimitive::new(rsc, rqi, rvi, None)
                    }
                    Ok(req) => ResponsePrimitive::error(
                        &Error::not_allowed("this AE accepts NOTIFY requests only"),
                        req.rqi,
                        req.rvi,
                    ),
                    Err(e) => ResponsePrimitive::error(&e, "", None),
                };
                let body = serde_json::to_vec(&rsp.to_value()).unwrap_or_default();
                let _ = client
                    .publish(response_topic, QoS::AtLeastOnce, false, body)
                    .await;
            });
        }
        TopicKind::RegReq => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_follow_ts_0010_practice() {
        assert_eq!(default_client_id("Cabc"), "A::Cabc");
        assert_eq!(default_client_id("/id-mn"), "C::id-mn");
        assert!(default_client_id("").starts_with("A::reg-"));
        assert_ne!(default_client_id("C"), default_client_id("C"));
    }

    #[test]
    fn registrations_without_an_id_go_to_reg_req() {
        let mut r = RequestPrimitive::new(Operation::Create, "cse-in", "", "1");
        r.ty = Some(2);
        assert!(is_registration(&r));
        r.fr = Some("C".into());
        assert!(is_registration(&r));
        r.fr = Some("Cabc".into());
        assert!(!is_registration(&r));
        r.fr = None;
        r.ty = Some(3);
        assert!(!is_registration(&r));
    }
}
