//! The HTTP binding as any HTTP client sees it: methods, X-M2M headers, status mapping.

mod common;
use common::*;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

/// method, path, X-M2M-Origin, Content-Type, body, expected status and rsc.
type Case<'a> = (
    Method,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    StatusCode,
    u16,
);

struct Http {
    base: String,
    client: Client,
    n: u32,
}

impl Http {
    fn new(hub: &Hub) -> Http {
        Http {
            base: format!("http://{}", hub.http.expect("http on")),
            client: Client::new(),
            n: 0,
        }
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        origin: Option<&str>,
        ctype: Option<&str>,
        body: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.n += 1;
        let mut b = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-M2M-RI", format!("h{}", self.n))
            .header("X-M2M-RVI", "3");
        if let Some(o) = origin {
            b = b.header("X-M2M-Origin", o);
        }
        if let Some(c) = ctype {
            b = b.header("Content-Type", c);
        }
        let rsp = b.body(body.to_string()).send().await.unwrap();
        let status = rsp.status();
        let headers = rsp.headers().clone();
        let text = rsp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, headers, v)
    }
}

fn rsc_of(h: &reqwest::header::HeaderMap) -> u16 {
    h["x-m2m-rsc"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn http_requests_map_to_primitives_and_back() {
    // anonymous = "everyone" (a trusted network): from this machine, the same as the default.
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let mut http = Http::new(&hub);
    let json_ty = |ty: u8| format!("application/json;ty={ty}");

    let (s, h, v) = http
        .call(
            Method::POST,
            "/cse-in",
            Some("Chttp"),
            Some(&json_ty(2)),
            r#"{"m2m:ae":{"rn":"web","api":"Nweb","rr":false}}"#,
        )
        .await;
    assert_eq!((s, rsc_of(&h)), (StatusCode::CREATED, 2001), "{v}");
    assert_eq!(h["x-m2m-ri"], "h1");
    assert_eq!(h["x-m2m-rvi"], "3");
    assert_eq!(h["content-location"], "Chttp");
    assert_eq!(v["m2m:ae"]["aei"], "Chttp", "the body is pc itself");

    let (s, h, v) = http
        .call(
            Method::POST,
            "/~/id-in/cse-in/web",
            Some("Chttp"),
            Some(&json_ty(3)),
            r#"{"m2m:cnt":{"rn":"c"}}"#,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let ri = v["m2m:cnt"]["ri"].as_str().unwrap().to_string();
    assert_eq!(h["content-location"], ri.as_str());
    // rcn=2 answers with the structured address, which becomes the Content-Location.
    let (s, h, v) = http
        .call(
            Method::POST,
            "/cse-in/web/c?rcn=2",
            Some("Chttp"),
            Some("application/vnd.onem2m-res+json; ty=4"),
            r#"{"m2m:cin":{"con":"x"}}"#,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let uri = v["m2m:uri"].as_str().unwrap();
    assert!(uri.starts_with("cse-in/web/c/"), "{uri}");
    assert_eq!(h["content-location"], uri);

    let (s, _, v) = http
        .call(
            Method::GET,
            &format!("/_/m2mhub.example/id-in/{ri}/la"),
            Some("Chttp"),
            None,
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["m2m:cin"]["con"], "x");
    // The largest level a client can ask for means "all levels", not an overflow.
    for query in ["fu=1&ty=3+4", &format!("fu=1&ty=3+4&lvl={}", u64::MAX)] {
        let path = format!("/cse-in/web?{query}");
        let (s, _, v) = http.call(Method::GET, &path, Some("Chttp"), None, "").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["m2m:uril"].as_array().unwrap().len(), 2, "{query}: {v}");
    }
    let (s, h, v) = http
        .call(
            Method::PUT,
            "/cse-in/web/c",
            Some("Chttp"),
            Some("application/json"),
            r#"{"m2m:cnt":{"mni":5}}"#,
        )
        .await;
    assert_eq!((s, rsc_of(&h)), (StatusCode::OK, 2004));
    assert_eq!(v["m2m:cnt"]["mni"], 5);
    let (s, h, v) = http
        .call(Method::DELETE, "/cse-in/web/c/la", Some("Chttp"), None, "")
        .await;
    assert_eq!((s, rsc_of(&h)), (StatusCode::OK, 2002));
    assert_eq!(v, Value::Null, "rcn 0 by default for DELETE: no body");
}

#[tokio::test]
async fn http_errors_have_the_ts_0009_statuses() {
    let hub = Hub::start();
    let mut http = Http::new(&hub);
    http.call(
        Method::POST,
        "/cse-in",
        Some("Chttp"),
        Some("application/json;ty=2"),
        r#"{"m2m:ae":{"rn":"web","api":"Nweb","rr":false}}"#,
    )
    .await;
    http.call(
        Method::POST,
        "/cse-in/web",
        Some("Chttp"),
        Some("application/json;ty=3"),
        r#"{"m2m:cnt":{"rn":"c"}}"#,
    )
    .await;
    http.call(
        Method::POST,
        "/cse-in/web/c",
        Some("Chttp"),
        Some("application/json;ty=4"),
        r#"{"m2m:cin":{"con":"x"}}"#,
    )
    .await;

    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/cse-in/web",
            Some("Chttp"),
            Some("application/json;ty=3"),
            "{not json",
            StatusCode::BAD_REQUEST,
            4000,
        ),
        (
            Method::POST,
            "/cse-in/web",
            Some("Chttp"),
            Some("application/json;ty=3"),
            r#"{"m2m:cnt":{"bogus":1}}"#,
            StatusCode::BAD_REQUEST,
            4000,
        ),
        (
            Method::GET,
            "/cse-in/web?bogus=1",
            Some("Chttp"),
            None,
            "",
            StatusCode::BAD_REQUEST,
            4000,
        ),
        (
            Method::GET,
            "/cse-in/web/nothing",
            Some("Chttp"),
            None,
            "",
            StatusCode::NOT_FOUND,
            4004,
        ),
        (
            Method::POST,
            "/cse-in/web",
            Some("Chttp"),
            Some("application/json;ty=3"),
            r#"{"m2m:cnt":{"rn":"c"}}"#,
            StatusCode::CONFLICT,
            4105,
        ),
        (
            Method::GET,
            "/cse-in/web/c",
            Some("Cintruder"),
            None,
            "",
            StatusCode::FORBIDDEN,
            4103,
        ),
        (
            Method::PUT,
            "/cse-in/web/c/la",
            Some("Chttp"),
            Some("application/json"),
            r#"{"m2m:cin":{"con":"y"}}"#,
            StatusCode::METHOD_NOT_ALLOWED,
            4005,
        ),
        (
            Method::PATCH,
            "/cse-in/web/c",
            Some("Chttp"),
            None,
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            4005,
        ),
        (
            Method::POST,
            "/cse-in/web",
            Some("Chttp"),
            Some("text/xml;ty=3"),
            "<cnt/>",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            4015,
        ),
        (
            Method::POST,
            "/cse-in/web/c/la",
            Some("Chttp"),
            Some("application/json;ty=4"),
            r#"{"m2m:cin":{"con":"x"}}"#,
            StatusCode::METHOD_NOT_ALLOWED,
            4005,
        ),
        (
            Method::GET,
            "/~/id-mn/cse-mn",
            Some("Chttp"),
            None,
            "",
            StatusCode::NOT_FOUND,
            5103,
        ),
        (
            Method::GET,
            "/cse-in",
            None,
            None,
            "",
            StatusCode::BAD_REQUEST,
            4000,
        ),
    ];
    for (method, path, origin, ctype, body, status, rsc) in cases {
        let (s, h, v) = http.call(method.clone(), path, origin, ctype, body).await;
        assert_eq!((s, rsc_of(&h)), (status, rsc), "{method} {path}: {v}");
        assert!(
            v["m2m:dbg"].as_str().is_some_and(|d| !d.is_empty()),
            "{method} {path}: no dbg in {v}"
        );
    }

    // Without X-M2M-RI: 400 with X-M2M-RSC 4000.
    let rsp = reqwest::Client::new()
        .get(format!("{}/cse-in", http.base))
        .header("X-M2M-Origin", "Chttp")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(rsp.headers()["x-m2m-rsc"], "4000");
    assert!(rsp.text().await.unwrap().contains("X-M2M-RI"));
}
