//! Fixtures of the registry tests: the test images as files, an OCI layout written by
//! hand (several platforms, zstd, uncompressed and corrupt layers), a registry holding
//! busybox, a root file system tarball, and a TCP proxy that breaks or stalls downloads.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::registry::{Auth, Registry};

pub fn assets() -> PathBuf {
    PathBuf::from(std::env::var_os("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS"))
}

/// A test image tarball that `cargo xtask images` built.
pub fn image_file(name: &str) -> String {
    assets()
        .join(format!("images/{name}.tar"))
        .display()
        .to_string()
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// An OCI image layout being written by the test.
pub struct Layout {
    dir: PathBuf,
    top: Vec<Value>,
}

impl Layout {
    /// The httpd test image's layout (an OCI layout tar), unpacked.
    pub fn from_httpd(dir: &Path) -> Layout {
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

    pub fn blob(&self, bytes: &[u8]) -> (String, usize) {
        let digest = sha256(bytes);
        let path = self
            .dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        std::fs::write(path, bytes).unwrap();
        (digest, bytes.len())
    }

    pub fn read(&self, digest: &str) -> Vec<u8> {
        std::fs::read(
            self.dir
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    }

    /// The original image's manifest and config.
    pub fn original(&self) -> (Value, Value) {
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
    pub fn image(&self, manifest: &Value, config: &Value) -> (Value, String) {
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

    pub fn name(&mut self, mut desc: Value, name: &str) {
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        self.top.push(desc);
    }

    pub fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.top});
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }
}

/// Image ids (config digests) of the layout written by `multi_platform`.
pub struct Multi {
    pub amd64: String,
    pub arm64: String,
    /// The layout's directory.
    pub dir: PathBuf,
}

impl Multi {
    /// Copies the layout's image `name` to `dest` in `r` as it is (skopeo would
    /// otherwise reuse a blob it knows for the same content); `multi` with its index.
    pub fn copy(&self, r: &Registry, name: &str, dest: &str) {
        let mut extra = vec!["--preserve-digests"];
        if name == "multi" {
            extra.push("--all");
        }
        r.skopeo_copy(&format!("oci:{}:{name}", self.dir.display()), dest, &extra);
    }
}

/// Writes `multi` (an index of linux/amd64 and linux/arm64), `arm` (an arm64-only
/// manifest), `zstd` and `plain` (the image with a zstd and an uncompressed layer), and
/// `corrupt` (a gzip layer that is not gzip, with its true digest).
pub fn multi_platform(dir: &Path) -> Multi {
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
    Multi {
        amd64,
        arm64,
        dir: dir.to_path_buf(),
    }
}

/// A registry holding the busybox test image as Docker v2 schema 2 (`lib/busybox:v2s2`).
pub fn registry_with_busybox(auth: Auth) -> Registry {
    let r = Registry::start(auth);
    r.skopeo_copy(
        &format!("docker-archive:{}", image_file("busybox")),
        "lib/busybox:v2s2",
        &["--format", "v2s2"],
    );
    r
}

/// A tarball (gzip) of a root file system holding one file, `path` with `content`,
/// written under `dir`.
pub fn rootfs_tarball(dir: &Path, path: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let root = dir.join("rootfs");
    let file = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, content).unwrap();
    let tgz = dir.join("rootfs.tgz");
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success(), "tar of the root file system");
    tgz
}

/// Forwards 127.0.0.1:port to the registry; can cut or stall downloads after a byte budget.
pub struct Proxy {
    pub port: u16,
    /// 0 passes everything, 1 cuts connections past the budget, 2 stalls them.
    pub mode: Arc<AtomicU8>,
    pub sent: Arc<AtomicU64>,
    pub saw_range: Arc<AtomicBool>,
}

pub const PASS: u8 = 0;
pub const CUT: u8 = 1;
pub const STALL: u8 = 2;

impl Proxy {
    pub fn start(target: u16, budget: u64) -> Proxy {
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

    pub fn set(&self, mode: u8) {
        self.sent.store(0, Ordering::SeqCst);
        self.mode.store(mode, Ordering::SeqCst);
    }
}
