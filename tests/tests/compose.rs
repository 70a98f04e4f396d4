//! docker-compose 1.29 (Debian's, with docker-py underneath) drives berth unchanged: a
//! project with two services on user networks (one service on two), a named volume, a published port,
//! `depends_on` a healthy service, environment and a healthcheck, through the verbs
//! people use every day.
#![cfg(feature = "vm")]

use std::time::Duration;

use berth_tests::docker::Docker;
use berth_tests::{wait_for, Berth};

const PROJECT: &str = r#"
version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo served-by-$$GREETING > /www/index.html; echo web up; exec httpd -f -p 8080 -h /www"]
    ports: ["127.0.0.1:18097:8080"]
    environment:
      GREETING: compose
    volumes: ["data:/www"]
    networks: [front, back]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 5s
      retries: 30
  client:
    image: busybox
    command: ["sh", "-c", "while true; do wget -q -O- http://web:8080/; sleep 2; done"]
    depends_on:
      web:
        condition: service_healthy
    networks: [back]
networks:
  front: {}
  back: {}
volumes:
  data: {}
"#;

/// Waits for `check` to hold, failing with `what` and the last value seen.
fn until(what: &str, mut check: impl FnMut() -> (bool, String)) {
    wait_for(what, Duration::from_secs(120), || match check() {
        (true, _) => Ok(()),
        (false, seen) => Err(seen),
    })
}

#[test]
fn docker_compose_runs_a_two_service_project() {
    let b = Berth::new();
    let d = Docker::new(&b);
    let assets = std::env::var("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    d.ok(&["load", "-i", &format!("{assets}/images/busybox.tar")]);
    let dir = tempfile::Builder::new().prefix("proj").tempdir().unwrap();
    let project = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    std::fs::write(dir.path().join("docker-compose.yml"), PROJECT).unwrap();
    let p = dir.path();

    let up = d.compose_ok(p, &["up", "-d"]);
    assert!(up.contains("Creating network"), "{up}");
    // `depends_on: condition: service_healthy` held the client until web was healthy.
    let web = format!("{project}_web_1");
    let health = d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &web]);
    assert_eq!(
        health.trim(),
        "healthy",
        "compose started the client before web was healthy"
    );
    let ps = d.compose_ok(p, &["ps"]);
    assert!(ps.contains(&web) && ps.contains("Up (healthy)"), "{ps}");
    assert!(ps.contains("127.0.0.1:18097->8080/tcp"), "{ps}");
    assert_eq!(
        ps.matches("_client_1").count(),
        1,
        "each container once: {ps}"
    );

    // The published port, the environment and the volume, from the host.
    let curl = || {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "20", "http://127.0.0.1:18097/"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(), "served-by-compose\n");
    // The client reaches web by its service name on the project network.
    until("the client's requests in its logs", || {
        let logs = d.compose_ok(p, &["logs", "--no-color", "client"]);
        (logs.contains("served-by-compose"), logs)
    });
    let logs = d.compose_ok(p, &["logs", "--no-color", "web"]);
    assert!(logs.contains("web up"), "{logs}");
    let exec = d.compose_ok(p, &["exec", "-T", "web", "cat", "/www/index.html"]);
    assert_eq!(exec.trim(), "served-by-compose");
    // web is on both of its networks: an interface and an endpoint on each.
    let links = d.compose_ok(p, &["exec", "-T", "web", "ls", "/sys/class/net"]);
    assert!(
        links.contains("eth0") && links.contains("eth1"),
        "a service on two networks should have two interfaces: {links}"
    );
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}:{{$v.IPAddress}} {{end}}",
        &web,
    ]);
    for n in ["_front:172.", "_back:172."] {
        assert!(nets.contains(n), "web's endpoints lack {n}: {nets}");
    }

    let restarted = d.compose_ok(p, &["restart", "web"]);
    assert!(restarted.contains("Restarting"), "{restarted}");
    until("web to answer again after restart", || {
        let body = curl();
        (body == "served-by-compose\n", body)
    });

    // Scaling adds a second client and leaves web alone: web is up to date.
    let scaled = d.compose_ok(p, &["up", "-d", "--scale", "client=2"]);
    assert!(
        scaled.contains("is up-to-date"),
        "web was recreated: {scaled}"
    );
    let names = d.ok(&["ps", "--format", "{{.Names}}"]);
    for name in [
        format!("{project}_client_1"),
        format!("{project}_client_2"),
        web.clone(),
    ] {
        assert!(names.lines().any(|l| l == name), "{name} missing: {names}");
    }

    let stopped = d.compose_ok(p, &["stop"]);
    assert!(stopped.contains("Stopping"), "{stopped}");
    assert_eq!(
        d.ok(&["ps", "-q"]),
        "",
        "compose stop left containers running"
    );

    let down = d.compose_ok(p, &["down", "-v"]);
    assert!(down.contains("Removing network"), "{down}");
    assert_eq!(d.ok(&["ps", "-aq"]), "", "down left containers");
    let volumes = d.ok(&["volume", "ls", "-q"]);
    assert!(
        !volumes.contains("_data"),
        "down -v left the volume: {volumes}"
    );
    let networks = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !networks.contains("_back"),
        "down left the network: {networks}"
    );
    drop(d);
    b.assert_nothing_left();
}
