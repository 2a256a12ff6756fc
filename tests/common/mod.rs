//! Test harness: starts the real `m2mhub` binary on an ephemeral loopback port with a
//! temporary database, and speaks to it with rumqttc exactly as a device would.
#![allow(dead_code)]

pub mod certs;
pub mod power;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc as tmpsc;

/// How long any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Hub {
    child: Child,
    pub mqtt: SocketAddr,
    /// The MQTT 5 listener, when M2MHUB_MQTT__LISTEN_V5 was given.
    pub mqtt_v5: Option<SocketAddr>,
    /// The HTTP listener (on by default in tests).
    pub http: Option<SocketAddr>,
    /// MQTT over TLS and HTTPS, when their `tls_listen` was given.
    pub mqtts: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// Everything the process printed, for failure messages.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Reads the process's stderr into `log` until it closes.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Hub {
    /// A fresh appliance in a new temporary directory.
    pub fn start() -> Hub {
        Hub::start_with(&[])
    }

    /// A fresh appliance with extra `M2MHUB_*` settings.
    pub fn start_with(env: &[(&str, &str)]) -> Hub {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut hub = Hub::start_in(&dir, env);
        hub._tmp = Some(tmp);
        hub
    }

    /// The appliance's command line as [`Hub::start_in`] runs it, stderr piped.
    pub fn command(dir: &Path, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_m2mhub"));
        // Only what the test says reaches the appliance: no inherited M2MHUB_* or RUST_LOG,
        // and no ./config.toml (the working directory is the temporary one).
        for (k, _) in std::env::vars() {
            if k.starts_with("M2MHUB_") {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(dir)
            .env_remove("RUST_LOG")
            .env("M2MHUB_MQTT__LISTEN", "127.0.0.1:0")
            .env("M2MHUB_HTTP__LISTEN", "127.0.0.1:0")
            .env("M2MHUB_STORAGE__PATH", dir.join("data/m2mhub.db"))
            .env("M2MHUB_LOG__LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // An empty value removes a default setting.
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        cmd
    }

    /// Runs the appliance in `dir` expecting it to refuse to start: waits (at most 30 s) for
    /// it to exit and returns its status and what it printed on stderr.
    pub fn refused_start(dir: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let mut child = Hub::command(dir, env).spawn().expect("spawn m2mhub");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("m2mhub started where it should have refused to");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        let _ = child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err);
        (status, err)
    }

    /// An appliance whose working directory (and so database) is `dir`; `env` adds settings.
    pub fn start_in(dir: &Path, env: &[(&str, &str)]) -> Hub {
        let mut cmd = Hub::command(dir, env);
        let mut child = cmd.spawn().expect("spawn m2mhub");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let log2 = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("m2mhub ready") {
                    let _ = ready_tx.send(line.clone());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let line = match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "m2mhub did not become ready:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        // "off" or "external:..." leave no local broker address.
        let addr_of = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse::<SocketAddr>().ok())
        };
        let mqtt = addr_of("mqtt=").unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let http = addr_of("http=");
        let mqtt_v5 = addr_of("mqtt_v5=");
        let mqtts = addr_of("mqtts=");
        let https = addr_of("https=");
        Hub {
            child,
            mqtt,
            mqtt_v5,
            http,
            mqtts,
            https,
            dir: dir.to_path_buf(),
            _tmp: None,
            log,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status without blocking the test's runtime, so that its
    /// devices keep reading what the appliance sends while it stops.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        self.stop_within(WAIT).await
    }

    /// [`Hub::stop`], waiting at most `within` for the process to end.
    pub async fn stop_within(&mut self, within: Duration) -> std::process::ExitStatus {
        self.signal_term();
        self.wait_exit(within).await
    }

    /// Sends SIGTERM and returns at once.
    pub fn signal_term(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits (at most `within`) for the process to end after a signal.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(reader) = self.reader.take() {
                    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
                }
                return status;
            }
            assert!(Instant::now() < deadline, "m2mhub did not stop in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Moves the temporary directory out so that a restarted hub can reuse it.
    pub fn take_dir(&mut self) -> tempfile::TempDir {
        self._tmp.take().expect("hub owns its directory")
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MQTT client as a device runs it. Nothing it receives is dropped unseen: what one wait
/// does not ask for stays for the next ([`Device::expect`]), so a test can also tell that
/// something did *not* arrive ([`Device::received`]).
pub struct Device {
    pub client: AsyncClient,
    pub id: String,
    rx: tmpsc::UnboundedReceiver<rumqttc::Publish>,
    /// Received and not yet taken by a wait, oldest first.
    backlog: std::collections::VecDeque<rumqttc::Publish>,
    /// PUBACKs from the broker: each means the broker took one of our QoS 1 publishes.
    pubacks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The return codes of each SUBACK, in order.
    subacks: tmpsc::UnboundedReceiver<Vec<rumqttc::SubscribeReasonCode>>,
    next_rqi: u64,
}

impl Device {
    pub async fn connect(addr: SocketAddr, client_id: &str) -> Device {
        Self::connect_with(addr, client_id, true).await
    }

    pub async fn connect_with(addr: SocketAddr, client_id: &str, clean: bool) -> Device {
        let mut opts = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        opts.set_clean_session(clean);
        Device::connect_opts(opts)
            .await
            .unwrap_or_else(|e| panic!("{client_id}: {e}"))
    }

    /// A device that logs in as `user` (its client ID is the user name too).
    pub async fn connect_as(addr: SocketAddr, user: &str, password: &str) -> Device {
        Device::try_connect_as(addr, user, password)
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"))
    }

    /// As [`connect_as`](Self::connect_as), or why the broker refused.
    pub async fn try_connect_as(
        addr: SocketAddr,
        user: &str,
        password: &str,
    ) -> Result<Device, rumqttc::ConnectionError> {
        let mut opts = MqttOptions::new(user, addr.ip().to_string(), addr.port());
        opts.set_credentials(user, password);
        Device::connect_opts(opts).await
    }

    /// Connects with `opts` (keep-alive, packet size and TCP_NODELAY are set here).
    pub async fn connect_opts(mut opts: MqttOptions) -> Result<Device, rumqttc::ConnectionError> {
        let client_id = opts.client_id();
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let mut net = eventloop.network_options();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);
        let (tx, rx) = tmpsc::unbounded_channel();
        let (sub_tx, subacks) = tmpsc::unbounded_channel();
        let (conn_tx, conn_rx) = tokio::sync::oneshot::channel();
        let pubacks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(drive(eventloop, tx, sub_tx, conn_tx, pubacks.clone()));
        tokio::time::timeout(WAIT, conn_rx)
            .await
            .expect("CONNACK (or a refusal) in time")
            .expect("event loop alive")?;
        Ok(Device {
            client,
            id: client_id,
            rx,
            backlog: Default::default(),
            pubacks,
            subacks,
            next_rqi: 0,
        })
    }

    /// Subscribes and returns the broker's answer for the filter (0x80 is a refusal).
    pub async fn subscribe_code(&mut self, filter: &str) -> rumqttc::SubscribeReasonCode {
        while self.subacks.try_recv().is_ok() {}
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let codes = tokio::time::timeout(WAIT, self.subacks.recv())
            .await
            .expect("SUBACK in time")
            .expect("connection alive");
        codes[0]
    }

    /// PUBACKs received so far.
    pub fn pubacks(&self) -> usize {
        self.pubacks.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the broker has acknowledged `n` of our QoS 1 publishes in all.
    pub async fn wait_pubacks(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.pubacks.load(std::sync::atomic::Ordering::SeqCst) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: the broker acknowledged {} of {n} publishes",
                self.id,
                self.pubacks.load(std::sync::atomic::Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Everything received so far and not yet taken by a wait, without waiting; it stays.
    pub fn received(&mut self) -> &std::collections::VecDeque<rumqttc::Publish> {
        while let Ok(p) = self.rx.try_recv() {
            self.backlog.push_back(p);
        }
        &self.backlog
    }

    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        // The SUBACK is not surfaced; a round trip through the broker proves the subscription
        // is in place: publish to a private topic we subscribe to and wait for it.
        let probe = format!("m2mhub-test/probe/{}/{}", self.id, self.next_rqi);
        self.next_rqi += 1;
        self.client
            .subscribe(&probe, QoS::AtLeastOnce)
            .await
            .expect("subscribe probe");
        self.client
            .publish(&probe, QoS::AtLeastOnce, false, "p")
            .await
            .expect("probe");
        self.expect(|p| p.topic == probe).await;
    }

    /// Everything received and not yet taken, and all that arrives until the broker closes
    /// the connection.
    pub async fn until_closed(&mut self) -> Vec<rumqttc::Publish> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut out: Vec<_> = self.backlog.drain(..).collect();
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => out.push(p),
                Ok(None) => return out,
                Err(_) => panic!("{}: the connection was not closed", self.id),
            }
        }
    }

    /// Disconnects cleanly and waits until the connection is gone.
    pub async fn disconnect(&mut self) {
        self.client.disconnect().await.expect("disconnect");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => self.backlog.push_back(p),
                Ok(None) => return,
                Err(_) => panic!("{}: still connected after DISCONNECT", self.id),
            }
        }
    }

    /// Subscribes to this device's own response topics (as originator `orig`).
    pub async fn listen_responses(&mut self, orig: &str) {
        self.subscribe(&format!("/oneM2M/resp/{orig}/+/#")).await;
        self.subscribe(&format!("/oneM2M/reg_resp/{orig}/+/#"))
            .await;
    }

    pub async fn publish(&self, topic: &str, body: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body.into())
            .await
            .expect("publish");
    }

    /// Takes the oldest publish received that satisfies `pred`, waiting for one if none has
    /// come yet. Others stay for later waits.
    pub async fn expect(&mut self, pred: impl Fn(&rumqttc::Publish) -> bool) -> rumqttc::Publish {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i).expect("found");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) if pred(&p) => return p,
                Ok(Some(p)) => self.backlog.push_back(p),
                Ok(None) => panic!("{}: connection closed while waiting", self.id),
                Err(_) => panic!(
                    "{}: nothing arrived in time; received meanwhile: {:?}",
                    self.id,
                    self.backlog.iter().map(|p| &p.topic).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Everything received and not yet taken, and whatever arrives within `d`.
    pub async fn drain_for(&mut self, d: Duration) -> Vec<rumqttc::Publish> {
        let deadline = tokio::time::Instant::now() + d;
        let mut out: Vec<_> = self.backlog.drain(..).collect();
        while let Ok(Some(p)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            out.push(p);
        }
        out
    }

    pub fn rqi(&mut self) -> String {
        self.next_rqi += 1;
        format!("{}-{}", self.id, self.next_rqi)
    }

    /// Publishes `body` on `topic` and returns (response topic, response body) for its rqi.
    pub async fn send(&mut self, topic: &str, body: Value) -> (String, Value) {
        let rqi = body["rqi"].as_str().expect("request has rqi").to_string();
        self.publish(topic, body.to_string()).await;
        let p = self
            .expect(|p| {
                (p.topic.starts_with("/oneM2M/resp/") || p.topic.starts_with("/oneM2M/reg_resp/"))
                    && serde_json::from_slice::<Value>(&p.payload)
                        .is_ok_and(|v| v["rqi"] == rqi.as_str())
            })
            .await;
        (
            p.topic.clone(),
            serde_json::from_slice(&p.payload).expect("JSON response"),
        )
    }

    /// A request from originator `fr` to `cse` on the `req` topic; returns the response body.
    pub async fn request(&mut self, fr: &str, mut body: Value) -> Value {
        let rqi = self.rqi();
        body["rqi"] = json!(rqi);
        body["fr"] = json!(fr);
        if body.get("rvi").is_none() {
            body["rvi"] = json!("3");
        }
        self.send(&format!("/oneM2M/req/{fr}/id-in/json"), body)
            .await
            .1
    }
}

async fn drive(
    mut eventloop: EventLoop,
    tx: tmpsc::UnboundedSender<rumqttc::Publish>,
    subacks: tmpsc::UnboundedSender<Vec<rumqttc::SubscribeReasonCode>>,
    conn_tx: tokio::sync::oneshot::Sender<Result<(), rumqttc::ConnectionError>>,
    pubacks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut conn_tx = Some(conn_tx);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                pubacks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let _ = subacks.send(ack.return_codes);
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some(c) = conn_tx.take() {
                    let _ = c.send(Ok(()));
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if let Some(c) = conn_tx.take() {
                    let _ = c.send(Err(e));
                }
                return;
            }
        }
    }
}

/// Registers an AE over `reg_req` with credential `cred` asking for AE-ID `fr`; returns the
/// response.
pub async fn register(dev: &mut Device, fr: &str, rn: &str) -> Value {
    let rqi = dev.rqi();
    let body = json!({"op":1,"to":"cse-in","fr":fr,"rqi":rqi,"rvi":"3","ty":2,
                      "pc":{"m2m:ae":{"rn":rn,"api":"Ntest","rr":false,"srv":["3"]}}});
    let id = dev.id.clone();
    dev.send(&format!("/oneM2M/reg_req/{id}/id-in/json"), body)
        .await
        .1
}

pub fn create(to: &str, ty: u8, pc: Value) -> Value {
    json!({"op":1,"to":to,"ty":ty,"pc":pc})
}

pub fn retrieve(to: &str) -> Value {
    json!({"op":2,"to":to})
}

pub fn update(to: &str, pc: Value) -> Value {
    json!({"op":3,"to":to,"pc":pc})
}

pub fn delete(to: &str) -> Value {
    json!({"op":4,"to":to})
}

/// `rsc` of a response, for assertions.
pub fn rsc(v: &Value) -> u64 {
    v["rsc"].as_u64().unwrap_or_else(|| panic!("no rsc in {v}"))
}

pub fn dbg(v: &Value) -> String {
    v["pc"]["m2m:dbg"].as_str().unwrap_or_default().to_string()
}

/// Adds `user` with `password` to the password file `file` (created if missing), as an
/// operator does: `m2mhub passwd`, the password on standard input.
pub fn passwd(file: &Path, user: &str, password: &str) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_m2mhub"))
        .args(["passwd", file.to_str().expect("UTF-8 path"), user])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("m2mhub passwd");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("password");
    let out = child.wait_with_output().expect("m2mhub passwd ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An AE registered as `aei` over MQTT through the client library, not reachable (`rr`
/// false).
pub async fn registered_ae(hub: &Hub, aei: &str) -> m2mhub::client::Client {
    ae_with(hub, aei, None).await.0
}

/// An AE registered as `aei` over MQTT through the client library, whose notifications come
/// to the returned receiver (its `poa`).
pub async fn listening_ae(
    hub: &Hub,
    aei: &str,
) -> (m2mhub::client::Client, m2mhub::client::Notifications) {
    let (c, notes) = ae_with(hub, aei, Some(())).await;
    (c, notes.expect("a receiver was asked for"))
}

async fn ae_with(
    hub: &Hub,
    aei: &str,
    listen: Option<()>,
) -> (
    m2mhub::client::Client,
    Option<m2mhub::client::Notifications>,
) {
    use m2mhub::client::{Client, Options};
    use m2mhub::onem2m::{ResourceType, Rsc};
    let c = Client::connect(
        &format!("mqtt://{}#id-in", hub.mqtt),
        aei,
        Options::default(),
    )
    .await
    .unwrap();
    let (notes, ae) = match listen {
        Some(()) => {
            let (notes, poa) = c.notifications(None).await.unwrap();
            (
                Some(notes),
                json!({"rn": aei, "api": "Ntest", "rr": true, "poa": [poa]}),
            )
        }
        None => (
            None,
            json!({"rn": aei, "api": "Ntest", "rr": false, "srv": ["3"]}),
        ),
    };
    let r = c
        .create("cse-in", ResourceType::Ae, json!({ "m2m:ae": ae }))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    (c, notes)
}

/// The next notification's `m2m:sgn`, answered 2000; it must come within [`WAIT`].
pub async fn next_sgn(notes: &mut m2mhub::client::Notifications) -> Value {
    let n = tokio::time::timeout(WAIT, notes.next())
        .await
        .expect("notification in time")
        .expect("stream open");
    let sgn = n.request.pc.clone().unwrap()["m2m:sgn"].clone();
    n.respond(m2mhub::onem2m::Rsc::OK);
    sgn
}

/// Fails if a notification comes within `d`.
pub async fn nothing_within(notes: &mut m2mhub::client::Notifications, d: Duration) {
    if let Ok(Some(n)) = tokio::time::timeout(d, notes.next()).await {
        panic!("unexpected notification: {:?}", n.request.pc);
    }
}
