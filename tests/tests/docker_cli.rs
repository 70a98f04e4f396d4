//! The stock docker CLI, pointed at a berth machine's socket.
#![cfg(feature = "vm")]

use std::process::Command;

use berth_tests::docker::Docker;
use berth_tests::{ok, Berth};

#[test]
fn the_docker_cli_drives_berth() {
    let b = Berth::new();
    let d = Docker::new(&b);
    let assets = std::env::var("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");

    let version = d.ok(&["version"]);
    assert!(version.contains("Server: berth"), "{version}");
    assert!(version.contains("1.43"), "{version}");

    let loaded = d.ok(&["load", "-i", &format!("{assets}/images/busybox.tar")]);
    assert!(loaded.contains("Loaded image: busybox:latest"), "{loaded}");
    let images = d.ok(&["images"]);
    assert!(
        images.contains("busybox") && images.contains("latest"),
        "{images}"
    );

    let (code, out, err) = d.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo hi; echo oops >&2; exit 3",
    ]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "hi\n");
    assert_eq!(err, "oops\n");

    // --read-only and --tmpfs: the root refuses writes, a tmpfs and a volume take them.
    let script = "if touch /x 2>/dev/null; then echo root-writable; else echo root-read-only; fi; \
                  touch /scratch/y && echo tmpfs-writable; touch /data/z && echo volume-writable; \
                  grep ' /scratch ' /proc/mounts | grep -o 'tmpfs.*size=1024k'";
    let expected = "root-read-only\ntmpfs-writable\nvolume-writable\n";
    // The same arguments for both clients.
    let args = [
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        "-v",
        "rodata:/data",
        "busybox",
        "sh",
        "-c",
        script,
    ];
    let out = d.ok(&args);
    assert!(
        out.starts_with(expected),
        "docker run --read-only --tmpfs: {out}"
    );
    assert!(out.contains("tmpfs"), "the tmpfs has its size: {out}");
    let out = ok(&b, &args).stdout_text();
    assert!(
        out.starts_with(expected),
        "berth run --read-only --tmpfs: {out}"
    );
    let (code, _, err) = d.run(&[
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=lots",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "a bad tmpfs option is refused: {err}");
    assert!(err.contains("--tmpfs /scratch"), "{err}");

    // Options berth does not honour yet are refused by name, never accepted and ignored.
    for (flags, field) in [
        (&["--ulimit", "nofile=64:64"][..], "HostConfig.Ulimits"),
        (
            &["--sysctl", "net.core.somaxconn=1024"][..],
            "HostConfig.Sysctls",
        ),
        (
            &["--restart", "always"][..],
            "HostConfig.RestartPolicy.Name",
        ),
        (&["--dns", "10.9.9.9"][..], "HostConfig.Dns"),
    ] {
        let mut args = vec!["run"];
        args.extend(flags);
        args.extend(["busybox", "true"]);
        let (code, _, err) = d.run(&args);
        assert_eq!(code, 125, "docker {args:?} must be refused: {err}");
        assert!(
            err.contains(field),
            "docker {args:?}: the refusal names {field}: {err}"
        );
    }

    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "d1",
        "busybox",
        "sh",
        "-c",
        "echo hello; sleep 1000",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let ps = d.ok(&["ps"]);
    assert!(ps.contains("d1") && ps.contains("Up"), "{ps}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let logs = d.ok(&["logs", "d1"]);
        if logs == "hello\n" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "docker logs: {logs:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // `machine start` wrote a docker CLI context: the docker CLI finds berth without
    // DOCKER_HOST once it is the current context.
    let ctx = Docker::without_host(&b);
    let socket = ok(&b, &["machine", "socket"]).stdout_text();
    let contexts = ctx.ok(&["context", "ls"]);
    let line = contexts
        .lines()
        .find(|l| l.starts_with("berth "))
        .unwrap_or_else(|| panic!("no berth context: {contexts}"));
    assert!(
        line.contains(&format!("unix://{}", socket.trim())),
        "{line}"
    );
    ctx.ok(&["context", "use", "berth"]);
    let names = ctx.ok(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(names, "d1\n", "docker ps through the berth context");

    let (code, out, _) = d.run(&["exec", "d1", "sh", "-c", "echo in; exit 5"]);
    assert_eq!((code, out.as_str()), (5, "in\n"));
    let inspect: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", "d1"])).unwrap();
    assert_eq!(inspect[0]["State"]["Running"], true, "{inspect}");
    assert_eq!(inspect[0]["Name"], "/d1");
    let status = d.ok(&["inspect", "-f", "{{.State.Status}}", "d1"]);
    assert_eq!(status.trim(), "running");
    d.ok(&["stop", "-t", "1", "d1"]);
    let status = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "d1",
    ]);
    assert_eq!(status.trim(), "exited 137");
    d.ok(&["rm", "d1"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let (code, _, err) = d.run(&["inspect", "d1"]);
    assert_ne!(code, 0);
    assert!(err.contains("No such"), "{err}");
    drop(d);
    b.assert_nothing_left();
}

#[test]
fn the_docker_cli_makes_networks_and_publishes_ports() {
    let b = Berth::new();
    let d = Docker::new(&b);
    let assets = std::env::var("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    d.ok(&["load", "-i", &format!("{assets}/images/busybox.tar")]);
    let id = d.ok(&["network", "create", "n1"]);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert!(d.ok(&["network", "ls"]).contains("n1"));
    let serve = "mkdir -p /w && echo served-by-web > /w/index.html && exec httpd -f -p 8080 -h /w";
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "n1",
        "--network-alias",
        "www",
        "-p",
        "18081:8080",
        "busybox",
        "sh",
        "-c",
        serve,
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, out, _) = d.run(&[
            "run",
            "--rm",
            "--network",
            "n1",
            "busybox",
            "sh",
            "-c",
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 www 8080",
        ]);
        if out.contains("served-by-web") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never served by alias: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert_eq!(d.ok(&["port", "web"]).trim(), "8080/tcp -> 127.0.0.1:18081");
    assert!(d.ok(&["ps"]).contains("127.0.0.1:18081->8080/tcp"));
    let curl = Command::new("curl")
        .args(["-s", "--max-time", "20", "http://127.0.0.1:18081/"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "served-by-web\n");
    let net: serde_json::Value =
        serde_json::from_str(&d.ok(&["network", "inspect", "n1"])).unwrap();
    assert_eq!(net[0]["Driver"], "bridge");
    assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.n1.IPAddress}}",
        "web",
    ]);
    assert!(ip.trim().starts_with("172.18.0."), "{ip}");
    let (code, _, err) = d.run(&["network", "rm", "n1"]);
    assert_ne!(code, 0);
    assert!(err.contains("active endpoints"), "{err}");
    d.ok(&["rm", "-f", "web"]);
    d.ok(&["network", "rm", "n1"]);
    drop(d);
    b.assert_nothing_left();
}
