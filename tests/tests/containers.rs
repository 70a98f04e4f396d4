//! `berth run`: containers from the test images, in a VM on the kernel under test.
#![cfg(feature = "vm")]

use std::time::Duration;

use berth_tests::{in_guest, ok, Berth, Outcome};

/// A berth installation with the test images loaded.
fn with_images() -> Berth {
    let b = Berth::new();
    let assets = std::env::var_os("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    for image in ["busybox", "httpd"] {
        let file = std::path::Path::new(&assets)
            .join("images")
            .join(format!("{image}.tar"));
        let out = b.run(&["load", "-i", file.to_str().unwrap()], b"");
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    b
}

fn run(b: &Berth, args: &[&str]) -> Outcome {
    run_stdin(b, args, b"")
}

fn run_stdin(b: &Berth, args: &[&str], stdin: &[u8]) -> Outcome {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    b.run(&all, stdin)
}

#[test]
fn the_command_is_pid_1_with_its_own_hostname_cgroup_and_processes() {
    let b = with_images();
    let out = run(
        &b,
        &[
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo $$; hostname; cat /proc/1/cgroup; ps -o pid,comm",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1].len(), 12, "short container id as hostname: {text}");
    assert!(lines[1].bytes().all(|c| c.is_ascii_hexdigit()), "{text}");
    assert_eq!(lines[2], "0::/");
    let pids: Vec<&str> = lines[4..]
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        pids.len() <= 2 && pids[0] == "1",
        "ps sees only the container: {text}"
    );
    b.assert_nothing_left();
}

#[test]
fn the_root_is_overlay_and_proc_sys_dev_are_docker_like() {
    let b = with_images();
    let script = "mount; ls /dev; \
                  if (echo x > /proc/sys/kernel/hostname) 2>&1; then echo proc-sys-writable; fi; \
                  if touch /sys/x 2>&1; then echo sys-writable; fi; \
                  echo rcu_expedited=$(cat /sys/kernel/rcu_expedited); \
                  echo clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource); \
                  echo read_ahead_kb=$(cat /sys/block/vda/queue/read_ahead_kb)";
    let out = run(&b, &["--rm", "busybox", "sh", "-c", script]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout_text();
    assert!(
        text.lines()
            .next()
            .unwrap_or("")
            .starts_with("overlay on / type overlay"),
        "{text}"
    );
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx",
    ] {
        assert!(text.lines().any(|l| l == dev), "/dev/{dev} missing: {text}");
    }
    assert!(
        text.contains("can't create /proc/sys/kernel/hostname: Read-only file system"),
        "/proc/sys is mounted read-only: {text}"
    );
    assert!(
        text.contains("touch: /sys/x: Read-only file system"),
        "/sys is mounted read-only: {text}"
    );
    assert!(
        !text.contains("-writable"),
        "/proc/sys and /sys must refuse writes: {text}"
    );
    // The machine's agent makes RCU grace periods expedited (faster container starts).
    assert!(
        text.lines().any(|l| l == "rcu_expedited=1"),
        "the machine's kernel does not expedite RCU grace periods: {text}"
    );
    // Its clock is the TSC (or KVM's), not jiffies: with two vCPUs under TCG the kernel
    // distrusted the TSC unless told it is reliable, and kept time in 4 ms steps.
    assert!(
        text.lines()
            .any(|l| l.starts_with("clocksource=") && !l.contains("jiffies")),
        "the machine's kernel keeps time with jiffies (no tsc=reliable?): {text}"
    );
    // The state disk reads ahead a megabyte: each request to an emulated disk is costly.
    assert!(
        text.lines().any(|l| l == "read_ahead_kb=1024"),
        "the state disk's read-ahead is not set: {text}"
    );
    // The state disk is mounted without the read-ahead of every group's bitmap, which ran
    // beside a cold machine's first container. Read in the guest's own mount namespace.
    let mounts = in_guest(&b, &["grep", " /var/lib/berth ", "/proc/mounts"]).stdout_text();
    assert!(
        mounts.contains("no_prefetch_block_bitmaps"),
        "the state disk is mounted with the kernel's bitmap read-ahead: {mounts}"
    );
}

#[test]
fn dockers_default_capabilities_and_signals() {
    let b = with_images();
    let out = run(
        &b,
        &[
            "--rm",
            "busybox",
            "grep",
            "-E",
            "CapEff|SigBlk|SigIgn",
            "/proc/self/status",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // As Docker starts it: no signal blocked, none ignored (SIGPIPE among them).
    assert_eq!(
        out.stdout_text(),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nCapEff:\t00000000a80425fb\n"
    );
}

#[test]
fn exit_codes_follow_docker() {
    let b = with_images();
    assert_eq!(run(&b, &["--rm", "busybox", "sh", "-c", "exit 7"]).code, 7);
    let out = run(&b, &["--rm", "busybox", "no-such-command"]);
    assert_eq!(out.code, 127, "{}", out.stderr);
    assert!(
        out.stderr.contains("executable file not found"),
        "{}",
        out.stderr
    );
    let out = run(&b, &["--rm", "busybox", "/etc/passwd"]);
    assert_eq!(out.code, 126, "{}", out.stderr);
    let out = run(&b, &["--rm", "no-such-image", "true"]);
    assert_eq!(out.code, 125);
    assert!(
        out.stderr.contains("Unable to find image"),
        "{}",
        out.stderr
    );
}

#[test]
fn image_config_is_honoured_and_flags_override_it() {
    let b = with_images();
    let script = "id -u; id -g; pwd; echo $GREETING; echo $HOME";
    let out = run(
        &b,
        &[
            "--rm",
            "--entrypoint",
            "sh",
            "berth-test/httpd",
            "-c",
            script,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout_text(), "1000\n1000\n/www\nhello\n/www\n");
    let out = run(
        &b,
        &[
            "--rm",
            "-e",
            "GREETING=bye",
            "-w",
            "/tmp",
            "-u",
            "0",
            "--entrypoint",
            "sh",
            "berth-test/httpd",
            "-c",
            script,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout_text(), "0\n0\n/tmp\nbye\n/root\n");
}

#[test]
fn stdin_and_separate_output_streams() {
    let b = with_images();
    // Started first, so its "creating machine" line is not in the container's stderr.
    berth_tests::ok(&b, &["machine", "start"]);
    let out = run_stdin(
        &b,
        &["--rm", "-i", "busybox", "sh", "-c", "cat; echo err >&2"],
        b"through the container\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout_text(), "through the container\n");
    assert_eq!(out.stderr, "err\n");
}

#[test]
fn writes_go_to_the_container_layer_only() {
    let b = with_images();
    let script = "echo changed > /bin/busybox-note; rm /etc/group; ls /etc/group 2>&1; cat /bin/busybox-note";
    let out = run(&b, &["--rm", "busybox", "sh", "-c", script]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout_text().ends_with("changed\n"),
        "{}",
        out.stdout_text()
    );
    // A second container of the same image sees the image as it was.
    let out = run(
        &b,
        &[
            "--rm",
            "busybox",
            "sh",
            "-c",
            "ls /bin/busybox-note 2>&1; cat /etc/group",
        ],
    );
    assert!(
        out.stdout_text().contains("No such file"),
        "{}",
        out.stdout_text()
    );
    assert!(
        out.stdout_text().contains("root:x:0:"),
        "{}",
        out.stdout_text()
    );
}

#[test]
fn a_memory_hog_is_oom_killed_with_137() {
    let b = with_images();
    let out = run(
        &b,
        &[
            "--memory",
            "32m",
            "busybox",
            "sh",
            "-c",
            "x=a; while true; do x=$x$x; done",
        ],
    );
    assert_eq!(out.code, 137, "{}", out.stderr);
    // Without --rm the container is kept, and its state records the OOM kill.
    let ids = b.run(&["ps", "-aq", "--no-trunc"], b"");
    let ids: Vec<String> = ids.stdout_text().lines().map(String::from).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let state = b.run(&["inspect", "-f", "{{json .State}}", &ids[0]], b"");
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["OOMKilled"], true, "{state}");
    assert_eq!(state["ExitCode"], 137, "{state}");
    assert_eq!(state["Status"], "exited", "{state}");
    // A container that exits on its own was not OOM-killed.
    let out = run(
        &b,
        &["--name", "calm", "--memory", "32m", "busybox", "true"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let calm = b.run(
        &[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.State.ExitCode}}",
            "calm",
        ],
        b"",
    );
    assert_eq!(calm.stdout_text().trim(), "false 0", "{}", calm.stderr);
    b.assert_nothing_left();
}

#[test]
fn a_fork_bomb_hits_the_pids_limit_and_the_agent_answers() {
    let b = with_images();
    let script = "for i in $(seq 50); do sleep 5 & done; wait";
    let out = run(
        &b,
        &["--rm", "--pids-limit", "20", "busybox", "sh", "-c", script],
    );
    assert!(out.stderr.contains("can't fork"), "{}", out.stderr);
    // The exit status came back and the VM powered off: the agent stayed responsive.
    assert_ne!(out.code, 0);
    assert!(out.code < 125, "{}: {}", out.code, out.stderr);
    b.assert_nothing_left();
}

#[test]
fn limits_are_written_to_the_containers_cgroup() {
    let b = with_images();
    let args = [
        "--rm",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--memory",
        "64m",
        "--pids-limit",
        "30",
        // The VM's block device is the layer-cache disk, /dev/vda.
        "--device-write-bps",
        "/dev/vda:1mb",
    ];
    let mut all = args.to_vec();
    all.extend([
        "busybox",
        "sh",
        "-c",
        "cd /sys/fs/cgroup; cat cpu.max cpu.weight cpuset.cpus memory.max pids.max; cut -d' ' -f3 io.max",
    ]);
    let out = run(&b, &all);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout_text(),
        "50000 100000\n20\n0\n67108864\n30\nwbps=1048576\n"
    );

    // And they bite. --cpuset-cpus: the kernel lets the process run on that CPU only.
    let allowed = run(
        &b,
        &[
            "--rm",
            "--cpuset-cpus",
            "1",
            "busybox",
            "grep",
            "Cpus_allowed_list",
            "/proc/self/status",
        ],
    );
    assert_eq!(
        allowed.stdout_text(),
        "Cpus_allowed_list:\t1\n",
        "--cpuset-cpus 1"
    );
    // --cpus: a busy loop under a fifth of a CPU is throttled; the same loop without a
    // limit never is.
    let busy = "i=0; while [ $i -lt 40000 ]; do i=$((i+1)); done; grep nr_throttled /sys/fs/cgroup/cpu.stat";
    let throttled = |args: &[&str]| -> u64 {
        let out = run(
            &b,
            &[&["--rm"], args, &["busybox", "sh", "-c", busy]].concat(),
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let text = out.stdout_text();
        text.trim()
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("cpu.stat: {text}"))
    };
    assert!(
        throttled(&["--cpus", "0.2"]) > 0,
        "--cpus 0.2 never throttled a busy loop"
    );
    assert_eq!(
        throttled(&[]),
        0,
        "a container without --cpus was throttled"
    );
    // --cpu-shares: two busy loops on the same CPU share it by their weights (1024 and
    // 256, so about 4:1; more than 2:1 is asked, a generous margin).
    for (name, shares) in [("heavy", "1024"), ("light", "256")] {
        let args = [
            "-d",
            "--name",
            name,
            "--cpuset-cpus",
            "0",
            "--cpu-shares",
            shares,
        ];
        run(
            &b,
            &[
                &args[..],
                &["busybox", "sh", "-c", "while true; do :; done"],
            ]
            .concat(),
        );
    }
    let usage = |name: &str| -> u64 {
        let out = b.run(
            &[
                "exec",
                name,
                "grep",
                "usage_usec",
                "/sys/fs/cgroup/cpu.stat",
            ],
            b"",
        );
        out.stdout_text()
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    berth_tests::wait_until(
        "three CPU-seconds between the two loops",
        Duration::from_secs(120),
        || usage("heavy") + usage("light") > 3_000_000,
    );
    let (heavy, light) = (usage("heavy"), usage("light"));
    assert!(
        heavy > 2 * light,
        "--cpu-shares 1024 vs 256 on one CPU: {heavy} vs {light} µs of CPU"
    );
    ok(&b, &["rm", "-f", "heavy", "light"]);

    // --device-write-bps and --device-read-bps: 6 MiB written and flushed to the disk,
    // or read back from it past the page cache (O_DIRECT), at 1 MiB/s cannot take less
    // than about 5 s, however fast or slow the machine (a lower bound only: a busy
    // machine makes it longer, never shorter). Timed by the guest's clock.
    let timed = |setup: &str, transfer: &str| {
        format!(
            "{setup}a=$(cut -d' ' -f1 /proc/uptime); {transfer} 2>/dev/null; \
             b=$(cut -d' ' -f1 /proc/uptime); echo $a $b"
        )
    };
    let fill = "dd if=/dev/zero of=/written bs=64k count=96 conv=fsync";
    let write = timed("", fill);
    let read = timed(
        &format!("{fill} 2>/dev/null; "),
        "dd if=/written of=/dev/null bs=64k iflag=direct",
    );
    let seconds = |args: &[&str], script: &str| -> f64 {
        let out = run(
            &b,
            &[&["--rm"], args, &["busybox", "sh", "-c", script]].concat(),
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let text = out.stdout_text();
        let t: Vec<f64> = text
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        assert_eq!(t.len(), 2, "uptime before and after the transfer: {text}");
        t[1] - t[0]
    };
    let limited = seconds(&["--device-write-bps", "/dev/vda:1mb"], &write);
    assert!(
        limited >= 3.0,
        "--device-write-bps /dev/vda:1mb let 6 MiB reach the disk in {limited:.2} s"
    );
    let limited = seconds(&["--device-read-bps", "/dev/vda:1mb"], &read);
    assert!(
        limited >= 3.0,
        "--device-read-bps /dev/vda:1mb let 6 MiB be read from the disk in {limited:.2} s"
    );
}

#[test]
fn seccomp_caps_and_their_overrides() {
    let b = with_images();
    // mount needs SYS_ADMIN, which lifts its refusal as in Docker's profile; swapon
    // needs it too, but the filter refuses it whatever the capabilities: EPERM with the
    // capability present, and the kernel's own answer once unconfined.
    let probe = "grep -E 'CapEff|Seccomp:|NoNewPrivs' /proc/self/status; mkdir -p /m; \
                 mount -t tmpfs x /m 2>/dev/null; echo mount=$?; \
                 touch /s && chmod 600 /s && swapon /s 2>&1";
    let out = run(&b, &["--rm", "busybox", "sh", "-c", probe]);
    assert_eq!(
        out.stdout_text(),
        "CapEff:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\nmount=1\n\
         swapon: /s: Operation not permitted\n",
        "Docker's default capabilities and the default seccomp filter (berth exited {}: {})",
        out.code,
        out.stderr
    );
    let admin = ["--rm", "--cap-add", "SYS_ADMIN"];
    let out = run(&b, &[&admin[..], &["busybox", "sh", "-c", probe]].concat());
    assert_eq!(
        out.stdout_text(),
        "CapEff:\t00000000a82425fb\nNoNewPrivs:\t1\nSeccomp:\t2\nmount=0\n\
         swapon: /s: Operation not permitted\n",
        "the default seccomp filter, with SYS_ADMIN: mount allowed, swapon refused (berth exited {}: {})",
        out.code,
        out.stderr
    );
    let unconfined = [
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "sh",
        "-c",
        probe,
    ];
    let out = run(&b, &[&admin[..], &unconfined[..]].concat());
    let text = out.stdout_text();
    assert!(
        text.starts_with("CapEff:\t00000000a82425fb\nNoNewPrivs:\t1\nSeccomp:\t0\nmount=0\n"),
        "seccomp=unconfined: the process has no seccomp filter (Seccomp: 0): {text}"
    );
    // The kernel's own answer: not a swap file, or no swap support at all.
    assert!(
        text.ends_with("swapon: /s: Invalid argument\n")
            || text.ends_with("swapon: /s: Function not implemented\n"),
        "seccomp=unconfined: no filter, so swapon reaches the kernel: {text}"
    );
    let out = run(
        &b,
        &[
            "--rm",
            "--cap-drop",
            "ALL",
            "busybox",
            "grep",
            "CapEff",
            "/proc/self/status",
        ],
    );
    assert_eq!(out.stdout_text(), "CapEff:\t0000000000000000\n");
    let out = run(
        &b,
        &[
            "--rm",
            "--privileged",
            "busybox",
            "sh",
            "-c",
            "echo 1 > /proc/sys/vm/overcommit_memory && echo rw; \
             grep -E ' /sys(/fs/cgroup)? ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1; \
             test -c /dev/kmsg && echo kmsg",
        ],
    );
    assert_eq!(
        out.stdout_text(),
        "rw\n/sys rw\n/sys/fs/cgroup rw\nkmsg\n",
        "--privileged: /proc/sys, sysfs and the cgroup writable, the machine's devices \
         (/dev/kmsg) present: {}",
        out.stderr
    );
    let out = run(
        &b,
        &[
            "--rm",
            "busybox",
            "sh",
            "-c",
            "grep -E ' /sys(/fs/cgroup)? ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1; \
             test -e /dev/kmsg || echo no-kmsg",
        ],
    );
    assert_eq!(
        out.stdout_text(),
        "/sys ro\n/sys/fs/cgroup ro\nno-kmsg\n",
        "an unprivileged container: sysfs and the cgroup read-only, no machine devices: {}",
        out.stderr
    );
}

#[test]
fn layers_are_sent_once_and_reused_by_later_boots() {
    let b = with_images();
    let log = b.home().join("machines/default/daemon.log");
    let first = run(&b, &["--rm", "busybox", "true"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("layer cache holds 0 of 1 layers"), "{text}");
    assert!(text.contains("sending layer sha256:"), "{text}");
    // A second container on the same machine, and one after a machine restart, reuse it.
    for restart in [false, true] {
        if restart {
            let out = b.run(&["machine", "stop"], b"");
            assert_eq!(out.code, 0, "{}", out.stderr);
        }
        std::fs::write(&log, "").unwrap();
        let again = run(&b, &["--rm", "busybox", "true"]);
        assert_eq!(again.code, 0, "{}", again.stderr);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("layer cache holds 1 of 1 layers"), "{text}");
        assert!(!text.contains("sending layer"), "{text}");
    }
    b.assert_nothing_left();
}

#[test]
fn userns_private_maps_root_to_an_unprivileged_range() {
    let b = with_images();
    let script = "id -u; cat /proc/self/uid_map; touch /new && echo created";
    let out = run(
        &b,
        &["--rm", "--userns", "private", "busybox", "sh", "-c", script],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "--userns private: root inside: {text}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "--userns private: the container's root is uid 100000 of the guest: {text}"
    );
    assert_eq!(
        lines[2], "created",
        "--userns private: root inside owns the container's /: {text}"
    );
    let out = run(&b, &["--rm", "busybox", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        out.stdout_text().split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"],
        "without --userns, the identity map"
    );
}
