//! Registries, for real: Debian's `docker-registry` on 127.0.0.1 (started by each test
//! with its own config), skopeo as an independent writer and reader, a bearer-token server
//! in the test, and a TCP proxy that breaks or stalls a download on purpose. All but the
//! last test work on the host's store and boot no VM; the last runs pulled images on a
//! machine and drives the docker CLI.
#![cfg(feature = "vm")]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_tests::docker::Docker;
use berth_tests::registry::{Auth, Registry, PASSWORD, USER};
use berth_tests::{ok, Berth, Outcome};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

fn assets() -> PathBuf {
    PathBuf::from(std::env::var_os("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS"))
}

/// A test image tarball that `cargo xtask images` built.
fn image_file(name: &str) -> String {
    assets()
        .join(format!("images/{name}.tar"))
        .display()
        .to_string()
}

/// Runs berth; it must fail (exit `code`) with `needle` in its stderr.
fn fails(b: &Berth, args: &[&str], code: i32, needle: &str) -> Outcome {
    let out = b.run(args, b"");
    assert_eq!(
        out.code,
        code,
        "berth {args:?} should exit {code}: {}{}",
        out.stdout_text(),
        out.stderr
    );
    assert!(
        out.stderr.contains(needle),
        "berth {args:?}: expected {needle:?} in: {}",
        out.stderr
    );
    out
}

/// The image index and the blob names: what a failed pull must leave as it was.
fn snapshot(b: &Berth) -> (String, Vec<String>) {
    let images = b.home().join("images");
    let index = std::fs::read_to_string(images.join("index.json")).unwrap_or_default();
    let mut blobs: Vec<String> = std::fs::read_dir(images.join("blobs/sha256"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    (index, blobs)
}

fn partials(b: &Berth) -> Vec<(PathBuf, u64)> {
    std::fs::read_dir(b.home().join("images/downloads"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// An OCI image layout being written by the test.
struct Layout {
    dir: PathBuf,
    top: Vec<Value>,
}

impl Layout {
    /// The httpd test image's layout (an OCI layout tar), unpacked.
    fn from_httpd(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("tar")
            .args(["-xf", &image_file("httpd"), "-C"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Layout {
            dir: dir.to_path_buf(),
            top: Vec::new(),
        }
    }

    fn blob(&self, bytes: &[u8]) -> (String, usize) {
        let digest = sha256(bytes);
        let path = self
            .dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        std::fs::write(path, bytes).unwrap();
        (digest, bytes.len())
    }

    fn read(&self, digest: &str) -> Vec<u8> {
        std::fs::read(
            self.dir
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    }

    /// The original image's manifest and config.
    fn original(&self) -> (Value, Value) {
        let index: Value =
            serde_json::from_slice(&std::fs::read(self.dir.join("index.json")).unwrap()).unwrap();
        let manifest: Value =
            serde_json::from_slice(&self.read(index["manifests"][0]["digest"].as_str().unwrap()))
                .unwrap();
        let config: Value =
            serde_json::from_slice(&self.read(manifest["config"]["digest"].as_str().unwrap()))
                .unwrap();
        (manifest, config)
    }

    /// Stores `config` and a manifest naming it and `manifest`'s layers; the descriptor.
    fn image(&self, manifest: &Value, config: &Value) -> (Value, String) {
        let (cd, cs) = self.blob(config.to_string().as_bytes());
        let mut m = manifest.clone();
        m["config"]["digest"] = json!(cd);
        m["config"]["size"] = json!(cs);
        let (md, ms) = self.blob(m.to_string().as_bytes());
        (
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms}),
            cd,
        )
    }

    fn name(&mut self, mut desc: Value, name: &str) {
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        self.top.push(desc);
    }

    fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.top});
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }
}

/// Image ids (config digests) of the layout written by `multi_platform`.
struct Multi {
    amd64: String,
    arm64: String,
}

/// Writes `multi` (an index of linux/amd64 and linux/arm64), `arm` (an arm64-only
/// manifest), `zstd` and `plain` (the image with a zstd and an uncompressed layer), and
/// `corrupt` (a gzip layer that is not gzip, with its true digest).
fn multi_platform(dir: &Path) -> Multi {
    let mut l = Layout::from_httpd(dir);
    let (manifest, config) = l.original();
    let (amd_desc, amd64) = l.image(&manifest, &config);
    let mut arm_config = config.clone();
    arm_config["architecture"] = json!("arm64");
    arm_config["variant"] = json!("v8");
    let (arm_desc, arm64) = l.image(&manifest, &arm_config);
    let platform = |mut d: Value, arch: &str, variant: Option<&str>| {
        d["platform"] = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            d["platform"]["variant"] = json!(v);
        }
        d
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [platform(arm_desc.clone(), "arm64", Some("v8")), platform(amd_desc, "amd64", None)],
    });
    let (id, is) = l.blob(index.to_string().as_bytes());
    l.name(
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": is}),
        "multi",
    );
    l.name(arm_desc, "arm");

    let gz = l.read(manifest["layers"][0]["digest"].as_str().unwrap());
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .unwrap();
    let zst =
        ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
    for (name, media, bytes) in [
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd", &zst),
        ("plain", "application/vnd.oci.image.layer.v1.tar", &tar),
    ] {
        let (d, size) = l.blob(bytes);
        let mut m = manifest.clone();
        m["layers"] = json!([{"mediaType": media, "digest": d, "size": size}]);
        // Its own config, so each is an image of its own (ids are config digests).
        let mut c = config.clone();
        c["config"]["Labels"] = json!({"compression": name});
        let (desc, _) = l.image(&m, &c);
        l.name(desc, name);
    }

    let mut not_gzip = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
    not_gzip.extend(std::iter::repeat_n(0xab, 512));
    let (ld, ls) = l.blob(&not_gzip);
    let mut bad_manifest = manifest.clone();
    bad_manifest["layers"] = json!([{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}]);
    let mut bad_config = config.clone();
    bad_config["rootfs"]["diff_ids"] = json!([sha256(b"whatever")]);
    let (bad_desc, _) = l.image(&bad_manifest, &bad_config);
    l.name(bad_desc, "corrupt");
    l.write_index();
    Multi { amd64, arm64 }
}

/// A registry holding the busybox test image as Docker v2 schema 2 (`lib/busybox:v2s2`).
fn registry_with_busybox(auth: Auth) -> Registry {
    let r = Registry::start(auth);
    r.skopeo_copy(
        &format!("docker-archive:{}", image_file("busybox")),
        "lib/busybox:v2s2",
        &["--format", "v2s2"],
    );
    r
}

#[test]
fn pull_push_save_import_history_prune_on_the_host_store() {
    let r = registry_with_busybox(Auth::None);
    let host = r.host();
    let b = Berth::new();
    let name = format!("{host}/lib/busybox:v2s2");

    let first = ok(&b, &["pull", &name]).stdout_text();
    assert!(
        first.contains("v2s2: Pulling from lib/busybox"),
        "pull: {first}"
    );
    assert!(first.contains("Pull complete"), "pull: {first}");
    assert!(
        first.contains(&format!("Status: Downloaded newer image for {name}")),
        "pull: {first}"
    );
    assert!(
        first.trim_end().ends_with(&name),
        "pull prints the name last: {first}"
    );
    let again = ok(&b, &["pull", &name]).stdout_text();
    assert!(again.contains("Already exists"), "second pull: {again}");
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "second pull: {again}"
    );
    let id = ok(&b, &["images", "-q"]).stdout_text();
    assert_eq!(id.lines().count(), 1, "one image: {id}");

    // By digest: the manifest digest skopeo reads from the registry.
    let digest = r.skopeo_inspect("lib/busybox:v2s2", false)["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let by_digest = ok(&b, &["pull", &format!("{host}/lib/busybox@{digest}")]).stdout_text();
    assert!(
        by_digest.contains(&format!("Digest: {digest}")),
        "pull by digest: {by_digest}"
    );
    assert!(
        ok(&b, &["history", &format!("{host}/lib/busybox@{digest}")])
            .stdout_text()
            .contains("cargo xtask images"),
        "history names the image's build step"
    );

    // Push: blobs first, the manifest last; skopeo reads back what was pushed.
    ok(&b, &["tag", &name, &format!("{host}/pushed/bb:1")]);
    let pushed = ok(&b, &["push", &format!("{host}/pushed/bb:1")]).stdout_text();
    assert!(
        pushed.contains(&format!("The push refers to repository [{host}/pushed/bb]")),
        "push: {pushed}"
    );
    assert!(pushed.contains("Pushed"), "push: {pushed}");
    let line = pushed
        .lines()
        .find(|l| l.starts_with("1: digest: sha256:"))
        .unwrap_or_else(|| panic!("push prints the digest line: {pushed}"));
    let pushed_digest = line.split_whitespace().nth(2).unwrap();
    let seen = r.skopeo_inspect("pushed/bb:1", false);
    assert_eq!(
        seen["Digest"], pushed_digest,
        "skopeo sees the pushed manifest"
    );
    assert_eq!(seen["Architecture"], "amd64");
    let again = ok(&b, &["push", &format!("{host}/pushed/bb:1")]).stdout_text();
    assert!(
        again.contains("Layer already exists"),
        "a second push sends no blob: {again}"
    );
    assert!(
        !again.contains(": Pushed"),
        "a second push sends no blob: {again}"
    );

    // Save, then load into another installation: the same image id; skopeo reads it too.
    let tar = b.home().join("saved.tar");
    ok(&b, &["save", "-o", tar.to_str().unwrap(), &name]);
    let other = Berth::new();
    let loaded = ok(&other, &["load", "-i", tar.to_str().unwrap()]).stdout_text();
    assert_eq!(loaded, format!("Loaded image: {name}\n"));
    assert_eq!(
        ok(&other, &["images", "-q"]).stdout_text(),
        id,
        "save then load keeps the id"
    );
    let out = Command::new("skopeo")
        .args(["inspect", &format!("docker-archive:{}", tar.display())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo reads the saved archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Import: a tarball becomes a one-layer image with the changes applied.
    let root = b.home().join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/greeting"), "imported\n").unwrap();
    let tgz = b.home().join("rootfs.tgz");
    assert!(Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let imported = ok(
        &b,
        &[
            "import",
            "-c",
            "CMD [\"/bin/cat\", \"/etc/greeting\"]",
            "-c",
            "ENV A=1",
            "-m",
            "from a test",
            tgz.to_str().unwrap(),
            "imp:1",
        ],
    )
    .stdout_text();
    assert!(
        imported.starts_with("sha256:"),
        "import prints the id: {imported}"
    );
    let history = ok(&b, &["history", "imp:1"]).stdout_text();
    assert!(
        history.contains("from a test"),
        "import's message is the history comment: {history}"
    );
    let bad = b.run(&["import", "-c", "RUN true", tgz.to_str().unwrap()], b"");
    assert_eq!(bad.code, 125, "a change import cannot apply is refused");
    assert!(
        bad.stderr.contains("RUN is not a valid change command"),
        "{}",
        bad.stderr
    );

    // registry-mirrors in daemon.json: Docker Hub names come from the mirror first.
    r.skopeo_copy(
        &format!("docker-archive:{}", image_file("busybox")),
        "library/busybox:latest",
        &["--format", "v2s2"],
    );
    let m = Berth::new();
    std::fs::write(
        m.home().join("daemon.json"),
        format!(r#"{{"registry-mirrors": ["http://{host}"]}}"#),
    )
    .unwrap();
    let mirrored = ok(&m, &["pull", "busybox"]).stdout_text();
    assert!(mirrored.contains("Using default tag: latest"), "{mirrored}");
    assert!(
        mirrored.contains("Status: Downloaded newer image for busybox:latest"),
        "the mirror serves Docker Hub names: {mirrored}"
    );
    assert!(
        r.log().contains("GET /v2/library/busybox/manifests/latest"),
        "the pull went to the mirror"
    );
    std::fs::write(m.home().join("daemon.json"), r#"{"registry-mirror": []}"#).unwrap();
    let bad = m.run(&["pull", "busybox"], b"");
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("registry-mirror"),
        "an unknown daemon.json key is named: {}",
        bad.stderr
    );

    // Prune: only the untagged image goes, unless -a.
    let dangling = ok(&b, &["import", tgz.to_str().unwrap()]).stdout_text();
    let pruned = ok(&b, &["image", "prune", "-f"]).stdout_text();
    assert!(
        pruned.contains(&format!("deleted: {}", dangling.trim())),
        "prune: {pruned}"
    );
    assert!(pruned.contains("Total reclaimed space"), "prune: {pruned}");
    assert!(
        ok(&b, &["images"]).stdout_text().contains("imp"),
        "tagged images stay"
    );
    let refused = b.run(&["image", "prune"], b"");
    assert_ne!(refused.code, 0, "prune without a terminal needs -f");
    let all = ok(&b, &["image", "prune", "-a", "-f"]).stdout_text();
    assert!(all.contains("untagged: imp:1"), "prune -a: {all}");
    assert_eq!(ok(&b, &["images", "-q"]).stdout_text(), "");
}

#[test]
fn indexes_give_the_guest_platform_and_every_compression_pulls() {
    let r = Registry::start(Auth::None);
    let host = r.host();
    let work = tempfile::tempdir().unwrap();
    let multi = multi_platform(&work.path().join("layout"));
    let layout = work.path().join("layout").display().to_string();
    r.skopeo_copy(
        &format!("oci:{layout}:multi"),
        "multi:1",
        &["--all", "--preserve-digests"],
    );
    r.skopeo_copy(
        &format!("oci:{layout}:arm"),
        "armonly:1",
        &["--preserve-digests"],
    );
    let raw = r.skopeo_inspect("multi:1", true);
    assert_eq!(
        raw["manifests"].as_array().map(Vec::len),
        Some(2),
        "the registry holds the index: {raw}"
    );

    let b = Berth::new();
    ok(&b, &["pull", &format!("{host}/multi:1")]);
    let ids = ok(&b, &["images", "-q"]).stdout_text();
    assert!(
        multi.amd64.contains(ids.trim()),
        "an index gives linux/amd64: {ids} vs {}",
        multi.amd64
    );
    ok(
        &b,
        &[
            "pull",
            "--platform",
            "linux/arm64",
            &format!("{host}/multi:1"),
        ],
    );
    let tagged = ok(&b, &["images", "--format", "json"]).stdout_text();
    assert!(
        tagged.contains(&multi.arm64),
        "--platform linux/arm64 is honoured: {tagged}"
    );

    let before = snapshot(&b);
    fails(
        &b,
        &[
            "pull",
            "--platform",
            "linux/s390x",
            &format!("{host}/multi:1"),
        ],
        1,
        "no matching manifest for linux/s390x",
    );
    fails(
        &b,
        &["pull", &format!("{host}/armonly:1")],
        1,
        "wanted linux/amd64, actual: linux/arm64",
    );
    fails(
        &b,
        &["pull", "--platform", "linux//x", &format!("{host}/multi:1")],
        1,
        "invalid platform",
    );
    assert_eq!(
        snapshot(&b),
        before,
        "refused pulls leave the store as it was"
    );

    // zstd and uncompressed layers (copied as they are: skopeo would otherwise reuse
    // the gzip blob it knows for the same content).
    r.skopeo_copy(
        &format!("oci:{layout}:zstd"),
        "zstd:1",
        &["--preserve-digests"],
    );
    r.skopeo_copy(
        &format!("oci:{layout}:plain"),
        "plain:1",
        &["--preserve-digests"],
    );
    for name in ["zstd:1", "plain:1"] {
        let raw = r.skopeo_inspect(name, true);
        let media = raw["layers"][0]["mediaType"].as_str().unwrap().to_string();
        let out = ok(&b, &["pull", &format!("{host}/{name}")]).stdout_text();
        assert!(
            out.contains("Pull complete") || out.contains("Already exists"),
            "{name} ({media}): {out}"
        );
    }
    let zstd_layer = r.skopeo_inspect("zstd:1", true)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = std::fs::read(
        b.home()
            .join("images/blobs/sha256")
            .join(zstd_layer.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert_eq!(
        &blob[..4],
        &[0x28, 0xb5, 0x2f, 0xfd],
        "the zstd layer is stored as the registry sent it"
    );
}

/// Forwards 127.0.0.1:port to the registry; can cut or stall downloads after a byte budget.
struct Proxy {
    port: u16,
    /// 0 passes everything, 1 cuts connections past the budget, 2 stalls them.
    mode: Arc<AtomicU8>,
    sent: Arc<AtomicU64>,
    saw_range: Arc<AtomicBool>,
}

const PASS: u8 = 0;
const CUT: u8 = 1;
const STALL: u8 = 2;

impl Proxy {
    fn start(target: u16, budget: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let sent = Arc::new(AtomicU64::new(0));
        let saw_range = Arc::new(AtomicBool::new(false));
        let (m, s, r) = (mode.clone(), sent.clone(), saw_range.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let r = r.clone();
                std::thread::spawn(move || {
                    let (mut from, mut to) = (c2, u2);
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                        if text.contains("range: bytes=") {
                            r.store(true, Ordering::SeqCst);
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
                let (m, s) = (m.clone(), s.clone());
                std::thread::spawn(move || {
                    let (mut from, mut to) = (upstream, client);
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let total = s.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                        if total > budget {
                            match m.load(Ordering::SeqCst) {
                                CUT => {
                                    let _ = to.shutdown(Shutdown::Both);
                                    let _ = from.shutdown(Shutdown::Both);
                                    return;
                                }
                                STALL => {
                                    while m.load(Ordering::SeqCst) == STALL {
                                        std::thread::sleep(Duration::from_millis(50));
                                    }
                                    let _ = to.shutdown(Shutdown::Both);
                                    return;
                                }
                                _ => {}
                            }
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        });
        Proxy {
            port,
            mode,
            sent,
            saw_range,
        }
    }

    fn set(&self, mode: u8) {
        self.sent.store(0, Ordering::SeqCst);
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// A registry holding `big:1`: one 24 MiB layer of random bytes (so it does not compress).
fn registry_with_big_image() -> (Registry, String) {
    let r = Registry::start(Auth::None);
    let b = Berth::new();
    let root = b.home().join("big");
    std::fs::create_dir_all(&root).unwrap();
    let mut data = vec![0u8; 24 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut data)
        .unwrap();
    std::fs::write(root.join("noise"), &data).unwrap();
    let tgz = b.home().join("big.tgz");
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    let name = format!("{}/big:1", r.host());
    ok(&b, &["import", tgz.to_str().unwrap(), &name]);
    ok(&b, &["push", &name]);
    let layer = r.skopeo_inspect("big:1", true)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    (r, layer)
}

#[test]
fn faults_give_clear_errors_and_leave_the_store_as_it_was() {
    let mut r = registry_with_busybox(Auth::None);
    let host = r.host();
    let b = Berth::new();
    ok(&b, &["pull", &format!("{host}/lib/busybox:v2s2")]);
    let before = snapshot(&b);

    fails(
        &b,
        &["pull", &format!("{host}/lib/busybox:nosuch")],
        1,
        &format!("manifest for {host}/lib/busybox:nosuch not found"),
    );
    fails(
        &b,
        &["pull", &format!("{host}/no/such/repo:1")],
        1,
        "not found",
    );
    fails(&b, &["pull", "Bad//Name"], 125, "invalid reference format");
    let nobody = berth_tests::registry::free_port();
    fails(
        &b,
        &["pull", &format!("127.0.0.1:{nobody}/x:1")],
        1,
        "cannot reach the registry",
    );
    assert_eq!(
        snapshot(&b),
        before,
        "failed pulls leave the store as it was"
    );

    // A blob whose bytes are not its digest, and a gzip layer that is not gzip.
    let work = tempfile::tempdir().unwrap();
    multi_platform(&work.path().join("layout"));
    let layout = work.path().join("layout").display().to_string();
    r.skopeo_copy(
        &format!("oci:{layout}:zstd"),
        "tampered:1",
        &["--preserve-digests"],
    );
    r.skopeo_copy(
        &format!("oci:{layout}:corrupt"),
        "corrupt:1",
        &["--preserve-digests"],
    );
    let layer = r.skopeo_inspect("tampered:1", true)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let file = r.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let before = snapshot(&b);
    fails(
        &b,
        &["pull", &format!("{host}/tampered:1")],
        1,
        "digest mismatch",
    );
    fails(&b, &["pull", &format!("{host}/corrupt:1")], 1, "corrupt");
    assert_eq!(snapshot(&b), before, "bad content never enters the store");
    assert!(
        partials(&b).is_empty(),
        "bad content is not kept to resume: {:?}",
        partials(&b)
    );

    // The registry goes away mid-layer: a clear error, then a resumed pull completes.
    let (big, big_layer) = registry_with_big_image();
    let proxy = Proxy::start(
        big.host().rsplit(':').next().unwrap().parse().unwrap(),
        6 << 20,
    );
    let via = format!("127.0.0.1:{}/big:1", proxy.port);
    let c = Berth::new();
    proxy.set(CUT);
    let cut = fails(&c, &["pull", &via], 1, "pull again to resume");
    assert!(
        cut.stderr.contains("cannot reach the registry"),
        "{}",
        cut.stderr
    );
    let kept = partials(&c);
    assert!(
        kept.iter().any(|(_, len)| *len > 0),
        "the part already downloaded is kept: {kept:?}"
    );
    assert!(
        ok(&c, &["images", "-q"]).stdout_text().is_empty(),
        "no half image is visible"
    );
    proxy.set(PASS);
    proxy.saw_range.store(false, Ordering::SeqCst);
    ok(&c, &["pull", &via]);
    assert!(
        proxy.saw_range.load(Ordering::SeqCst),
        "the second pull resumes with a ranged request"
    );
    assert!(partials(&c).is_empty());

    // kill -9 in the middle of a download: run again and it completes.
    let d = Berth::new();
    proxy.set(STALL);
    let mut child = d
        .command(&["pull", &via])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !partials(&d).iter().any(|(_, len)| *len > 0) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waiting for a pull to start downloading"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        ok(&d, &["images", "-q"]).stdout_text().is_empty(),
        "a killed pull shows no image"
    );
    proxy.set(PASS);
    ok(&d, &["pull", &via]);
    assert_eq!(ok(&d, &["images", "-q"]).stdout_text().lines().count(), 1);

    // Two pulls of one layer at once download it once.
    let e = Berth::new();
    let name = format!("{}/big:1", big.host());
    let before_gets = big.blob_gets(&big_layer);
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            e.command(&["pull", &name])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut p in pulls {
        assert!(p.wait().unwrap().success(), "two concurrent pulls of one layer must both succeed (one downloads it, the other waits)");
    }
    assert_eq!(
        big.blob_gets(&big_layer) - before_gets,
        1,
        "two concurrent pulls of one layer download it once: {}",
        big.log()
    );
    r.stop();
}

#[test]
fn basic_and_bearer_auth_with_berth_login() {
    for auth in [Auth::Basic, Auth::Token] {
        let r = registry_with_busybox(auth);
        let host = r.host();
        let b = Berth::new();
        let name = format!("{host}/lib/busybox:v2s2");
        fails(&b, &["pull", &name], 1, "pull access denied");
        let wrong = b.run(
            &["login", "-u", USER, "--password-stdin", &host],
            b"wrong\n",
        );
        assert_eq!(
            wrong.code, 1,
            "{auth:?}: a wrong password is refused: {}",
            wrong.stderr
        );
        assert!(
            wrong.stderr.contains("incorrect username or password"),
            "{auth:?}: {}",
            wrong.stderr
        );
        let login = b.run(
            &["login", "-u", USER, "--password-stdin", &host],
            format!("{PASSWORD}\n").as_bytes(),
        );
        assert_eq!(login.code, 0, "{auth:?}: {}", login.stderr);
        assert_eq!(login.stdout_text(), "Login Succeeded\n");
        let config: Value =
            serde_json::from_slice(&std::fs::read(b.docker_config().join("config.json")).unwrap())
                .unwrap();
        assert!(
            config["auths"][&host]["auth"].is_string(),
            "login keeps the credentials as the docker CLI does: {config}"
        );
        ok(&b, &["pull", &name]);
        ok(&b, &["tag", &name, &format!("{host}/mine:1")]);
        ok(&b, &["push", &format!("{host}/mine:1")]);
        assert_eq!(r.skopeo_inspect("mine:1", false)["Architecture"], "amd64");
        if auth == Auth::Token {
            let (issued, refused) = r.tokens();
            assert!(
                issued > 0 && refused > 0,
                "tokens came from the token server: {issued} issued, {refused} refused"
            );
        }
        assert_eq!(
            ok(&b, &["logout", &host]).stdout_text(),
            format!("Removing login credentials for {host}\n")
        );
        fails(
            &b,
            &["pull", &format!("{host}/mine:1")],
            1,
            "pull access denied",
        );
    }
}

#[test]
fn pulled_images_run_and_the_docker_cli_pulls_pushes_and_saves() {
    let r = registry_with_busybox(Auth::None);
    let host = r.host();
    let work = tempfile::tempdir().unwrap();
    multi_platform(&work.path().join("layout"));
    let layout = work.path().join("layout").display().to_string();
    r.skopeo_copy(
        &format!("oci:{layout}:multi"),
        "multi:1",
        &["--all", "--preserve-digests"],
    );
    r.skopeo_copy(
        &format!("oci:{layout}:zstd"),
        "zstd:1",
        &["--preserve-digests"],
    );
    let busybox = format!("docker-archive:{}", image_file("busybox"));
    r.skopeo_copy(&busybox, "lib/busybox:other", &["--format", "v2s2"]);
    r.skopeo_copy(&busybox, "fresh:1", &["--format", "v2s2"]);

    let b = Berth::new();
    ok(&b, &["machine", "start"]);
    // run of a missing image pulls it first (the index's linux/amd64 image).
    let page = b.run(
        &[
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            &format!("{host}/multi:1"),
            "/www/index.html",
        ],
        b"",
    );
    assert_eq!(page.code, 0, "run pulls a missing image: {}", page.stderr);
    assert!(
        page.stderr
            .contains(&format!("Unable to find image '{host}/multi:1' locally")),
        "{}",
        page.stderr
    );
    assert_eq!(page.stdout_text(), "<h1>hello from berth</h1>\n");
    let z = ok(
        &b,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            &format!("{host}/zstd:1"),
            "/www/index.html",
        ],
    );
    assert_eq!(
        z.stdout_text(),
        "<h1>hello from berth</h1>\n",
        "a zstd layer unpacks in the guest"
    );
    let never = b.run(
        &[
            "run",
            "--rm",
            "--pull",
            "never",
            &format!("{host}/lib/busybox:v2s2"),
            "true",
        ],
        b"",
    );
    assert_eq!(
        never.code, 125,
        "--pull never does not pull: {}",
        never.stderr
    );
    let missing = b.run(
        &["run", "--rm", &format!("{host}/lib/busybox:nosuch"), "true"],
        b"",
    );
    assert_eq!(missing.code, 125, "{}", missing.stderr);
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);
    let arm = b.run(
        &[
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            &format!("{host}/multi:1"),
            "true",
        ],
        b"",
    );
    assert_eq!(arm.code, 125, "{}", arm.stderr);
    assert!(
        arm.stderr.contains("linux/amd64 images only"),
        "{}",
        arm.stderr
    );

    // The docker CLI: pull (with RepoDigests), run of a missing image, push, save, history.
    let d = Docker::new(&b);
    let (code, out, _) = d.run(&["pull", &format!("{host}/lib/busybox:other")]);
    assert_eq!(code, 0, "docker pull: {out}");
    assert!(out.contains("Downloaded newer image"), "docker pull: {out}");
    let digests = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RepoDigests}}",
        &format!("{host}/lib/busybox:other"),
    ]);
    assert!(
        digests.contains(&format!("{host}/lib/busybox@sha256:")),
        "RepoDigests after a pull: {digests}"
    );
    let (code, _, err) = d.run(&["pull", &format!("{host}/lib/busybox:nosuch")]);
    assert_eq!(code, 1, "docker pull of a missing tag exits 1: {err}");
    assert!(err.contains("not found"), "{err}");
    let hi = d.ok(&[
        "run",
        "--rm",
        &format!("{host}/fresh:1"),
        "echo",
        "pulled by docker run",
    ]);
    assert_eq!(hi, "pulled by docker run\n");
    d.ok(&[
        "tag",
        &format!("{host}/fresh:1"),
        &format!("{host}/dpush:1"),
    ]);
    let pushed = d.ok(&["push", &format!("{host}/dpush:1")]);
    assert!(pushed.contains("digest: sha256:"), "docker push: {pushed}");
    assert_eq!(r.skopeo_inspect("dpush:1", false)["Architecture"], "amd64");
    let saved = b.home().join("docker-saved.tar");
    d.ok(&[
        "save",
        "-o",
        saved.to_str().unwrap(),
        &format!("{host}/fresh:1"),
    ]);
    let id = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        &format!("{host}/fresh:1"),
    ]);
    let other = Berth::new();
    ok(&other, &["load", "-i", saved.to_str().unwrap()]);
    let reloaded = ok(&other, &["images", "--format", "json"]).stdout_text();
    assert!(
        reloaded.contains(id.trim()),
        "docker save then berth load: the same id {id}: {reloaded}"
    );
    let history = d.ok(&["history", &format!("{host}/fresh:1")]);
    assert!(
        history.contains("cargo xtask images"),
        "docker history: {history}"
    );
    // GET /distribution: what a reference names, without pulling it.
    let socket = d
        .host
        .as_ref()
        .unwrap()
        .trim_start_matches("unix://")
        .to_string();
    let out = Command::new("curl")
        .args(["-sS", "--unix-socket", &socket])
        .arg(format!(
            "http://berth/v1.43/distribution/{host}/multi:1/json"
        ))
        .output()
        .unwrap();
    let dist: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "distribution: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(
        dist["Descriptor"]["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{dist}"
    );
    assert_eq!(
        dist["Platforms"].as_array().map(Vec::len),
        Some(2),
        "{dist}"
    );

    // docker import: a tarball becomes a one-layer image with the changes.
    let root = b.home().join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/greeting"), "imported by docker\n").unwrap();
    let tgz = b.home().join("rootfs.tgz");
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status();
    assert!(tar.unwrap().success());
    let imported = d.ok(&[
        "import",
        "-c",
        "ENV IMPORTED=yes",
        "-m",
        "by docker import",
        tgz.to_str().unwrap(),
        "dimp:1",
    ]);
    assert!(
        imported.trim().starts_with("sha256:"),
        "docker import prints the id: {imported}"
    );
    let env = d.ok(&["image", "inspect", "-f", "{{json .Config.Env}}", "dimp:1"]);
    assert!(
        env.contains("IMPORTED=yes"),
        "docker import applies -c: {env}"
    );
    let dangling = d.ok(&["import", tgz.to_str().unwrap()]);
    let pruned = d.ok(&["image", "prune", "-f"]);
    assert!(
        pruned.contains(dangling.trim()),
        "docker image prune removes the untagged import: {pruned}"
    );
    let comment = d.ok(&["history", "--format", "{{.Comment}}", "dimp:1"]);
    assert!(
        comment.contains("by docker import"),
        "docker import's -m: {comment}"
    );

    // docker login against a basic-auth registry, then a pull with its credentials.
    let locked = registry_with_busybox(Auth::Basic);
    let (code, _, err) = d.run(&["pull", &format!("{}/lib/busybox:v2s2", locked.host())]);
    assert_eq!(code, 1, "no credentials, no pull: {err}");
    let login = Command::new(berth_tests::docker::docker_bin())
        .env("DOCKER_HOST", d.host.as_ref().unwrap())
        .env("DOCKER_CONFIG", &d.config)
        .args(["login", "-u", USER, "-p", PASSWORD, &locked.host()])
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "docker login: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    assert!(String::from_utf8_lossy(&login.stdout).contains("Login Succeeded"));
    d.ok(&["pull", &format!("{}/lib/busybox:v2s2", locked.host())]);
    ok(&b, &["machine", "stop"]);
}
