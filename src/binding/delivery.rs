//! Sending notifications: in-process to devices on our own broker, over an MQTT client
//! connection to another broker (pooled, reconnecting), or as an HTTP POST.
//!
//! Queued notifications go through one queue per target, each with its own worker: a target
//! gets its notifications in order, retried with backoff, and a dead or slow target never
//! delays another. A full queue drops (and logs) what does not fit.

use super::mqtt::link::LocalLink;
use super::outbound::{self, Policy};
use super::queues::{next_or_idle, KeyedQueues, Pushed};
use crate::client::{ClientError, Endpoint, HttpTransport, MqttTransport, Options, TlsOptions};
use crate::config::PeerAuth;
use crate::cse::notify::{Delivery, PEER_ANSWER_WITHIN};
use crate::cse::reach::Target;
use crate::onem2m::MqttUrl;
use crate::onem2m::{RequestPrimitive, ResponsePrimitive, Rsc};
use crate::sync::lock;
use crate::throttle::Throttle;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// Notifications waiting for one target at most.
const QUEUE: usize = 1000;
/// Notification targets with a queue (and a worker) at once.
const MAX_TARGETS: usize = 1024;
/// Connections to other brokers kept for notifications at once; past it, the least recently
/// used one is closed.
const MAX_BROKERS: usize = 32;
/// Tries per notification, the first included.
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// A target's worker ends after this long without notifications.
const IDLE: Duration = Duration::from_secs(60);
/// The largest answer read from a target: an answer to a NOTIFY is small, a forwarded
/// request's answer at most a primitive.
const MAX_RESPONSE: usize = 4 << 20;

/// The broker the CSE's own session is on: targets there get notifications through that
/// session rather than through another connection.
pub enum OwnBroker {
    /// The embedded broker, listening on these addresses.
    Listening(Vec<SocketAddr>),
    /// An outside broker (external mode), at this host and port.
    At(String, u16),
}

/// A broker by host, port and TLS.
type BrokerKey = (String, u16, bool);

pub struct Deliverer {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Handle,
    cse_id: String,
    /// The CSE's own MQTT session and where its broker is.
    local: Option<(Arc<LocalLink>, OwnBroker)>,
    http: HttpTransport,
    /// Connections to other brokers, with when each was last used.
    brokers: tokio::sync::Mutex<HashMap<BrokerKey, (Arc<MqttTransport>, std::time::Instant)>>,
    /// The site CA, trusted for peers over TLS besides the system roots.
    site_ca: Option<std::path::PathBuf>,
    /// How to log in at the brokers of configured peers, by host, port and TLS: a peer's
    /// password never goes to the same port without TLS.
    peers: HashMap<(String, u16, bool), PeerAuth>,
    queues: Mutex<KeyedQueues<Target, RequestPrimitive>>,
    /// Where clients may make the CSE call.
    policy: Arc<Policy>,
    /// Set on shutdown: the calls requests wait for end at once, and no new ones start.
    stopped: tokio::sync::watch::Sender<bool>,
}

/// Notifications dropped because their target's queue was full, and those not delivered
/// after every try: logged at most once a minute each, counted for metrics.
pub static DROPPED: Throttle = Throttle::new();
pub static UNDELIVERED: Throttle = Throttle::new();

use crate::cse::notify::SHUTTING_DOWN as STOPPING;

impl Deliverer {
    /// `site_ca` (`tls.ca_certs`) is trusted for `https://` targets besides the system roots.
    /// `peers` are the brokers of configured peers (the registrar's `poa`) and how to log in
    /// there. Every other target must be allowed by `policy`.
    pub fn new(
        runtime: Handle,
        cse_id: &str,
        local: Option<(Arc<LocalLink>, OwnBroker)>,
        site_ca: Option<&std::path::Path>,
        peers: Vec<(String, PeerAuth)>,
        policy: Policy,
    ) -> anyhow::Result<Self> {
        let policy = Arc::new(policy);
        let resolver = Arc::new(outbound::Resolver(policy.clone()));
        Ok(Deliverer {
            inner: Arc::new(Inner {
                runtime,
                cse_id: cse_id.to_string(),
                local,
                http: HttpTransport::for_urls(
                    PEER_ANSWER_WITHIN,
                    site_ca,
                    Some(resolver),
                    MAX_RESPONSE,
                )?,
                policy,
                stopped: tokio::sync::watch::channel(false).0,
                site_ca: site_ca.map(std::path::Path::to_path_buf),
                peers: peers
                    .into_iter()
                    .filter_map(|(url, auth)| {
                        MqttUrl::parse(&url)
                            .ok()
                            .map(|u| ((u.host, u.port, u.tls), auth))
                    })
                    .collect(),
                brokers: tokio::sync::Mutex::new(HashMap::new()),
                queues: Mutex::new(KeyedQueues::new(QUEUE, MAX_TARGETS)),
            }),
        })
    }
}

impl Deliverer {
    /// Shutdown: ends the calls that requests wait for (a verification or a forwarded
    /// request then fails, and its request is answered at once), so that a slow target cannot
    /// hold the stop up. Queued notifications go on until the process ends.
    pub fn stop(&self) {
        self.inner.stopped.send_replace(true);
    }
}

/// Whether a delivery failed in a way worth another try.
enum Failure {
    /// Nothing got through (connection refused, broker down): retry.
    Unsent(String),
    /// Sent, but no answer came: not retried, which would duplicate the notification.
    Unanswered(String),
}

impl Failure {
    fn text(&self) -> &str {
        match self {
            Failure::Unsent(s) | Failure::Unanswered(s) => s,
        }
    }
}

impl Inner {
    /// Our own broker, by address: a loopback or unspecified host (or our listen address) on
    /// a port we listen on.
    fn is_local(&self, host: &str, port: u16) -> bool {
        let addrs = match &self.local {
            None => return false,
            Some((_, OwnBroker::At(h, p))) => return h == host && *p == port,
            Some((_, OwnBroker::Listening(addrs))) => addrs,
        };
        let ip: Option<IpAddr> = host.parse().ok();
        addrs.iter().any(|a| {
            a.port() == port
                && (host == "localhost"
                    || ip.is_some_and(|ip| ip.is_loopback() || ip.is_unspecified() || ip == a.ip()))
        })
    }

    async fn broker(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<Arc<MqttTransport>, Failure> {
        if let Some((t, used)) = self
            .brokers
            .lock()
            .await
            .get_mut(&(host.to_string(), port, tls))
        {
            *used = std::time::Instant::now();
            return Ok(t.clone());
        }
        let endpoint = Endpoint::Mqtt {
            host: host.to_string(),
            port,
            tls,
            cse_id: None,
        };
        let opts = Options {
            timeout: PEER_ANSWER_WITHIN,
            client_id: Some(format!(
                "C::{}-notify-{:08x}",
                self.cse_id,
                rand::random::<u32>()
            )),
            tls: TlsOptions {
                ca_file: self.site_ca.clone(),
                ..TlsOptions::default()
            },
            ..Options::default()
        };
        // A configured peer's broker (our registrar's): its credentials and certificates.
        let opts = match self.peers.get(&(host.to_string(), port, tls)) {
            Some(auth) => {
                let site_ca = opts.tls.ca_file.clone();
                let mut peer = opts.with_peer_auth(auth);
                peer.tls.ca_file = peer.tls.ca_file.or(site_ca);
                peer
            }
            None => opts,
        };
        let t = Arc::new(
            MqttTransport::connect(&endpoint, &format!("/{}", self.cse_id), &opts)
                .await
                .map_err(|e| Failure::Unsent(e.to_string()))?,
        );
        // Connecting happens without the pool's lock, so one dead broker delays no other; if
        // another task connected meanwhile, its connection is kept.
        let mut brokers = self.brokers.lock().await;
        let key = (host.to_string(), port, tls);
        if !brokers.contains_key(&key) && brokers.len() >= MAX_BROKERS {
            // The least recently used goes (its connection closes when its last user is done).
            let oldest = brokers
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                brokers.remove(&oldest);
            }
        }
        Ok(brokers
            .entry(key)
            .or_insert((t, std::time::Instant::now()))
            .0
            .clone())
    }

    /// Sends one request; with `answer`, waits for the answer (else a queued QoS 1 publish on
    /// our own broker counts as done).
    async fn send(
        &self,
        target: &Target,
        req: &RequestPrimitive,
        answer: bool,
    ) -> Result<ResponsePrimitive, Failure> {
        let http = |r: Result<ResponsePrimitive, ClientError>, to: &str| match r {
            Ok(rsp) => Ok(rsp),
            Err(ClientError::Timeout(_)) => {
                Err(Failure::Unanswered(format!("{to} did not answer in time")))
            }
            Err(e @ ClientError::Response(_)) => Err(Failure::Unanswered(e.to_string())),
            Err(e) => Err(Failure::Unsent(e.to_string())),
        };
        let refused = |why| Failure::Unanswered(why);
        match target {
            Target::Http(url) => {
                self.policy.check_url(url).await.map_err(refused)?;
                http(self.http.send_to_url(url, req).await, url)
            }
            Target::HttpCse(base) => {
                self.policy.check_url(base).await.map_err(refused)?;
                http(self.http.send_via(base, req).await, base)
            }
            Target::Mqtt {
                host,
                port,
                receiver,
                ..
            } if self.is_local(host, *port) => {
                let (link, _) = self
                    .local
                    .as_ref()
                    .ok_or_else(|| Failure::Unsent("no local broker".into()))?;
                if answer {
                    link.request(receiver, req)
                        .await
                        .map_err(Failure::Unanswered)
                } else {
                    // QoS 1 to the subscriber; a persistent session keeps it while offline.
                    if !link.publish_request(receiver, req) {
                        return Err(Failure::Unsent(
                            "the broker did not take the publish".into(),
                        ));
                    }
                    Ok(ResponsePrimitive::new(
                        Rsc::OK,
                        &req.rqi,
                        req.rvi.clone(),
                        None,
                    ))
                }
            }
            Target::Mqtt {
                host,
                port,
                tls,
                receiver,
            } => {
                self.policy.check(host, *port).await.map_err(refused)?;
                let broker = self.broker(host, *port, *tls).await?;
                match broker.send_to(receiver, req.clone()).await {
                    Ok(rsp) => Ok(rsp),
                    Err(ClientError::Timeout(_)) => Err(Failure::Unanswered(format!(
                        "{receiver} did not answer in time"
                    ))),
                    Err(e) => {
                        // Reconnect on the next try.
                        self.brokers
                            .lock()
                            .await
                            .remove(&(host.clone(), *port, *tls));
                        Err(Failure::Unsent(e.to_string()))
                    }
                }
            }
        }
    }

    /// `fut`, unless shutdown comes first.
    async fn unless_stopped<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let mut stopped = self.stopped.subscribe();
        tokio::select! {
            r = fut => r,
            _ = stopped.wait_for(|s| *s) => Err(Failure::Unanswered(STOPPING.into())),
        }
    }

    async fn work(self: Arc<Self>, target: Target, mut queue: mpsc::Receiver<RequestPrimitive>) {
        while let Some(req) = next_or_idle(&mut queue, IDLE).await {
            let mut delay = FIRST_RETRY;
            for attempt in 1..=ATTEMPTS {
                match self.send(&target, &req, false).await {
                    Ok(rsp) => {
                        if rsp.rsc.is_error() {
                            tracing::debug!(?target, rsc = %rsp.rsc, "notification answered with an error");
                        }
                        break;
                    }
                    Err(Failure::Unsent(why)) if attempt < ATTEMPTS => {
                        tracing::debug!(?target, %why, attempt, "notification not delivered; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err(f) => {
                        if let Some(quiet) = UNDELIVERED.hit() {
                            tracing::warn!(?target, why = f.text(), rqi = %req.rqi, not_logged_since_last_line = quiet, "notification not delivered");
                        }
                        break;
                    }
                }
            }
        }
    }
}

impl Delivery for Deliverer {
    fn request(&self, target: &Target, req: RequestPrimitive) -> Result<ResponsePrimitive, String> {
        // Called from the blocking thread that handles the request.
        self.inner
            .runtime
            .block_on(
                self.inner
                    .unless_stopped(self.inner.send(target, &req, true)),
            )
            .map_err(|f| f.text().to_string())
    }

    fn permits(&self, url: &str) -> Result<(), String> {
        // Called from a blocking thread: names are resolved on it, not on the runtime's pool.
        // Our own broker is always a target (`mqtt://127.0.0.1` poas are the usual case).
        if MqttUrl::is_mqtt(url) {
            let u = MqttUrl::parse(url)?;
            if self.inner.is_local(&u.host, u.port) {
                return Ok(());
            }
            return self.inner.policy.check_blocking(&u.host, u.port);
        }
        self.inner.policy.check_url_blocking(url)
    }

    fn enqueue(&self, target: Target, req: RequestPrimitive) {
        let pushed = lock(&self.inner.queues).push(&target, req, ());
        match pushed {
            Pushed::Queued => {}
            Pushed::Started(queue) => {
                self.inner
                    .runtime
                    .spawn(self.inner.clone().work(target, queue));
            }
            Pushed::Full(_) => {
                if let Some(quiet) = DROPPED.hit() {
                    tracing::warn!(
                        ?target,
                        not_logged_since_last_line = quiet,
                        "notification queue full; notification dropped"
                    );
                }
            }
        }
    }
}
