//! Result content (`rcn`) of RETRIEVE and discovery, over both bindings, as OpenMTC's
//! clients and other CSEs' users ask for it: 1, 4 (the subtree nested), 5 (attributes and
//! child references), 6 (references only), 8 (the subtree without the resource itself), and
//! discovery without `rcn`, with 11, 6, and the 5 OpenMTC's framework sends.

mod common;
use common::*;
use m2mhub::client::{Client, Options};
use m2mhub::onem2m::{Operation, ResourceType, ResponsePrimitive, Rsc};
use serde_json::{json, Value};

/// `cse-in/Ctree` with `box` (two instances, a subscription, and `inner` with one instance).
async fn tree(hub: &Hub) -> Client {
    let c = registered_ae(hub, "Ctree").await;
    let made = |r: ResponsePrimitive| assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    let cnt = |rn: &str| json!({"m2m:cnt": {"rn": rn}});
    let cin = |con: &str| json!({"m2m:cin": {"con": con}});
    made(
        c.create("cse-in/Ctree", ResourceType::Container, cnt("box"))
            .await
            .unwrap(),
    );
    for con in ["a", "b"] {
        let r = c.create("cse-in/Ctree/box", ResourceType::ContentInstance, cin(con));
        made(r.await.unwrap());
    }
    let sub = json!({"m2m:sub": {"rn": "watch", "nu": ["Ctree"]}});
    made(
        c.create("cse-in/Ctree/box", ResourceType::Subscription, sub)
            .await
            .unwrap(),
    );
    made(
        c.create("cse-in/Ctree/box", ResourceType::Container, cnt("inner"))
            .await
            .unwrap(),
    );
    let r = c.create(
        "cse-in/Ctree/box/inner",
        ResourceType::ContentInstance,
        cin("c"),
    );
    made(r.await.unwrap());
    c
}

async fn retrieve(c: &Client, to: &str, rcn: Option<u64>, drt: Option<u64>) -> ResponsePrimitive {
    let mut req = c.request(Operation::Retrieve, to);
    req.rcn = rcn;
    req.drt = drt;
    c.send(req).await.unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v["rn"].as_str().or(v["nm"].as_str()).unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_result_content_of_retrieve_over_mqtt_and_http() {
    let hub = Hub::start();
    let mqtt = tree(&hub).await;
    let http = Client::connect(
        &format!("http://{}", hub.http.unwrap()),
        "Ctree",
        Options::default(),
    )
    .await
    .unwrap();
    for c in [&mqtt, &http] {
        // 1, the default: the attributes alone.
        for rcn in [None, Some(1)] {
            let r = retrieve(c, "cse-in/Ctree/box", rcn, None).await;
            assert_eq!(r.rsc, Rsc::OK, "{r:?}");
            let cnt = &r.pc.unwrap()["m2m:cnt"];
            assert_eq!(cnt["rn"], "box");
            assert!(
                cnt.get("ch").is_none() && cnt.get("m2m:cin").is_none(),
                "{cnt}"
            );
        }

        // 4: the whole subtree, nested by type, parents before children.
        let r = retrieve(c, "cse-in/Ctree/box", Some(4), None).await;
        assert_eq!(r.rsc, Rsc::OK, "{r:?}");
        let cnt = &r.pc.unwrap()["m2m:cnt"];
        assert_eq!(cnt["rn"], "box");
        assert_eq!(cnt["m2m:cin"].as_array().unwrap().len(), 2, "{cnt}");
        assert_eq!(names(&cnt["m2m:sub"]), ["watch"]);
        assert_eq!(names(&cnt["m2m:cnt"]), ["inner"]);
        let inner = &cnt["m2m:cnt"][0];
        assert_eq!(inner["m2m:cin"][0]["con"], "c", "{inner}");
        let cons: Vec<&str> = cnt["m2m:cin"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["con"].as_str().unwrap())
            .collect();
        assert_eq!(cons, ["a", "b"]);

        // 5: the attributes and references to the children (as OpenMTC's mapper asks for on
        // every retrieve), addresses structured by default, resource IDs with drt 2.
        let r = retrieve(c, "cse-in/Ctree/box", Some(5), None).await;
        assert_eq!(r.rsc, Rsc::OK, "{r:?}");
        let cnt = r.pc.unwrap()["m2m:cnt"].clone();
        assert_eq!(cnt["rn"], "box");
        let ch = cnt["ch"].as_array().unwrap();
        assert_eq!(ch.len(), 4, "direct children only: {cnt}");
        let watch = ch.iter().find(|r| r["nm"] == "watch").unwrap();
        assert_eq!(watch["typ"], 23);
        assert_eq!(watch["val"], "cse-in/Ctree/box/watch");
        let inner_ref = ch.iter().find(|r| r["nm"] == "inner").unwrap();
        assert_eq!(inner_ref["typ"], 3);
        // A reference can be retrieved as it is.
        let val = inner_ref["val"].as_str().unwrap();
        assert_eq!(retrieve(c, val, None, None).await.rsc, Rsc::OK);
        let r = retrieve(c, "cse-in/Ctree/box", Some(5), Some(2)).await;
        let cnt = r.pc.unwrap()["m2m:cnt"].clone();
        let inner_ri = cnt["ch"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["nm"] == "inner")
            .unwrap()["val"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(inner_ri.starts_with("cnt"), "{inner_ri}");
        assert_eq!(retrieve(c, &inner_ri, None, None).await.rsc, Rsc::OK);
        // The AE itself, as an OpenMTC application retrieves it after registering.
        let r = retrieve(c, "cse-in/Ctree", Some(5), None).await;
        assert_eq!(r.rsc, Rsc::OK, "{r:?}");
        assert_eq!(names(&r.pc.unwrap()["m2m:ae"]["ch"]), ["box"]);

        // 6: the references alone.
        let r = retrieve(c, "cse-in/Ctree/box", Some(6), None).await;
        assert_eq!(r.rsc, Rsc::OK, "{r:?}");
        let rrf = r.pc.unwrap()["m2m:rrl"]["rrf"].clone();
        assert_eq!(rrf.as_array().unwrap().len(), 4, "{rrf}");

        // 8: the subtree without the resource's own attributes.
        let r = retrieve(c, "cse-in/Ctree/box", Some(8), None).await;
        assert_eq!(r.rsc, Rsc::OK, "{r:?}");
        let cnt = r.pc.unwrap()["m2m:cnt"].clone();
        assert!(cnt.get("rn").is_none() && cnt.get("ri").is_none(), "{cnt}");
        assert_eq!(cnt["m2m:cnt"][0]["m2m:cin"][0]["con"], "c");

        // Others: 4000, saying which are accepted.
        for rcn in [0, 2, 3, 7, 9, 11] {
            let r = retrieve(c, "cse-in/Ctree/box", Some(rcn), None).await;
            assert_eq!(r.rsc, Rsc::BAD_REQUEST, "rcn {rcn}: {r:?}");
        }
        let r = retrieve(c, "cse-in/Ctree/box", Some(5), Some(3)).await;
        assert_eq!(r.rsc, Rsc::BAD_REQUEST, "drt 3: {r:?}");
    }
}

#[tokio::test]
async fn the_subtree_holds_only_what_the_originator_may_retrieve() {
    let hub = Hub::start();
    let owner = tree(&hub).await;
    let reader = registered_ae(&hub, "Creader").await;
    let policy = |acor: Value| {
        json!({"m2m:acp": {"pv": {"acr": [
            {"acor": ["Ctree"], "acop": 63},
            {"acor": acor, "acop": 2}
        ]}, "pvs": {"acr": [{"acor": ["Ctree"], "acop": 63}]}}})
    };
    let make = |rn: &str, acor: Value| {
        let mut p = policy(acor);
        p["m2m:acp"]["rn"] = json!(rn);
        owner.create("cse-in/Ctree", ResourceType::AccessControlPolicy, p)
    };
    let open = make("open", json!(["Creader"])).await.unwrap();
    let closed = make("closed", json!([])).await.unwrap();
    let ri = |r: ResponsePrimitive| r.pc.unwrap()["m2m:acp"]["ri"].clone();
    let (open, closed) = (ri(open), ri(closed));
    let r = owner
        .update("cse-in/Ctree/box", json!({"m2m:cnt": {"acpi": [open]}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    let r = owner
        .update(
            "cse-in/Ctree/box/inner",
            json!({"m2m:cnt": {"acpi": [closed]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    // A container the reader may read, under the one it may not: not listed either.
    let deep = json!({"m2m:cnt": {"rn": "deep", "acpi": [open.clone()]}});
    let r = owner
        .create("cse-in/Ctree/box/inner", ResourceType::Container, deep)
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    assert_eq!(
        retrieve(&reader, "cse-in/Ctree/box/inner/deep", None, None)
            .await
            .rsc,
        Rsc::OK
    );
    let r = retrieve(&reader, "cse-in/Ctree/box", Some(4), None).await;
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    let cnt = r.pc.unwrap()["m2m:cnt"].clone();
    assert_eq!(cnt["m2m:cin"].as_array().unwrap().len(), 2, "{cnt}");
    // The inner container is shut to the reader, and so is what it holds.
    assert!(cnt.get("m2m:cnt").is_none(), "{cnt}");
    assert!(!cnt.to_string().contains("\"c\""), "{cnt}");
    let r = retrieve(&reader, "cse-in/Ctree/box", Some(5), None).await;
    let ch = r.pc.unwrap()["m2m:cnt"]["ch"].clone();
    assert!(!names(&ch).contains(&"inner".to_string()), "{ch}");
}

#[tokio::test]
async fn discovery_answers_addresses_or_references() {
    let hub = Hub::start();
    let c = tree(&hub).await;
    let discover = |rcn: Option<u64>, drt: Option<u64>| {
        let mut req = c.request(Operation::Retrieve, "cse-in/Ctree");
        req.rcn = rcn;
        req.drt = drt;
        req.fc = Some(json!({"fu": 1, "ty": [3]}).as_object().unwrap().clone());
        c.send(req)
    };
    // No rcn, 11 (ACME's), and 5 (what OpenMTC's framework sends): the addresses.
    for rcn in [None, Some(11), Some(5)] {
        let r = discover(rcn, None).await.unwrap();
        assert_eq!(r.rsc, Rsc::OK, "rcn {rcn:?}: {r:?}");
        assert_eq!(
            r.pc.unwrap()["m2m:uril"],
            json!(["cse-in/Ctree/box", "cse-in/Ctree/box/inner"]),
            "rcn {rcn:?}"
        );
    }
    // 6: references, with addresses in the form drt asks for.
    let r = discover(Some(6), None).await.unwrap();
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    let rrf = r.pc.unwrap()["m2m:rrl"]["rrf"].clone();
    assert_eq!(
        rrf[0],
        json!({"nm": "box", "typ": 3, "val": "cse-in/Ctree/box"})
    );
    assert_eq!(rrf.as_array().unwrap().len(), 2);
    let r = discover(Some(6), Some(2)).await.unwrap();
    let rrf = r.pc.unwrap()["m2m:rrl"]["rrf"].clone();
    assert!(rrf[1]["val"].as_str().unwrap().starts_with("cnt"), "{rrf}");
    // What discovery does not define: 4000.
    for rcn in [1, 4, 8] {
        let r = discover(Some(rcn), None).await.unwrap();
        assert_eq!(r.rsc, Rsc::BAD_REQUEST, "rcn {rcn}: {r:?}");
    }
}

#[tokio::test]
async fn nesting_stops_at_32_levels_and_says_the_answer_is_partial() {
    let hub = Hub::start();
    let c = registered_ae(&hub, "Cdeep").await;
    let mut at = "cse-in/Cdeep".to_string();
    for i in 0..34 {
        let r = c
            .create(
                &at,
                ResourceType::Container,
                json!({"m2m:cnt": {"rn": format!("l{i}")}}),
            )
            .await
            .unwrap();
        assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
        at = format!("{at}/l{i}");
    }
    let r = retrieve(&c, "cse-in/Cdeep", Some(4), None).await;
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    assert_eq!(r.partial, Some(32), "{r:?}");
    // 32 levels of containers below the AE, and no more.
    let mut node = r.pc.unwrap()["m2m:ae"].clone();
    let mut levels = 0;
    while let Some(next) = node.get("m2m:cnt").and_then(|l| l.get(0)).cloned() {
        levels += 1;
        node = next;
    }
    assert_eq!(levels, 32);
}
