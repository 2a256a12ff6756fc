//! Every device connection accepted by the embedded broker has TCP_NODELAY set, so a QoS 1
//! request/response never waits on Nagle's algorithm and delayed ACKs.

mod common;

use m2mhub::app::Appliance;
use m2mhub::config::Config;
use std::net::TcpStream;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// The accepted (server-side) socket in this process whose peer is `client`.
fn accepted_socket_nodelay(client: std::net::SocketAddr) -> Option<bool> {
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: borrowed only for getsockopt/getpeername on a descriptor of this process.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        if sock.peer_addr().ok().and_then(|a| a.as_socket()) == Some(client) {
            return sock.nodelay().ok();
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_device_sockets_have_nodelay() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::certs::Pki::new("test CA");
    let mut config = Config::default();
    config.mqtt.listen = "127.0.0.1:0".parse().unwrap();
    config.mqtt.tls_listen = Some("127.0.0.1:0".parse().unwrap());
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.http.tls_listen = Some("127.0.0.1:0".parse().unwrap());
    config.tls.cert_file = Some(pki.cert_file.clone());
    config.tls.key_file = Some(pki.key_file.clone());
    config.storage.path = dir.path().join("db.sqlite");
    let app = Appliance::start(&config).await.expect("appliance starts");
    let broker = app.broker.as_ref().expect("embedded broker");
    // Every listener: MQTT, MQTT over TLS, HTTP, HTTPS.
    let addrs = [app.mqtt_addr(), broker.tls_addr, app.http, app.https]
        .map(|a| a.expect("every listener is on"));

    let clients: Vec<TcpStream> = addrs
        .iter()
        .map(|a| TcpStream::connect(a).unwrap())
        .collect();
    for c in &clients {
        // Our own client side is left as the OS made it; only the accepted side matters.
        let me = c.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let nodelay = loop {
            if let Some(v) = accepted_socket_nodelay(me) {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "accepted socket for {me} not found"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(nodelay, "the broker's socket for {me} has Nagle on");
    }
}
