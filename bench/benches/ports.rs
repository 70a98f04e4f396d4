//! Host -> container throughput through a published port (`berth run -p`, carried by the
//! daemon over the transport to the agent) against host -> guest through QEMU's own port
//! forward (`berth vm run -p`, slirp's hostfwd) on the same machine, in this process.
//! Each iteration sends 256 MiB to a busybox `nc -l` that discards it and waits until the
//! receiver has closed the connection (so all bytes arrived).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_bench::{bench_kernel, berth_bin, print_ratio, record, time_command};
use criterion::{criterion_group, Criterion, SamplingMode};

const PUBLISHED: &str = "256 MiB through berth run -p";
const HOSTFWD: &str = "256 MiB through QEMU hostfwd (vm run -p)";
const MIB: usize = 1 << 20;
const SIZE_MIB: usize = 256;
const SINK: &str = "while true; do nc -l -p 5000 >/dev/null; done";

fn berth(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(berth_bin());
    cmd.env("BERTH_HOME", home)
        .env("BERTH_KERNEL", bench_kernel())
        // Nothing leaves the machine: only forwarded ports reach the guest.
        .env("BERTH_UPLINK", "restricted")
        .args(args);
    cmd
}

/// Sends `SIZE_MIB` MiB to 127.0.0.1:`port` and waits for the receiver to close.
fn push(port: u16) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    let chunk = vec![0x5au8; MIB];
    loop {
        let start = Instant::now();
        let sent = (|| -> std::io::Result<()> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(120)))?;
            for _ in 0..SIZE_MIB {
                s.write_all(&chunk)?;
            }
            s.shutdown(Shutdown::Write)?;
            let mut rest = Vec::new();
            s.read_to_end(&mut rest)?;
            Ok(())
        })();
        match sent {
            Ok(()) => return start.elapsed(),
            // The receiver is between two connections (or not up yet): try again.
            Err(e) => {
                assert!(Instant::now() < deadline, "port {port}: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn throughput(c: &mut Criterion) {
    let home = tempfile::tempdir().expect("temp dir");
    let assets = berth::paths::Paths::from_env().expect("berth paths").assets;
    let busybox = assets.join("images/busybox.tar");
    time_command(&mut berth(
        home.path(),
        &["load", "-i", busybox.to_str().expect("utf-8 path")],
    ));
    time_command(&mut berth(home.path(), &["machine", "start"]));
    time_command(&mut berth(
        home.path(),
        &[
            "run",
            "-d",
            "--name",
            "sink",
            "-p",
            "18601:5000",
            "busybox",
            "sh",
            "-c",
            SINK,
        ],
    ));
    let kernel = bench_kernel();
    let mut vm = berth(
        home.path(),
        &[
            "vm",
            "run",
            "--kernel",
            &kernel,
            "--memory",
            "1G",
            "-p",
            "18602:5000",
            "--",
            "sh",
            "-c",
            SINK,
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .spawn()
    .expect("berth vm run");
    // Both receivers must be up before anything is timed.
    push(18601);
    push(18602);

    let mut group = c.benchmark_group("host to guest, 256 MiB");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(30));
    for (name, port) in [(HOSTFWD, 18602), (PUBLISHED, 18601)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let total: Duration = (0..iters).map(|_| push(port)).sum();
                record(name, total, iters);
                total
            })
        });
    }
    group.finish();
    let _ = vm.kill();
    let _ = vm.wait();
    time_command(&mut berth(home.path(), &["machine", "stop", "-t", "0"]));
}

criterion_group!(benches, throughput);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio(PUBLISHED, HOSTFWD);
    for name in [PUBLISHED, HOSTFWD] {
        if let Some(secs) = berth_bench::median_secs(name) {
            println!("{name}: {:.1} MiB/s", SIZE_MIB as f64 / secs);
        }
    }
}
