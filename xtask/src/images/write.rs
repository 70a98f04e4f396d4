//! An image (one layer, one config) written as a `docker save` tarball or an OCI layout.

use std::io::Write;

use anyhow::Result;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::recipe::Recipe;

const EPOCH: &str = "1970-01-01T00:00:00Z";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub struct Image {
    /// `docker.io/...`-less reference as written in the recipe: `name:tag`.
    reference: String,
    layer_tar: Vec<u8>,
    layer_gz: Vec<u8>,
    config: Vec<u8>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn hex(digest: &str) -> &str {
    &digest["sha256:".len()..]
}

impl Image {
    pub fn new(recipe: &Recipe, layer_tar: Vec<u8>) -> Result<Image> {
        // A gzip header with mtime 0 and no file name: the same bytes on every build.
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::default());
        gz.write_all(&layer_tar)?;
        let layer_gz = gz.finish()?;
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "created": EPOCH,
            "config": recipe.config,
            "rootfs": { "type": "layers", "diff_ids": [digest(&layer_tar)] },
            "history": [{ "created": EPOCH, "created_by": format!("cargo xtask images ({})", recipe.name) }],
        });
        Ok(Image {
            reference: format!("{}:{}", recipe.name, recipe.tag),
            config: serde_json::to_vec(&config)?,
            layer_tar,
            layer_gz,
        })
    }

    pub fn config_digest(&self) -> String {
        digest(&self.config)
    }

    /// The classic `docker save` layout: manifest.json, `<id>.json`, `<diff id>/layer.tar`.
    pub fn docker_save(&self) -> Result<Vec<u8>> {
        let config_hex = hex(&self.config_digest()).to_string();
        let layer_dir = hex(&digest(&self.layer_tar)).to_string();
        let (repo, tag) = self
            .reference
            .rsplit_once(':')
            .unwrap_or((&self.reference, "latest"));
        let manifest = json!([{
            "Config": format!("{config_hex}.json"),
            "RepoTags": [self.reference],
            "Layers": [format!("{layer_dir}/layer.tar")],
        }]);
        let repositories = json!({ repo: { tag: layer_dir } });
        tar_of(&[
            (format!("{config_hex}.json"), self.config.clone()),
            (format!("{layer_dir}/VERSION"), b"1.0".to_vec()),
            (format!("{layer_dir}/layer.tar"), self.layer_tar.clone()),
            ("manifest.json".into(), serde_json::to_vec(&manifest)?),
            ("repositories".into(), serde_json::to_vec(&repositories)?),
        ])
    }

    /// An OCI image layout (oci-layout, index.json, blobs/sha256/...) as one tar.
    pub fn oci_layout(&self) -> Result<Vec<u8>> {
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": { "mediaType": CONFIG_TYPE, "digest": self.config_digest(), "size": self.config.len() },
            "layers": [{ "mediaType": LAYER_TYPE, "digest": digest(&self.layer_gz), "size": self.layer_gz.len() }],
        }))?;
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": MANIFEST_TYPE,
                "digest": digest(&manifest),
                "size": manifest.len(),
                "platform": { "architecture": "amd64", "os": "linux" },
                "annotations": {
                    "org.opencontainers.image.ref.name": self.reference,
                    "io.containerd.image.name": format!("docker.io/{}", self.reference),
                },
            }],
        });
        let blob = |bytes: &[u8]| {
            (
                format!("blobs/sha256/{}", hex(&digest(bytes))),
                bytes.to_vec(),
            )
        };
        tar_of(&[
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".into(), serde_json::to_vec(&index)?),
            blob(&manifest),
            blob(&self.config),
            blob(&self.layer_gz),
        ])
    }
}

/// A deterministic tar of regular files (parents added as directories).
fn tar_of(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs_done = std::collections::BTreeSet::new();
    for (path, data) in files {
        let mut prefix = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, p)| p.to_vec())
            .unwrap_or_default()
        {
            prefix.push_str(part);
            prefix.push('/');
            if dirs_done.insert(prefix.clone()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                builder.append_data(&mut h, &prefix, &[][..])?;
            }
        }
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        builder.append_data(&mut h, path, &data[..])?;
    }
    Ok(builder.into_inner()?)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}
