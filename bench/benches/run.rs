//! Container start-up on a running machine: warm `berth run --rm busybox true` (with the
//! default bridge network, and with `--network none`) and
//! `berth exec box true`, against Debian's crun running and exec'ing into the same busybox
//! in a guest on the same kernel (timed by the guest), and against a cold
//! `berth vm run -- true`, all measured in this process.

use std::time::Duration;

use berth_bench::berth_command as berth;
use berth_bench::{bench_kernel, berth_bin, print_ratio, record, time_command};
use criterion::{criterion_group, Criterion, SamplingMode};

const VM: &str = "berth vm run -- true";
const RUN: &str = "warm berth run --rm busybox true";
const RUN_NONE: &str = "warm berth run --rm --network none busybox true";
const EXEC: &str = "berth exec box true";
const CRUN_RUN: &str = "crun run (in the guest)";
const CRUN_EXEC: &str = "crun exec (in the guest)";

fn warm_run_and_exec(c: &mut Criterion) {
    let home = tempfile::tempdir().expect("temp dir");
    let assets = berth_bench::start_machine_with_busybox(home.path());
    // The first run sends the layer; every measured run finds it cached.
    time_command(&mut berth(home.path(), &["run", "--rm", "busybox", "true"]));
    time_command(&mut berth(
        home.path(),
        &["run", "-d", "--name", "box", "busybox", "sleep", "100000"],
    ));
    let kernel = bench_kernel();
    let mut group = c.benchmark_group("warm container vs cold vm");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(15));
    for (name, args) in [
        (
            VM,
            // The machine's size (2 vCPUs, 1 GiB), so the cold VM and the warm
            // container run on the same virtual hardware.
            vec![
                "vm",
                "run",
                "--kernel",
                kernel.as_str(),
                "--cpus",
                "2",
                "--memory",
                "1G",
                "--",
                "true",
            ],
        ),
        (RUN, vec!["run", "--rm", "busybox", "true"]),
        // The same without the default bridge: the network's own cost shows apart.
        (
            RUN_NONE,
            vec!["run", "--rm", "--network", "none", "busybox", "true"],
        ),
        (EXEC, vec!["exec", "box", "true"]),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += time_command(&mut berth(home.path(), &args));
                }
                record(name, total, iters);
                total
            })
        });
    }
    group.finish();
    time_command(&mut berth(home.path(), &["machine", "stop", "-t", "0"]));
    match berth_bench::crun::measure(&berth_bin(), &assets, &kernel, 20) {
        Ok(t) => {
            record(CRUN_RUN, t.run * t.batch, u64::from(t.batch));
            record(CRUN_EXEC, t.exec * t.batch, u64::from(t.batch));
        }
        Err(e) => println!("crun in the guest could not be measured: {e}"),
    }
}

criterion_group!(benches, warm_run_and_exec);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio(RUN, VM);
    print_ratio(EXEC, VM);
    print_ratio(RUN, EXEC);
    print_ratio(RUN, CRUN_RUN);
    print_ratio(RUN_NONE, CRUN_RUN);
    print_ratio(RUN, RUN_NONE);
    print_ratio(EXEC, CRUN_EXEC);
}
