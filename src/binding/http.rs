//! The HTTP binding (TS-0009): serves the CSE over HTTP. Each request becomes a request
//! primitive for the same dispatcher the MQTT binding uses, and the response primitive goes
//! back as status, `X-M2M-*` headers and a body that is `pc` (the mapping is
//! [`crate::onem2m::http`]).

use super::listen::{self, Accepted, Io, Peer};
use crate::auth::{Authenticator, Refused};
use crate::cse::{Begun, Cse, Origin};
use crate::onem2m::http as h;
use crate::onem2m::{Error, ResponsePrimitive, Rsc};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::serve::IncomingStream;
use base64::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A running HTTP binding: its listeners as bound.
pub struct HttpServer {
    pub addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HttpServer {
    /// Stops accepting and waits for the requests in progress.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

#[derive(Clone)]
struct AppState {
    cse: Cse,
    auth: Arc<Authenticator>,
}

/// Binds `listen` (plain) and `tls_listen` (HTTPS with `tls`) and serves the CSE on them.
pub async fn serve(
    listen: Option<SocketAddr>,
    tls_listen: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    cse: Cse,
    auth: Arc<Authenticator>,
) -> anyhow::Result<HttpServer> {
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(AppState { cse, auth });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut server = HttpServer {
        addr: None,
        tls_addr: None,
        stop,
        tasks: Vec::new(),
    };
    let listeners = listen
        .map(|l| (l, None))
        .into_iter()
        .chain(tls_listen.map(|(l, tls)| (l, Some(tls))));
    for (listen, tls) in listeners {
        let is_tls = tls.is_some();
        let what = if is_tls { "HTTPS" } else { "HTTP" };
        let tcp = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for {what} on {listen}: {e}"))?;
        let addr = tcp.local_addr()?;
        if is_tls {
            server.tls_addr = Some(addr);
        } else {
            server.addr = Some(addr);
        }
        let (accepted, acceptor) = listen::accept(tcp, tls, what);
        let listener = PeerListener { accepted, addr };
        let app = app.clone();
        let mut stopped = stopped.clone();
        server.tasks.push(tokio::spawn(async move {
            let graceful = axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                });
            if let Err(e) = graceful.await {
                tracing::error!(error = %e, "{what} server stopped");
            }
            acceptor.abort();
        }));
    }
    Ok(server)
}

/// The connections [`listen::accept`] hands over, as axum takes them.
struct PeerListener {
    accepted: mpsc::Receiver<Accepted>,
    addr: SocketAddr,
}

impl axum::serve::Listener for PeerListener {
    type Io = Box<dyn Io>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(a) => (a.io, a.peer),
            // The accept loop ended: nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.addr,
            cn: None,
        })
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, PeerListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, PeerListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Who sent an HTTP request: a client certificate, Basic credentials, or where it comes from.
fn authenticate(
    auth: &Authenticator,
    peer: &Peer,
    headers: &HeaderMap,
) -> Result<crate::auth::Identity, Refused> {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let login = basic.as_deref().and_then(|s| s.split_once(':'));
    if headers.contains_key("authorization") && login.is_none() {
        return Err(Refused::BadCredentials);
    }
    auth.authenticate(Some(peer.addr.ip()), peer.cn.as_deref(), login)
}

async fn handle(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rqi = h::header(&headers, h::RI);
    let rvi = h::header(&headers, h::RVI);
    let identity = match authenticate(&state.auth, &peer, &headers) {
        Ok(id) => {
            state.cse.bindings().authenticated(peer.cn.as_deref(), &id);
            id
        }
        Err(refused) => {
            tracing::warn!(client = %peer.addr, %method, %uri, why = %refused, "HTTP client refused");
            let err = Error::new(Rsc::ORIGINATOR_NOT_AUTHENTICATED, refused.to_string());
            let mut rsp = to_response(&ResponsePrimitive::error(
                &err,
                rqi.unwrap_or_default(),
                rvi,
            ));
            rsp.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Basic realm=\"m2mhub\""),
            );
            return rsp;
        }
    };
    let req = match h::request_from_http(&method, &uri, &headers, &body) {
        Ok(req) => req,
        Err(err) => {
            tracing::warn!(%method, %uri, rsc = err.rsc.code(), dbg = %err.dbg, "request rejected");
            let rsp = ResponsePrimitive::error(&err, rqi.unwrap_or_default(), rvi);
            return to_response(&rsp);
        }
    };
    let cse = state.cse;
    // A write waits for its commit without holding a thread; reads and the rest run on a
    // blocking thread.
    let handled = match cse.begin(req, Origin::Client(identity)) {
        Begun::Answered(rsp) => Ok(rsp),
        Begun::Write(write) => Ok(write.submit().finish().await),
        Begun::Blocking(blocked) => tokio::task::spawn_blocking(move || blocked.run()).await,
    };
    match handled {
        Ok(Some(rsp)) => to_response(&rsp),
        Ok(None) => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Body::empty())
            .unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            let err = Error::internal("the request could not be handled");
            to_response(&ResponsePrimitive::error(
                &err,
                rqi.unwrap_or_default(),
                None,
            ))
        }
    }
}

/// A response primitive as an axum response.
fn to_response(rsp: &ResponsePrimitive) -> Response {
    h::response_to_http(rsp).map(Body::from)
}
