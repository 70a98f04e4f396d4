//! A cold container against a cold VM: `berth run --rm busybox true` with the machine
//! stopped before each run (so its boot, the daemon's start and the first container's
//! set-up are all in it) against `berth vm run -- true` on a VM of the machine's size
//! (2 vCPUs, 1 GiB). The ratio is what a container costs beyond the VM it runs in, from
//! nothing running to the command's exit. The machine is stopped, untimed, before each of
//! the two: no other VM runs beside the one measured.
//!
//! As in the boot bench, the ratio is printed from criterion's batches and again from
//! rounds that take the two in turn.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use berth_bench::{
    alternating, bench_kernel, berth_command, print_alternating_ratio, print_ratio, record,
    time_command, Alternating,
};
use criterion::{criterion_group, Criterion, SamplingMode};

const COLD_RUN: &str = "cold berth run --rm busybox true";
const COLD_VM: &str = "cold berth vm run -- true (2 vCPUs, 1 GiB)";
/// Rounds of the alternating pass at the end (a cold run and a cold VM each; a multiple
/// of four, so that the order of the two is balanced).
const ROUNDS: usize = 16;

/// The machine's size, given to both.
const CPUS: &str = "2";
const MEMORY: &str = "1G";

/// Stops the machine (untimed: no VM runs beside the one measured) and returns the cold
/// VM to time.
fn cold_vm(home: &Path) -> Command {
    time_command(&mut berth_command(home, &["machine", "stop", "-t", "0"]));
    let kernel = bench_kernel();
    berth_command(
        home,
        &[
            "vm", "run", "--kernel", &kernel, "--cpus", CPUS, "--memory", MEMORY, "--", "true",
        ],
    )
}

/// Stops the machine (untimed, here) and returns the cold run to time.
fn cold_run(home: &Path) -> Command {
    time_command(&mut berth_command(home, &["machine", "stop", "-t", "0"]));
    berth_command(home, &["run", "--rm", "busybox", "true"])
}

fn cold(c: &mut Criterion) {
    let home = tempfile::tempdir().expect("temp dir");
    berth_bench::start_machine_with_busybox_and(home.path(), &["--cpus", CPUS, "--memory", MEMORY]);
    // The first run sends the layer to the machine's disk; every measured run finds it.
    time_command(&mut berth_command(
        home.path(),
        &["run", "--rm", "busybox", "true"],
    ));
    let mut group = c.benchmark_group("cold container vs cold vm");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(15));
    group.bench_function(COLD_VM, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += time_command(&mut cold_vm(home.path()));
            }
            record(COLD_VM, total, iters);
            total
        })
    });
    group.bench_function(COLD_RUN, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut run = cold_run(home.path());
                total += time_command(&mut run);
            }
            record(COLD_RUN, total, iters);
            total
        })
    });
    group.finish();
    let measured = alternating(
        ROUNDS,
        &mut [
            (COLD_VM, &mut || cold_vm(home.path())),
            (COLD_RUN, &mut || cold_run(home.path())),
        ],
    );
    time_command(&mut berth_command(
        home.path(),
        &["machine", "stop", "-t", "0"],
    ));
    *ALTERNATING.lock().unwrap_or_else(|p| p.into_inner()) = Some(measured);
}

/// The alternating pass's measures, printed after criterion's summary.
static ALTERNATING: Mutex<Option<Alternating>> = Mutex::new(None);

criterion_group!(benches, cold);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio(COLD_RUN, COLD_VM);
    if let Some(measured) = &*ALTERNATING.lock().unwrap_or_else(|p| p.into_inner()) {
        print_alternating_ratio(measured, COLD_RUN, COLD_VM);
    }
}
