//! Host folders against the guest's own disk: writing and reading a 256 MiB file with
//! `dd` in a container, on a `-v` host folder (virtio-9p, and virtiofs on a second
//! machine) and on a named volume (ext4 on the machine's virtio-blk disk). Times are taken around `dd` in the guest (its uptime
//! clock, 10 ms steps), so container start-up is left out; writes end with an fsync, and
//! reads start with the guest's page cache dropped, so both sides reach the host each time.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use berth_bench::berth_command as berth;
use berth_bench::{print_ratio, record, time_command};
use criterion::{criterion_group, Criterion, SamplingMode};

const SIZE_MIB: u32 = 256;
const WRITE_9P: &str = "9p write 256 MiB (-v host folder)";
const WRITE_DISK: &str = "disk write 256 MiB (named volume)";
const READ_9P: &str = "9p read 256 MiB (-v host folder)";
const READ_DISK: &str = "disk read 256 MiB (named volume)";
const WRITE_VIRTIOFS: &str = "virtiofs write 256 MiB (-v host folder)";
const READ_VIRTIOFS: &str = "virtiofs read 256 MiB (-v host folder)";

/// Runs `script` in the bench container and returns how long its `dd` took by the
/// guest's clock.
fn dd_time(home: &Path, script: &str) -> Duration {
    let out = berth(home, &["exec", "io", "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("spawn berth exec");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{script:?} failed: {}\n{text}",
        out.status
    );
    elapsed(&out.stdout)
        .map(Duration::from_secs_f64)
        .unwrap_or_else(|| panic!("no times around dd: {text}"))
}

/// A script that runs `prepare`, then `dd ARGS` between two readings of the guest's
/// uptime, which it prints (dd's own summary is not in every busybox).
fn timed_dd(prepare: &str, args: &str) -> String {
    format!("{prepare} cat /proc/uptime && dd {args} 2>/dev/null && cat /proc/uptime")
}

/// Seconds between the two uptime readings `timed_dd` prints.
fn elapsed(stdout: &[u8]) -> Option<f64> {
    let text = String::from_utf8_lossy(stdout);
    let mut readings = text
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok());
    let (start, end) = (readings.next()?, readings.next()?);
    Some(end - start)
}

/// Stops the machine when dropped, a failed measurement included.
struct Running<'a>(&'a Path);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = berth(self.0, &["machine", "stop", "-t", "0"])
            .stdin(Stdio::null())
            .output();
    }
}

fn nine_p_against_disk(c: &mut Criterion) {
    measure(
        c,
        "9p",
        &[
            (WRITE_9P, "/host", true),
            (WRITE_DISK, "/vol", true),
            (READ_9P, "/host", false),
            (READ_DISK, "/vol", false),
        ],
    );
}

fn virtiofs_against_disk(c: &mut Criterion) {
    measure(
        c,
        "virtiofs",
        &[
            (WRITE_VIRTIOFS, "/host", true),
            (READ_VIRTIOFS, "/host", false),
        ],
    );
}

/// On a machine sharing folders over `share_fs`: each case is (name, directory, whether
/// it writes).
fn measure(c: &mut Criterion, share_fs: &str, cases: &[(&'static str, &str, bool)]) {
    let home = tempfile::tempdir().expect("temp dir");
    // Under the temp dir, which machines share by default.
    let shared = tempfile::tempdir().expect("shared temp dir");
    berth_bench::start_machine_with_busybox_and(home.path(), &["--share-fs", share_fs]);
    let running = Running(home.path());
    let host_mount = format!("{}:/host", shared.path().display());
    // Privileged: the read benchmarks drop the guest's page cache.
    time_command(&mut berth(
        home.path(),
        &[
            "run",
            "-d",
            "--privileged",
            "--name",
            "io",
            "-v",
            &host_mount,
            "-v",
            "benchvol:/vol",
            "busybox",
            "sleep",
            "100000",
        ],
    ));
    let write = |dir: &str| {
        timed_dd(
            "",
            &format!("if=/dev/zero of={dir}/f bs=1M count={SIZE_MIB} conv=fsync"),
        )
    };
    let read = |dir: &str| {
        timed_dd(
            "sync && echo 3 > /proc/sys/vm/drop_caches &&",
            &format!("if={dir}/f of=/dev/null bs=1M"),
        )
    };
    let cases: Vec<(&str, String)> = cases
        .iter()
        .map(|(name, dir, writes)| (*name, if *writes { write(dir) } else { read(dir) }))
        .collect();
    let mut group = c.benchmark_group(format!("host folder ({share_fs}) vs guest disk"));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    for (name, script) in &cases {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let total: Duration = (0..iters).map(|_| dd_time(home.path(), script)).sum();
                record(name, total, iters);
                total
            })
        });
    }
    group.finish();
    drop(running);
    let written = std::fs::metadata(shared.path().join("f")).map(|m| m.len());
    assert_eq!(
        written.ok(),
        Some(u64::from(SIZE_MIB) << 20),
        "the {share_fs} file on the host"
    );
}

criterion_group!(benches, nine_p_against_disk, virtiofs_against_disk);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio(WRITE_9P, WRITE_DISK);
    print_ratio(READ_9P, READ_DISK);
    print_ratio(WRITE_VIRTIOFS, WRITE_DISK);
    print_ratio(READ_VIRTIOFS, READ_DISK);
    print_ratio(WRITE_VIRTIOFS, WRITE_9P);
    print_ratio(READ_VIRTIOFS, READ_9P);
}
