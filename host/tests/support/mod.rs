//! Fixtures for the `berth load` tests: tiny one-layer images written as `docker save`
//! archives and OCI layouts with the `tar` crate, and a `berth` runner with its own
//! `BERTH_HOME`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest as _, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A tar of `(name, data)` files; names go raw into the header, so hostile ones survive.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        builder.append(&h, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A one-layer image: the layer tar (one file) and its config.
pub struct Image {
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
}

impl Image {
    pub fn new(created: &str) -> Image {
        let layer = tar_of(&[("hello.txt", b"hello from berth\n")]);
        let config = json!({
            "architecture": "amd64", "os": "linux", "created": created,
            "config": {"Cmd": ["/bin/cat", "/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256(&layer))]}
        });
        let config = serde_json::to_vec(&config).unwrap();
        Image { layer, config }
    }

    pub fn id(&self) -> String {
        sha256(&self.config)
    }

    /// `docker save` (classic layout): `<id>.json`, `<v1id>/layer.tar`, `manifest.json`.
    pub fn docker_save(&self, tags: &[&str], extra: &[(&str, &[u8])]) -> Vec<u8> {
        let config_name = format!("{}.json", self.id());
        let layer_name = format!("{}/layer.tar", sha256(b"v1 layer id"));
        let manifest = json!([{"Config": config_name, "RepoTags": tags, "Layers": [layer_name]}]);
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let mut files: Vec<(&str, &[u8])> = vec![
            (&layer_name, &self.layer),
            (&config_name, &self.config),
            ("manifest.json", &manifest),
        ];
        files.extend_from_slice(extra);
        tar_of(&files)
    }

    /// An OCI layout with a gzip layer: `(path, bytes)` of every file.
    pub fn oci_files(&self, ref_name: &str) -> Vec<(String, Vec<u8>)> {
        let layer = gzip(&self.layer);
        let desc = |media: &str, bytes: &[u8]| {
            let digest = format!("sha256:{}", sha256(bytes));
            json!({"mediaType": media, "digest": digest, "size": bytes.len()})
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc("application/vnd.oci.image.config.v1+json", &self.config),
            "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &layer)]
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let mut top = desc("application/vnd.oci.image.manifest.v1+json", &manifest);
        top["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
        let index = json!({"schemaVersion": 2, "manifests": [top]});
        let blob = |b: &[u8]| (format!("blobs/sha256/{}", sha256(b)), b.to_vec());
        vec![
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".into(), serde_json::to_vec(&index).unwrap()),
            blob(&manifest),
            blob(&self.config),
            blob(&layer),
        ]
    }
}

pub fn write_dir(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

pub fn tar_files(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    tar_of(&refs)
}

pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn berth(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .env("BERTH_HOME", self.dir.path())
            .env_remove("BERTH_LOG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(bytes) = stdin {
            child.stdin.take().unwrap().write_all(bytes).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Writes `bytes` to a file and runs `berth load -i` on it.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Output {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        self.berth(&["load", "-i", path.to_str().unwrap()], None)
    }

    pub fn index(&self) -> Option<Vec<u8>> {
        std::fs::read(self.dir.path().join("images/index.json")).ok()
    }

    /// `berth images` without its header.
    pub fn rows(&self) -> Vec<Vec<String>> {
        let out = ok(self.berth(&["images"], None));
        let mut lines = out.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap()
            .split("  ")
            .filter(|c| !c.is_empty())
            .collect();
        let header: Vec<&str> = header.iter().map(|c| c.trim()).collect();
        assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
        lines
            .map(|l| {
                l.split("   ")
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect()
    }
}

pub fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "berth failed ({}): {stderr}",
        out.status
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Exit 125 with a message; returns the message.
pub fn refused(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(125),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "nothing reported as loaded");
    String::from_utf8(out.stderr).unwrap()
}
