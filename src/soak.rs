//! `m2mhub bench --soak SECONDS`: the appliance under mixed traffic for a long while, with
//! connections that come and go, to show what stays flat (memory, latency) and what does not.
//!
//! On one appliance (embedded broker, fresh database, built-in limits) at once:
//! * steady devices: each creates contentInstances in its own container (`mni` 100, as a
//!   device that keeps its latest readings), reads `la` every 10th request and discovers every
//!   50th, a few requests in flight;
//! * a subscriber: notified over MQTT of every instance of the first device;
//! * churn: short-lived MQTT clients, each with a fresh client ID, subscribing to filters of
//!   its own, sending a few requests and leaving (their filters must go with them);
//! * HTTP clients: reads and writes over new and kept-alive connections.
//!
//! Every interval it samples the process's RSS (load generators included: they run in this
//! process), p99 latency of the steady devices, throughput and errors. Bounded by time.

use crate::bench::{status_mib, TempDir};
use m2mhub::app::Appliance;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Steady devices, and requests each keeps in flight.
const DEVICES: usize = 8;
const IN_FLIGHT: usize = 4;
/// Short-lived MQTT clients started per second, and filters each subscribes to.
const CHURN_PER_S: usize = 20;
const CHURN_FILTERS: usize = 20;
/// HTTP requests per second.
const HTTP_PER_S: usize = 50;
/// How often a sample is taken.
const INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize)]
pub struct Sample {
    pub at_s: f64,
    pub rss_mib: f64,
    pub anon_mib: f64,
    pub file_mib: f64,
    pub ops_per_s: f64,
    pub p99_ms: f64,
    pub errors: usize,
    pub churned: usize,
    pub http: usize,
    pub notifications: usize,
}

#[derive(Debug, Serialize)]
pub struct Soak {
    pub seconds: u64,
    pub samples: Vec<Sample>,
    /// RSS after the first interval (warm caches) and at the end, and its anonymous part.
    pub rss_start_mib: f64,
    pub rss_end_mib: f64,
    pub anon_start_mib: f64,
    pub anon_end_mib: f64,
    pub errors: usize,
}

#[derive(Default)]
struct Counters {
    latencies: Mutex<Vec<Duration>>,
    ops: AtomicUsize,
    errors: AtomicUsize,
    churned: AtomicUsize,
    http: AtomicUsize,
    notifications: AtomicUsize,
    stop: AtomicBool,
}

/// An MQTT client with its event loop; returns once connected.
async fn client(addr: SocketAddr, id: &str) -> anyhow::Result<(AsyncClient, rumqttc::EventLoop)> {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_max_packet_size(4 << 20, 4 << 20);
    let (c, mut ev) = AsyncClient::new(opts, 1000);
    // As devices should: without it, latency shows the client's Nagle delays (about 40 ms).
    let mut net = ev.network_options();
    net.set_tcp_nodelay(true);
    ev.set_network_options(net);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok((c, ev)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("client {id}: {e}"),
            Err(_) => anyhow::bail!("client {id}: no CONNACK"),
        }
    }
}

/// Sends one request and waits for its answer on `ev`; the answer's `rsc`.
async fn ask(
    c: &AsyncClient,
    ev: &mut rumqttc::EventLoop,
    id: &str,
    mut body: Value,
    rqi: &str,
) -> Option<u64> {
    body["fr"] = json!(id);
    body["rqi"] = json!(rqi);
    body["rvi"] = json!("3");
    c.publish(
        format!("/oneM2M/req/{id}/id-in/json"),
        QoS::AtLeastOnce,
        false,
        body.to_string(),
    )
    .await
    .ok()?;
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let Ok(Ok(event)) = tokio::time::timeout_at(until, ev.poll()).await else {
            return None;
        };
        if let Event::Incoming(Packet::Publish(p)) = event {
            let v: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
            if v["rqi"] == rqi {
                return v["rsc"].as_u64();
            }
        }
    }
}

pub async fn run(seconds: u64) -> anyhow::Result<Soak> {
    let dir = TempDir::new()?;
    let mut config = m2mhub::config::Config::default();
    config.mqtt.listen = "127.0.0.1:0".parse()?;
    config.http.listen = "127.0.0.1:0".parse()?;
    config.storage.path = dir.path().join("soak.db");
    let app = Appliance::start(&config).await?;
    let addr = app
        .mqtt_addr()
        .ok_or_else(|| anyhow::anyhow!("MQTT is off"))?;
    let http = app.http.ok_or_else(|| anyhow::anyhow!("HTTP is off"))?;
    let counters = Arc::new(Counters::default());
    let end = Instant::now() + Duration::from_secs(seconds);

    // Devices and their containers; the first one's is subscribed to.
    for d in 0..DEVICES {
        let id = format!("Csoak{d}");
        let (c, mut ev) = client(addr, &id).await?;
        c.subscribe(format!("/oneM2M/resp/{id}/+/#"), QoS::AtLeastOnce)
            .await?;
        let ae = json!({"op":1,"to":"cse-in","ty":2,"pc":{"m2m:ae":{"rn":format!("soak{d}"),"api":"Nsoak","rr":true,"poa":[format!("mqtt://{addr}")]}}});
        anyhow::ensure!(
            ask(&c, &mut ev, &id, ae, "ae").await == Some(2001),
            "AE {id}"
        );
        let cnt = json!({"op":1,"to":format!("cse-in/soak{d}"),"ty":3,"pc":{"m2m:cnt":{"rn":"c","mni":100}}});
        anyhow::ensure!(
            ask(&c, &mut ev, &id, cnt, "cnt").await == Some(2001),
            "container of {id}"
        );
        if d == 0 {
            c.subscribe(format!("/oneM2M/req/+/{id}/#"), QoS::AtMostOnce)
                .await?;
            let sub = json!({"op":1,"to":"cse-in/soak0/c","ty":23,"pc":{"m2m:sub":{"rn":"s","nu":[id],"enc":{"net":[3]}}}});
            anyhow::ensure!(
                ask(&c, &mut ev, &id, sub, "sub").await == Some(2001),
                "subscription"
            );
        }
        let _ = c.disconnect().await;
    }

    let mut tasks = Vec::new();
    for d in 0..DEVICES {
        tasks.push(tokio::spawn(device(addr, d, counters.clone(), end)));
    }
    tasks.push(tokio::spawn(subscriber(addr, counters.clone(), end)));
    tasks.push(tokio::spawn(churn(addr, counters.clone(), end)));
    tasks.push(tokio::spawn(http_load(http, counters.clone(), end)));

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut last = (0usize, 0usize, 0usize, 0usize);
    while Instant::now() < end {
        tokio::time::sleep(INTERVAL.min(end.saturating_duration_since(Instant::now()))).await;
        let mut lat =
            std::mem::take(&mut *counters.latencies.lock().unwrap_or_else(|p| p.into_inner()));
        lat.sort();
        let p99 = lat
            .get(((lat.len() as f64 - 1.0) * 0.99).round().max(0.0) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let ops = counters.ops.load(Ordering::Relaxed);
        let churned = counters.churned.load(Ordering::Relaxed);
        let http = counters.http.load(Ordering::Relaxed);
        let notes = counters.notifications.load(Ordering::Relaxed);
        let at = started.elapsed().as_secs_f64();
        let span = INTERVAL
            .as_secs_f64()
            .min(at - samples.last().map_or(0.0, |s: &Sample| s.at_s));
        samples.push(Sample {
            at_s: at,
            rss_mib: status_mib("VmRSS:"),
            anon_mib: status_mib("RssAnon:"),
            file_mib: status_mib("RssFile:"),
            ops_per_s: (ops - last.0) as f64 / span.max(1e-9),
            p99_ms: p99,
            errors: counters.errors.load(Ordering::Relaxed),
            churned: churned - last.1,
            http: http - last.2,
            notifications: notes - last.3,
        });
        last = (ops, churned, http, notes);
    }
    counters.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    let _ = app.shutdown(Duration::from_secs(10)).await;
    Ok(Soak {
        seconds,
        rss_start_mib: samples.first().map_or(0.0, |s| s.rss_mib),
        rss_end_mib: samples.last().map_or(0.0, |s| s.rss_mib),
        anon_start_mib: samples.first().map_or(0.0, |s| s.anon_mib),
        anon_end_mib: samples.last().map_or(0.0, |s| s.anon_mib),
        errors: counters.errors.load(Ordering::Relaxed),
        samples,
    })
}

/// A steady device: creates, reads `la`, discovers, `IN_FLIGHT` at a time.
async fn device(addr: SocketAddr, d: usize, counters: Arc<Counters>, end: Instant) {
    let id = format!("Csoak{d}");
    let Ok((c, mut ev)) = client(addr, &format!("{id}-load")).await else {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if c.subscribe(format!("/oneM2M/resp/{id}/+/#"), QoS::AtLeastOnce)
        .await
        .is_err()
    {
        return;
    }
    let topic = format!("/oneM2M/req/{id}/id-in/json");
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut n = 0u64;
    let body = |n: u64| -> Value {
        let mut b = match n % 50 {
            0 => json!({"op":2,"to":format!("cse-in/soak{d}"),"fc":{"fu":1,"ty":[4],"lim":20}}),
            k if k % 10 == 0 => json!({"op":2,"to":format!("cse-in/soak{d}/c/la")}),
            _ => {
                json!({"op":1,"to":format!("cse-in/soak{d}/c"),"ty":4,"pc":{"m2m:cin":{"con":format!("{n}")}}})
            }
        };
        b["fr"] = json!(id);
        b["rqi"] = json!(format!("{n}"));
        b["rvi"] = json!("3");
        b
    };
    while Instant::now() < end && !counters.stop.load(Ordering::Relaxed) {
        while sent.len() < IN_FLIGHT {
            sent.insert(format!("{n}"), Instant::now());
            if c.publish(&topic, QoS::AtLeastOnce, false, body(n).to_string())
                .await
                .is_err()
            {
                return;
            }
            n += 1;
        }
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let v: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                if let Some(t0) = v["rqi"].as_str().and_then(|r| sent.remove(r)) {
                    counters
                        .latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(t0.elapsed());
                    counters.ops.fetch_add(1, Ordering::Relaxed);
                    if v["rsc"].as_u64().is_none_or(|r| r >= 4000) {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(Ok(_)) => {}
            _ => {
                // A request unanswered for 10 s, or a lost connection: an error, start over.
                counters
                    .errors
                    .fetch_add(sent.len().max(1), Ordering::Relaxed);
                sent.clear();
            }
        }
    }
    let _ = c.disconnect().await;
}

/// The subscriber of the first device's container: counts its notifications.
async fn subscriber(addr: SocketAddr, counters: Arc<Counters>, end: Instant) {
    let Ok((c, mut ev)) = client(addr, "Csoak0").await else {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _ = c.subscribe("/oneM2M/req/+/Csoak0/#", QoS::AtMostOnce).await;
    while Instant::now() < end && !counters.stop.load(Ordering::Relaxed) {
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
            tokio::time::timeout(Duration::from_secs(1), ev.poll()).await
        {
            if p.payload.windows(7).any(|w| w == b"m2m:sgn") {
                counters.notifications.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Short-lived clients: connect with a fresh ID, subscribe to filters of their own, ask a
/// few things, leave.
async fn churn(addr: SocketAddr, counters: Arc<Counters>, end: Instant) {
    let mut n = 0usize;
    let pause = Duration::from_secs(1) / CHURN_PER_S as u32;
    while Instant::now() < end && !counters.stop.load(Ordering::Relaxed) {
        n += 1;
        let counters = counters.clone();
        tokio::spawn(async move {
            let id = format!("Cchurn{n}");
            let Ok((c, mut ev)) = client(addr, &id).await else {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let _ = c
                .subscribe(format!("/oneM2M/resp/{id}/+/#"), QoS::AtLeastOnce)
                .await;
            for f in 0..CHURN_FILTERS {
                let _ = c
                    .subscribe(format!("soak/churn/{id}/{f}/+"), QoS::AtMostOnce)
                    .await;
            }
            for k in 0..3 {
                let answered = ask(
                    &c,
                    &mut ev,
                    &id,
                    json!({"op":2,"to":"cse-in"}),
                    &format!("{id}-{k}"),
                )
                .await;
                // The appliance answers busy once the soak has ended and it stops.
                if answered != Some(2000) && !counters.stop.load(Ordering::Relaxed) {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = c.disconnect().await;
            // Until the disconnect is out.
            let _ = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
            counters.churned.fetch_add(1, Ordering::Relaxed);
        });
        tokio::time::sleep(pause).await;
    }
}

/// HTTP: a container per run and instances in it, reads; every 10th request on a new
/// connection.
async fn http_load(http: SocketAddr, counters: Arc<Counters>, end: Instant) {
    let kept = reqwest::Client::new();
    let base = format!("http://{http}");
    let call = |c: &reqwest::Client,
                method: reqwest::Method,
                path: &str,
                ty: Option<u8>,
                body: Value,
                n: usize| {
        let mut b = c
            .request(method, format!("{base}{path}"))
            .header("X-M2M-Origin", "Csoakhttp")
            .header("X-M2M-RI", format!("h{n}"))
            .header("X-M2M-RVI", "3");
        if let Some(ty) = ty {
            b = b.header("Content-Type", format!("application/json;ty={ty}"));
        }
        if !body.is_null() {
            b = b.body(body.to_string());
        }
        b.send()
    };
    let setup = [
        (
            Some(2u8),
            "/cse-in",
            json!({"m2m:ae":{"rn":"soakhttp","api":"Nsoak","rr":false}}),
        ),
        (
            Some(3),
            "/cse-in/soakhttp",
            json!({"m2m:cnt":{"rn":"c","mni":100}}),
        ),
        (
            Some(4),
            "/cse-in/soakhttp/c",
            json!({"m2m:cin":{"con":"first"}}),
        ),
    ];
    for (ty, path, body) in setup {
        if call(&kept, reqwest::Method::POST, path, ty, body, 0)
            .await
            .is_err()
        {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    let pause = Duration::from_secs(1) / HTTP_PER_S as u32;
    let mut n = 0;
    while Instant::now() < end && !counters.stop.load(Ordering::Relaxed) {
        n += 1;
        let fresh;
        let c = if n % 10 == 0 {
            fresh = reqwest::Client::new();
            &fresh
        } else {
            &kept
        };
        let r = if n % 2 == 0 {
            call(
                c,
                reqwest::Method::POST,
                "/cse-in/soakhttp/c",
                Some(4),
                json!({"m2m:cin":{"con":n}}),
                n,
            )
            .await
        } else {
            call(
                c,
                reqwest::Method::GET,
                "/cse-in/soakhttp/c/la",
                None,
                Value::Null,
                n,
            )
            .await
        };
        match r {
            Ok(r) if r.status().is_success() => {
                counters.http.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(pause).await;
    }
}

pub fn table(s: &Soak) -> String {
    let mut out = format!(
        "m2mhub bench --soak: {} s; {DEVICES} devices x {IN_FLIGHT} in flight (create, la, \
         discovery), 1 subscriber, {CHURN_PER_S} short-lived MQTT clients/s with \
         {CHURN_FILTERS} filters each, {HTTP_PER_S} HTTP requests/s\n\n",
        s.seconds
    );
    out.push_str(&format!(
        "{:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>6} {:>7}\n",
        "time s",
        "RSS MiB",
        "anon",
        "file",
        "ops/s",
        "p99 ms",
        "errors",
        "churned",
        "http",
        "notif."
    ));
    for x in &s.samples {
        out.push_str(&format!(
            "{:>7.0} {:>8.1} {:>8.1} {:>8.1} {:>8.0} {:>8.2} {:>7} {:>8} {:>6} {:>7}\n",
            x.at_s,
            x.rss_mib,
            x.anon_mib,
            x.file_mib,
            x.ops_per_s,
            x.p99_ms,
            x.errors,
            x.churned,
            x.http,
            x.notifications
        ));
    }
    let pct = |a: f64, b: f64| (b / a.max(1e-9) - 1.0) * 100.0;
    out.push_str(&format!(
        "\nRSS after the first interval {:.1} MiB, at the end {:.1} MiB ({:+.1}%); of it \
         anonymous memory {:.1} then {:.1} MiB ({:+.1}%); errors in all: {}\n",
        s.rss_start_mib,
        s.rss_end_mib,
        pct(s.rss_start_mib, s.rss_end_mib),
        s.anon_start_mib,
        s.anon_end_mib,
        pct(s.anon_start_mib, s.anon_end_mib),
        s.errors
    ));
    out
}
