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

/// Each benchmark's batches, by name, as seconds per iteration, for the ratios printed at
/// the end. Criterion's warm-up batches count too: they run the same command.
static BATCHES: Mutex<Vec<(String, Vec<f64>)>> = Mutex::new(Vec::new());

/// Records one measured batch of `iters` iterations that took `total`.
pub fn record(name: &str, total: Duration, iters: u64) {
    if iters == 0 {
        return;
    }
    let per_iter = total.as_secs_f64() / iters as f64;
    let mut batches = BATCHES.lock().unwrap_or_else(|p| p.into_inner());
    match batches.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => v.push(per_iter),
        None => batches.push((name.to_string(), vec![per_iter])),
    }
}

/// Median seconds per iteration over a recorded benchmark's batches: on a shared,
/// noisy machine one stalled batch moves a mean but not the median.
pub fn median_secs(name: &str) -> Option<f64> {
    let batches = BATCHES.lock().unwrap_or_else(|p| p.into_inner());
    let (_, v) = batches.iter().find(|(n, _)| n == name)?;
    median(v)
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Prints `name / baseline` as a ratio line.
pub fn print_ratio(name: &str, baseline: &str) {
    match (median_secs(name), median_secs(baseline)) {
        (Some(a), Some(b)) => println!(
            "ratio {name} / {baseline} = {:.2} ({a:.3}s / {b:.3}s, medians of batches)",
            a / b
        ),
        _ => println!("ratio {name} / {baseline}: not measured"),
    }
}

/// Runs `rounds` rounds in which each of `commands` runs once, in turn, and returns each
/// one's median seconds. Criterion measures one benchmark after another, so on a shared
/// machine whose speed drifts over minutes the two sides of a ratio can meet different
/// weather; taken in alternation, every side meets the same.
pub fn alternating(
    rounds: usize,
    commands: &mut [(&str, &mut dyn FnMut() -> Command)],
) -> Vec<(String, f64)> {
    let mut times = vec![Vec::with_capacity(rounds); commands.len()];
    for _ in 0..rounds {
        for ((_, make), t) in commands.iter_mut().zip(times.iter_mut()) {
            t.push(time_command(&mut make()).as_secs_f64());
        }
    }
    commands
        .iter()
        .zip(times)
        .map(|((name, _), t)| (name.to_string(), median(&t).unwrap_or(f64::NAN)))
        .collect()
}

/// Prints `name` against `baseline` from [`alternating`]'s medians.
pub fn print_alternating_ratio(
    medians: &[(String, f64)],
    name: &str,
    baseline: &str,
    rounds: usize,
) {
    let find = |n: &str| medians.iter().find(|(m, _)| m == n).map(|(_, s)| *s);
    match (find(name), find(baseline)) {
        (Some(a), Some(b)) => println!(
            "ratio {name} / {baseline} = {:.2} ({a:.3}s / {b:.3}s, medians of {rounds} alternating rounds)",
            a / b
        ),
        _ => println!("ratio {name} / {baseline}: not measured"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_batch_does_not_move_the_median() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[0.6, 0.62, 1.4]), Some(0.62));
        assert_eq!(median(&[0.5, 0.75, 0.625, 1.5]), Some(0.6875));
        record("t", Duration::from_millis(1200), 2);
        record("t", Duration::from_millis(610), 1);
        record("t", Duration::from_millis(2800), 2);
        assert_eq!(median_secs("t"), Some(0.61));
        assert_eq!(median_secs("unknown"), None);
    }

    #[test]
    fn alternating_rounds_time_each_command_apart() {
        let (mut quick, mut slow) = (0, 0);
        let medians = alternating(
            3,
            &mut [
                ("quick", &mut || {
                    quick += 1;
                    Command::new("true")
                }),
                ("slow", &mut || {
                    slow += 1;
                    let mut c = Command::new("sleep");
                    c.arg("0.05");
                    c
                }),
            ],
        );
        assert_eq!((quick, slow), (3, 3));
        assert_eq!(medians[0].0, "quick");
        assert!(
            medians[1].1 >= 0.05 && medians[0].1 < medians[1].1,
            "{medians:?}"
        );
    }
}
