//! TS-0009 §6: a request or response primitive as an HTTP message, both ways. The HTTP binding
//! reads requests and writes responses; the HTTP client writes requests and reads responses;
//! an HTTP notification receiver does what the binding does.

use super::{content_type, parse_query, path_from_to, query_pairs, to_from_path};
use super::{CTO, CTS, ORIGIN, OT, RET, RI, RSC, RVI};
use crate::onem2m::{Error, Operation, RequestPrimitive, ResponsePrimitive, ResponseType, Rsc};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;

/// Characters escaped in a path; `/` stays as it is.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A header's value, if it is present and readable text.
pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Reads an HTTP request as a request primitive.
pub fn request_from_http(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<RequestPrimitive, Error> {
    let rqi = header(headers, RI)
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
        fr: header(headers, ORIGIN),
        rqi,
        rvi: header(headers, RVI),
        ty,
        pc,
        rcn: query.rcn,
        // "No response" is answered 204 with no body once the request is done.
        rt: query.rt.unwrap_or(ResponseType::Blocking),
        drt: query.drt,
        fc: query.fc,
        ot: header(headers, OT),
        rqet: header(headers, RET),
    })
}

/// Writes a response primitive as an HTTP response: the status the `rsc` maps to, the
/// `X-M2M-*` headers, `Content-Location` after a create, and `pc` as the body.
pub fn response_to_http(rsp: &ResponsePrimitive) -> http::Response<Vec<u8>> {
    let status =
        StatusCode::from_u16(rsp.rsc.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = http::Response::builder()
        .status(status)
        .header(RSC, rsp.rsc.code().to_string());
    if let Ok(ot) = HeaderValue::from_str(&rsp.ot) {
        b = b.header(OT, ot);
    }
    if let Ok(ri) = HeaderValue::from_str(&rsp.rqi) {
        b = b.header(RI, ri);
    }
    if let Some(rvi) = rsp
        .rvi
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        b = b.header(RVI, rvi);
    }
    if let Some(offset) = rsp.partial {
        b = b
            .header(CTS, crate::onem2m::primitive::PARTIAL_CONTENT.to_string())
            .header(CTO, offset.to_string());
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
            serde_json::to_vec(pc).unwrap_or_default()
        }
        None => Vec::new(),
    };
    // Every header value above was checked, so the builder cannot fail.
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

/// A request primitive as an HTTP request, for a client to send.
#[derive(Debug)]
pub struct HttpRequest {
    pub method: Method,
    /// The URL: the base with the path `to` names (or the exact URL), and the query.
    pub url: String,
    /// `X-M2M-*` and Content-Type headers.
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
}

/// Where a client sends a request.
pub enum Destination<'a> {
    /// A CSE's HTTP binding at this base URL: the path comes from the request's `to`.
    Cse(&'a str),
    /// Exactly this URL (a notification target's point of access).
    Url(&'a str),
}

/// Writes a request primitive as the HTTP request that carries it.
pub fn request_to_http(req: &RequestPrimitive, to: Destination<'_>) -> HttpRequest {
    let mut url = match to {
        Destination::Cse(base) => format!(
            "{base}{}",
            utf8_percent_encode(&path_from_to(&req.to), PATH)
        ),
        Destination::Url(url) => url.to_string(),
    };
    let pairs = query_pairs(req.rcn, req.rt, req.drt, req.fc.as_ref());
    if !pairs.is_empty() {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish(),
        );
    }
    let method = match req.op {
        Operation::Create | Operation::Notify => Method::POST,
        Operation::Retrieve => Method::GET,
        Operation::Update => Method::PUT,
        Operation::Delete => Method::DELETE,
    };
    let mut headers = vec![(RI, req.rqi.clone())];
    if let Some(fr) = &req.fr {
        headers.push((ORIGIN, fr.clone()));
    }
    if let Some(rvi) = &req.rvi {
        headers.push((RVI, rvi.clone()));
    }
    if let Some(rqet) = &req.rqet {
        headers.push((RET, rqet.clone()));
    }
    let ctype = match req.ty {
        Some(ty) => Some(format!("application/json;ty={ty}")),
        None => req.pc.as_ref().map(|_| "application/json".to_string()),
    };
    if let Some(ctype) = ctype {
        headers.push(("content-type", ctype));
    }
    HttpRequest {
        method,
        url,
        headers,
        body: req
            .pc
            .as_ref()
            .map(|pc| serde_json::to_vec(pc).unwrap_or_default()),
    }
}

/// Reads an HTTP response as a response primitive. `rqi` is the request's, used when the
/// response does not repeat it. Fails when the response is not a oneM2M one (no `X-M2M-RSC`)
/// or its body is not JSON.
pub fn response_from_http(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    rqi: &str,
) -> Result<ResponsePrimitive, String> {
    let rsc = header(headers, RSC)
        .and_then(|v| v.trim().parse::<u16>().ok())
        .ok_or_else(|| format!("HTTP {status} without an X-M2M-RSC header"))?;
    let pc = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice::<Value>(body).map_err(|e| format!("body is not JSON: {e}"))?)
    };
    Ok(ResponsePrimitive {
        rsc: Rsc(rsc),
        rqi: header(headers, RI).unwrap_or_else(|| rqi.to_string()),
        rvi: header(headers, RVI),
        ot: header(headers, OT).unwrap_or_default(),
        partial: header(headers, CTO)
            .and_then(|o| o.trim().parse().ok())
            .filter(|_| {
                header(headers, CTS).and_then(|c| c.trim().parse().ok())
                    == Some(crate::onem2m::primitive::PARTIAL_CONTENT)
            }),
        pc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
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
        let r = request_from_http(
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
        let r = request_from_http(
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
        let r = request_from_http(
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
        let parse = |m: Method, uri: &str, h: &HeaderMap, body: &[u8]| {
            request_from_http(&m, &uri.parse().unwrap(), h, body).unwrap_err()
        };
        let e = parse(Method::GET, "/cse-in", &headers(&[]), b"");
        assert!(e.dbg.contains("X-M2M-RI"));
        let e = parse(Method::PATCH, "/cse-in", &ok, b"");
        assert_eq!(e.rsc, Rsc::OPERATION_NOT_ALLOWED);
        let e = parse(Method::PUT, "/cse-in", &ok, b"{nope");
        assert!(e.dbg.contains("not valid JSON"));
        let e = parse(Method::PUT, "/cse-in", &ok, b"[1]");
        assert!(e.dbg.contains("JSON object"));
        let e = parse(Method::GET, "/", &ok, b"");
        assert!(e.dbg.contains("no target"));
        let e = parse(Method::GET, "/cse-in?bogus=1", &ok, b"");
        assert!(e.dbg.contains("bogus"));
        let ct = headers(&[("x-m2m-ri", "1"), ("content-type", "text/xml;ty=3")]);
        let e = parse(Method::POST, "/cse-in", &ct, b"<x/>");
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
        let http = response_to_http(&rsp);
        assert_eq!(http.status(), StatusCode::CREATED);
        assert_eq!(http.headers()["x-m2m-rsc"], "2001");
        assert_eq!(http.headers()["x-m2m-ri"], "r1");
        assert_eq!(http.headers()["x-m2m-rvi"], "3");
        assert_eq!(http.headers()["content-location"], "cnt1");
        let rsp = ResponsePrimitive::error(&Error::conflict("x"), "r2", None);
        let http = response_to_http(&rsp);
        assert_eq!(http.status(), StatusCode::CONFLICT);
        assert!(http.headers().get("x-m2m-rvi").is_none());
        assert_eq!(
            created_location(Some(&json!({"m2m:uri":"cse-in/a"}))).as_deref(),
            Some("cse-in/a")
        );
    }

    #[test]
    fn a_request_reads_back_as_itself() {
        let mut req = RequestPrimitive::new(Operation::Create, "/id-in/cse-in/my ae", "Cme", "q1");
        req.ty = Some(3);
        req.rcn = Some(2);
        req.pc = Some(json!({"m2m:cnt":{"rn":"x"}}));
        let out = request_to_http(&req, Destination::Cse("http://h:8080"));
        assert_eq!(out.method, Method::POST);
        assert_eq!(out.url, "http://h:8080/~/id-in/cse-in/my%20ae?rcn=2");
        let uri: Uri = out.url.parse().unwrap();
        let mut hs = HeaderMap::new();
        for (k, v) in &out.headers {
            hs.insert(*k, v.parse().unwrap());
        }
        let back = request_from_http(&out.method, &uri, &hs, out.body.as_deref().unwrap()).unwrap();
        assert_eq!(back, req);
        // A notification goes to exactly its target's URL.
        let mut n = RequestPrimitive::new(Operation::Notify, "Cme", "/id-in", "n1");
        n.pc = Some(json!({"m2m:sgn":{}}));
        let out = request_to_http(&n, Destination::Url("http://127.0.0.1:9/notify?k=1"));
        assert_eq!(out.url, "http://127.0.0.1:9/notify?k=1");
    }

    #[test]
    fn responses_read_back_and_non_onem2m_answers_are_refused() {
        let rsp = ResponsePrimitive::new(Rsc::OK, "r", Some("3".into()), Some(json!({"a":1})));
        let http = response_to_http(&rsp);
        let back = response_from_http(http.status(), http.headers(), http.body(), "other").unwrap();
        assert_eq!(back.rsc, Rsc::OK);
        assert_eq!(back.rqi, "r");
        assert_eq!(back.pc, rsp.pc);
        let e = response_from_http(StatusCode::OK, &HeaderMap::new(), b"", "r").unwrap_err();
        assert!(e.contains("X-M2M-RSC"), "{e}");
    }
}
