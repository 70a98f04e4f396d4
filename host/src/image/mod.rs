//! The host's image store under `<BERTH_HOME>/images`: content-addressed blobs
//! (`blobs/sha256/<hex>`), an index of images and their tags (`index.json`), and importers
//! for `docker save` archives and OCI image layouts (`berth load`).
//!
//! Every image is kept as an OCI image manifest, its config and its layer blobs; its ID is
//! the config's digest, as in Docker. Blobs are written atomically and the index is replaced
//! atomically under a lock file, so a failed or concurrent load never leaves a partial state.

mod archive;
pub mod commit;
mod digest;
mod docker;
pub mod history;
pub mod import;
mod index;
mod layer;
mod load;
pub mod manage;
mod oci;
mod reference;
pub mod registry;
pub mod save;
mod store;
pub mod time;
pub mod watch;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use digest::Digest;
pub use index::{ImageIndex, ImageRecord, Images};
pub use load::{load_path, load_path_watched, load_reader, load_reader_watched, Loaded};
pub use reference::{Reference, DEFAULT_DOMAIN};
pub use store::{BlobStore, BlobWriter};

use crate::paths::Paths;

/// Every way the image store and its importers can fail.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "layer {layer}: its content has diff_id {actual}, but the image config says {expected}"
    )]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: Digest,
    },
    #[error("refusing archive entry {path:?}: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    #[error("{archive}: {path} is missing")]
    Missing { archive: String, path: String },
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("{what}: invalid JSON")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("another berth process holds the lock {path} (gave up after {waited:?})")]
    Locked { path: PathBuf, waited: Duration },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// For `map_err`: an I/O error while doing `action` on `path`.
    pub(crate) fn io(action: &str, path: &Path) -> impl FnOnce(io::Error) -> ImageError {
        let context = format!("{action} {}", path.display());
        move |source| ImageError::Io { context, source }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> ImageError {
        ImageError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// The blob store and the image index under one root directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    blobs: BlobStore,
    index: ImageIndex,
}

impl ImageStore {
    /// The store of this installation: `<BERTH_HOME>/images`.
    pub fn root_for(paths: &Paths) -> PathBuf {
        paths.home.join("images")
    }

    /// Opens (creating its directories) the store under `root`.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        let blobs = BlobStore::open(root)?;
        Ok(ImageStore {
            root: root.to_path_buf(),
            blobs,
            index: ImageIndex::new(root),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// An image by name (`busybox` = `docker.io/library/busybox:latest`) or by unique
    /// (short) id, as Docker resolves them.
    pub fn find(&self, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        let images = self.index().read()?;
        if let Ok(reference) = Reference::parse(name) {
            let found = images
                .find_tag(&reference)
                .or_else(|| images.find_repo_digest(&reference));
            if let Some(found) = found {
                return Ok(Some(found.clone()));
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<_> = images
                .iter()
                .filter(|r| r.id().hex().starts_with(hex))
                .collect();
            if let [one] = matches[..] {
                return Ok(Some(one.clone()));
            }
        }
        Ok(None)
    }

    pub fn index(&self) -> &ImageIndex {
        &self.index
    }

    /// Scratch space for spooled input (same file system as the blobs).
    pub(crate) fn tmp_dir(&self) -> Result<PathBuf, ImageError> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir).map_err(ImageError::io("cannot create", &dir))?;
        Ok(dir)
    }
}
