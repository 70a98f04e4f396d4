//! Docker API clients against berth, each against a baseline in the same process:
//! `docker-compose up -d` and `down` of a two-service project (a user network, two busybox
//! containers) against `berth network create` + two `berth run -d` + `rm -f` + `network rm`
//! of the same containers; and `docker cp` of a 64 MiB file into a running container
//! against copying the same file in the container from a `-v` host folder.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_bench::berth_command as berth;
use berth_bench::{print_ratio, record, time_command};
use criterion::{criterion_group, Criterion, SamplingMode};

const COMPOSE: &str = "docker-compose up -d + down, 2 services";
const RUNS: &str = "berth network create + 2 run -d + rm -f + network rm";
const CP: &str = "docker cp 64 MiB into a container";
const BIND: &str = "cp 64 MiB from a -v host folder in the container";

/// Services that end on SIGTERM (a shell as PID 1 ignores it otherwise, and `down` would
/// measure compose's 10 s stop timeout), as the baseline's `rm -f` ends them at once.
const PROJECT: &str = r#"
version: "2.4"
services:
  a:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
    networks: [net]
  b:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
    networks: [net]
networks:
  net: {}
"#;

fn docker(socket: &Path, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("DOCKER_HOST", format!("unix://{}", socket.display()));
    cmd
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(30));
    g
}

fn api(c: &mut Criterion) {
    let home = tempfile::tempdir().expect("temp dir");
    // Under the temp dir, which machines share by default.
    let shared = tempfile::tempdir().expect("shared temp dir");
    berth_bench::start_machine_with_busybox(home.path());
    let socket = String::from_utf8(
        berth(home.path(), &["machine", "socket"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let socket = Path::new(socket.trim()).to_path_buf();
    let project = tempfile::Builder::new()
        .prefix("benchproj")
        .tempdir()
        .unwrap();
    std::fs::write(project.path().join("docker-compose.yml"), PROJECT).unwrap();

    let mut g = group(c, "compose up and down");
    g.bench_function(COMPOSE, |b| {
        b.iter_custom(|iters| {
            let total: Duration = (0..iters)
                .map(|_| {
                    let mut up = docker(&socket, "docker-compose");
                    let mut down = docker(&socket, "docker-compose");
                    time_command(up.current_dir(project.path()).args(["up", "-d"]))
                        + time_command(down.current_dir(project.path()).args(["down"]))
                })
                .sum();
            record(COMPOSE, total, iters);
            total
        })
    });
    g.bench_function(RUNS, |b| {
        b.iter_custom(|iters| {
            let total: Duration = (0..iters)
                .map(|_| {
                    let h = home.path();
                    let mut t = time_command(&mut berth(h, &["network", "create", "benchnet"]));
                    for name in ["ba", "bb"] {
                        let args = [
                            "run",
                            "-d",
                            "--name",
                            name,
                            "--network",
                            "benchnet",
                            "busybox",
                            "sleep",
                            "1000",
                        ];
                        t += time_command(&mut berth(h, &args));
                    }
                    t += time_command(&mut berth(h, &["rm", "-f", "ba", "bb"]));
                    t + time_command(&mut berth(h, &["network", "rm", "benchnet"]))
                })
                .sum();
            record(RUNS, total, iters);
            total
        })
    });
    g.finish();

    let file = shared.path().join("payload");
    let mut noise = vec![0u8; 64 << 20];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut noise,
    )
    .unwrap();
    std::fs::write(&file, &noise).unwrap();
    let src = format!("{}:/src", shared.path().display());
    time_command(&mut berth(
        home.path(),
        &[
            "run", "-d", "--name", "cpt", "-v", &src, "busybox", "sleep", "100000",
        ],
    ));
    let mut g = group(c, "copy 64 MiB into a container");
    g.bench_function(CP, |b| {
        b.iter_custom(|iters| {
            let total: Duration = (0..iters)
                .map(|_| {
                    time_command(docker(&socket, "docker").args([
                        "cp",
                        &file.display().to_string(),
                        "cpt:/tmp/payload",
                    ]))
                })
                .sum();
            record(CP, total, iters);
            total
        })
    });
    g.bench_function(BIND, |b| {
        b.iter_custom(|iters| {
            let total: Duration = (0..iters)
                .map(|_| {
                    time_command(&mut berth(
                        home.path(),
                        &["exec", "cpt", "cp", "/src/payload", "/tmp/payload"],
                    ))
                })
                .sum();
            record(BIND, total, iters);
            total
        })
    });
    g.finish();
    let _ = berth(home.path(), &["rm", "-f", "cpt"]).output();
    let _ = berth(home.path(), &["machine", "stop"]).output();
}

criterion_group!(benches, api);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio(COMPOSE, RUNS);
    print_ratio(CP, BIND);
}
