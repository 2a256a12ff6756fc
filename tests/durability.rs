//! Nothing acknowledged is lost: the tree survives a clean restart and a power cut right after
//! the acknowledgements. The power cut is real enough to tell: every change that no sync made
//! durable is taken back before the restart (see `common::power`), so these tests fail when
//! commits are not synced (`synchronous=OFF`).

mod common;
use common::power::PowerCut;
use common::*;
use serde_json::json;

/// An appliance in `dir` whose data directory is watched by `power`.
fn start_watched(dir: &std::path::Path, power: &PowerCut, sync_delay_ms: u32) -> Hub {
    let env = power.env(sync_delay_ms);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Hub::start_in(dir, &env)
}

#[tokio::test]
async fn a_stop_then_a_power_cut_keeps_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let power = PowerCut::new(&dir.path().join("data"));
    let mut hub = start_watched(dir.path(), &power, 0);
    {
        let mut dev = Device::connect(hub.mqtt, "Ckeep").await;
        dev.listen_responses("Ckeep").await;
        register(&mut dev, "Ckeep", "keep").await;
        dev.request(
            "Ckeep",
            create("cse-in/keep", 3, json!({"m2m:cnt":{"rn":"c","mni":5}})),
        )
        .await;
        dev.request(
            "Ckeep",
            create(
                "cse-in/keep/c",
                4,
                json!({"m2m:cin":{"con":"before restart"}}),
            ),
        )
        .await;
    }
    assert!(
        hub.stop().await.success(),
        "SIGTERM ends m2mhub with status 0"
    );
    power.unplug();

    let hub = Hub::start_in(dir.path(), &[]);
    let mut dev = Device::connect(hub.mqtt, "Ckeep").await;
    dev.listen_responses("Ckeep").await;
    let la = dev.request("Ckeep", retrieve("cse-in/keep/c/la")).await;
    assert_eq!(rsc(&la), 2000, "{la}");
    assert_eq!(la["pc"]["m2m:cin"]["con"], "before restart");
    let c = dev.request("Ckeep", retrieve("cse-in/keep/c")).await;
    assert_eq!(c["pc"]["m2m:cnt"]["cni"], 1);
    assert_eq!(c["pc"]["m2m:cnt"]["mni"], 5);
    // The registration survived too: the AE-ID is still taken.
    assert_eq!(rsc(&register(&mut dev, "Ckeep", "again").await), 4117);
}

#[tokio::test]
async fn a_power_cut_right_after_acknowledged_creates_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let power = PowerCut::new(&dir.path().join("data"));
    let mut hub = start_watched(dir.path(), &power, 0);
    let mut acked = Vec::new();
    {
        let mut dev = Device::connect(hub.mqtt, "Ccrash").await;
        dev.listen_responses("Ccrash").await;
        register(&mut dev, "Ccrash", "crash").await;
        dev.request(
            "Ccrash",
            create("cse-in/crash", 3, json!({"m2m:cnt":{"rn":"c"}})),
        )
        .await;
        // Pipelined creates; each answer that says 2001 is a promise.
        const N: usize = 40;
        for i in 0..N {
            let body = json!({"op":1,"to":"cse-in/crash/c","fr":"Ccrash","rqi":format!("k{i}"),"rvi":"3","ty":4,
                              "pc":{"m2m:cin":{"rn":format!("i{i}"),"con":i.to_string()}}});
            dev.publish("/oneM2M/req/Ccrash/id-in/json", body.to_string())
                .await;
        }
        while acked.len() < N {
            let p = dev.expect(|p| p.topic.starts_with("/oneM2M/resp/")).await;
            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
            if rsc(&v) == 2001 {
                acked.push(v["pc"]["m2m:cin"]["rn"].as_str().unwrap().to_string());
            }
        }
        // No grace: the process dies the moment the last acknowledgement is in, and the
        // machine with it.
        hub.kill9();
        power.unplug();
    }

    let hub = Hub::start_in(dir.path(), &[]);
    let mut dev = Device::connect(hub.mqtt, "Ccrash").await;
    dev.listen_responses("Ccrash").await;
    for rn in &acked {
        let r = dev
            .request("Ccrash", retrieve(&format!("cse-in/crash/c/{rn}")))
            .await;
        assert_eq!(rsc(&r), 2000, "acknowledged {rn} was lost: {r}");
    }
    let c = dev.request("Ccrash", retrieve("cse-in/crash/c")).await;
    assert_eq!(
        c["pc"]["m2m:cnt"]["cni"],
        acked.len(),
        "counters match what is stored"
    );
}

#[tokio::test]
async fn a_database_of_another_cse_is_refused() {
    let mut hub = Hub::start();
    let dir = hub.take_dir();
    assert!(hub.stop().await.success());
    drop(hub);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_m2mhub"))
        .current_dir(dir.path())
        .env("M2MHUB_MQTT__LISTEN", "127.0.0.1:0")
        .env("M2MHUB_HTTP__ENABLED", "false")
        .env("M2MHUB_STORAGE__PATH", dir.path().join("data/m2mhub.db"))
        .env("M2MHUB_CSE__ID", "id-other")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("belongs to CSE /id-in"), "{err}");
}
