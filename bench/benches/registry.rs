//! Pulling a 4-layer, 128 MiB image (random bytes, so gzip cannot shrink it) from a local
//! `docker-registry` into an empty store (`berth pull`: download, verify, decompress for
//! the diff_ids, store) against `skopeo copy docker://… dir:…` of the same image from the
//! same registry (download and verify), in this process.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_bench::{berth_command, print_ratio, record, time_command};
use berth_tests::registry::{Auth, Registry};
use criterion::{criterion_group, Criterion, SamplingMode};
use serde_json::json;
use sha2::{Digest as _, Sha256};

const BERTH: &str = "berth pull, 4 layers / 128 MiB";
const SKOPEO: &str = "skopeo copy to dir:, 4 layers / 128 MiB";
const LAYERS: usize = 4;
const LAYER_MIB: usize = 32;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Writes an OCI layout with one image of `LAYERS` random layers under `dir`, tagged `big`.
fn layout(dir: &Path) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = digest(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        (d, bytes.len())
    };
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..LAYERS {
        let work = tempfile::tempdir().unwrap();
        let mut noise = vec![0u8; LAYER_MIB << 20];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").unwrap(),
            &mut noise,
        )
        .unwrap();
        std::fs::write(work.path().join(format!("noise{i}")), &noise).unwrap();
        let tar = Command::new("tar")
            .arg("-cf")
            .arg("-")
            .arg("-C")
            .arg(work.path())
            .arg(".")
            .output()
            .unwrap()
            .stdout;
        diff_ids.push(digest(&tar));
        let mut gzip = Command::new("gzip")
            .arg("-1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = gzip.stdin.take().unwrap();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &tar));
        let gz = gzip.wait_with_output().unwrap().stdout;
        writer.join().unwrap().unwrap();
        let (d, size) = put(&gz);
        layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": size}));
    }
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}});
    let (cd, cs) = put(config.to_string().as_bytes());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": layers});
    let (md, ms) = put(manifest.to_string().as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "big"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn pull(c: &mut Criterion) {
    let registry = Registry::start(Auth::None);
    let work = tempfile::tempdir().expect("temp dir");
    layout(&work.path().join("layout"));
    registry.skopeo_copy(
        &format!("oci:{}:big", work.path().join("layout").display()),
        "big:1",
        &["--preserve-digests"],
    );
    let name = format!("{}/big:1", registry.host());

    let mut group = c.benchmark_group("pull 128 MiB from a local registry");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(30));
    group.bench_function(SKOPEO, |b| {
        b.iter_custom(|iters| {
            let total: Duration = (0..iters)
                .map(|_| {
                    let out = tempfile::tempdir().unwrap();
                    time_command(
                        Command::new("skopeo")
                            .args(["copy", "--quiet", "--src-tls-verify=false"])
                            .arg(format!("docker://{name}"))
                            .arg(format!("dir:{}", out.path().join("image").display())),
                    )
                })
                .sum();
            record(SKOPEO, total, iters);
            total
        })
    });
    group.bench_function(BERTH, |b| {
        b.iter_custom(|iters| {
            let total: Duration = (0..iters)
                .map(|_| {
                    let home = tempfile::tempdir().unwrap();
                    time_command(&mut berth_command(home.path(), &["pull", "-q", &name]))
                })
                .sum();
            record(BERTH, total, iters);
            total
        })
    });
    group.finish();
}

criterion_group!(benches, pull);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio(BERTH, SKOPEO);
}
