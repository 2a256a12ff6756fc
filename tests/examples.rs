//! The example AEs (`examples/sensor.rs`, `examples/monitor.rs`) against the appliance, over
//! MQTT and over HTTP: the monitor discovers what the sensor shares, subscribes, and prints
//! readings. `cargo test` builds the examples before it runs the tests.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_m2mhub"));
    let path = bin.parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test`",
        path.display()
    );
    path
}

/// Kills the child it holds (by its PID) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(name: &str, args: &[&str]) -> Running {
    Running(
        Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// The monitor's output until it exits (it stops after `--count` readings), within `within`.
fn output_of(mut monitor: Running, within: Duration) -> Vec<String> {
    let stdout = monitor.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + within;
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    // Its output ends as it exits: wait for the exit too, within the same bound.
    let mut status = monitor.0.try_wait().unwrap();
    while status.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        status = monitor.0.try_wait().unwrap();
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "the monitor did not finish well ({status:?}); it printed {lines:?}"
    );
    lines
}

fn sensor_and_monitor(endpoint: &str) {
    let _sensor = run(
        "sensor",
        &[endpoint, "--count", "100", "--interval-ms", "100"],
    );
    let monitor = run("monitor", &[endpoint, "--count", "3"]);
    let lines = output_of(monitor, Duration::from_secs(30));
    assert!(
        lines
            .iter()
            .any(|l| l == "subscribed to cse-in/sensor/temperature"),
        "{lines:?}"
    );
    let readings: Vec<_> = lines.iter().filter(|l| l.starts_with("reading ")).collect();
    assert_eq!(readings.len(), 3, "{lines:?}");
    assert!(
        readings[0].ends_with("from /id-in/cse-in/sensor/temperature/")
            || readings[0].contains("from /id-in/cse-in/sensor/temperature/"),
        "{lines:?}"
    );
}

#[test]
fn the_sensor_and_the_monitor_over_mqtt() {
    let hub = Hub::start();
    sensor_and_monitor(&format!("mqtt://{}#id-in", hub.mqtt));
}

#[test]
fn the_sensor_and_the_monitor_over_http() {
    let hub = Hub::start();
    sensor_and_monitor(&format!("http://{}", hub.http.unwrap()));
}
