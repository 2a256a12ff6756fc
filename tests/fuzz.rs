//! Property tests over what a client controls: the request decoder (a JSON primitive, an HTTP
//! request), topics, addresses, URLs and timestamps. Whatever the input, decoding ends with a
//! value or a oneM2M error: never a panic. `PROPTEST_CASES` sets how many inputs each
//! property tries (256 by default; see the hardening notes for longer runs).

mod common;
use common::*;
use m2mhub::onem2m::address::{originator_to_local, parse_target, CseIdentity};
use m2mhub::onem2m::http::request_from_http;
use m2mhub::onem2m::topic::Topic;
use m2mhub::onem2m::{time, MqttUrl, RequestPrimitive, ResponsePrimitive};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Map, Value};
use std::time::Duration;

fn me() -> CseIdentity {
    CseIdentity {
        csi: "/id-in".into(),
        rn: "cse-in".into(),
        sp_id: "m2mhub.example".into(),
    }
}

/// Strings a client would send, and strings it should not: oneM2M pieces glued together with
/// separators, and arbitrary Unicode.
fn text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "",
        "/",
        "//",
        "~",
        "_",
        "-",
        "cse-in",
        "id-in",
        "m2mhub.example",
        "Cae",
        "la",
        "ol",
        "..",
        "%2F",
        "%",
        "é",
        "\u{0}",
        "#",
        "+",
        "?",
        "&",
        "=",
        "json",
        "oneM2M",
        "req",
        "resp",
        "reg_req",
        ":",
        "mqtt://",
        "http://",
        "[::1]",
        "20250101T000000",
        ",",
        ".",
        "99999999999999999999",
        "-1",
        " ",
    ]);
    prop_oneof![
        prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat()),
        any::<String>(),
    ]
}

/// Arbitrary JSON, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A request primitive with some of its parameters replaced by arbitrary values: close
/// enough to a real one to get past the first checks.
fn primitive() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec![
        "op", "to", "fr", "rqi", "rvi", "ty", "pc", "rcn", "rt", "fc", "drt", "ot", "rqet", "rset",
        "oet", "ec", "da", "gid", "vsi", "m2m:rqp",
    ]);
    (
        prop::collection::vec((field, json_value()), 0..6),
        any::<bool>(),
    )
        .prop_map(|(changes, wrapped)| {
            let mut p = json!({"op":1,"to":"cse-in/Cae","fr":"Cae","rqi":"r1","rvi":"3","ty":3,
                               "pc":{"m2m:cnt":{"rn":"c"}}});
            for (k, v) in changes {
                p[k] = v;
            }
            if wrapped {
                json!({ "m2m:rqp": p })
            } else {
                p
            }
        })
}

proptest! {
    #[test]
    fn the_request_decoder_never_panics(v in prop_oneof![primitive(), json_value()]) {
        if let Ok(req) = RequestPrimitive::from_value(v) {
            // What was read can be written and read back.
            let again = RequestPrimitive::from_value(req.to_value());
            prop_assert!(again.is_ok(), "{:?}", again.err());
        }
    }

    #[test]
    fn the_response_decoder_never_panics(v in json_value()) {
        let _ = ResponsePrimitive::from_value(v);
    }

    #[test]
    fn topics_never_panic_and_levels_come_from_the_topic(t in text()) {
        let topic = format!("/oneM2M/req/{t}");
        for candidate in [t.as_str(), topic.as_str()] {
            if let Some(parsed) = Topic::parse(candidate) {
                prop_assert!(candidate.contains(parsed.originator));
                prop_assert!(candidate.contains(parsed.receiver));
            }
        }
    }

    #[test]
    fn addresses_never_panic(to in text(), fr in text()) {
        let _ = parse_target(&to, &me());
        let _ = originator_to_local(&fr, &me());
        let _ = MqttUrl::parse(&to);
        let _ = MqttUrl::is_mqtt(&to);
    }

    #[test]
    fn timestamps_never_panic_and_parse_to_their_canonical_form(t in text(), secs in any::<u64>()) {
        if let Some(at) = time::parse(&t) {
            prop_assert_eq!(time::parse(&time::format(at)), Some(at));
            let _ = time::after(at, secs);
            let _ = time::before(at, secs);
        }
    }

    #[test]
    fn http_requests_never_panic(
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        path in text(),
        query in text(),
        headers in prop::collection::vec(
            (prop::sample::select(vec![
                "x-m2m-origin", "x-m2m-ri", "x-m2m-rvi", "content-type", "accept", "x-m2m-rtu",
                "x-m2m-ret", "x-m2m-oet", "x-m2m-gid", "x-m2m-ec", "x-m2m-rsc",
            ]), text()),
            0..8,
        ),
        body in prop_oneof![json_value().prop_map(|v| v.to_string().into_bytes()), any::<Vec<u8>>()],
    ) {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let encoded: String = percent_encoding::utf8_percent_encode(&path, percent_encoding::NON_ALPHANUMERIC).to_string();
        let query: String = percent_encoding::utf8_percent_encode(&query, percent_encoding::CONTROLS).to_string();
        let Ok(uri) = format!("/{encoded}?{query}").parse::<http::Uri>() else {
            return Ok(());
        };
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                map.append(name, value);
            }
        }
        let _ = request_from_http(&method, &uri, &map, &body);
    }
}

/// The same decoder in the running appliance, as devices reach it: generated requests over
/// MQTT (on request and registration topics) and HTTP, then a well-formed request. The
/// appliance answers throughout, logs no panic, and every MQTT request with a readable rqi
/// gets an answer. `FUZZ_CASES` sets how many requests per binding (500 by default).
#[tokio::test]
async fn the_running_appliance_answers_whatever_it_is_sent() {
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let mut dev = Device::connect(hub.mqtt, "Cfuzz").await;
    dev.listen_responses("Cfuzz").await;
    dev.subscribe("/oneM2M/reg_resp/Cfuzz/#").await;
    assert_eq!(rsc(&register(&mut dev, "Cfuzz", "fuzz").await), 2001);

    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop_oneof![4 => primitive(), 1 => json_value()];
    let mut expected = std::collections::HashSet::new();
    for i in 0..cases {
        let mut v = strategy.new_tree(&mut runner).unwrap().current();
        let topic = if i % 10 == 0 {
            "/oneM2M/reg_req/Cfuzz/id-in/json"
        } else {
            "/oneM2M/req/Cfuzz/id-in/json"
        };
        // Most keep the originator, so that they get past the sender check; a unique rqi,
        // so that each answer can be matched.
        if let Some(o) = v.as_object_mut() {
            if i % 3 != 0 {
                o.insert("fr".into(), json!("Cfuzz"));
            }
            if i % 5 != 0 {
                o.insert("rqi".into(), json!(format!("f{i}")));
                o.remove("rt");
                expected.insert(format!("f{i}"));
            }
        }
        dev.publish(topic, v.to_string()).await;
        if i % 50 == 49 {
            // Let the answers drain; nobody's budget is the point here.
            dev.drain_for(Duration::from_millis(20))
                .await
                .into_iter()
                .for_each(|p| {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) {
                        if let Some(rqi) = v["rqi"].as_str() {
                            expected.remove(rqi);
                        }
                    }
                });
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !expected.is_empty() && tokio::time::Instant::now() < deadline {
        for p in dev.drain_for(Duration::from_millis(100)).await {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) {
                if let Some(rqi) = v["rqi"].as_str() {
                    expected.remove(rqi);
                }
            }
        }
    }
    // A request whose primitive says rt 4 (no response), or whose rqi was replaced by a
    // non-string, is not answered by rqi; everything else is.
    assert!(
        expected.is_empty(),
        "{} requests unanswered: {:?}",
        expected.len(),
        expected.iter().take(5).collect::<Vec<_>>()
    );

    let client = reqwest::Client::new();
    let base = format!("http://{}", hub.http.unwrap());
    for i in 0..cases {
        let v = strategy.new_tree(&mut runner).unwrap().current();
        let method = ["GET", "POST", "PUT", "DELETE"][i % 4];
        let ty = ["", ";ty=2", ";ty=3", ";ty=4", ";ty=23", ";ty=99", ";ty=x"][i % 7];
        let r = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}/cse-in/fuzz"),
            )
            .header("X-M2M-Origin", "Cfuzz")
            .header("X-M2M-RI", format!("h{i}"))
            .header("X-M2M-RVI", "3")
            .header("Content-Type", format!("application/json{ty}"))
            .body(v.to_string())
            .send()
            .await
            .unwrap();
        assert!(
            r.headers().contains_key("x-m2m-rsc"),
            "{method} {v}: {:?}",
            r.status()
        );
    }

    // Still serving (the generated DELETEs may have removed the AE itself).
    let r = dev.request("Cfuzz", retrieve("cse-in")).await;
    assert_eq!(rsc(&r), 2000, "{r}");
    assert!(!hub.logs().contains("panicked"), "{}", hub.logs());
}
