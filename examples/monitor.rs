//! A monitor AE on `m2mhub::client`, the counterpart of OpenMTC's training GUI: it
//! registers with a point of access for notifications, discovers the containers labelled
//! `measurements`, subscribes to each, and prints every new reading. The same over MQTT or
//! HTTP: only the endpoint changes (over HTTP it listens for notifications on `--listen`).
//!
//! ```sh
//! cargo run --example monitor -- mqtt://127.0.0.1:1883#id-in
//! cargo run --example monitor -- http://127.0.0.1:8080 --listen 127.0.0.1:8091
//! ```

use m2mhub::client::{Client, Options};
use m2mhub::onem2m::{ResourceType, Rsc};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

struct Args {
    endpoint: String,
    aei: String,
    listen: Option<SocketAddr>,
    /// Stop after this many readings (none: run until stopped).
    count: Option<u64>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        endpoint: String::new(),
        aei: "Cmonitor".into(),
        listen: None,
        count: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--aei" => a.aei = value()?,
            "--listen" => a.listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--count" => a.count = Some(value()?.parse().map_err(|e| format!("--count: {e}"))?),
            e if !e.starts_with('-') && a.endpoint.is_empty() => a.endpoint = e.to_string(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.endpoint.is_empty() {
        return Err("usage: monitor <endpoint> [--aei C..] [--listen ADDR] [--count N]".into());
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args().map_err(anyhow::Error::msg)?;
    let client = Client::connect(&a.endpoint, &a.aei, Options::default()).await?;
    let (mut notes, poa) = client.notifications(a.listen).await?;
    let rsp = client
        .create(
            "cse-in",
            ResourceType::Ae,
            json!({"m2m:ae": {"rn": "monitor", "api": "Nmonitor", "rr": true, "poa": [poa],
                              "srv": ["3"]}}),
        )
        .await?;
    if rsp.rsc.is_error() && rsp.rsc != Rsc::ORIGINATOR_HAS_ALREADY_REGISTERED {
        anyhow::bail!("register: {} {:?}", rsp.rsc, rsp.pc);
    }
    // Find the readings, as the training GUI does: by label, until there are some.
    let containers = loop {
        let fc = json!({"ty": [3], "lbl": ["measurements"]});
        let rsp = client
            .discover("cse-in", fc.as_object().cloned().unwrap_or_default())
            .await?;
        let found: Vec<String> = rsp
            .pc
            .as_ref()
            .and_then(|pc| pc["m2m:uril"].as_array())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if !found.is_empty() {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for cnt in &containers {
        let sub = json!({"m2m:sub": {"nu": [&a.aei], "enc": {"net": [3]}}});
        let rsp = client.create(cnt, ResourceType::Subscription, sub).await?;
        if rsp.rsc.is_error() {
            anyhow::bail!("subscribe to {cnt}: {} {:?}", rsp.rsc, rsp.pc);
        }
        println!("subscribed to {cnt}");
    }
    let mut seen = 0;
    while let Some(n) = notes.next().await {
        let sgn: Value = n.request.pc.clone().unwrap_or_default()["m2m:sgn"].clone();
        n.respond(Rsc::OK);
        if let Some(con) = sgn["nev"]["rep"]["m2m:cin"]["con"].as_str() {
            println!("reading {con} from {}", sgn["sur"].as_str().unwrap_or("?"));
            seen += 1;
            if a.count.is_some_and(|c| seen >= c) {
                break;
            }
        }
    }
    Ok(())
}
