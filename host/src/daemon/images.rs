//! Image endpoints: list is in `api`; load, inspect, tag and remove are here.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Response;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::engine::Engine;
use super::error::ApiError;
use super::http::{self, Body};
use super::views;
use crate::image::manage::{self, ManageError, Removal};

/// Copies a request body to a temporary file beside the blobs (deleted when dropped).
pub async fn spool_body(
    engine: &Engine,
    mut body: Incoming,
) -> Result<tempfile::NamedTempFile, ApiError> {
    let tmp_dir = engine.images.root().join("tmp");
    std::fs::create_dir_all(&tmp_dir)?;
    let spool = tempfile::Builder::new()
        .prefix("upload-")
        .tempfile_in(&tmp_dir)?;
    let mut file = tokio::fs::File::from_std(spool.reopen()?);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            file.write_all(data).await?;
        }
    }
    file.flush().await?;
    Ok(spool)
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::NotFound(_) => ApiError::not_found(e.to_string()),
            ManageError::Conflict(m) => ApiError::conflict(m),
            ManageError::Image(i) => i.into(),
        }
    }
}

/// `POST /images/load`: the body is a `docker save` (or OCI layout) tar. It is spooled to
/// a file, then imported; the answer is Docker's JSON message stream.
pub async fn load(
    engine: Arc<Engine>,
    body: Incoming,
    quiet: bool,
) -> Result<Response<Body>, ApiError> {
    let spool = spool_body(&engine, body).await?;
    let store = engine.images.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let r = crate::image::load_path(&store, spool.path());
        drop(spool);
        r
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let loaded = loaded.map_err(|e| ApiError::bad_request(crate::error::chain(&e)))?;
    let mut out = String::new();
    for image in loaded {
        let lines: Vec<String> = match image.tags.is_empty() {
            true => vec![format!("Loaded image ID: {}", image.id)],
            false => image
                .tags
                .iter()
                .map(|t| format!("Loaded image: {}", t.familiar()))
                .collect(),
        };
        for line in lines {
            out.push_str(&json!({"stream": format!("{line}\n")}).to_string());
            out.push('\n');
        }
    }
    let _ = quiet;
    Ok(http::full(200, "application/json", Bytes::from(out)))
}

pub fn inspect(engine: &Engine, name: &str) -> Result<Response<Body>, ApiError> {
    let image = engine
        .images
        .find(name)?
        .ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
    let config: Value = serde_json::from_slice(&engine.images.blobs().get(&image.config)?)
        .map_err(|e| ApiError::internal(format!("image {name}: bad config: {e}")))?;
    Ok(http::json(200, &views::image_inspect(&image, &config)))
}

pub fn tag(
    engine: &Engine,
    name: &str,
    q: &std::collections::HashMap<String, String>,
) -> Result<(), ApiError> {
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("repo is required"))?;
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.clone(),
    };
    manage::tag(&engine.images, name, &target)?;
    if let Ok(Some(i)) = engine.images.find(&target) {
        engine.events.image(&i.id().to_string(), &target, "tag");
    }
    Ok(())
}

pub fn remove(engine: &Engine, name: &str, force: bool) -> Result<Value, ApiError> {
    let in_use = super::state::images_in_use(engine.machines_dir());
    let removed = manage::remove(&engine.images, name, force, &in_use)?;
    Ok(Value::Array(
        removed
            .into_iter()
            .map(|r| match r {
                Removal::Untagged(t) => {
                    engine.events.image(&t, &t, "untag");
                    json!({"Untagged": t})
                }
                Removal::Deleted(id) => {
                    engine.events.image(&id, &id, "delete");
                    json!({"Deleted": id})
                }
            })
            .collect(),
    ))
}
