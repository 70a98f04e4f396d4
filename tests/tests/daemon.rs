//! The machine daemon: persistent machines, the container lifecycle, logs that outlive
//! their containers, and state that survives a machine restart.
#![cfg(feature = "vm")]

use std::time::Duration;

use berth_tests::{in_guest, ok, wait_until, with_busybox, Berth};

fn log_lines(b: &Berth, name: &str) -> usize {
    ok(b, &["logs", name]).stdout_text().lines().count()
}

/// The parent of the containers' cgroups in the guest.
const GUEST_CGROUPS: &str = "sys/fs/cgroup/berth";

/// The `frozen` value of the container's cgroup as the guest kernel reports it
/// (`cgroup.events`), read in the guest's mount namespace by a privileged container in
/// the machine's PID namespace.
fn freezer_state(b: &Berth, name: &str) -> String {
    let id = ok(b, &["inspect", "-f", "{{.Id}}", name]).stdout_text();
    let events = format!("/{GUEST_CGROUPS}/{}/cgroup.events", id.trim());
    let out = in_guest(b, &["cat", &events]).stdout_text();
    out.lines()
        .find_map(|l| l.strip_prefix("frozen "))
        .unwrap_or_else(|| panic!("{events} has no frozen line: {out:?}"))
        .trim()
        .to_string()
}

#[test]
fn twenty_containers_outlive_a_machine_restart_as_exited_with_their_logs() {
    let b = with_busybox();
    let start = ok(&b, &["machine", "start"]);
    assert!(
        start.stdout_text().contains("running"),
        "{}",
        start.stdout_text()
    );
    let mut ids = Vec::new();
    for i in 0..20 {
        let name = format!("c{i}");
        let out = ok(
            &b,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "busybox",
                "sh",
                "-c",
                "echo hello from $HOSTNAME; sleep 1000",
            ],
        );
        ids.push(out.stdout_text().trim().to_string());
    }
    assert!(ids.iter().all(|id| id.len() == 64), "{ids:?}");
    let ps = ok(&b, &["ps", "-q"]);
    assert_eq!(ps.stdout_text().lines().count(), 20, "{}", ps.stdout_text());
    let table = ok(&b, &["ps"]).stdout_text();
    assert!(table.contains("c7") && table.contains("Up "), "{table}");
    // The output is in the log before the restart...
    wait_until("a log line from c3", Duration::from_secs(30), || {
        log_lines(&b, "c3") > 0
    });

    ok(&b, &["machine", "stop", "-t", "1"]);
    assert!(b.running_machines().is_empty());
    ok(&b, &["machine", "start"]);
    assert_eq!(
        ok(&b, &["ps", "-q"]).stdout_text(),
        "",
        "nothing runs after a restart"
    );
    let all = ok(&b, &["ps", "-a", "--no-trunc", "-q"]).stdout_text();
    let mut listed: Vec<&str> = all.lines().collect();
    listed.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected);
    let table = ok(&b, &["ps", "-a"]).stdout_text();
    assert_eq!(table.matches("Exited (").count(), 20, "{table}");
    // ...and after it.
    let logs = ok(&b, &["logs", "c3"]).stdout_text();
    assert_eq!(logs, format!("hello from {}\n", &ids[3][..12]));
    let state = ok(
        &b,
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Running}}",
            "c3",
        ],
    );
    assert_eq!(state.stdout_text().trim(), "exited false");
    // A stopped container starts again on the new machine.
    ok(&b, &["start", "c3"]);
    assert_eq!(ok(&b, &["ps", "-q"]).stdout_text().lines().count(), 1);
    ok(&b, &["rm", "-f", "c3"]);

    // machine stop gives each container its stop signal and grace period and keeps the
    // exit code it chose: a shell that exits 3 on SIGTERM shows 3, not a kill's 137.
    let trapper = "trap 'exit 3' TERM; touch /trapped; while true; do sleep 0.2; done";
    ok(
        &b,
        &[
            "run", "-d", "--name", "trapper", "busybox", "sh", "-c", trapper,
        ],
    );
    // The handler is there once the shell has written /trapped (the command line in
    // `top` would show "sleep" before the shell ran a thing).
    wait_until("trapper's handler", Duration::from_secs(30), || {
        b.run(&["exec", "trapper", "test", "-e", "/trapped"], b"")
            .code
            == 0
    });
    ok(&b, &["machine", "stop", "-t", "30"]);
    ok(&b, &["machine", "start"]);
    let code = ok(&b, &["inspect", "-f", "{{.State.ExitCode}}", "trapper"]).stdout_text();
    assert_eq!(
        code.trim(),
        "3",
        "machine stop kept the container's own exit code"
    );
    b.assert_nothing_left();
}

#[test]
fn the_lifecycle_of_a_named_container() {
    let b = with_busybox();
    ok(
        &b,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "while true; do date; sleep 1; done",
        ],
    );

    // logs -f streams: lines keep coming while it runs.
    let mut follow = b.spawn(&["logs", "-f", "web"]);
    let streamed = std::cell::Cell::new(0);
    follow.lines_until(
        "four lines streamed by logs -f",
        Duration::from_secs(30),
        |_| {
            streamed.set(streamed.get() + 1);
            streamed.get() >= 4
        },
    );

    // exec carries its exit code; env, user and working directory apply.
    let out = b.run(&["exec", "web", "sh", "-c", "exit 5"], b"");
    assert_eq!(out.code, 5, "{}", out.stderr);
    let out = ok(
        &b,
        &[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "-u",
            "nobody",
            "web",
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u)",
        ],
    );
    assert_eq!(out.stdout_text(), "1 /tmp 65534\n");
    let out = b.run(&["exec", "-i", "web", "cat"], b"through stdin");
    assert_eq!(out.stdout_text(), "through stdin", "{}", out.stderr);
    let out = b.run(&["exec", "web", "nonexistent"], b"");
    assert_eq!(out.code, 127, "{}", out.stderr);

    // top and stats see the container.
    let top = ok(&b, &["top", "web"]).stdout_text();
    assert!(top.contains("PID") && top.contains("while true"), "{top}");
    let stats = ok(&b, &["stats", "--no-stream", "web"]).stdout_text();
    assert!(
        stats.contains("MEM USAGE") && stats.contains("web"),
        "{stats}"
    );
    // The figures are the container's: its shell and a sleep, some memory under the
    // machine's limit.
    let sample = ok(
        &b,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}} {{.MemUsage}}",
            "web",
        ],
    )
    .stdout_text();
    let fields: Vec<&str> = sample.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"web"), "stats --format: {sample}");
    let pids: u32 = fields[1].parse().unwrap_or(0);
    assert!(
        pids >= 1,
        "stats counts the container's processes: {sample}"
    );
    assert!(
        !fields[2].starts_with("0B") && fields[3] == "/" && fields[4].ends_with("iB"),
        "stats shows the memory in use against a limit: {sample}"
    );
    // Streaming to a pipe: sample after sample, plain text without escape codes.
    let stream = b.spawn(&["stats", "--format", "{{.Name}} {{.CPUPerc}}", "web"]);
    let first = stream.lines_until("a first sample", Duration::from_secs(30), |l| {
        l.starts_with("web ")
    });
    let second = stream.lines_until("a second sample", Duration::from_secs(30), |l| {
        l.starts_with("web ")
    });
    drop(stream);
    let all = [first, second].concat().join("\n");
    assert!(
        !all.contains('\x1b'),
        "stats to a pipe has no escape codes: {all:?}"
    );

    // pause freezes it: the kernel's freezer says the container's cgroup is frozen, and
    // no log line comes meanwhile; unpause thaws it and the lines resume.
    ok(&b, &["pause", "web"]);
    let status = ok(&b, &["inspect", "-f", "{{.State.Status}}", "web"]);
    assert_eq!(status.stdout_text().trim(), "paused");
    let frozen = log_lines(&b, "web");
    assert_eq!(
        freezer_state(&b, "web"),
        "1",
        "pause: the container's cgroup is frozen"
    );
    let out = b.run(&["exec", "web", "true"], b"");
    assert_ne!(out.code, 0, "exec into a paused container must be refused");
    assert_eq!(
        log_lines(&b, "web"),
        frozen,
        "pause: a paused container logged while its freezer state was read"
    );
    ok(&b, &["unpause", "web"]);
    assert_eq!(
        freezer_state(&b, "web"),
        "0",
        "unpause: the container's cgroup is thawed"
    );
    wait_until(
        "a new log line after unpause",
        Duration::from_secs(30),
        || log_lines(&b, "web") > frozen,
    );

    // stop -t 1: the shell ignores SIGTERM as PID 1, so it is killed; logs -f then ends.
    ok(&b, &["stop", "-t", "1", "web"]);
    follow.wait_exit("logs -f ending with the container", Duration::from_secs(20));
    let state = ok(
        &b,
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "web",
        ],
    );
    assert_eq!(state.stdout_text().trim(), "exited 137");
    // The output is kept after the exit; --tail and -t work.
    let tail = ok(&b, &["logs", "--tail", "2", "-t", "web"]).stdout_text();
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l.contains("Z ")), "{tail}");

    // restart runs it again; rm refuses a running container without -f.
    ok(&b, &["restart", "-t", "0", "web"]);
    let out = b.run(&["rm", "web"], b"");
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("running"), "{}", out.stderr);
    ok(&b, &["kill", "-s", "KILL", "web"]);
    let waited = ok(&b, &["wait", "web"]);
    assert_eq!(waited.stdout_text().trim(), "137");
    // The grouped forms are the short ones; system df sees the stopped container, and
    // container prune (which needs -f without a terminal) removes it.
    let listed = ok(&b, &["container", "ls", "-a"]).stdout_text();
    assert!(
        listed.lines().skip(1).any(|l| l.ends_with("web")),
        "container ls -a: {listed}"
    );
    let df = ok(&b, &["system", "df"]).stdout_text();
    assert!(
        df.starts_with("TYPE")
            && df
                .lines()
                .any(|l| l.starts_with("Containers") && l.contains(" 1 ")),
        "system df: {df}"
    );
    let unforced = b.run(&["container", "prune"], b"");
    assert!(
        unforced.code != 0 && unforced.stderr.contains("-f"),
        "prune without -f: {}",
        unforced.stderr
    );
    let pruned = ok(&b, &["container", "prune", "-f"]).stdout_text();
    assert!(
        pruned.contains("Deleted Containers") && pruned.contains("Total reclaimed space"),
        "container prune: {pruned}"
    );
    assert_eq!(
        ok(&b, &["ps", "-aq"]).stdout_text(),
        "",
        "container prune removed the stopped container"
    );
    let out = b.run(&["logs", "web"], b"");
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("No such container"), "{}", out.stderr);
    // stop -t is a grace period: a container whose SIGTERM handler needs two seconds
    // finishes it (exit 0) under `-t 30`, and is killed in it (137) under `-t 0`.
    let graceful = "rm -f /trapped; trap 'sleep 2; exit 0' TERM; touch /trapped; \
                    while true; do sleep 0.2; done";
    ok(
        &b,
        &[
            "run", "-d", "--name", "graceful", "busybox", "sh", "-c", graceful,
        ],
    );
    let code =
        |b: &Berth| ok(b, &["inspect", "-f", "{{.State.ExitCode}}", "graceful"]).stdout_text();
    // The handler is only there once the shell has written /trapped.
    let looping = |b: &Berth| {
        wait_until("graceful's handler", Duration::from_secs(30), || {
            b.run(&["exec", "graceful", "test", "-e", "/trapped"], b"")
                .code
                == 0
        })
    };
    looping(&b);
    ok(&b, &["stop", "-t", "30", "graceful"]);
    assert_eq!(code(&b).trim(), "0", "stop -t 30 let the handler finish");
    ok(&b, &["start", "graceful"]);
    looping(&b);
    ok(&b, &["stop", "-t", "0", "graceful"]);
    assert_eq!(
        code(&b).trim(),
        "137",
        "stop -t 0 killed it within its handler"
    );
    ok(&b, &["rm", "graceful"]);
    b.assert_nothing_left();
}

#[test]
fn create_start_attach_and_bad_input() {
    let b = with_busybox();
    let id = ok(
        &b,
        &[
            "create",
            "--name",
            "later",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ],
    );
    let id = id.stdout_text().trim().to_string();
    let state = ok(&b, &["inspect", "-f", "{{.State.Status}}", &id[..12]]);
    assert_eq!(state.stdout_text().trim(), "created");
    let out = b.run(&["start", "-a", "later"], b"");
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr, "err\n");
    // Names are unique; unknown images, containers and signals are clear errors.
    let dup = b.run(&["create", "--name", "later", "busybox", "true"], b"");
    assert_eq!(dup.code, 125, "{}", dup.stderr);
    assert!(dup.stderr.contains("already in use"), "{}", dup.stderr);
    let missing = b.run(&["run", "--rm", "nosuchimage"], b"");
    assert_eq!(missing.code, 125);
    assert!(
        missing.stderr.contains("Unable to find image"),
        "{}",
        missing.stderr
    );
    let none = b.run(&["stop", "nosuch"], b"");
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("No such container: nosuch"),
        "{}",
        none.stderr
    );
    ok(
        &b,
        &["run", "-d", "--name", "sleeper", "busybox", "sleep", "1000"],
    );
    let bad = b.run(&["kill", "-s", "NOPE", "sleeper"], b"");
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("invalid signal"), "{}", bad.stderr);
    // rm -f kills and removes; an image in use is not removed without -f.
    let rmi = b.run(&["rmi", "busybox"], b"");
    assert_ne!(rmi.code, 0);
    assert!(rmi.stderr.contains("being used"), "{}", rmi.stderr);
    ok(&b, &["rm", "-f", "sleeper", "later"]);
    ok(&b, &["tag", "busybox", "mine/box:1"]);
    let images = ok(&b, &["images"]).stdout_text();
    assert!(images.contains("mine/box"), "{images}");
    let rmi = ok(&b, &["rmi", "mine/box:1"]);
    assert!(
        rmi.stdout_text().contains("Untagged: mine/box:1"),
        "{}",
        rmi.stdout_text()
    );
    // A machine with a kernel that does not exist is refused before anything starts.
    let bad = b.run(
        &["machine", "start", "other", "--kernel", "/nonexistent"],
        b"",
    );
    assert_eq!(bad.code, 125, "{}", bad.stderr);
    b.assert_nothing_left();
}
