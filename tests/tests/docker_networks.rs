//! The stock docker CLI, pointed at a berth machine's socket: networks, aliases, links,
//! published ports, and berth's own listings printed as the docker CLI prints them.
#![cfg(feature = "vm")]

use std::process::Command;

use berth_tests::docker::Docker;
use berth_tests::{ok, Berth};

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
        // A range the PORTS column groups, and a label for `.Label`.
        "--expose",
        "7000-7001",
        "--label",
        "tier=front",
        "busybox",
        "sh",
        "-c",
        serve,
    ]);
    berth_tests::wait_for(
        "the web server answering by its alias www",
        std::time::Duration::from_secs(30),
        || {
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
            out.contains("served-by-web").then_some(()).ok_or(out)
        },
    );
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
    // The endpoint's MAC address, as inspect shows it and as the interface has it.
    let mac = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.n1.MacAddress}}",
        "web",
    ]);
    let last = ip.trim().rsplit('.').next().unwrap().parse::<u8>().unwrap();
    assert_eq!(
        mac.trim(),
        format!("02:42:ac:12:00:{last:02x}"),
        "inspect's MacAddress"
    );
    let inside = d.ok(&["exec", "web", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(
        inside.trim(),
        mac.trim(),
        "the interface's MAC is the one inspect shows"
    );
    let (code, _, err) = d.run(&["network", "rm", "n1"]);
    assert_ne!(code, 0);
    assert!(err.contains("active endpoints"), "{err}");
    // Legacy links: the alias resolves, and on the default bridge Docker's variables.
    let linked = d.ok(&[
        "run",
        "--rm",
        "--network",
        "n1",
        "--link",
        "web:w",
        "busybox",
        "grep",
        "-w",
        "w",
        "/etc/hosts",
    ]);
    assert!(
        linked.starts_with(ip.trim()),
        "--link on a user network: {linked}"
    );
    d.ok(&[
        "run", "-d", "--name", "ldb", "--expose", "5432", "-e", "SECRET=s", "busybox", "sleep",
        "1000",
    ]);
    let env = d.ok(&[
        "run",
        "--rm",
        "--link",
        "ldb:db",
        "busybox",
        "sh",
        "-c",
        "env | grep ^DB_ | sort; grep -w db /etc/hosts",
    ]);
    for want in [
        "DB_ENV_SECRET=s",
        "DB_PORT_5432_TCP_PORT=5432",
        "DB_PORT_5432_TCP_PROTO=tcp",
        "DB_PORT=tcp://172.17.",
    ] {
        assert!(
            env.contains(want),
            "--link on the default bridge lacks {want}: {env}"
        );
    }
    assert!(
        env.contains("\tdb "),
        "--link: /etc/hosts has the alias: {env}"
    );
    d.ok(&["stop", "-t", "0", "ldb"]);
    berth_lists_as_docker_does(&b, &d);
    let (code, _, err) = d.run(&["run", "--rm", "--link", "ldb:db", "busybox", "true"]);
    assert!(
        code != 0 && err.contains("Cannot link to a non running container"),
        "{err}"
    );
    d.ok(&["rm", "ldb"]);
    several_networks(&d);
    d.ok(&["rm", "-f", "web"]);
    d.ok(&["network", "rm", "n1"]);
    drop(d);
    b.assert_nothing_left();
}

/// A container on several networks: an interface per network, the names of each
/// resolved, and connect/disconnect while it runs (`web` runs on `n1`).
fn several_networks(d: &Docker) {
    d.ok(&["network", "create", "n2"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "db2",
        "--network",
        "n2",
        "--network-alias",
        "store",
        "busybox",
        "sleep",
        "1000",
    ]);
    // `web` (on n1) joins n2 while it runs: eth1 appears and n2's names resolve.
    d.ok(&["network", "connect", "--alias", "front", "n2", "web"]);
    let links = d.ok(&["exec", "web", "ls", "/sys/class/net"]);
    assert!(
        links.split_whitespace().any(|l| l == "eth1"),
        "network connect of a running container: no eth1 in {links}"
    );
    let seen = d.ok(&["exec", "web", "ping", "-c", "1", "-W", "5", "store"]);
    assert!(
        seen.contains("1 packets received"),
        "a container on two networks should reach a name on its second: {seen}"
    );
    // The other way: db2, on n2 only, finds web by its alias there.
    let back = d.ok(&["exec", "db2", "ping", "-c", "1", "-W", "5", "front"]);
    assert!(back.contains("1 packets received"), "alias on n2: {back}");
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}",
        "web",
    ]);
    assert!(
        nets.contains("n1=172.18.") && nets.contains("n2=172.19."),
        "inspect should show an endpoint per network: {nets}"
    );
    d.ok(&["network", "disconnect", "n2", "web"]);
    let links = d.ok(&["exec", "web", "ls", "/sys/class/net"]);
    assert!(
        !links.split_whitespace().any(|l| l == "eth1"),
        "network disconnect: eth1 is still there: {links}"
    );
    let (code, out, _) = d.run(&["exec", "web", "ping", "-c", "1", "-W", "2", "store"]);
    assert_ne!(
        code, 0,
        "after disconnect, n2's names should be gone: {out}"
    );
    // Several networks at create (`--network` repeated, as docker 28 sends them). The
    // interfaces are made beside the container's root and its command waits for them all
    // (the shim's network gate): the first thing it runs sees every one.
    for n in ["n3", "n4", "n5"] {
        d.ok(&["network", "create", n]);
    }
    let (code, all, err) = d.run(&[
        "run",
        "--rm",
        "--network",
        "n1",
        "--network",
        "n2",
        "--network",
        "n3",
        "--network",
        "n4",
        "--network",
        "n5",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net; ping -c 1 -W 5 store >/dev/null && echo reached-store",
    ]);
    let links: Vec<&str> = all.split_whitespace().collect();
    assert!(
        code == 0
            && ["eth0", "eth1", "eth2", "eth3", "eth4"]
                .iter()
                .all(|l| links.contains(l))
            && all.contains("reached-store"),
        "run on five networks: its command ran before its interfaces and names were all \
         made (the network gate): exit {code}, {all}{err}"
    );
    d.ok(&["rm", "-f", "db2"]);
    for n in ["n2", "n3", "n4", "n5"] {
        d.ok(&["network", "rm", n]);
    }
}

/// `berth ps|images|network ls|volume ls --format` print what the docker CLI prints for
/// the same objects (`web` runs with a published port on `n1`, `ldb` has exited).
fn berth_lists_as_docker_does(b: &Berth, d: &Docker) {
    d.ok(&["volume", "create", "--label", "k=v", "listed"]);
    let same = |args: &[&str]| {
        // Status and RunningFor tick with the clock: a second may pass between the two
        // listings, so a difference is only a failure if it persists.
        let mut last = (String::new(), String::new());
        for _ in 0..5 {
            let theirs = d.ok(args);
            let ours = ok(b, args).stdout_text();
            if ours == theirs {
                return ours;
            }
            last = (ours, theirs);
        }
        panic!(
            "berth {args:?} printed\n{}\nbut docker printed\n{}",
            last.0, last.1
        );
    };
    let names = same(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        names.contains("web Up ") && names.contains("ldb Exited (137)"),
        "{names}"
    );
    let json = same(&["ps", "-a", "--format", "json"]);
    let web: serde_json::Value = serde_json::from_str(
        json.lines()
            .find(|l| l.contains("\"Names\":\"web\""))
            .expect("web in ps json"),
    )
    .unwrap();
    assert_eq!(
        web["Ports"], "7000-7001/tcp, 127.0.0.1:18081->8080/tcp",
        "PORTS groups a range of exposed ports, then the mappings: {json}"
    );
    assert_eq!(web["Networks"], "n1", "{json}");
    same(&["ps", "-a"]);
    let tiers = same(&["ps", "-a", "--format", r#"{{.Names}}={{.Label "tier"}}"#]);
    assert!(tiers.contains("web=front"), "the .Label method: {tiers}");
    same(&[
        "ps",
        "-a",
        "--format",
        "table {{.Names}}\t{{.Label \"tier\"}}",
    ]);
    same(&[
        "ps",
        "--no-trunc",
        "--format",
        "table {{.ID}}\t{{.Command}}\t{{.State}}",
    ]);
    same(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}",
    ]);
    same(&["images"]);
    same(&[
        "network",
        "ls",
        "--format",
        "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}} {{.Internal}}",
    ]);
    same(&["network", "ls", "--filter", "name=n1", "-q"]);
    same(&["volume", "ls", "--format", "json"]);
    let labels = same(&["volume", "ls", "--format", "table {{.Name}}\t{{.Labels}}"]);
    assert!(labels.contains("listed        k=v"), "{labels}");
    same(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{json .Config.Cmd}}",
        "web",
        "ldb",
    ]);
    d.ok(&["volume", "rm", "listed"]);
}
