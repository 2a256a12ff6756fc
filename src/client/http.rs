//! The HTTP transport (TS-0009), and an HTTP receiver for notifications.

use super::notify::{hand_over, Incoming, Notifications};
use super::{ClientError, Endpoint, Options, Transport};
use crate::onem2m::http::{self as h, Destination};
use crate::onem2m::{Error, Operation, RequestPrimitive, ResponsePrimitive};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

pub struct HttpTransport {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    /// HTTP Basic credentials.
    login: Option<(String, String)>,
    /// The largest response body read; a longer one is an error.
    max_response: usize,
}

/// The largest response body a client reads by default: far above any oneM2M primitive.
pub const MAX_RESPONSE: usize = 16 << 20;

impl HttpTransport {
    pub fn new(endpoint: &Endpoint, opts: &Options) -> Result<Self, ClientError> {
        let Endpoint::Http { base, .. } = endpoint else {
            return Err(ClientError::Endpoint(
                format!("{endpoint:?}"),
                "not an HTTP endpoint".into(),
            ));
        };
        let tls = opts.tls.client_config()?;
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .tcp_nodelay(true)
            .use_preconfigured_tls((*tls).clone())
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(HttpTransport {
            http,
            base: base.clone(),
            timeout: opts.timeout,
            login: opts.username.clone().map(|u| {
                let password = opts.password.as_ref().map(|p| p.expose().to_string());
                (u, password.unwrap_or_default())
            }),
            max_response: MAX_RESPONSE,
        })
    }
}

impl HttpTransport {
    /// A transport with no base address, for [`send_to_url`](Self::send_to_url): a CSE
    /// calling the URLs its clients set. `https://` targets are verified against the system
    /// roots and `extra_ca` (the site CA). Host names are resolved by `resolver` (which may
    /// refuse them); redirects are not followed and no proxy is used, so the request goes
    /// where the URL and the resolver say. Responses over `max_response` bytes are refused.
    pub fn for_urls(
        timeout: Duration,
        extra_ca: Option<&std::path::Path>,
        resolver: Option<std::sync::Arc<dyn reqwest::dns::Resolve>>,
        max_response: usize,
    ) -> Result<Self, ClientError> {
        let tls = crate::tls::client_config(&Default::default(), extra_ca)
            .map_err(|e| ClientError::TlsOption("ca_certs", format!("{e:#}")))?;
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .use_preconfigured_tls((*tls).clone());
        if let Some(resolver) = resolver {
            builder = builder.dns_resolver(std::sync::Arc::new(DynResolver(resolver)));
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(HttpTransport {
            http,
            base: String::new(),
            timeout,
            login: None,
            max_response,
        })
    }

    /// Sends `req` to exactly `url` (the target's point of access), not to a path made from
    /// `to`.
    pub async fn send_to_url(
        &self,
        url: &str,
        req: &RequestPrimitive,
    ) -> Result<ResponsePrimitive, ClientError> {
        self.exchange(req, Destination::Url(url)).await
    }

    /// Sends `req` to the CSE whose HTTP binding is at `base`, at the path its `to` names.
    pub async fn send_via(
        &self,
        base: &str,
        req: &RequestPrimitive,
    ) -> Result<ResponsePrimitive, ClientError> {
        self.exchange(req, Destination::Cse(base)).await
    }

    async fn exchange(
        &self,
        req: &RequestPrimitive,
        to: Destination<'_>,
    ) -> Result<ResponsePrimitive, ClientError> {
        let out = h::request_to_http(req, to);
        let mut b = self.http.request(out.method, &out.url);
        for (name, value) in &out.headers {
            b = b.header(*name, value);
        }
        if let Some((user, password)) = &self.login {
            b = b.basic_auth(user, Some(password));
        }
        if let Some(body) = out.body {
            b = b.body(body);
        }
        let url = out.url;
        let rsp = b.send().await.map_err(|e| {
            if e.is_timeout() {
                ClientError::Timeout(self.timeout)
            } else if e.is_connect() {
                ClientError::Connect(url.clone(), e.to_string())
            } else {
                ClientError::Transport(e.to_string())
            }
        })?;
        let (status, headers) = (rsp.status(), rsp.headers().clone());
        let body = read_at_most(rsp, self.max_response).await?;
        h::response_from_http(status, &headers, &body, &req.rqi)
            .map_err(|e| ClientError::Response(format!("{e}: is {url} a oneM2M entity?")))
    }
}

/// A resolver chosen at run time, for reqwest (which takes a sized one).
struct DynResolver(std::sync::Arc<dyn reqwest::dns::Resolve>);

impl reqwest::dns::Resolve for DynResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        self.0.resolve(name)
    }
}

/// The body of `rsp`, refused once it passes `limit` bytes (before reading, when the length
/// is announced).
async fn read_at_most(mut rsp: reqwest::Response, limit: usize) -> Result<Vec<u8>, ClientError> {
    let too_long = || ClientError::Transport(format!("the response is longer than {limit} bytes"));
    if rsp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_long());
    }
    let mut body = Vec::new();
    while let Some(chunk) = rsp
        .chunk()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl Transport for HttpTransport {
    async fn send(&self, req: RequestPrimitive) -> Result<ResponsePrimitive, ClientError> {
        self.send_via(&self.base, &req).await
    }

    /// Serves NOTIFY requests over HTTP on `listen` (default: 127.0.0.1, a free port).
    async fn notifications(
        &self,
        _originator: &str,
        listen: Option<SocketAddr>,
    ) -> Result<(Notifications, String), ClientError> {
        let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| ClientError::Connect(listen.to_string(), e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let (tx, rx) = mpsc::channel(1024);
        let app = axum::Router::new().fallback(receive).with_state(tx);
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "notification receiver stopped");
            }
        });
        Ok((
            Notifications {
                rx,
                server: Some(server.abort_handle()),
            },
            format!("http://{addr}"),
        ))
    }
}

fn to_response(rsp: &ResponsePrimitive) -> Response {
    h::response_to_http(rsp).map(Body::from)
}

async fn receive(
    axum::extract::State(tx): axum::extract::State<mpsc::Sender<Incoming>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rqi = headers
        .get(h::RI)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let req = match h::request_from_http(&method, &uri, &headers, &body) {
        Ok(req) if req.op == Operation::Notify => req,
        Ok(_) => {
            let err = Error::not_allowed("this receiver accepts NOTIFY requests only");
            return to_response(&ResponsePrimitive::error(&err, rqi, None));
        }
        Err(err) => return to_response(&ResponsePrimitive::error(&err, rqi, None)),
    };
    to_response(&hand_over(&tx, req).await)
}
