//! Security (TS-0010 §8), as devices meet it: credentials from a Mosquitto-format password
//! file, an identity that acts only as the originators bound to it, topics authorized per
//! originator, and the same rules over HTTP.

mod common;
use common::*;
use rumqttc::{ConnectReturnCode, ConnectionError, SubscribeReasonCode};
use serde_json::{json, Value};
use std::process::Command;

/// A hub that takes nobody without credentials, with users `Ca`, `Cb` and `CAdmin`.
fn locked_hub() -> (Hub, tempfile::TempDir) {
    let files = tempfile::tempdir().unwrap();
    let pw = files.path().join("passwords");
    for user in ["Ca", "Cb", "CAdmin"] {
        passwd(&pw, user, &format!("{user}-secret"));
    }
    let hub = Hub::start_with(&[
        ("M2MHUB_SECURITY__ANONYMOUS", "nobody"),
        ("M2MHUB_SECURITY__PASSWORD_FILE", pw.to_str().unwrap()),
    ]);
    (hub, files)
}

fn refused_with(result: Result<Device, ConnectionError>) -> ConnectReturnCode {
    match result {
        Err(ConnectionError::ConnectionRefused(code)) => code,
        Err(e) => panic!("refused without a CONNACK code: {e}"),
        Ok(d) => panic!("{} was let in", d.id),
    }
}

#[tokio::test]
async fn anonymous_and_wrong_passwords_are_refused_with_a_reason() {
    let (hub, _files) = locked_hub();
    let anon = Device::connect_opts(rumqttc::MqttOptions::new(
        "Cnobody",
        hub.mqtt.ip().to_string(),
        hub.mqtt.port(),
    ))
    .await;
    assert_eq!(refused_with(anon), ConnectReturnCode::NotAuthorized);
    let wrong = Device::try_connect_as(hub.mqtt, "Ca", "not-the-password").await;
    assert_eq!(refused_with(wrong), ConnectReturnCode::BadUserNamePassword);
    let unknown = Device::try_connect_as(hub.mqtt, "Cmallory", "Ca-secret").await;
    assert_eq!(
        refused_with(unknown),
        ConnectReturnCode::BadUserNamePassword
    );

    let mut a = Device::connect_as(hub.mqtt, "Ca", "Ca-secret").await;
    a.listen_responses("Ca").await;
    assert_eq!(rsc(&register(&mut a, "Ca", "a").await), 2001);

    // Over HTTP: 401 with a oneM2M error body, then Basic credentials get in.
    let http = reqwest::Client::new();
    let url = format!("http://{}/cse-in", hub.http.unwrap());
    let rsp = http
        .get(&url)
        .header("X-M2M-Origin", "Ca")
        .header("X-M2M-RI", "h1")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 401);
    assert!(rsp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(rsp.headers()["x-m2m-rsc"], "4106");
    let body: Value = serde_json::from_slice(&rsp.bytes().await.unwrap()).unwrap();
    assert!(
        body["m2m:dbg"].as_str().unwrap().contains("credentials"),
        "{body}"
    );
    let rsp = http
        .get(&url)
        .basic_auth("Ca", Some("wrong"))
        .header("X-M2M-Origin", "Ca")
        .header("X-M2M-RI", "h2")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 401);
    let rsp = http
        .get(format!("{url}/a"))
        .basic_auth("Ca", Some("Ca-secret"))
        .header("X-M2M-Origin", "Ca")
        .header("X-M2M-RI", "h3")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);

    // Refusals are logged with the client's address, never with a password.
    let logs = hub.logs();
    assert!(
        logs.contains("MQTT client refused") && logs.contains("127.0.0.1"),
        "{logs}"
    );
    assert!(logs.contains("HTTP client refused"), "{logs}");
    assert!(
        !logs.contains("not-the-password") && !logs.contains("Ca-secret"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_mosquitto_passwd_file_works_and_sighup_adds_a_user_without_dropping_anyone() {
    let files = tempfile::tempdir().unwrap();
    let pw = files.path().join("passwords");
    // mosquitto_passwd writes the file where it is installed; m2mhub passwd otherwise.
    let mosquitto = Command::new("mosquitto_passwd")
        .args(["-c", "-b", pw.to_str().unwrap(), "Ca", "Ca-secret"])
        .status()
        .is_ok_and(|s| s.success());
    if !mosquitto {
        assert!(
            std::env::var_os("CI").is_none(),
            "mosquitto_passwd is missing in CI"
        );
        eprintln!("SKIPPED the mosquitto_passwd part: it is not installed");
        passwd(&pw, "Ca", "Ca-secret");
    }
    let hub = Hub::start_with(&[
        ("M2MHUB_SECURITY__ANONYMOUS", "nobody"),
        ("M2MHUB_SECURITY__PASSWORD_FILE", pw.to_str().unwrap()),
    ]);
    let mut a = Device::connect_as(hub.mqtt, "Ca", "Ca-secret").await;
    a.listen_responses("Ca").await;
    assert_eq!(rsc(&register(&mut a, "Ca", "a").await), 2001);
    assert_eq!(
        refused_with(Device::try_connect_as(hub.mqtt, "Cb", "Cb-secret").await),
        ConnectReturnCode::BadUserNamePassword
    );

    passwd(&pw, "Cb", "Cb-secret");
    Command::new("kill")
        .args(["-HUP", &hub.pid().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while !hub.logs().contains("reloaded the password and ACL files") {
        assert!(std::time::Instant::now() < deadline, "{}", hub.logs());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut b = Device::connect_as(hub.mqtt, "Cb", "Cb-secret").await;
    b.listen_responses("Cb").await;
    assert_eq!(rsc(&register(&mut b, "Cb", "b").await), 2001);
    // The connection made before the reload is still served.
    let r = a.request("Ca", retrieve("cse-in/a")).await;
    assert_eq!(rsc(&r), 2000, "{r}");
}

#[tokio::test]
async fn one_device_cannot_read_another_s_traffic_or_act_as_it() {
    let (hub, _files) = locked_hub();
    let mut a = Device::connect_as(hub.mqtt, "Ca", "Ca-secret").await;
    a.listen_responses("Ca").await;
    a.subscribe("/oneM2M/req/+/Ca/#").await;
    assert_eq!(rsc(&register(&mut a, "Ca", "a").await), 2001);

    let mut b = Device::connect_as(hub.mqtt, "Cb", "Cb-secret").await;
    // Filters that could match A's (or anyone's) oneM2M topics are refused.
    for filter in [
        "#",
        "/#",
        "+/#",
        "/oneM2M/#",
        "/oneM2M/resp/+/#",
        "/oneM2M/resp/Ca/#",
        "/oneM2M/req/+/Ca/#",
        "/oneM2M/req/+/id-in/#",
        "/oneM2M/reg_req/+/id-in/json",
        "/oneM2M/resp/+/id-in/json",
        // A shared subscription is its filter to the router.
        "$share/g/#",
        "$share/g//oneM2M/resp/+/+/json",
        "$share/g//oneM2M/resp/Ca/#",
    ] {
        assert_eq!(
            b.subscribe_code(filter).await,
            SubscribeReasonCode::Failure,
            "{filter}"
        );
    }
    // Its own are fine, and so are topics outside oneM2M.
    for filter in [
        "/oneM2M/resp/Cb/#",
        "/oneM2M/req/+/Cb/#",
        "/oneM2M/reg_resp/Cb/+/json",
        "factory/#",
    ] {
        assert_ne!(
            b.subscribe_code(filter).await,
            SubscribeReasonCode::Failure,
            "{filter}"
        );
    }
    b.listen_responses("Cb").await;
    assert_eq!(rsc(&register(&mut b, "Cb", "b").await), 2001);

    // A works; B sees none of it.
    let r = a
        .request("Ca", create("cse-in/a", 3, json!({"m2m:cnt":{"rn":"c"}})))
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");
    let r = a
        .request(
            "Ca",
            create("cse-in/a/c", 4, json!({"m2m:cin":{"con":"private"}})),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");

    // B cannot act as A: not on A's topic (the broker drops it)...
    b.publish(
        "/oneM2M/req/Ca/id-in/json",
        json!({"op":4,"to":"cse-in/a/c","fr":"Ca","rqi":"steal","rvi":"3"}).to_string(),
    )
    .await;
    // ...nor with A's ID in fr on its own topic...
    let r = b
        .send(
            "/oneM2M/req/Cb/id-in/json",
            json!({"op":4,"to":"cse-in/a/c","fr":"Ca","rqi":"steal2","rvi":"3"}),
        )
        .await
        .1;
    assert_eq!(rsc(&r), 4103, "{r}");
    // ...nor as the admin, the CSE, or by registering A's or the admin's name.
    b.publish(
        "/oneM2M/req/CAdmin/id-in/json",
        json!({"op":4,"to":"cse-in/a","fr":"CAdmin","rqi":"steal3","rvi":"3"}).to_string(),
    )
    .await;
    b.publish(
        "/oneM2M/req/id-in/id-in/json",
        json!({"op":4,"to":"cse-in/a","fr":"/id-in/CAdmin","rqi":"steal4","rvi":"3"}).to_string(),
    )
    .await;
    let r = b
        .send(
            "/oneM2M/reg_req/Cb/id-in/json",
            json!({"op":1,"to":"cse-in","fr":"CAdmin","rqi":"r1","rvi":"3","ty":2,
                   "pc":{"m2m:ae":{"rn":"admin","api":"Nx","rr":false}}}),
        )
        .await
        .1;
    assert_eq!(rsc(&r), 4103, "the admin's name is not an AE-ID: {r}");
    let r = b
        .send(
            "/oneM2M/reg_req/Cb/id-in/json",
            json!({"op":1,"to":"cse-in","fr":"Ca","rqi":"r2","rvi":"3","ty":2,
                   "pc":{"m2m:ae":{"rn":"a2","api":"Nx","rr":false}}}),
        )
        .await
        .1;
    assert_ne!(rsc(&r), 2001, "A's name stays A's: {r}");
    // ...nor over HTTP.
    let http = reqwest::Client::new();
    let rsp = http
        .delete(format!("http://{}/cse-in/a/c", hub.http.unwrap()))
        .basic_auth("Cb", Some("Cb-secret"))
        .header("X-M2M-Origin", "Ca")
        .header("X-M2M-RI", "h1")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.headers()["x-m2m-rsc"], "4103");

    // A's data is intact, and B received nothing of A's traffic.
    let r = a.request("Ca", retrieve("cse-in/a/c/la")).await;
    assert_eq!(r["pc"]["m2m:cin"]["con"], "private", "{r}");
    let r = b.request("Cb", retrieve("cse-in/b")).await;
    assert_eq!(rsc(&r), 2000, "{r}");
    let leaked: Vec<String> = b
        .received()
        .iter()
        .map(|p| p.topic.clone())
        .filter(|t| !t.contains("/Cb/"))
        .collect();
    assert!(leaked.is_empty(), "B received {leaked:?}");
    let foreign = a.received().iter().any(|p| {
        serde_json::from_slice::<Value>(&p.payload)
            .is_ok_and(|v| v["rqi"].as_str().is_some_and(|r| r.starts_with("steal")))
    });
    assert!(!foreign, "a request forged as A was answered to A");
}

#[tokio::test]
async fn an_answer_counts_only_from_the_entity_that_was_asked() {
    let (hub, _files) = locked_hub();
    // A registers with an MQTT poa and subscribes to its container with itself as target:
    // no verification. B then points a subscription at A: the CSE asks A to verify, and B
    // may not answer in A's place (the broker drops B's answer on A's response topic).
    let mut a = Device::connect_as(hub.mqtt, "Ca", "Ca-secret").await;
    a.listen_responses("Ca").await;
    a.subscribe("/oneM2M/req/+/Ca/#").await;
    let r = a
        .send(
            "/oneM2M/reg_req/Ca/id-in/json",
            json!({"op":1,"to":"cse-in","fr":"Ca","rqi":"reg","rvi":"3","ty":2,
                   "pc":{"m2m:ae":{"rn":"a","api":"Na","rr":true,"poa":[format!("mqtt://{}", hub.mqtt)]}}}),
        )
        .await
        .1;
    assert_eq!(rsc(&r), 2001, "{r}");
    let mut b = Device::connect_as(hub.mqtt, "Cb", "Cb-secret").await;
    b.listen_responses("Cb").await;
    assert_eq!(rsc(&register(&mut b, "Cb", "b").await), 2001);
    b.request("Cb", create("cse-in/b", 3, json!({"m2m:cnt":{"rn":"c"}})))
        .await;
    let rqi = b.rqi();
    b.publish(
        "/oneM2M/req/Cb/id-in/json",
        json!({"op":1,"to":"cse-in/b/c","fr":"Cb","rqi":rqi,"rvi":"3","ty":23,
               "pc":{"m2m:sub":{"nu":["Ca"]}}})
        .to_string(),
    )
    .await;
    // A receives the verification request; B forges the answer before A could.
    let vrq = a
        .expect(|p| p.topic.starts_with("/oneM2M/req/id-in/Ca"))
        .await;
    let v: Value = serde_json::from_slice(&vrq.payload).unwrap();
    b.publish(
        "/oneM2M/resp/id-in/Ca/json",
        json!({"rsc":2000,"rqi":v["rqi"],"rvi":"3"}).to_string(),
    )
    .await;
    // A refuses.
    a.publish(
        "/oneM2M/resp/id-in/Ca/json",
        json!({"rsc":4103,"rqi":v["rqi"],"rvi":"3"}).to_string(),
    )
    .await;
    let r = b
        .expect(|p| String::from_utf8_lossy(&p.payload).contains(&rqi))
        .await;
    let r: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(rsc(&r), 5204, "the subscription stands on A's refusal: {r}");
}

/// Topics outside oneM2M follow the ACL file (Mosquitto's format): Ca may write
/// `factory/#`, Cb only read it.
#[tokio::test]
async fn an_acl_file_governs_plain_topics() {
    let files = tempfile::tempdir().unwrap();
    let pw = files.path().join("passwords");
    passwd(&pw, "Ca", "Ca-secret");
    passwd(&pw, "Cb", "Cb-secret");
    let acl = files.path().join("acl");
    std::fs::write(
        &acl,
        "user Ca\ntopic readwrite factory/#\n\nuser Cb\ntopic read factory/#\n",
    )
    .unwrap();
    let hub = Hub::start_with(&[
        ("M2MHUB_SECURITY__ANONYMOUS", "nobody"),
        ("M2MHUB_SECURITY__PASSWORD_FILE", pw.to_str().unwrap()),
        ("M2MHUB_SECURITY__ACL_FILE", acl.to_str().unwrap()),
    ]);
    let mut a = Device::connect_as(hub.mqtt, "Ca", "Ca-secret").await;
    let mut b = Device::connect_as(hub.mqtt, "Cb", "Cb-secret").await;
    assert_eq!(
        b.subscribe_code("elsewhere/#").await,
        SubscribeReasonCode::Failure
    );
    assert_ne!(
        b.subscribe_code("factory/#").await,
        SubscribeReasonCode::Failure
    );
    assert_ne!(
        a.subscribe_code("factory/#").await,
        SubscribeReasonCode::Failure
    );
    // B may not write: its publish, taken by the broker first, never reaches A.
    let before = b.pubacks();
    b.publish("factory/line1", "from b").await;
    b.wait_pubacks(before + 1).await;
    a.publish("factory/line1", "from a").await;
    let got = a.expect(|p| p.topic == "factory/line1").await;
    assert_eq!(&got.payload[..], b"from a");
    let got = b.expect(|p| p.topic == "factory/line1").await;
    assert_eq!(&got.payload[..], b"from a", "B reads what A wrote");
    assert!(
        !a.received().iter().any(|p| &p.payload[..] == b"from b"),
        "B's publish got through"
    );
}

/// A credential registers as itself, or has an AE-ID assigned; it takes no other name, and
/// no CSE-ID but its own: squatting a name would let it act as that name's future owner.
#[tokio::test]
async fn a_credential_cannot_squat_names_or_cse_ids() {
    let (hub, _files) = locked_hub();
    let mut b = Device::connect_as(hub.mqtt, "Cb", "Cb-secret").await;
    b.listen_responses("Cb").await;
    let reg = |fr: &str, ty: u8, rqi: &str| {
        let pc = if ty == 2 {
            json!({"m2m:ae":{"api":"Nx","rr":false}})
        } else {
            json!({"m2m:csr":{"csi":fr,"cb":format!("{fr}/cb"),"rr":true}})
        };
        json!({"op":1,"to":"cse-in","fr":fr,"rqi":rqi,"rvi":"3","ty":ty,"pc":pc})
    };
    for (fr, ty) in [("Csensor8", 2), ("/alice", 16), ("/id-mn", 16)] {
        let r = b
            .send("/oneM2M/reg_req/Cb/id-in/json", reg(fr, ty, fr))
            .await
            .1;
        assert_eq!(rsc(&r), 4103, "{fr}: {r}");
    }
    assert_eq!(
        b.subscribe_code("/oneM2M/resp/alice/#").await,
        SubscribeReasonCode::Failure
    );
    // An assigned AE-ID is B's to use.
    let r = b
        .send("/oneM2M/reg_req/Cb/id-in/json", reg("C", 2, "assigned"))
        .await
        .1;
    assert_eq!(rsc(&r), 2001, "{r}");
    let aei = r["pc"]["m2m:ae"]["aei"].as_str().unwrap().to_string();
    assert_ne!(
        b.subscribe_code(&format!("/oneM2M/resp/{aei}/#")).await,
        SubscribeReasonCode::Failure
    );
    let r = b
        .send(
            &format!("/oneM2M/req/{aei}/id-in/json"),
            json!({"op":2,"to":format!("cse-in/{aei}"),"fr":aei,"rqi":"mine","rvi":"3"}),
        )
        .await
        .1;
    assert_eq!(rsc(&r), 2000, "{r}");
    // It may not register under another credential on reg_req either.
    b.publish(
        "/oneM2M/reg_req/Ca/id-in/json",
        reg("C", 2, "as-a").to_string(),
    )
    .await;
    let r = b.request("Cb", retrieve("cse-in")).await;
    assert_eq!(rsc(&r), 2000);
    let answered = b
        .received()
        .iter()
        .any(|p| serde_json::from_slice::<Value>(&p.payload).is_ok_and(|v| v["rqi"] == "as-a"));
    assert!(!answered);
}

/// Another credential with A's client ID neither takes A's connection and session over nor
/// inherits its subscriptions: sessions are kept apart per identity.
#[tokio::test]
async fn a_client_id_does_not_hand_over_another_identity_s_session() {
    let (hub, _files) = locked_hub();
    let mut opts =
        rumqttc::MqttOptions::new("shared-id", hub.mqtt.ip().to_string(), hub.mqtt.port());
    opts.set_credentials("Ca", "Ca-secret");
    opts.set_clean_session(false);
    let mut a = Device::connect_opts(opts).await.unwrap();
    a.listen_responses("Ca").await;
    let r = a
        .send(
            "/oneM2M/reg_req/Ca/id-in/json",
            json!({"op":1,"to":"cse-in","fr":"Ca","rqi":"reg","rvi":"3","ty":2,
                   "pc":{"m2m:ae":{"rn":"a","api":"Na","rr":false}}}),
        )
        .await
        .1;
    assert_eq!(rsc(&r), 2001, "{r}");

    let mut opts =
        rumqttc::MqttOptions::new("shared-id", hub.mqtt.ip().to_string(), hub.mqtt.port());
    opts.set_credentials("Cb", "Cb-secret");
    opts.set_clean_session(false);
    let mut b = Device::connect_opts(opts).await.unwrap();
    // A is still connected and served; B gets none of A's answers.
    let r = a.request("Ca", retrieve("cse-in/a")).await;
    assert_eq!(rsc(&r), 2000, "{r}");
    b.listen_responses("Cb").await;
    assert!(
        b.received().iter().all(|p| !p.topic.contains("/Ca/")),
        "B inherited A's subscriptions"
    );
}
