//! `berth save` / `docker save`: images as a tar that `docker load` and `berth load` read
//! back to the same image IDs. Its layout is what Docker 25+ writes: `manifest.json` (the
//! legacy list of config, tags and layer files) and an OCI layout (`oci-layout`,
//! `index.json`) over the same `blobs/sha256/*`, which are the store's blobs as they are.

use std::collections::BTreeSet;
use std::io::Write;

use serde_json::{json, Value};

use super::{Digest, ImageError, ImageRecord, ImageStore, Reference};

/// One image to write, with the tags it is saved under (none when named by ID).
struct Saved {
    record: ImageRecord,
    tags: Vec<Reference>,
}

/// Writes `names` (tags or IDs) as one archive to `out`. Every name is resolved before
/// anything is written, so a bad name writes nothing.
pub fn save(store: &ImageStore, names: &[String], out: impl Write) -> Result<(), ImageError> {
    if names.is_empty() {
        return Err(ImageError::invalid("save", "name at least one image"));
    }
    let mut images: Vec<Saved> = Vec::new();
    for name in names {
        let record = store
            .find(name)?
            .ok_or_else(|| ImageError::invalid(name.clone(), "No such image"))?;
        let tag = Reference::parse(name)
            .ok()
            .filter(|r| record.tags.contains(r));
        match images.iter_mut().find(|s| s.record.config == record.config) {
            Some(saved) => saved.tags.extend(tag),
            None => images.push(Saved {
                record,
                tags: tag.into_iter().collect(),
            }),
        }
    }
    let mut tar = tar::Builder::new(out);
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let blobs = store.blobs();
    let mut manifest_json = Vec::new();
    let mut index = Vec::new();
    let mut repositories = serde_json::Map::new();
    for saved in &images {
        let r = &saved.record;
        for digest in std::iter::once(&r.config)
            .chain(&r.layers)
            .chain(std::iter::once(&r.manifest))
        {
            if written.insert(digest.clone()) {
                let size = blobs.size(digest)?;
                let reader = blobs.open_blob(digest)?;
                append(&mut tar, &blob_path(digest), size, reader)?;
            }
        }
        let tags: Vec<String> = saved.tags.iter().map(Reference::familiar).collect();
        manifest_json.push(json!({
            "Config": blob_path(&r.config),
            "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags) },
            "Layers": r.layers.iter().map(blob_path).collect::<Vec<_>>(),
        }));
        let manifest_size = blobs.size(&r.manifest)?;
        let entry = |annotations: Value| {
            json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": r.manifest.to_string(),
                "size": manifest_size,
                "annotations": annotations,
            })
        };
        if saved.tags.is_empty() {
            index.push(entry(json!({})));
        }
        for t in &saved.tags {
            index.push(entry(json!({
                "io.containerd.image.name": t.to_string(),
                "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
            })));
            let top = r
                .layers
                .last()
                .map(|d| d.hex().to_string())
                .unwrap_or_default();
            let repo = repositories
                .entry(t.familiar_repository())
                .or_insert_with(|| json!({}));
            repo[t.tag().unwrap_or("latest")] = json!(top);
        }
    }
    let small = |tar: &mut tar::Builder<_>, path: &str, value: &Value| {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        append(tar, path, bytes.len() as u64, &bytes[..])
    };
    small(&mut tar, "manifest.json", &Value::Array(manifest_json))?;
    small(
        &mut tar,
        "index.json",
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": index,
        }),
    )?;
    small(
        &mut tar,
        "oci-layout",
        &json!({"imageLayoutVersion": "1.0.0"}),
    )?;
    if !repositories.is_empty() {
        small(&mut tar, "repositories", &Value::Object(repositories))?;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|source| ImageError::Io {
            context: "cannot write the archive".into(),
            source,
        })?;
    Ok(())
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl std::io::Read,
) -> Result<(), ImageError> {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, data)
        .map_err(|source| ImageError::Io {
            context: format!("cannot write {path} to the archive"),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::load_reader;

    /// A store holding one imported image tagged `t`.
    fn store_with_image() -> (tempfile::TempDir, ImageStore, Digest) {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(tmp.path()).unwrap();
        let mut layer = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        layer.append_data(&mut h, "hi", &b"hi\n"[..]).unwrap();
        let layer = layer.into_inner().unwrap();
        let id = crate::image::import::import(
            &store,
            &layer[..],
            &crate::image::import::ImportOptions {
                changes: vec!["CMD [\"sh\"]".into()],
                message: String::new(),
                tag: Some(Reference::parse("t:1").unwrap()),
            },
        )
        .unwrap();
        (tmp, store, id)
    }

    #[test]
    fn save_then_load_gives_the_same_image() {
        let (_tmp, store, id) = store_with_image();
        let mut archive = Vec::new();
        save(&store, &["t:1".into()], &mut archive).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let other = ImageStore::open(other_dir.path()).unwrap();
        let loaded = load_reader(&other, &archive[..], "saved").unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].id, id);
        assert_eq!(loaded[0].tags[0].familiar(), "t:1");
    }

    #[test]
    fn a_missing_name_writes_nothing() {
        let (_tmp, store, _) = store_with_image();
        let mut archive = Vec::new();
        let err = save(&store, &["t:1".into(), "nosuch".into()], &mut archive).unwrap_err();
        assert!(err.to_string().contains("nosuch"), "{err}");
        assert!(archive.is_empty());
    }
}
