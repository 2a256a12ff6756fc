//! The command line: check-config, --version, --help, and start-up errors that say what is
//! wrong.

use std::process::Command;

fn m2mhub() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_m2mhub"));
    for (k, _) in std::env::vars() {
        if k.starts_with("M2MHUB_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[cse]\nid = \"id-gw\"\nkind = \"MN\"\n").unwrap();
    let out = m2mhub()
        .args(["check-config", "--config"])
        .arg(&file)
        .env("M2MHUB_MQTT__MAX_CONNECTIONS", "42")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: toml::Value = toml::from_str(&text).expect("check-config prints TOML");
    assert_eq!(v["cse"]["id"].as_str(), Some("id-gw"));
    assert_eq!(v["cse"]["kind"].as_str(), Some("MN"));
    assert_eq!(
        v["cse"]["name"].as_str(),
        Some("cse-in"),
        "defaults fill the rest"
    );
    assert_eq!(
        v["mqtt"]["max_connections"].as_integer(),
        Some(42),
        "environment wins"
    );
}

#[test]
fn the_shipped_config_toml_is_valid_and_matches_the_defaults() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let with_file = m2mhub()
        .args(["check-config", "--config", shipped])
        .output()
        .unwrap();
    assert!(
        with_file.status.success(),
        "{}",
        String::from_utf8_lossy(&with_file.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let defaults = m2mhub()
        .arg("check-config")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(defaults.status.success());
    assert_eq!(
        String::from_utf8_lossy(&with_file.stdout),
        String::from_utf8_lossy(&defaults.stdout),
        "config.toml documents the built-in defaults"
    );
}

#[test]
fn bad_configuration_is_named_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[mqtt]\nlisten = \"127.0.0.1:1883\"\nmax_conections = 5\n",
    )
    .unwrap();
    for args in [vec!["check-config"], vec![]] {
        let out = m2mhub()
            .args(&args)
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("max_conections"), "{err}");
    }
    let out = m2mhub()
        .arg("check-config")
        .env("M2MHUB_CSE__KIND", "XL")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .to_lowercase()
        .contains("cse.kind"));
    let out = m2mhub()
        .args(["check-config", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn a_port_in_use_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = m2mhub()
        .current_dir(dir.path())
        .env("M2MHUB_MQTT__LISTEN", &addr)
        .env("M2MHUB_HTTP__ENABLED", "false")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for MQTT on {addr}")),
        "{err}"
    );
}

#[test]
fn version_and_help() {
    let out = m2mhub().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("m2mhub {}", env!("CARGO_PKG_VERSION"))
    );
    let out = m2mhub().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("check-config") && help.contains("--config"),
        "{help}"
    );
}

#[test]
fn the_packaged_config_is_the_default_with_data_under_var_lib() {
    let root = env!("CARGO_MANIFEST_DIR");
    let default = std::fs::read_to_string(format!("{root}/config.toml")).unwrap();
    let packaged = std::fs::read_to_string(format!("{root}/packaging/config.toml")).unwrap();
    assert_eq!(
        packaged,
        default.replace(
            "path = \"./data/m2mhub.db\"",
            "path = \"/var/lib/m2mhub/m2mhub.db\""
        ),
        "packaging/config.toml drifted from config.toml"
    );
    let out = m2mhub()
        .args([
            "check-config",
            "--config",
            &format!("{root}/packaging/config.toml"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("/var/lib/m2mhub/m2mhub.db"));
}
