//! `m2mhub bench`: how close the CSE path is to the limit of the broker it embeds, measured in
//! one run on one machine.
//!
//! 1. The echo ceiling: the embedded broker with an in-process responder that answers every
//!    request at once by publishing it back on the response topic (a response of the same size).
//! 2. The same load as real oneM2M work on the full appliance with a fresh database: create
//!    contentInstance (the hot path, durable before it is answered), retrieve `la`, retrieve a
//!    container, and a discovery over the whole tree.
//! 3. With `--scale`: idle MQTT connections and what they cost, and `la` latency against the
//!    number of instances in the container.
//!
//! 4. With `--soak SECONDS` instead: mixed traffic and churning connections for that long
//!    ([`crate::soak`]).
//!
//! Load comes from external MQTT clients (rumqttc, TCP on loopback) with a window of requests in
//! flight each. Everything runs in this one process, so CPU time and memory include the load
//! generator. Every run is bounded by a request count and a time limit.

use clap::Parser;
use m2mhub::app::Appliance;
use m2mhub::config::Config;
use m2mhub::onem2m::topic::Topic;
use m2mhub::onem2m::{time, ResourceType};
use m2mhub::store::Resource;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use rumqttd::Notification;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// MQTT clients generating load.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Requests in flight per client.
    #[arg(long, default_value_t = 4)]
    pub inflight: usize,
    /// Requests per workload (all clients together).
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Time limit per workload, in seconds.
    #[arg(long, default_value_t = 30)]
    pub max_seconds: u64,
    /// Bytes of content per contentInstance (and the echo's request size follows).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// QoS of requests and response subscriptions (0 or 1).
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// Also run create contentInstance over the HTTP binding.
    #[arg(long)]
    pub http: bool,
    /// Also run the scale scenarios (idle connections, `la` against container size).
    #[arg(long)]
    pub scale: bool,
    /// Idle connections for --scale.
    #[arg(long, default_value_t = 10_000)]
    pub idle_connections: usize,
    /// Container sizes for the `la` latency scenario of --scale.
    #[arg(long, default_value = "10,10000,1000000", value_delimiter = ',')]
    pub la_sizes: Vec<usize>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Security on: the appliance takes no anonymous clients, and every load client logs in
    /// with a user name and password from a password file (the echo broker has no gate).
    #[arg(long)]
    pub credentials: bool,
    /// Every load container is governed by an access control policy (`acpi`) that grants
    /// its AE all operations after rules for other AEs, as a shared container is: each
    /// request is decided by policy instead of ownership.
    #[arg(long)]
    pub acp: bool,
    /// Instead of the workloads: run mixed traffic with churning connections for this many
    /// seconds, sampling memory, p99 latency and errors every 30 s (600 for the 10-minute
    /// soak of the README).
    #[arg(long, value_name = "SECONDS")]
    pub soak: Option<u64>,
}

/// The password of every load client under --credentials.
const BENCH_PASSWORD: &str = "bench-secret";

#[derive(Debug, Clone, Serialize, Default)]
pub struct Measurement {
    pub workload: String,
    pub ops: usize,
    pub errors: usize,
    pub seconds: f64,
    pub ops_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU time of the whole process (server and load generator) during the workload.
    pub cpu_s: f64,
    /// Peak resident set size of the process so far, in MiB.
    pub peak_rss_mib: f64,
    /// Throughput relative to the echo ceiling.
    pub ratio_to_echo: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub clients: usize,
    pub inflight: usize,
    pub payload: usize,
    pub qos: u8,
    pub results: Vec<Measurement>,
    pub ratio_create_cin_to_echo: f64,
    pub scale: Vec<ScaleFigure>,
}

#[derive(Debug, Serialize)]
pub struct ScaleFigure {
    pub scenario: String,
    pub value: f64,
    pub unit: String,
}

pub fn run(args: Args) -> anyhow::Result<Report> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run_all(args))
}

/// CPU seconds of this process so far (user + system).
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return 0.0;
        }
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A directory of the bench's own under the system's temporary directory, removed when
/// dropped.
pub(crate) struct TempDir(std::path::PathBuf);

impl TempDir {
    pub(crate) fn new() -> std::io::Result<TempDir> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "m2mhub-bench-{}-{n}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&path)?;
        Ok(TempDir(path))
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A field of /proc/self/status in MiB: VmRSS, VmHWM, RssAnon (the heap and stacks: what a
/// leak grows) or RssFile (pages of mapped files: the database, which SQLite maps).
pub(crate) fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn bench_config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.mqtt.listen = "127.0.0.1:0".parse().expect("loopback address");
    c.http.listen = "127.0.0.1:0".parse().expect("loopback address");
    c.storage.path = dir.join("bench.db");
    c.mqtt.max_connections = 20_000;
    c
}

async fn run_all(args: Args) -> anyhow::Result<Report> {
    let qos = if args.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let limit = Duration::from_secs(args.max_seconds);
    let mut results = Vec::new();

    // 1. The echo ceiling.
    let dir = TempDir::new()?;
    let echo_addr = start_echo(&bench_config(dir.path())).await?;
    let body = echo_body(args.payload);
    let echo = load(
        "echo (broker ceiling)",
        echo_addr,
        "id-echo",
        &args,
        qos,
        limit,
        Arc::new(move |_c, _n| body.clone()),
    )
    .await?;
    let ceiling = echo.ops_per_s;
    results.push(echo);

    // 2. The appliance on a fresh database.
    let dir = TempDir::new()?;
    let mut config = bench_config(dir.path());
    if args.credentials {
        let mut passwords = m2mhub::auth::passwords::Passwords::default();
        for c in 0..args.clients {
            passwords
                .set(&format!("Cb{c}"), BENCH_PASSWORD)
                .map_err(anyhow::Error::msg)?;
        }
        let file = dir.path().join("passwords");
        std::fs::write(&file, passwords.to_text())?;
        config.security.anonymous = m2mhub::config::Anonymous::Nobody;
        config.security.password_file = Some(file);
    }
    let app = Appliance::start(&config).await?;
    let addr = app
        .mqtt_addr()
        .ok_or_else(|| anyhow::anyhow!("MQTT is off"))?;
    setup_aes(addr, args.clients, args.credentials, args.acp).await?;
    let content = "x".repeat(args.payload);
    let cin = move |c: usize, _n: usize| json!({"op":1,"to":format!("cse-in/b{c}/c"),"ty":4,"pc":{"m2m:cin":{"con":content}}});
    let mut create = load(
        "create contentInstance",
        addr,
        "id-in",
        &args,
        qos,
        limit,
        Arc::new(cin),
    )
    .await?;
    create.ratio_to_echo = Some(create.ops_per_s / ceiling);
    let ratio_create = create.ops_per_s / ceiling;
    results.push(create);
    for (name, body) in [
        (
            "retrieve la",
            Arc::new(|c: usize, _n: usize| json!({"op":2,"to":format!("cse-in/b{c}/c/la")}))
                as BodyFn,
        ),
        (
            "retrieve container",
            Arc::new(|c: usize, _n: usize| json!({"op":2,"to":format!("cse-in/b{c}/c")})),
        ),
    ] {
        let mut m = load(name, addr, "id-in", &args, qos, limit, body).await?;
        m.ratio_to_echo = Some(m.ops_per_s / ceiling);
        results.push(m);
    }
    let total = app.cse.store().read(|r| {
        let mut n = 0usize;
        r.walk_subtree("cse-in", &[], |_| {
            n += 1;
            true
        })?;
        Ok::<_, m2mhub::store::StoreError>(n)
    })?;
    let discovery_args = Args {
        count: (args.count / 20).max(args.clients),
        ..args.clone()
    };
    let mut disc = load(
        &format!("discovery over {total} resources"),
        addr,
        "id-in",
        &discovery_args,
        qos,
        limit,
        Arc::new(|_c, _n| json!({"op":2,"to":"cse-in","fc":{"fu":1,"ty":[3]}})),
    )
    .await?;
    disc.ratio_to_echo = Some(disc.ops_per_s / ceiling);
    results.push(disc);
    if args.http {
        let http = app.http.ok_or_else(|| anyhow::anyhow!("HTTP is off"))?;
        let mut m = http_load(http, &args, limit).await?;
        m.ratio_to_echo = Some(m.ops_per_s / ceiling);
        results.push(m);
    }

    let mut scale = Vec::new();
    if args.scale {
        // Under --credentials they log in as the first load client.
        let login = args.credentials.then_some("Cb0");
        scale.extend(idle_connections(addr, args.idle_connections, login).await?);
        for &size in &args.la_sizes {
            scale.push(la_latency(&app, addr, size, login).await?);
        }
    }
    Ok(Report {
        clients: args.clients,
        inflight: args.inflight,
        payload: args.payload,
        qos: args.qos,
        results,
        ratio_create_cin_to_echo: ratio_create,
        scale,
    })
}

type BodyFn = Arc<dyn Fn(usize, usize) -> Value + Send + Sync>;

/// A request of about `size` bytes of content for the echo.
fn echo_body(size: usize) -> Value {
    json!({"op":1,"to":"cse-in/b/c","ty":4,"pc":{"m2m:cin":{"con":"x".repeat(size)}}})
}

/// The embedded broker with a responder that publishes every request straight back on its
/// response topic.
async fn start_echo(config: &Config) -> anyhow::Result<SocketAddr> {
    let broker = m2mhub::binding::mqtt::EmbeddedBroker::start(
        &config.mqtt,
        config.max_request_size(),
        None,
        None,
    )
    .await?;
    let (mut tx, mut rx) = broker.link("bench-echo")?;
    tx.subscribe("/oneM2M/req/+/id-echo/#")?;
    let addr = broker.v4_addr;
    tokio::spawn(async move {
        let _broker = broker;
        while let Ok(n) = rx.next().await {
            match n {
                Some(Notification::Forward(f)) => {
                    let topic = String::from_utf8_lossy(&f.publish.topic).to_string();
                    if let Some(t) = Topic::parse(&topic) {
                        let _ = tx.publish(t.response_topic("json"), f.publish.payload);
                    }
                }
                Some(Notification::Unschedule) => {
                    let _ = rx.wake().await;
                }
                _ => {}
            }
        }
    });
    Ok(addr)
}

async fn mqtt_client(
    addr: SocketAddr,
    id: &str,
    qos: QoS,
    login: bool,
) -> anyhow::Result<(AsyncClient, rumqttc::EventLoop)> {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    if login {
        opts.set_credentials(id, BENCH_PASSWORD);
    }
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut ev) = AsyncClient::new(opts, 10_000);
    let mut net = ev.network_options();
    net.set_tcp_nodelay(true);
    ev.set_network_options(net);
    client
        .subscribe(format!("/oneM2M/resp/{id}/+/#"), qos)
        .await?;
    // Until the SUBACK.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => return Ok((client, ev)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("client {id}: {e}"),
            Err(_) => anyhow::bail!("client {id}: no SUBACK"),
        }
    }
}

/// One AE and one container per load client: `cse-in/b<i>/c`, originator `Cb<i>`; with
/// `acp`, the container names an ACP of the AE's.
async fn setup_aes(addr: SocketAddr, clients: usize, login: bool, acp: bool) -> anyhow::Result<()> {
    for i in 0..clients {
        let id = format!("Cb{i}");
        let opts = m2mhub::client::Options {
            username: login.then(|| id.clone()),
            password: login.then(|| m2mhub::config::Secret::new(BENCH_PASSWORD)),
            ..Default::default()
        };
        let c = m2mhub::client::Client::connect(&format!("mqtt://{addr}#id-in"), &id, opts).await?;
        let ae = c
            .create(
                "cse-in",
                ResourceType::Ae,
                json!({"m2m:ae":{"rn":format!("b{i}"),"api":"Nbench","rr":false}}),
            )
            .await?;
        anyhow::ensure!(!ae.rsc.is_error(), "cannot register a bench AE: {}", ae.rsc);
        let mut cnt = json!({"rn": "c"});
        if acp {
            let viewers: Vec<String> = (0..8).map(|v| format!("Cviewer{v}")).collect();
            let policy = c
                .create(
                    &format!("cse-in/b{i}"),
                    ResourceType::AccessControlPolicy,
                    json!({"m2m:acp":{"rn":"share","pv":{"acr":[
                        {"acor": viewers, "acop": 34},
                        {"acor": ["/id-in/Cgateway/*"], "acop": 2},
                        {"acor": [&id], "acop": 63}
                    ]},"pvs":{"acr":[{"acor":[&id],"acop":63}]}}}),
                )
                .await?;
            anyhow::ensure!(
                !policy.rsc.is_error(),
                "cannot create a bench ACP: {}",
                policy.rsc
            );
            cnt["acpi"] = policy.pc.unwrap_or_default()["m2m:acp"]["ri"].clone();
            cnt["acpi"] = json!([cnt["acpi"]]);
        }
        let cnt = c
            .create(
                &format!("cse-in/b{i}"),
                ResourceType::Container,
                json!({ "m2m:cnt": cnt }),
            )
            .await?;
        anyhow::ensure!(
            !cnt.rsc.is_error(),
            "cannot create a bench container: {}",
            cnt.rsc
        );
    }
    Ok(())
}

/// Runs `count` requests from `clients` MQTT clients with `inflight` each in flight, to
/// `receiver`, and measures them.
async fn load(
    name: &str,
    addr: SocketAddr,
    receiver: &str,
    args: &Args,
    qos: QoS,
    limit: Duration,
    body: BodyFn,
) -> anyhow::Result<Measurement> {
    let per_client = (args.count / args.clients.max(1)).max(1);
    let mut tasks = Vec::new();
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let deadline = started + limit;
    for c in 0..args.clients {
        let (client, mut ev) = mqtt_client(
            addr,
            &format!("Cb{c}"),
            qos,
            args.credentials && receiver != "id-echo",
        )
        .await?;
        let topic = format!("/oneM2M/req/Cb{c}/{receiver}/json");
        let body = body.clone();
        let inflight = args.inflight.max(1);
        tasks.push(tokio::spawn(async move {
            let mut sent_at: HashMap<String, Instant> = HashMap::new();
            let mut latencies = Vec::with_capacity(per_client);
            let mut errors = 0;
            let mut next = 0;
            let send = |n: usize, sent_at: &mut HashMap<String, Instant>| {
                let mut b = body(c, n);
                let rqi = format!("{c}-{n}");
                b["rqi"] = json!(rqi);
                b["fr"] = json!(format!("Cb{c}"));
                b["rvi"] = json!("3");
                sent_at.insert(rqi, Instant::now());
                serde_json::to_vec(&b).unwrap_or_default()
            };
            while next < per_client.min(inflight) {
                let payload = send(next, &mut sent_at);
                client.publish(&topic, qos, false, payload).await.ok()?;
                next += 1;
            }
            while latencies.len() + errors < per_client && Instant::now() < deadline {
                let ev = tokio::time::timeout_at(deadline.into(), ev.poll())
                    .await
                    .ok()?
                    .ok()?;
                let Event::Incoming(Packet::Publish(p)) = ev else {
                    continue;
                };
                let Ok(v) = serde_json::from_slice::<Value>(&p.payload) else {
                    continue;
                };
                let Some(t0) = v["rqi"].as_str().and_then(|r| sent_at.remove(r)) else {
                    continue;
                };
                latencies.push(t0.elapsed());
                if v.get("rsc")
                    .and_then(Value::as_u64)
                    .is_some_and(|r| r >= 4000)
                {
                    errors += 1;
                }
                if next < per_client {
                    let payload = send(next, &mut sent_at);
                    client.publish(&topic, qos, false, payload).await.ok()?;
                    next += 1;
                }
            }
            let _ = client.disconnect().await;
            Some((latencies, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok(Some((l, e))) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(measure(name, all, errors, seconds, cpu_seconds() - cpu0))
}

fn measure(
    name: &str,
    mut lat: Vec<Duration>,
    errors: usize,
    seconds: f64,
    cpu_s: f64,
) -> Measurement {
    lat.sort();
    let pick = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
        lat[i].as_secs_f64() * 1000.0
    };
    Measurement {
        workload: name.to_string(),
        ops: lat.len(),
        errors,
        seconds,
        ops_per_s: lat.len() as f64 / seconds.max(1e-9),
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        max_ms: pick(1.0),
        cpu_s,
        peak_rss_mib: status_mib("VmHWM:"),
        ratio_to_echo: None,
    }
}

/// Create contentInstance over HTTP, for comparison.
async fn http_load(addr: SocketAddr, args: &Args, limit: Duration) -> anyhow::Result<Measurement> {
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let workers = args.clients * args.inflight.max(1);
    let each = (args.count / workers.max(1)).max(1);
    let deadline = Instant::now() + limit;
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let content = "x".repeat(args.payload);
    let mut tasks = Vec::new();
    let login = args.credentials;
    for w in 0..workers {
        let (http, content) = (http.clone(), content.clone());
        let c = w % args.clients;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(each);
            let mut errors = 0;
            for n in 0..each {
                if Instant::now() > deadline {
                    break;
                }
                let t0 = Instant::now();
                let mut req = http.post(format!("http://{addr}/cse-in/b{c}/c"));
                if login {
                    req = req.basic_auth(format!("Cb{c}"), Some(BENCH_PASSWORD));
                }
                let rsp = req
                    .header("X-M2M-Origin", format!("Cb{c}"))
                    .header("X-M2M-RI", format!("h{w}-{n}"))
                    .header("X-M2M-RVI", "3")
                    .header("Content-Type", "application/json;ty=4")
                    .body(json!({"m2m:cin":{"con":content}}).to_string())
                    .send()
                    .await;
                match rsp {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t0.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    Ok(measure(
        "create contentInstance (HTTP)",
        all,
        errors,
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu0,
    ))
}

/// Opens `n` MQTT connections that only CONNECT and then idle, and reports what they cost.
/// With `login`, each logs in as that user (password [`BENCH_PASSWORD`]).
async fn idle_connections(
    addr: SocketAddr,
    n: usize,
    login: Option<&str>,
) -> anyhow::Result<Vec<ScaleFigure>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Both ends of every connection live in this process.
    let n = n.min(m2mhub::app::raise_fd_limit(n * 2 + 1024).saturating_sub(1024) / 2);
    let before = status_mib("VmRSS:");
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let id = format!("idle-{i}");
        // CONNECT, MQTT 3.1.1, clean session (with user name and password flags for a
        // login), keep-alive 600 s.
        let flags = if login.is_some() { 0xC2 } else { 0x02 };
        let mut var = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0x02, 0x58];
        let login = login.map(|user| [user, BENCH_PASSWORD]);
        for field in std::iter::once(id.as_str()).chain(login.into_iter().flatten()) {
            var.extend_from_slice(&(field.len() as u16).to_be_bytes());
            var.extend_from_slice(field.as_bytes());
        }
        let mut pkt = vec![0x10, var.len() as u8];
        pkt.extend(var);
        s.write_all(&pkt).await?;
        let mut ack = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut ack)).await??;
        anyhow::ensure!(
            ack[0] == 0x20 && ack[3] == 0,
            "connection {i} refused: {ack:?}"
        );
        conns.push(s);
    }
    let took = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = status_mib("VmRSS:");
    drop(conns);
    Ok(vec![
        ScaleFigure {
            scenario: format!("{n} idle MQTT connections: extra RSS"),
            value: after - before,
            unit: "MiB".into(),
        },
        ScaleFigure {
            scenario: format!("{n} idle MQTT connections: time to connect all"),
            value: took,
            unit: "s".into(),
        },
    ])
}

/// `la` latency with `size` instances in the container. The container is filled directly
/// through the store (a fixture: a million CREATEs would take minutes), then read over MQTT.
/// With `login`, the reader logs in as that user (password [`BENCH_PASSWORD`]).
async fn la_latency(
    app: &Appliance,
    addr: SocketAddr,
    size: usize,
    login: Option<&str>,
) -> anyhow::Result<ScaleFigure> {
    let rn = format!("size{size}");
    let opts = m2mhub::client::Options {
        username: login.map(str::to_string),
        password: login.map(|_| m2mhub::config::Secret::new(BENCH_PASSWORD)),
        ..Default::default()
    };
    let c = m2mhub::client::Client::connect(&format!("mqtt://{addr}#id-in"), "Cb0", opts).await?;
    let made = c
        .create(
            "cse-in/b0",
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":rn}}),
        )
        .await?;
    let cnt_ri = made
        .pc
        .as_ref()
        .and_then(|p| p["m2m:cnt"]["ri"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut left = size;
    let mut n = 0usize;
    while left > 0 {
        let batch = left.min(50_000);
        let (cnt_ri, rn) = (cnt_ri.clone(), rn.clone());
        let start = n;
        tokio::task::spawn_blocking({
            let store = app.cse.store().clone();
            move || {
                store.write(move |w| {
                    let now = time::now();
                    for i in start..start + batch {
                        let ri = format!("cinfill{size}x{i}");
                        let mut attrs = serde_json::Map::new();
                        for (k, v) in [
                            ("ty", json!(4)),
                            ("ri", json!(ri)),
                            ("rn", json!(ri)),
                            ("pi", json!(cnt_ri)),
                            ("ct", json!(now)),
                            ("lt", json!(now)),
                            ("con", json!(i.to_string())),
                            ("cs", json!(i.to_string().len())),
                            ("st", json!(i + 1)),
                        ] {
                            attrs.insert(k.into(), v);
                        }
                        w.insert(&Resource {
                            ty: ResourceType::ContentInstance,
                            ri: ri.clone(),
                            pi: cnt_ri.clone(),
                            rn: ri.clone(),
                            srn: format!("cse-in/b0/{rn}/{ri}"),
                            owner: "Cb0".into(),
                            attrs,
                        })?;
                    }
                    Ok::<_, m2mhub::store::StoreError>(())
                })
            }
        })
        .await??;
        left -= batch;
        n += batch;
    }
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        let r = c.retrieve(&format!("cse-in/b0/{rn}/la")).await?;
        lat.push(t0.elapsed());
        anyhow::ensure!(r.rsc.code() == 2000, "la answered {}", r.rsc);
    }
    let m = measure("la", lat, 0, 1.0, 0.0);
    Ok(ScaleFigure {
        scenario: format!(
            "retrieve la, {size} instances: p50 (p99 {:.2} ms)",
            m.p99_ms
        ),
        value: m.p50_ms,
        unit: "ms".into(),
    })
}

/// The report as a table.
pub fn table(r: &Report) -> String {
    let mut out = format!(
        "m2mhub bench: {} clients x {} in flight, {} B content, QoS {}\n\n",
        r.clients, r.inflight, r.payload, r.qos
    );
    out.push_str(&format!(
        "{:<40} {:>8} {:>10} {:>8} {:>8} {:>8} {:>7} {:>9} {:>8}\n",
        "workload", "ops", "ops/s", "p50 ms", "p99 ms", "max ms", "cpu s", "peak MiB", "vs echo"
    ));
    for m in &r.results {
        out.push_str(&format!(
            "{:<40} {:>8} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7.2} {:>9.1} {:>8}\n",
            m.workload,
            m.ops,
            m.ops_per_s,
            m.p50_ms,
            m.p99_ms,
            m.max_ms,
            m.cpu_s,
            m.peak_rss_mib,
            m.ratio_to_echo
                .map_or("-".to_string(), |r| format!("{:.0}%", r * 100.0)),
        ));
        if m.errors > 0 {
            out.push_str(&format!(
                "  ({} of them answered with an error)\n",
                m.errors
            ));
        }
    }
    for s in &r.scale {
        out.push_str(&format!(
            "{:<60} {:>10.2} {}\n",
            s.scenario, s.value, s.unit
        ));
    }
    out
}
