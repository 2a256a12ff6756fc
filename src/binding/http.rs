//! The HTTP binding (TS-0009): serves the CSE over HTTP. Each request becomes a request
//! primitive for the same dispatcher the MQTT binding uses, and the response primitive goes
//! back as status, `X-M2M-*` headers and a body that is `pc` (the mapping is
//! [`crate::onem2m::http`]).

use crate::cse::{Begun, Cse};
use crate::onem2m::http as h;
use crate::onem2m::{Error, ResponsePrimitive};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::serve::ListenerExt;
use std::net::SocketAddr;

/// A running HTTP binding.
pub struct HttpServer {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Stops accepting and waits for the requests in progress.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Binds `listen` and serves the CSE on it.
pub async fn serve(listen: SocketAddr, cse: Cse) -> anyhow::Result<HttpServer> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new().fallback(handle).with_state(cse);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let graceful = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = graceful.await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok(HttpServer { addr, stop, task })
}

async fn handle(
    State(cse): State<Cse>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rqi = header(&headers, h::RI);
    let rvi = header(&headers, h::RVI);
    let req = match h::request_from_http(&method, &uri, &headers, &body) {
        Ok(req) => req,
        Err(err) => {
            tracing::warn!(%method, %uri, rsc = err.rsc.code(), dbg = %err.dbg, "request rejected");
            let rsp = ResponsePrimitive::error(&err, rqi.unwrap_or_default(), rvi);
            return to_response(&rsp);
        }
    };
    // A write waits for its commit without holding a thread; reads and the rest run on a
    // blocking thread.
    let handled = match cse.begin(req) {
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

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A response primitive as an axum response.
fn to_response(rsp: &ResponsePrimitive) -> Response {
    h::response_to_http(rsp).map(Body::from)
}
