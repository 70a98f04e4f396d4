//! The content-addressed blob store: `<root>/blobs/sha256/<hex>`. A blob is written to a
//! temporary file in the same directory while it is hashed, verified, fsynced and only then
//! renamed into place, so a partial write is never visible under a digest.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use super::{Digest, ImageError};

/// Blobs by sha256 digest.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// The store under `root` (`<root>/blobs/sha256`), created if missing.
    pub fn open(root: &Path) -> Result<BlobStore, ImageError> {
        let dir = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&dir).map_err(ImageError::io("cannot create", &dir))?;
        Ok(BlobStore { dir })
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The blob's size in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64, ImageError> {
        let path = self.path(digest);
        Ok(std::fs::metadata(&path)
            .map_err(ImageError::io("cannot read", &path))?
            .len())
    }

    /// Opens the blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<BufReader<File>, ImageError> {
        let path = self.path(digest);
        let file = File::open(&path).map_err(ImageError::io("cannot open blob", &path))?;
        Ok(BufReader::with_capacity(1 << 16, file))
    }

    /// The whole blob in memory: for manifests and configs only.
    pub fn get(&self, digest: &Digest) -> Result<Vec<u8>, ImageError> {
        let path = self.path(digest);
        std::fs::read(&path).map_err(ImageError::io("cannot read blob", &path))
    }

    /// Streams `reader` into the store and returns its digest. With `expected`, content with
    /// another digest is refused (and nothing is stored); a blob already present under
    /// `expected` is kept and `reader` is not read.
    pub fn put(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<Digest, ImageError> {
        if let Some(d) = expected.filter(|d| self.exists(d)) {
            return Ok(d.clone());
        }
        let mut writer = self.writer()?;
        io::copy(&mut reader, &mut writer).map_err(|e| writer.error(e))?;
        writer.commit(expected)
    }

    /// Moves `path`, a file on the store's file system whose content the caller verified
    /// to be `digest`, into the store (fsynced first); a blob already there is kept.
    pub(crate) fn adopt(&self, path: &Path, digest: &Digest) -> Result<(), ImageError> {
        let target = self.path(digest);
        if target.is_file() {
            let _ = std::fs::remove_file(path);
            return Ok(());
        }
        let file = File::open(path).map_err(ImageError::io("cannot open", path))?;
        file.sync_all()
            .map_err(ImageError::io("cannot write blob", &target))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
        }
        std::fs::rename(path, &target).map_err(ImageError::io("cannot store blob", &target))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// A writer for a new blob; nothing is visible until [`BlobWriter::commit`].
    pub fn writer(&self) -> Result<BlobWriter, ImageError> {
        let file = temp_builder(".tmp-")
            .tempfile_in(&self.dir)
            .map_err(ImageError::io(
                "cannot create a temporary file in",
                &self.dir,
            ))?;
        Ok(BlobWriter {
            file,
            hasher: Sha256::new(),
            written: 0,
            dir: self.dir.clone(),
        })
    }
}

/// A blob being written: hashes what it is given; dropped without `commit`, it leaves nothing.
pub struct BlobWriter {
    file: NamedTempFile,
    hasher: Sha256,
    written: u64,
    dir: PathBuf,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn error(&self, source: io::Error) -> ImageError {
        ImageError::Io {
            context: format!("cannot write a blob to {}", self.dir.display()),
            source,
        }
    }

    /// Verifies against `expected` (if given), fsyncs and moves the blob into place.
    pub fn commit(self, expected: Option<&Digest>) -> Result<Digest, ImageError> {
        let BlobWriter {
            mut file,
            hasher,
            dir,
            ..
        } = self;
        let digest = Digest::of_hasher(hasher);
        if let Some(expected) = expected.filter(|e| **e != digest) {
            return Err(ImageError::DigestMismatch {
                what: "blob".into(),
                expected: expected.clone(),
                actual: digest,
            });
        }
        let target = dir.join(digest.hex());
        if target.is_file() {
            return Ok(digest);
        }
        let durable = file.flush().and_then(|()| file.as_file().sync_all());
        durable.map_err(ImageError::io("cannot write blob", &target))?;
        match file.persist_noclobber(&target) {
            Ok(_) => {}
            Err(_) if target.is_file() => {}
            Err(e) => return Err(ImageError::io("cannot store blob", &target)(e.error)),
        }
        sync_dir(&dir);
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Temporary files that become blobs or the index: readable by all on Unix (0644), as
/// Docker's, rather than tempfile's 0600.
pub(crate) fn temp_builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder
}

/// Makes a rename durable (Unix; Windows cannot open a directory as a file).
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path()).unwrap();
        (tmp, store)
    }

    fn entries(store: &BlobStore) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&store.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn put_get_round_trip() {
        let (_tmp, store) = store();
        let d = store.put(&b"hello"[..], None).unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert!(store.exists(&d));
        assert_eq!(store.get(&d).unwrap(), b"hello");
        assert_eq!(store.size(&d).unwrap(), 5);
        let mut text = String::new();
        store
            .open_blob(&d)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello");
        assert!(store
            .path(&d)
            .ends_with(format!("blobs/sha256/{}", d.hex())));
        assert_eq!(entries(&store), vec![d.hex().to_string()]);
    }

    #[test]
    fn mismatch_names_both_digests_and_leaves_nothing() {
        let (_tmp, store) = store();
        let wrong = Digest::of(b"other");
        let err = store
            .put(&b"hello"[..], Some(&wrong))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&wrong.to_string()), "{err}");
        assert!(err.contains(&Digest::of(b"hello").to_string()), "{err}");
        assert!(entries(&store).is_empty(), "{:?}", entries(&store));
    }

    #[test]
    fn existing_blob_is_a_no_op() {
        let (_tmp, store) = store();
        let d = store.put(&b"same"[..], None).unwrap();
        assert_eq!(store.put(&b"same"[..], None).unwrap(), d);
        assert_eq!(store.put(&b"never read"[..], Some(&d)).unwrap(), d);
        assert_eq!(store.get(&d).unwrap(), b"same");
        assert_eq!(entries(&store).len(), 1);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let (_tmp, store) = store();
        let mut w = store.writer().unwrap();
        w.write_all(b"partial").unwrap();
        assert_eq!(w.written(), 7);
        assert_eq!(
            entries(&store).len(),
            1,
            "the temporary file exists while writing"
        );
        drop(w);
        assert!(entries(&store).is_empty());
    }
}
