//! `PutLayer`: verify a layer blob against its digest while unpacking it into the cache.
//! The unpacked directory appears under its final name only when everything checked out,
//! so a partial or corrupt layer is never visible to a container.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_protocol::GuestMessage;
use sha2::{Digest, Sha256};
use tokio_util::io::SyncIoBridge;

use super::control::Replies;
use super::Connection;
use crate::layer;

/// How long the host has to open the layer stream a `PutLayer` names.
const STREAM_DEADLINE: Duration = Duration::from_secs(10);

pub(super) async fn put(
    layers_dir: PathBuf,
    conn: Arc<Connection>,
    replies: Replies,
    digest: String,
) {
    let reply = match store(&layers_dir, &conn, &digest).await {
        Ok(()) => GuestMessage::LayerStored { digest },
        Err(message) => GuestMessage::LayerFailed { digest, message },
    };
    replies.send(reply);
}

/// The directory of a cached layer, from its digest (`sha256:<64 hex>`).
pub fn layer_dir(layers_dir: &Path, digest: &str) -> Result<PathBuf, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .ok_or_else(|| format!("{digest:?} is not a sha256 digest"))?;
    Ok(layers_dir.join(hex))
}

/// The digests of every layer in the cache (half-unpacked ones are not listed).
pub fn cached(layers_dir: &Path) -> Vec<String> {
    let mut digests: Vec<String> = std::fs::read_dir(layers_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|hex| format!("sha256:{hex}"))
        .collect();
    digests.sort();
    digests
}

async fn store(layers_dir: &Path, conn: &Connection, digest: &str) -> Result<(), String> {
    let final_dir = layer_dir(layers_dir, digest)?;
    let stream = conn
        .layers
        .take(&digest.to_string(), STREAM_DEADLINE)
        .await
        .ok_or_else(|| {
            format!("the stream of layer {digest} did not arrive within {STREAM_DEADLINE:?}")
        })?;
    if final_dir.is_dir() {
        return Ok(()); // cached; the stream is dropped unread
    }
    std::fs::create_dir_all(layers_dir)
        .map_err(|e| format!("creating {}: {e}", layers_dir.display()))?;
    let tmp = layers_dir.join(format!(
        ".partial-{}-{}",
        &digest[7..19],
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    let bridge = SyncIoBridge::new(stream);
    let expected = digest.to_string();
    let unpack_dir = tmp.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut input = Hashing {
            inner: bridge,
            hasher: Sha256::new(),
        };
        layer::unpack(&mut input, &unpack_dir).map_err(|e| crate::error_chain(&e))?;
        // The tar may end before the blob does (padding, the gzip trailer): hash it all.
        io::copy(&mut input, &mut io::sink()).map_err(|e| format!("reading the layer: {e}"))?;
        let actual = format!("sha256:{:x}", input.hasher.finalize());
        if actual != expected {
            return Err(format!(
                "layer content has digest {actual}, expected {expected}"
            ));
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|e| Err(format!("layer unpacking failed: {e}")));
    match result {
        Ok(()) => match std::fs::rename(&tmp, &final_dir) {
            Ok(()) => Ok(()),
            // Stored meanwhile by another request for the same digest.
            Err(_) if final_dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => Err(format!("moving the layer into the cache: {e}")),
        },
        Err(message) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(message)
        }
    }
}

/// Hashes everything read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_dirs_come_only_from_real_digests() {
        let d = Path::new("/cache");
        let hex = "a".repeat(64);
        assert_eq!(
            layer_dir(d, &format!("sha256:{hex}")).unwrap(),
            d.join(&hex)
        );
        assert!(layer_dir(d, "sha256:../../etc").is_err());
        assert!(layer_dir(d, &format!("sha512:{hex}")).is_err());
        assert!(layer_dir(d, &format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
