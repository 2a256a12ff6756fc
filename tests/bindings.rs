//! One scenario through the MQTT client and the HTTP client with identical assertions; what
//! one binding wrote, the other reads; the CLI against both.

mod common;
use common::*;
use m2mhub::client::{Client, ClientError, Options};
use m2mhub::onem2m::{ResourceType, ResponsePrimitive, Rsc};
use serde_json::{json, Map, Value};

fn attr<'a>(rsp: &'a ResponsePrimitive, root: &str, name: &str) -> &'a Value {
    &rsp.pc.as_ref().expect("pc")[root][name]
}

/// The same life cycle, whatever the transport; returns the AE-ID it registered.
async fn scenario(client: &Client, name: &str) -> String {
    // Registration without an AE-ID: the CSE assigns one.
    let ae = client
        .create(
            "cse-in",
            ResourceType::Ae,
            json!({"m2m:ae":{"rn":name,"api":"Nscenario","rr":false,"srv":["3"]}}),
        )
        .await
        .unwrap();
    assert_eq!(ae.rsc, Rsc::CREATED, "{ae:?}");
    let aei = attr(&ae, "m2m:ae", "aei").as_str().unwrap().to_string();
    assert!(aei.starts_with('C'));
    client.set_originator(&aei);

    let base = format!("cse-in/{name}");
    let cnt = client
        .create(
            &base,
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"data","mni":10,"lbl":["kind:data"]}}),
        )
        .await
        .unwrap();
    assert_eq!(cnt.rsc, Rsc::CREATED);
    for i in 0..3 {
        let cin = client
            .create(
                &format!("{base}/data"),
                ResourceType::ContentInstance,
                json!({"m2m:cin":{"con":format!("v{i}")}}),
            )
            .await
            .unwrap();
        assert_eq!(cin.rsc, Rsc::CREATED);
        assert_eq!(attr(&cin, "m2m:cin", "st"), &json!(i + 1));
    }
    let la = client.retrieve(&format!("{base}/data/la")).await.unwrap();
    assert_eq!(la.rsc, Rsc::OK);
    assert_eq!(attr(&la, "m2m:cin", "con"), "v2");
    // SP-relative addressing works over both.
    let sp = client
        .retrieve(&format!("/id-in/{base}/data"))
        .await
        .unwrap();
    assert_eq!(attr(&sp, "m2m:cnt", "cni"), &json!(3));

    let up = client
        .update(&format!("{base}/data"), json!({"m2m:cnt":{"mni":2}}))
        .await
        .unwrap();
    assert_eq!(up.rsc, Rsc::UPDATED);
    assert_eq!(attr(&up, "m2m:cnt", "cni"), &json!(2));

    // Discovery: instances, then containers by label, then by resource ID.
    let mut fc = Map::new();
    fc.insert("ty".into(), json!([4]));
    let found = client.discover(&base, fc).await.unwrap();
    assert_eq!(found.rsc, Rsc::OK, "{found:?}");
    let uris = found.pc.as_ref().unwrap()["m2m:uril"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(uris.len(), 2);
    assert!(uris
        .iter()
        .all(|u| u.as_str().unwrap().starts_with(&format!("{base}/data/"))));
    let mut fc = Map::new();
    fc.insert("lbl".into(), json!(["kind:data"]));
    let found = client.discover("cse-in", fc).await.unwrap();
    assert_eq!(
        found.pc.as_ref().unwrap()["m2m:uril"],
        json!([format!("{base}/data")])
    );

    // Errors read alike.
    let missing = client.retrieve(&format!("{base}/nothing")).await.unwrap();
    assert_eq!(missing.rsc, Rsc::NOT_FOUND);
    assert!(missing.dbg().unwrap().contains("no resource"));
    let dup = client
        .create(
            &base,
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"data"}}),
        )
        .await
        .unwrap();
    assert_eq!(dup.rsc, Rsc::CONFLICT);
    let cin_update = client
        .update(&format!("{base}/data/la"), json!({"m2m:cin":{"con":"x"}}))
        .await
        .unwrap();
    assert_eq!(cin_update.rsc, Rsc::OPERATION_NOT_ALLOWED);
    let wrong_child = client
        .create(
            &base,
            ResourceType::ContentInstance,
            json!({"m2m:cin":{"con":"x"}}),
        )
        .await
        .unwrap();
    assert_eq!(wrong_child.rsc, Rsc::INVALID_CHILD_RESOURCE_TYPE);
    let bad = client
        .create(
            &base,
            ResourceType::Container,
            json!({"m2m:cnt":{"colour":"red"}}),
        )
        .await
        .unwrap();
    assert_eq!(bad.rsc, Rsc::BAD_REQUEST);

    let del = client.delete(&format!("{base}/data/ol")).await.unwrap();
    assert_eq!(del.rsc, Rsc::DELETED);
    let cnt = client.retrieve(&format!("{base}/data")).await.unwrap();
    assert_eq!(attr(&cnt, "m2m:cnt", "cni"), &json!(1));
    aei
}

#[tokio::test]
async fn the_same_scenario_over_mqtt_and_http() {
    let hub = Hub::start();
    let mqtt = Client::connect(
        &format!("mqtt://{}#id-in", hub.mqtt),
        "",
        Options::default(),
    )
    .await
    .unwrap();
    let http = Client::connect(
        &format!("http://{}", hub.http.unwrap()),
        "",
        Options::default(),
    )
    .await
    .unwrap();
    let over_mqtt = scenario(&mqtt, "via-mqtt").await;
    let over_http = scenario(&http, "via-http").await;

    // What MQTT wrote, HTTP reads, and the reverse: the same resources, byte for byte.
    let http_as_mqtt_ae = Client::connect(
        &format!("http://{}", hub.http.unwrap()),
        &over_mqtt,
        Options::default(),
    )
    .await
    .unwrap();
    let a = mqtt.retrieve("cse-in/via-mqtt/data/la").await.unwrap();
    let b = http_as_mqtt_ae
        .retrieve("cse-in/via-mqtt/data/la")
        .await
        .unwrap();
    assert_eq!(a.pc, b.pc);
    let mqtt_as_http_ae = Client::connect(
        &format!("mqtt://{}#id-in", hub.mqtt),
        &over_http,
        Options::default(),
    )
    .await
    .unwrap();
    let c = http.retrieve("cse-in/via-http/data").await.unwrap();
    let d = mqtt_as_http_ae
        .retrieve("cse-in/via-http/data")
        .await
        .unwrap();
    assert_eq!(c.pc, d.pc);
    // Each AE still cannot read the other's data over either binding.
    assert_eq!(
        mqtt.retrieve("cse-in/via-http/data").await.unwrap().rsc,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
    assert_eq!(
        http.retrieve("cse-in/via-mqtt/data").await.unwrap().rsc,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE
    );
}

#[tokio::test]
async fn mqtt_without_a_fragment_takes_the_cse_from_the_target() {
    let hub = Hub::start();
    let client = Client::connect(
        &format!("mqtt://{}", hub.mqtt),
        "CAdmin",
        Options::default(),
    )
    .await
    .unwrap();
    let rsp = client.retrieve("/id-in/cse-in").await.unwrap();
    assert_eq!(rsp.rsc, Rsc::OK);
    let err = client.retrieve("cse-in").await.unwrap_err().to_string();
    assert!(err.contains("#id-in"), "{err}");
}

#[tokio::test]
async fn client_errors_are_clear() {
    let hub = Hub::start();
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = Client::connect(&format!("mqtt://{closed}#id-in"), "C", Options::default())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("cannot reach"), "{e}");
    let http = Client::connect(&format!("http://{closed}"), "C", Options::default())
        .await
        .unwrap();
    let e = http.retrieve("cse-in").await.unwrap_err();
    assert!(e.to_string().contains("cannot reach"), "{e}");
    let e = Client::connect("coap://x", "C", Options::default())
        .await
        .err()
        .expect("coap is no binding");
    assert!(
        matches!(e, ClientError::Endpoint(..)) && e.to_string().contains("scheme 'coap'"),
        "{e}"
    );
    // A TLS endpoint never falls back to a plain connection: the hub's listeners here are
    // plain, so a fallback would succeed.
    let mqtts = format!("mqtts://{}#id-in", hub.mqtt);
    let quick = Options {
        timeout: std::time::Duration::from_secs(2),
        ..Options::default()
    };
    let e = Client::connect(&mqtts, "C", quick)
        .await
        .err()
        .unwrap_or_else(|| panic!("{mqtts} connected"));
    assert!(matches!(e, ClientError::Connect(..)), "{mqtts}: {e}");
    let https = format!("https://{}", hub.http.expect("http on"));
    let c = Client::connect(&https, "CAdmin", Options::default())
        .await
        .unwrap();
    let e = c.retrieve("cse-in").await.unwrap_err();
    assert!(
        matches!(e, ClientError::Connect(..) | ClientError::Transport(..)),
        "{https}: {e}"
    );
    // A CSE that never answers on MQTT: the request times out.
    let opts = Options {
        timeout: std::time::Duration::from_millis(300),
        ..Options::default()
    };
    let quiet = Client::connect(&format!("mqtt://{}#id-nobody", hub.mqtt), "CAdmin", opts)
        .await
        .unwrap();
    let e = quiet.retrieve("cse-in").await.unwrap_err();
    assert!(e.to_string().contains("no response"), "{e}");
}

/// Starts the binary with `env` and returns its ready line (then stops it).
fn ready_line(env: &[(&str, &str)]) -> String {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_m2mhub"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("M2MHUB_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env("M2MHUB_MQTT__LISTEN", "127.0.0.1:0")
        .env("M2MHUB_HTTP__LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let line = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("m2mhub ready"))
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[test]
fn either_binding_can_be_switched_off() {
    let no_http = ready_line(&[("M2MHUB_HTTP__ENABLED", "false")]);
    assert!(
        no_http.contains("http=off") && no_http.contains("mqtt=127.0.0.1:"),
        "{no_http}"
    );
    let no_mqtt = ready_line(&[("M2MHUB_MQTT__ENABLED", "false")]);
    assert!(
        no_mqtt.contains("mqtt=off") && no_mqtt.contains("http=127.0.0.1:"),
        "{no_mqtt}"
    );
}
