//! Networks, published ports and forwarded host ports, on a real machine. Every machine
//! here has a restricted uplink (the harness sets `BERTH_UPLINK=restricted`): nothing a
//! test does sends a packet beyond this host.
#![cfg(feature = "vm")]

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use berth_tests::{wait_for, Berth, Outcome};

fn with_images(names: &[&str]) -> Berth {
    let b = Berth::new();
    let assets = std::env::var_os("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    for name in names {
        let file = std::path::Path::new(&assets).join(format!("images/{name}.tar"));
        let out = b.run(&["load", "-i", file.to_str().unwrap()], b"");
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    b
}

fn ok(b: &Berth, args: &[&str]) -> Outcome {
    let out = b.run(args, b"");
    assert_eq!(out.code, 0, "berth {args:?}: {}", out.stderr);
    out
}

/// Runs `args` until its stdout contains `want`, or fails after `deadline`.
fn until_output(b: &Berth, args: &[&str], want: &str, deadline: Duration) -> Outcome {
    wait_for(
        &format!("berth {args:?} printing {want:?}"),
        deadline,
        || {
            let out = b.run(args, b"");
            match out.stdout_text().contains(want) {
                true => Ok(out),
                false => Err(format!("{} / {}", out.stdout_text(), out.stderr)),
            }
        },
    )
}

const GET: &str = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5";

#[test]
fn containers_on_a_user_network_reach_each_other_by_name_and_other_networks_cannot() {
    let b = with_images(&["busybox"]);
    // The guest logs the bridge it made at debug level: the daemon's debug log turns the
    // guest's on.
    let started = b.run_env(&["machine", "start"], &[("BERTH_LOG", "berth=debug")], b"");
    assert_eq!(started.code, 0, "machine start: {}", started.stderr);
    let machine = std::fs::read_to_string(b.home().join("machines/default/machine.json")).unwrap();
    assert!(machine.contains("\"uplink\": \"restricted\""), "{machine}");
    // The guest makes the default network's bridge as it boots (`berth.bridge` on its
    // command line), so a cold machine's first container does not wait for it.
    let made = "the default network's bridge berth0 made at boot";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let console = loop {
        let console = machine_console(&b);
        if console.contains(made) || std::time::Instant::now() > deadline {
            break console;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        console.contains(made),
        "the default network's bridge was not made at boot; the guest's console:\n{console}"
    );
    ok(&b, &["network", "create", "front"]);
    ok(
        &b,
        &["network", "create", "--subnet", "10.99.0.0/24", "back"],
    );
    let ls = ok(&b, &["network", "ls"]).stdout_text();
    for name in ["bridge", "host", "none", "front", "back"] {
        assert!(ls.contains(name), "{ls}");
    }
    let dup = b.run(&["network", "create", "front"], b"");
    assert_ne!(dup.code, 0);
    assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);

    ok(
        &b,
        &[
            "run", "-d", "--name", "web", "--network", "front", "--network-alias", "www",
            "busybox", "sh", "-c",
            "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    // By name and by alias, from another container on the same network.
    let by_name = until_output(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "front",
            "busybox",
            "sh",
            "-c",
            &format!("{GET} web 8080"),
        ],
        "hello-from-web",
        Duration::from_secs(30),
    );
    assert!(
        by_name.stdout_text().contains("200 OK"),
        "{}",
        by_name.stdout_text()
    );
    let by_alias = ok(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "front",
            "busybox",
            "sh",
            "-c",
            &format!("{GET} www 8080"),
        ],
    );
    assert!(by_alias.stdout_text().contains("hello-from-web"));

    // The container's own files match its network.
    let ip = ok(
        &b,
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.front.IPAddress}}",
            "web",
        ],
    )
    .stdout_text()
    .trim()
    .to_string();
    assert!(ip.starts_with("172.18.0."), "{ip}");
    let etc = ok(
        &b,
        &[
            "exec",
            "web",
            "sh",
            "-c",
            "cat /etc/hosts /etc/resolv.conf; hostname",
        ],
    )
    .stdout_text();
    let hostname = etc.lines().last().unwrap().to_string();
    assert!(etc.contains(&format!("{ip}\t{hostname}")), "{etc}");
    assert!(etc.contains("nameserver 172.18.0.1"), "{etc}");
    // As Docker's since 26.0.2: an interface on an IPv4-only network has IPv6 off (no
    // link-local address); lo keeps ::1.
    let addrs = ok(&b, &["exec", "web", "ip", "-o", "addr"]).stdout_text();
    let on = |dev: &str, family: &str| {
        addrs
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(dev) && l.contains(family))
    };
    assert!(on("eth0", "inet ") && on("lo", "inet6 ::1"), "{addrs}");
    assert!(
        !on("eth0", "inet6"),
        "IPv6 is on on the container's interface of an IPv4-only network: {addrs}"
    );
    let inspect = ok(&b, &["network", "inspect", "front"]).stdout_text();
    assert!(
        inspect.contains(&format!("{ip}/16")) && inspect.contains("\"Name\": \"web\""),
        "{inspect}"
    );

    // Another network resolves neither the name nor reaches the address.
    let other = b.run(
        &[
            "run", "--rm", "--network", "back", "busybox", "sh", "-c",
            &format!("{GET} web 8080; echo by-name=$?; {GET} {ip} 8080; echo by-ip=$?; cat /etc/resolv.conf"),
        ],
        b"",
    );
    let text = other.stdout_text();
    assert!(
        !text.contains("hello-from-web"),
        "networks are isolated: a container on another network reached web: {text}"
    );
    assert!(
        text.contains("by-name=1") && text.contains("by-ip=1"),
        "{text}\n{}",
        other.stderr
    );
    assert!(text.contains("nameserver 10.99.0.1"), "{text}");
    // The default bridge has no name resolution either, as Docker's.
    let bridge = ok(
        &b,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &format!("{GET} web 8080; echo rc=$?"),
        ],
    );
    assert!(
        bridge.stdout_text().contains("rc=1"),
        "{}",
        bridge.stdout_text()
    );

    // none: only lo; host: the guest's uplink; container:web: web's stack.
    let none = ok(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ip",
            "-o",
            "link",
        ],
    )
    .stdout_text();
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:") && none.contains("UP"), "{none}");
    let host = in_guest_network(&b, &["ip", "-o", "addr"]);
    assert!(host.contains("10.0.2.15/24"), "{host}");
    let shared = ok(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "container:web",
            "busybox",
            "sh",
            "-c",
            &format!("{GET} 127.0.0.1 8080"),
        ],
    );
    assert!(
        shared.stdout_text().contains("hello-from-web"),
        "{}",
        shared.stdout_text()
    );

    // Bad input.
    let missing = b.run(
        &["run", "--rm", "--network", "nosuch", "busybox", "true"],
        b"",
    );
    assert_eq!(missing.code, 125);
    assert!(
        missing.stderr.contains("network nosuch not found"),
        "{}",
        missing.stderr
    );
    let alias = b.run(
        &["run", "--rm", "--network-alias", "x", "busybox", "true"],
        b"",
    );
    assert_eq!(alias.code, 125);
    assert!(
        alias.stderr.contains("user defined networks"),
        "{}",
        alias.stderr
    );
    let in_use = b.run(&["network", "rm", "front"], b"");
    assert_ne!(in_use.code, 0);
    assert!(
        in_use.stderr.contains("active endpoints"),
        "{}",
        in_use.stderr
    );
    let predefined = b.run(&["network", "rm", "bridge"], b"");
    assert!(
        predefined.stderr.contains("pre-defined"),
        "{}",
        predefined.stderr
    );
    ok(&b, &["rm", "-f", "web"]);
    ok(&b, &["network", "rm", "front", "back"]);
    assert!(!ok(&b, &["network", "ls"]).stdout_text().contains("front"));
    // In the guest, a user network's bridge went with its last container; the default
    // bridge stays after its last container leaves, as Docker's docker0 does.
    ok(&b, &["run", "--rm", "busybox", "true"]);
    let links = in_guest_network(&b, &["ls", "/sys/class/net"]);
    assert!(
        links.contains("berth0"),
        "the default bridge was deleted with its last container: {links}"
    );
    assert!(
        !links.contains("br-"),
        "a user network's bridge outlived its containers: {links}"
    );
    // The bridge keeps its own MAC address as containers come and go (as docker0 does),
    // rather than taking its ports' (and all zeroes once the last has gone).
    let mac = in_guest_network(&b, &["cat", "/sys/class/net/berth0/address"]);
    assert_eq!(
        mac.trim(),
        "02:42:ac:11:00:01",
        "the default bridge's MAC address is not its own after its containers left"
    );
    b.assert_nothing_left();
}

/// The console log of the running machine (its VM's run directory is the only one).
fn machine_console(b: &Berth) -> String {
    std::fs::read_dir(b.home().join("run"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|d| std::fs::read_to_string(d.path().join("console.log")).ok())
        .collect()
}

/// The output of `cmd` run in a busybox container on the guest's own network (`host`).
fn in_guest_network(b: &Berth, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "host", "busybox"];
    args.extend_from_slice(cmd);
    ok(b, &args).stdout_text()
}

/// Fetches `url`: whether curl succeeded, and the body (or, on failure, curl's exit
/// status and error, so a failed request says why).
fn curl(url: &str) -> (bool, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "90", url])
        .output()
        .expect("curl (cargo xtask deps installs it)");
    if out.status.success() {
        (true, String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        (false, format!("{}: {}", out.status, err.trim()))
    }
}

#[test]
fn published_ports_carry_tcp_and_udp_from_the_host() {
    let b = with_images(&["busybox", "httpd"]);
    ok(&b, &["machine", "start"]);
    ok(
        &b,
        &[
            "run",
            "-d",
            "--name",
            "site",
            "-p",
            "18080:8080",
            "berth-test/httpd",
        ],
    );
    let page = wait_for(
        "-p 18080:8080 to serve the page",
        Duration::from_secs(30),
        || {
            let (done, body) = curl("http://127.0.0.1:18080/");
            (done && body.contains("hello from berth"))
                .then_some(body.clone())
                .ok_or(body)
        },
    );
    assert_eq!(page, "<h1>hello from berth</h1>\n");
    // A burst of 100 connections while the server is frozen: its accept queue (busybox
    // httpd's backlog is 9) fills and drops SYNs. Once it thaws, every connection gets
    // the page; with only the kernel's SYN retries (1, 3, 7, 15, 31, 63 s) about ten got
    // in per wave and the last ones hit the 75 s connect deadline.
    ok(&b, &["pause", "site"]);
    let parallel: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(|| curl("http://127.0.0.1:18080/")))
        .collect();
    std::thread::sleep(Duration::from_secs(8));
    ok(&b, &["unpause", "site"]);
    let bad: Vec<String> = parallel
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|(done, body)| !(*done && body == "<h1>hello from berth</h1>\n"))
        .map(|(_, body)| body)
        .collect();
    assert!(
        bad.is_empty(),
        "published port: of 100 parallel requests to a server that was frozen for 8 s, {} did not get the page: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert_eq!(
        ok(&b, &["port", "site"]).stdout_text(),
        "8080/tcp -> 127.0.0.1:18080\n"
    );
    let ports = ok(
        &b,
        &["inspect", "-f", "{{json .NetworkSettings.Ports}}", "site"],
    )
    .stdout_text();
    assert!(ports.contains("\"HostPort\":\"18080\""), "{ports}");
    assert!(ok(&b, &["ps"])
        .stdout_text()
        .contains("127.0.0.1:18080->8080/tcp"));

    // A port already taken is an error at run, whoever holds it.
    let again = b.run(
        &[
            "run",
            "-d",
            "--name",
            "site2",
            "-p",
            "18080:8080",
            "berth-test/httpd",
        ],
        b"",
    );
    assert_eq!(again.code, 125);
    assert!(
        again.stderr.contains("port is already allocated"),
        "{}",
        again.stderr
    );
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port().to_string();
    let taken = b.run(
        &[
            "run",
            "-d",
            "-p",
            &format!("{held_port}:8080"),
            "berth-test/httpd",
        ],
        b"",
    );
    assert_eq!(taken.code, 125);
    assert!(
        taken.stderr.contains(&format!("127.0.0.1:{held_port}")),
        "{}",
        taken.stderr
    );
    drop(held);

    // -P: the image's ExposedPorts on free host ports.
    ok(
        &b,
        &["run", "-d", "--name", "anyport", "-P", "berth-test/httpd"],
    );
    let line = ok(&b, &["port", "anyport", "8080"]).stdout_text();
    let url = format!("http://{}/", line.trim());
    wait_for(
        &format!("-P to serve {url}"),
        Duration::from_secs(30),
        || {
            let (_, body) = curl(&url);
            body.contains("hello from berth").then_some(()).ok_or(body)
        },
    );

    // UDP: an echo server behind -p 15353:53/udp.
    ok(
        &b,
        &[
            "run",
            "-d",
            "--name",
            "echo",
            "-p",
            "15353:53/udp",
            "--entrypoint",
            "berth-udp-echo",
            "berth-test/httpd",
            "53",
        ],
    );
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 64];
    let echoed = wait_for(
        "a UDP echo through -p 15353:53/udp",
        Duration::from_secs(30),
        || {
            socket.send_to(b"ping over udp", "127.0.0.1:15353").unwrap();
            match socket.recv_from(&mut buf) {
                Ok((n, _)) => Ok(buf[..n].to_vec()),
                Err(e) => Err(e.to_string()),
            }
        },
    );
    assert_eq!(echoed, b"ping over udp");
    socket
        .send_to(b"second datagram", "127.0.0.1:15353")
        .unwrap();
    let (n, _) = socket
        .recv_from(&mut buf)
        .expect("the flow carries a second datagram");
    assert_eq!(&buf[..n], b"second datagram");

    // Stopping a container gives its ports back.
    ok(&b, &["stop", "-t", "1", "site", "echo"]);
    TcpListener::bind("127.0.0.1:18080").expect("18080 is free once site stopped");
    UdpSocket::bind("127.0.0.1:15353").expect("15353/udp is free once echo stopped");
    assert_eq!(ok(&b, &["port", "site"]).stdout_text(), "");
    b.assert_nothing_left();
}

#[test]
fn a_forwarded_host_port_is_the_only_way_out_of_the_guest() {
    let b = with_images(&["busybox"]);
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let (open_port, closed_port) = (
        open.local_addr().unwrap().port(),
        closed.local_addr().unwrap().port(),
    );
    std::thread::spawn(move || {
        for mut conn in open.incoming().flatten() {
            let _ = conn.write_all(b"hello from the host\n");
        }
    });
    closed.set_nonblocking(true).unwrap();
    ok(
        &b,
        &[
            "machine",
            "start",
            "--forward-host-port",
            &open_port.to_string(),
        ],
    );
    let reached = ok(
        &b,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &format!("nc -w 5 host.berth.internal {open_port} </dev/null"),
        ],
    );
    assert_eq!(reached.stdout_text(), "hello from the host\n");
    // Nothing else leaves: not the other host port through QEMU's host alias, not the
    // forward's name on another port, not through the guest's own stack.
    let others = b.run(
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &format!(
                "nc -w 3 10.0.2.2 {closed_port} </dev/null; echo slirp=$?; \
                 nc -w 3 host.berth.internal {closed_port} </dev/null; echo fwd=$?"
            ),
        ],
        b"",
    );
    let text = others.stdout_text();
    assert!(
        text.contains("slirp=1") && text.contains("fwd=1"),
        "{text}\n{}",
        others.stderr
    );
    let host_net = b.run(
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "sh",
            "-c",
            &format!("nc -w 3 10.0.2.2 {closed_port} </dev/null; echo rc=$?"),
        ],
        b"",
    );
    assert!(
        host_net.stdout_text().contains("rc=1"),
        "{}",
        host_net.stdout_text()
    );
    let mut buf = [0u8; 1];
    match closed.accept() {
        Ok((mut c, from)) => panic!(
            "the guest reached a host port it was not given: {from} {:?}",
            c.read(&mut buf)
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
    }
    b.assert_nothing_left();
}
