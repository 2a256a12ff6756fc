//! The HTTP binding (TS-0009): serves the CSE over HTTP. Each request becomes a request
//! primitive for the same dispatcher the MQTT binding uses, and the response primitive goes
//! back as status, `X-M2M-*` headers and a body that is `pc` (the mapping is
//! [`crate::onem2m::http`]).

use super::listen::{self, Accepted, Peer};
use crate::auth::{Authenticator, Refused};
use crate::cse::{Begun, Cse, Origin};
use crate::onem2m::http as h;
use crate::onem2m::{Error, ResponsePrimitive, Rsc};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A running HTTP binding: its listeners as bound.
pub struct HttpServer {
    pub addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// One permit per open connection, out of `max_connections`.
    slots: Arc<Semaphore>,
    max_connections: usize,
}

impl HttpServer {
    /// Stops accepting, and tells each connection to finish the request it is on (kept-alive
    /// ones close after it). Requests in progress are the CSE's to wait for (`in_flight`);
    /// then [`finish`](Self::finish) lets their answers be written.
    pub async fn stop_accepting(&mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Waits for the connections to end, at most [`WRITE_GRACE`]: answers are written out,
    /// while a connection that carries no request (headers half sent, a TLS handshake) does
    /// not hold the stop up.
    pub async fn finish(self) {
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(WRITE_GRACE, self.slots.acquire_many(all)).await;
    }
}

/// How long a stop waits for HTTP connections to finish writing.
const WRITE_GRACE: Duration = Duration::from_secs(1);

/// What HTTP clients may take.
#[derive(Clone, Copy)]
pub struct Limits {
    /// Connections open at once (`http.max_connections`).
    pub max_connections: usize,
    /// Time to receive a request's headers, and so the idle time of a kept-alive connection.
    pub header_timeout: Duration,
    /// Time to receive a request's body.
    pub body_timeout: Duration,
    /// The largest body (`cse.max_request_size`).
    pub max_body: usize,
}

#[derive(Clone)]
struct AppState {
    cse: Cse,
    auth: Arc<Authenticator>,
    limits: Limits,
}

/// Binds `listen` (plain) and `tls_listen` (HTTPS with `tls`) and serves the CSE on them.
pub async fn serve(
    listen: Option<SocketAddr>,
    tls_listen: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    cse: Cse,
    auth: Arc<Authenticator>,
    limits: Limits,
) -> anyhow::Result<HttpServer> {
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(AppState { cse, auth, limits });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut server = HttpServer {
        addr: None,
        tls_addr: None,
        stop,
        tasks: Vec::new(),
        slots: slots.clone(),
        max_connections: limits.max_connections,
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
        let (mut accepted, acceptor) = listen::accept(tcp, tls, what, Some(slots.clone()));
        let app = app.clone();
        let mut stopped = stopped.clone();
        server.tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = async { let _ = stopped.wait_for(|s| *s).await; } => break,
                    next = accepted.recv() => match next {
                        Some(conn) => {
                            tokio::spawn(connection(conn, app.clone(), limits, stopped.clone()));
                        }
                        None => break,
                    },
                }
            }
            acceptor.abort();
        }));
    }
    Ok(server)
}

/// Serves one connection until the client closes it, a timeout ends it, or the server stops
/// (then after the request in progress).
async fn connection(
    conn: Accepted,
    app: axum::Router,
    limits: Limits,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let Accepted { io, peer, slot } = conn;
    // A client that stops reading its answer cannot hold the connection (and its slot).
    let io = StalledWrites::new(io, limits.body_timeout);
    let service =
        hyper_util::service::TowerToHyperService::new(app.layer(axum::Extension(peer.clone())));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    let served = http1.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(served);
    let ended = tokio::select! {
        ended = served.as_mut() => ended,
        () = async { let _ = stopped.wait_for(|s| *s).await; } => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(client = %peer.addr, error = %e, "HTTP connection ended");
    }
    drop(slot);
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
    axum::Extension(peer): axum::Extension<Peer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let rqi = h::header(&headers, h::RI);
    let rvi = crate::onem2m::primitive::echoed_rvi(h::header(&headers, h::RVI));
    let body = match read_body(body, &state.limits).await {
        Ok(body) => body,
        Err(err) => {
            tracing::debug!(client = %peer.addr, %method, %uri, dbg = %err.dbg, "request body refused");
            let mut rsp = to_response(&ResponsePrimitive::error(
                &err,
                rqi.unwrap_or_default(),
                rvi,
            ));
            // What is left of the body is not read: the connection cannot carry another request.
            rsp.headers_mut()
                .insert("connection", HeaderValue::from_static("close"));
            return rsp;
        }
    };
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
    // The same budget as MQTT requests: a credential's share covers both bindings.
    let admitted = match cse.admission().admit(identity.credential(), None) {
        Ok(admitted) => admitted,
        Err(why) => {
            let err = Error::internal(format!("the CSE is busy: {why}; try again"));
            return to_response(&ResponsePrimitive::error(&err, req.rqi, req.rvi));
        }
    };
    // The request runs in a task of its own, holding its place in the budget until it is
    // done: a client that hangs up (hyper then drops this handler) does not end the work,
    // so it cannot escape the budget, and a write still sends its notifications. A write
    // waits for its commit without holding a thread; reads and the rest run on a blocking
    // thread.
    let addr = Some(peer.addr.ip());
    let handled = tokio::spawn(async move {
        let _admitted = admitted;
        match cse.begin(req, Origin::Client(identity), addr) {
            Begun::Answered(rsp) => Ok(rsp),
            Begun::Write(write) => Ok(write.submit().finish().await),
            Begun::Blocking(blocked) => tokio::task::spawn_blocking(move || blocked.run()).await,
        }
    })
    .await
    .unwrap_or_else(Err);
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

/// The request body, within the size and time limits (4000 beyond either).
async fn read_body(body: Body, limits: &Limits) -> Result<Bytes, Error> {
    match tokio::time::timeout(
        limits.body_timeout,
        axum::body::to_bytes(body, limits.max_body),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_length_limit(&e) => Err(Error::bad_request(format!(
            "the body is larger than {} bytes (cse.max_request_size)",
            limits.max_body
        ))),
        Ok(Err(e)) => Err(Error::bad_request(format!("cannot read the body: {e}"))),
        Err(_) => Err(Error::bad_request(format!(
            "the body did not arrive within {} s (http.body_timeout_s)",
            limits.body_timeout.as_secs()
        ))),
    }
}

/// Whether reading a body failed on its length limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// A connection whose writes fail once one has made no progress for `within`: hyper has no
/// write timeout, and a client that never reads would otherwise keep its connection forever.
struct StalledWrites<T> {
    io: T,
    within: Duration,
    /// Running while a write waits.
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> StalledWrites<T> {
    fn new(io: T, within: Duration) -> Self {
        StalledWrites {
            io,
            within,
            stalled: None,
        }
    }

    /// After a write attempt: progress resets the clock, waiting runs it.
    fn watch<R>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        polled: std::task::Poll<std::io::Result<R>>,
    ) -> std::task::Poll<std::io::Result<R>> {
        use std::future::Future;
        use std::task::Poll;
        match polled {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let within = self.within;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(within)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client read nothing of the answer in time",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for StalledWrites<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for StalledWrites<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}

/// A response primitive as an axum response.
fn to_response(rsp: &ResponsePrimitive) -> Response {
    h::response_to_http(rsp).map(Body::from)
}
