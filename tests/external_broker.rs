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
    scenario_with(&format!("mqtt://{broker}"), &[], Options::default()).await
}

/// The CSE on the broker at `url` (with `env` for its connection), and a device on the same
/// broker with `device` options.
async fn scenario_with(url: &str, env: &[(&str, &str)], device: Options) {
    let mut settings = vec![
        ("M2MHUB_MQTT__MODE", "external"),
        ("M2MHUB_MQTT__BROKER", url),
        ("M2MHUB_CSE__ID", "id-ext"),
        ("M2MHUB_CSE__NAME", "cse-ext"),
    ];
    settings.extend_from_slice(env);
    let ext = Hub::start_with(&settings);
    let dev = Client::connect(&format!("{url}#id-ext"), "Cext", device)
        .await
        .unwrap();
    let (mut notes, poa) = dev.notifications(None).await.unwrap();
    assert_eq!(poa, url);
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
/// Mosquitto on a free port with `extra` configuration; stopped when dropped.
struct Mosquitto {
    child: std::process::Child,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Mosquitto with `config` (a listener on `port` is its first line), or `None` where it
/// is not installed outside CI.
fn mosquitto(dir: &std::path::Path, config: impl Fn(u16) -> String) -> Option<Mosquitto> {
    let Ok(path) = which("mosquitto") else {
        let why = "mosquitto is not installed: this test needs it (apt-get install mosquitto)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED: {why}");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, config(port)).unwrap();
    let log = dir.join("mosquitto.log");
    let child = std::process::Command::new(path)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start mosquitto");
    let m = Mosquitto { child, port };
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "mosquitto did not listen: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(m)
}

/// Mosquitto with a password file and TLS only: the CSE logs in as `cse` and verifies the
/// broker against the site CA, the device likewise as `Cext`.
#[tokio::test]
async fn the_cse_serves_devices_on_a_mosquitto_with_passwords_and_tls() {
    use common::certs::Pki;
    use m2mhub::client::TlsOptions;
    use m2mhub::config::Secret;
    let pki = Pki::new("site CA");
    let pw = pki.dir.path().join("passwords");
    passwd(&pw, "cse", "cse-secret");
    passwd(&pw, "Cext", "dev-secret");
    let (ca, cert, key) = (&pki.ca_file, &pki.cert_file, &pki.key_file);
    // Mosquitto started as root runs as its own user: let it read the files.
    use std::os::unix::fs::PermissionsExt;
    let readable = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(pki.dir.path(), readable.clone()).unwrap();
    for f in [&pw, ca, cert, key] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let Some(broker) = mosquitto(pki.dir.path(), |port| {
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
             cafile {}\ncertfile {}\nkeyfile {}\n",
            pw.display(),
            ca.display(),
            cert.display(),
            key.display()
        )
    }) else {
        return;
    };
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let device = Options {
        tls: TlsOptions {
            ca_file: Some(pki.ca_file.clone()),
            ..TlsOptions::default()
        },
        username: Some("Cext".into()),
        password: Some(Secret::new("dev-secret")),
        ..Options::default()
    };
    scenario_with(
        &url,
        &[
            ("M2MHUB_MQTT__BROKER_USERNAME", "cse"),
            ("M2MHUB_MQTT__BROKER_PASSWORD", "cse-secret"),
            (
                "M2MHUB_MQTT__BROKER_CA_CERTS",
                pki.ca_file.to_str().unwrap(),
            ),
        ],
        device,
    )
    .await;
    drop(broker);
}

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
