//! `berth run` flags that each change one thing a container sees, and the verbs around a
//! running container (`attach`, `exec -d`), on one machine: hostname, labels, extra hosts
//! (`host-gateway` included), exposed ports, volume mounts by `--mount`, `--rm` with an
//! anonymous volume, a read-throughput limit, and the DNS server's forwarding to `--dns`
//! servers and its SERVFAIL.
#![cfg(feature = "vm")]

use std::time::Duration;

use berth_tests::{ok, wait_until, with_busybox, Berth};

fn out(b: &Berth, args: &[&str]) -> String {
    ok(b, args).stdout_text()
}

/// What `berth run --rm --network dnsnet FLAGS... busybox COMMAND...` printed, on
/// either stream, whatever its exit code.
fn on_dnsnet(b: &Berth, flags_and_command: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "dnsnet"];
    args.extend(flags_and_command);
    let r = b.run(&args, b"");
    format!("{}{}", r.stdout_text(), r.stderr)
}

#[test]
fn run_flags_change_what_the_container_sees() {
    let b = with_busybox();

    // --hostname: the UTS name and /etc/hosts agree.
    let seen = out(
        &b,
        &[
            "run",
            "--rm",
            "--hostname",
            "berth-box",
            "busybox",
            "sh",
            "-c",
            "hostname; grep -c berth-box /etc/hosts",
        ],
    );
    assert_eq!(seen, "berth-box\n1\n", "--hostname");

    // --add-host, with Docker's host-gateway: the gateway of the container's network.
    let hosts = out(
        &b,
        &[
            "run",
            "--rm",
            "--add-host",
            "db.example:10.1.2.3",
            "--add-host",
            "hgw:host-gateway",
            "busybox",
            "cat",
            "/etc/hosts",
        ],
    );
    assert!(
        hosts
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["10.1.2.3", "db.example"]),
        "--add-host: {hosts}"
    );
    let gateway = hosts
        .lines()
        .find(|l| l.ends_with("hgw"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("--add-host host-gateway: no hgw line in {hosts}"));
    assert!(
        gateway.starts_with("172.17.0."),
        "host-gateway is the bridge's gateway: {hosts}"
    );

    // --label and --expose: inspect shows them, and ps filters by label.
    ok(
        &b,
        &[
            "run", "-d", "--name", "lab", "--label", "tier=web", "--expose", "5432", "busybox",
            "sleep", "1000",
        ],
    );
    let labels = out(
        &b,
        &[
            "inspect",
            "-f",
            "{{json .Config.Labels}} {{json .Config.ExposedPorts}}",
            "lab",
        ],
    );
    assert_eq!(
        labels.trim(),
        r#"{"tier":"web"} {"5432/tcp":{}}"#,
        "--label/--expose"
    );
    assert_eq!(
        out(
            &b,
            &["ps", "--filter", "label=tier=web", "--format", "{{.Names}}"]
        ),
        "lab\n"
    );
    assert_eq!(
        out(&b, &["ps", "--filter", "label=tier=db", "-q"]),
        "",
        "label filter"
    );

    // exec -d: the command runs on in the background after exec returns.
    let started = out(
        &b,
        &["exec", "-d", "lab", "sh", "-c", "sleep 1; echo done > /bg"],
    );
    assert_eq!(started, "", "exec -d prints nothing");
    wait_until("exec -d writing /bg", Duration::from_secs(30), || {
        let r = b.run(&["exec", "lab", "cat", "/bg"], b"");
        r.code == 0 && r.stdout_text() == "done\n"
    });

    // attach: a second client sees the running container's output.
    ok(
        &b,
        &[
            "run",
            "-d",
            "--name",
            "talker",
            "busybox",
            "sh",
            "-c",
            "while true; do echo tick; sleep 1; done",
        ],
    );
    let attached = b.spawn(&["attach", "talker"]);
    attached.lines_until("a tick through attach", Duration::from_secs(30), |l| {
        l == "tick"
    });
    drop(attached);

    // --mount type=volume: a named volume outlives its container.
    ok(
        &b,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=kept,target=/v",
            "busybox",
            "sh",
            "-c",
            "echo saved > /v/f",
        ],
    );
    assert_eq!(
        out(
            &b,
            &[
                "run",
                "--rm",
                "--mount",
                "type=volume,src=kept,dst=/v,readonly",
                "busybox",
                "sh",
                "-c",
                "cat /v/f; touch /v/g 2>&1 | grep -o Read-only"
            ]
        ),
        "saved\nRead-only\n",
        "--mount type=volume (and readonly)"
    );

    // --rm removes the container's anonymous volumes, and keeps named ones.
    let before = out(&b, &["volume", "ls", "-q"]);
    ok(
        &b,
        &["run", "--rm", "-v", "/anon", "busybox", "touch", "/anon/x"],
    );
    assert_eq!(
        out(&b, &["volume", "ls", "-q"]),
        before,
        "--rm left an anonymous volume"
    );
    assert!(before.contains("kept"), "{before}");

    // --device-read-bps: the limit is written as the device's io.max line.
    let io = out(
        &b,
        &[
            "run",
            "--rm",
            "--device-read-bps",
            "/dev/vda:1mb",
            "busybox",
            "cat",
            "/sys/fs/cgroup/io.max",
        ],
    );
    assert!(
        io.contains("rbps=1048576"),
        "--device-read-bps: io.max shows the limit: {io}"
    );

    // The DNS server of a user network answers SERVFAIL for a name it cannot forward
    // (the test machines' uplink is restricted: no upstream).
    ok(&b, &["network", "create", "dnsnet"]);
    let text = on_dnsnet(&b, &["busybox", "nslookup", "nosuch.invalid"]);
    assert!(
        text.contains("SERVFAIL"),
        "an unresolvable name is SERVFAIL: {text}"
    );
    let r = b.run(
        &[
            "run",
            "--rm",
            "--network",
            "dnsnet",
            "--name",
            "self",
            "busybox",
            "nslookup",
            "self",
        ],
        b"",
    );
    assert!(
        r.stdout_text().contains("Address"),
        "the network's own names resolve: {}",
        r.stdout_text()
    );

    // --dns on a user network: berth's resolver stays the container's only nameserver
    // and forwards what it cannot answer to the container's servers, as Docker's
    // embedded DNS does. The upstream here is a real DNS server that never leaves the
    // guest: the resolver of another network, which alone knows the name asked.
    ok(
        &b,
        &["network", "create", "--subnet", "10.77.0.0/24", "dnsup"],
    );
    ok(
        &b,
        &[
            "run",
            "-d",
            "--name",
            "faraway",
            "--network",
            "dnsup",
            "busybox",
            "sleep",
            "600",
        ],
    );
    let faraway = out(
        &b,
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.dnsup.IPAddress}}",
            "faraway",
        ],
    );
    let faraway = faraway.trim();
    assert!(
        faraway.starts_with("10.77.0."),
        "faraway's address: {faraway:?}"
    );
    let seen = on_dnsnet(
        &b,
        &[
            "--dns", "10.77.0.1", "busybox", "sh", "-c",
            // One question (-type=a): busybox's nslookup gives its A and AAAA questions
            // one id, so two forwarded answers arriving out of order would confuse it.
            "grep -c ^nameserver /etc/resolv.conf; grep ExtServers /etc/resolv.conf; nslookup -type=a faraway",
        ],
    );
    assert!(
        seen.starts_with("1\n# ExtServers: [10.77.0.1]\n"),
        "--dns on a user network: one nameserver (berth's resolver), the server as ExtServers: {seen}"
    );
    assert!(
        seen.contains(&format!("Address: {faraway}")),
        "--dns: a name only the container's --dns server knows is forwarded to it and answered: {seen}"
    );
    // A --dns server that never answers (no one has the address): SERVFAIL once the
    // forward's deadline passes, not silence until the client gives up.
    let text = on_dnsnet(
        &b,
        &[
            "--dns",
            "10.77.0.250",
            "busybox",
            "nslookup",
            "nosuch.invalid",
        ],
    );
    assert!(
        text.contains("SERVFAIL"),
        "--dns server that never answers: the client gets SERVFAIL: {text}"
    );

    ok(&b, &["rm", "-f", "lab", "talker", "faraway"]);
    ok(&b, &["network", "rm", "dnsnet", "dnsup"]);
    ok(&b, &["volume", "rm", "kept"]);
    b.assert_nothing_left();
}
