//! A gateway (MN-CSE) registered with a backend (IN-CSE) over MQTT, both real appliances on
//! loopback, each with its own embedded broker: the deployment of OpenMTC's MQTT documentation.

mod common;
use common::*;
use m2mhub::client::{Client, Options};
use m2mhub::onem2m::{ResourceType, Rsc};
use serde_json::json;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts an MN-CSE in `dir` registered to the IN at `registrar_poa`; `extra` adds lines
/// (credentials, TLS) to its `[[remote_cse]]` table.
fn start_mn(dir: &std::path::Path, registrar_poa: &str, extra: &str) -> Hub {
    let port = free_port();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[cse]\nid = \"id-mn\"\nname = \"cse-mn\"\nkind = \"MN\"\n\n\
             [[remote_cse]]\ncse_id = \"id-in\"\nname = \"cse-in\"\nkind = \"IN\"\n\
             poa = [\"{registrar_poa}\"]\nown_poa = [\"mqtt://127.0.0.1:{port}\"]\nreregister_interval_s = 1\n{extra}"
        ),
    )
    .unwrap();
    Hub::start_in(
        dir,
        &[("M2MHUB_MQTT__LISTEN", &format!("127.0.0.1:{port}"))],
    )
}

/// A backend (IN) and a gateway (MN) registered with it over MQTT, with the gateway's
/// directory.
async fn gateway_and_backend() -> (Hub, tempfile::TempDir, Hub) {
    let backend = Hub::start();
    let mn_dir = tempfile::tempdir().unwrap();
    let gateway = start_mn(mn_dir.path(), &format!("mqtt://{}", backend.mqtt), "");
    (backend, mn_dir, gateway)
}

/// The admin's client on the broker at `addr`, addressing CSE `csi` (`id-in`).
async fn admin(addr: std::net::SocketAddr, csi: &str) -> Client {
    Client::connect(
        &format!("mqtt://{addr}#{csi}"),
        "CAdmin",
        Options::default(),
    )
    .await
    .unwrap()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn gateway_and_backend_work_as_one() {
    let (backend, _mn_dir, gateway) = gateway_and_backend().await;
    let in_admin = admin(backend.mqtt, "id-in").await;
    let mn_admin = admin(gateway.mqtt, "id-mn").await;

    // Registration shows up on both sides.
    eventually("registration on the IN", async || {
        in_admin
            .retrieve("cse-in/id-mn")
            .await
            .is_ok_and(|r| r.rsc == Rsc::OK)
    })
    .await;
    let csr = in_admin.retrieve("cse-in/id-mn").await.unwrap();
    let csr = &csr.pc.as_ref().unwrap()["m2m:csr"];
    assert_eq!(csr["csi"], "/id-mn");
    assert_eq!(csr["cb"], "/id-mn/cse-mn");
    assert_eq!(csr["cst"], 2);
    eventually("the registrar mirrored on the MN", async || {
        mn_admin
            .retrieve("cse-mn/id-in")
            .await
            .is_ok_and(|r| r.rsc == Rsc::OK)
    })
    .await;
    let mirror = mn_admin.retrieve("cse-mn/id-in").await.unwrap();
    assert_eq!(
        mirror.pc.as_ref().unwrap()["m2m:csr"]["cb"],
        "/id-in/cse-in"
    );

    // An AE on the MN (notifications through its own broker) works on the IN.
    let mn_ae = Client::connect(
        &format!("mqtt://{}#id-mn", gateway.mqtt),
        "Cgw",
        Options::default(),
    )
    .await
    .unwrap();
    let (mut notes, poa) = mn_ae.notifications(None).await.unwrap();
    let r = mn_ae
        .create(
            "cse-mn",
            ResourceType::Ae,
            json!({"m2m:ae":{"rn":"gw-app","api":"Ngw","rr":true,"poa":[poa]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    let r = mn_ae
        .create(
            "/id-in/cse-in/id-mn",
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"from-gw"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    let r = mn_ae
        .create(
            "/id-in/cse-in/id-mn/from-gw",
            ResourceType::ContentInstance,
            json!({"m2m:cin":{"con":"up"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    let r = mn_ae
        .retrieve("/id-in/cse-in/id-mn/from-gw/la")
        .await
        .unwrap();
    assert_eq!(r.pc.as_ref().unwrap()["m2m:cin"]["con"], "up");
    // The IN sees it as its own resource.
    let r = in_admin.retrieve("cse-in/id-mn/from-gw/la").await.unwrap();
    assert_eq!(r.pc.as_ref().unwrap()["m2m:cin"]["con"], "up");

    // A subscription on the IN notifies the AE on the MN.
    let r = mn_ae
        .create(
            "/id-in/cse-in/id-mn/from-gw",
            ResourceType::Subscription,
            json!({"m2m:sub":{"nu":["/id-mn/Cgw"],"enc":{"net":[3]}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    let r = in_admin
        .create(
            "cse-in/id-mn/from-gw",
            ResourceType::ContentInstance,
            json!({"m2m:cin":{"con":"down"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    let n = match tokio::time::timeout(WAIT, notes.next()).await {
        Ok(n) => n.unwrap(),
        Err(_) => panic!(
            "no notification crossed to the MN\nIN:\n{}\nMN:\n{}",
            backend.logs(),
            gateway.logs()
        ),
    };
    assert_eq!(
        n.request.pc.as_ref().unwrap()["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"],
        "down"
    );
    n.respond(Rsc::OK);

    // The reverse: an AE on the IN works on the MN.
    let in_ae = Client::connect(
        &format!("mqtt://{}#id-in", backend.mqtt),
        "Cbackend",
        Options::default(),
    )
    .await
    .unwrap();
    in_ae
        .create(
            "cse-in",
            ResourceType::Ae,
            json!({"m2m:ae":{"rn":"backend-app","api":"Nb","rr":false}}),
        )
        .await
        .unwrap();
    let r = in_ae
        .create(
            "/id-mn/cse-mn/id-in",
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"from-backend"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    let r = mn_admin
        .retrieve("cse-mn/id-in/from-backend")
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::OK);
    // Unknown CSEs are not reachable, and other AEs' data stays private across CSEs.
    assert_eq!(
        in_ae.retrieve("/id-nowhere/cse-x").await.unwrap().rsc,
        Rsc::TARGET_NOT_REACHABLE
    );
    assert_eq!(
        in_ae.retrieve("/id-mn/cse-mn/gw-app").await.unwrap().rsc,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );

    // A device on the gateway's broker addresses the backend directly.
    let via = Client::connect(
        &format!("mqtt://{}#id-in", gateway.mqtt),
        "Cgw",
        Options::default(),
    )
    .await
    .unwrap();
    let r = via.retrieve("cse-in").await.unwrap();
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    assert_eq!(r.pc.as_ref().unwrap()["m2m:cb"]["csi"], "/id-in");
}

/// The scenario access control policies exist for across CSEs: a device on the gateway
/// shares one container with an application on the backend, by an ACP on the gateway that
/// names the application in SP-relative form; an originator registered nowhere gets nothing
/// through the gateway.
#[tokio::test]
async fn a_backend_app_reads_gateway_data_an_acp_grants_and_strangers_are_refused_at_the_gateway() {
    let (backend, _mn_dir, gateway) = gateway_and_backend().await;
    let in_admin = admin(backend.mqtt, "id-in").await;
    eventually("registration on the IN", async || {
        in_admin
            .retrieve("cse-in/id-mn")
            .await
            .is_ok_and(|r| r.rsc == Rsc::OK)
    })
    .await;
    let on = |addr: std::net::SocketAddr, csi: &str, originator: &str| {
        let url = format!("mqtt://{addr}#{csi}");
        let originator = originator.to_string();
        async move {
            Client::connect(&url, &originator, Options::default())
                .await
                .unwrap()
        }
    };

    // The device on the gateway: a shared container and a private one.
    let dev = on(gateway.mqtt, "id-mn", "Cdev").await;
    let r = dev
        .create(
            "cse-mn",
            ResourceType::Ae,
            json!({"m2m:ae":{"rn":"dev","api":"Ndev","rr":false,"srv":["3"]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    let r = dev
        .create(
            "cse-mn/dev",
            ResourceType::AccessControlPolicy,
            json!({"m2m:acp":{"rn":"share","pv":{"acr":[
                {"acor":["Cdev"],"acop":63},
                {"acor":["/id-in/Capp"],"acop":34}
            ]},"pvs":{"acr":[{"acor":["Cdev"],"acop":63}]}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    let acp = r.pc.unwrap()["m2m:acp"]["ri"].as_str().unwrap().to_string();
    for (rn, acpi) in [("temp", json!([acp])), ("private", json!([]))] {
        let r = dev
            .create(
                "cse-mn/dev",
                ResourceType::Container,
                json!({"m2m:cnt":{"rn":rn,"acpi":acpi}}),
            )
            .await
            .unwrap();
        assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
        let r = dev
            .create(
                &format!("cse-mn/dev/{rn}"),
                ResourceType::ContentInstance,
                json!({"m2m:cin":{"con":"21.5"}}),
            )
            .await
            .unwrap();
        assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    }

    // The application on the backend reads and discovers what the policy grants, and only
    // that; the gateway decides, on the originator the backend forwards (/id-in/Capp).
    let app = on(backend.mqtt, "id-in", "Capp").await;
    let r = app
        .create(
            "cse-in",
            ResourceType::Ae,
            json!({"m2m:ae":{"rn":"app","api":"Napp","rr":false,"srv":["3"]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    let r = app.retrieve("/id-mn/cse-mn/dev/temp/la").await.unwrap();
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    assert_eq!(r.pc.unwrap()["m2m:cin"]["con"], "21.5");
    let r = app.retrieve("/id-mn/cse-mn/dev/private/la").await.unwrap();
    assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");
    assert!(
        format!("{:?}", r.pc).contains("/id-in/Capp has no privilege"),
        "{r:?}"
    );
    let r = app
        .discover(
            "/id-mn/cse-mn",
            json!({"ty":[3]}).as_object().unwrap().clone(),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    assert_eq!(r.pc.unwrap()["m2m:uril"], json!(["cse-mn/dev/temp"]));
    let r = app
        .create(
            "/id-mn/cse-mn/dev/temp",
            ResourceType::ContentInstance,
            json!({"m2m:cin":{"con":"forged"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");

    // An originator registered nowhere, on the gateway's broker: the gateway's own data is
    // the device's; and requests for the backend are refused by the gateway itself, before
    // anything is forwarded, whether they read, create or delete.
    let stranger = on(gateway.mqtt, "id-mn", "Cstranger").await;
    let r = stranger.retrieve("/id-mn/cse-mn/dev/temp").await.unwrap();
    assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");
    for r in [
        stranger.retrieve("/id-in/cse-in").await.unwrap(),
        stranger
            .create(
                "/id-in/cse-in/id-mn",
                ResourceType::Container,
                json!({"m2m:cnt":{"rn":"planted"}}),
            )
            .await
            .unwrap(),
        stranger.delete("/id-in/cse-in/id-mn").await.unwrap(),
    ] {
        assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");
        assert!(
            format!("{:?}", r.pc).contains("only the requests of registered AEs"),
            "refused by the gateway: {r:?}"
        );
    }
    assert_eq!(
        in_admin.retrieve("cse-in/id-mn/planted").await.unwrap().rsc,
        Rsc::NOT_FOUND
    );
    assert_eq!(
        in_admin.retrieve("cse-in/id-mn").await.unwrap().rsc,
        Rsc::OK
    );
    // The device, registered on the gateway, is forwarded as before.
    let r = dev.retrieve("/id-in/cse-in").await.unwrap();
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
}

#[tokio::test]
async fn the_gateway_registers_again_when_the_backend_forgets_it() {
    let mut backend = Hub::start();
    let in_port = backend.mqtt.port();
    let mn_dir = tempfile::tempdir().unwrap();
    let _gateway = start_mn(mn_dir.path(), &format!("mqtt://{}", backend.mqtt), "");
    let check = async |addr: std::net::SocketAddr| {
        let c = Client::connect(
            &format!("mqtt://{addr}#id-in"),
            "CAdmin",
            Options::default(),
        )
        .await
        .ok()?;
        Some(c.retrieve("cse-in/id-mn").await.ok()?.rsc == Rsc::OK)
    };
    eventually("first registration", async || {
        check(backend.mqtt).await == Some(true)
    })
    .await;

    // The backend restarts on a new, empty database, on the same port.
    assert!(backend.stop().await.success());
    drop(backend);
    let fresh = tempfile::tempdir().unwrap();
    let backend = Hub::start_in(
        fresh.path(),
        &[("M2MHUB_MQTT__LISTEN", &format!("127.0.0.1:{in_port}"))],
    );
    eventually("registration again", async || {
        check(backend.mqtt).await == Some(true)
    })
    .await;
}

/// The deployment with security on: the backend takes nobody without credentials and offers
/// MQTT over TLS; the gateway registers there as user `id-mn` (its CSE-ID), verifying the backend against the
/// site CA, and forwards its AE's requests the same way. A CSE logs in with its own CSE-ID.
#[tokio::test]
async fn a_gateway_registers_over_mqtts_with_a_backend_that_requires_credentials() {
    use common::certs::Pki;
    let pki = Pki::new("site CA");
    let pw = pki.dir.path().join("passwords");
    passwd(&pw, "id-mn", "gw-secret");
    passwd(&pw, "CAdmin", "admin-secret");
    let backend = Hub::start_with(&[
        ("M2MHUB_SECURITY__ANONYMOUS", "nobody"),
        ("M2MHUB_SECURITY__PASSWORD_FILE", pw.to_str().unwrap()),
        ("M2MHUB_MQTT__TLS_LISTEN", "127.0.0.1:0"),
        ("M2MHUB_TLS__CERT_FILE", pki.cert_file.to_str().unwrap()),
        ("M2MHUB_TLS__KEY_FILE", pki.key_file.to_str().unwrap()),
    ]);
    let mqtts = backend.mqtts.expect("the backend's TLS listener");
    let mn_dir = tempfile::tempdir().unwrap();
    let gateway = start_mn(
        mn_dir.path(),
        &format!("mqtts://127.0.0.1:{}", mqtts.port()),
        &format!(
            "username = \"id-mn\"\npassword = \"gw-secret\"\nca_certs = \"{}\"\n",
            pki.ca_file.display()
        ),
    );

    let in_admin = Client::connect(
        &format!("mqtt://{}#id-in", backend.mqtt),
        "CAdmin",
        Options {
            username: Some("CAdmin".into()),
            password: Some(m2mhub::config::Secret::new("admin-secret")),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    eventually("registration on the IN", async || {
        in_admin
            .retrieve("cse-in/id-mn")
            .await
            .is_ok_and(|r| r.rsc == Rsc::OK)
    })
    .await;
    let csr = in_admin.retrieve("cse-in/id-mn").await.unwrap();
    assert_eq!(csr.pc.as_ref().unwrap()["m2m:csr"]["csi"], "/id-mn");

    // An AE on the gateway writes on the backend through it.
    let mn_ae = Client::connect(
        &format!("mqtt://{}#id-mn", gateway.mqtt),
        "Cgw",
        Options::default(),
    )
    .await
    .unwrap();
    let r = mn_ae
        .create(
            "cse-mn",
            ResourceType::Ae,
            json!({"m2m:ae":{"rn":"gw-app","api":"Ngw","rr":false}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    let r = mn_ae
        .create(
            "/id-in/cse-in/id-mn",
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"over-tls"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}\nMN:\n{}", gateway.logs());
    let r = in_admin.retrieve("cse-in/id-mn/over-tls").await.unwrap();
    assert_eq!(r.rsc, Rsc::OK);
    // The password never reached a log line.
    assert!(!gateway.logs().contains("gw-secret") && !backend.logs().contains("gw-secret"));
}
