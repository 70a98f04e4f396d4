//! Pulling: resolve the reference to one image manifest (through an index, choosing the
//! platform), then fetch its config and layers into the store and record the image.
//!
//! Layers download a bounded number at once and stream to `downloads/<hex>.partial` under
//! the store. One process at a time downloads a blob (an advisory lock per blob), so two
//! pulls of one layer fetch it once. A partial download is resumed with a ranged request.
//! A finished download is verified (digest, size, the config's diff_id) by the store's
//! importer before it becomes a blob; the index changes last, so a failed or killed pull
//! leaves no half image.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use oci_client::client::BlobResponse;
use oci_client::manifest::OciDescriptor;
use oci_client::RegistryOperation;
use oci_spec::image::{ImageIndex, ImageManifest, MediaType};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::auth::Credentials;
use super::progress::{Event, LayerState, Progress};
use super::{classify, client, oci_reference, Endpoint, Platform, RegistryError, Settings};
use crate::image::layer::{self, StoredLayer};
use crate::image::{Digest, ImageError, ImageRecord, ImageStore, Reference};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const ACCEPT: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
/// The largest config blob read into memory.
const MAX_CONFIG: u64 = 8 << 20;
/// How long a pull waits for another process's download of the same blob.
const LOCK_WAIT: Duration = Duration::from_secs(30 * 60);
/// Attempts at one layer when the connection breaks mid-blob (each resumes).
const ATTEMPTS: u32 = 3;

/// What a pull is asked for.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    pub platform: Platform,
    /// The credentials to use; `None` reads them from the docker CLI's config.
    pub credentials: Option<Credentials>,
}

/// The image manifest a reference resolved to, ready to fetch.
pub struct Resolved {
    reference: Reference,
    endpoint: Endpoint,
    client: oci_client::Client,
    oref: oci_client::Reference,
    /// The digest the reference names (an index's, or the manifest's).
    pub digest: Digest,
    /// The platform manifest's bytes, digest, media type and parsed form.
    manifest_bytes: Vec<u8>,
    manifest_digest: Digest,
    media_type: String,
    manifest: ImageManifest,
    /// For `GET /distribution`: what the reference names, and the platforms it has.
    top: (String, u64),
    platforms: Vec<Value>,
    platform: Platform,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub id: Digest,
    pub reference: Reference,
    /// The digest the reference named, for `RepoDigests`.
    pub digest: Digest,
    /// False when the store held the image already.
    pub fresh: bool,
}

/// Resolves and fetches `reference` into `store`.
pub async fn pull(
    store: &ImageStore,
    settings: &Settings,
    reference: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Pulled, RegistryError> {
    let resolved = resolve(settings, reference, opts).await?;
    resolved.fetch(store, settings, progress).await
}

/// Finds the manifest `reference` names for `opts.platform`, trying mirrors first.
pub async fn resolve(
    settings: &Settings,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<Resolved, RegistryError> {
    let endpoints = settings.endpoints(reference.domain());
    let mut last = None;
    for (i, endpoint) in endpoints.iter().enumerate() {
        match resolve_at(endpoint, settings, reference, opts).await {
            Ok(r) => return Ok(r),
            // A mirror that fails or lacks the image: try the next, as Docker.
            Err(e) if endpoint.mirror && i + 1 < endpoints.len() => {
                tracing::info!("mirror {}: {e}", endpoint.host);
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| RegistryError::Invalid("no registry to pull from".into())))
}

async fn resolve_at(
    endpoint: &Endpoint,
    settings: &Settings,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<Resolved, RegistryError> {
    let credentials = match &opts.credentials {
        Some(c) => c.clone(),
        None => Credentials::from_config(&endpoint.host)?,
    };
    let client = client(endpoint, settings);
    let digest = reference.digest().map(|d| d.to_string());
    let oref = oci_reference(
        endpoint,
        reference.domain(),
        reference.path(),
        reference.tag(),
        digest.as_deref(),
    );
    let registry = endpoint.host.as_str();
    let named = reference.familiar();
    let auth = credentials.to_oci();
    client
        .auth(&oref, &auth, RegistryOperation::Pull)
        .await
        .map_err(|e| classify(e, registry, &named))?;
    let denied = |e: RegistryError| match e {
        RegistryError::Unauthorized { detail, .. } => RegistryError::Denied {
            repository: reference.familiar_repository(),
            detail,
        },
        other => other,
    };
    let (bytes, _) = client
        .pull_manifest_raw(&oref, &auth, ACCEPT)
        .await
        .map_err(|e| denied(classify(e, registry, &named)))?;
    let top_digest = Digest::of(&bytes);
    if let Some(wanted) = reference.digest().filter(|d| **d != top_digest) {
        return Err(RegistryError::Image(ImageError::DigestMismatch {
            what: format!("manifest of {named}"),
            expected: wanted.clone(),
            actual: top_digest,
        }));
    }
    let top_media = media_type_of(&bytes, &named)?;
    let top = (top_media.clone(), bytes.len() as u64);
    let (manifest_bytes, media_type, platforms) = if top_media == OCI_INDEX
        || top_media == DOCKER_LIST
    {
        let index: ImageIndex = parse(&bytes, &named)?;
        let platforms: Vec<Value> = index
            .manifests()
            .iter()
            .filter_map(|d| d.platform().as_ref())
            .map(|p| json!({"os": p.os().to_string(), "architecture": p.architecture().to_string(), "variant": p.variant()}))
            .collect();
        let want = &opts.platform;
        let child = index
            .manifests()
            .iter()
            .find(|d| {
                d.platform().as_ref().is_some_and(|p| {
                    want.matches(
                        &p.os().to_string(),
                        &p.architecture().to_string(),
                        p.variant().as_deref(),
                    )
                })
            })
            .ok_or_else(|| RegistryError::NoPlatform {
                wanted: want.to_string(),
                found: platforms
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            p["os"].as_str().unwrap_or(""),
                            p["architecture"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let child_digest = child.digest().to_string();
        let child_ref = oci_reference(
            endpoint,
            reference.domain(),
            reference.path(),
            None,
            Some(&child_digest),
        );
        let (child_bytes, _) = client
            .pull_manifest_raw(&child_ref, &auth, ACCEPT)
            .await
            .map_err(|e| classify(e, registry, &format!("{named} ({})", want)))?;
        let wanted = Digest::parse(&child_digest)?;
        let actual = Digest::of(&child_bytes);
        if actual != wanted {
            return Err(RegistryError::Image(ImageError::DigestMismatch {
                what: format!("{want} manifest of {named}"),
                expected: wanted,
                actual,
            }));
        }
        let media = media_type_of(&child_bytes, &named)?;
        (child_bytes.to_vec(), media, platforms)
    } else {
        (bytes.to_vec(), top_media, Vec::new())
    };
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(RegistryError::Unsupported(format!(
            "{named}: the registry sent a {media_type} where an image manifest was expected"
        )));
    }
    let manifest: ImageManifest = parse(&manifest_bytes, &named)?;
    let config_media = manifest.config().media_type().to_string();
    if config_media != MediaType::ImageConfig.to_string() && config_media != DOCKER_CONFIG {
        return Err(RegistryError::Unsupported(format!(
            "{named} is not a container image (its config is {config_media})"
        )));
    }
    Ok(Resolved {
        reference: reference.clone(),
        endpoint: endpoint.clone(),
        client,
        oref,
        digest: top_digest,
        manifest_digest: Digest::of(&manifest_bytes),
        manifest_bytes,
        media_type,
        manifest,
        top,
        platforms,
        platform: opts.platform.clone(),
    })
}

/// The document's media type: its `mediaType`, else what its fields say (OCI makes the
/// field optional); schema 1 is refused.
fn media_type_of(bytes: &[u8], named: &str) -> Result<String, RegistryError> {
    let doc: Value = parse(bytes, named)?;
    if doc["schemaVersion"] == 1 {
        return Err(RegistryError::Unsupported(format!(
            "{named}: the registry serves a schema 1 manifest, which Docker no longer pulls: \
             push the image again with a current client"
        )));
    }
    Ok(match doc["mediaType"].as_str() {
        Some(m) => m.to_string(),
        None if doc.get("manifests").is_some() => OCI_INDEX.into(),
        None => OCI_MANIFEST.into(),
    })
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], named: &str) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|source| {
        RegistryError::Image(ImageError::Json {
            what: format!("manifest of {named}"),
            source,
        })
    })
}

impl Resolved {
    /// `GET /distribution/{name}/json`: what the reference names, and its platforms.
    pub fn distribution(&self) -> Value {
        let platforms = if self.platforms.is_empty() {
            vec![json!({"os": "linux", "architecture": "amd64"})]
        } else {
            self.platforms.clone()
        };
        json!({
            "Descriptor": {"mediaType": self.top.0, "digest": self.digest.to_string(), "size": self.top.1},
            "Platforms": platforms,
        })
    }

    /// Fetches the config and layers the store lacks and records the image.
    pub async fn fetch(
        self,
        store: &ImageStore,
        settings: &Settings,
        progress: &dyn Progress,
    ) -> Result<Pulled, RegistryError> {
        let reference = self.reference.clone();
        let named = reference.familiar();
        let registry = self.endpoint.host.clone();
        progress.report(Event::Pulling {
            repository: reference.path().to_string(),
            tag: reference
                .tag()
                .map(str::to_string)
                .unwrap_or_else(|| self.digest.to_string()),
        });
        let config_desc = self.manifest.config();
        let config_digest = Digest::parse(config_desc.digest().as_ref())?;
        if config_desc.size() > MAX_CONFIG {
            return Err(RegistryError::Image(ImageError::TooLarge {
                what: format!("the config of {named}"),
                limit: MAX_CONFIG,
            }));
        }
        let config_bytes = if store.blobs().exists(&config_digest) {
            store.blobs().get(&config_digest)?
        } else {
            let mut bytes = Vec::new();
            self.client
                .pull_blob(&self.oref, &descriptor(config_desc), &mut bytes)
                .await
                .map_err(|e| classify(e, &registry, &format!("config of {named}")))?;
            bytes
        };
        let actual = Digest::of(&config_bytes);
        if actual != config_digest {
            return Err(RegistryError::Image(ImageError::DigestMismatch {
                what: format!("config of {named}"),
                expected: config_digest,
                actual,
            }));
        }
        let what = format!("{named}: config {config_digest}");
        let config = layer::parse_config(&config_bytes, &what)?;
        // No index chose the platform: the image's own must be the one asked for.
        if self.platforms.is_empty() {
            check_platform(&named, &self.platform, &config)?;
        }
        let diff_ids = layer::diff_ids(&config, self.manifest.layers().len(), &what)?;
        let known = known_diff_ids(store)?;
        let was_stored = store.index().read()?.get(&config_digest).is_some();

        let shared = Arc::new(self);
        let jobs = shared
            .manifest
            .layers()
            .iter()
            .cloned()
            .zip(diff_ids)
            .enumerate()
            .map(|(i, (desc, diff_id))| {
                let shared = shared.clone();
                let known = known.get(desc.digest().as_ref()).cloned();
                async move {
                    let layer =
                        fetch_layer(store, &shared, &desc, &diff_id, known, progress).await?;
                    Ok::<_, RegistryError>((i, layer))
                }
            });
        let mut layers: Vec<(usize, StoredLayer)> = futures::stream::iter(jobs)
            .buffer_unordered(settings.max_downloads())
            .try_collect()
            .await?;
        layers.sort_by_key(|(i, _)| *i);
        let layers: Vec<StoredLayer> = layers.into_iter().map(|(_, l)| l).collect();

        let blobs = store.blobs();
        blobs.put(&config_bytes[..], Some(&config_digest))?;
        let manifest = layer::store_manifest(
            blobs,
            &shared.media_type,
            &shared.manifest,
            &shared.manifest_bytes,
            &shared.manifest_digest,
            &config_bytes,
            &layers,
        )?;
        let mut record: ImageRecord = layer::record(
            manifest,
            config_digest.clone(),
            layers,
            config.created().clone(),
            reference
                .tag()
                .map(|_| reference.clone())
                .into_iter()
                .collect(),
        );
        record.repo_digests = vec![format!(
            "{}@{}",
            reference.familiar_repository(),
            shared.digest
        )];
        let tagged_before = store
            .index()
            .read()?
            .find_tag(&reference)
            .map(|r| r.config == config_digest)
            .unwrap_or(false);
        store.index().update(|images| {
            images.add(record);
            Ok(())
        })?;
        progress.report(Event::Status(format!("Digest: {}", shared.digest)));
        let fresh = !(was_stored && (tagged_before || reference.tag().is_none()));
        progress.report(Event::Status(if fresh {
            format!("Status: Downloaded newer image for {named}")
        } else {
            format!("Status: Image is up to date for {named}")
        }));
        Ok(Pulled {
            id: config_digest,
            reference,
            digest: shared.digest.clone(),
            fresh,
        })
    }
}

/// Checks that a single-platform image's config is the platform asked for (a config
/// without a variant matches any).
fn check_platform(
    named: &str,
    want: &Platform,
    config: &oci_spec::image::ImageConfiguration,
) -> Result<(), RegistryError> {
    let (os, arch) = (config.os().to_string(), config.architecture().to_string());
    let variant = config.variant().clone().or_else(|| want.variant.clone());
    if want.matches(&os, &arch, variant.as_deref()) {
        return Ok(());
    }
    Err(RegistryError::WrongPlatform {
        reference: named.to_string(),
        wanted: want.to_string(),
        actual: format!("{os}/{arch}"),
    })
}

/// The diff_id of every layer blob the index's images name.
fn known_diff_ids(
    store: &ImageStore,
) -> Result<std::collections::HashMap<String, Digest>, RegistryError> {
    let images = store.index().read()?;
    let mut out = std::collections::HashMap::new();
    for image in images.iter() {
        for (layer, diff) in image.layers.iter().zip(&image.diff_ids) {
            out.insert(layer.to_string(), diff.clone());
        }
    }
    Ok(out)
}

fn descriptor(d: &oci_spec::image::Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type().to_string(),
        digest: d.digest().to_string(),
        size: d.size() as i64,
        ..Default::default()
    }
}

/// Where downloads in progress live: beside the blobs, so a finished one is renamed in.
fn downloads_dir(store: &ImageStore) -> Result<PathBuf, RegistryError> {
    let dir = store.root().join("downloads");
    std::fs::create_dir_all(&dir).map_err(ImageError::io("cannot create", &dir))?;
    Ok(dir)
}

/// One layer into the store: from the store itself when it has the blob, else downloaded
/// (or waited for, when another pull is downloading it).
async fn fetch_layer(
    store: &ImageStore,
    r: &Resolved,
    desc: &oci_spec::image::Descriptor,
    diff_id: &str,
    known: Option<Digest>,
    progress: &dyn Progress,
) -> Result<StoredLayer, RegistryError> {
    let digest = Digest::parse(desc.digest().as_ref())?;
    let id = digest.hex()[..12].to_string();
    let named = r.reference.familiar();
    let what = format!("{named}: layer {digest}");
    let report = |state| {
        progress.report(Event::Layer {
            id: id.clone(),
            state,
        })
    };
    if store.blobs().exists(&digest) {
        let layer = existing_layer(store, &digest, &what, known).await?;
        layer::check_diff_id(&what, diff_id, &layer.diff_id)?;
        report(LayerState::Exists);
        return Ok(layer);
    }
    report(LayerState::Waiting);
    let dir = downloads_dir(store)?;
    let _lock = lock_blob(&dir, &digest).await?;
    if store.blobs().exists(&digest) {
        let layer = existing_layer(store, &digest, &what, None).await?;
        layer::check_diff_id(&what, diff_id, &layer.diff_id)?;
        report(LayerState::Exists);
        return Ok(layer);
    }
    let partial = dir.join(format!("{}.partial", digest.hex()));
    let total = desc.size();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match download(r, desc, &partial, total, &report).await {
            Ok(()) => break,
            Err(e) if attempt < ATTEMPTS && matches!(e, RegistryError::Unreachable { .. }) => {
                tracing::info!("{what}: {e}; resuming");
                tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
            }
            Err(e) => {
                let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
                return Err(match e {
                    RegistryError::Unreachable { registry, detail } => RegistryError::Unreachable {
                        registry,
                        detail: format!(
                            "{detail} (layer {id}: {have} of {total} bytes kept; pull \
                                 again to resume)"
                        ),
                    },
                    other => other,
                });
            }
        }
    }
    report(LayerState::Verifying);
    let blobs = store.blobs().clone();
    let (file, what2, expected) = (partial.clone(), what.clone(), digest.clone());
    let stored = tokio::task::spawn_blocking(move || {
        layer::adopt_layer(&blobs, &what2, &file, &expected, total)
    })
    .await
    .map_err(|e| RegistryError::Invalid(format!("{what}: {e}")));
    // Verified and moved, or refused: either way the download is done with (bad content
    // must not be resumed).
    let _ = std::fs::remove_file(&partial);
    let stored = stored??;
    layer::check_diff_id(&what, diff_id, &stored.diff_id)?;
    report(LayerState::Downloaded);
    report(LayerState::Complete);
    Ok(stored)
}

/// A layer the store has: its diff_id from the index, else from reading the blob.
async fn existing_layer(
    store: &ImageStore,
    digest: &Digest,
    what: &str,
    known: Option<Digest>,
) -> Result<StoredLayer, RegistryError> {
    let blobs = store.blobs().clone();
    let size = blobs.size(digest)?;
    let path = blobs.path(digest);
    let mut magic = [0u8; 6];
    let n = {
        let mut f = std::fs::File::open(&path).map_err(ImageError::io("cannot open", &path))?;
        layer::read_up_to(&mut f, &mut magic).map_err(ImageError::io("cannot read", &path))?
    };
    let kind = layer::Compression::sniff(&magic[..n]);
    if let Some(diff_id) = known {
        return Ok(StoredLayer {
            digest: digest.clone(),
            size,
            diff_id,
            gzip: kind == layer::Compression::Gzip,
            zstd: kind == layer::Compression::Zstd,
        });
    }
    let (what, digest) = (what.to_string(), digest.clone());
    tokio::task::spawn_blocking(move || {
        let reader = blobs.open_blob(&digest)?;
        layer::store_layer(&blobs, &what, reader, Some(&digest), Some(size), false)
    })
    .await
    .map_err(|e| RegistryError::Invalid(e.to_string()))?
    .map_err(RegistryError::from)
}

/// Downloads (or resumes) `desc` into `partial` until it holds `total` bytes.
async fn download(
    r: &Resolved,
    desc: &oci_spec::image::Descriptor,
    partial: &Path,
    total: u64,
    report: &(dyn Fn(LayerState) + Sync),
) -> Result<(), RegistryError> {
    let registry = r.endpoint.host.as_str();
    let what = format!("layer {}", desc.digest());
    let mut have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    if have > total {
        have = 0;
    }
    if have == total && total > 0 {
        return Ok(());
    }
    let response = r
        .client
        .pull_blob_stream_partial(&r.oref, &descriptor(desc), have, None)
        .await
        .map_err(|e| classify(e, registry, &what))?;
    let (mut stream, append) = match response {
        BlobResponse::Full(s) => (s, false),
        BlobResponse::Partial(s) => (s, have > 0),
    };
    if !append {
        have = 0;
    }
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(partial)
        .map_err(ImageError::io("cannot write", partial))?;
    let mut file = tokio::fs::File::from_std(file);
    let mut last = Instant::now();
    report(LayerState::Downloading {
        current: have,
        total,
    });
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::Unreachable {
            registry: registry.to_string(),
            detail: format!("{what}: the download broke off: {e}"),
        })?;
        file.write_all(&chunk)
            .await
            .map_err(ImageError::io("cannot write", partial))?;
        have += chunk.len() as u64;
        if have > total {
            break;
        }
        if last.elapsed() >= Duration::from_millis(200) {
            last = Instant::now();
            report(LayerState::Downloading {
                current: have,
                total,
            });
        }
    }
    file.flush()
        .await
        .map_err(ImageError::io("cannot write", partial))?;
    report(LayerState::Downloading {
        current: have.min(total),
        total,
    });
    if have < total {
        return Err(RegistryError::Unreachable {
            registry: registry.to_string(),
            detail: format!("{what}: the download ended after {have} of {total} bytes"),
        });
    }
    Ok(())
}

/// Holds the per-blob download lock until dropped.
struct BlobLock {
    file: std::fs::File,
}

impl Drop for BlobLock {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

async fn lock_blob(dir: &Path, digest: &Digest) -> Result<BlobLock, RegistryError> {
    let path = dir.join(format!("{}.lock", digest.hex()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(ImageError::io("cannot open", &path))?;
    let start = Instant::now();
    loop {
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => return Ok(BlobLock { file }),
            Err(fs4::TryLockError::WouldBlock) if start.elapsed() < LOCK_WAIT => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(RegistryError::Image(ImageError::Locked {
                    path,
                    waited: start.elapsed(),
                }))
            }
            Err(fs4::TryLockError::Error(e)) => {
                return Err(RegistryError::Image(ImageError::io("cannot lock", &path)(
                    e,
                )))
            }
        }
    }
}

/// `GET /distribution/{name}/json`: resolves without fetching.
pub async fn distribution(
    settings: &Settings,
    reference: &Reference,
    credentials: Option<Credentials>,
) -> Result<Value, RegistryError> {
    let opts = PullOptions {
        credentials,
        ..Default::default()
    };
    Ok(resolve(settings, reference, &opts).await?.distribution())
}
