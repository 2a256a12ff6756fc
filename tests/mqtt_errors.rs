//! Every error a device can provoke is a response primitive with the right rsc and a readable
//! dbg, on the response topic of the originator named in the request topic; none disturbs
//! anyone else.

mod common;
use common::*;
use serde_json::{json, Value};

async fn setup() -> (Hub, Device) {
    let hub = Hub::start();
    let mut dev = Device::connect(hub.mqtt, "Cerr").await;
    dev.listen_responses("Cerr").await;
    assert_eq!(rsc(&register(&mut dev, "Cerr", "app").await), 2001);
    let c = dev
        .request(
            "Cerr",
            create("cse-in/app", 3, json!({"m2m:cnt":{"rn":"box"}})),
        )
        .await;
    assert_eq!(rsc(&c), 2001);
    let c = dev
        .request(
            "Cerr",
            create("cse-in/app/box", 4, json!({"m2m:cin":{"con":"1"}})),
        )
        .await;
    assert_eq!(rsc(&c), 2001);
    (hub, dev)
}

/// Publishes raw bytes and returns the next response on the originator's response topic.
async fn raw(dev: &mut Device, topic: &str, body: &[u8]) -> (String, Value) {
    dev.publish(topic, body.to_vec()).await;
    let p = dev.expect(|p| p.topic.starts_with("/oneM2M/resp/")).await;
    (
        p.topic.clone(),
        serde_json::from_slice(&p.payload).expect("JSON"),
    )
}

#[tokio::test]
async fn malformed_requests_get_4000_on_the_originators_topic() {
    let (_hub, mut dev) = setup().await;
    let topic = "/oneM2M/req/Cerr/id-in/json";

    let (t, r) = raw(&mut dev, topic, b"{\"op\":1,\"to\":").await;
    assert_eq!(t, "/oneM2M/resp/Cerr/id-in/json");
    assert_eq!(rsc(&r), 4000);
    assert!(dbg(&r).contains("not valid JSON"), "{r}");

    for (body, needle) in [
        (
            json!({"to":"cse-in","fr":"Cerr","rqi":"m1","rvi":"3"}),
            "op",
        ),
        (json!({"op":2,"fr":"Cerr","rqi":"m2","rvi":"3"}), "to"),
        (json!({"op":2,"to":"cse-in","fr":"Cerr","rvi":"3"}), "rqi"),
        (
            json!({"op":7,"to":"cse-in","fr":"Cerr","rqi":"m4","rvi":"3"}),
            "op",
        ),
        (
            json!({"op":2,"to":"cse-in","fr":"Cerr","rqi":"m5","rvi":"3","bogus":1}),
            "bogus",
        ),
        (json!(["not", "an", "object"]), "object"),
    ] {
        let (t, r) = raw(&mut dev, topic, body.to_string().as_bytes()).await;
        assert_eq!(t, "/oneM2M/resp/Cerr/id-in/json");
        assert_eq!(rsc(&r), 4000, "{body}: {r}");
        assert!(dbg(&r).contains(needle), "{body}: {r}");
        if let Some(rqi) = body.get("rqi") {
            assert_eq!(&r["rqi"], rqi, "the answer keeps the rqi it could read");
        }
    }
}

#[tokio::test]
async fn resource_errors_have_their_own_codes() {
    let (_hub, mut dev) = setup().await;
    let cases: Vec<(Value, u64, &str)> = vec![
        (
            create(
                "cse-in/app",
                3,
                json!({"m2m:cnt":{"rn":"x","colour":"red"}}),
            ),
            4000,
            "unknown attribute 'colour'",
        ),
        (
            create("cse-in/app", 3, json!({"m2m:cnt":{"rn":"x","cni":5}})),
            4000,
            "set by the CSE",
        ),
        (
            create("cse-in/app", 3, json!({"m2m:cnt":{"rn":"x","mni":"ten"}})),
            4000,
            "non-negative integer",
        ),
        (
            create("cse-in/app", 3, json!({"m2m:cin":{"con":"x"}})),
            4000,
            "m2m:cnt",
        ),
        (
            create("cse-in/app", 3, json!({"m2m:cnt":{"rn":"a/b"}})),
            4000,
            "resource name",
        ),
        (
            create("cse-in/app", 99, json!({"m2m:xyz":{}})),
            4000,
            "not supported",
        ),
        (
            json!({"op":1,"to":"cse-in/app","pc":{"m2m:cnt":{}}}),
            4000,
            "missing ty",
        ),
        (
            json!({"op":2,"to":"cse-in/app","ty":3}),
            4000,
            "only allowed in a CREATE",
        ),
        (
            create("cse-in/app/box/la", 4, json!({"m2m:cin":{"con":"x"}})),
            4005,
            "la or ol",
        ),
        (
            create("cse-in/app", 4, json!({"m2m:cin":{"con":"x"}})),
            4108,
            "cannot be created under",
        ),
        (
            create("cse-in/app", 3, json!({"m2m:cnt":{"rn":"box"}})),
            4105,
            "'box' already exists",
        ),
        (
            retrieve("cse-in/app/nothing"),
            4004,
            "no resource at 'cse-in/app/nothing'",
        ),
        (
            retrieve("cse-in/app/box/nothing/deeper"),
            4004,
            "no resource",
        ),
        (retrieve("cnt-that-does-not-exist"), 4004, "no resource"),
        (retrieve("cse-in/app/la"), 4004, "only under a container"),
        (
            update("cse-in/app/box/la", json!({"m2m:cin":{"con":"y"}})),
            4005,
            "cannot be updated",
        ),
        (
            update("cse-in/app/box", json!({"m2m:cnt":{"rn":"renamed"}})),
            4000,
            "cannot be updated",
        ),
        (
            update("cse-in/app/box", json!({"m2m:ae":{}})),
            4000,
            "m2m:cnt",
        ),
        (json!({"op":3,"to":"cse-in/app/box"}), 4000, "needs content"),
        (update("cse-in", json!({"m2m:cb":{}})), 4103, "no privilege"),
        (delete("cse-in"), 4103, "no privilege"),
        (
            json!({"op":5,"to":"cse-in/app/box","pc":{}}),
            4005,
            "NOTIFY goes to an AE",
        ),
        (
            json!({"op":5,"to":"cse-in/app","pc":{}}),
            5103,
            "no http:// or mqtt:// point of access",
        ),
        (
            json!({"op":2,"to":"cse-in","rvi":"9"}),
            4001,
            "release version",
        ),
        (json!({"op":2,"to":"cse-in","rcn":7}), 4000, "rcn 7"),
        (
            json!({"op":2,"to":"cse-in","rt":{"rtv":1}}),
            5206,
            "non-blocking",
        ),
        (
            json!({"op":2,"to":"cse-in","fc":{"fu":1,"smf":"x"}}),
            5001,
            "'smf' is not supported",
        ),
        (
            json!({"op":2,"to":"cse-in","fc":{"ty":[3]}}),
            5001,
            "conditional retrieval",
        ),
        (
            json!({"op":4,"to":"cse-in/app","fc":{"fu":1}}),
            4000,
            "is a RETRIEVE",
        ),
        (
            json!({"op":2,"to":"cse-in","fc":{"fu":1},"drt":7}),
            4000,
            "drt 7",
        ),
    ];
    for (body, code, needle) in cases {
        let r = dev.request("Cerr", body.clone()).await;
        assert_eq!(rsc(&r), code, "{body}: {r}");
        assert!(
            dbg(&r).contains(needle),
            "{body}: expected {needle:?} in {r}"
        );
    }
    // The instance the failed update tried to change is untouched.
    let la = dev.request("Cerr", retrieve("cse-in/app/box/la")).await;
    assert_eq!(la["pc"]["m2m:cin"]["con"], "1");
}

#[tokio::test]
async fn originators_are_checked_against_the_topic_and_ownership() {
    let (hub, mut dev) = setup().await;

    // fr that is not the topic's originator: refused with 4103, answered on the topic's.
    let (t, r) = raw(
        &mut dev,
        "/oneM2M/req/Cerr/id-in/json",
        json!({"op":4,"to":"cse-in/app","fr":"Cmallory","rqi":"imp1","rvi":"3"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(t, "/oneM2M/resp/Cerr/id-in/json");
    assert_eq!(rsc(&r), 4103, "{r}");
    assert!(dbg(&r).contains("does not match the topic"), "{r}");

    // Without fr, the topic's originator is taken.
    let (_, r) = raw(
        &mut dev,
        "/oneM2M/req/Cerr/id-in/json",
        json!({"op":2,"to":"cse-in/app","rqi":"nofr","rvi":"3"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(rsc(&r), 2000, "{r}");

    // Another registered AE cannot touch Cerr's resources; the admin can.
    let mut other = Device::connect(hub.mqtt, "Cother").await;
    other.listen_responses("Cother").await;
    assert_eq!(rsc(&register(&mut other, "Cother", "other").await), 2001);
    for body in [
        retrieve("cse-in/app/box"),
        delete("cse-in/app"),
        create("cse-in/app", 3, json!({"m2m:cnt":{}})),
        update("cse-in/app/box", json!({"m2m:cnt":{"mni":1}})),
    ] {
        let r = other.request("Cother", body.clone()).await;
        assert_eq!(rsc(&r), 4103, "{body}: {r}");
    }
    // Listing the CSEBase's children shows only what the originator may read.
    let mut listing = retrieve("cse-in");
    listing["rcn"] = json!(4);
    let r = other.request("Cother", listing).await;
    let aes = r["pc"]["m2m:cb"]["m2m:ae"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(aes.len(), 1, "{r}");
    assert_eq!(aes[0]["ri"], "Cother");
    // Nor can it make the CSE call out (verification) where it may not subscribe.
    let r = other
        .request(
            "Cother",
            create(
                "cse-in/app",
                23,
                json!({"m2m:sub":{"nu":["http://127.0.0.1:9/"]}}),
            ),
        )
        .await;
    assert_eq!(rsc(&r), 4103, "{r}");
    let r = other
        .request(
            "Cother",
            create("cse-in", 3, json!({"m2m:cnt":{"rn":"top"}})),
        )
        .await;
    assert_eq!(
        rsc(&r),
        4103,
        "only the admin creates directly under the CSEBase: {r}"
    );

    let mut admin = Device::connect(hub.mqtt, "CAdmin").await;
    admin.listen_responses("CAdmin").await;
    let r = admin.request("CAdmin", retrieve("cse-in/app/box")).await;
    assert_eq!(rsc(&r), 2000, "{r}");
    let r = admin
        .request(
            "CAdmin",
            create("cse-in", 3, json!({"m2m:cnt":{"rn":"top"}})),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");

    // An unregistered originator sees nothing.
    let mut stranger = Device::connect(hub.mqtt, "Cstranger").await;
    stranger.listen_responses("Cstranger").await;
    let r = stranger.request("Cstranger", retrieve("cse-in/app")).await;
    assert_eq!(rsc(&r), 4103, "{r}");
    // A request without any originator (not a registration).
    let r = stranger
        .send(
            "/oneM2M/req/Cstranger/id-in/json",
            json!({"op":2,"to":"cse-in","fr":"","rqi":"e1","rvi":"3"}),
        )
        .await
        .1;
    assert_eq!(rsc(&r), 4000, "{r}");
}

#[tokio::test]
async fn wrapped_release_one_and_no_response_requests() {
    let (_hub, mut dev) = setup().await;
    // {"m2m:rqp": {...}} is accepted; the answer is bare.
    let (_, r) = raw(
        &mut dev,
        "/oneM2M/req/Cerr/id-in/json",
        json!({"m2m:rqp":{"op":2,"to":"cse-in/app","fr":"Cerr","rqi":"w1","rvi":"3"}})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(rsc(&r), 2000, "{r}");
    assert!(r.get("m2m:rsp").is_none());

    // A Release-1 topic without serialization: JSON, answered with the suffix.
    let (t, r) = raw(
        &mut dev,
        "/oneM2M/req/Cerr/id-in",
        json!({"op":2,"to":"cse-in/app","fr":"Cerr","rqi":"w2"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(t, "/oneM2M/resp/Cerr/id-in/json");
    assert_eq!(rsc(&r), 2000, "{r}");
    assert!(r.get("rvi").is_none(), "no rvi asked, none answered: {r}");

    // A serialization we do not speak is answered in JSON with 4015.
    let (t, r) = raw(&mut dev, "/oneM2M/req/Cerr/id-in/cbor", b"\xa1\x01\x02").await;
    assert_eq!(t, "/oneM2M/resp/Cerr/id-in/json");
    assert_eq!(rsc(&r), 4015, "{r}");

    // rt = noResponse: the work is done, nothing is published. The answers to one
    // originator leave in the order of its requests, so an answer to the quiet create would
    // have arrived before the answer to the retrieve sent after it.
    dev.publish(
        "/oneM2M/req/Cerr/id-in/json",
        json!({"op":1,"to":"cse-in/app","fr":"Cerr","rqi":"quiet","rvi":"3","ty":3,"rt":{"rtv":5},
               "pc":{"m2m:cnt":{"rn":"quiet"}}})
        .to_string(),
    )
    .await;
    let r = dev.request("Cerr", retrieve("cse-in/app/quiet")).await;
    assert_eq!(rsc(&r), 2000, "the quiet create was done: {r}");
    let answered_quiet = dev
        .received()
        .iter()
        .any(|p| serde_json::from_slice::<Value>(&p.payload).is_ok_and(|v| v["rqi"] == "quiet"));
    assert!(
        !answered_quiet,
        "a response to the noResponse request was published"
    );
}

#[tokio::test]
async fn garbage_does_not_disturb_other_clients() {
    let (hub, mut dev) = setup().await;
    let mut bystander = Device::connect(hub.mqtt, "Cbystander").await;
    bystander.listen_responses("Cbystander").await;
    register(&mut bystander, "Cbystander", "by").await;

    // Garbage of every kind from `dev`: invalid UTF-8, a huge rqi, deep nesting, empty body.
    let mut deep = String::new();
    for _ in 0..10_000 {
        deep.push('[');
    }
    for body in [&b"\xff\xfe\xfd"[..], b"", deep.as_bytes(), b"null", b"{}"] {
        let (_, r) = raw(&mut dev, "/oneM2M/req/Cerr/id-in/json", body).await;
        assert_eq!(rsc(&r), 4000, "{r}");
    }
    let huge = json!({"op":2,"to":"cse-in","fr":"Cerr","rqi":"x".repeat(100_000),"rvi":"3"});
    let (_, r) = raw(
        &mut dev,
        "/oneM2M/req/Cerr/id-in/json",
        huge.to_string().as_bytes(),
    )
    .await;
    assert_eq!(rsc(&r), 2000);
    // Topics that are not oneM2M requests for us are simply not ours.
    dev.publish("/oneM2M/req/Cerr", "x").await;
    dev.publish("/oneM2M/req/Cerr/id-other/json", "x").await;

    // Everyone is still served.
    let r = bystander.request("Cbystander", retrieve("cse-in/by")).await;
    assert_eq!(rsc(&r), 2000, "{r}");
    let r = dev.request("Cerr", retrieve("cse-in/app/box/la")).await;
    assert_eq!(rsc(&r), 2000, "{r}");
}

/// A target that once made the parser recurse once per `//<sp-id>` prefix: 8,000 of them (a
/// 128 KB payload, under the broker's 256 KiB limit) overflowed the stack and aborted the
/// whole process. Now it is a 4000 like any other bad address, and everyone is still served.
#[tokio::test]
async fn a_huge_stacked_target_is_a_bad_request_not_a_crash() {
    let (hub, mut dev) = setup().await;
    let to = "//m2mhub.example".repeat(8_000);
    let body = json!({"op":2,"to":to,"fr":"Cerr","rqi":"deep","rvi":"3"}).to_string();
    assert!(body.len() > 128_000 && body.len() < 256 * 1024);
    let (t, r) = raw(&mut dev, "/oneM2M/req/Cerr/id-in/json", body.as_bytes()).await;
    assert_eq!(t, "/oneM2M/resp/Cerr/id-in/json");
    assert_eq!(rsc(&r), 4000, "{r}");
    assert_eq!(r["rqi"], "deep");
    assert!(dbg(&r).contains("at most 4096"), "{r}");
    assert!(
        dbg(&r).len() < 200,
        "the answer does not echo the input: {r}"
    );

    // Just under the limit, the prefixes still repeat: refused in one pass too.
    let to = "//m2mhub.example".repeat(250);
    let r = dev.request("Cerr", json!({"op":2,"to":to})).await;
    assert_eq!(rsc(&r), 4000, "{r}");

    // An originator as long is refused the same way.
    let r = dev
        .send(
            "/oneM2M/req/Cerr/id-in/json",
            json!({"op":2,"to":"cse-in","fr":format!("/id-in/{}", "C".repeat(5000)),"rqi":"longfr","rvi":"3"}),
        )
        .await
        .1;
    assert_eq!(rsc(&r), 4000, "{r}");

    // The process is alive and serves another client normally.
    let mut other = Device::connect(hub.mqtt, "Cafter").await;
    other.listen_responses("Cafter").await;
    assert_eq!(rsc(&register(&mut other, "Cafter", "after").await), 2001);
    let r = other.request("Cafter", retrieve("cse-in/after")).await;
    assert_eq!(rsc(&r), 2000, "{r}");
    assert!(!hub.logs().contains("overflow"), "{}", hub.logs());
}

#[tokio::test]
async fn a_target_that_is_almost_an_mqtt_url_is_refused_not_a_crash() {
    let (hub, mut dev) = setup().await;
    // The scheme's length falls inside the multi-byte 'é'.
    for (rqi, nu) in [
        ("u1", "mqtt:/é"),
        ("u2", "mqtts:/é"),
        ("u3", "secure-mqtt:/é"),
    ] {
        let r = dev
            .send(
                "/oneM2M/req/Cerr/id-in/json",
                json!({"op":1,"to":"cse-in/app/box","fr":"Cerr","rqi":rqi,"rvi":"3","ty":23,
                       "pc":{"m2m:sub":{"nu":[nu]}}}),
            )
            .await
            .1;
        assert_eq!(r["rqi"], rqi, "{r}");
        assert!(rsc(&r) >= 4000, "{nu} is no notification target: {r}");
    }
    let mut other = Device::connect(hub.mqtt, "Cafter").await;
    other.listen_responses("Cafter").await;
    assert_eq!(rsc(&register(&mut other, "Cafter", "after").await), 2001);
    assert!(!hub.logs().contains("panicked"), "{}", hub.logs());
}
