//! The OCI image layout importer: `oci-layout`, `index.json` and `blobs/sha256/*`. Nested
//! indexes are followed to their linux/amd64 manifest; every blob is verified against its
//! descriptor (digest and size) as it is copied. Images are tagged from the
//! `io.containerd.image.name` annotation, else from `org.opencontainers.image.ref.name` when it
//! is a name (`busybox:1`, `docker.io/x/y:2`); a bare tag (`latest`) leaves the image untagged.

use oci_spec::image::{
    Arch, Descriptor, ImageIndex, ImageManifest, MediaType, OciLayout, Os, Platform,
    ANNOTATION_REF_NAME,
};
use serde::de::DeserializeOwned;

use super::archive::Source;
use super::layer::{self, StoredLayer};
use super::{BlobStore, Digest, ImageError, ImageRecord, Reference};

const CONTAINERD_NAME: &str = "io.containerd.image.name";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// How deep indexes may nest.
const MAX_DEPTH: usize = 4;

/// Stores the blobs of every linux/amd64 image in the layout.
pub(crate) fn import(src: &dyn Source, blobs: &BlobStore) -> Result<Vec<ImageRecord>, ImageError> {
    let layout: OciLayout = json(src, "oci-layout", &src.read_small("oci-layout")?)?;
    if !layout.image_layout_version().starts_with("1.") {
        return Err(ImageError::Unsupported(format!(
            "{}: OCI layout version {} is not supported",
            src.name(),
            layout.image_layout_version()
        )));
    }
    let index: ImageIndex = json(src, "index.json", &src.read_small("index.json")?)?;
    let wanted: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| d.platform().as_ref().is_none_or(is_linux_amd64))
        .collect();
    if wanted.is_empty() {
        return Err(no_platform(src, index.manifests()));
    }
    let mut images = Vec::new();
    for desc in wanted {
        let (manifest_desc, bytes) = resolve(src, desc, 0)?;
        images.push(import_manifest(
            src,
            blobs,
            &manifest_desc,
            &bytes,
            tags_of(desc),
        )?);
    }
    Ok(images)
}

fn json<T: DeserializeOwned>(src: &dyn Source, what: &str, bytes: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: format!("{}: {what}", src.name()),
        source,
    })
}

fn is_linux_amd64(p: &Platform) -> bool {
    *p.os() == Os::Linux && *p.architecture() == Arch::Amd64
}

fn no_platform(src: &dyn Source, manifests: &[Descriptor]) -> ImageError {
    let platforms: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| format!("{}/{}", p.os(), p.architecture()))
        .collect();
    ImageError::Unsupported(format!(
        "{}: no linux/amd64 image (found: {})",
        src.name(),
        if platforms.is_empty() {
            "none".into()
        } else {
            platforms.join(", ")
        }
    ))
}

/// The path and digest of a descriptor's blob; only sha256 is accepted.
fn blob_of(desc: &Descriptor) -> Result<(String, Digest), ImageError> {
    let digest = Digest::parse(desc.digest().as_ref())?;
    Ok((format!("blobs/sha256/{}", digest.hex()), digest))
}

/// A small blob (manifest, index, config), verified against its descriptor.
fn read_blob(src: &dyn Source, desc: &Descriptor) -> Result<(Vec<u8>, Digest), ImageError> {
    let (path, digest) = blob_of(desc)?;
    let bytes = src.read_small(&path)?;
    let what = || format!("{}: {path}", src.name());
    let actual = Digest::of(&bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what: what(),
            expected: digest,
            actual,
        });
    }
    if bytes.len() as u64 != desc.size() {
        return Err(ImageError::SizeMismatch {
            what: what(),
            expected: desc.size(),
            actual: bytes.len() as u64,
        });
    }
    Ok((bytes, digest))
}

/// The media type of a manifest or index: its descriptor's, or the document's own field.
fn media_type(desc: &Descriptor, bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    match desc.media_type() {
        MediaType::Other(m) if m.is_empty() => serde_json::from_slice::<Doc>(bytes)
            .ok()
            .and_then(|d| d.media_type)
            .unwrap_or_default(),
        m => m.to_string(),
    }
}

/// Follows `desc` through indexes to an image manifest: its descriptor and bytes.
fn resolve(
    src: &dyn Source,
    desc: &Descriptor,
    depth: usize,
) -> Result<(Descriptor, Vec<u8>), ImageError> {
    let (bytes, digest) = read_blob(src, desc)?;
    let media = media_type(desc, &bytes);
    let what = format!("{}: {digest}", src.name());
    if media == MediaType::ImageManifest.to_string() || media == DOCKER_MANIFEST {
        return Ok((desc.clone(), bytes));
    }
    if media != MediaType::ImageIndex.to_string() && media != DOCKER_LIST {
        let reason = format!("media type {media:?} is neither an image manifest nor an index");
        return Err(ImageError::invalid(what, reason));
    }
    if depth >= MAX_DEPTH {
        return Err(ImageError::invalid(what, "indexes nest too deeply"));
    }
    let index: ImageIndex = json(src, &digest.to_string(), &bytes)?;
    let manifests = index.manifests();
    let child = manifests
        .iter()
        .find(|d| d.platform().as_ref().is_some_and(is_linux_amd64))
        .or(match manifests.as_slice() {
            [only] if only.platform().is_none() => Some(only),
            _ => None,
        })
        .ok_or_else(|| no_platform(src, manifests))?;
    resolve(src, child, depth + 1)
}

fn import_manifest(
    src: &dyn Source,
    blobs: &BlobStore,
    desc: &Descriptor,
    bytes: &[u8],
    tags: Vec<Reference>,
) -> Result<ImageRecord, ImageError> {
    let (manifest_path, manifest_digest) = blob_of(desc)?;
    let manifest: ImageManifest = json(src, &manifest_path, bytes)?;
    let config_media = manifest.config().media_type().to_string();
    if config_media != MediaType::ImageConfig.to_string() && config_media != DOCKER_CONFIG {
        return Err(ImageError::Unsupported(format!(
            "{}: {manifest_path} is not a container image (config media type {config_media})",
            src.name()
        )));
    }
    let (config_bytes, config_digest) = read_blob(src, manifest.config())?;
    let what = format!("{}: config {config_digest}", src.name());
    let config = layer::parse_config(&config_bytes, &what)?;
    let diff_ids = layer::diff_ids(&config, manifest.layers().len(), &what)?;
    let mut layers: Vec<StoredLayer> = Vec::with_capacity(diff_ids.len());
    for (desc, diff_id) in manifest.layers().iter().zip(&diff_ids) {
        let (path, digest) = blob_of(desc)?;
        let what = format!("{}: layer {path}", src.name());
        let (reader, _) = src.open(&path)?;
        let stored = layer::store_layer(
            blobs,
            &what,
            reader,
            Some(&digest),
            Some(desc.size()),
            false,
        )?;
        layer::check_diff_id(&what, diff_id, &stored.diff_id)?;
        layers.push(stored);
    }
    blobs.put(&config_bytes[..], Some(&config_digest))?;
    let manifest = layer::store_manifest(
        blobs,
        &media_type(desc, bytes),
        &manifest,
        bytes,
        &manifest_digest,
        &config_bytes,
        &layers,
    )?;
    Ok(layer::record(
        manifest,
        config_digest,
        layers,
        config.created().clone(),
        tags,
    ))
}

/// The tag an index entry names, if it names one (see the module docs).
fn tags_of(desc: &Descriptor) -> Vec<Reference> {
    let annotations = desc.annotations().as_ref();
    let get = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
    let name = match (get(CONTAINERD_NAME), get(ANNOTATION_REF_NAME)) {
        (Some(full), _) => full,
        (None, Some(r)) if r.contains(['/', ':']) => r,
        _ => return Vec::new(),
    };
    match Reference::parse(name) {
        Ok(r) if r.digest().is_none() => vec![r],
        Ok(_) => Vec::new(),
        Err(e) => {
            tracing::warn!("not tagging the image: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
