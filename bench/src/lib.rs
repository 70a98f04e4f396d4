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
/// broken set-up never produces numbers. Then, untimed, waits for a VM it left ending
/// (`vm run` returns while the host still frees its VM's memory): no two VMs run at once.
pub fn time_command(cmd: &mut Command) -> Duration {
    berth::bench::settle::adopt_orphans();
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("spawn benchmarked command");
    let took = start.elapsed();
    if let Err(e) = berth::bench::settle::settle(berth::bench::settle::SETTLE_DEADLINE) {
        panic!("after {cmd:?}: {e}");
    }
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
/// weather; taken in alternation, every side meets the same. The order changes from round
/// to round ([`round_order`]): on this kind of host, of two identical cold starts the
/// first of a round was most often the faster, by 2 to 25 ms.
pub fn alternating(
    rounds: usize,
    commands: &mut [(&str, &mut dyn FnMut() -> Command)],
) -> Alternating {
    let mut times = vec![Vec::with_capacity(rounds); commands.len()];
    for round in 0..rounds {
        for i in round_order(round, commands.len()) {
            times[i].push(time_command(&mut (commands[i].1)()).as_secs_f64());
        }
    }
    Alternating {
        times: commands
            .iter()
            .zip(times)
            .map(|((name, _), t)| (name.to_string(), t))
            .collect(),
    }
}

/// The order in which round `round` takes `n` commands: each pair of rounds starts the
/// list at the next command, the second of the pair in reverse. Over `2 * n` rounds each
/// command runs first twice, and of any two each runs before the other as often.
fn round_order(round: usize, n: usize) -> Vec<usize> {
    let start = (round / 2) % n.max(1);
    let mut order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// What [`alternating`] measured: each command's seconds, round by round.
#[derive(Debug, Clone, Default)]
pub struct Alternating {
    pub times: Vec<(String, Vec<f64>)>,
}

impl Alternating {
    fn of(&self, name: &str) -> Option<&[f64]> {
        self.times
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_slice())
    }

    /// The median seconds of `name`.
    pub fn median(&self, name: &str) -> Option<f64> {
        median(self.of(name)?)
    }

    /// `name / baseline` in each round. The two ran one after the other, so what the
    /// shared machine's speed did over the whole pass cancels out of each.
    pub fn round_ratios(&self, name: &str, baseline: &str) -> Vec<f64> {
        match (self.of(name), self.of(baseline)) {
            (Some(a), Some(b)) => a.iter().zip(b).map(|(a, b)| a / b).collect(),
            _ => Vec::new(),
        }
    }
}

/// The first and third quartiles of `values`: the medians of their lower and upper
/// halves (the middle value of an odd count in neither).
pub fn quartiles(values: &[f64]) -> Option<(f64, f64)> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let half = v.len() / 2;
    Some((median(&v[..half])?, median(&v[v.len() - half..])?))
}

/// Prints `name` against `baseline` from [`alternating`]'s measures: the ratio of the
/// medians, and the spread of the round-by-round ratios.
pub fn print_alternating_ratio(measured: &Alternating, name: &str, baseline: &str) {
    let per_round = measured.round_ratios(name, baseline);
    let spread = match (median(&per_round), quartiles(&per_round)) {
        (Some(m), Some((q1, q3))) => {
            format!("; round by round: median {m:.2}, quartiles {q1:.2}-{q3:.2}")
        }
        _ => String::new(),
    };
    match (measured.median(name), measured.median(baseline)) {
        (Some(a), Some(b)) => println!(
            "ratio {name} / {baseline} = {:.2} ({a:.3}s / {b:.3}s, medians of {} alternating rounds{spread})",
            a / b,
            per_round.len()
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
        let measured = alternating(
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
        assert_eq!(measured.times[0].0, "quick");
        let (q, s) = (
            measured.median("quick").unwrap(),
            measured.median("slow").unwrap(),
        );
        assert!(s >= 0.05 && q < s, "{measured:?}");
        let ratios = measured.round_ratios("slow", "quick");
        assert_eq!(ratios.len(), 3);
        assert!(ratios.iter().all(|r| *r > 1.0), "{ratios:?}");
    }

    #[test]
    fn every_command_runs_first_in_turn() {
        let order = std::cell::RefCell::new(Vec::new());
        alternating(
            4,
            &mut [
                ("a", &mut || {
                    order.borrow_mut().push('a');
                    Command::new("true")
                }),
                ("b", &mut || {
                    order.borrow_mut().push('b');
                    Command::new("true")
                }),
            ],
        );
        assert_eq!(
            order.into_inner().iter().collect::<String>(),
            "abbabaab",
            "the rounds do not alternate which command runs first"
        );
        // Four commands over eight rounds: each first twice, each pair balanced.
        let orders: Vec<Vec<usize>> = (0..8).map(|r| round_order(r, 4)).collect();
        for c in 0..4 {
            let first = orders.iter().filter(|o| o[0] == c).count();
            assert_eq!(
                first, 2,
                "command {c} runs first {first} times in {orders:?}"
            );
        }
        for a in 0..4 {
            for b in (a + 1)..4 {
                let before = |o: &Vec<usize>| {
                    o.iter().position(|&x| x == a) < o.iter().position(|&x| x == b)
                };
                let n = orders.iter().filter(|o| before(o)).count();
                assert_eq!(n, 4, "{a} runs before {b} in {n} of 8 rounds: {orders:?}");
            }
        }
    }

    #[test]
    fn round_ratios_pair_each_round_and_quartiles_split_the_halves() {
        let measured = Alternating {
            times: vec![
                ("a".into(), vec![2.0, 4.0, 9.0]),
                ("b".into(), vec![1.0, 2.0, 3.0]),
            ],
        };
        assert_eq!(measured.round_ratios("a", "b"), [2.0, 2.0, 3.0]);
        assert!(measured.round_ratios("a", "nothing").is_empty());
        assert_eq!(quartiles(&[5.0, 1.0, 3.0, 2.0, 4.0]), Some((1.5, 4.5)));
        assert_eq!(quartiles(&[1.0, 2.0, 3.0, 4.0]), Some((1.5, 3.5)));
        assert_eq!(quartiles(&[1.0]), None);
    }
}
