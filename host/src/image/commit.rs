//! `docker commit`: a new image from a base image and one more layer (a container's
//! changes), with the container's config and Dockerfile-style changes applied.

use std::io::Read;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::layer::{self, StoredLayer};
use super::{Digest, ImageError, ImageRecord, ImageStore, Reference};

/// What the new image gets besides its layer.
pub struct CommitOptions {
    /// The container's config (Docker's `Config` object), before `changes`.
    pub config: Value,
    /// Dockerfile instructions applied to the config (`--change`).
    pub changes: Vec<String>,
    pub comment: String,
    pub author: String,
    /// The history line's `created_by`: the container's command.
    pub created_by: String,
    /// The container's id, for the config's `container` field.
    pub container: String,
    pub tag: Option<Reference>,
}

/// Stores `layer` (an uncompressed tar) on top of `base` and records the new image.
/// Returns the image ID.
pub fn commit(
    store: &ImageStore,
    base: &ImageRecord,
    layer_tar: impl Read,
    opts: &CommitOptions,
) -> Result<Digest, ImageError> {
    let blobs = store.blobs();
    let base_config: Value =
        serde_json::from_slice(&blobs.get(&base.config)?).map_err(|source| ImageError::Json {
            what: "the base image's config".into(),
            source,
        })?;
    let mut config: Map<String, Value> = match &opts.config {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for change in &opts.changes {
        super::import::apply_change(&mut config, change)?;
    }
    let stored = layer::store_layer(
        blobs,
        "the container's changes",
        layer_tar,
        None,
        None,
        true,
    )?;
    let created = super::time::rfc3339_nanos(SystemTime::now());
    let mut document = match base_config {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    document.insert("created".into(), json!(created));
    document.insert("config".into(), Value::Object(config));
    document.insert("container".into(), json!(opts.container));
    if !opts.author.is_empty() {
        document.insert("author".into(), json!(opts.author));
    }
    let mut diff_ids: Vec<Value> = base.diff_ids.iter().map(|d| json!(d.to_string())).collect();
    diff_ids.push(json!(stored.diff_id.to_string()));
    document.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    let mut history = document
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut entry = json!({"created": created, "created_by": opts.created_by});
    if !opts.comment.is_empty() {
        entry["comment"] = json!(opts.comment);
    }
    if !opts.author.is_empty() {
        entry["author"] = json!(opts.author);
    }
    history.push(entry);
    document.insert("history".into(), Value::Array(history));
    let config_bytes =
        serde_json::to_vec(&Value::Object(document)).map_err(|source| ImageError::Json {
            what: "image config".into(),
            source,
        })?;
    let mut layers = base_layers(store, base)?;
    layers.push(stored);
    layer::store_image(
        store,
        &config_bytes,
        layers,
        created,
        opts.tag.iter().cloned().collect(),
    )
}

/// The base image's layers as stored, with their compression from its manifest.
fn base_layers(store: &ImageStore, base: &ImageRecord) -> Result<Vec<StoredLayer>, ImageError> {
    let manifest: Value =
        serde_json::from_slice(&store.blobs().get(&base.manifest)?).map_err(|source| {
            ImageError::Json {
                what: "the base image's manifest".into(),
                source,
            }
        })?;
    let described = manifest["layers"].as_array().cloned().unwrap_or_default();
    base.layers
        .iter()
        .zip(&base.diff_ids)
        .enumerate()
        .map(|(i, (digest, diff_id))| {
            let media = described
                .get(i)
                .and_then(|d| d["mediaType"].as_str())
                .unwrap_or("")
                .to_string();
            let size = std::fs::metadata(store.blobs().path(digest))
                .map(|m| m.len())
                .map_err(|e| ImageError::invalid(format!("layer {digest}"), e.to_string()))?;
            Ok(StoredLayer {
                digest: digest.clone(),
                size,
                diff_id: diff_id.clone(),
                gzip: media.contains("gzip"),
                zstd: media.contains("zstd"),
            })
        })
        .collect()
}

/// One image build step's result: `base` (or nothing, `FROM scratch`) with `config` as
/// the image's `config`, one more layer when `layer_tar` is given, and a history entry
/// for `created_by` (`empty_layer` when no layer was added). Untagged; returns its ID.
pub fn derive(
    store: &ImageStore,
    base: Option<&ImageRecord>,
    layer_tar: Option<&mut dyn Read>,
    config: &Value,
    created_by: &str,
) -> Result<Digest, ImageError> {
    let blobs = store.blobs();
    let mut document = match base {
        Some(base) => match serde_json::from_slice(&blobs.get(&base.config)?).map_err(|source| {
            ImageError::Json {
                what: "the base image's config".into(),
                source,
            }
        })? {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        None => {
            let mut m = Map::new();
            m.insert("architecture".into(), json!("amd64"));
            m.insert("os".into(), json!("linux"));
            m
        }
    };
    let mut layers = match base {
        Some(base) => base_layers(store, base)?,
        None => Vec::new(),
    };
    let mut diff_ids: Vec<Value> = base
        .map(|b| b.diff_ids.iter().map(|d| json!(d.to_string())).collect())
        .unwrap_or_default();
    let created = super::time::rfc3339_nanos(SystemTime::now());
    let mut entry = json!({"created": created, "created_by": created_by});
    match layer_tar {
        Some(tar) => {
            let stored =
                layer::store_layer(blobs, "the build step's changes", tar, None, None, true)?;
            diff_ids.push(json!(stored.diff_id.to_string()));
            layers.push(stored);
        }
        None => entry["empty_layer"] = json!(true),
    }
    document.insert("created".into(), json!(created));
    document.insert("config".into(), config.clone());
    document.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    let mut history = document
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    history.push(entry);
    document.insert("history".into(), Value::Array(history));
    document.remove("container");
    let config_bytes =
        serde_json::to_vec(&Value::Object(document)).map_err(|source| ImageError::Json {
            what: "image config".into(),
            source,
        })?;
    let id = layer::store_image(store, &config_bytes, layers, created, Vec::new())?;
    set_intermediate(store, &id, true)?;
    Ok(id)
}

/// Marks an untagged image as a build step's (hidden) or as a result (shown).
pub fn set_intermediate(
    store: &ImageStore,
    id: &Digest,
    intermediate: bool,
) -> Result<(), ImageError> {
    store.index().update(|images| {
        if let Some(mut r) = images.get(id).cloned() {
            let wanted = intermediate && r.tags.is_empty();
            if r.intermediate != wanted {
                r.intermediate = wanted;
                images.add(r);
            }
        }
        Ok(())
    })
}
