//! The client's notification receiver: NOTIFY requests arrive as a stream over MQTT and HTTP,
//! and the application's answer goes back to the sender.

mod common;
use common::*;
use m2mhub::client::{Client, Options};
use m2mhub::onem2m::{Operation, Rsc};
use serde_json::json;

#[tokio::test]
async fn mqtt_receiver_gets_notify_and_answers_on_the_response_topic() {
    let hub = Hub::start();
    let ae = Client::connect(
        &format!("mqtt://{}#id-in", hub.mqtt),
        "Crecv",
        Options::default(),
    )
    .await
    .unwrap();
    let (mut notes, poa) = ae.notifications(None).await.unwrap();
    assert_eq!(poa, format!("mqtt://{}", hub.mqtt));

    // A sender (as a CSE does: another one, since nobody but the hub's own CSE may publish
    // as id-in) publishes a NOTIFY to the AE's request topic.
    let mut cse = Device::connect(hub.mqtt, "fake-cse").await;
    cse.subscribe("/oneM2M/resp/id-sender/Crecv/#").await;
    let body = json!({"op":5,"to":"Crecv","fr":"/id-sender","rqi":"n1","rvi":"3",
                      "pc":{"m2m:sgn":{"sur":"/id-in/sub1","nev":{"net":3,"rep":{"m2m:cin":{"con":"42"}}}}}});
    cse.publish("/oneM2M/req/id-sender/Crecv/json", body.to_string())
        .await;

    let n = tokio::time::timeout(WAIT, notes.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.request.op, Operation::Notify);
    assert_eq!(n.request.fr.as_deref(), Some("/id-sender"));
    assert_eq!(
        n.request.pc.as_ref().unwrap()["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"],
        "42"
    );
    n.respond(Rsc::OK);
    let p = cse
        .expect(|p| p.topic == "/oneM2M/resp/id-sender/Crecv/json")
        .await;
    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(
        (v["rsc"].as_u64(), v["rqi"].as_str()),
        (Some(2000), Some("n1"))
    );

    // Other operations are refused; the application's own code is passed on.
    cse.publish(
        "/oneM2M/req/id-sender/Crecv/json",
        json!({"op":2,"to":"Crecv","fr":"/id-sender","rqi":"n2","rvi":"3"}).to_string(),
    )
    .await;
    let p = cse
        .expect(|p| p.topic == "/oneM2M/resp/id-sender/Crecv/json")
        .await;
    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(
        (v["rsc"].as_u64(), v["rqi"].as_str()),
        (Some(4005), Some("n2"))
    );
    cse.publish(
        "/oneM2M/req/id-sender/Crecv/json",
        json!({"op":5,"to":"Crecv","fr":"/id-sender","rqi":"n3","rvi":"3","pc":{}}).to_string(),
    )
    .await;
    let n = tokio::time::timeout(WAIT, notes.next())
        .await
        .unwrap()
        .unwrap();
    n.respond(Rsc::TARGET_NOT_REACHABLE);
    let p = cse
        .expect(|p| p.topic == "/oneM2M/resp/id-sender/Crecv/json")
        .await;
    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(v["rsc"], 5103);
}

#[tokio::test]
async fn http_receiver_gets_notify_and_answers_with_x_m2m_rsc() {
    let hub = Hub::start();
    let ae = Client::connect(
        &format!("http://{}", hub.http.unwrap()),
        "Chttprecv",
        Options::default(),
    )
    .await
    .unwrap();
    let (notes, poa) = ae.notifications(None).await.unwrap();
    assert!(poa.starts_with("http://127.0.0.1:"), "{poa}");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(notes.for_each(move |req| {
        seen2.lock().unwrap().push(req.pc.clone());
        Rsc::OK
    }));

    // A raw HTTP NOTIFY, as a CSE sends it (POST, no ty).
    let rsp = reqwest::Client::new()
        .post(format!("{poa}/Chttprecv"))
        .header("X-M2M-Origin", "/id-in")
        .header("X-M2M-RI", "hn1")
        .header("X-M2M-RVI", "3")
        .header("Content-Type", "application/json")
        .body(r#"{"m2m:sgn":{"vrq":true,"sur":"/id-in/sub1"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    assert_eq!(rsp.headers()["x-m2m-rsc"], "2000");
    assert_eq!(rsp.headers()["x-m2m-ri"], "hn1");
    assert_eq!(
        seen.lock().unwrap()[0].as_ref().unwrap()["m2m:sgn"]["vrq"],
        true
    );

    // The library's own HTTP client notifies the receiver too.
    let sender = Client::connect(&poa, "/id-in", Options::default())
        .await
        .unwrap();
    let rsp = sender
        .notify("Chttprecv", json!({"m2m:sgn":{"sud":true}}))
        .await
        .unwrap();
    assert_eq!(rsp.rsc, Rsc::OK);
    assert_eq!(seen.lock().unwrap().len(), 2);
    // A CREATE is no notification.
    let rsp = sender
        .create("Chttprecv", m2m_ty(), json!({"m2m:cnt":{}}))
        .await
        .unwrap();
    assert_eq!(rsp.rsc, Rsc::OPERATION_NOT_ALLOWED);
}

fn m2m_ty() -> m2mhub::onem2m::ResourceType {
    m2mhub::onem2m::ResourceType::Container
}
