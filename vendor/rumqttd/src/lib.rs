use std::fmt;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::{collections::HashMap, path::Path};

use serde::{Deserialize, Serialize};

pub use link::alerts;
pub use link::local;
pub use link::meters;
pub use router::{Alert, Forward, IncomingMeter, Meter, Notification, OutgoingMeter, Router};
use segments::Storage;
pub use server::{Broker, LinkType, Server};

pub use self::router::shared_subs::Strategy;
pub use link::network::N;

/// m2mhub patch: what a listener knows about a connection before its CONNECT.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// The remote address, when the connection came over the network.
    pub addr: Option<SocketAddr>,
    /// The identity a TLS client certificate proved (its subject CN), if any.
    pub tls_identity: Option<String>,
}

/// m2mhub patch: what a CONNECT asks for, for a [`Gate`] to decide on.
#[derive(Debug)]
pub struct ConnectRequest<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub will_topic: Option<&'a str>,
    pub peer: &'a PeerInfo,
}

/// m2mhub patch: why a CONNECT is refused; sent in the CONNACK before the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    /// Wrong user name or password (3.1.1 return code 4).
    BadCredentials,
    /// Not allowed to connect (return code 5).
    NotAuthorized,
    /// The server cannot take another connection now (return code 3).
    ServerUnavailable,
}

/// m2mhub patch: decides on each CONNECT, and gives each connection it admits the
/// [`TopicPolicy`] its PUBLISHes and SUBSCRIBEs are checked against.
pub trait Gate: Send + Sync + 'static {
    fn connect(&self, request: &ConnectRequest<'_>) -> Result<Admitted, ConnectRefusal>;
}

/// m2mhub patch: what a [`Gate`] admits a connection with.
pub struct Admitted {
    pub policy: Arc<dyn TopicPolicy>,
    /// Client IDs (and so sessions) are kept apart per namespace: a client of one namespace
    /// cannot take over, or inherit, the session of a client of another with the same
    /// client ID. Implemented with rumqttd's tenant prefix of client IDs.
    pub session_namespace: Option<String>,
    /// Held for as long as the connection lasts, then dropped: a gate that counts
    /// connections gives each a token that gives its place back.
    pub hold: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// m2mhub patch: the topics one connection may publish to and subscribe to. A refused
/// PUBLISH is acknowledged (MQTT 3.1.1 has no negative PUBACK) and dropped; a refused filter
/// gets the failure code (0x80) in the SUBACK.
pub trait TopicPolicy: Send + Sync + 'static {
    fn may_publish(&self, topic: &str) -> bool;
    fn may_subscribe(&self, filter: &str) -> bool;
    /// The client's address, which the router stamps on its publishes
    /// ([`protocol::Publish::source`]).
    fn source(&self) -> Option<std::net::IpAddr> {
        None
    }
}

mod link;
pub mod protocol;
mod router;
mod segments;
mod server;

pub type ConnectionId = usize;
pub type RouterId = usize;
pub type NodeId = usize;
pub type Topic = String;
pub type Filter = String;
pub type TopicId = usize;
pub type Offset = (u64, u64);
pub type Cursor = (u64, u64);

pub type ClientId = String;
pub type AuthUser = String;
pub type AuthPass = String;
pub type AuthHandler = Arc<
    dyn Fn(ClientId, AuthUser, AuthPass) -> Pin<Box<dyn std::future::Future<Output = bool> + Send>>
        + Send
        + Sync,
>;

#[derive(Debug, Default, Serialize, Deserialize, Clone)]
pub struct Config {
    pub id: usize,
    pub router: RouterConfig,
    pub v4: Option<HashMap<String, ServerSettings>>,
    pub v5: Option<HashMap<String, ServerSettings>>,
    pub ws: Option<HashMap<String, ServerSettings>>,
    pub cluster: Option<ClusterSettings>,
    pub bridge: Option<BridgeConfig>,
    pub metrics: Option<HashMap<MetricType, MetricSettings>>,
}

// TODO: Change names without _ until config-rs issue is resolved
// https://github.com/mehcode/config-rs/issues/369
#[derive(Debug, Serialize, Deserialize, Clone)]
#[serde(untagged)]
pub enum TlsConfig {
    Rustls {
        capath: Option<String>,
        certpath: String,
        keypath: String,
    },
    NativeTls {
        pkcs12path: String,
        pkcs12pass: String,
    },
}

impl TlsConfig {
    // Returns true only if all of the file paths inside `TlsConfig` actually exists on file system.
    // NOTE: This doesn't verify if certificate files are in required format or not.
    pub fn validate_paths(&self) -> bool {
        match self {
            TlsConfig::Rustls {
                capath,
                certpath,
                keypath,
            } => {
                let ca = capath.is_none() || capath.as_ref().is_some_and(|v| Path::new(v).exists());

                ca && [certpath, keypath].iter().all(|v| Path::new(v).exists())
            }
            TlsConfig::NativeTls { pkcs12path, .. } => Path::new(pkcs12path).exists(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct ServerSettings {
    pub name: String,
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub next_connection_delay_ms: u64,
    pub connections: ConnectionSettings,
}

impl ServerSettings {
    pub fn set_auth_handler<F, O>(&mut self, auth_fn: F)
    where
        F: Fn(ClientId, AuthUser, AuthPass) -> O + Send + Sync + 'static,
        O: IntoFuture<Output = bool> + 'static,
        O::IntoFuture: Send,
    {
        self.connections.set_auth_handler(auth_fn)
    }
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct BridgeConfig {
    pub name: String,
    pub addr: String,
    pub qos: u8,
    pub sub_path: Filter,
    pub reconnection_delay: u64,
    pub ping_delay: u64,
    pub connections: ConnectionSettings,
    #[serde(default)]
    pub transport: Transport,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct ConnectionSettings {
    pub connection_timeout_ms: u16,
    pub max_payload_size: usize,
    pub max_inflight_count: usize,
    pub auth: Option<HashMap<String, String>>,
    #[serde(skip)]
    pub external_auth: Option<AuthHandler>,
    #[serde(default)]
    pub dynamic_filters: bool,
    /// m2mhub patch: authentication and topic authorization of remote connections.
    #[serde(skip)]
    pub gate: Option<Arc<dyn Gate>>,
}

impl ConnectionSettings {
    pub fn set_auth_handler<F, O>(&mut self, auth_fn: F)
    where
        F: Fn(ClientId, AuthUser, AuthPass) -> O + Send + Sync + 'static,
        O: IntoFuture<Output = bool> + 'static,
        O::IntoFuture: Send,
    {
        self.external_auth = Some(Arc::new(move |client_id, username, password| {
            let auth = auth_fn(client_id, username, password).into_future();
            Box::pin(auth)
        }));
    }
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("connection_timeout_ms", &self.connection_timeout_ms)
            .field("max_payload_size", &self.max_payload_size)
            .field("max_inflight_count", &self.max_inflight_count)
            .field("auth", &self.auth)
            .field("external_auth", &self.external_auth.is_some())
            .field("dynamic_filters", &self.dynamic_filters)
            .field("gate", &self.gate.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Id with which this node connects to other nodes of the mesh
    pub node_id: NodeId,
    /// Address on which this broker is listening for mesh connections
    pub listen: String,
    /// Address of clusters that this node has to initiate connection
    pub seniors: Vec<(ConnectionId, String)>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RouterConfig {
    pub max_connections: usize,
    pub max_outgoing_packet_count: u64,
    pub max_segment_size: usize,
    pub max_segment_count: usize,
    pub custom_segment: Option<HashMap<String, SegmentConfig>>,
    pub initialized_filters: Option<Vec<Filter>>,
    // defaults to Round Robin
    #[serde(default)]
    pub shared_subscriptions_strategy: Strategy,
    /// m2mhub patch: filters with a log at most, across all connections; a SUBSCRIBE that
    /// would add one more gets 0x80 for it. None: no limit (upstream).
    #[serde(default)]
    pub max_filters: Option<usize>,
    /// m2mhub patch: filters one connection may subscribe to at most (0x80 beyond).
    #[serde(default)]
    pub max_subscriptions_per_connection: Option<usize>,
    /// m2mhub patch: topics with a retained message at most; past it, a retained PUBLISH to
    /// another topic is delivered but not retained.
    #[serde(default)]
    pub max_retained: Option<usize>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SegmentConfig {
    pub max_segment_size: usize,
    pub max_segment_count: usize,
}

#[derive(Debug, Serialize, Deserialize, Clone, Default)]
pub enum Transport {
    #[serde(rename = "tcp")]
    #[default]
    Tcp,
    #[serde(rename = "tls")]
    Tls {
        ca: PathBuf,
        client_auth: Option<ClientAuth>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientAuth {
    certs: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Serialize, Deserialize, Clone, Hash, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Meters,
    Alerts,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct MetricSettings {
    push_interval: u64,
}
