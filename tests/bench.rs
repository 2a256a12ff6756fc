//! `m2mhub bench` runs a tiny bounded load and prints well-formed output. (Figures are measured
//! by hand and kept in the README; nothing here asserts a speed.)

use std::process::Command;

#[test]
fn bench_prints_a_table_and_json_for_a_tiny_load() {
    let bench = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_m2mhub"))
            .args([
                "bench",
                "--count",
                "40",
                "--clients",
                "2",
                "--inflight",
                "2",
                "--max-seconds",
                "20",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = bench(&[
        "--json",
        "--http",
        "--scale",
        "--idle-connections",
        "20",
        "--la-sizes",
        "5,50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let ratio = v["ratio_create_cin_to_echo"]
        .as_f64()
        .expect("top-level ratio");
    assert!(ratio > 0.0);
    let results = v["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    for want in [
        "echo (broker ceiling)",
        "create contentInstance",
        "retrieve la",
        "retrieve container",
        "create contentInstance (HTTP)",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("discovery over")),
        "{names:?}"
    );
    for r in results {
        assert_eq!(r["errors"], 0, "{r}");
        assert!(r["ops"].as_u64().unwrap() > 0, "{r}");
        let (p50, p99, max) = (
            r["p50_ms"].as_f64().unwrap(),
            r["p99_ms"].as_f64().unwrap(),
            r["max_ms"].as_f64().unwrap(),
        );
        assert!(p50 <= p99 && p99 <= max, "{r}");
    }
    assert_eq!(v["scale"].as_array().unwrap().len(), 4, "{}", v["scale"]);

    // Security on, the scale scenarios included: every client logs in.
    let out = bench(&[
        "--credentials",
        "--scale",
        "--idle-connections",
        "5",
        "--la-sizes",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("workload") && table.contains("ops/s") && table.contains("vs echo"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("create contentInstance") && l.trim_end().ends_with('%')),
        "{table}"
    );
    assert!(
        table.contains("5 idle MQTT connections") && table.contains("retrieve la, 5 instances"),
        "{table}"
    );

    // Containers governed by access control policies: the load is granted, not refused.
    let out = bench(&["--acp", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["errors"], 0, "{r}");
    }
}
