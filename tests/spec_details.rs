//! Details of TS-0004/TS-0009 that clients rely on, over both bindings: request expiry
//! (`rqet`), HTTP's "no response", the subscriber in every notification, verification
//! answered with any success, labels as tokens, and what is not a filter criterion at all.

mod common;
use common::*;
use m2mhub::client::{Client, Options};
use m2mhub::onem2m::{Operation, ResourceType, Rsc};
use serde_json::{json, Value};

#[tokio::test]
async fn an_expired_request_gets_4008_on_both_bindings() {
    let hub = Hub::start();
    let c = registered_ae(&hub, "Cexp").await;
    let http_client = Client::connect(
        &format!("http://{}", hub.http.unwrap()),
        "Cexp",
        Options::default(),
    )
    .await
    .unwrap();
    for c in [&c, &http_client] {
        let mut req = c.request(Operation::Retrieve, "cse-in/Cexp");
        req.rqet = Some("20200101T000000".into());
        let r = c.send(req).await.unwrap();
        assert_eq!(r.rsc, Rsc::REQUEST_TIMEOUT, "{r:?}");
    }
    // Not yet expired, extended form, or relative: handled.
    for rqet in ["20991231T000000", "2099-12-31T00:00:00+00:00", "5000"] {
        let mut req = c.request(Operation::Retrieve, "cse-in/Cexp");
        req.rqet = Some(rqet.into());
        assert_eq!(c.send(req).await.unwrap().rsc, Rsc::OK, "{rqet}");
    }
    let http = reqwest::Client::new();
    let url = format!("http://{}/cse-in/Cexp", hub.http.unwrap());
    let rsp = http
        .get(&url)
        .header("X-M2M-Origin", "Cexp")
        .header("X-M2M-RI", "late")
        .header("X-M2M-RVI", "3")
        .header("X-M2M-RET", "20200101T000000")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.headers()["x-m2m-rsc"], "4008");
    let rsp = http
        .get(&url)
        .header("X-M2M-Origin", "Cexp")
        .header("X-M2M-RI", "bad")
        .header("X-M2M-RET", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.headers()["x-m2m-rsc"], "4000");
}

#[tokio::test]
async fn http_no_response_is_204_and_the_work_is_done() {
    let hub = Hub::start();
    registered_ae(&hub, "Cquiet").await;
    let http = reqwest::Client::new();
    let rsp = http
        .post(format!("http://{}/cse-in/Cquiet?rt=5", hub.http.unwrap()))
        .header("X-M2M-Origin", "Cquiet")
        .header("X-M2M-RI", "q1")
        .header("X-M2M-RVI", "3")
        .header("Content-Type", "application/json;ty=3")
        .body(r#"{"m2m:cnt":{"rn":"silent"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 204);
    assert!(rsp.bytes().await.unwrap().is_empty());
    let c = Client::connect(
        &format!("http://{}", hub.http.unwrap()),
        "Cquiet",
        Options::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.retrieve("cse-in/Cquiet/silent").await.unwrap().rsc,
        Rsc::OK
    );
}

#[tokio::test]
async fn notifications_name_the_subscriber_and_any_success_verifies() {
    let hub = Hub::start();
    let (owner, mut owner_notes) = listening_ae(&hub, "Cowner").await;
    let (_other, mut other_notes) = listening_ae(&hub, "Cother").await;
    let r = owner
        .create(
            "cse-in/Cowner",
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"c"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    // The other AE answers the verification request with 2004: a success, so accepted.
    let subscribe = owner.create(
        "cse-in/Cowner/c",
        ResourceType::Subscription,
        json!({"m2m:sub":{"nu":["Cother","Cowner"],"enc":{"net":[3]}}}),
    );
    let verify = async {
        let v = tokio::time::timeout(WAIT, other_notes.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.request.pc.as_ref().unwrap()["m2m:sgn"]["vrq"], true);
        v.respond(Rsc::UPDATED);
    };
    let (r, ()) = tokio::join!(subscribe, verify);
    let r = r.unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    owner
        .create(
            "cse-in/Cowner/c",
            ResourceType::ContentInstance,
            json!({"m2m:cin":{"con":"1"}}),
        )
        .await
        .unwrap();
    for notes in [&mut owner_notes, &mut other_notes] {
        let n = tokio::time::timeout(WAIT, notes.next())
            .await
            .unwrap()
            .unwrap();
        let sgn: Value = n.request.pc.clone().unwrap()["m2m:sgn"].clone();
        n.respond(Rsc::OK);
        assert_eq!(sgn["cr"], "Cowner", "{sgn}");
        assert_eq!(sgn["nev"]["net"], 3);
    }
}

#[tokio::test]
async fn labels_are_tokens_and_unknown_criteria_are_bad_requests() {
    let hub = Hub::start();
    let c = registered_ae(&hub, "Clbl").await;
    for bad in ["", " lead", "two  spaces", "tab\there"] {
        let r = c
            .create(
                "cse-in/Clbl",
                ResourceType::Container,
                json!({"m2m:cnt":{"lbl":[bad]}}),
            )
            .await
            .unwrap();
        assert_eq!(r.rsc, Rsc::BAD_REQUEST, "{bad:?}: {r:?}");
    }
    let http = Client::connect(
        &format!("http://{}", hub.http.unwrap()),
        "Clbl",
        Options::default(),
    )
    .await
    .unwrap();
    for client in [&c, &http] {
        for (fc, rsc) in [
            (json!({"colour": "red"}), Rsc::BAD_REQUEST),
            (json!({"fo": 9}), Rsc::BAD_REQUEST),
            (json!({"sza": 10}), Rsc::NOT_IMPLEMENTED),
            (json!({"atr": [], "cty": null, "ty": [2]}), Rsc::OK),
        ] {
            let r = client
                .discover("cse-in", fc.as_object().unwrap().clone())
                .await
                .unwrap();
            assert_eq!(r.rsc, rsc, "{fc}: {r:?}");
        }
    }
}

#[tokio::test]
async fn every_resource_gets_an_expiration_time_unless_configured_not_to() {
    let hub = Hub::start();
    let c = registered_ae(&hub, "Clife").await;
    let r = c
        .create(
            "cse-in/Clife",
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"c"}}),
        )
        .await
        .unwrap();
    let et = r.pc.unwrap()["m2m:cnt"]["et"].as_str().unwrap().to_string();
    // Five years ahead by default (the year is enough to tell).
    let year: i32 = et[..4].parse().unwrap();
    let now: i32 = chrono::Utc::now().format("%Y").to_string().parse().unwrap();
    assert!((now + 4..=now + 5).contains(&year), "{et}");
    // What the request gives is kept.
    let r = c
        .create(
            "cse-in/Clife",
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"d","et":"20991231T000000"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.pc.unwrap()["m2m:cnt"]["et"], "20991231T000000,000000");
    let hub = Hub::start_with(&[("M2MHUB_CSE__DEFAULT_LIFETIME_S", "0")]);
    let c = registered_ae(&hub, "Cforever").await;
    let r = c.retrieve("cse-in/Cforever").await.unwrap();
    assert!(r.pc.unwrap()["m2m:ae"].get("et").is_none());
}

#[tokio::test]
async fn subscriptions_get_nct_and_refuse_what_table_9_6_8_4_does_not_allow() {
    let hub = Hub::start();
    let c = registered_ae(&hub, "Csubs").await;
    let r = c
        .create(
            "cse-in/Csubs",
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"c"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    let sub = |enc: Value, nct: Option<u64>| {
        let mut s = json!({"nu": ["Csubs"], "enc": enc});
        if let Some(n) = nct {
            s["nct"] = json!(n);
        }
        c.create(
            "cse-in/Csubs/c",
            ResourceType::Subscription,
            json!({ "m2m:sub": s }),
        )
    };
    // Filled in: all attributes.
    let r = sub(json!({"net": [3]}), None).await.unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    assert_eq!(r.pc.unwrap()["m2m:sub"]["nct"], 1);
    // Modified attributes of a created child: not a combination the spec allows.
    let r = sub(json!({"net": [3]}), Some(2)).await.unwrap();
    assert_eq!(r.rsc, Rsc::BAD_REQUEST, "{r:?}");
    // A child type a container cannot have.
    let r = sub(json!({"net": [3], "chty": [2]}), None).await.unwrap();
    assert_eq!(r.rsc, Rsc::BAD_REQUEST, "{r:?}");
    assert!(format!("{:?}", r.pc).contains("chty 2"), "{r:?}");
    let r = sub(json!({"net": [3], "chty": [4, 3]}), None)
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
}
