//! `<accessControlPolicy>` as AEs use it to share their data: each operation bit, `all`,
//! `pvs`, inheritance down the tree, discovery filtering, subscriptions needing CREATE and
//! RETRIEVE, object details (`acod`) and contexts (`acco`), over the real MQTT and HTTP
//! bindings of a running appliance.

mod common;
use common::*;
use m2mhub::client::{Client, Options};
use m2mhub::onem2m::{ResourceType, ResponsePrimitive, Rsc};
use serde_json::{json, Map, Value};

fn dbg_of(r: &ResponsePrimitive) -> String {
    r.pc.as_ref()
        .and_then(|pc| pc["m2m:dbg"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Creates an ACP `rn` under `parent` with the rules `pv` (`acr` list) and `pvs`; returns its
/// resource ID.
async fn acp(c: &Client, parent: &str, rn: &str, pv: Value, pvs: Value) -> String {
    let r = c
        .create(
            parent,
            ResourceType::AccessControlPolicy,
            json!({"m2m:acp":{"rn":rn,"pv":{"acr":pv},"pvs":{"acr":pvs}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    r.pc.unwrap()["m2m:acp"]["ri"].as_str().unwrap().to_string()
}

async fn container(c: &Client, parent: &str, rn: &str, acpi: &[&str]) {
    let mut cnt = json!({"rn": rn});
    if !acpi.is_empty() {
        cnt["acpi"] = json!(acpi);
    }
    let r = c
        .create(parent, ResourceType::Container, json!({"m2m:cnt": cnt}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
}

async fn cin(c: &Client, parent: &str, con: &str) -> Rsc {
    c.create(
        parent,
        ResourceType::ContentInstance,
        json!({"m2m:cin":{"con":con}}),
    )
    .await
    .unwrap()
    .rsc
}

fn fc(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// The addresses a discovery found.
async fn found(c: &Client, under: &str, criteria: Value) -> Vec<String> {
    let r = c.discover(under, fc(criteria)).await.unwrap();
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    r.pc.unwrap()["m2m:uril"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

const OWNER_ALL: fn(&str) -> Value = |owner| json!({"acor": [owner], "acop": 63});

/// A policy of Csensor's under its AE that keeps every right for Csensor (on the resources
/// that name it, and on itself) and adds `others`, a list of rules; returns its resource ID.
async fn sensor_policy(sensor: &Client, rn: &str, others: Value) -> String {
    let mut pv = vec![OWNER_ALL("Csensor")];
    pv.extend(others.as_array().unwrap().iter().cloned());
    acp(
        sensor,
        "cse-in/Csensor",
        rn,
        json!(pv),
        json!([OWNER_ALL("Csensor")]),
    )
    .await
}

#[tokio::test]
async fn each_operation_bit_grants_its_operation_and_nothing_else() {
    let hub = Hub::start();
    let sensor = registered_ae(&hub, "Csensor").await;
    let gui = registered_ae(&hub, "Cgui").await;
    // One container per bit, each governed by an ACP that grants the GUI that bit only.
    for bit in [1, 2, 4, 8, 32] {
        let ri = sensor_policy(
            &sensor,
            &format!("acp{bit}"),
            json!([{"acor": ["Cgui"], "acop": bit}]),
        )
        .await;
        let cnt = format!("c{bit}");
        container(&sensor, "cse-in/Csensor", &cnt, &[&ri]).await;
        assert_eq!(
            cin(&sensor, &format!("cse-in/Csensor/{cnt}"), "x").await,
            Rsc::CREATED
        );
    }
    for bit in [1u64, 2, 4, 8, 32] {
        let cnt = format!("cse-in/Csensor/c{bit}");
        let expect = |granted: bool, ok: Rsc| {
            if granted {
                ok
            } else {
                Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
            }
        };
        assert_eq!(
            cin(&gui, &cnt, "from gui").await,
            expect(bit == 1, Rsc::CREATED),
            "create, bit {bit}"
        );
        let r = gui.retrieve(&cnt).await.unwrap();
        assert_eq!(r.rsc, expect(bit == 2, Rsc::OK), "retrieve, bit {bit}");
        if bit != 2 {
            assert!(
                dbg_of(&r).contains("Cgui has no privilege to retrieve"),
                "{}",
                dbg_of(&r)
            );
        }
        // Content instances follow their container.
        let r = gui.retrieve(&format!("{cnt}/la")).await.unwrap();
        assert_eq!(r.rsc, expect(bit == 2, Rsc::OK), "retrieve la, bit {bit}");
        let r = gui
            .update(&cnt, json!({"m2m:cnt":{"lbl":["seen"]}}))
            .await
            .unwrap();
        assert_eq!(r.rsc, expect(bit == 4, Rsc::UPDATED), "update, bit {bit}");
        let listed = found(&gui, "cse-in/Csensor", json!({"ty": [3]})).await;
        assert_eq!(
            listed.contains(&cnt),
            bit == 32,
            "discover, bit {bit}: {listed:?}"
        );
        let r = gui.delete(&cnt).await.unwrap();
        assert_eq!(r.rsc, expect(bit == 8, Rsc::DELETED), "delete, bit {bit}");
    }
    // What was granted happened, and only that.
    let r = sensor.retrieve("cse-in/Csensor/c4").await.unwrap();
    assert_eq!(r.pc.unwrap()["m2m:cnt"]["lbl"], json!(["seen"]));
    assert_eq!(
        sensor.retrieve("cse-in/Csensor/c8").await.unwrap().rsc,
        Rsc::NOT_FOUND
    );
    let r = sensor.retrieve("cse-in/Csensor/c1").await.unwrap();
    assert_eq!(r.pc.unwrap()["m2m:cnt"]["cni"], 2);

    // Notify (16): the sensor's AE lets the GUI notify it, and not another AE.
    let (receiver, mut notes) = listening_ae(&hub, "Creceiver").await;
    let ri = acp(
        &receiver,
        "cse-in/Creceiver",
        "notifiers",
        json!([OWNER_ALL("Creceiver"), {"acor": ["Cgui"], "acop": 16}]),
        json!([OWNER_ALL("Creceiver")]),
    )
    .await;
    let r = receiver
        .update("cse-in/Creceiver", json!({"m2m:ae":{"acpi":[ri]}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    let answering = tokio::spawn(async move { next_sgn(&mut notes).await });
    let r = gui
        .notify("cse-in/Creceiver", json!({"m2m:sgn":{"nev":{"net":1}}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    assert_eq!(answering.await.unwrap()["nev"]["net"], 1);
    let r = sensor
        .notify("cse-in/Creceiver", json!({"m2m:sgn":{"nev":{"net":1}}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");
}

#[tokio::test]
async fn all_and_every_id_form_match_and_the_creator_gets_only_what_rules_grant() {
    let hub = Hub::start();
    let sensor = registered_ae(&hub, "Csensor").await;
    let gui = registered_ae(&hub, "Cgui").await;
    let other = registered_ae(&hub, "Cother").await;
    let open = acp(
        &sensor,
        "cse-in/Csensor",
        "open",
        json!([OWNER_ALL("//m2mhub.example/id-in/Csensor"), {"acor": ["all"], "acop": 2}]),
        json!([OWNER_ALL("/id-in/Csensor")]),
    )
    .await;
    container(&sensor, "cse-in/Csensor", "public", &[&open]).await;
    for c in [&gui, &other] {
        assert_eq!(
            c.retrieve("cse-in/Csensor/public").await.unwrap().rsc,
            Rsc::OK
        );
        assert_eq!(
            cin(c, "cse-in/Csensor/public", "x").await,
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
        );
    }
    // The owner's rights came from the rule in absolute form, and the admin's are its own.
    assert_eq!(
        cin(&sensor, "cse-in/Csensor/public", "x").await,
        Rsc::CREATED
    );
    let admin = Client::connect(
        &format!("mqtt://{}#id-in", hub.mqtt),
        "CAdmin",
        Options::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        admin.delete("cse-in/Csensor/public/la").await.unwrap().rsc,
        Rsc::DELETED
    );

    // With acpi set, the creator has only what the rules give it.
    let read_only = acp(
        &sensor,
        "cse-in/Csensor",
        "ro",
        json!([{"acor": ["Csensor", "Cgui"], "acop": 2}]),
        json!([OWNER_ALL("Csensor")]),
    )
    .await;
    container(&sensor, "cse-in/Csensor", "frozen", &[&read_only]).await;
    assert_eq!(
        sensor.retrieve("cse-in/Csensor/frozen").await.unwrap().rsc,
        Rsc::OK
    );
    assert_eq!(
        cin(&sensor, "cse-in/Csensor/frozen", "x").await,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    // Without acpi anywhere, the default: the owner only.
    container(&sensor, "cse-in/Csensor", "private", &[]).await;
    assert_eq!(
        gui.retrieve("cse-in/Csensor/private").await.unwrap().rsc,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    assert_eq!(
        cin(&sensor, "cse-in/Csensor/private", "x").await,
        Rsc::CREATED
    );
}

#[tokio::test]
async fn self_privileges_govern_the_policy_itself() {
    let hub = Hub::start();
    let sensor = registered_ae(&hub, "Csensor").await;
    let gui = registered_ae(&hub, "Cgui").await;
    let ri = acp(
        &sensor,
        "cse-in/Csensor",
        "p",
        json!([{"acor": ["Cgui"], "acop": 63}]),
        json!([{"acor": ["Csensor"], "acop": 6}]),
    )
    .await;
    let at = "cse-in/Csensor/p";
    // pv grants the GUI everything on the resources that name the policy, nothing on it.
    for r in [
        gui.retrieve(at).await.unwrap(),
        gui.update(at, json!({"m2m:acp":{"pv":{"acr":[]}}}))
            .await
            .unwrap(),
        gui.delete(at).await.unwrap(),
    ] {
        assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");
    }
    // pvs grants its creator retrieve and update, not delete.
    let r = sensor.retrieve(&ri).await.unwrap();
    assert_eq!(r.rsc, Rsc::OK);
    assert_eq!(r.pc.unwrap()["m2m:acp"]["pvs"]["acr"][0]["acop"], 6);
    assert_eq!(
        sensor.delete(at).await.unwrap().rsc,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    // The creator hands delete to the GUI; the change takes effect at once.
    let r = sensor
        .update(
            at,
            json!({"m2m:acp":{"pvs":{"acr":[{"acor":["Csensor"],"acop":6},{"acor":["Cgui"],"acop":8}]}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    assert_eq!(
        gui.retrieve(at).await.unwrap().rsc,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    assert_eq!(gui.delete(at).await.unwrap().rsc, Rsc::DELETED);
}

#[tokio::test]
async fn policies_are_inherited_down_to_the_nearest_acpi_within_an_ae() {
    let hub = Hub::start();
    let sensor = registered_ae(&hub, "Csensor").await;
    let gui = registered_ae(&hub, "Cgui").await;
    let admin = Client::connect(
        &format!("mqtt://{}#id-in", hub.mqtt),
        "CAdmin",
        Options::default(),
    )
    .await
    .unwrap();
    let read = sensor_policy(&sensor, "read", json!([{"acor": ["Cgui"], "acop": 34}])).await;
    let none = sensor_policy(&sensor, "none", json!([])).await;
    // The AE names `read`: its subtree without acpi follows it; `hidden` names its own.
    let r = sensor
        .update("cse-in/Csensor", json!({"m2m:ae":{"acpi":[read]}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    container(&sensor, "cse-in/Csensor", "room", &[]).await;
    container(&sensor, "cse-in/Csensor/room", "temp", &[]).await;
    container(&sensor, "cse-in/Csensor", "hidden", &[&none]).await;
    container(&sensor, "cse-in/Csensor/hidden", "inner", &[]).await;
    for c in ["cse-in/Csensor/room/temp", "cse-in/Csensor/hidden/inner"] {
        assert_eq!(cin(&sensor, c, "21").await, Rsc::CREATED);
    }
    assert_eq!(gui.retrieve("cse-in/Csensor").await.unwrap().rsc, Rsc::OK);
    assert_eq!(
        gui.retrieve("cse-in/Csensor/room/temp/la")
            .await
            .unwrap()
            .rsc,
        Rsc::OK
    );
    for denied in ["cse-in/Csensor/hidden", "cse-in/Csensor/hidden/inner/la"] {
        assert_eq!(
            gui.retrieve(denied).await.unwrap().rsc,
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
            "{denied}"
        );
    }
    // Removing the acpi (an empty list): the container follows its AE's policy again.
    let r = sensor
        .update("cse-in/Csensor/hidden", json!({"m2m:cnt":{"acpi":[]}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    assert!(r.pc.unwrap()["m2m:cnt"].get("acpi").is_none());
    assert_eq!(
        gui.retrieve("cse-in/Csensor/hidden/inner")
            .await
            .unwrap()
            .rsc,
        Rsc::OK
    );

    // The CSEBase's acpi governs the CSEBase and the CSE's own resources, not the AEs'.
    let cb_acp = acp(
        &admin,
        "cse-in",
        "cbAcp",
        json!([{"acor": ["all"], "acop": 2}]),
        json!([OWNER_ALL("CAdmin")]),
    )
    .await;
    let r = admin
        .update("cse-in", json!({"m2m:cb":{"acpi":[cb_acp]}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    let r = admin
        .update("cse-in", json!({"m2m:cb":{"csi":"/other"}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::OPERATION_NOT_ALLOWED, "{r:?}");
    container(&admin, "cse-in", "announcements", &[]).await;
    assert_eq!(
        gui.retrieve("cse-in/announcements").await.unwrap().rsc,
        Rsc::OK
    );
    assert_eq!(
        cin(&gui, "cse-in/announcements", "x").await,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    container(&sensor, "cse-in/Csensor", "mine", &[&none]).await;
    assert_eq!(cin(&sensor, "cse-in/Csensor/mine", "x").await, Rsc::CREATED);
    // Registration is decided by credentials, not by the CSEBase's policy.
    registered_ae(&hub, "Clate").await;

    // A restart loads the policies from the database.
    let mut hub = hub;
    let dir = hub.take_dir();
    hub.stop().await;
    let hub = Hub::start_in(dir.path(), &[]);
    let gui = Client::connect(
        &format!("mqtt://{}#id-in", hub.mqtt),
        "Cgui",
        Options::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        gui.retrieve("cse-in/Csensor/room/temp/la")
            .await
            .unwrap()
            .rsc,
        Rsc::OK
    );
    assert_eq!(
        gui.retrieve("cse-in/Csensor/mine").await.unwrap().rsc,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    assert_eq!(
        gui.retrieve("cse-in/announcements").await.unwrap().rsc,
        Rsc::OK
    );
}

#[tokio::test]
async fn discovery_lists_only_what_the_originator_may_discover() {
    let hub = Hub::start();
    let sensor = registered_ae(&hub, "Csensor").await;
    let gui = registered_ae(&hub, "Cgui").await;
    let discover = sensor_policy(&sensor, "d", json!([{"acor": ["Cgui"], "acop": 32}])).await;
    let retrieve_only = sensor_policy(&sensor, "r", json!([{"acor": ["Cgui"], "acop": 2}])).await;
    container(&sensor, "cse-in/Csensor", "shared", &[&discover]).await;
    container(&sensor, "cse-in/Csensor", "readable", &[&retrieve_only]).await;
    container(&sensor, "cse-in/Csensor", "private", &[]).await;
    for c in ["shared", "readable", "private"] {
        assert_eq!(
            cin(&sensor, &format!("cse-in/Csensor/{c}"), "1").await,
            Rsc::CREATED
        );
    }
    let mine = found(&sensor, "cse-in", json!({"ty": [3]})).await;
    assert_eq!(mine.len(), 3, "{mine:?}");
    assert_eq!(
        found(&gui, "cse-in", json!({"ty": [3]})).await,
        ["cse-in/Csensor/shared"]
    );
    // Instances follow their container.
    let cins = found(&gui, "cse-in", json!({"ty": [4]})).await;
    assert!(
        cins.len() == 1 && cins[0].starts_with("cse-in/Csensor/shared/"),
        "{cins:?}"
    );
    // rcn=4 lists the children the originator may retrieve.
    let mut req = gui.request(
        m2mhub::onem2m::Operation::Retrieve,
        "cse-in/Csensor/readable",
    );
    req.rcn = Some(4);
    let r = gui.send(req).await.unwrap();
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    assert_eq!(
        r.pc.unwrap()["m2m:cnt"]["m2m:cin"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn subscribing_needs_create_of_subscriptions_and_retrieve() {
    let hub = Hub::start();
    let sensor = registered_ae(&hub, "Csensor").await;
    let (gui, mut notes) = listening_ae(&hub, "Cgui").await;
    // Create of subscriptions only (acod), without retrieve; retrieve without create; both.
    let rules = [
        (
            "subOnly",
            json!([{"acor": ["Cgui"], "acop": 1, "acod": [{"chty": [23]}]}]),
        ),
        ("readOnly", json!([{"acor": ["Cgui"], "acop": 34}])),
        (
            "both",
            json!([{"acor": ["Cgui"], "acop": 34}, {"acor": ["Cgui"], "acop": 1, "acod": [{"chty": [23]}]}]),
        ),
    ];
    for (rn, gui_rules) in rules {
        let ri = sensor_policy(&sensor, rn, gui_rules).await;
        container(&sensor, "cse-in/Csensor", &format!("c-{rn}"), &[&ri]).await;
    }
    let gui = &gui;
    let subscribe = |to: String| async move {
        gui.create(
            &to,
            ResourceType::Subscription,
            json!({"m2m:sub":{"rn":"s","nu":["Cgui"],"enc":{"net":[3]}}}),
        )
        .await
    };
    let at = |cnt: &str| format!("cse-in/Csensor/{cnt}");
    let r = subscribe(at("c-subOnly")).await.unwrap();
    assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");
    assert!(dbg_of(&r).contains("retrieve"), "{}", dbg_of(&r));
    let r = subscribe(at("c-readOnly")).await.unwrap();
    assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");
    assert!(dbg_of(&r).contains("create a m2m:sub"), "{}", dbg_of(&r));
    // Nor may it name policies of its choosing on its subscription: that would need update.
    let own = acp(
        gui,
        "cse-in/Cgui",
        "mine",
        json!([OWNER_ALL("Cgui")]),
        json!([OWNER_ALL("Cgui")]),
    )
    .await;
    let r = gui
        .create(
            &at("c-both"),
            ResourceType::Subscription,
            json!({"m2m:sub":{"rn":"s","nu":["Cgui"],"acpi":[own]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");
    assert!(dbg_of(&r).contains("names policies"), "{}", dbg_of(&r));
    assert_eq!(subscribe(at("c-both")).await.unwrap().rsc, Rsc::CREATED);
    // acod: create of subscriptions only, not of content instances.
    assert_eq!(
        cin(gui, "cse-in/Csensor/c-both", "x").await,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    // The GUI gets each new reading.
    for i in 0..3 {
        assert_eq!(
            cin(&sensor, "cse-in/Csensor/c-both", &format!("{i}")).await,
            Rsc::CREATED
        );
    }
    for i in 0..3 {
        let sgn = next_sgn(&mut notes).await;
        assert_eq!(sgn["nev"]["rep"]["m2m:cin"]["con"], i.to_string());
    }

    // Access taken away ends the notifications: the sensor drops the GUI's retrieve.
    let r = sensor
        .update(
            "cse-in/Csensor/both",
            json!({"m2m:acp":{"pv":{"acr":[
                OWNER_ALL("Csensor"),
                {"acor": ["Cgui"], "acop": 1, "acod": [{"chty": [23]}]}
            ]}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    assert_eq!(
        cin(&sensor, "cse-in/Csensor/c-both", "secret").await,
        Rsc::CREATED
    );
    // Not notified after access was taken away.
    nothing_within(&mut notes, std::time::Duration::from_secs(1)).await;
    // The subscriber still sees and cancels its own subscription.
    let s = format!("{}/s", at("c-both"));
    assert_eq!(gui.retrieve(&s).await.unwrap().rsc, Rsc::OK);
    assert_eq!(gui.delete(&s).await.unwrap().rsc, Rsc::DELETED);
}

#[tokio::test]
async fn a_subscription_that_expires_by_count_takes_its_policies_along() {
    let hub = Hub::start();
    let (sensor, mut notes) = listening_ae(&hub, "Csensor").await;
    let other = registered_ae(&hub, "Cother").await;
    let open = acp(
        &sensor,
        "cse-in/Csensor",
        "open",
        json!([{"acor": ["all"], "acop": 63}]),
        json!([OWNER_ALL("Csensor")]),
    )
    .await;
    container(&sensor, "cse-in/Csensor", "c", &[]).await;
    let once =
        json!({"m2m:sub":{"rn":"s","nu":["Csensor"],"exc":1,"enc":{"net":[3]},"acpi":[open]}});
    let r = sensor
        .create("cse-in/Csensor/c", ResourceType::Subscription, once)
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    assert_eq!(
        other.retrieve("cse-in/Csensor/c/s").await.unwrap().rsc,
        Rsc::OK
    );
    assert_eq!(cin(&sensor, "cse-in/Csensor/c", "1").await, Rsc::CREATED);
    next_sgn(&mut notes).await;
    assert_eq!(
        sensor.retrieve("cse-in/Csensor/c/s").await.unwrap().rsc,
        Rsc::NOT_FOUND
    );
    // A new subscription of that name names no policy: it is its owner's only.
    let again = json!({"m2m:sub":{"rn":"s","nu":["Csensor"]}});
    let r = sensor
        .create("cse-in/Csensor/c", ResourceType::Subscription, again)
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    assert_eq!(
        other.retrieve("cse-in/Csensor/c/s").await.unwrap().rsc,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
}

#[tokio::test]
async fn an_ae_keeps_a_bounded_number_of_policies() {
    let hub = Hub::start();
    let sensor = registered_ae(&hub, "Csensor").await;
    for i in 0..32 {
        sensor_policy(&sensor, &format!("p{i}"), json!([])).await;
    }
    let r = sensor
        .create(
            "cse-in/Csensor",
            ResourceType::AccessControlPolicy,
            json!({"m2m:acp":{"pv":{"acr":[]},"pvs":{"acr":[OWNER_ALL("Csensor")]}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::OPERATION_NOT_ALLOWED, "{r:?}");
    assert!(dbg_of(&r).contains("32"), "{}", dbg_of(&r));
    assert_eq!(
        sensor.delete("cse-in/Csensor/p0").await.unwrap().rsc,
        Rsc::DELETED
    );
    acp(
        &sensor,
        "cse-in/Csensor",
        "p32",
        json!([]),
        json!([OWNER_ALL("Csensor")]),
    )
    .await;
}

/// `acco` for one context (an object) or several (a list).
fn contexts(acco: &Value) -> Value {
    if acco.is_array() {
        acco.clone()
    } else {
        json!([acco])
    }
}

#[tokio::test]
async fn context_rules_time_windows_and_address_ranges() {
    let hub = Hub::start();
    let sensor = registered_ae(&hub, "Csensor").await;
    let gui = registered_ae(&hub, "Cgui").await;
    let http_gui = Client::connect(
        &format!("http://{}", hub.http.unwrap()),
        "Cgui",
        Options::default(),
    )
    .await
    .unwrap();
    let cases = [
        ("always", json!({"actw": ["* * * * * *"]}), true),
        ("in1984", json!({"actw": ["* * * * * * 1984"]}), false),
        (
            "loopback4",
            json!({"acip": {"ipv4": ["127.0.0.0/8"]}}),
            true,
        ),
        ("loopback6", json!({"acip": {"ipv6": ["::1"]}}), false),
        // Within one context every part must hold; any one context may.
        (
            "allParts",
            json!({"acip": {"ipv4": ["127.0.0.1"]}, "actw": ["* * * * * *"]}),
            true,
        ),
        (
            "notTheTime",
            json!({"acip": {"ipv4": ["127.0.0.1"]}, "actw": ["* * * * * * 1984"]}),
            false,
        ),
        (
            "notTheAddress",
            json!({"acip": {"ipv6": ["::1"]}, "actw": ["* * * * * *"]}),
            false,
        ),
        // Several contexts (a list): one that holds is enough.
        (
            "eitherContext",
            json!([{"acip": {"ipv6": ["::1"]}}, {"acip": {"ipv4": ["127.0.0.1"]}}]),
            true,
        ),
        (
            "noContext",
            json!([{"acip": {"ipv6": ["::1"]}}, {"actw": ["* * * * * * 1984"]}]),
            false,
        ),
    ];
    for (rn, acco, _) in &cases {
        let ri = sensor_policy(
            &sensor,
            rn,
            json!([{"acor": ["Cgui"], "acop": 2, "acco": contexts(acco)}]),
        )
        .await;
        container(&sensor, "cse-in/Csensor", &format!("c-{rn}"), &[&ri]).await;
    }
    // The hub listens on 127.0.0.1: over MQTT and HTTP alike, the client's address decides.
    for (rn, _, granted) in &cases {
        let to = format!("cse-in/Csensor/c-{rn}");
        let want = if *granted {
            Rsc::OK
        } else {
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
        };
        assert_eq!(gui.retrieve(&to).await.unwrap().rsc, want, "MQTT {rn}");
        assert_eq!(http_gui.retrieve(&to).await.unwrap().rsc, want, "HTTP {rn}");
    }
}

#[tokio::test]
async fn invalid_policies_and_acpi_are_refused_and_setting_acpi_needs_update() {
    let hub = Hub::start();
    let sensor = registered_ae(&hub, "Csensor").await;
    let gui = registered_ae(&hub, "Cgui").await;
    let create = |pv: Value| {
        sensor.create(
            "cse-in/Csensor",
            ResourceType::AccessControlPolicy,
            json!({"m2m:acp":{"pv": pv, "pvs":{"acr":[OWNER_ALL("Csensor")]}}}),
        )
    };
    let create_with_pvs = |pvs: Value| {
        sensor.create(
            "cse-in/Csensor",
            ResourceType::AccessControlPolicy,
            json!({"m2m:acp":{"pv":{"acr":[]}, "pvs": pvs}}),
        )
    };
    for (pv, rsc, says) in [
        (
            json!({"acr":[{"acor":["Cgui"],"acop":0}]}),
            Rsc::BAD_REQUEST,
            "acop",
        ),
        (
            json!({"acr":[{"acor":["Cgui"],"acop":64}]}),
            Rsc::BAD_REQUEST,
            "acop",
        ),
        (json!({"acr":[{"acop":2}]}), Rsc::BAD_REQUEST, "acor"),
        (
            json!({"acr":{"acor":["Cgui"],"acop":2}}),
            Rsc::BAD_REQUEST,
            "acr",
        ),
        (
            json!({"acr":[{"acor":["Cgui"],"acop":2,"acco":[{"actw":["often"]}]}]}),
            Rsc::BAD_REQUEST,
            "actw",
        ),
        (
            json!({"acr":[{"acor":["Cgui"],"acop":2,"acco":[{"aclr":{}}]}]}),
            Rsc::NOT_IMPLEMENTED,
            "aclr",
        ),
    ] {
        let r = create(pv.clone()).await.unwrap();
        assert_eq!(r.rsc, rsc, "{pv}: {r:?}");
        assert!(dbg_of(&r).contains(says), "{pv}: {}", dbg_of(&r));
    }
    let r = sensor
        .create(
            "cse-in/Csensor",
            ResourceType::AccessControlPolicy,
            json!({"m2m:acp":{"pv":{"acr":[]}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::BAD_REQUEST, "pvs is mandatory: {r:?}");
    let r = create_with_pvs(json!({"acr": []})).await.unwrap();
    assert_eq!(r.rsc, Rsc::BAD_REQUEST, "pvs needs a rule: {r:?}");
    assert!(dbg_of(&r).contains("at least one rule"), "{}", dbg_of(&r));
    // acpi names ACPs of this CSE, by resource ID or structured address; kept as IDs.
    let ri = sensor_policy(&sensor, "p", json!([{"acor": ["Cgui"], "acop": 2}])).await;
    container(&sensor, "cse-in/Csensor", "c", &[]).await;
    for bad in ["cse-in/Csensor/c", "nothing", "/id-other/acp1"] {
        let r = sensor
            .update("cse-in/Csensor/c", json!({"m2m:cnt":{"acpi":[bad]}}))
            .await
            .unwrap();
        assert_eq!(r.rsc, Rsc::BAD_REQUEST, "{bad}: {r:?}");
        assert!(dbg_of(&r).contains("acpi"), "{}", dbg_of(&r));
    }
    // Setting acpi is an UPDATE: the GUI, which may read a container, cannot change the
    // policies that govern it; given update, it can.
    let read = sensor_policy(&sensor, "read", json!([{"acor": ["Cgui"], "acop": 2}])).await;
    let write = sensor_policy(&sensor, "write", json!([{"acor": ["Cgui"], "acop": 6}])).await;
    container(&sensor, "cse-in/Csensor", "shared", &[&read]).await;
    assert_eq!(
        gui.retrieve("cse-in/Csensor/shared").await.unwrap().rsc,
        Rsc::OK
    );
    let r = gui
        .update(
            "cse-in/Csensor/shared",
            json!({"m2m:cnt":{"acpi":[ri.clone()]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");
    assert!(
        dbg_of(&r).contains("Cgui has no privilege to update"),
        "{}",
        dbg_of(&r)
    );
    let r = sensor
        .update("cse-in/Csensor/shared", json!({"m2m:cnt":{"acpi":[write]}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    let r = gui
        .update("cse-in/Csensor/shared", json!({"m2m:cnt":{"acpi":[read]}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    let r = sensor
        .update(
            "cse-in/Csensor/c",
            json!({"m2m:cnt":{"acpi":["cse-in/Csensor/p"]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    assert_eq!(r.pc.unwrap()["m2m:cnt"]["acpi"], json!([ri]));
    assert_eq!(gui.retrieve("cse-in/Csensor/c").await.unwrap().rsc, Rsc::OK);
    // Deleting a policy takes it out of every acpi that names it (as ACME does): the
    // container is back to the default rule, its owner's again, not closed to everyone.
    let frozen = acp(
        &sensor,
        "cse-in/Csensor",
        "frozen",
        json!([{"acor": ["Cgui"], "acop": 2}]),
        json!([OWNER_ALL("Csensor")]),
    )
    .await;
    let r = sensor
        .update(
            "cse-in/Csensor/c",
            json!({"m2m:cnt":{"acpi":[ri.clone(), frozen]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    assert_eq!(
        sensor.delete("cse-in/Csensor/p").await.unwrap().rsc,
        Rsc::DELETED
    );
    assert_eq!(
        cin(&sensor, "cse-in/Csensor/c", "x").await,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    assert_eq!(gui.retrieve("cse-in/Csensor/c").await.unwrap().rsc, Rsc::OK);
    assert_eq!(
        sensor.delete("cse-in/Csensor/frozen").await.unwrap().rsc,
        Rsc::DELETED
    );
    assert_eq!(
        gui.retrieve("cse-in/Csensor/c").await.unwrap().rsc,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    let r = sensor.retrieve("cse-in/Csensor/c").await.unwrap();
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    assert!(r.pc.unwrap()["m2m:cnt"].get("acpi").is_none());
    assert_eq!(cin(&sensor, "cse-in/Csensor/c", "x").await, Rsc::CREATED);
    // An ACP is not created under a container.
    let r = sensor
        .create(
            "cse-in/Csensor/c",
            ResourceType::AccessControlPolicy,
            json!({"m2m:acp":{"pv":{"acr":[]},"pvs":{"acr":[]}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::INVALID_CHILD_RESOURCE_TYPE, "{r:?}");
}

#[tokio::test]
async fn notifications_tell_a_subscriber_only_what_it_may_retrieve() {
    let hub = Hub::start();
    let sensor = registered_ae(&hub, "Csensor").await;
    let (gui, mut notes) = listening_ae(&hub, "Cgui").await;
    let share = sensor_policy(&sensor, "share", json!([{"acor": ["Cgui"], "acop": 3}])).await;
    let none = sensor_policy(&sensor, "none", json!([])).await;
    let r = sensor
        .update("cse-in/Csensor", json!({"m2m:ae":{"acpi":[share.clone()]}}))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    // Children of the AE: told of one it may retrieve, not of one whose policy shuts it out.
    let r = gui
        .create(
            "cse-in/Csensor",
            ResourceType::Subscription,
            json!({"m2m:sub":{"rn":"children","nu":["Cgui"],"enc":{"net":[3]}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    assert_eq!(r.pc.unwrap()["m2m:sub"]["cr"], "Cgui");
    container(&sensor, "cse-in/Csensor", "secret", &[&none]).await;
    container(&sensor, "cse-in/Csensor", "open", &[]).await;
    let sgn = next_sgn(&mut notes).await;
    assert_eq!(sgn["nev"]["rep"]["m2m:cnt"]["rn"], "open", "{sgn}");

    // An update that takes the subscriber's access away is not reported to it.
    let r = gui
        .create(
            "cse-in/Csensor/open",
            ResourceType::Subscription,
            json!({"m2m:sub":{"rn":"changes","nu":["Cgui"],"enc":{"net":[1]}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    let r = sensor
        .update(
            "cse-in/Csensor/open",
            json!({"m2m:cnt":{"lbl":["closing"],"acpi":[none]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::UPDATED, "{r:?}");
    // Not told of a change that shut it out.
    nothing_within(&mut notes, std::time::Duration::from_secs(1)).await;

    // The data's owner keeps control of the subscriptions others made on its data, also
    // once no policy applies any more; the subscriber keeps seeing and cancelling its own.
    assert_eq!(
        sensor.delete("cse-in/Csensor/share").await.unwrap().rsc,
        Rsc::DELETED
    );
    assert_eq!(
        sensor
            .retrieve("cse-in/Csensor/children")
            .await
            .unwrap()
            .rsc,
        Rsc::OK
    );
    assert_eq!(
        gui.retrieve("cse-in/Csensor/children").await.unwrap().rsc,
        Rsc::OK
    );
    assert_eq!(
        gui.update(
            "cse-in/Csensor/children",
            json!({"m2m:sub":{"lbl":["mine"]}})
        )
        .await
        .unwrap()
        .rsc,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    assert_eq!(
        sensor
            .delete("cse-in/Csensor/open/changes")
            .await
            .unwrap()
            .rsc,
        Rsc::DELETED
    );
    assert_eq!(
        gui.delete("cse-in/Csensor/children").await.unwrap().rsc,
        Rsc::DELETED
    );
}
