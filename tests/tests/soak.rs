//! A soak of `docker run --rm`: after many runs the daemon's memory and open files, and
//! the guest's mounts, container cgroups, container directories, network links and
//! available memory are where they started. `BERTH_SOAK_RUNS` sets the count (1000 for
//! the figure; the suite's default is smaller to keep CI's time).
#![cfg(feature = "vm")]

use berth_tests::docker::Docker;
use berth_tests::Berth;

/// What may leak, read once before and once after the runs.
#[derive(Debug, Clone, Copy)]
struct Gauges {
    daemon_rss_kib: u64,
    daemon_fds: u64,
    guest_mounts: u64,
    guest_cgroups: u64,
    guest_container_dirs: u64,
    guest_links: u64,
    guest_available_kib: u64,
}

/// A privileged probe with the guest's PID namespace reads the guest's own tables
/// through its PID 1, from the guest's root (the probe's own mounts, cgroup and link are
/// in every reading).
const PROBE: &str = "wc -l < /proc/1/mountinfo; cd /proc/1/root; \
    find sys/fs/cgroup/berth -mindepth 1 -maxdepth 1 -type d | wc -l; \
    find var/lib/berth/containers -mindepth 1 -maxdepth 1 | wc -l; \
    tail -n +3 /proc/1/net/dev | wc -l; \
    awk '/MemAvailable/ {print $2}' /proc/meminfo";

fn read(b: &Berth, d: &Docker) -> Gauges {
    let pid = std::fs::read_to_string(b.home().join("machines/default/daemon.pid"))
        .expect("the daemon's pid file");
    let pid = pid.trim();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS of the daemon");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    let out = d.ok(&[
        "run",
        "--rm",
        "--privileged",
        "--pid",
        "host",
        "busybox",
        "sh",
        "-c",
        PROBE,
    ]);
    let n: Vec<u64> = out
        .lines()
        .map(|l| l.trim().parse().unwrap_or_else(|_| panic!("probe: {out}")))
        .collect();
    assert_eq!(n.len(), 5, "probe: {out}");
    Gauges {
        daemon_rss_kib: rss,
        daemon_fds: fds,
        guest_mounts: n[0],
        guest_cgroups: n[1],
        guest_container_dirs: n[2],
        guest_links: n[3],
        guest_available_kib: n[4],
    }
}

#[test]
fn many_docker_runs_leave_nothing_behind() {
    let runs: usize = std::env::var("BERTH_SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let b = Berth::new();
    let d = Docker::new(&b);
    let assets = std::env::var("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    d.ok(&["load", "-i", &format!("{assets}/images/busybox.tar")]);
    // Warm-up: the allocator's and the caches' first growth is not a leak.
    for _ in 0..20 {
        d.ok(&["run", "--rm", "busybox", "true"]);
    }
    let before = read(&b, &d);
    for i in 0..runs {
        let out = d.ok(&["run", "--rm", "busybox", "echo", &i.to_string()]);
        assert_eq!(out.trim(), i.to_string(), "run {i}");
    }
    let after = read(&b, &d);
    eprintln!("soak of {runs} runs: before {before:?}, after {after:?}");
    let exact = [
        ("guest mounts", before.guest_mounts, after.guest_mounts),
        (
            "guest container cgroups",
            before.guest_cgroups,
            after.guest_cgroups,
        ),
        (
            "guest container directories",
            before.guest_container_dirs,
            after.guest_container_dirs,
        ),
        ("guest network links", before.guest_links, after.guest_links),
    ];
    for (what, was, now) in exact {
        assert_eq!(was, now, "{what} leaked over {runs} runs: {was} -> {now}");
    }
    assert!(
        after.daemon_fds <= before.daemon_fds + 2,
        "daemon file descriptors leaked over {runs} runs: {} -> {}",
        before.daemon_fds,
        after.daemon_fds
    );
    // Generous margins: the figures are noisy, a leak per run is not.
    assert!(
        after.daemon_rss_kib <= before.daemon_rss_kib + before.daemon_rss_kib / 10 + 1024,
        "daemon RSS grew over {runs} runs: {} KiB -> {} KiB",
        before.daemon_rss_kib,
        after.daemon_rss_kib
    );
    assert!(
        after.guest_available_kib + before.guest_available_kib / 20 >= before.guest_available_kib,
        "the guest's available memory fell over {runs} runs: {} KiB -> {} KiB",
        before.guest_available_kib,
        after.guest_available_kib
    );
    drop(d);
    b.assert_nothing_left();
}
