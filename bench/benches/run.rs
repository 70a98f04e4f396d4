//! Cold `berth run --rm busybox true` against cold `berth vm run -- true` on the same
//! kernel: what a container (image layers sent and unpacked, namespaces, overlayfs,
//! cgroup) adds to a VM start.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_bench::{bench_kernel, berth_bin, print_ratio, record, time_command};
use criterion::{criterion_group, Criterion, SamplingMode};

const VM: &str = "berth vm run -- true";
const RUN: &str = "berth run --rm busybox true";

fn berth(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(berth_bin());
    cmd.env("BERTH_HOME", home).args(args);
    cmd
}

fn run_vs_vm(c: &mut Criterion) {
    let home = tempfile::tempdir().expect("temp dir");
    let assets = berth::paths::Paths::from_env().expect("berth paths").assets;
    let busybox = assets.join("images/busybox.tar");
    time_command(&mut berth(
        home.path(),
        &["load", "-i", busybox.to_str().expect("utf-8 path")],
    ));
    let kernel = bench_kernel();
    let mut group = c.benchmark_group("container vs vm");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));
    for (name, args) in [
        (
            VM,
            vec!["vm", "run", "--kernel", kernel.as_str(), "--", "true"],
        ),
        (
            RUN,
            vec![
                "run",
                "--rm",
                "--kernel",
                kernel.as_str(),
                "busybox",
                "true",
            ],
        ),
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
}

criterion_group!(benches, run_vs_vm);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio(RUN, VM);
}
