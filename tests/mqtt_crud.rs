//! The whole resource life cycle over MQTT, as a device does it.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn register_create_read_update_delete() {
    // anonymous = "everyone" (a trusted network): from this machine, the same as the default.
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let mut dev = Device::connect(hub.mqtt, "Csensor1").await;
    dev.listen_responses("Csensor1").await;

    // Registration on reg_req: the answer comes on reg_resp with the same two IDs.
    let rqi = dev.rqi();
    let (topic, ae) = dev
        .send(
            "/oneM2M/reg_req/Csensor1/id-in/json",
            json!({"op":1,"to":"cse-in","fr":"Csensor1","rqi":rqi,"rvi":"3","ty":2,
                   "pc":{"m2m:ae":{"rn":"sensor","api":"Nsensor","rr":true,"poa":["mqtt://127.0.0.1"],"srv":["3"],"lbl":["room:1"]}}}),
        )
        .await;
    assert_eq!(topic, "/oneM2M/reg_resp/Csensor1/id-in/json");
    assert_eq!(rsc(&ae), 2001, "{ae}");
    assert_eq!(ae["rqi"], rqi.as_str());
    assert_eq!(ae["rvi"], "3");
    let a = &ae["pc"]["m2m:ae"];
    assert_eq!(a["aei"], "Csensor1");
    assert_eq!(a["ri"], "Csensor1");
    assert_eq!(a["rn"], "sensor");
    assert_eq!(a["pi"], "id-in");
    assert_eq!(a["ty"], 2);
    assert_eq!(a["lbl"], json!(["room:1"]));
    assert!(a["ct"].as_str().is_some() && a["lt"] == a["ct"]);

    // A container with limits, then four instances: the oldest is evicted at mni=3.
    let cnt = dev
        .request(
            "Csensor1",
            create("cse-in/sensor", 3, json!({"m2m:cnt":{"rn":"temp","mni":3}})),
        )
        .await;
    assert_eq!(rsc(&cnt), 2001, "{cnt}");
    let cnt_ri = cnt["pc"]["m2m:cnt"]["ri"].as_str().unwrap().to_string();
    assert_eq!(cnt["pc"]["m2m:cnt"]["pi"], "Csensor1");
    assert_eq!(cnt["pc"]["m2m:cnt"]["cni"], 0);

    let mut cins = Vec::new();
    for i in 0..4 {
        let r = dev
            .request(
                "Csensor1",
                create(
                    "cse-in/sensor/temp",
                    4,
                    json!({"m2m:cin":{"con":format!("2{i}.5"),"cnf":"text/plain:0"}}),
                ),
            )
            .await;
        assert_eq!(rsc(&r), 2001, "{r}");
        let cin = &r["pc"]["m2m:cin"];
        assert_eq!(cin["cs"], 4);
        assert_eq!(cin["st"], i + 1);
        assert_eq!(cin["pi"], cnt_ri.as_str());
        cins.push(cin["ri"].as_str().unwrap().to_string());
    }

    let la = dev
        .request("Csensor1", retrieve("cse-in/sensor/temp/la"))
        .await;
    assert_eq!(rsc(&la), 2000);
    assert_eq!(la["pc"]["m2m:cin"]["con"], "23.5");
    let ol = dev
        .request("Csensor1", retrieve("cse-in/sensor/temp/ol"))
        .await;
    assert_eq!(
        ol["pc"]["m2m:cin"]["con"], "21.5",
        "the first instance was evicted"
    );
    let gone = dev.request("Csensor1", retrieve(&cins[0])).await;
    assert_eq!(rsc(&gone), 4004);

    let c = dev
        .request("Csensor1", retrieve("cse-in/sensor/temp"))
        .await;
    let c = &c["pc"]["m2m:cnt"];
    assert_eq!(
        (c["cni"].as_u64(), c["cbs"].as_u64(), c["st"].as_u64()),
        (Some(3), Some(12), Some(4))
    );

    // rcn=4 lists the children.
    let mut with_children = retrieve("cse-in/sensor/temp");
    with_children["rcn"] = json!(4);
    let r = dev.request("Csensor1", with_children).await;
    assert_eq!(
        r["pc"]["m2m:cnt"]["m2m:cin"].as_array().map(Vec::len),
        Some(3)
    );

    // Lowering mni evicts at once; the state tag moves.
    let u = dev
        .request(
            "Csensor1",
            update(
                "cse-in/sensor/temp",
                json!({"m2m:cnt":{"mni":1,"lbl":["x"]}}),
            ),
        )
        .await;
    assert_eq!(rsc(&u), 2004, "{u}");
    assert_eq!(u["pc"]["m2m:cnt"]["cni"], 1);
    assert_eq!(u["pc"]["m2m:cnt"]["cbs"], 4);
    assert_eq!(u["pc"]["m2m:cnt"]["mni"], 1);
    assert_eq!(u["pc"]["m2m:cnt"]["st"], 5);
    assert_ne!(u["pc"]["m2m:cnt"]["lt"], u["pc"]["m2m:cnt"]["ct"]);

    // Removing an attribute with null.
    let u = dev
        .request(
            "Csensor1",
            update("cse-in/sensor/temp", json!({"m2m:cnt":{"lbl":null}})),
        )
        .await;
    assert!(u["pc"]["m2m:cnt"].get("lbl").is_none(), "{u}");

    // AE update.
    let u = dev
        .request(
            "Csensor1",
            update(
                "cse-in/sensor",
                json!({"m2m:ae":{"poa":["mqtt://10.0.0.1:1883"]}}),
            ),
        )
        .await;
    assert_eq!(rsc(&u), 2004);
    assert_eq!(u["pc"]["m2m:ae"]["poa"], json!(["mqtt://10.0.0.1:1883"]));

    // Deleting la removes the latest instance and the counters follow.
    let d = dev
        .request("Csensor1", delete("cse-in/sensor/temp/la"))
        .await;
    assert_eq!(rsc(&d), 2002, "{d}");
    let empty = dev
        .request("Csensor1", retrieve("cse-in/sensor/temp/la"))
        .await;
    assert_eq!(rsc(&empty), 4004, "la of an empty container");
    let c = dev
        .request("Csensor1", retrieve("cse-in/sensor/temp"))
        .await;
    assert_eq!(c["pc"]["m2m:cnt"]["cni"], 0);
    assert_eq!(c["pc"]["m2m:cnt"]["cbs"], 0);

    // Deleting the AE deregisters it and takes the subtree.
    let mut d = delete("cse-in/sensor");
    d["rcn"] = json!(1);
    let d = dev.request("Csensor1", d).await;
    assert_eq!(rsc(&d), 2002);
    assert_eq!(d["pc"]["m2m:ae"]["ri"], "Csensor1");
    let r = dev.request("Csensor1", retrieve(&cnt_ri)).await;
    assert_eq!(rsc(&r), 4004);
    // ...and the AE-ID can register again.
    assert_eq!(rsc(&register(&mut dev, "Csensor1", "sensor").await), 2001);
}

#[tokio::test]
async fn ae_ids_follow_the_ts0001_rules() {
    let hub = Hub::start();
    let mut dev = Device::connect(hub.mqtt, "cred-1").await;
    dev.listen_responses("cred-1").await;

    for (fr, prefix) in [("", "C"), ("C", "C"), ("S", "S")] {
        let r = register(&mut dev, fr, &format!("ae-{prefix}-{}", fr.len())).await;
        assert_eq!(rsc(&r), 2001, "{r}");
        let aei = r["pc"]["m2m:ae"]["aei"].as_str().unwrap();
        assert!(aei.starts_with(prefix) && aei.len() > 1, "{fr:?} got {aei}");
        assert_eq!(r["pc"]["m2m:ae"]["ri"], aei);
    }
    let r = register(&mut dev, "Cchosen", "chosen").await;
    assert_eq!(r["pc"]["m2m:ae"]["aei"], "Cchosen");
    // SP-relative form of this CSE is brought to the CSE-relative AE-ID.
    let r = register(&mut dev, "/id-in/Cfull", "full").await;
    assert_eq!(r["pc"]["m2m:ae"]["aei"], "Cfull");

    let r = register(&mut dev, "Cchosen", "again").await;
    assert_eq!(rsc(&r), 4117, "{r}");
    assert!(dbg(&r).contains("already registered"), "{r}");
    let r = register(&mut dev, "Cnew", "chosen").await;
    assert_eq!(rsc(&r), 4105, "{r}");
    assert!(dbg(&r).contains("'chosen' already exists"), "{r}");
    let r = register(&mut dev, "xyz", "bad").await;
    assert_eq!(rsc(&r), 4000, "{r}");

    // No rn: the AE is named after its ID.
    let rqi = dev.rqi();
    let (_, r) = dev
        .send(
            "/oneM2M/reg_req/cred-1/id-in/json",
            json!({"op":1,"to":"-","fr":"Cnoname","rqi":rqi,"rvi":"3","ty":2,"pc":{"m2m:ae":{"api":"Rorg.example.app","rr":false}}}),
        )
        .await;
    assert_eq!(r["pc"]["m2m:ae"]["rn"], "Cnoname", "{r}");

    // Only registrations may use reg_req.
    let rqi = dev.rqi();
    let (_, r) = dev
        .send(
            "/oneM2M/reg_req/cred-1/id-in/json",
            json!({"op":2,"to":"cse-in","fr":"Cchosen","rqi":rqi,"rvi":"3"}),
        )
        .await;
    assert_eq!(rsc(&r), 4000, "{r}");
}

#[tokio::test]
async fn every_addressing_form_reaches_the_same_resource() {
    let hub = Hub::start();
    let mut dev = Device::connect(hub.mqtt, "Caddr").await;
    dev.listen_responses("Caddr").await;
    assert_eq!(rsc(&register(&mut dev, "Caddr", "app").await), 2001);
    let c = dev
        .request(
            "Caddr",
            create("cse-in/app", 3, json!({"m2m:cnt":{"rn":"box"}})),
        )
        .await;
    let ri = c["pc"]["m2m:cnt"]["ri"].as_str().unwrap().to_string();

    for to in [
        "cse-in/app/box".to_string(),
        "-/app/box".into(),
        ri.clone(),
        format!("/id-in/{ri}"),
        "/id-in/cse-in/app/box".into(),
        "/id-in/-/app/box".into(),
        "//m2mhub.example/id-in/cse-in/app/box".into(),
    ] {
        let r = dev.request("Caddr", retrieve(&to)).await;
        assert_eq!(rsc(&r), 2000, "{to}: {r}");
        assert_eq!(r["pc"]["m2m:cnt"]["ri"], ri.as_str(), "{to}");
    }
    // The CSEBase by every name, readable by any registered or unregistered originator.
    for to in ["cse-in", "-", "/id-in", "id-in"] {
        let r = dev.request("Caddr", retrieve(to)).await;
        assert_eq!(rsc(&r), 2000, "{to}: {r}");
        let cb = &r["pc"]["m2m:cb"];
        assert_eq!(cb["csi"], "/id-in");
        assert_eq!(cb["ri"], "id-in");
        assert_eq!(cb["cst"], 1);
        assert_eq!(cb["ty"], 5);
    }
    // Originator in SP-relative form on a topic in topic form.
    dev.subscribe("/oneM2M/resp/id-in:Caddr/+/#").await;
    let rqi = dev.rqi();
    let (topic, r) = dev
        .send(
            "/oneM2M/req/id-in:Caddr/id-in/json",
            json!({"op":2,"to":"cse-in/app/box","fr":"/id-in/Caddr","rqi":rqi,"rvi":"3"}),
        )
        .await;
    assert_eq!(topic, "/oneM2M/resp/id-in:Caddr/id-in/json");
    assert_eq!(rsc(&r), 2000, "{r}");

    // Another CSE: not reachable (no forwarding yet).
    let r = dev.request("Caddr", retrieve("/id-mn/cse-mn")).await;
    assert_eq!(rsc(&r), 5103, "{r}");
}

#[tokio::test]
async fn container_limits_and_expiry() {
    let hub = Hub::start();
    let mut dev = Device::connect(hub.mqtt, "Clim").await;
    dev.listen_responses("Clim").await;
    register(&mut dev, "Clim", "app").await;

    // mbs: too large an instance is refused; the byte budget evicts the oldest.
    dev.request(
        "Clim",
        create("cse-in/app", 3, json!({"m2m:cnt":{"rn":"small","mbs":10}})),
    )
    .await;
    let r = dev
        .request(
            "Clim",
            create(
                "cse-in/app/small",
                4,
                json!({"m2m:cin":{"con":"01234567890"}}),
            ),
        )
        .await;
    assert_eq!(rsc(&r), 5207, "{r}");
    for con in ["aaaa", "bbbb", "cccc"] {
        let r = dev
            .request(
                "Clim",
                create("cse-in/app/small", 4, json!({"m2m:cin":{"con":con}})),
            )
            .await;
        assert_eq!(rsc(&r), 2001);
    }
    let c = dev.request("Clim", retrieve("cse-in/app/small")).await;
    assert_eq!(c["pc"]["m2m:cnt"]["cbs"], 8);
    assert_eq!(c["pc"]["m2m:cnt"]["cni"], 2);
    let ol = dev.request("Clim", retrieve("cse-in/app/small/ol")).await;
    assert_eq!(ol["pc"]["m2m:cin"]["con"], "bbbb");

    // JSON content counts its serialized size.
    dev.request(
        "Clim",
        create("cse-in/app", 3, json!({"m2m:cnt":{"rn":"json"}})),
    )
    .await;
    let r = dev
        .request(
            "Clim",
            create("cse-in/app/json", 4, json!({"m2m:cin":{"con":{"t":21}}})),
        )
        .await;
    assert_eq!(r["pc"]["m2m:cin"]["cs"], 8);

    // et: a container that expires in ~1 s disappears with its instances.
    let et = (chrono::Utc::now() + chrono::Duration::milliseconds(1200))
        .format("%Y%m%dT%H%M%S,%6f")
        .to_string();
    let r = dev
        .request(
            "Clim",
            create("cse-in/app", 3, json!({"m2m:cnt":{"rn":"brief","et":et}})),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");
    dev.request(
        "Clim",
        create("cse-in/app/brief", 4, json!({"m2m:cin":{"con":"x"}})),
    )
    .await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = dev.request("Clim", retrieve("cse-in/app/brief")).await;
        if rsc(&r) == 4004 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "container did not expire: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // An expiration time in the past is refused.
    let r = dev
        .request(
            "Clim",
            create(
                "cse-in/app",
                3,
                json!({"m2m:cnt":{"rn":"old","et":"20000101T000000"}}),
            ),
        )
        .await;
    assert_eq!(rsc(&r), 4000, "{r}");
}
