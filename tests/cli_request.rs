//! `m2mhub request`, the curl of oneM2M, against both bindings.

mod common;
use common::*;
use serde_json::Value;
use std::process::{Command, Output};

fn request(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_m2mhub"))
        .arg("request")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn printed(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn the_cli_speaks_both_bindings() {
    let hub = Hub::start();
    let mqtt = format!("mqtt://{}#id-in", hub.mqtt);
    let http = format!("http://{}", hub.http.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let content_file = dir.path().join("cin.json");
    std::fs::write(&content_file, r#"{"m2m:cin":{"con":"from a file"}}"#).unwrap();

    // Register over MQTT with an ID assigned, then use it over HTTP.
    let out = request(&[
        "--endpoint",
        &mqtt,
        "--from",
        "",
        "create",
        "cse-in",
        "--ty",
        "ae",
        "--content",
        r#"{"m2m:ae":{"rn":"cli","api":"Ncli","rr":false}}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = printed(&out);
    assert_eq!(v["rsc"], 2001);
    let aei = v["pc"]["m2m:ae"]["aei"].as_str().unwrap().to_string();

    for (endpoint, rn) in [(&http, "over-http"), (&mqtt, "over-mqtt")] {
        let out = request(&[
            "-e",
            endpoint,
            "-f",
            &aei,
            "create",
            "cse-in/cli",
            "--ty",
            "3",
            "-c",
            &format!(r#"{{"m2m:cnt":{{"rn":"{rn}"}}}}"#),
        ]);
        assert!(out.status.success());
        let content = format!("@{}", content_file.display());
        let out = request(&[
            "-e",
            endpoint,
            "-f",
            &aei,
            "create",
            &format!("cse-in/cli/{rn}"),
            "--ty",
            "cin",
            "-c",
            &content,
        ]);
        assert_eq!(printed(&out)["rsc"], 2001);
    }
    // Read each binding's writes over the other.
    for (endpoint, rn) in [(&mqtt, "over-http"), (&http, "over-mqtt")] {
        let out = request(&[
            "-e",
            endpoint,
            "-f",
            &aei,
            "retrieve",
            &format!("cse-in/cli/{rn}/la"),
        ]);
        assert!(out.status.success());
        assert_eq!(printed(&out)["pc"]["m2m:cin"]["con"], "from a file");
        let out = request(&[
            "-e",
            endpoint,
            "-f",
            &aei,
            "discover",
            "cse-in/cli",
            "--ty",
            "cin",
        ]);
        assert_eq!(printed(&out)["pc"]["m2m:uril"].as_array().unwrap().len(), 2);
    }
    // An error rsc: printed, and exit status 1.
    for endpoint in [&mqtt, &http] {
        let out = request(&["-e", endpoint, "-f", &aei, "retrieve", "cse-in/cli/nothing"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(printed(&out)["rsc"], 4004);
    }
    // DELETE over each binding removes what the other one wrote: gone for both.
    for (endpoint, other, rn) in [(&mqtt, &http, "over-http"), (&http, &mqtt, "over-mqtt")] {
        let target = format!("cse-in/cli/{rn}");
        let out = request(&["-e", endpoint, "-f", &aei, "delete", &target]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(printed(&out)["rsc"], 2002);
        let out = request(&["-e", other, "-f", &aei, "retrieve", &target]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(printed(&out)["rsc"], 4004, "{target} is gone");
        let out = request(&["-e", endpoint, "-f", &aei, "delete", &target]);
        assert_eq!(out.status.code(), Some(1), "deleting it again is an error");
        assert_eq!(printed(&out)["rsc"], 4004);
    }
}

#[test]
fn usage_and_transport_failures_have_their_own_exit_codes() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = request(&[
        "-e",
        &format!("http://{closed}"),
        "-f",
        "C",
        "retrieve",
        "cse-in",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
    let out = request(&[
        "-e",
        "http://127.0.0.1:1",
        "create",
        "cse-in",
        "--ty",
        "cnt",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--content"));
    let out = request(&[
        "-e",
        "http://127.0.0.1:1",
        "create",
        "cse-in",
        "--ty",
        "container",
        "-c",
        "{}",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = request(&["-e", "gopher://x", "retrieve", "cse-in"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scheme"));
}
