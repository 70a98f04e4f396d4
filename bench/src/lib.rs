//! Shared helpers for berth's criterion benchmarks (benches/*.rs).
//!
//! Start-up is measured as a ratio against a baseline timed in the same process: the
//! machines are shared and noisy, so only ratios are comparable between runs.

/// crun in the guest: the runtime yardstick, shared with `berth bench`.
pub use berth::bench::crun;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The berth binary to measure: `BERTH_BIN` (xtask passes the release build).
pub fn berth_bin() -> PathBuf {
    std::env::var_os("BERTH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/release/berth"
            ))
        })
}

/// The kernel to boot: `BERTH_BENCH_KERNEL` (default 6.1).
pub fn bench_kernel() -> String {
    std::env::var("BERTH_BENCH_KERNEL").unwrap_or_else(|_| "6.1".into())
}

/// `berth ARGS` with its own state directory `home` and the bench kernel.
pub fn berth_command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(berth_bin());
    cmd.env("BERTH_HOME", home)
        .env("BERTH_KERNEL", bench_kernel())
        // No bench sends a packet beyond this machine: its machines' uplinks are
        // restricted (host ports come only through explicit forwards).
        .env("BERTH_UPLINK", "restricted")
        .args(args);
    cmd
}

/// Loads the busybox test image into the installation `home` and starts its default
/// machine; returns the assets directory.
pub fn start_machine_with_busybox(home: &Path) -> PathBuf {
    start_machine_with_busybox_and(home, &[])
}

/// [`start_machine_with_busybox`], with more `machine start` flags.
pub fn start_machine_with_busybox_and(home: &Path, flags: &[&str]) -> PathBuf {
    let assets = berth::paths::Paths::from_env().expect("berth paths").assets;
    let busybox = assets.join("images/busybox.tar");
    time_command(&mut berth_command(
        home,
        &["load", "-i", busybox.to_str().expect("utf-8 path")],
    ));
    let mut start = vec!["machine", "start"];
    start.extend(flags);
    time_command(&mut berth_command(home, &start));
    assets
}

/// Runs a command to completion and returns its wall time; panics if it fails, so a
/// broken set-up never produces numbers.
pub fn time_command(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("spawn benchmarked command");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "benchmarked command {cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Mean time per iteration of each benchmark, by name, for the ratios printed at the end.
static MEANS: Mutex<Vec<(String, Duration, u32)>> = Mutex::new(Vec::new());

/// Records one measured batch of `iters` iterations that took `total`.
pub fn record(name: &str, total: Duration, iters: u64) {
    let mut means = MEANS.lock().unwrap_or_else(|p| p.into_inner());
    match means.iter_mut().find(|(n, _, _)| n == name) {
        Some((_, t, n)) => {
            *t += total;
            *n += iters as u32;
        }
        None => means.push((name.to_string(), total, iters as u32)),
    }
}

/// Mean seconds per iteration of a recorded benchmark.
pub fn mean_secs(name: &str) -> Option<f64> {
    let means = MEANS.lock().unwrap_or_else(|p| p.into_inner());
    means
        .iter()
        .find(|(n, _, _)| n == name)
        .filter(|(_, _, n)| *n > 0)
        .map(|(_, t, n)| t.as_secs_f64() / f64::from(*n))
}

/// Prints `name / baseline` as a ratio line.
pub fn print_ratio(name: &str, baseline: &str) {
    match (mean_secs(name), mean_secs(baseline)) {
        (Some(a), Some(b)) => println!(
            "ratio {name} / {baseline} = {:.2} ({a:.3}s / {b:.3}s mean)",
            a / b
        ),
        _ => println!("ratio {name} / {baseline}: not measured"),
    }
}
