//! Subscriptions and notifications end to end: real MQTT and HTTP receivers.

mod common;
use common::*;
use m2mhub::client::{Client, Options};
use m2mhub::onem2m::{ResourceType, Rsc};
use serde_json::{json, Value};
use std::time::Duration;

/// A client on the HTTP binding with `originator`.
async fn http_client(hub: &Hub, originator: &str) -> Client {
    Client::connect(
        &format!("http://{}", hub.http.unwrap()),
        originator,
        Options::default(),
    )
    .await
    .unwrap()
}

/// Creates the container `c` under `parent`.
async fn container_c(client: &Client, parent: &str) {
    let r = client
        .create(
            parent,
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"c"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
}

fn sub(nu: Value, extra: Value) -> Value {
    let mut s = json!({"nu": nu});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    json!({ "m2m:sub": s })
}

#[tokio::test]
async fn a_subscriber_sees_every_new_instance_over_mqtt() {
    let hub = Hub::start();
    let (ae, mut notes) = listening_ae(&hub, "Cwatch").await;
    ae.create(
        "cse-in/Cwatch",
        ResourceType::Container,
        json!({"m2m:cnt":{"rn":"temp"}}),
    )
    .await
    .unwrap();
    // The subscriber names itself: no verification request.
    let s = ae
        .create(
            "cse-in/Cwatch/temp",
            ResourceType::Subscription,
            sub(json!(["Cwatch"]), json!({"rn":"s","enc":{"net":[3]}})),
        )
        .await
        .unwrap();
    assert_eq!(s.rsc, Rsc::CREATED, "{s:?}");
    let sub_ri = s.pc.as_ref().unwrap()["m2m:sub"]["ri"]
        .as_str()
        .unwrap()
        .to_string();

    for i in 0..20 {
        let r = ae
            .create(
                "cse-in/Cwatch/temp",
                ResourceType::ContentInstance,
                json!({"m2m:cin":{"con":format!("{i}")}}),
            )
            .await
            .unwrap();
        assert_eq!(r.rsc, Rsc::CREATED);
    }
    for i in 0..20 {
        let sgn = next_sgn(&mut notes).await;
        assert_eq!(sgn["nev"]["net"], 3);
        assert_eq!(
            sgn["nev"]["rep"]["m2m:cin"]["con"],
            i.to_string(),
            "in order"
        );
        assert_eq!(sgn["sur"], "/id-in/cse-in/Cwatch/temp/s");
        assert!(sub_ri.starts_with("sub"));
    }
}

#[tokio::test]
async fn verification_requests_gate_subscriptions() {
    let hub = Hub::start();
    let (ae, _notes) = listening_ae(&hub, "Cverif").await;
    container_c(&ae, "cse-in/Cverif").await;

    // An HTTP receiver that accepts: it sees vrq, sur and cr, and the subscription is made.
    let http = http_client(&hub, "Cverif").await;
    let (mut receiver, url) = http.notifications(None).await.unwrap();
    let creating = tokio::spawn(async move {
        ae.create(
            "cse-in/Cverif/c",
            ResourceType::Subscription,
            sub(json!([url]), json!({"rn":"ok"})),
        )
        .await
        .unwrap()
    });
    let v = tokio::time::timeout(WAIT, receiver.next())
        .await
        .unwrap()
        .unwrap();
    let sgn = v.request.pc.as_ref().unwrap()["m2m:sgn"].clone();
    assert_eq!(sgn["vrq"], true);
    assert_eq!(sgn["cr"], "Cverif");
    assert!(
        sgn["sur"].as_str().unwrap().starts_with("/id-in/cse-in/"),
        "{sgn}"
    );
    assert_eq!(v.request.fr.as_deref(), Some("/id-in"));
    v.respond(Rsc::OK);
    let created = creating.await.unwrap();
    assert_eq!(created.rsc, Rsc::CREATED, "{created:?}");
    // sur is the subscription's structured address, SP-relative.
    let made = &created.pc.as_ref().unwrap()["m2m:sub"];
    let rn = made["rn"].as_str().unwrap();
    assert!(
        sgn["sur"].as_str().unwrap().ends_with(&format!("/{rn}")),
        "{sgn} {made}"
    );

    // A receiver that refuses: 5204, and nothing is created.
    let ae = Client::connect(
        &format!("mqtt://{}#id-in", hub.mqtt),
        "Cverif",
        Options::default(),
    )
    .await
    .unwrap();
    let (refusing, url2) = http.notifications(None).await.unwrap();
    tokio::spawn(refusing.for_each(|_| Rsc::ORIGINATOR_HAS_NO_PRIVILEGE));
    let r = ae
        .create(
            "cse-in/Cverif/c",
            ResourceType::Subscription,
            sub(json!([url2]), json!({"rn":"refused"})),
        )
        .await
        .unwrap();
    assert_eq!(
        r.rsc,
        Rsc::SUBSCRIPTION_VERIFICATION_INITIATION_FAILED,
        "{r:?}"
    );
    // The refusal is not told apart from nothing listening (see tests/hardening.rs).
    assert!(r.dbg().unwrap().contains("did not confirm"), "{r:?}");
    assert_eq!(
        ae.retrieve("cse-in/Cverif/c/refused").await.unwrap().rsc,
        Rsc::NOT_FOUND
    );

    // Nobody there: 5204 as well.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = ae
        .create(
            "cse-in/Cverif/c",
            ResourceType::Subscription,
            sub(json!([format!("http://{closed}")]), json!({})),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::SUBSCRIPTION_VERIFICATION_INITIATION_FAILED);
    // An AE without a poa cannot be notified.
    let r = ae
        .create(
            "cse-in/Cverif/c",
            ResourceType::Subscription,
            sub(json!(["Cnobody"]), json!({})),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::SUBSCRIPTION_VERIFICATION_INITIATION_FAILED);
    // Unsupported criteria are named, not ignored.
    let r = ae
        .create(
            "cse-in/Cverif/c",
            ResourceType::Subscription,
            sub(json!(["Cverif"]), json!({"bn":{"num":2}})),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::NOT_IMPLEMENTED);
}

#[tokio::test]
async fn another_ae_is_notified_at_its_poa_after_answering_verification_on_a_release_1_topic() {
    let hub = Hub::start();
    let (owner, _n) = listening_ae(&hub, "Cowner").await;
    container_c(&owner, "cse-in/Cowner").await;

    // An OpenMTC-style AE: raw MQTT, answers on /oneM2M/resp/<orig>/<recv> without the suffix.
    let mut other = Device::connect(hub.mqtt, "Cother").await;
    other.listen_responses("Cother").await;
    other.subscribe("/oneM2M/req/+/Cother/#").await;
    let rqi = other.rqi();
    let (_, r) = other
        .send(
            "/oneM2M/reg_req/Cother/id-in/json",
            json!({"op":1,"to":"cse-in","fr":"Cother","rqi":rqi,"rvi":"3","ty":2,
                   "pc":{"m2m:ae":{"rn":"other","api":"Nother","rr":true,"poa":[format!("mqtt://{}", hub.mqtt)]}}}),
        )
        .await;
    assert_eq!(rsc(&r), 2001);

    let creating = tokio::spawn(async move {
        owner
            .create(
                "cse-in/Cowner/c",
                ResourceType::Subscription,
                sub(json!(["Cother"]), json!({"enc":{"net":[3]},"nct":3})),
            )
            .await
            .unwrap()
    });
    let v = other
        .expect(|p| p.topic == "/oneM2M/req/id-in/Cother/json")
        .await;
    let v: Value = serde_json::from_slice(&v.payload).unwrap();
    assert_eq!(v["op"], 5);
    assert_eq!(v["pc"]["m2m:sgn"]["vrq"], true);
    other
        .publish(
            "/oneM2M/resp/id-in/Cother",
            json!({"rsc":2000,"rqi":v["rqi"]}).to_string(),
        )
        .await;
    assert_eq!(creating.await.unwrap().rsc, Rsc::CREATED);

    let owner = Client::connect(
        &format!("mqtt://{}#id-in", hub.mqtt),
        "Cowner",
        Options::default(),
    )
    .await
    .unwrap();
    let cin = owner
        .create(
            "cse-in/Cowner/c",
            ResourceType::ContentInstance,
            json!({"m2m:cin":{"con":"x"}}),
        )
        .await
        .unwrap();
    let cin_ri = cin.pc.as_ref().unwrap()["m2m:cin"]["ri"].clone();
    let n = other
        .expect(|p| p.topic == "/oneM2M/req/id-in/Cother/json")
        .await;
    let n: Value = serde_json::from_slice(&n.payload).unwrap();
    assert_eq!(
        n["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:uri"], cin_ri,
        "nct 3 carries the resource ID"
    );
}

#[tokio::test]
async fn event_types_content_types_counters_and_deletion_notices() {
    let hub = Hub::start();
    let (ae, mut notes) = listening_ae(&hub, "Cnet").await;
    container_c(&ae, "cse-in/Cnet").await;
    // Only updates of the container, modified attributes only; deletion notice to the AE.
    let r = ae
        .create(
            "cse-in/Cnet/c",
            ResourceType::Subscription,
            sub(
                json!(["Cnet"]),
                json!({"rn":"upd","enc":{"net":[1]},"nct":2,"su":"Cnet"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    ae.create(
        "cse-in/Cnet/c",
        ResourceType::ContentInstance,
        json!({"m2m:cin":{"con":"ignored"}}),
    )
    .await
    .unwrap();
    nothing_within(&mut notes, Duration::from_millis(300)).await;
    ae.update("cse-in/Cnet/c", json!({"m2m:cnt":{"mni":7}}))
        .await
        .unwrap();
    let sgn = next_sgn(&mut notes).await;
    assert_eq!(sgn["nev"]["net"], 1);
    assert_eq!(sgn["nev"]["rep"], json!({"m2m:cnt":{"mni":7}}));

    // Deleting the subscription sends sud to su.
    ae.delete("cse-in/Cnet/c/upd").await.unwrap();
    let sgn = next_sgn(&mut notes).await;
    assert_eq!(sgn["sud"], true);

    // exc: two notifications, then the subscription ends with a deletion notice.
    ae.create(
        "cse-in/Cnet/c",
        ResourceType::Subscription,
        sub(
            json!(["Cnet"]),
            json!({"rn":"twice","enc":{"net":[3,4]},"exc":2,"su":"Cnet"}),
        ),
    )
    .await
    .unwrap();
    ae.create(
        "cse-in/Cnet/c",
        ResourceType::ContentInstance,
        json!({"m2m:cin":{"rn":"a","con":"1"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        next_sgn(&mut notes).await["nev"]["rep"]["m2m:cin"]["con"],
        "1"
    );
    ae.delete("cse-in/Cnet/c/a").await.unwrap();
    let sgn = next_sgn(&mut notes).await;
    assert_eq!(sgn["nev"]["net"], 4);
    assert_eq!(sgn["nev"]["rep"]["m2m:cin"]["rn"], "a");
    assert_eq!(next_sgn(&mut notes).await["sud"], true);
    assert_eq!(
        ae.retrieve("cse-in/Cnet/c/twice").await.unwrap().rsc,
        Rsc::NOT_FOUND
    );

    // Child type filter: only containers are reported.
    ae.create(
        "cse-in/Cnet/c",
        ResourceType::Subscription,
        sub(
            json!(["Cnet"]),
            json!({"rn":"cnts","enc":{"net":[3],"chty":[3]}}),
        ),
    )
    .await
    .unwrap();
    ae.create(
        "cse-in/Cnet/c",
        ResourceType::ContentInstance,
        json!({"m2m:cin":{"con":"no"}}),
    )
    .await
    .unwrap();
    ae.create(
        "cse-in/Cnet/c",
        ResourceType::Container,
        json!({"m2m:cnt":{"rn":"sub-cnt"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        next_sgn(&mut notes).await["nev"]["rep"]["m2m:cnt"]["rn"],
        "sub-cnt"
    );

    // Deleting the container: net 2 to a subscription that asks for it, and every
    // subscription below goes with a deletion notice.
    ae.create(
        "cse-in/Cnet/c",
        ResourceType::Subscription,
        sub(
            json!(["Cnet"]),
            json!({"rn":"gone","enc":{"net":[2]},"su":"Cnet"}),
        ),
    )
    .await
    .unwrap();
    ae.delete("cse-in/Cnet/c").await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(next_sgn(&mut notes).await);
    }
    assert!(
        seen.iter()
            .any(|s| s["nev"]["net"] == 2 && s["nev"]["rep"]["m2m:cnt"]["rn"] == "c"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|s| s["sud"] == true), "{seen:?}");
}

#[tokio::test]
async fn a_dead_http_target_does_not_delay_mqtt_notifications() {
    let hub = Hub::start();
    let (ae, mut notes) = listening_ae(&hub, "Cboth").await;
    container_c(&ae, "cse-in/Cboth").await;

    // An HTTP target that answers its verification, then never answers again.
    let http = http_client(&hub, "Cboth").await;
    let (mut stuck, url) = http.notifications(None).await.unwrap();
    let (hang_tx, hang_rx) = tokio::sync::oneshot::channel::<()>();
    let receiver = tokio::spawn(async move {
        let v = stuck.next().await.unwrap();
        v.respond(Rsc::OK);
        // Hold the next notification unanswered until the test ends.
        let held = stuck.next().await;
        let _ = hang_rx.await;
        drop(held);
    });
    let r = ae
        .create(
            "cse-in/Cboth/c",
            ResourceType::Subscription,
            sub(json!([url]), json!({"enc":{"net":[3]}})),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    ae.create(
        "cse-in/Cboth/c",
        ResourceType::Subscription,
        sub(json!(["Cboth"]), json!({"enc":{"net":[3]}})),
    )
    .await
    .unwrap();

    for i in 0..5 {
        ae.create(
            "cse-in/Cboth/c",
            ResourceType::ContentInstance,
            json!({"m2m:cin":{"con":format!("{i}")}}),
        )
        .await
        .unwrap();
    }
    // Every MQTT notification arrives while the HTTP target is still holding the first one.
    for i in 0..5 {
        let sgn = next_sgn(&mut notes).await;
        assert_eq!(sgn["nev"]["rep"]["m2m:cin"]["con"], i.to_string());
    }
    assert!(!receiver.is_finished(), "the HTTP target is still stuck");
    let _ = hang_tx.send(());
}

#[tokio::test]
async fn an_offline_ae_with_a_persistent_session_gets_its_notification_on_reconnect() {
    let hub = Hub::start();
    let mut dev = Device::connect_with(hub.mqtt, "A::Csleepy", false).await;
    dev.listen_responses("Csleepy").await;
    dev.subscribe("/oneM2M/req/+/Csleepy/#").await;
    let r = dev
        .request("Csleepy", create("cse-in", 2, json!({"m2m:ae":{"rn":"sleepy","api":"Ns","rr":true,"poa":[format!("mqtt://{}", hub.mqtt)]}})))
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");
    dev.request(
        "Csleepy",
        create("cse-in/sleepy", 3, json!({"m2m:cnt":{"rn":"c"}})),
    )
    .await;
    let r = dev
        .request(
            "Csleepy",
            create(
                "cse-in/sleepy/c",
                23,
                json!({"m2m:sub":{"nu":["Csleepy"],"enc":{"net":[3]}}}),
            ),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");
    dev.disconnect().await;
    // A spy on the AE's notification topic sees when the notification is in the broker.
    let mut spy = Device::connect(hub.mqtt, "spy").await;
    spy.subscribe("/oneM2M/req/+/Csleepy/#").await;

    // While it sleeps, the admin adds a reading.
    let admin = Client::connect(
        &format!("mqtt://{}#id-in", hub.mqtt),
        "CAdmin",
        Options::default(),
    )
    .await
    .unwrap();
    let r = admin
        .create(
            "cse-in/sleepy/c",
            ResourceType::ContentInstance,
            json!({"m2m:cin":{"con":"while you slept"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    spy.expect(|p| String::from_utf8_lossy(&p.payload).contains("while you slept"))
        .await;

    let mut back = Device::connect_with(hub.mqtt, "A::Csleepy", false).await;
    let p = back
        .expect(|p| p.topic == "/oneM2M/req/id-in/Csleepy/json")
        .await;
    let v: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(
        v["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"],
        "while you slept"
    );
}

#[tokio::test]
async fn an_ae_with_an_http_poa_is_notified_over_http() {
    let hub = Hub::start();
    let http = http_client(&hub, "Cweb").await;
    let (mut notes, poa) = http.notifications(None).await.unwrap();
    let r = http
        .create(
            "cse-in",
            ResourceType::Ae,
            json!({"m2m:ae":{"rn":"web","api":"Nweb","rr":true,"poa":[poa]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    container_c(&http, "cse-in/web").await;
    http.create(
        "cse-in/web/c",
        ResourceType::Subscription,
        sub(json!(["cse-in/web"]), json!({"enc":{"net":[3]}})),
    )
    .await
    .unwrap();
    http.create(
        "cse-in/web/c",
        ResourceType::ContentInstance,
        json!({"m2m:cin":{"con":"over http"}}),
    )
    .await
    .unwrap();
    let sgn = next_sgn(&mut notes).await;
    assert_eq!(sgn["nev"]["rep"]["m2m:cin"]["con"], "over http");
}

#[tokio::test]
async fn targets_in_absolute_form_are_this_cses_entities() {
    let hub = Hub::start();
    let (ae, mut notes) = listening_ae(&hub, "Cabs").await;
    container_c(&ae, "cse-in/Cabs").await;
    // The subscriber names itself by its absolute ID (as OpenMTC does): no verification,
    // and the notifications reach it.
    let s = ae
        .create(
            "cse-in/Cabs/c",
            ResourceType::Subscription,
            sub(
                json!(["//m2mhub.example/id-in/Cabs"]),
                json!({"enc":{"net":[3]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.rsc, Rsc::CREATED, "{s:?}");
    ae.create(
        "cse-in/Cabs/c",
        ResourceType::ContentInstance,
        json!({"m2m:cin":{"con":"x"}}),
    )
    .await
    .unwrap();
    let sgn = next_sgn(&mut notes).await;
    assert_eq!(sgn["nev"]["rep"]["m2m:cin"]["con"], "x");
    // sur in the form of the nu: absolute.
    let sur = sgn["sur"].as_str().unwrap();
    assert!(
        sur.starts_with("//m2mhub.example/id-in/cse-in/Cabs/c/"),
        "{sur}"
    );
    // Another service provider's entity is not reached, and the answer says why.
    let s = ae
        .create(
            "cse-in/Cabs/c",
            ResourceType::Subscription,
            sub(json!(["//other.example/id-x/Cfar"]), json!({})),
        )
        .await
        .unwrap();
    assert_eq!(
        s.rsc,
        Rsc::SUBSCRIPTION_VERIFICATION_INITIATION_FAILED,
        "{s:?}"
    );
}

/// TS-0010 §6.4: the CSE sends to an AE in the form the AE uses for itself on its request
/// topics. OpenMTC's applications publish as `in-cse-1:CTestGUI` and subscribe only to
/// `/oneM2M/req/+/in-cse-1:CTestGUI/#`.
#[tokio::test]
async fn an_ae_that_names_itself_sp_relative_on_topics_is_notified_there() {
    let hub = Hub::start();
    let mut dev = Device::connect(hub.mqtt, "colon-form").await;
    dev.subscribe("/oneM2M/resp/id-in:Ccolon/#").await;
    dev.subscribe("/oneM2M/req/+/id-in:Ccolon/#").await;
    let topic = "/oneM2M/req/id-in:Ccolon/id-in/json";
    let poa = format!("mqtt://{}", hub.mqtt);
    let steps = [
        json!({"op":1,"to":"cse-in","fr":"Ccolon","rqi":"1","rvi":"3","ty":2,
               "pc":{"m2m:ae":{"rn":"colon","api":"Ncolon","rr":true,"poa":[poa]}}}),
        json!({"op":1,"to":"cse-in/colon","fr":"Ccolon","rqi":"2","rvi":"3","ty":3,
               "pc":{"m2m:cnt":{"rn":"c"}}}),
        json!({"op":1,"to":"cse-in/colon/c","fr":"Ccolon","rqi":"3","rvi":"3","ty":23,
               "pc":{"m2m:sub":{"rn":"s","nu":["Ccolon"],"enc":{"net":[3]}}}}),
        json!({"op":1,"to":"cse-in/colon/c","fr":"Ccolon","rqi":"4","rvi":"3","ty":4,
               "pc":{"m2m:cin":{"con":"hello"}}}),
    ];
    for body in steps {
        let (_, rsp) = dev.send(topic, body.clone()).await;
        assert!(rsc(&rsp) < 4000, "{body}: {rsp}");
    }
    let n = dev.expect(|p| p.topic.starts_with("/oneM2M/req/")).await;
    assert_eq!(n.topic, "/oneM2M/req/id-in/id-in:Ccolon/json");
    let v: Value = serde_json::from_slice(&n.payload).unwrap();
    assert_eq!(v["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"], "hello");
}
