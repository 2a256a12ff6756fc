//! A sensor AE on `m2mhub::client`, the counterpart of OpenMTC's training IPE: it registers,
//! creates a container for its readings, shares it with a monitor AE through an access
//! control policy (retrieve and discover, and create of subscriptions only), and pushes a
//! reading every `--interval-ms`. The same over MQTT or HTTP: only the endpoint changes.
//!
//! ```sh
//! cargo run --example sensor -- mqtt://127.0.0.1:1883#id-in
//! cargo run --example sensor -- http://127.0.0.1:8080 --count 5
//! ```

use m2mhub::client::{Client, Options};
use m2mhub::onem2m::{ResourceType, Rsc};
use serde_json::json;
use std::time::Duration;

struct Args {
    endpoint: String,
    /// The sensor's AE-ID.
    aei: String,
    /// Who may read the readings.
    monitor: String,
    count: u64,
    interval: Duration,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        endpoint: String::new(),
        aei: "Csensor".into(),
        monitor: "Cmonitor".into(),
        count: 10,
        interval: Duration::from_millis(1000),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--aei" => a.aei = value()?,
            "--monitor" => a.monitor = value()?,
            "--count" => a.count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--interval-ms" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|e| format!("--interval-ms: {e}"))?;
                a.interval = Duration::from_millis(ms);
            }
            e if !e.starts_with('-') && a.endpoint.is_empty() => a.endpoint = e.to_string(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.endpoint.is_empty() {
        return Err(
            "usage: sensor <endpoint> [--aei C..] [--monitor C..] [--count N] \
                    [--interval-ms MS]"
                .into(),
        );
    }
    Ok(a)
}

/// Fails unless `rsp` is a success (or, with `exists_ok`, 4105: made by an earlier run).
fn ok(what: &str, rsp: &m2mhub::onem2m::ResponsePrimitive, exists_ok: bool) -> anyhow::Result<()> {
    if rsp.rsc.is_error() && !(exists_ok && rsp.rsc == Rsc::CONFLICT) {
        anyhow::bail!("{what}: {} {:?}", rsp.rsc, rsp.pc);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args().map_err(anyhow::Error::msg)?;
    let client = Client::connect(&a.endpoint, &a.aei, Options::default()).await?;
    let rsp = client
        .create(
            "cse-in",
            ResourceType::Ae,
            json!({"m2m:ae": {"rn": "sensor", "api": "Nsensor", "rr": false, "srv": ["3"]}}),
        )
        .await?;
    if rsp.rsc != Rsc::ORIGINATOR_HAS_ALREADY_REGISTERED {
        ok("register", &rsp, false)?;
    }
    // The monitor may read and find the readings, and subscribe to them; nothing else.
    let share = json!({"m2m:acp": {"rn": "share",
        "pv": {"acr": [
            {"acor": [&a.aei], "acop": 63},
            {"acor": [&a.monitor], "acop": 34},
            {"acor": [&a.monitor], "acop": 1, "acod": [{"chty": [23]}]}
        ]},
        "pvs": {"acr": [{"acor": [&a.aei], "acop": 63}]}}});
    let rsp = client
        .create("cse-in/sensor", ResourceType::AccessControlPolicy, share)
        .await?;
    ok("policy", &rsp, true)?;
    let rsp = client
        .create(
            "cse-in/sensor",
            ResourceType::Container,
            json!({"m2m:cnt": {"rn": "temperature", "mni": 100, "lbl": ["measurements"],
                               "acpi": ["cse-in/sensor/share"]}}),
        )
        .await?;
    ok("container", &rsp, true)?;
    println!("sensor {} ready", a.aei);
    for i in 0..a.count {
        let reading = 20.0 + (i % 10) as f64 / 2.0;
        let rsp = client
            .create(
                "cse-in/sensor/temperature",
                ResourceType::ContentInstance,
                json!({"m2m:cin": {"con": format!("{reading:.1}"), "cnf": "text/plain:0"}}),
            )
            .await?;
        ok("reading", &rsp, false)?;
        println!("sent {reading:.1}");
        tokio::time::sleep(a.interval).await;
    }
    Ok(())
}
