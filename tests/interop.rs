//! Real clients' requests, replayed byte for byte as they were captured
//! (`tests/fixtures/interop/`), against the appliance: each gets success where the spec
//! allows it, and the answers that are errors are the ones the spec asks for.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashMap;

/// The requests of a capture: (topic, payload), in order.
fn requests(capture: &str) -> Vec<(&str, &str)> {
    capture
        .lines()
        .filter(|l| l.starts_with("/oneM2M/req/") || l.starts_with("/oneM2M/reg_req/"))
        .map(|l| l.split_once(' ').expect("topic, space, payload"))
        .collect()
}

/// Publishes `payload` as captured and returns the answer with its `rqi`.
async fn replay(dev: &mut Device, topic: &str, payload: &str) -> Value {
    let rqi = serde_json::from_str::<Value>(payload).unwrap()["rqi"]
        .as_str()
        .unwrap()
        .to_string();
    dev.publish(topic, payload).await;
    let p = dev
        .expect(|p| {
            p.topic.starts_with("/oneM2M/resp/")
                && serde_json::from_slice::<Value>(&p.payload)
                    .is_ok_and(|v| v["rqi"] == rqi.as_str())
        })
        .await;
    serde_json::from_slice(&p.payload).unwrap()
}

#[tokio::test]
async fn openmtc_mqtt_client_session_as_captured() {
    let capture = include_str!("fixtures/interop/openmtc-client-mqtt.log");
    let hub = Hub::start();
    let mut dev = Device::connect(hub.mqtt, "openmtc-raw").await;
    dev.listen_responses("Crawmqtt").await;
    // The answers that are not success, by rqi, and why the spec wants them so.
    let errors: HashMap<&str, (u64, &str)> = HashMap::from([
        // Retrieving the container the session has just deleted.
        ("nE4SyHMXLzxp3Jc0", (4004, "no resource")),
    ]);
    let mut seen = Vec::new();
    for (topic, payload) in requests(capture) {
        let rsp = replay(&mut dev, topic, payload).await;
        let rqi = rsp["rqi"].as_str().unwrap().to_string();
        let rsc = rsp["rsc"].as_u64().unwrap();
        match errors.iter().find(|(k, _)| rqi.starts_with(*k)) {
            Some((_, (want, says))) => {
                assert_eq!(rsc, *want, "{payload}\n→ {rsp}");
                assert!(rsp.to_string().contains(says), "{rsp}");
            }
            None => assert!(rsc < 4000, "{payload}\n→ {rsp}"),
        }
        seen.push((rqi, rsp));
    }
    assert_eq!(seen.len(), 22);
    let by = |rqi: &str| &seen.iter().find(|(r, _)| r == rqi).unwrap().1;
    // The AE registered with what was set, nothing of what was not.
    let ae = &by("XEKDoVU0rm5gvaPl")["pc"]["m2m:ae"];
    assert_eq!(ae["api"], "Nrawmqtt");
    assert_eq!(ae["lbl"], serde_json::json!(["openmtc", "raw"]));
    assert!(ae.get("aa").is_none() && ae.get("ch").is_none(), "{ae}");
    // The subscription, its enc written with long member names, as net 3.
    let sub = &by("UsI7Ybp6iEMJP8G0")["pc"]["m2m:sub"];
    assert_eq!(sub["enc"], serde_json::json!({"net": [3]}), "{sub}");
    // rcn 5: the attributes and the children's references (3 instances, the subscription).
    let cnt = &by("zUSI8ZmAMtfrJ0aj")["pc"]["m2m:cnt"];
    assert_eq!(cnt["ch"].as_array().map(Vec::len), Some(4), "{cnt}");
    // The whole-model UPDATEs change what they set and leave the rest.
    let cnt = &by("gR9YIXefM4W3Ldyt")["pc"]["m2m:cnt"];
    assert_eq!(cnt["lbl"], serde_json::json!(["updated"]));
    assert_eq!(
        cnt["mni"], 5,
        "mni: null in a whole model is not a deletion: {cnt}"
    );
    let ae = &by("h7bNZoAI0PszGagY")["pc"]["m2m:ae"];
    assert_eq!(ae["lbl"], serde_json::json!(["foo", "bar"]));
    assert_eq!(ae["rr"], true);
    assert_eq!(ae["poa"], serde_json::json!(["mqtt://127.0.0.1:31883"]));
    // Discovery with every criterion present, unset ones null or [].
    let found = &by("0ReEhmY9gDCztW1B")["pc"]["m2m:uril"];
    assert_eq!(found.as_array().map(Vec::len), Some(3), "{found}");
}

/// A hub named as OpenMTC's deployments name their backend: CSE `in-cse-1`, CSEBase
/// `onem2m`, service provider `openmtc.org`.
fn openmtc_backend() -> Hub {
    Hub::start_with(&[
        ("M2MHUB_CSE__ID", "in-cse-1"),
        ("M2MHUB_CSE__NAME", "onem2m"),
        ("M2MHUB_CSE__SP_ID", "openmtc.org"),
    ])
}

/// The single request of a capture, its payload parsed.
fn only_request(capture: &str) -> (&str, Value) {
    let reqs = requests(capture);
    assert_eq!(reqs.len(), 1);
    (reqs[0].0, serde_json::from_str(reqs[0].1).unwrap())
}

/// A day from now, in oneM2M's basic format.
fn tomorrow() -> String {
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .format("%Y%m%dT%H%M%S")
        .to_string()
}

async fn listening(hub: &Hub) -> Device {
    let mut dev = Device::connect(hub.mqtt, "replay").await;
    dev.subscribe("/oneM2M/resp/#").await;
    dev
}

#[tokio::test]
async fn an_openmtc_application_registers_as_captured() {
    let capture = include_str!("fixtures/interop/openmtc-app-framework.log");
    let hub = openmtc_backend();
    let mut dev = listening(&hub).await;
    let (topic, mut req) = only_request(capture);
    // As captured: its et (an hour ahead when it was taken) has passed, which TS-0004
    // refuses.
    let rsp = replay(&mut dev, topic, &req.to_string()).await;
    assert_eq!(rsp["rsc"], 4000, "{rsp}");
    assert!(rsp.to_string().contains("in the past"), "{rsp}");
    // The same request an hour ahead of now, as the application sends it: App-ID "dummy" of
    // a Release 2a request, the whole model with its nulls.
    req["pc"]["m2m:ae"]["et"] = serde_json::json!(tomorrow());
    req["rqi"] = serde_json::json!("again");
    let rsp = replay(&mut dev, topic, &req.to_string()).await;
    assert_eq!(rsp["rsc"], 2001, "{rsp}");
    assert_eq!(rsp["pc"]["m2m:ae"]["api"], "dummy");
    assert_eq!(rsp["pc"]["m2m:ae"]["aei"], "CSelfTest");
    // What the framework does next: RETRIEVE with rcn 5.
    let again = serde_json::json!({"op": 2, "to": "onem2m/SelfTest", "fr": "CSelfTest",
        "rqi": "next", "rvi": "2a", "rcn": 5});
    let rsp = replay(&mut dev, topic, &again.to_string()).await;
    assert_eq!(rsp["rsc"], 2000, "{rsp}");
    assert_eq!(rsp["pc"]["m2m:ae"]["ch"], serde_json::json!([]));
    // A Release 3 request keeps the App-ID rule.
    let strict = serde_json::json!({"op": 1, "ty": 2, "to": "onem2m", "fr": "Cstrict",
        "rqi": "strict", "rvi": "3", "pc": {"m2m:ae": {"api": "dummy", "rr": false}}});
    let rsp = replay(
        &mut dev,
        "/oneM2M/req/Cstrict/in-cse-1/json",
        &strict.to_string(),
    )
    .await;
    assert_eq!(rsp["rsc"], 4000, "{rsp}");
}

#[tokio::test]
async fn an_openmtc_gateway_registers_with_its_absolute_cse_id() {
    let capture = include_str!("fixtures/interop/openmtc-gateway-registers.log");
    let hub = openmtc_backend();
    let mut dev = listening(&hub).await;
    let (topic, mut req) = only_request(capture);
    let rsp = replay(&mut dev, topic, &req.to_string()).await;
    assert_eq!(rsp["rsc"], 4000, "its et has passed: {rsp}");
    assert!(rsp.to_string().contains("in the past"), "{rsp}");
    req["pc"]["m2m:csr"]["et"] = serde_json::json!(tomorrow());
    req["rqi"] = serde_json::json!("again");
    let rsp = replay(&mut dev, topic, &req.to_string()).await;
    assert_eq!(
        rsp["rsc"], 2001,
        "fr //openmtc.org/mn-cse-1 on topic level mn-cse-1: {rsp}"
    );
    let csr = &rsp["pc"]["m2m:csr"];
    assert_eq!(csr["csi"], "/mn-cse-1");
    assert_eq!(csr["rn"], "mn-cse-1");
    // Another service provider's CSE ID is not this one's to register.
    let mut other = req.clone();
    other["fr"] = serde_json::json!("//other.org/mn-cse-2");
    other["rqi"] = serde_json::json!("other");
    other["pc"]["m2m:csr"]["rn"] = serde_json::json!("mn-cse-2");
    let rsp = replay(
        &mut dev,
        "/oneM2M/req/mn-cse-2/in-cse-1/json",
        &other.to_string(),
    )
    .await;
    assert!(rsp["rsc"].as_u64().unwrap() >= 4000, "{rsp}");
}

#[tokio::test]
async fn a_mobius_device_registers_and_is_told_the_one_thing_to_fix() {
    let capture = include_str!("fixtures/interop/thyme-device.log");
    let hub = Hub::start();
    let mut dev = listening(&hub).await;
    let (topic, mut req) = only_request(capture);
    // As captured: "op", "ty" and "rr" as strings are read; "/cse-in" is an SP-relative
    // address of a CSE named cse-in, and the answer says what this CSEBase is called.
    let rsp = replay(&mut dev, topic, &req.to_string()).await;
    assert_eq!(rsp["rsc"], 5103, "{rsp}");
    assert!(
        rsp.to_string().contains("this CSEBase is 'cse-in'"),
        "{rsp}"
    );
    req["to"] = serde_json::json!("cse-in");
    req["rqi"] = serde_json::json!("again");
    let rsp = replay(&mut dev, topic, &req.to_string()).await;
    assert_eq!(rsp["rsc"], 2001, "{rsp}");
    let ae = &rsp["pc"]["m2m:ae"];
    assert_eq!(ae["rr"], true, "a boolean, not the string: {ae}");
    assert_eq!(ae["api"], "measure_co2");
    assert_eq!(ae["aei"], "SKETI3_DEMO");
}
