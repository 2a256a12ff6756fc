//! TS-0009 mapping between primitives and HTTP messages: the `to` ↔ path forms, query
//! parameters, header names, and (in [`message`]) whole requests and responses. Pure: the HTTP
//! binding and the HTTP client share it.

mod message;

pub use message::{
    header, request_from_http, request_to_http, response_from_http, response_to_http, Destination,
    HttpRequest,
};

use super::primitive::ResponseType;
use super::Error;
use serde_json::{Map, Value};

pub const ORIGIN: &str = "x-m2m-origin";
pub const RI: &str = "x-m2m-ri";
pub const RVI: &str = "x-m2m-rvi";
pub const RSC: &str = "x-m2m-rsc";
pub const OT: &str = "x-m2m-ot";
/// requestExpirationTimestamp (`rqet`).
pub const RET: &str = "x-m2m-ret";
/// contentStatus and contentOffset of a partial result.
pub const CTS: &str = "x-m2m-cts";
pub const CTO: &str = "x-m2m-cto";

/// `to` from a URL path: `/cse-in/ae` → `cse-in/ae`, `/~/id-in/cse-in` → `/id-in/cse-in`
/// (SP-relative), `/_/sp/id-in/cse-in` → `//sp/id-in/cse-in` (absolute). The path must already
/// be percent-decoded.
pub fn to_from_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix('/')?;
    let to = if let Some(sp) = rest.strip_prefix("~/") {
        format!("/{sp}")
    } else if let Some(abs) = rest.strip_prefix("_/") {
        format!("//{abs}")
    } else {
        rest.to_string()
    };
    let bare = to.trim_start_matches('/');
    (!bare.is_empty()).then_some(to)
}

/// The URL path for a `to`, the inverse of [`to_from_path`] (not yet percent-encoded).
pub fn path_from_to(to: &str) -> String {
    if let Some(abs) = to.strip_prefix("//") {
        format!("/_/{abs}")
    } else if let Some(sp) = to.strip_prefix('/') {
        format!("/~/{sp}")
    } else {
        format!("/{to}")
    }
}

/// Request parameters carried in the query string.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Query {
    pub rcn: Option<u64>,
    pub rt: Option<ResponseType>,
    pub drt: Option<u64>,
    /// Filter criteria, with the JSON types the MQTT `fc` object uses.
    pub fc: Option<Map<String, Value>>,
}

#[derive(Clone, Copy)]
enum FcKind {
    Uint,
    UintList,
    Text,
    TextList,
}

/// Filter-criteria parameters and how their values read.
const FILTER_CRITERIA: &[(&str, FcKind)] = &[
    ("fu", FcKind::Uint),
    ("fo", FcKind::Uint),
    ("lim", FcKind::Uint),
    ("lvl", FcKind::Uint),
    ("ofst", FcKind::Uint),
    ("sts", FcKind::Uint),
    ("stb", FcKind::Uint),
    ("sza", FcKind::Uint),
    ("szb", FcKind::Uint),
    ("ty", FcKind::UintList),
    ("lbl", FcKind::TextList),
    ("cty", FcKind::TextList),
    ("cra", FcKind::Text),
    ("crb", FcKind::Text),
    ("ms", FcKind::Text),
    ("us", FcKind::Text),
    ("exa", FcKind::Text),
    ("exb", FcKind::Text),
];

fn uint(key: &str, v: &str) -> Result<u64, Error> {
    v.trim().parse().map_err(|_| {
        Error::bad_request(format!(
            "query parameter {key} must be a non-negative integer, not '{v}'"
        ))
    })
}

/// Reads decoded query pairs. List parameters may repeat (`ty=3&ty=4`) or join values with
/// `+` (`ty=3+4`, which form decoding turns into a space). An unknown key is 4000, as in ACME.
pub fn parse_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Query, Error> {
    let mut q = Query::default();
    let mut fc = Map::new();
    for (key, value) in pairs {
        match key {
            "rcn" => q.rcn = Some(uint(key, value)?),
            "drt" => q.drt = Some(uint(key, value)?),
            "rt" => {
                q.rt = Some(match uint(key, value)? {
                    1 => ResponseType::NonBlockingSync,
                    2 => ResponseType::NonBlockingAsync,
                    3 => ResponseType::Blocking,
                    4 => ResponseType::FlexBlocking,
                    5 => ResponseType::NoResponse,
                    other => return Err(Error::bad_request(format!("rt {other} is not 1 to 5"))),
                })
            }
            _ => {
                let Some((_, kind)) = FILTER_CRITERIA.iter().find(|(k, _)| *k == key) else {
                    return Err(Error::bad_request(format!(
                        "unknown query parameter '{key}'"
                    )));
                };
                let items = || value.split(['+', ' ']).filter(|s| !s.is_empty());
                match kind {
                    FcKind::Uint => {
                        fc.insert(key.into(), Value::from(uint(key, value)?));
                    }
                    FcKind::Text => {
                        fc.insert(key.into(), Value::from(value));
                    }
                    FcKind::UintList | FcKind::TextList => {
                        let list = fc.entry(key).or_insert_with(|| Value::Array(Vec::new()));
                        if let Value::Array(list) = list {
                            for item in items() {
                                list.push(match kind {
                                    FcKind::UintList => Value::from(uint(key, item)?),
                                    _ => Value::from(item),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    q.fc = (!fc.is_empty()).then_some(fc);
    Ok(q)
}

/// The query pairs for a request's `rcn`, `rt`, `drt` and `fc` (the inverse of [`parse_query`]).
pub fn query_pairs(
    rcn: Option<u64>,
    rt: ResponseType,
    drt: Option<u64>,
    fc: Option<&Map<String, Value>>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(rcn) = rcn {
        out.push(("rcn".into(), rcn.to_string()));
    }
    if rt != ResponseType::Blocking {
        out.push(("rt".into(), (rt as u8).to_string()));
    }
    if let Some(drt) = drt {
        out.push(("drt".into(), drt.to_string()));
    }
    for (k, v) in fc.into_iter().flatten() {
        match v {
            Value::Array(items) => {
                for item in items {
                    out.push((k.clone(), scalar(item)));
                }
            }
            // A null criterion is no criterion.
            Value::Null => {}
            other => out.push((k.clone(), scalar(other))),
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads the `ty` parameter of a Content-Type such as `application/json;ty=3`, and checks the
/// media type. `Ok(None)` means no `ty` (a NOTIFY when the method is POST).
pub fn content_type(value: &str) -> Result<Option<u64>, Error> {
    let mut parts = value.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default().to_ascii_lowercase();
    if !matches!(
        media.as_str(),
        "application/json" | "application/vnd.onem2m-res+json"
    ) {
        return Err(Error::new(
            super::Rsc::UNSUPPORTED_MEDIA_TYPE,
            format!("content type '{media}' is not supported; use application/json"),
        ));
    }
    for p in parts {
        if let Some(ty) = p.strip_prefix("ty=") {
            return uint("ty", ty).map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onem2m::Rsc;
    use serde_json::json;

    #[test]
    fn paths_and_targets_map_both_ways() {
        for (path, to) in [
            ("/cse-in/ae/cnt", "cse-in/ae/cnt"),
            ("/cnt123", "cnt123"),
            ("/~/id-in/cse-in/ae", "/id-in/cse-in/ae"),
            ("/_/sp.example/id-in/cse-in", "//sp.example/id-in/cse-in"),
        ] {
            assert_eq!(to_from_path(path).as_deref(), Some(to), "{path}");
            assert_eq!(path_from_to(to), path, "{to}");
        }
        assert_eq!(to_from_path("/"), None);
        assert_eq!(to_from_path("/~/"), None);
        assert_eq!(to_from_path("nothing"), None);
    }

    #[test]
    fn query_parameters_and_filter_criteria() {
        let q = parse_query([
            ("rcn", "4"),
            ("fu", "1"),
            ("ty", "3+4"),
            ("ty", "23"),
            ("lbl", "a:b"),
            ("lim", "10"),
            ("cra", "20250101T000000"),
        ])
        .unwrap();
        assert_eq!(q.rcn, Some(4));
        let fc = q.fc.unwrap();
        assert_eq!(fc["ty"], json!([3, 4, 23]));
        assert_eq!(fc["lbl"], json!(["a:b"]));
        assert_eq!(fc["fu"], json!(1));
        assert_eq!(fc["lim"], json!(10));
        assert_eq!(fc["cra"], json!("20250101T000000"));
        // Form decoding turns '+' into a space.
        assert_eq!(
            parse_query([("ty", "3 4")]).unwrap().fc.unwrap()["ty"],
            json!([3, 4])
        );
        assert_eq!(
            parse_query([("rt", "5")]).unwrap().rt,
            Some(ResponseType::NoResponse)
        );
    }

    #[test]
    fn bad_query_parameters_are_named() {
        for (k, v) in [
            ("xxx", "yyy"),
            ("rcn", "all"),
            ("ty", "cnt"),
            ("rt", "9"),
            ("lim", "-1"),
        ] {
            let e = parse_query([(k, v)]).unwrap_err();
            assert_eq!(e.rsc, Rsc::BAD_REQUEST);
            assert!(e.dbg.contains(k), "{k}: {}", e.dbg);
        }
    }

    #[test]
    fn query_pairs_read_back() {
        let fc = json!({"fu":1,"ty":[3,4],"lbl":["x"]});
        let pairs = query_pairs(Some(1), ResponseType::NoResponse, Some(2), fc.as_object());
        let q = parse_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(q.rcn, Some(1));
        assert_eq!(q.drt, Some(2));
        assert_eq!(q.rt, Some(ResponseType::NoResponse));
        assert_eq!(Value::Object(q.fc.unwrap()), fc);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("application/json;ty=3").unwrap(), Some(3));
        assert_eq!(
            content_type("application/vnd.onem2m-res+json; ty=2").unwrap(),
            Some(2)
        );
        assert_eq!(content_type("application/json").unwrap(), None);
        assert_eq!(
            content_type("text/plain").unwrap_err().rsc,
            Rsc::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            content_type("application/json;ty=x").unwrap_err().rsc,
            Rsc::BAD_REQUEST
        );
    }
}
