//! The `docker save` importer: `manifest.json` lists each image's config, tags and layer
//! files. Layers are stored gzip-compressed (compressing uncompressed `layer.tar`s), their
//! diff_ids checked against the config, and an OCI manifest is written for each image.

use serde::Deserialize;

use super::archive::Source;
use super::layer::{self, StoredLayer};
use super::{BlobStore, Digest, ImageError, ImageRecord, Reference};

/// One element of `manifest.json`.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// Stores the blobs of every image in the archive; the caller records them in the index.
pub(crate) fn import(src: &dyn Source, blobs: &BlobStore) -> Result<Vec<ImageRecord>, ImageError> {
    let bytes = src.read_small("manifest.json")?;
    let entries: Vec<Entry> =
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: format!("{}: manifest.json", src.name()),
            source,
        })?;
    entries.iter().map(|e| import_one(src, blobs, e)).collect()
}

fn import_one(
    src: &dyn Source,
    blobs: &BlobStore,
    entry: &Entry,
) -> Result<ImageRecord, ImageError> {
    let tags = entry
        .repo_tags
        .iter()
        .flatten()
        .map(|t| Reference::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let what = format!("{}: {}", src.name(), entry.config);
    let config_bytes = src.read_small(&entry.config)?;
    let config_digest = Digest::of(&config_bytes);
    if let Some(claimed) = claimed_digest(&entry.config).filter(|c| *c != config_digest) {
        return Err(ImageError::DigestMismatch {
            what,
            expected: claimed,
            actual: config_digest,
        });
    }
    let config = layer::parse_config(&config_bytes, &what)?;
    let diff_ids = layer::diff_ids(&config, entry.layers.len(), &what)?;
    let mut layers: Vec<StoredLayer> = Vec::with_capacity(entry.layers.len());
    for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
        let what = format!("{}: {path}", src.name());
        let (reader, size) = src.open(path)?;
        let claimed = claimed_digest(path);
        let stored = layer::store_layer(blobs, &what, reader, claimed.as_ref(), Some(size), true)?;
        layer::check_diff_id(&what, diff_id, &stored.diff_id)?;
        layers.push(stored);
    }
    blobs.put(&config_bytes[..], Some(&config_digest))?;
    let manifest = layer::oci_manifest(&config_digest, config_bytes.len() as u64, &layers)?;
    let manifest = blobs.put(&manifest[..], None)?;
    Ok(layer::record(
        manifest,
        config_digest,
        layers,
        config.created().clone(),
        tags,
    ))
}

/// The digest a file's name claims for its content: `blobs/sha256/<hex>` (Docker 25+) or a
/// config named `<hex>.json` (older Docker). Legacy `<id>/layer.tar` names claim nothing.
fn claimed_digest(path: &str) -> Option<Digest> {
    let path = path.trim_start_matches("./");
    if let Some(hex) = path.strip_prefix("blobs/sha256/") {
        return Digest::from_hex(hex).ok();
    }
    let name = path.rsplit('/').next()?;
    Digest::from_hex(name.strip_suffix(".json")?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_claim_a_digest() {
        let d = Digest::of(b"x");
        let hex = d.hex().to_string();
        assert_eq!(claimed_digest(&format!("{hex}.json")), Some(d.clone()));
        assert_eq!(
            claimed_digest(&format!("blobs/sha256/{hex}")),
            Some(d.clone())
        );
        assert_eq!(claimed_digest(&format!("./blobs/sha256/{hex}")), Some(d));
        assert_eq!(claimed_digest(&format!("{hex}/layer.tar")), None);
        assert_eq!(claimed_digest("config.json"), None);
        assert_eq!(claimed_digest("blobs/sha256/nothex"), None);
    }

    #[test]
    fn manifest_entries_parse() {
        let json = r#"[{"Config":"c.json","RepoTags":null,"Layers":["a/layer.tar"]},
                       {"Config":"d.json","RepoTags":["busybox:latest"],"Layers":[]}]"#;
        let entries: Vec<Entry> = serde_json::from_str(json).unwrap();
        assert_eq!(entries[0].repo_tags, None);
        assert_eq!(entries[0].layers, ["a/layer.tar"]);
        assert_eq!(
            entries[1].repo_tags.as_deref(),
            Some(&["busybox:latest".to_string()][..])
        );
    }
}
