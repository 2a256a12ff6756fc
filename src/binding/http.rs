//! The HTTP binding (TS-0009): maps each HTTP request to a request primitive for the same
//! dispatcher the MQTT binding uses, and the response primitive back to status, `X-M2M-*`
//! headers and a body that is `pc`.

use crate::cse::{Begun, Cse};
use crate::onem2m::http::{self as h, content_type, parse_query, to_from_path};
use crate::onem2m::{Error, Operation, RequestPrimitive, ResponsePrimitive, ResponseType, Rsc};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::serve::ListenerExt;
use serde_json::Value;
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
    let req = match to_request(&method, &uri, &headers, &body) {
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

/// Reads an HTTP request as a request primitive (TS-0009 §6).
pub(crate) fn to_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<RequestPrimitive, Error> {
    let rqi = header(headers, h::RI)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad_request("missing X-M2M-RI header (request identifier)"))?;
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8()
        .map_err(|_| Error::bad_request("the path is not UTF-8"))?;
    let ctype = header(headers, "content-type");
    let op = match *method {
        Method::GET => Operation::Retrieve,
        Method::PUT => Operation::Update,
        Method::DELETE => Operation::Delete,
        // A POST whose Content-Type has a ty parameter is a CREATE, otherwise a NOTIFY.
        Method::POST => match ctype.as_deref().map(content_type).transpose()?.flatten() {
            Some(_) => Operation::Create,
            None => Operation::Notify,
        },
        _ => {
            return Err(Error::not_allowed(format!(
                "HTTP method {method} is not a oneM2M operation"
            )))
        }
    };
    // A notification receiver is often the bare point of access (`http://host:port`).
    let to = match to_from_path(&path) {
        Some(to) => to,
        None if op == Operation::Notify => "/".to_string(),
        None => return Err(Error::bad_request("the path names no target")),
    };
    let ty = match (op, ctype.as_deref()) {
        (Operation::Create, Some(ct)) => content_type(ct)?,
        (_, Some(ct)) if !body.is_empty() => {
            content_type(ct)?;
            None
        }
        _ => None,
    };
    let pc = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| Error::bad_request(format!("body is not valid JSON: {e}")))?;
        if !v.is_object() {
            return Err(Error::bad_request("the body must be a JSON object"));
        }
        Some(v)
    };
    let query = parse_query(
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .collect::<Vec<_>>()
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref())),
    )?;
    Ok(RequestPrimitive {
        op,
        to,
        fr: header(headers, h::ORIGIN),
        rqi,
        rvi: header(headers, h::RVI),
        ty,
        pc,
        rcn: query.rcn,
        // HTTP always answers; "no response" is served as a blocking request.
        rt: match query.rt {
            None | Some(ResponseType::NoResponse) => ResponseType::Blocking,
            Some(rt) => rt,
        },
        drt: query.drt,
        fc: query.fc,
        ot: header(headers, h::OT),
    })
}

/// Writes a response primitive as an HTTP response.
pub(crate) fn to_response(rsp: &ResponsePrimitive) -> Response {
    let status =
        StatusCode::from_u16(rsp.rsc.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = Response::builder()
        .status(status)
        .header(h::RSC, rsp.rsc.code().to_string())
        .header(h::OT, &rsp.ot);
    if let Ok(ri) = HeaderValue::from_str(&rsp.rqi) {
        b = b.header(h::RI, ri);
    }
    if let Some(rvi) = rsp
        .rvi
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        b = b.header(h::RVI, rvi);
    }
    if rsp.rsc == Rsc::CREATED {
        if let Some(loc) =
            created_location(rsp.pc.as_ref()).and_then(|l| HeaderValue::from_str(&l).ok())
        {
            b = b.header("content-location", loc);
        }
    }
    let body = match &rsp.pc {
        Some(pc) => {
            b = b.header("content-type", "application/json");
            Body::from(serde_json::to_vec(pc).unwrap_or_default())
        }
        None => Body::empty(),
    };
    b.body(body).unwrap_or_default()
}

/// Where a created resource can be reached: its structured address when the response gives
/// one (`rcn` 2 or 3), else its resource ID.
fn created_location(pc: Option<&Value>) -> Option<String> {
    let pc = pc?.as_object()?;
    if let Some(uri) = pc.get("m2m:uri").and_then(Value::as_str) {
        return Some(uri.to_string());
    }
    if let Some(uri) = pc
        .get("m2m:rce")
        .and_then(|r| r.get("uri"))
        .and_then(Value::as_str)
    {
        return Some(uri.to_string());
    }
    pc.values().next()?.get("ri")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn a_post_with_ty_is_a_create_and_without_a_notify() {
        let hs = headers(&[
            ("x-m2m-ri", "1"),
            ("x-m2m-origin", "Cme"),
            ("content-type", "application/json;ty=3"),
        ]);
        let r = to_request(
            &Method::POST,
            &"/~/id-in/cse-in/ae?rcn=0".parse().unwrap(),
            &hs,
            b"{\"m2m:cnt\":{}}",
        )
        .unwrap();
        assert_eq!(r.op, Operation::Create);
        assert_eq!(r.ty, Some(3));
        assert_eq!(r.to, "/id-in/cse-in/ae");
        assert_eq!(r.rcn, Some(0));
        assert_eq!(r.fr.as_deref(), Some("Cme"));
        let hs = headers(&[("x-m2m-ri", "1"), ("content-type", "application/json")]);
        let r = to_request(
            &Method::POST,
            &"/Cme".parse().unwrap(),
            &hs,
            b"{\"m2m:sgn\":{}}",
        )
        .unwrap();
        assert_eq!(r.op, Operation::Notify);
    }

    #[test]
    fn percent_encoded_paths_and_query_filters() {
        let hs = headers(&[("x-m2m-ri", "1")]);
        let r = to_request(
            &Method::GET,
            &"/cse-in/my%20ae?fu=1&ty=3+4".parse().unwrap(),
            &hs,
            b"",
        )
        .unwrap();
        assert_eq!(r.to, "cse-in/my ae");
        assert_eq!(r.fc.unwrap()["ty"], json!([3, 4]));
    }

    #[test]
    fn bad_requests() {
        let ok = headers(&[("x-m2m-ri", "1")]);
        let e = to_request(
            &Method::GET,
            &"/cse-in".parse().unwrap(),
            &headers(&[]),
            b"",
        )
        .unwrap_err();
        assert!(e.dbg.contains("X-M2M-RI"));
        let e = to_request(&Method::PATCH, &"/cse-in".parse().unwrap(), &ok, b"").unwrap_err();
        assert_eq!(e.rsc, Rsc::OPERATION_NOT_ALLOWED);
        let e = to_request(&Method::PUT, &"/cse-in".parse().unwrap(), &ok, b"{nope").unwrap_err();
        assert!(e.dbg.contains("not valid JSON"));
        let e = to_request(&Method::PUT, &"/cse-in".parse().unwrap(), &ok, b"[1]").unwrap_err();
        assert!(e.dbg.contains("JSON object"));
        let e = to_request(&Method::GET, &"/".parse().unwrap(), &ok, b"").unwrap_err();
        assert!(e.dbg.contains("no target"));
        let e =
            to_request(&Method::GET, &"/cse-in?bogus=1".parse().unwrap(), &ok, b"").unwrap_err();
        assert!(e.dbg.contains("bogus"));
        let ct = headers(&[("x-m2m-ri", "1"), ("content-type", "text/xml;ty=3")]);
        let e = to_request(&Method::POST, &"/cse-in".parse().unwrap(), &ct, b"<x/>").unwrap_err();
        assert_eq!(e.rsc, Rsc::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn responses_carry_status_headers_and_location() {
        let rsp = ResponsePrimitive::new(
            Rsc::CREATED,
            "r1",
            Some("3".into()),
            Some(json!({"m2m:cnt":{"ri":"cnt1"}})),
        );
        let http = to_response(&rsp);
        assert_eq!(http.status(), StatusCode::CREATED);
        assert_eq!(http.headers()["x-m2m-rsc"], "2001");
        assert_eq!(http.headers()["x-m2m-ri"], "r1");
        assert_eq!(http.headers()["x-m2m-rvi"], "3");
        assert_eq!(http.headers()["content-location"], "cnt1");
        let rsp = ResponsePrimitive::error(&Error::conflict("x"), "r2", None);
        let http = to_response(&rsp);
        assert_eq!(http.status(), StatusCode::CONFLICT);
        assert!(http.headers().get("x-m2m-rvi").is_none());
        assert_eq!(
            created_location(Some(&json!({"m2m:uri":"cse-in/a"}))).as_deref(),
            Some("cse-in/a")
        );
    }
}
