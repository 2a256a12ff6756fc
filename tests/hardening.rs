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

/// A subscription with target `nu` (and `su`) under `cse-in/<ae>/c`; returns the response.
async fn subscribe(dev: &mut Device, ae: &str, nu: &str, su: Option<&str>) -> serde_json::Value {
    let mut sub = json!({"nu":[nu]});
    if let Some(su) = su {
        sub["su"] = json!(su);
    }
    dev.request(
        &format!("C{ae}"),
        create(&format!("cse-in/{ae}/c"), 23, json!({ "m2m:sub": sub })),
    )
    .await
}

/// Services a port scan would tell apart, on loopback: each takes connections its own way.
async fn listen_as(kind: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
            match kind {
                "silent" => held.push(s),
                "ssh" => {
                    let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
                }
                _ => {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                        .await;
                }
            }
        }
    });
    format!("http://{addr}/x")
}

/// The CSE called any URL an AE set (`nu`, `su`, its own `poa`), and its 5204 texts told a
/// closed port, a silent one, another protocol and a web server apart: a port scanner inside
/// the network. Now targets pass the outbound policy, and every failure reads the same.
#[tokio::test]
async fn clients_cannot_make_the_cse_call_anywhere_or_learn_what_listens() {
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let mut dev = Device::connect(hub.mqtt, "Cssrf").await;
    dev.listen_responses("Cssrf").await;
    assert_eq!(rsc(&register(&mut dev, "Cssrf", "ssrf").await), 2001);
    let r = dev
        .request(
            "Cssrf",
            create("cse-in/ssrf", 3, json!({"m2m:cnt":{"rn":"c"}})),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");

    // Cloud metadata, link-local, multicast: refused before any call, as the policy.
    for nu in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:8080/",
        "http://[::ffff:169.254.169.254]/",
        "mqtt://224.0.0.1:1883",
    ] {
        let r = subscribe(&mut dev, "ssrf", nu, None).await;
        assert_eq!(rsc(&r), 5204, "{nu}: {r}");
        assert!(dbg(&r).contains("not an allowed target"), "{nu}: {r}");
    }
    let r = subscribe(&mut dev, "ssrf", "Cssrf", Some("http://169.254.169.254/x")).await;
    assert_eq!(rsc(&r), 5204, "su is a target too: {r}");

    // The AE's own poa: notifications to the AE would go there.
    for poa in ["http://169.254.169.254/", "mqtt://[ff02::1]:1883"] {
        let r = dev
            .request(
                "Cssrf",
                update("cse-in/ssrf", json!({"m2m:ae":{"poa":[poa]}})),
            )
            .await;
        assert_eq!(rsc(&r), 4000, "{poa}: {r}");
        assert!(dbg(&r).contains("not an allowed target"), "{r}");
    }
    let mut other = Device::connect(hub.mqtt, "Cssrf2").await;
    other.listen_responses("Cssrf2").await;
    let rqi = other.rqi();
    let (_, r) = other
        .send(
            "/oneM2M/reg_req/Cssrf2/id-in/json",
            json!({"op":1,"to":"cse-in","fr":"Cssrf2","rqi":rqi,"rvi":"3","ty":2,
                   "pc":{"m2m:ae":{"rn":"ssrf2","api":"N","rr":true,"poa":["http://169.254.169.254/"]}}}),
        )
        .await;
    assert_eq!(rsc(&r), 4000, "registration with a refused poa: {r}");
    // What an edge box's apps use stays allowed: loopback and private addresses.
    let r = dev
        .request(
            "Cssrf",
            update(
                "cse-in/ssrf",
                json!({"m2m:ae":{"poa":["http://127.0.0.1:9/","http://192.168.1.20/"]}}),
            ),
        )
        .await;
    assert_eq!(rsc(&r), 2004, "{r}");

    // Allowed addresses that do not confirm: one text whatever listens there.
    let closed = format!(
        "http://{}/x",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    );
    let mut texts = Vec::new();
    for nu in [
        closed,
        listen_as("silent").await,
        listen_as("ssh").await,
        listen_as("web").await,
    ] {
        let r = subscribe(&mut dev, "ssrf", &nu, None).await;
        assert_eq!(rsc(&r), 5204, "{nu}: {r}");
        texts.push(dbg(&r).replace(&nu, "URL"));
    }
    assert!(
        texts.iter().all(|t| *t == texts[0]),
        "the texts tell the services apart: {texts:#?}"
    );
    // A refused su fails the subscription the same way (it used to be stored unchecked).
    let r = subscribe(&mut dev, "ssrf", "Cssrf", Some(&listen_as("web").await)).await;
    assert_eq!(rsc(&r), 5204, "{r}");
    assert_eq!(
        dbg(&r).split(':').next_back(),
        texts[0].split(':').next_back()
    );
}

/// An operator narrows the policy: then even loopback targets are refused.
#[tokio::test]
async fn the_outbound_policy_is_the_operators() {
    let hub = Hub::start_with(&[
        ("M2MHUB_SECURITY__ANONYMOUS", "everyone"),
        ("M2MHUB_SECURITY__OUTBOUND_ALLOW", "[\"10.0.0.0/8\"]"),
    ]);
    let mut dev = Device::connect(hub.mqtt, "Cnarrow").await;
    dev.listen_responses("Cnarrow").await;
    assert_eq!(rsc(&register(&mut dev, "Cnarrow", "narrow").await), 2001);
    let r = dev
        .request(
            "Cnarrow",
            create("cse-in/narrow", 3, json!({"m2m:cnt":{"rn":"c"}})),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");
    let r = subscribe(&mut dev, "narrow", &listen_as("web").await, None).await;
    assert_eq!(rsc(&r), 5204, "{r}");
    assert!(dbg(&r).contains("not an allowed target"), "{r}");
    // Its own broker stays reachable: an AE on it is notified as before.
    let r = dev
        .request(
            "Cnarrow",
            update(
                "cse-in/narrow",
                json!({"m2m:ae":{"poa":[format!("mqtt://{}", hub.mqtt)]}}),
            ),
        )
        .await;
    assert_eq!(rsc(&r), 2004, "{r}");
}

/// Two instances on one database both ran and both served; now the second refuses and names
/// the first.
#[tokio::test]
async fn a_second_instance_on_the_same_database_refuses_and_names_the_first() {
    let first = Hub::start();
    let (status, err) = Hub::refused_start(&first.dir, &[]);
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("in use by another m2mhub") && err.contains(&format!("PID {}", first.pid())),
        "{err}"
    );
    // The first one still serves.
    let mut dev = Device::connect(first.mqtt, "Cfirst").await;
    dev.listen_responses("Cfirst").await;
    assert_eq!(rsc(&register(&mut dev, "Cfirst", "first").await), 2001);
    // `check-db` respects the lock too.
    let out = Hub::command(&first.dir, &[])
        .arg("check-db")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
}

/// A damaged database file started with no check, and new writes went into it. Now start-up
/// refuses it, says why, and leaves it as it was.
#[tokio::test]
async fn a_damaged_database_is_refused_and_left_untouched() {
    let mut hub = Hub::start();
    let mut dev = Device::connect(hub.mqtt, "Cdamage").await;
    dev.listen_responses("Cdamage").await;
    assert_eq!(rsc(&register(&mut dev, "Cdamage", "damage").await), 2001);
    for i in 0..200 {
        let r = dev
            .request(
                "Cdamage",
                create(
                    "cse-in/damage",
                    3,
                    json!({"m2m:cnt":{"rn":format!("c{i}"),"lbl":["x".repeat(200)]}}),
                ),
            )
            .await;
        assert_eq!(rsc(&r), 2001, "{r}");
    }
    assert!(hub.stop().await.success());
    let dir = hub.take_dir();
    let db = dir.path().join("data/m2mhub.db");

    // A sound file passes the full check, on demand.
    let out = Hub::command(dir.path(), &[])
        .arg("check-db")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Overwrite pages in the middle of the file, as a failing disk would.
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 16 * 4096, "{} bytes", bytes.len());
    for b in &mut bytes[8 * 4096..12 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    let (status, err) = Hub::refused_start(dir.path(), &[]);
    assert!(!status.success(), "{err}");
    assert!(err.contains("integrity check"), "{err}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "the damaged file was written to"
    );
    let out = Hub::command(dir.path(), &[])
        .arg("check-db")
        .output()
        .unwrap();
    assert!(!out.status.success());

    // A truncated file too.
    std::fs::write(&db, &bytes[..bytes.len() / 2]).unwrap();
    let (status, err) = Hub::refused_start(dir.path(), &[]);
    assert!(!status.success(), "{err}");
    assert!(err.contains("integrity check"), "{err}");
}

/// Reads from `s` until the peer closes or `within` passes; returns what came and whether it
/// closed.
async fn read_until_closed(s: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
        }
    }
}

/// Slowloris: headers trickled a byte at a time, a kept-alive connection left idle, a body
/// that never finishes. Each held a connection forever; now each ends after its timeout.
#[tokio::test]
async fn slow_and_idle_http_clients_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let hub = Hub::start_with(&[
        ("M2MHUB_HTTP__HEADER_TIMEOUT_S", "2"),
        ("M2MHUB_HTTP__BODY_TIMEOUT_S", "2"),
    ]);
    let http = hub.http.unwrap();

    // Headers, one byte every 300 ms: cut off after about 2 s, long before they end.
    let mut slow = tokio::net::TcpStream::connect(http).await.unwrap();
    let trickle = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for b in b"GET /cse-in HTTP/1.1\r\nHost: x\r\nX-M2M-Origin: CAdmin\r\nX-M2M-RI: 1\r\nX-M2M-RVI: 3\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        None
    });
    let cut = tokio::time::timeout(Duration::from_secs(15), trickle)
        .await
        .expect("bounded")
        .unwrap();
    let cut = cut.expect("the server took the whole trickled request");
    assert!(cut < Duration::from_secs(8), "cut off after {cut:?}");

    // A kept-alive connection after one answered request: closed once idle for 2 s.
    let mut idle = tokio::net::TcpStream::connect(http).await.unwrap();
    idle.write_all(b"GET /cse-in HTTP/1.1\r\nHost: x\r\nX-M2M-Origin: CAdmin\r\nX-M2M-RI: 1\r\nX-M2M-RVI: 3\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(8)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle kept-alive connection stayed open");

    // A body that stops halfway: 4000 after the body timeout, and the connection closes.
    let mut body = tokio::net::TcpStream::connect(http).await.unwrap();
    body.write_all(b"POST /cse-in HTTP/1.1\r\nHost: x\r\nX-M2M-Origin: CAdmin\r\nX-M2M-RI: 2\r\nX-M2M-RVI: 3\r\nContent-Type: application/json;ty=3\r\nContent-Length: 100\r\n\r\n{\"m2m:cnt\":")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut body, Duration::from_secs(8)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-m2m-rsc: 4000"),
        "{answer}"
    );
    assert!(answer.contains("body_timeout_s"), "{answer}");
    assert!(closed);
}

/// 1,136 idle HTTP connections used up the file descriptors, and new MQTT and HTTP clients
/// were refused. HTTP now has its own share: past it, HTTP clients get 503 at once, and MQTT
/// devices still connect.
#[tokio::test]
async fn idle_http_connections_cannot_take_what_mqtt_devices_need() {
    use tokio::io::AsyncWriteExt;
    let hub = Hub::start_with(&[
        ("M2MHUB_HTTP__MAX_CONNECTIONS", "16"),
        ("M2MHUB_HTTP__HEADER_TIMEOUT_S", "60"),
        ("M2MHUB_SECURITY__ANONYMOUS", "everyone"),
    ]);
    let http = hub.http.unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(tokio::net::TcpStream::connect(http).await.unwrap());
    }
    // Let the server take all sixteen before the next one knocks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused = 0;
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
        let _ = s
            .write_all(b"GET /cse-in HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(closed, "a connection past the cap was kept: {answer}");
        if answer.starts_with("HTTP/1.1 503") || answer.is_empty() {
            refused += 1;
        }
    }
    assert_eq!(refused, 200);
    assert!(
        hub.logs().contains("max_connections"),
        "the refusal is logged"
    );
    // MQTT devices connect and are served meanwhile.
    for i in 0..20 {
        let id = format!("Cfd{i}");
        let mut dev = Device::connect(hub.mqtt, &id).await;
        dev.listen_responses(&id).await;
        assert_eq!(rsc(&register(&mut dev, &id, &format!("fd{i}")).await), 2001);
    }
    // When held connections go, HTTP serves again.
    held.clear();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = reqwest::Client::new()
        .get(format!("http://{http}/cse-in"))
        .header("X-M2M-Origin", "CAdmin")
        .header("X-M2M-RI", "after")
        .header("X-M2M-RVI", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// HTTP took 2 MB bodies while MQTT stopped at 256 KiB: one limit, `cse.max_request_size`,
/// now holds for both.
#[tokio::test]
async fn one_request_size_limit_for_both_bindings() {
    let hub = Hub::start_with(&[
        ("M2MHUB_CSE__MAX_REQUEST_SIZE", "4096"),
        ("M2MHUB_SECURITY__ANONYMOUS", "everyone"),
    ]);
    let http = hub.http.unwrap();
    let post = |n: usize| {
        let body = format!("{{\"m2m:cnt\":{{\"lbl\":[\"{}\"]}}}}", "x".repeat(n));
        reqwest::Client::new()
            .post(format!("http://{http}/cse-in"))
            .header("X-M2M-Origin", "CAdmin")
            .header("X-M2M-RI", "big")
            .header("X-M2M-RVI", "3")
            .header("Content-Type", "application/json;ty=3")
            .body(body)
            .send()
    };
    let r = post(3000).await.unwrap();
    assert_eq!(r.status(), 201);
    let r = post(5000).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-m2m-rsc"], "4000");
    let text = r.text().await.unwrap();
    assert!(text.contains("max_request_size"), "{text}");

    // MQTT: the same size passes, a larger one ends that client's connection only.
    let mut dev = Device::connect(hub.mqtt, "Csize").await;
    dev.listen_responses("Csize").await;
    assert_eq!(rsc(&register(&mut dev, "Csize", "size").await), 2001);
    let r = dev
        .request(
            "Csize",
            create(
                "cse-in/size",
                3,
                json!({"m2m:cnt":{"lbl":["x".repeat(3000)]}}),
            ),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");
    let mut bystander = Device::connect(hub.mqtt, "Cbystander").await;
    bystander.listen_responses("Cbystander").await;
    dev.publish(
        "/oneM2M/req/Csize/id-in/json",
        json!({"op":1,"to":"cse-in/size","fr":"Csize","rqi":"big","rvi":"3","ty":3,
               "pc":{"m2m:cnt":{"lbl":["x".repeat(5000)]}}})
        .to_string(),
    )
    .await;
    dev.until_closed().await;
    assert_eq!(
        rsc(&register(&mut bystander, "Cbystander", "bystander").await),
        2001
    );
}

/// MQTT 3.1.1 packets written by hand: rumqttc refuses to send the invalid ones.
mod raw {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn packet(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        let mut len = body.len();
        loop {
            let mut b = (len % 128) as u8;
            len /= 128;
            if len > 0 {
                b |= 0x80;
            }
            out.push(b);
            if len == 0 {
                break;
            }
        }
        out.extend_from_slice(body);
        out
    }

    fn string(s: &[u8]) -> Vec<u8> {
        let mut out = (s.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(s);
        out
    }

    /// Connects with a clean session and a keep alive of 60 s; returns the stream after a
    /// successful CONNACK.
    pub async fn connect(addr: std::net::SocketAddr, client_id: &str) -> TcpStream {
        let (s, code) = try_connect(addr, client_id, 60).await;
        assert_eq!(code, 0, "CONNACK accepted");
        s
    }

    /// Sends CONNECT; returns the stream and the CONNACK's return code.
    pub async fn try_connect(
        addr: std::net::SocketAddr,
        client_id: &str,
        keep_alive: u16,
    ) -> (TcpStream, u8) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut body = string(b"MQTT");
        body.extend_from_slice(&[4, 0x02]);
        body.extend_from_slice(&keep_alive.to_be_bytes());
        body.extend(string(client_id.as_bytes()));
        s.write_all(&packet(0x10, &body)).await.unwrap();
        let mut ack = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut ack))
            .await
            .expect("CONNACK in time")
            .expect("a CONNACK, not a bare close");
        assert_eq!(&ack[..2], &[0x20, 2], "a CONNACK: {ack:?}");
        (s, ack[3])
    }

    pub async fn publish(s: &mut TcpStream, topic: &[u8], payload: &[u8]) {
        let mut body = string(topic);
        body.extend_from_slice(payload);
        let _ = s.write_all(&packet(0x30, &body)).await;
    }

    /// SUBSCRIBE with one filter at QoS 0; returns the SUBACK's return code.
    pub async fn subscribe(s: &mut TcpStream, filter: &[u8]) -> u8 {
        let mut body = vec![0, 1];
        body.extend(string(filter));
        body.push(0);
        s.write_all(&packet(0x82, &body)).await.unwrap();
        let mut ack = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut ack))
            .await
            .expect("SUBACK in time")
            .unwrap();
        assert_eq!(ack[0], 0x90, "a SUBACK: {ack:?}");
        ack[4]
    }

    /// Whether the broker closes the connection within `within` (reading what comes).
    pub async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// The broker took publishes to topic names MQTT forbids (wildcards, NUL, empty) and let them
/// reach `#` subscribers; a topic starting with a multi-byte character reached a `matches`
/// that sliced inside it. Now a forbidden topic ends the publisher's connection (as MQTT
/// says), and the rest is routed.
#[tokio::test]
async fn forbidden_topic_names_and_filters_are_refused() {
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let mut watcher = Device::connect(hub.mqtt, "watcher").await;
    watcher.subscribe("#").await;

    for topic in [&b"a/+/b"[..], b"a/#", b"a\0b", b""] {
        let mut s = raw::connect(hub.mqtt, "bad-publisher").await;
        raw::publish(&mut s, topic, b"x").await;
        assert!(
            raw::closed_within(&mut s, Duration::from_secs(5)).await,
            "a publish to {topic:?} did not end the connection"
        );
    }
    let mut s = raw::connect(hub.mqtt, "good-publisher").await;
    raw::publish(&mut s, "é/ü".as_bytes(), b"fine").await;
    raw::publish(&mut s, b"after/all", b"fine").await;
    let got = watcher.expect(|p| p.topic == "after/all").await;
    assert_eq!(&got.payload[..], b"fine");
    let seen: Vec<String> = watcher.received().iter().map(|p| p.topic.clone()).collect();
    assert!(seen.contains(&"é/ü".to_string()), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|t| t.is_empty() || t.contains(['+', '#', '\0'])),
        "a forbidden topic was routed: {seen:?}"
    );

    // Malformed filters get 0x80, and the connection stays.
    for filter in [&b"a/#/b"[..], b"a+", b"#/a", b"a\0b", b""] {
        assert_eq!(raw::subscribe(&mut s, filter).await, 0x80, "{filter:?}");
    }
    assert_eq!(raw::subscribe(&mut s, b"ok/+/#").await, 0);
}

/// 4 x 10,000 distinct filters cost 246 MB that was never freed, and every publish to a new
/// topic then cost the router a scan of them all. Now a client holds at most
/// max_subscriptions_per_client filters, the broker max_filters, and a filter goes with its
/// last subscriber: the room one client leaves, the next one gets.
#[tokio::test]
async fn subscription_filters_are_capped_and_freed_with_their_last_subscriber() {
    let hub = Hub::start_with(&[
        ("M2MHUB_SECURITY__ANONYMOUS", "everyone"),
        ("M2MHUB_MQTT__MAX_SUBSCRIPTIONS_PER_CLIENT", "50"),
        ("M2MHUB_MQTT__MAX_FILTERS", "120"),
    ]);
    // One client: 50 filters, then 0x80.
    let mut a = raw::connect(hub.mqtt, "filters-a").await;
    for i in 0..50 {
        assert_eq!(
            raw::subscribe(&mut a, format!("a/{i}").as_bytes()).await,
            0,
            "a/{i}"
        );
    }
    assert_eq!(raw::subscribe(&mut a, b"a/50").await, 0x80);
    // The same filter again is no new filter.
    assert_eq!(raw::subscribe(&mut a, b"a/7").await, 0);

    // All clients: 120 filters (the CSE holds a few of them), then 0x80 for new ones.
    let mut b = raw::connect(hub.mqtt, "filters-b").await;
    let mut taken = 0;
    for i in 0..50 {
        if raw::subscribe(&mut b, format!("b/{i}").as_bytes()).await == 0 {
            taken += 1;
        }
    }
    let mut c = raw::connect(hub.mqtt, "filters-c").await;
    let mut c_taken = 0;
    for i in 0..50 {
        if raw::subscribe(&mut c, format!("c/{i}").as_bytes()).await == 0 {
            c_taken += 1;
        }
    }
    assert_eq!(taken, 50);
    assert!(c_taken < 50, "the broker-wide cap held no filter back");
    // A filter others hold is no new filter.
    assert_eq!(raw::subscribe(&mut c, b"a/1").await, 0);

    // a leaves: its 50 filters (bar a/1, which c holds too) go, and c gets the room.
    drop(a);
    let mut freed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if raw::subscribe(&mut c, format!("c/{c_taken}").as_bytes()).await == 0 {
            freed = true;
            break;
        }
    }
    assert!(freed, "the filters of a client that left were kept");
    // c holds a/1 as well: 49 c/ filters fill its own 50.
    for i in c_taken + 1..49 {
        assert_eq!(
            raw::subscribe(&mut c, format!("c/{i}").as_bytes()).await,
            0,
            "c/{i}"
        );
    }
    assert_eq!(raw::subscribe(&mut c, b"c/49").await, 0x80);

    // Routing still works on what is left: the CSE answers, a subscriber gets its topic.
    let mut dev = Device::connect(hub.mqtt, "Cafter").await;
    dev.listen_responses("Cafter").await;
    assert_eq!(rsc(&register(&mut dev, "Cafter", "after").await), 2001);
}

/// A persistent session keeps its filters while it is away: what is published meanwhile
/// waits for it, though no connection subscribes.
#[tokio::test]
async fn a_persistent_session_keeps_its_filters_while_away() {
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let mut away = Device::connect_with(hub.mqtt, "away", false).await;
    away.subscribe("kept/topic").await;
    away.disconnect().await;
    let sender = Device::connect(hub.mqtt, "sender").await;
    sender.publish("kept/topic", "while away").await;
    sender.wait_pubacks(1).await;
    let mut back = Device::connect_with(hub.mqtt, "away", false).await;
    let got = back.expect(|p| p.topic == "kept/topic").await;
    assert_eq!(&got.payload[..], b"while away");
}

/// The real limit was max_connections + 16, and a refused client got a bare close with no
/// reason and no log line. Now the limit is exact, a refusal is CONNACK 3 "server
/// unavailable", and it is logged.
#[tokio::test]
async fn max_connections_is_exact_and_a_refusal_says_why() {
    let hub = Hub::start_with(&[
        ("M2MHUB_SECURITY__ANONYMOUS", "everyone"),
        ("M2MHUB_MQTT__MAX_CONNECTIONS", "5"),
    ]);
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(raw::connect(hub.mqtt, &format!("slot{i}")).await);
    }
    for i in 0..20 {
        let (_s, code) = raw::try_connect(hub.mqtt, &format!("extra{i}"), 60).await;
        assert_eq!(code, 3, "connection {} of 5 allowed: CONNACK {code}", 6 + i);
    }
    assert!(
        hub.logs().contains("mqtt.max_connections reached"),
        "{}",
        hub.logs()
    );
    // A place that frees up is taken again.
    held.pop();
    let mut back = None;
    for _ in 0..50 {
        let (s, code) = raw::try_connect(hub.mqtt, "later", 60).await;
        if code == 0 {
            back = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "the freed place was not given again");
}

/// CONNECT with keep alive 0 ("off", MQTT-3.1.2-23) was refused. It is accepted now, and such
/// a connection is not timed out.
#[tokio::test]
async fn keep_alive_zero_means_off() {
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let (mut s, code) = raw::try_connect(hub.mqtt, "no-keepalive", 0).await;
    assert_eq!(code, 0);
    assert!(!raw::closed_within(&mut s, Duration::from_secs(3)).await);
    assert_eq!(raw::subscribe(&mut s, b"still/here").await, 0);
}

/// The request budget was counted per topic originator level, which the client chooses: one
/// connection on 4 levels x 256 slow subscription creates filled the global 1,024, and a
/// bystander got 5000 for minutes, told that "this originator" was busy. HTTP had no budget.
/// Now a credential has one share across its originators and both bindings, and a bystander
/// is served meanwhile.
#[tokio::test]
async fn one_credential_cannot_take_the_whole_request_budget() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("passwords");
    passwd(&pw, "Chog", "hog-secret");
    passwd(&pw, "Cbystander", "bystander-secret");
    let hub = Hub::start_with(&[
        ("M2MHUB_SECURITY__PASSWORD_FILE", pw.to_str().unwrap()),
        ("M2MHUB_SECURITY__ANONYMOUS", "nobody"),
    ]);
    // A target that takes connections and never answers: each verification holds 5 s.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nu = format!("http://{}/n", silent.local_addr().unwrap());

    let mut hog = Device::connect_as(hub.mqtt, "Chog", "hog-secret").await;
    hog.listen_responses("Chog").await;
    assert_eq!(rsc(&register(&mut hog, "Chog", "hog").await), 2001);
    // More originators of the same credential: AE-IDs the CSE assigns.
    let mut levels = vec!["Chog".to_string()];
    for i in 0..3 {
        let rqi = hog.rqi();
        let (_, r) = hog
            .send(
                "/oneM2M/reg_req/Chog/id-in/json",
                json!({"op":1,"to":"cse-in","fr":"C","rqi":rqi,"rvi":"3","ty":2,
                       "pc":{"m2m:ae":{"rn":format!("hog{i}"),"api":"Nhog","rr":false}}}),
            )
            .await;
        assert_eq!(rsc(&r), 2001, "{r}");
        let aei = r["pc"]["m2m:ae"]["aei"].as_str().unwrap().to_string();
        hog.listen_responses(&aei).await;
        levels.push(aei);
    }
    // 4 levels x 80 slow requests: 320, past the credential's 256.
    for (l, level) in levels.iter().enumerate() {
        // Each AE subscribes to itself: cse-in/hog, cse-in/hog0, ...
        let to = match l {
            0 => "cse-in/hog".to_string(),
            _ => format!("cse-in/hog{}", l - 1),
        };
        for i in 0..80 {
            hog.publish(
                &format!("/oneM2M/req/{level}/id-in/json"),
                json!({"op":1,"to":to,"fr":level,"rqi":format!("slow{l}-{i}"),"rvi":"3","ty":23,
                       "pc":{"m2m:sub":{"nu":[nu]}}})
                .to_string(),
            )
            .await;
        }
    }
    let mut refused = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while refused < 64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {refused} refused"
        );
        for p in hog.drain_for(Duration::from_millis(50)).await {
            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
            if v["rsc"] == 5000 && dbg(&v).contains("this credential") {
                refused += 1;
            }
        }
    }

    // Meanwhile a bystander is served at once, and the hog's share holds over HTTP too.
    let mut bystander = Device::connect_as(hub.mqtt, "Cbystander", "bystander-secret").await;
    bystander.listen_responses("Cbystander").await;
    assert_eq!(
        rsc(&register(&mut bystander, "Cbystander", "bystander").await),
        2001
    );
    let r = bystander
        .request(
            "Cbystander",
            create("cse-in/bystander", 3, json!({"m2m:cnt":{"rn":"c"}})),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");
    let rsp = reqwest::Client::new()
        .get(format!("http://{}/cse-in/hog", hub.http.unwrap()))
        .basic_auth("Chog", Some("hog-secret"))
        .header("X-M2M-Origin", "Chog")
        .header("X-M2M-RI", "over-http")
        .header("X-M2M-RVI", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.headers()["x-m2m-rsc"], "5000");
    let text = rsp.text().await.unwrap();
    assert!(text.contains("this credential"), "{text}");
    drop(silent);
}

/// A receiver that confirms its subscription and then never answers a notification.
async fn confirm_then_hang() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            let mut got = Vec::new();
            let mut buf = [0u8; 8192];
            // The verification request is the first one: answer it, then hold the rest.
            loop {
                match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
                if String::from_utf8_lossy(&got).contains("vrq") {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nX-M2M-RSC: 2000\r\ncontent-length: 0\r\n\r\n",
                        )
                        .await;
                    break;
                }
            }
            held.push(s);
        }
    });
    format!("http://{addr}/hang")
}

/// Notifications that could not be delivered were dropped with a log line each, or none.
/// Now a full queue drops them with one line a minute that counts them.
#[tokio::test]
async fn dropped_notifications_are_logged_once_a_minute_with_a_count() {
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let mut dev = Device::connect(hub.mqtt, "Cdrop").await;
    dev.listen_responses("Cdrop").await;
    assert_eq!(rsc(&register(&mut dev, "Cdrop", "drop").await), 2001);
    let r = dev
        .request(
            "Cdrop",
            create("cse-in/drop", 3, json!({"m2m:cnt":{"rn":"c"}})),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");
    let nu = confirm_then_hang().await;
    let r = dev
        .request(
            "Cdrop",
            create(
                "cse-in/drop/c",
                23,
                json!({"m2m:sub":{"nu":[nu],"enc":{"net":[3]}}}),
            ),
        )
        .await;
    assert_eq!(rsc(&r), 2001, "{r}");
    // 1,200 instances, 100 at a time: the target's queue holds 1,000 notifications, the rest
    // are dropped.
    for batch in 0..12 {
        for i in 0..100 {
            dev.publish(
                "/oneM2M/req/Cdrop/id-in/json",
                json!({"op":1,"to":"cse-in/drop/c","fr":"Cdrop","rqi":format!("n{batch}-{i}"),"rvi":"3","ty":4,
                       "pc":{"m2m:cin":{"con":"x"}}})
                .to_string(),
            )
            .await;
        }
        let last = format!("n{batch}-99");
        let r = dev
            .expect(|p| {
                serde_json::from_slice::<serde_json::Value>(&p.payload)
                    .is_ok_and(|v| v["rqi"] == last.as_str())
            })
            .await;
        let r: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(rsc(&r), 2001, "{r}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lines = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("notification queue full"))
            .count()
    };
    while lines(&hub.logs()) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line for dropped notifications:\n{}",
            hub.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the rest of the instances be answered: still one line.
    dev.drain_for(Duration::from_millis(500)).await;
    assert_eq!(lines(&hub.logs()), 1, "{}", hub.logs());
}

/// `rcn=4` returned up to 1,000 children with full content: 20 instances of 1.9 MB took RSS
/// from 39 to 220 MB. Discovery with `lim=0` returned one result. Now an answer carries at
/// most 4 MiB of resources and says when it left some out (cnst 2, cnot), and discovery pages
/// with lim/ofst.
#[tokio::test]
async fn large_results_are_partial_and_discovery_pages() {
    let hub = Hub::start_with(&[
        ("M2MHUB_SECURITY__ANONYMOUS", "everyone"),
        ("M2MHUB_CSE__MAX_REQUEST_SIZE", "400000"),
    ]);
    let http = format!("http://{}", hub.http.unwrap());
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, ty: Option<u8>, body: String| {
        let mut b = client
            .request(method, format!("{http}{path}"))
            .header("X-M2M-Origin", "Cbig")
            .header("X-M2M-RI", "r")
            .header("X-M2M-RVI", "3");
        if let Some(ty) = ty {
            b = b.header("Content-Type", format!("application/json;ty={ty}"));
        }
        b.body(body).send()
    };
    let r = call(
        reqwest::Method::POST,
        "/cse-in".into(),
        Some(2),
        json!({"m2m:ae":{"rn":"big","api":"Nbig","rr":false}}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = call(
        reqwest::Method::POST,
        "/cse-in/big".into(),
        Some(3),
        json!({"m2m:cnt":{"rn":"c"}}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let content = "x".repeat(300_000);
    for _ in 0..20 {
        let r = call(
            reqwest::Method::POST,
            "/cse-in/big/c".into(),
            Some(4),
            json!({"m2m:cin":{"con":content}}).to_string(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = call(
        reqwest::Method::GET,
        "/cse-in/big/c?rcn=4".into(),
        None,
        String::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-m2m-cts"], "2", "{:?}", r.headers());
    let given: usize = r.headers()["x-m2m-cto"].to_str().unwrap().parse().unwrap();
    let body: serde_json::Value =
        serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).unwrap();
    let cins = body["m2m:cnt"]["m2m:cin"].as_array().unwrap().len();
    assert_eq!(cins, given);
    assert!(
        (1..20).contains(&cins),
        "{cins} of 20 instances of 300 KB in one answer"
    );

    // Discovery: lim=0 is nothing; pages of 8 with ofst and cnot until the end.
    let uris = |v: &serde_json::Value| v["m2m:uril"].as_array().unwrap().len();
    let r = call(
        reqwest::Method::GET,
        "/cse-in/big?fu=1&ty=4&lim=0".into(),
        None,
        String::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.headers()["x-m2m-cts"], "2");
    assert_eq!(r.headers()["x-m2m-cto"], "0");
    assert_eq!(
        uris(&serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).unwrap()),
        0
    );
    let mut offset = 0;
    let mut seen = 0;
    loop {
        let r = call(
            reqwest::Method::GET,
            format!("/cse-in/big?fu=1&ty=4&lim=8&ofst={offset}"),
            None,
            String::new(),
        )
        .await
        .unwrap();
        let next = r
            .headers()
            .get("x-m2m-cto")
            .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
        seen +=
            uris(&serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).unwrap());
        match next {
            Some(n) => offset = n,
            None => break,
        }
    }
    assert_eq!(seen, 20);

    // Over MQTT the primitive carries cnst and cnot.
    let mut dev = Device::connect(hub.mqtt, "Cbig").await;
    dev.listen_responses("Cbig").await;
    let r = dev
        .request(
            "Cbig",
            json!({"op":2,"to":"cse-in/big","fc":{"fu":1,"ty":[4],"lim":5}}),
        )
        .await;
    assert_eq!(r["cnst"], 2, "{r}");
    assert_eq!(r["cnot"], 5, "{r}");
}

/// nu lists were verified one target at a time, 5 s each for silent ones, with no bound on
/// their length. Now a subscription lists at most 16 targets, verified all at once.
#[tokio::test]
async fn notification_targets_are_bounded_and_verified_together() {
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let mut dev = Device::connect(hub.mqtt, "Cmany").await;
    dev.listen_responses("Cmany").await;
    assert_eq!(rsc(&register(&mut dev, "Cmany", "many").await), 2001);
    let many: Vec<String> = (0..17).map(|i| format!("http://127.0.0.1:9/{i}")).collect();
    let r = dev
        .request(
            "Cmany",
            create("cse-in/many", 23, json!({"m2m:sub":{"nu":many}})),
        )
        .await;
    assert_eq!(rsc(&r), 4000, "{r}");
    assert!(dbg(&r).contains("16"), "{r}");

    let silent: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let nus: Vec<String> = silent
        .iter()
        .map(|l| format!("http://{}/n", l.local_addr().unwrap()))
        .collect();
    let started = std::time::Instant::now();
    let r = dev
        .request(
            "Cmany",
            create("cse-in/many", 23, json!({"m2m:sub":{"nu":nus}})),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(rsc(&r), 5204, "{r}");
    // One peer timeout (5 s), not three in a row.
    assert!(took < Duration::from_secs(9), "took {took:?}");
}

/// The same rqi sent 20 times while the first was in progress created 20 resources. Request
/// identifiers are unique per originator: the repeats are refused while the first runs.
#[tokio::test]
async fn a_request_identifier_in_progress_is_not_done_twice() {
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let mut dev = Device::connect(hub.mqtt, "Crepeat").await;
    dev.listen_responses("Crepeat").await;
    assert_eq!(rsc(&register(&mut dev, "Crepeat", "repeat").await), 2001);
    // The first request is slow: its target never answers the verification.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nu = format!("http://{}/n", silent.local_addr().unwrap());
    for _ in 0..20 {
        dev.publish(
            "/oneM2M/req/Crepeat/id-in/json",
            json!({"op":1,"to":"cse-in/repeat","fr":"Crepeat","rqi":"same","rvi":"3","ty":23,
                   "pc":{"m2m:sub":{"nu":[nu]}}})
            .to_string(),
        )
        .await;
    }
    let mut answers = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while answers.len() < 20 && tokio::time::Instant::now() < deadline {
        for p in dev.drain_for(Duration::from_millis(100)).await {
            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
            if v["rqi"] == "same" {
                answers.push(v);
            }
        }
    }
    let refused = answers
        .iter()
        .filter(|a| a["rsc"] == 4000 && dbg(a).contains("still in progress"))
        .count();
    assert_eq!(refused, 19, "{answers:#?}");
    assert_eq!(answers.len(), 20, "{answers:#?}");
    drop(silent);
}

/// A 100 KB X-M2M-Origin came back whole in `dbg`. Error texts quote at most a prefix of what
/// a client sent, whichever field it was.
#[tokio::test]
async fn error_texts_quote_only_a_prefix_of_oversized_input() {
    let hub = Hub::start_with(&[("M2MHUB_SECURITY__ANONYMOUS", "everyone")]);
    let http = format!("http://{}", hub.http.unwrap());
    let big = "C".repeat(30_000);
    let client = reqwest::Client::new();
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "origin",
            client
                .get(format!("{http}/cse-in"))
                .header("X-M2M-Origin", &big)
                .header("X-M2M-RI", "r1")
                .header("X-M2M-RVI", "3"),
        ),
        (
            "path",
            client
                .get(format!("{http}/cse-in/{big}"))
                .header("X-M2M-Origin", "CAdmin")
                .header("X-M2M-RI", "r2")
                .header("X-M2M-RVI", "3"),
        ),
        (
            "rvi",
            client
                .get(format!("{http}/cse-in"))
                .header("X-M2M-Origin", "CAdmin")
                .header("X-M2M-RI", "r3")
                .header("X-M2M-RVI", &big),
        ),
        (
            "query",
            client
                .get(format!("{http}/cse-in?rcn={big}"))
                .header("X-M2M-Origin", "CAdmin")
                .header("X-M2M-RI", "r4")
                .header("X-M2M-RVI", "3"),
        ),
        (
            "content type",
            client
                .post(format!("{http}/cse-in"))
                .header("X-M2M-Origin", "CAdmin")
                .header("X-M2M-RI", "r5")
                .header("X-M2M-RVI", "3")
                .header("Content-Type", format!("application/json;ty={big}"))
                .body("{}"),
        ),
        (
            "attribute",
            client
                .post(format!("{http}/cse-in"))
                .header("X-M2M-Origin", "CAdmin")
                .header("X-M2M-RI", "r6")
                .header("X-M2M-RVI", "3")
                .header("Content-Type", "application/json;ty=3")
                .body(json!({"m2m:cnt":{big.clone(): 1}}).to_string()),
        ),
        (
            "resource name",
            client
                .post(format!("{http}/cse-in"))
                .header("X-M2M-Origin", "CAdmin")
                .header("X-M2M-RI", "r7")
                .header("X-M2M-RVI", "3")
                .header("Content-Type", "application/json;ty=3")
                .body(json!({"m2m:cnt":{"rn": format!("{big}/x")}}).to_string()),
        ),
    ];
    for (what, request) in cases {
        let r = request.send().await.unwrap();
        let status = r.status();
        let headers: usize = r
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        let body = r.text().await.unwrap();
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{what}: {status} {}",
            &body[..body.len().min(200)]
        );
        assert!(body.len() < 1000, "{what}: {} bytes echoed", body.len());
        assert!(headers < 1000, "{what}: {headers} bytes of headers");
    }
    // Over MQTT too.
    let mut dev = Device::connect(hub.mqtt, "Cecho").await;
    dev.listen_responses("Cecho").await;
    for body in [
        json!({"op":2,"to":format!("cse-in/{big}")}),
        json!({"op":2,"to":"cse-in","rvi":big}),
        json!({"op":1,"to":"cse-in","ty":3,"pc":{"m2m:cnt":{big.clone(): 1}}}),
        json!({"op":2,"to":"cse-in","fc":{"fu":1,"cra":big}}),
    ] {
        let r = dev.request("Cecho", body).await;
        assert!(rsc(&r) >= 4000, "{r}");
        assert!(dbg(&r).len() < 1000, "{} bytes echoed", dbg(&r).len());
    }
}

/// A client that asks for a large answer and never reads it held its HTTP connection (and
/// slot) forever: hyper has no write timeout. A write that makes no progress now ends the
/// connection after http.body_timeout_s.
#[tokio::test]
async fn a_client_that_never_reads_its_answer_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = Hub::start_with(&[
        ("M2MHUB_SECURITY__ANONYMOUS", "everyone"),
        ("M2MHUB_CSE__MAX_REQUEST_SIZE", "400000"),
        ("M2MHUB_HTTP__BODY_TIMEOUT_S", "2"),
    ]);
    let http = hub.http.unwrap();
    let client = reqwest::Client::new();
    let post = |path: &str, ty: u8, body: serde_json::Value| {
        client
            .post(format!("http://{http}{path}"))
            .header("X-M2M-Origin", "Creader")
            .header("X-M2M-RI", "r")
            .header("X-M2M-RVI", "3")
            .header("Content-Type", format!("application/json;ty={ty}"))
            .body(body.to_string())
            .send()
    };
    post(
        "/cse-in",
        2,
        json!({"m2m:ae":{"rn":"reader","api":"Nreader","rr":false}}),
    )
    .await
    .unwrap();
    post("/cse-in/reader", 3, json!({"m2m:cnt":{"rn":"c"}}))
        .await
        .unwrap();
    let content = "x".repeat(300_000);
    for _ in 0..13 {
        let r = post("/cse-in/reader/c", 4, json!({"m2m:cin":{"con":content}}))
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // A socket that takes in little: the answer (about 4 MB) cannot leave the server.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&http.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut s = tokio::net::TcpStream::from_std(socket.into()).unwrap();
    s.write_all(b"GET /cse-in/reader/c?rcn=4 HTTP/1.1\r\nHost: x\r\nX-M2M-Origin: Creader\r\nX-M2M-RI: big\r\nX-M2M-RVI: 3\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Now read what the server managed to send: it gave up before the end.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection is still open after {} bytes", got.len()),
        }
    }
    let head = String::from_utf8_lossy(&got[..got.len().min(2000)]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(usize::MAX);
    assert!(
        got.len() < length,
        "the whole answer of {length} bytes came through: {} bytes",
        got.len()
    );
}
