//! The image index, `<root>/index.json`: every image by ID (its config digest) with its
//! manifest, layers and tags. It is replaced atomically (temp file, fsync, rename) while an
//! advisory lock on `<root>/index.lock` keeps concurrent berth processes from losing updates.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::store::{sync_dir, temp_builder};
use super::{Digest, ImageError, Reference};

const VERSION: u32 = 1;
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
const LOCK_POLL: Duration = Duration::from_millis(20);

/// One image: an OCI manifest, its config and its layers, and the tags naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The OCI image manifest, stored as a blob.
    pub manifest: Digest,
    /// The image config blob; its digest is the image ID.
    pub config: Digest,
    /// Layer blobs as stored (compressed), base layer first.
    pub layers: Vec<Digest>,
    /// Digests of the uncompressed layers (the config's `rootfs.diff_ids`).
    pub diff_ids: Vec<Digest>,
    /// Sum of the layer blob sizes, in bytes.
    pub size: u64,
    /// `created` from the config (RFC 3339), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Normalized `name:tag` references; empty for an untagged (`<none>`) image.
    #[serde(default)]
    pub tags: Vec<Reference>,
    /// `repository@digest` of the manifest (or index) a registry served it under, as
    /// Docker's `RepoDigests`: `localhost:5000/busybox@sha256:…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
    /// A build step's image, not the build's result: hidden from `images` (unless `-a`)
    /// and kept by a dangling-image prune, as Docker's intermediate images are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub intermediate: bool,
}

impl ImageRecord {
    /// The image ID: the config digest, as Docker.
    pub fn id(&self) -> &Digest {
        &self.config
    }
}

/// The contents of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Images {
    version: u32,
    images: BTreeMap<Digest, ImageRecord>,
}

impl Default for Images {
    fn default() -> Images {
        Images {
            version: VERSION,
            images: BTreeMap::new(),
        }
    }
}

impl Images {
    pub fn get(&self, id: &Digest) -> Option<&ImageRecord> {
        self.images.get(id)
    }

    /// Every image, by ID.
    pub fn iter(&self) -> impl Iterator<Item = &ImageRecord> {
        self.images.values()
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The image a tag names.
    pub fn find_tag(&self, tag: &Reference) -> Option<&ImageRecord> {
        self.iter().find(|r| r.tags.contains(tag))
    }

    /// Adds `record` (or, when an image with its ID is stored already, only its tags) and
    /// points its tags at it: a tag that named another image moves (that image keeps its
    /// other tags, or stays as `<none>`). References with a digest are not tags and are dropped.
    pub fn add(&mut self, mut record: ImageRecord) {
        record
            .tags
            .retain(|t| t.tag().is_some() && t.digest().is_none());
        let id = record.id().clone();
        for other in self.images.values_mut().filter(|o| o.config != id) {
            other.tags.retain(|t| !record.tags.contains(t));
        }
        let image = self.images.entry(id).or_insert_with(|| ImageRecord {
            tags: Vec::new(),
            repo_digests: Vec::new(),
            ..record.clone()
        });
        for tag in record.tags {
            if !image.tags.contains(&tag) {
                image.tags.push(tag);
            }
        }
        for digest in record.repo_digests {
            // One digest per repository: a newer pull's replaces the older.
            let repo = digest.split('@').next().unwrap_or_default().to_string();
            image
                .repo_digests
                .retain(|d| d.split('@').next() != Some(repo.as_str()));
            image.repo_digests.push(digest);
        }
    }

    /// The image a `repository@digest` reference names (after a pull by that digest).
    pub fn find_repo_digest(&self, reference: &Reference) -> Option<&ImageRecord> {
        let digest = reference.digest()?;
        let wanted = format!("{}@{digest}", reference.familiar_repository());
        self.iter().find(|r| r.repo_digests.contains(&wanted))
    }
}

impl Images {
    /// Removes a tag; whether it was there.
    pub fn untag(&mut self, tag: &Reference) -> bool {
        let mut found = false;
        for image in self.images.values_mut() {
            let before = image.tags.len();
            image.tags.retain(|t| t != tag);
            found |= image.tags.len() != before;
        }
        found
    }

    /// Removes an image from the index, returning it.
    pub fn remove(&mut self, id: &Digest) -> Option<ImageRecord> {
        self.images.remove(id)
    }

    /// Whether any image still refers to this blob.
    pub fn uses_blob(&self, digest: &Digest) -> bool {
        self.iter()
            .any(|r| r.manifest == *digest || r.config == *digest || r.layers.contains(digest))
    }
}

/// The index file and its lock.
#[derive(Debug, Clone)]
pub struct ImageIndex {
    path: PathBuf,
    lock_path: PathBuf,
    lock_timeout: Duration,
}

impl ImageIndex {
    /// The index of the store under `root`.
    pub fn new(root: &Path) -> ImageIndex {
        ImageIndex {
            path: root.join("index.json"),
            lock_path: root.join("index.lock"),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// How long [`ImageIndex::update`] waits for another process's lock (default 10 s).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> ImageIndex {
        self.lock_timeout = timeout;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current contents (empty when there is no index yet). Needs no lock: the file is
    /// only ever replaced whole.
    pub fn read(&self) -> Result<Images, ImageError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Images::default()),
            Err(e) => return Err(ImageError::io("cannot read", &self.path)(e)),
        };
        let what = || self.path.display().to_string();
        let images: Images = serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: what(),
            source,
        })?;
        if images.version > VERSION {
            let reason = format!("written by a newer berth (format {})", images.version);
            return Err(ImageError::invalid(what(), reason));
        }
        if let Some((key, _)) = images.images.iter().find(|(k, r)| **k != r.config) {
            let reason = format!("entry {key} does not match its config digest");
            return Err(ImageError::invalid(what(), reason));
        }
        Ok(images)
    }

    /// Locks the index, applies `change` to its current contents and writes them back; when
    /// `change` fails the index is left as it was.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut Images) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        let _lock = self.lock()?;
        let mut images = self.read()?;
        let out = change(&mut images)?;
        self.write(&images)?;
        Ok(out)
    }

    fn write(&self, images: &Images) -> Result<(), ImageError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut bytes = serde_json::to_vec_pretty(images).map_err(|source| ImageError::Json {
            what: self.path.display().to_string(),
            source,
        })?;
        bytes.push(b'\n');
        let failed = ImageError::io("cannot write", &self.path);
        let result = (|| {
            let mut tmp = temp_builder(".index-").tempfile_in(dir)?;
            tmp.write_all(&bytes)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&self.path).map_err(|e| e.error)?;
            Ok(())
        })();
        result.map_err(failed)?;
        sync_dir(dir);
        Ok(())
    }

    /// Takes the advisory lock, waiting at most the lock timeout.
    pub(crate) fn lock(&self) -> Result<IndexLock, ImageError> {
        if let Some(dir) = self.lock_path.parent() {
            std::fs::create_dir_all(dir).map_err(ImageError::io("cannot create", dir))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(ImageError::io("cannot open", &self.lock_path))?;
        let start = Instant::now();
        loop {
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => return Ok(IndexLock { file }),
                Err(fs4::TryLockError::WouldBlock) if start.elapsed() < self.lock_timeout => {
                    std::thread::sleep(LOCK_POLL)
                }
                Err(fs4::TryLockError::WouldBlock) => {
                    return Err(ImageError::Locked {
                        path: self.lock_path.clone(),
                        waited: start.elapsed(),
                    })
                }
                Err(fs4::TryLockError::Error(e)) => {
                    return Err(ImageError::io("cannot lock", &self.lock_path)(e))
                }
            }
        }
    }
}

/// Holds the index lock until dropped.
pub(crate) struct IndexLock {
    file: File,
}

impl Drop for IndexLock {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests;
