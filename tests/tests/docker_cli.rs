//! The stock docker CLI, pointed at a berth machine's socket.
#![cfg(feature = "vm")]

use berth_tests::docker::Docker;
use std::time::Duration;

use berth_tests::{ok, wait_for, Berth};

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
        (&["--cpuset-mems", "0"][..], "HostConfig.CpusetMems"),
        (
            &["--device-cgroup-rule", "c 10:229 rwm"][..],
            "HostConfig.DeviceCgroupRules",
        ),
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

    // Process options, each seen from inside the container.
    let inside = |flags: &[&str], script: &str| {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.extend(["busybox", "sh", "-c", script]);
        d.ok(&args)
    };
    let out = inside(&["--ulimit", "nofile=64:128"], "ulimit -n; ulimit -Hn");
    assert_eq!(out, "64\n128\n", "--ulimit");
    let out = inside(
        &[
            "--dns",
            "10.9.9.9",
            "--dns-search",
            "example.com",
            "--dns-option",
            "ndots:3",
        ],
        "cat /etc/resolv.conf",
    );
    assert_eq!(
        out, "nameserver 10.9.9.9\nsearch example.com\noptions ndots:3\n",
        "--dns, --dns-search, --dns-option"
    );
    let out = inside(&["--shm-size", "16m"], "df -k /dev/shm | tail -1");
    assert!(out.contains(" 16384 "), "--shm-size 16m: {out}");
    let out = inside(
        &["--sysctl", "net.core.somaxconn=1234"],
        "cat /proc/sys/net/core/somaxconn",
    );
    assert_eq!(out, "1234\n", "--sysctl");
    let out = inside(&["--oom-score-adj", "300"], "cat /proc/self/oom_score_adj");
    assert_eq!(out, "300\n", "--oom-score-adj");
    let out = inside(&["--group-add", "1234"], "id -G");
    assert_eq!(out, "0 1234\n", "--group-add");
    let out = inside(&["--init"], "cat /proc/1/cmdline | tr '\\0' ' '");
    assert!(out.starts_with("/dev/init "), "--init: PID 1 is {out}");
    // A new volume is filled from the image unless `nocopy` says otherwise.
    let filled = inside(&["-v", "copied:/etc"], "ls /etc | grep -c passwd");
    assert_eq!(filled, "1\n", "a new volume gets the image's files");
    let (_, empty, _) = d.run(&[
        "run",
        "--rm",
        "-v",
        "notcopied:/etc:nocopy",
        "busybox",
        "sh",
        "-c",
        "ls /etc | grep -c passwd",
    ]);
    assert_eq!(empty, "0\n", "nocopy: the volume stays empty");
    d.ok(&["volume", "rm", "copied", "notcopied"]);
    let out = inside(&["--stop-signal", "SIGUSR1"], "true");
    assert_eq!(out, "");

    // An on-failure:2 container is restarted twice, then stays exited.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    wait_for(
        "--restart on-failure:2: two restarts, then exited with 3",
        Duration::from_secs(60),
        || {
            let state = d.ok(&[
                "inspect",
                "-f",
                "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
                "flaky",
            ]);
            (state.trim() == "2 exited 3").then_some(()).ok_or(state)
        },
    );
    let policy = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        "flaky",
    ]);
    assert_eq!(policy.trim(), "on-failure:2");
    // rename, and the events it made.
    d.ok(&["rename", "flaky", "flaky2"]);
    // Whole seconds: the events of this second are before the next one.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    // Events name the container by id (its name changed on the way).
    let flaky_id = d.ok(&["inspect", "-f", "{{.Id}}", "flaky2"]);
    let events = d.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &now.to_string(),
        "--filter",
        &format!("container={}", flaky_id.trim()),
        "--format",
        "{{.Action}} {{.TimeNano}}",
    ]);
    let actions: Vec<&str> = events
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    let events = format!("{events}(until {now})");
    let count = |a: &str| actions.iter().filter(|x| **x == a).count();
    assert_eq!(count("die"), 3, "GET /events: a die per run: {events}");
    assert_eq!(count("start"), 3, "GET /events: a start per run: {events}");
    assert!(
        actions.contains(&"rename"),
        "GET /events: the rename: {events}"
    );
    d.ok(&["rm", "flaky2"]);

    // A healthcheck runs in the container and its status shows.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -e /tmp/ready",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "sleep 3; touch /tmp/ready; exec sleep 1000",
    ]);
    wait_for(
        "the healthcheck to report healthy",
        Duration::from_secs(60),
        || {
            let h = d.ok(&["inspect", "-f", "{{.State.Health.Status}}", "hc"]);
            (h.trim() == "healthy").then_some(()).ok_or(h)
        },
    );
    assert!(
        d.ok(&["ps"]).contains("(healthy)"),
        "docker ps shows the health"
    );
    // docker cp, both ways.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "from the host\n").unwrap();
    d.ok(&[
        "cp",
        &tmp.path().join("in.txt").display().to_string(),
        "hc:/tmp/",
    ]);
    assert_eq!(
        d.ok(&["exec", "hc", "cat", "/tmp/in.txt"]),
        "from the host\n",
        "docker cp in"
    );
    d.ok(&[
        "cp",
        "hc:/etc/hostname",
        &tmp.path().join("out").display().to_string(),
    ]);
    let hostname = std::fs::read_to_string(tmp.path().join("out")).unwrap();
    assert_eq!(hostname.trim().len(), 12, "docker cp out: {hostname}");
    let (code, _, err) = d.run(&["cp", "hc:/no/such", &tmp.path().display().to_string()]);
    assert_ne!(code, 0);
    assert!(err.contains("Could not find the file /no/such"), "{err}");
    // docker update changes a running container's limits and its restart policy.
    d.ok(&[
        "update",
        "--memory",
        "32m",
        "--pids-limit",
        "40",
        "--restart",
        "always",
        "hc",
    ]);
    let limits = d.ok(&[
        "exec",
        "hc",
        "cat",
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(
        limits, "33554432\n40\n",
        "docker update: the cgroup limits in force"
    );
    let policy = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}}",
        "hc",
    ]);
    assert_eq!(
        policy.trim(),
        "always 33554432",
        "docker update: what inspect shows"
    );
    // docker diff and docker export see the container's changes.
    d.ok(&[
        "exec",
        "hc",
        "sh",
        "-c",
        "echo made > /made.txt; rm /etc/group",
    ]);
    let diff = d.ok(&["diff", "hc"]);
    assert!(
        diff.contains("A /made.txt"),
        "docker diff: the new file: {diff}"
    );
    assert!(
        diff.contains("D /etc/group"),
        "docker diff: the deleted file: {diff}"
    );
    assert!(
        !diff.contains("/etc/hostname"),
        "docker diff shows berth's own files: {diff}"
    );
    let export = d.ok(&["export", "hc"]);
    assert!(
        export.contains("made.txt"),
        "docker export lacks the new file"
    );
    assert!(
        export.contains("bin/busybox"),
        "docker export lacks the image's files"
    );
    // A stopped container keeps its changes: diff, cp and commit still see them, and a
    // start finds them again.
    d.ok(&["stop", "-t", "1", "hc"]);
    let diff = d.ok(&["diff", "hc"]);
    assert!(
        diff.contains("A /made.txt") && diff.contains("D /etc/group"),
        "docker diff of a stopped container: its changes are kept: {diff}"
    );
    d.ok(&[
        "cp",
        "hc:/made.txt",
        &tmp.path().join("made").display().to_string(),
    ]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("made")).unwrap(),
        "made\n",
        "docker cp out of a stopped container"
    );
    d.ok(&["commit", "hc", "hc-image"]);
    assert_eq!(
        d.ok(&["run", "--rm", "hc-image", "cat", "/made.txt"]),
        "made\n",
        "docker commit of a stopped container"
    );
    d.ok(&["start", "hc"]);
    assert_eq!(
        d.ok(&["exec", "hc", "cat", "/made.txt", "/tmp/in.txt"]),
        "made\nfrom the host\n",
        "a restarted container lost the files of its last run"
    );
    d.ok(&["rm", "-f", "hc"]);
    d.ok(&["rmi", "hc-image"]);
    // docker create, docker cp into it, docker start: the file is there at its first run.
    d.ok(&["create", "--name", "pre", "busybox", "cat", "/greeting"]);
    d.ok(&[
        "cp",
        &tmp.path().join("in.txt").display().to_string(),
        "pre:/greeting",
    ]);
    assert_eq!(
        d.ok(&["start", "-a", "pre"]),
        "from the host\n",
        "docker cp into a created container"
    );
    d.ok(&["rm", "pre"]);
    // --pid and --ipc container:NAME share that container's processes and /dev/shm;
    // --pid host sees the machine's; --uts host has the machine's hostname.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "nsa",
        "busybox",
        "sh",
        "-c",
        "echo shared > /dev/shm/x; exec sleep 1000",
    ]);
    let joined = d.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:nsa",
        "--ipc",
        "container:nsa",
        "busybox",
        "sh",
        "-c",
        "ps -o comm; cat /dev/shm/x",
    ]);
    assert!(
        joined.contains("sleep") && joined.contains("shared"),
        "--pid/--ipc container:nsa should see its sleep and its /dev/shm: {joined}"
    );
    let host_ps = d.ok(&[
        "run", "--rm", "--pid", "host", "busybox", "ps", "-o", "comm",
    ]);
    assert!(
        host_ps.contains("kthreadd"),
        "--pid host shows the machine's processes: {host_ps}"
    );
    let own_ps = d.ok(&["run", "--rm", "busybox", "ps", "-o", "comm"]);
    assert!(
        !own_ps.contains("kthreadd"),
        "a private PID namespace: {own_ps}"
    );
    let uts = d.ok(&["run", "--rm", "--uts", "host", "busybox", "hostname"]);
    let own = d.ok(&["run", "--rm", "busybox", "hostname"]);
    assert!(
        uts.trim().len() != 12 && own.trim().len() == 12,
        "--uts host has the machine's hostname ({uts:?}), not a container's ({own:?})"
    );
    let (code, _, err) = d.run(&["run", "--rm", "--ipc", "none", "busybox", "ls", "/dev/shm"]);
    assert!(
        code != 0 && err.contains("No such file"),
        "--ipc none has no /dev/shm: {err}"
    );
    d.ok(&["stop", "-t", "0", "nsa"]);
    let (code, _, err) = d.run(&["run", "--rm", "--pid", "container:nsa", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("cannot join PID of a non running container"),
        "{err}"
    );
    d.ok(&["rm", "nsa"]);
    // --device: the machine's node, in the container; narrower permissions refused.
    let fuse = d.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/fuse",
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "stat",
        "-c",
        "%F %t:%T",
        "/dev/fuse",
        "/dev/mynull",
    ]);
    assert_eq!(
        fuse, "character special file a:e5\ncharacter special file 1:3\n",
        "--device"
    );
    let (code, _, err) = d.run(&["run", "--rm", "busybox", "ls", "/dev/fuse"]);
    assert!(
        code != 0 && err.contains("No such file"),
        "no --device, no node: {err}"
    );
    let (code, _, err) = d.run(&[
        "run",
        "--rm",
        "--device",
        "/dev/fuse:/dev/fuse:r",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("permissions \"r\" are not supported"), "{err}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-u",
            "nobody",
            "busybox",
            "sh",
            "-c",
            "echo x > /dev/null && stat -c %a /dev/null /dev/tty"
        ]),
        "666\n666\n",
        "the container's device nodes are 0666, as Docker's"
    );

    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "d1",
        "busybox",
        "sh",
        "-c",
        // A SIGTERM handler that needs three seconds; "hello" says it is in place.
        "trap 'sleep 3; exit 3' TERM; echo hello; while true; do sleep 0.2; done",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let ps = d.ok(&["ps"]);
    assert!(ps.contains("d1") && ps.contains("Up"), "{ps}");
    wait_for(
        "docker logs d1 to print hello",
        Duration::from_secs(30),
        || {
            let logs = d.ok(&["logs", "d1"]);
            (logs == "hello\n").then_some(()).ok_or(format!("{logs:?}"))
        },
    );
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
    // stop -t is the grace period: -t 30 lets the handler finish (its exit 3), -t 1 kills
    // the container within it (137).
    let stopped = |d: &Docker| {
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "d1",
        ])
    };
    d.ok(&["stop", "-t", "30", "d1"]);
    assert_eq!(
        stopped(&d).trim(),
        "exited 3",
        "docker stop -t 30: the SIGTERM handler finishes within the grace period"
    );
    d.ok(&["start", "d1"]);
    wait_for(
        "d1's second start to print hello",
        Duration::from_secs(30),
        || {
            let logs = d.ok(&["logs", "d1"]);
            (logs == "hello\nhello\n")
                .then_some(())
                .ok_or(format!("{logs:?}"))
        },
    );
    d.ok(&["stop", "-t", "1", "d1"]);
    assert_eq!(
        stopped(&d).trim(),
        "exited 137",
        "docker stop -t 1: killed when the grace period ends, within its handler"
    );
    d.ok(&["rm", "d1"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    // --type container: a bare `inspect d1` also matches any image, network or volume
    // whose id happens to start with d1.
    let (code, _, err) = d.run(&["inspect", "--type", "container", "d1"]);
    assert!(
        code != 0 && err.contains("No such"),
        "docker inspect of a removed container: {code} {err}"
    );
    sizes_and_prunes(&d);
    drop(d);
    b.assert_nothing_left();
}

/// `ps -s`, `system df` and the prunes report the guest's real sizes.
fn sizes_and_prunes(d: &Docker) {
    let write = "dd if=/dev/zero of=/f bs=1024 count=3072 2>/dev/null";
    d.ok(&["run", "--name", "big", "busybox", "sh", "-c", write]);
    d.ok(&[
        "run",
        "-v",
        "/data",
        "--name",
        "vol",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/data/f bs=1024 count=2048 2>/dev/null",
    ]);
    let sizes = d.ok(&["ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}"]);
    assert!(
        sizes.lines().any(|l| l.starts_with("big 3.15MB")),
        "ps -s should show big's 3 MiB writable layer: {sizes}"
    );
    let df = d.ok(&["system", "df", "--format", "{{.Type}} {{.Size}}"]);
    assert!(
        df.contains("Containers 3.146MB"),
        "system df should count the containers' layers: {df}"
    );
    assert!(
        df.contains("Local Volumes 2.097MB"),
        "system df should count the volume's data: {df}"
    );
    let pruned = d.ok(&["container", "prune", "-f"]);
    assert!(
        pruned.contains("Total reclaimed space: 3.146MB"),
        "container prune should report what it freed: {pruned}"
    );
    let pruned = d.ok(&["volume", "prune", "-f"]);
    assert!(
        pruned.contains("Total reclaimed space: 2.097MB"),
        "volume prune should report what it freed: {pruned}"
    );
}
