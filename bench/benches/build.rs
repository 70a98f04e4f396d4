//! Image builds: a fully cached rebuild of a 6-step Dockerfile against its first build
//! (`--no-cache`), and that first build against running the same commands with
//! `berth run` one after another (the builder's own overhead), all in this process.

use std::time::Duration;

use berth_bench::berth_command as berth;
use berth_bench::{print_ratio, record, time_command};
use criterion::{criterion_group, Criterion, SamplingMode};

const CACHED: &str = "cached rebuild (6 steps)";
const FIRST: &str = "first build (6 steps, --no-cache)";
const RUNS: &str = "the same commands as berth run";

const DOCKERFILE: &str = "FROM busybox
ENV STAGE=bench
RUN echo one > /one
RUN echo two > /two
COPY file /file
RUN cat /file /one /two > /all
CMD [\"cat\", \"/all\"]
";

/// The commands of the Dockerfile's RUN steps, as `berth run` would run them.
const COMMANDS: [&str; 3] = [
    "echo one > /one",
    "echo two > /two",
    "cat /etc/hostname /etc/hostname > /all",
];

fn build(c: &mut Criterion) {
    let home = tempfile::tempdir().expect("temp dir");
    berth_bench::start_machine_with_busybox(home.path());
    let ctx = tempfile::tempdir().expect("temp dir");
    std::fs::write(ctx.path().join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    std::fs::write(ctx.path().join("file"), "file\n").expect("file");
    let dir = ctx.path().display().to_string();
    time_command(&mut berth(home.path(), &["build", "-t", "bench", &dir]));
    let mut group = c.benchmark_group("image build");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));
    let cases: [(&str, Vec<Vec<&str>>); 3] = [
        (CACHED, vec![vec!["build", "-t", "bench", &dir]]),
        (
            FIRST,
            vec![vec!["build", "--no-cache", "-t", "bench", &dir]],
        ),
        (
            RUNS,
            COMMANDS
                .iter()
                .map(|c| vec!["run", "--rm", "busybox", "sh", "-c", c])
                .collect(),
        ),
    ];
    for (name, commands) in cases {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for args in &commands {
                        total += time_command(&mut berth(home.path(), args));
                    }
                }
                record(name, total, iters);
                total
            })
        });
    }
    group.finish();
    time_command(&mut berth(home.path(), &["machine", "stop", "-t", "0"]));
}

criterion_group!(benches, build);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio(CACHED, FIRST);
    print_ratio(FIRST, RUNS);
}
