//! Attacks a client could make on everyone else or on the data (issue 14), each tried over real
//! sockets and shown to fail.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

/// `mia` so large that `ct + mia` passed the year 9999 made every instance expire at once
/// (2.5e11 s) or every create fail with 5000 (8.2e12 s). Durations are now bounded (4000 past
/// 100 years), and the largest allowed one keeps instances.
#[tokio::test]
async fn huge_durations_are_refused_and_the_largest_allowed_keeps_instances() {
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let mut dev = Device::connect(hub.mqtt, "Ctimes").await;
    dev.listen_responses("Ctimes").await;
    assert_eq!(rsc(&register(&mut dev, "Ctimes", "times").await), 2001);

    for mia in [250_000_000_000u64, 8_200_000_000_000, u64::MAX] {
        let r = dev
            .request(
                "Ctimes",
                create("cse-in/times", 3, json!({"m2m:cnt":{"mia":mia}})),
            )
            .await;
        assert_eq!(rsc(&r), 4000, "mia {mia}: {r}");
        assert!(dbg(&r).contains("mia"), "{r}");
    }

    let r = dev
        .request(
            "Ctimes",
            create("cse-in/times", 3, json!({"m2m:cnt":{"rn":"c","mia":60}})),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");
    let r = dev
        .request(
            "Ctimes",
            update(
                "cse-in/times/c",
                json!({"m2m:cnt":{"mia":250_000_000_000u64}}),
            ),
        )
        .await;
    assert_eq!(rsc(&r), 4000, "an update is held to the same range: {r}");

    // The longest allowed duration, with an instance that asks to live until 9999.
    let r = dev
        .request(
            "Ctimes",
            update(
                "cse-in/times/c",
                json!({"m2m:cnt":{"mia":3_162_240_000u64}}),
            ),
        )
        .await;
    assert_eq!(rsc(&r), 2004, "{r}");
    for et in [None, Some("99991231T235959")] {
        let mut cin = json!({"con":"21.5"});
        if let Some(et) = et {
            cin["et"] = json!(et);
        }
        let r = dev
            .request(
                "Ctimes",
                create("cse-in/times/c", 4, json!({ "m2m:cin": cin })),
            )
            .await;
        assert_eq!(rsc(&r), 2001, "{r}");
        let et = r["pc"]["m2m:cin"]["et"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            et.len() == 22 && et.as_str() < "99991231T235959",
            "the instance expires within mia, in the stored form: {r}"
        );
    }
    // Expiry runs every second; both instances outlive it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = dev.request("Ctimes", retrieve("cse-in/times/c")).await;
    assert_eq!(r["pc"]["m2m:cnt"]["cni"], 2, "{r}");

    // An `et` that cannot be a time is refused without echoing all of it.
    let long = "9".repeat(100_000);
    let r = dev
        .request(
            "Ctimes",
            create("cse-in/times", 3, json!({"m2m:cnt":{"et":long}})),
        )
        .await;
    assert_eq!(rsc(&r), 4000, "{r}");
    assert!(
        dbg(&r).len() < 400,
        "dbg echoes a prefix: {} bytes",
        dbg(&r).len()
    );
}
