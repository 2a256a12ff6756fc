//! The MQTT transport (TS-0010): requests go to `/oneM2M/req/<originator>/<cse-id>/json`
//! (`reg_req` with a credential for a registration without an AE-ID yet), QoS 1, and are
//! correlated with their responses by `rqi`.

mod session;

pub use session::{Inbox, Publisher, Session, SessionOptions};

use super::notify::{hand_over, Incoming, Notifications};
use super::replies::{NoAnswer, Replies};
use super::{ClientError, Endpoint, Options, Transport};
use crate::config::Secret;
use crate::onem2m::topic::{id_to_topic, Topic, TopicKind};
use crate::onem2m::{Error, MqttUrl, Operation, RequestPrimitive, ResourceType, ResponsePrimitive};
use crate::sync::lock;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Largest packet sent or received (a `rcn=4` retrieve can be large).
const MAX_PACKET: usize = 1 << 20;

pub struct MqttTransport {
    session: Session,
    routes: Arc<Routes>,
    /// The receiving CSE's ID from the endpoint fragment.
    cse_id: Option<String>,
    /// Where this client reaches its broker, for the `poa` it registers.
    broker: String,
    /// Topic originator level for registrations (`reg_req`): the user name, or the client ID.
    credential: String,
    /// Whether the broker knows us by a user name: then every registration goes over
    /// `reg_req` (the broker binds our originators to it).
    logged_in: bool,
    timeout: Duration,
}

/// Where incoming publishes go: answers to our requests, and NOTIFY requests for the
/// receivers started with [`Transport::notifications`].
#[derive(Default)]
struct Routes {
    replies: Replies,
    /// Notification receivers by the receiver level of `/oneM2M/req/<from>/<receiver>/...`.
    receivers: Mutex<HashMap<String, mpsc::Sender<Incoming>>>,
}

impl Inbox for Arc<Routes> {
    async fn publish(&mut self, out: &Publisher, topic: String, payload: Bytes) -> bool {
        route(self, out, &topic, &payload);
        true
    }
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
        let where_ = MqttUrl {
            host: host.clone(),
            port: *port,
            tls: *tls,
            path: None,
            fragment: None,
            login: None,
        }
        .broker();
        let tls = if *tls {
            Some(opts.tls.client_config()?)
        } else {
            None
        };
        let credentials = opts
            .username
            .clone()
            .map(|u| (u, opts.password.clone().unwrap_or_else(|| Secret::new(""))));
        let session_opts = SessionOptions {
            max_packet: MAX_PACKET,
            connect_within: opts.timeout,
            credentials,
            tls,
            ..SessionOptions::new(host.clone(), *port, client_id.clone())
        };
        let routes = Arc::new(Routes::default());
        let session = Session::connect(session_opts, Vec::new(), routes.clone())
            .await
            .map_err(|e| ClientError::Connect(where_.clone(), e))?;
        Ok(MqttTransport {
            session,
            routes,
            cse_id: cse_id.clone(),
            broker: where_,
            credential: opts
                .username
                .clone()
                .unwrap_or_else(|| client_id.replace(['/', '+', '#'], "_")),
            logged_in: opts.username.is_some(),
            timeout: opts.timeout,
        })
    }

    async fn subscribe(&self, filter: &str) -> Result<(), ClientError> {
        self.session
            .subscribe(filter, self.timeout)
            .await
            .map_err(ClientError::Transport)
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

/// TS-0010 practice: `C::<cse-id>` for a CSE, `A::<ae-id>` for an AE, random before
/// registration.
fn default_client_id(originator: &str) -> String {
    match originator {
        "" | "C" | "S" => format!("A::reg-{:016x}", rand::random::<u64>()),
        o if o.starts_with('/') => format!("C::{}", id_to_topic(o)),
        o => format!("A::{}", id_to_topic(o)),
    }
}

/// Whether `req` goes over `reg_req`: a registration (AE or remoteCSE) without an ID yet, or
/// any registration of a client that logged in (its originator is not bound to it yet).
fn is_registration(req: &RequestPrimitive, logged_in: bool) -> bool {
    let unnamed = matches!(req.fr.as_deref(), None | Some("") | Some("C") | Some("S"));
    let registers = [ResourceType::Ae, ResourceType::RemoteCse]
        .iter()
        .any(|t| req.ty == Some(t.code() as u64));
    req.op == Operation::Create && registers && (unnamed || logged_in)
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
        let (topic, filter) = if is_registration(&req, self.logged_in) {
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
        self.subscribe(&filter).await?;
        // The answer counts only on the response topic of the entity asked.
        let answer = self.routes.replies.expect_from(&req.rqi, Some(&receiver));
        let body = serde_json::to_vec(&req.to_value()).unwrap_or_default();
        self.session
            .publisher()
            .publish(topic, body)
            .await
            .map_err(ClientError::Transport)?;
        match answer.wait(self.timeout).await {
            Ok(rsp) => Ok(rsp),
            Err(NoAnswer::Closed) => Err(ClientError::Transport("connection closed".into())),
            Err(NoAnswer::Timeout) => Err(ClientError::Timeout(self.timeout)),
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
        lock(&self.routes.receivers).insert(me.clone(), tx);
        self.subscribe(&format!("/oneM2M/req/+/{me}/#")).await?;
        Ok((Notifications { rx, server: None }, self.broker.clone()))
    }
}

fn route(routes: &Routes, out: &Publisher, topic: &str, payload: &[u8]) {
    let Some(t) = Topic::parse(topic) else { return };
    match t.kind {
        TopicKind::Resp | TopicKind::RegResp => {
            routes.replies.answer_json_from(Some(t.receiver), payload);
        }
        TopicKind::Req => {
            let Some(tx) = lock(&routes.receivers).get(t.receiver).cloned() else {
                return;
            };
            let response_topic = t.response_topic("json");
            let parsed = serde_json::from_slice(payload)
                .map_err(|e| Error::bad_request(format!("body is not valid JSON: {e}")))
                .and_then(|v| RequestPrimitive::from_value(v).map_err(|e| e.error));
            let out = out.clone();
            tokio::spawn(async move {
                let rsp = match parsed {
                    Ok(req) if req.op == Operation::Notify => hand_over(&tx, req).await,
                    Ok(req) => ResponsePrimitive::error(
                        &Error::not_allowed("this AE accepts NOTIFY requests only"),
                        req.rqi,
                        req.rvi,
                    ),
                    Err(e) => ResponsePrimitive::error(&e, "", None),
                };
                let body = serde_json::to_vec(&rsp.to_value()).unwrap_or_default();
                let _ = out.publish(response_topic, body).await;
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
        assert!(is_registration(&r, false));
        r.fr = Some("C".into());
        assert!(is_registration(&r, false));
        r.fr = Some("Cabc".into());
        assert!(!is_registration(&r, false));
        assert!(is_registration(&r, true), "logged in: always on reg_req");
        r.fr = None;
        r.ty = Some(3);
        assert!(!is_registration(&r, true));
    }
}
