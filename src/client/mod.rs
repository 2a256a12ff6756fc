//! The AE-side library: one [`Client`] over one [`Transport`] trait, with MQTT and HTTP
//! implementations, so that an application moves between bindings by changing its endpoint
//! string (`mqtt://host:1883#cse-id` or `http://host:8080`) and sees the same behaviour.
//!
//! ```no_run
//! # async fn demo() -> Result<(), m2mhub::client::ClientError> {
//! use m2mhub::client::{Client, Options};
//! use m2mhub::onem2m::ResourceType;
//! let client = Client::connect("mqtt://127.0.0.1:1883#id-in", "Cmyapp", Options::default()).await?;
//! let rsp = client.create("cse-in/myapp", ResourceType::Container, serde_json::json!({"m2m:cnt": {"rn": "data"}})).await?;
//! println!("{}", rsp.rsc);
//! # Ok(()) }
//! ```

pub mod endpoint;
mod http;
mod mqtt;
mod notify;
pub mod replies;

pub use endpoint::Endpoint;
pub use http::HttpTransport;
pub use mqtt::{Inbox, MqttTransport, Publisher, Session, SessionOptions};
pub use notify::{Incoming, Notifications};

use crate::onem2m::{Operation, RequestPrimitive, ResourceType, ResponsePrimitive};
use crate::sync::lock;
use serde_json::{Map, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid endpoint '{0}': {1}")]
    Endpoint(String, String),
    #[error("cannot reach {0}: {1}")]
    Connect(String, String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("malformed response: {0}")]
    Response(String),
    #[error("TLS option {0}: {1}")]
    TlsOption(&'static str, String),
}

/// Certificates for `mqtts://` and `https://` endpoints: the CA that signed the server's
/// certificate (the system roots when unset), and a client certificate to present with its
/// key (OpenMTC's `ca_certs`, `cert_file`, `key_file`).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl TlsOptions {
    fn check(&self) -> Result<(), ClientError> {
        for (name, file) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ] {
            if let Some(f) = file {
                if !f.is_file() {
                    return Err(ClientError::TlsOption(
                        name,
                        format!("{} is not a readable file", f.display()),
                    ));
                }
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(ClientError::TlsOption(
                "cert_file",
                "a client certificate needs its key_file, and the reverse".into(),
            ));
        }
        Ok(())
    }

    /// The rustls configuration these options make.
    fn client_config(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, ClientError> {
        let auth = crate::config::PeerAuth {
            ca_certs: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            ..Default::default()
        };
        crate::tls::client_config(&auth, None)
            .map_err(|e| ClientError::TlsOption("ca_file", format!("{e:#}")))
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for each response (ACME's default: 10 s).
    pub timeout: Duration,
    /// MQTT client ID; by default `A::<originator>` for an AE and `C::<cse-id>` for a CSE
    /// (TS-0010 practice), or `A::<random>` before registration.
    pub client_id: Option<String>,
    /// Release version sent in `rvi`.
    pub rvi: String,
    pub tls: TlsOptions,
    /// User name and password: MQTT CONNECT credentials, or HTTP Basic authentication. Over
    /// MQTT the user name is also the credential ID of registrations (`reg_req`).
    pub username: Option<String>,
    pub password: Option<crate::config::Secret>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(10),
            client_id: None,
            rvi: "3".into(),
            tls: TlsOptions::default(),
            username: None,
            password: None,
        }
    }
}

impl Options {
    /// These options with the credentials and certificates configured for a peer
    /// (`[[remote_cse]]`, `mqtt.broker_*`).
    pub fn with_peer_auth(self, auth: &crate::config::PeerAuth) -> Options {
        Options {
            username: auth.username.clone(),
            password: auth.password.clone(),
            tls: TlsOptions {
                ca_file: auth.ca_certs.clone(),
                cert_file: auth.cert_file.clone(),
                key_file: auth.key_file.clone(),
            },
            ..self
        }
    }
}

/// How requests travel. Implemented for MQTT and HTTP; both answer every request with the
/// response primitive the CSE sent, error codes included (a transport failure is an `Err`).
pub trait Transport: Send + Sync {
    fn send(
        &self,
        req: RequestPrimitive,
    ) -> impl Future<Output = Result<ResponsePrimitive, ClientError>> + Send;

    /// Starts receiving NOTIFY requests addressed to `originator`. Returns them as a stream,
    /// and the point of access to register in the AE's `poa`. HTTP listens on `listen`
    /// (default 127.0.0.1 on a free port); MQTT subscribes on its broker.
    fn notifications(
        &self,
        originator: &str,
        listen: Option<SocketAddr>,
    ) -> impl Future<Output = Result<(Notifications, String), ClientError>> + Send;
}

/// Either transport, chosen by the endpoint's scheme.
pub enum AnyTransport {
    Mqtt(MqttTransport),
    Http(HttpTransport),
}

impl Transport for AnyTransport {
    async fn send(&self, req: RequestPrimitive) -> Result<ResponsePrimitive, ClientError> {
        match self {
            AnyTransport::Mqtt(t) => t.send(req).await,
            AnyTransport::Http(t) => t.send(req).await,
        }
    }

    async fn notifications(
        &self,
        originator: &str,
        listen: Option<SocketAddr>,
    ) -> Result<(Notifications, String), ClientError> {
        match self {
            AnyTransport::Mqtt(t) => t.notifications(originator, listen).await,
            AnyTransport::Http(t) => t.notifications(originator, listen).await,
        }
    }
}

/// An AE's (or CSE's) handle on a CSE: typed operations over a transport.
pub struct Client<T: Transport = AnyTransport> {
    transport: T,
    originator: Mutex<String>,
    rvi: String,
    prefix: String,
    next: AtomicU64,
}

impl Client<AnyTransport> {
    /// Connects to `endpoint` as `originator` (an AE-ID, or empty / `C` / `S` before
    /// registration).
    pub async fn connect(
        endpoint: &str,
        originator: &str,
        opts: Options,
    ) -> Result<Self, ClientError> {
        let ep = Endpoint::parse(endpoint)?;
        opts.tls.check()?;
        let transport = match ep {
            Endpoint::Mqtt { .. } => {
                AnyTransport::Mqtt(MqttTransport::connect(&ep, originator, &opts).await?)
            }
            Endpoint::Http { .. } => AnyTransport::Http(HttpTransport::new(&ep, &opts)?),
        };
        Ok(Client::new(transport, originator, &opts))
    }
}

impl<T: Transport> Client<T> {
    pub fn new(transport: T, originator: &str, opts: &Options) -> Self {
        let salt: u32 = rand::random();
        Client {
            transport,
            originator: Mutex::new(originator.to_string()),
            rvi: opts.rvi.clone(),
            prefix: format!("{salt:08x}"),
            next: AtomicU64::new(1),
        }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn originator(&self) -> String {
        lock(&self.originator).clone()
    }

    /// Switches the originator, typically to the AE-ID a registration returned.
    pub fn set_originator(&self, originator: &str) {
        *lock(&self.originator) = originator.to_string();
    }

    /// A request from this client with a fresh `rqi`, ready to adjust and [`send`](Self::send).
    pub fn request(&self, op: Operation, to: &str) -> RequestPrimitive {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut req =
            RequestPrimitive::new(op, to, self.originator(), format!("{}-{n}", self.prefix));
        req.rvi = Some(self.rvi.clone());
        req
    }

    pub async fn send(&self, req: RequestPrimitive) -> Result<ResponsePrimitive, ClientError> {
        self.transport.send(req).await
    }

    /// CREATE of a resource of type `ty` under `to`; `pc` is `{"m2m:…": {...}}`.
    pub async fn create(
        &self,
        to: &str,
        ty: ResourceType,
        pc: Value,
    ) -> Result<ResponsePrimitive, ClientError> {
        let mut req = self.request(Operation::Create, to);
        req.ty = Some(ty.code() as u64);
        req.pc = Some(pc);
        self.send(req).await
    }

    pub async fn retrieve(&self, to: &str) -> Result<ResponsePrimitive, ClientError> {
        self.send(self.request(Operation::Retrieve, to)).await
    }

    pub async fn update(&self, to: &str, pc: Value) -> Result<ResponsePrimitive, ClientError> {
        let mut req = self.request(Operation::Update, to);
        req.pc = Some(pc);
        self.send(req).await
    }

    pub async fn delete(&self, to: &str) -> Result<ResponsePrimitive, ClientError> {
        self.send(self.request(Operation::Delete, to)).await
    }

    /// NOTIFY to `to` with `pc` such as `{"m2m:sgn": {...}}`.
    pub async fn notify(&self, to: &str, pc: Value) -> Result<ResponsePrimitive, ClientError> {
        let mut req = self.request(Operation::Notify, to);
        req.pc = Some(pc);
        self.send(req).await
    }

    /// Discovery under `to`: a RETRIEVE with filter usage 1 and the given criteria (e.g.
    /// `{"ty": [3], "lbl": ["room:1"], "lim": 10}`); the result is `{"m2m:uril": [...]}`.
    pub async fn discover(
        &self,
        to: &str,
        mut fc: Map<String, Value>,
    ) -> Result<ResponsePrimitive, ClientError> {
        let mut req = self.request(Operation::Retrieve, to);
        fc.insert("fu".into(), Value::from(1));
        req.fc = Some(fc);
        self.send(req).await
    }

    /// See [`Transport::notifications`].
    pub async fn notifications(
        &self,
        listen: Option<SocketAddr>,
    ) -> Result<(Notifications, String), ClientError> {
        self.transport
            .notifications(&self.originator(), listen)
            .await
    }
}
