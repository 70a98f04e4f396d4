//! Pushing an image from the store: every blob the registry lacks (streamed from the
//! store, a bounded number at once), then the manifest, last, so the tag never names an
//! image the registry does not wholly have.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use oci_client::RegistryOperation;
use tokio::io::AsyncReadExt;

use super::auth::Credentials;
use super::progress::{Event, LayerState, Progress};
use super::{classify, client, oci_reference, Endpoint, RegistryError, Settings};
use crate::image::{Digest, ImageError, ImageStore, Reference};

/// Bytes per upload chunk (one PATCH each).
const CHUNK: usize = 8 << 20;

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub reference: Reference,
    pub digest: Digest,
    pub size: u64,
}

/// Pushes the image tagged `name` to the registry its name points at.
pub async fn push(
    store: &ImageStore,
    settings: &Settings,
    name: &str,
    credentials: Option<Credentials>,
    progress: &dyn Progress,
) -> Result<Pushed, RegistryError> {
    let reference = Reference::parse(name)?;
    let Some(tag) = reference.tag().map(str::to_string) else {
        return Err(RegistryError::Invalid(format!(
            "cannot push {name}: a digest reference is not a tag"
        )));
    };
    let record = store
        .index()
        .read()?
        .find_tag(&reference)
        .cloned()
        .ok_or_else(|| {
            RegistryError::Invalid(format!(
                "An image does not exist locally with the tag: {}",
                reference.familiar_repository()
            ))
        })?;
    let domain = reference.domain();
    let endpoint = Endpoint {
        host: domain.to_string(),
        insecure: settings.is_insecure(domain),
        mirror: false,
    };
    let credentials = match credentials {
        Some(c) => c,
        None => Credentials::from_config(domain)?,
    };
    let auth = credentials.to_oci();
    let client = client(&endpoint, settings);
    let oref = oci_reference(&endpoint, domain, reference.path(), Some(&tag), None);
    let registry = endpoint.host.as_str();
    let named = reference.familiar();
    progress.report(Event::PushingTo {
        repository: reference.repository(),
    });
    client
        .auth(&oref, &auth, RegistryOperation::Push)
        .await
        .map_err(|e| classify(e, registry, &named))?;

    let blobs = store.blobs();
    let ids: Vec<String> = record
        .layers
        .iter()
        .map(|d| d.hex()[..12].to_string())
        .collect();
    for id in ids.iter().rev() {
        progress.report(Event::Layer {
            id: id.clone(),
            state: LayerState::Preparing,
        });
    }
    let all: Vec<(Digest, bool)> = record
        .layers
        .iter()
        .map(|d| (d.clone(), true))
        .chain(std::iter::once((record.config.clone(), false)))
        .collect();
    let jobs = all.into_iter().map(|(digest, is_layer)| {
        let (client, oref) = (&client, &oref);
        async move {
            let id = digest.hex()[..12].to_string();
            let report = |state| {
                if is_layer {
                    progress.report(Event::Layer {
                        id: id.clone(),
                        state,
                    })
                }
            };
            let what = format!("blob {digest}");
            let exists = client
                .blob_exists(oref, &digest.to_string())
                .await
                .map_err(|e| classify(e, registry, &what))?;
            if exists {
                report(LayerState::Mounted);
                return Ok::<_, RegistryError>(());
            }
            let total = blobs.size(&digest)?;
            let path = blobs.path(&digest);
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(ImageError::io("cannot open blob", &path))?;
            let sent = Arc::new(AtomicU64::new(0));
            let counter = sent.clone();
            let stream = futures::stream::try_unfold(file, |mut file| async move {
                let mut buf = vec![0u8; CHUNK];
                let mut n = 0;
                while n < CHUNK {
                    let k = file.read(&mut buf[n..]).await?;
                    if k == 0 {
                        break;
                    }
                    n += k;
                }
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some((Bytes::from(buf), file)))
            })
            .map_err(oci_client::errors::OciDistributionError::IoError)
            .inspect_ok(move |chunk| {
                let now =
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
                report(LayerState::Pushing {
                    current: now,
                    total,
                });
            });
            client
                .push_blob_stream(oref, stream, &digest.to_string())
                .await
                .map_err(|e| classify(e, registry, &what))?;
            let _ = sent;
            if is_layer {
                progress.report(Event::Layer {
                    id: id.clone(),
                    state: LayerState::Pushed,
                });
            }
            Ok(())
        }
    });
    futures::stream::iter(jobs)
        .buffer_unordered(settings.max_uploads())
        .try_collect::<Vec<()>>()
        .await?;

    let manifest = blobs.get(&record.manifest)?;
    let media = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
    let content_type = media
        .parse()
        .map_err(|_| RegistryError::Invalid(format!("bad manifest media type {media:?}")))?;
    client
        .push_manifest_raw(&oref, manifest.clone(), content_type)
        .await
        .map_err(|e| classify(e, registry, &format!("manifest of {named}")))?;
    let digest = Digest::of(&manifest);
    let size = manifest.len() as u64;
    let repo_digest = format!("{}@{digest}", reference.familiar_repository());
    store.index().update(|images| {
        if let Some(mut r) = images.get(&record.config).cloned() {
            r.tags = Vec::new();
            r.repo_digests = vec![repo_digest];
            images.add(r);
        }
        Ok(())
    })?;
    progress.report(Event::Pushed {
        tag,
        digest: digest.to_string(),
        size,
    });
    Ok(Pushed {
        reference,
        digest,
        size,
    })
}
