//! External broker mode: the CSE as a client of a broker the site already runs, with the same
//! topics and behaviour. Run against another m2mhub's embedded broker, and against Mosquitto
//! (.ci/run installs it, and the test fails in CI without it).

mod common;
use common::*;
use m2mhub::client::{Client, Options};
use m2mhub::onem2m::{ResourceType, Rsc};
use serde_json::json;
use std::net::SocketAddr;

async fn scenario(broker: SocketAddr) {
    let ext = Hub::start_with(&[
        ("M2MHUB_MQTT__MODE", "external"),
        ("M2MHUB_MQTT__BROKER", &format!("mqtt://{broker}")),
        ("M2MHUB_CSE__ID", "id-ext"),
        ("M2MHUB_CSE__NAME", "cse-ext"),
    ]);
    let dev = Client::connect(
        &format!("mqtt://{broker}#id-ext"),
        "Cext",
        Options::default(),
    )
    .await
    .unwrap();
    let (mut notes, poa) = dev.notifications(None).await.unwrap();
    assert_eq!(poa, format!("mqtt://{broker}"));
    let r = dev
        .create(
            "cse-ext",
            ResourceType::Ae,
            json!({"m2m:ae":{"rn":"app","api":"Next","rr":true,"poa":[poa]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}\n{}", ext.logs());
    dev.create(
        "cse-ext/app",
        ResourceType::Container,
        json!({"m2m:cnt":{"rn":"c"}}),
    )
    .await
    .unwrap();
    let r = dev
        .create(
            "cse-ext/app/c",
            ResourceType::Subscription,
            json!({"m2m:sub":{"nu":["Cext"],"enc":{"net":[3]}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED);
    for i in 0..3 {
        dev.create(
            "cse-ext/app/c",
            ResourceType::ContentInstance,
            json!({"m2m:cin":{"con":format!("{i}")}}),
        )
        .await
        .unwrap();
    }
    for i in 0..3 {
        let n = tokio::time::timeout(WAIT, notes.next())
            .await
            .expect("notification")
            .unwrap();
        assert_eq!(
            n.request.pc.as_ref().unwrap()["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"],
            i.to_string()
        );
    }
    let la = dev.retrieve("cse-ext/app/c/la").await.unwrap();
    assert_eq!(la.pc.as_ref().unwrap()["m2m:cin"]["con"], "2");
    // Errors behave the same.
    assert_eq!(
        dev.retrieve("cse-ext/app/nothing").await.unwrap().rsc,
        Rsc::NOT_FOUND
    );
}

#[tokio::test]
async fn the_cse_serves_devices_on_another_m2mhubs_broker() {
    let site = Hub::start();
    scenario(site.mqtt).await;
}

/// Needs Mosquitto. In CI (`CI` set, as `.ci/run` does, which also installs it) a missing
/// Mosquitto fails the test; elsewhere the test says so and passes without running.
#[tokio::test]
async fn the_cse_serves_devices_on_mosquitto() {
    let Ok(path) = which("mosquitto") else {
        let why = "mosquitto is not installed: this test needs it (apt-get install mosquitto)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED: {why}");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(path)
        .args(["-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start mosquitto");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "mosquitto did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    scenario(addr).await;
    let _ = child.kill();
    let _ = child.wait();
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
