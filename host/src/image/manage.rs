//! `tag` and `rmi`: changes to the index by name, with Docker's rules.

use super::{Digest, ImageError, ImageStore, Reference};

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// What `rmi` did, in Docker's order: untagged references, then deleted ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Untagged(String),
    Deleted(String),
}

/// `docker tag SOURCE TARGET`.
pub fn tag(store: &ImageStore, source: &str, target: &str) -> Result<(), ManageError> {
    let image = store
        .find(source)?
        .ok_or_else(|| ManageError::NotFound(source.to_string()))?;
    let mut reference = Reference::parse(target)
        .map_err(|e| ManageError::Conflict(format!("invalid reference format {target:?}: {e}")))?;
    if reference.digest().is_some() {
        return Err(ManageError::Conflict(format!(
            "refusing to create a tag with a digest reference: {target}"
        )));
    }
    if reference.tag().is_none() {
        reference = Reference::parse(&format!("{target}:latest"))?;
    }
    store.index().update(|images| {
        let mut record = images
            .get(image.id())
            .cloned()
            .ok_or_else(|| ImageError::invalid(source, "removed meanwhile"))?;
        record.tags = vec![reference.clone()];
        record.intermediate = false;
        images.add(record);
        Ok(())
    })?;
    Ok(())
}

/// `docker rmi NAME`: a tag given by name is removed; the image goes when no tag is left
/// (or when named by id with a single tag, or `force`). Refused while a container uses
/// it, unless `force`. `in_use` lists (image id, container id) pairs.
pub fn remove(
    store: &ImageStore,
    name: &str,
    force: bool,
    in_use: &[(String, String)],
) -> Result<Vec<Removal>, ManageError> {
    let image = store
        .find(name)?
        .ok_or_else(|| ManageError::NotFound(name.to_string()))?;
    let id = image.id().clone();
    let by_tag = Reference::parse(name)
        .ok()
        .filter(|r| image.tags.contains(r));
    let user = in_use.iter().find(|(img, _)| *img == id.to_string());
    let mut out = Vec::new();
    let deleted_blobs = store.index().update(|images| {
        let mut out_blobs: Vec<Digest> = Vec::new();
        let Some(record) = images.get(&id).cloned() else {
            return Ok(out_blobs);
        };
        let untag_only = by_tag.is_some() && record.tags.len() > 1;
        if untag_only {
            if let Some(t) = &by_tag {
                images.untag(t);
                out.push(Removal::Untagged(t.familiar()));
            }
            return Ok(out_blobs);
        }
        if let (Some((_, container)), false) = (user, force) {
            return Err(ImageError::invalid(
                name,
                format!(
                    "conflict: unable to delete {} - image is being used by container {}",
                    id.short(),
                    &container[..container.len().min(12)]
                ),
            ));
        }
        if by_tag.is_none() && record.tags.len() > 1 && !force {
            return Err(ImageError::invalid(
                name,
                format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    id.short()
                ),
            ));
        }
        for t in &record.tags {
            out.push(Removal::Untagged(t.familiar()));
        }
        images.remove(&id);
        out.push(Removal::Deleted(id.to_string()));
        let blobs = std::iter::once(record.manifest.clone())
            .chain(std::iter::once(record.config.clone()))
            .chain(record.layers.iter().cloned());
        out_blobs.extend(blobs.filter(|b| !images.uses_blob(b)));
        Ok(out_blobs)
    });
    let deleted_blobs = deleted_blobs.map_err(|e| match e {
        ImageError::Invalid { reason, .. } if reason.starts_with("conflict") => {
            ManageError::Conflict(reason)
        }
        other => ManageError::Image(other),
    })?;
    for blob in deleted_blobs {
        let _ = std::fs::remove_file(store.blobs().path(&blob));
    }
    Ok(out)
}

/// What `image prune` may remove.
#[derive(Debug, Clone, Default)]
pub struct PruneFilter {
    /// `-a`: every image no container uses, not only untagged ones.
    pub all: bool,
    /// `until=`: only images created before this (unix seconds).
    pub until: Option<i64>,
}

/// What `image prune` removed.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    pub removed: Vec<Removal>,
    /// Bytes of blobs deleted.
    pub reclaimed: u64,
}

/// `docker image prune [-a]`: removes untagged images (with `all`, every image) that no
/// container uses, and the blobs no image still needs.
pub fn prune(
    store: &ImageStore,
    filter: &PruneFilter,
    in_use: &[(String, String)],
) -> Result<Pruned, ManageError> {
    let mut out = Pruned::default();
    let doomed_blobs = store.index().update(|images| {
        let doomed: Vec<_> = images
            .iter()
            .filter(|r| filter.all || (r.tags.is_empty() && !r.intermediate))
            .filter(|r| !in_use.iter().any(|(img, _)| *img == r.id().to_string()))
            .filter(|r| match filter.until {
                None => true,
                Some(until) => r
                    .created
                    .as_deref()
                    .and_then(super::time::parse_rfc3339)
                    .is_some_and(|c| c < until),
            })
            .cloned()
            .collect();
        let mut blobs: Vec<Digest> = Vec::new();
        for record in &doomed {
            for t in &record.tags {
                out.removed.push(Removal::Untagged(t.familiar()));
            }
            images.remove(record.id());
            out.removed.push(Removal::Deleted(record.id().to_string()));
        }
        for record in &doomed {
            let all = std::iter::once(&record.manifest)
                .chain(std::iter::once(&record.config))
                .chain(&record.layers);
            for b in all {
                if !images.uses_blob(b) && !blobs.contains(b) {
                    blobs.push(b.clone());
                }
            }
        }
        Ok(blobs)
    })?;
    for blob in doomed_blobs {
        out.reclaimed += store.blobs().size(&blob).unwrap_or(0);
        let _ = std::fs::remove_file(store.blobs().path(&blob));
    }
    Ok(out)
}
