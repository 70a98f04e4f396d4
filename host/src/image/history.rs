//! `berth history` / `docker history`: an image's build steps from its config's `history`,
//! newest first, each with the layer it made (Docker's `GET /images/{name}/history`).

use serde::{Deserialize, Serialize};

use super::{ImageError, ImageRecord, ImageStore};

/// One step, with Docker's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The image ID for the newest step, `<missing>` for the others (as Docker, whose
    /// intermediate images are not kept).
    #[serde(rename = "Id")]
    pub id: String,
    /// Unix seconds.
    #[serde(rename = "Created")]
    pub created: i64,
    #[serde(rename = "CreatedBy")]
    pub created_by: String,
    #[serde(rename = "Tags")]
    pub tags: Option<Vec<String>>,
    /// The size of the step's layer blob as stored (0 for a step without a layer).
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "Comment")]
    pub comment: String,
}

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    history: Vec<Entry>,
}

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    empty_layer: bool,
}

/// The steps of `image`, newest first.
pub fn history(store: &ImageStore, image: &ImageRecord) -> Result<Vec<Step>, ImageError> {
    let bytes = store.blobs().get(&image.config)?;
    let config: Config = serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
        what: format!("config {}", image.config),
        source,
    })?;
    let mut entries = config.history;
    if entries.is_empty() {
        entries = image.layers.iter().map(|_| Entry::default()).collect();
    }
    let sizes: Vec<u64> = image
        .layers
        .iter()
        .map(|d| store.blobs().size(d).unwrap_or(0))
        .collect();
    let mut layer = 0;
    let mut steps = Vec::new();
    for e in &entries {
        let size = if e.empty_layer {
            0
        } else {
            let s = sizes.get(layer).copied().unwrap_or(0);
            layer += 1;
            s
        };
        let created = e
            .created
            .as_deref()
            .or(image.created.as_deref())
            .and_then(super::time::parse_rfc3339)
            .unwrap_or(0);
        steps.push(Step {
            id: "<missing>".into(),
            created,
            created_by: e.created_by.clone().unwrap_or_default(),
            tags: None,
            size,
            comment: e.comment.clone().unwrap_or_default(),
        });
    }
    steps.reverse();
    if let Some(top) = steps.first_mut() {
        top.id = image.id().to_string();
        if !image.tags.is_empty() {
            top.tags = Some(image.tags.iter().map(|t| t.familiar()).collect());
        }
    }
    Ok(steps)
}
