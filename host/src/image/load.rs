//! `berth load`: recognizes the input (a `docker save` archive, an OCI layout as a directory
//! or a tar, gzip-compressed or not, a file or a stream), stores its blobs and then records
//! all its images in the index in one update, so a failure leaves the index as it was.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use tempfile::NamedTempFile;

use super::archive::{DirSource, Source, TarSource};
use super::layer::{read_up_to, Compression};
use super::watch::{Unwatched, Watch, Watched};
use super::{docker, oci, Digest, ImageError, ImageRecord, ImageStore, Reference};

/// An image `berth load` stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The image ID (its config digest).
    pub id: Digest,
    /// The tags it was loaded with; empty when untagged.
    pub tags: Vec<Reference>,
}

/// Loads a tar archive (optionally gzip-compressed) or an OCI layout directory.
pub fn load_path(store: &ImageStore, input: &Path) -> Result<Vec<Loaded>, ImageError> {
    load_path_watched(store, input, &Unwatched)
}

/// [`load_path`], telling `watch` how far each file of the archive has been read.
pub fn load_path_watched(
    store: &ImageStore,
    input: &Path,
    watch: &dyn Watch,
) -> Result<Vec<Loaded>, ImageError> {
    let name = input.display().to_string();
    if input.is_dir() {
        return import(store, &DirSource::new(input, &name), watch);
    }
    load_file(store, input, &name, watch)
}

/// Loads an archive from a stream (stdin): it is spooled to a temporary file first, since
/// the files of an archive may come in any order.
pub fn load_reader(
    store: &ImageStore,
    reader: impl Read,
    name: &str,
) -> Result<Vec<Loaded>, ImageError> {
    load_reader_watched(store, reader, name, &Unwatched)
}

/// [`load_reader`], telling `watch` how far each file of the archive has been read.
pub fn load_reader_watched(
    store: &ImageStore,
    reader: impl Read,
    name: &str,
    watch: &dyn Watch,
) -> Result<Vec<Loaded>, ImageError> {
    let spooled = spool(store, reader, name)?;
    load_file(store, spooled.path(), name, watch)
}

fn load_file(
    store: &ImageStore,
    path: &Path,
    name: &str,
    watch: &dyn Watch,
) -> Result<Vec<Loaded>, ImageError> {
    let mut file = File::open(path).map_err(ImageError::io("cannot open", path))?;
    let mut magic = [0u8; 6];
    let n = read_up_to(&mut file, &mut magic).map_err(ImageError::io("cannot read", path))?;
    if n == 0 {
        return Err(ImageError::invalid(name, "the input is empty"));
    }
    match Compression::sniff(&magic[..n]) {
        Compression::Plain => import(store, &TarSource::scan(path, name)?, watch),
        Compression::Gzip => {
            drop(file);
            let file = File::open(path).map_err(ImageError::io("cannot open", path))?;
            let tar = spool(store, MultiGzDecoder::new(BufReader::new(file)), name)?;
            import(store, &TarSource::scan(tar.path(), name)?, watch)
        }
        other => Err(ImageError::Unsupported(format!(
            "{name}: {} compressed archives are not supported: decompress it first",
            other.name()
        ))),
    }
}

/// Copies `reader` to a temporary file beside the blobs (deleted when dropped).
fn spool(
    store: &ImageStore,
    mut reader: impl Read,
    name: &str,
) -> Result<NamedTempFile, ImageError> {
    let dir = store.tmp_dir()?;
    let mut tmp = tempfile::Builder::new()
        .prefix("load-")
        .tempfile_in(&dir)
        .map_err(ImageError::io("cannot create a temporary file in", &dir))?;
    io::copy(&mut reader, &mut tmp).map_err(|source| ImageError::Io {
        context: format!("cannot read {name}"),
        source,
    })?;
    Ok(tmp)
}

fn import(
    store: &ImageStore,
    src: &dyn Source,
    watch: &dyn Watch,
) -> Result<Vec<Loaded>, ImageError> {
    let src = &Watched { inner: src, watch };
    let images: Vec<ImageRecord> = if src.exists("manifest.json") {
        docker::import(src, store.blobs())?
    } else if src.exists("oci-layout") {
        oci::import(src, store.blobs())?
    } else {
        return Err(ImageError::invalid(
            src.name(),
            "neither a `docker save` archive (no manifest.json) nor an OCI image layout \
             (no oci-layout)",
        ));
    };
    if images.is_empty() {
        return Err(ImageError::invalid(
            src.name(),
            "the archive holds no images",
        ));
    }
    store.index().update(|index| {
        for image in &images {
            index.add(image.clone());
        }
        Ok(())
    })?;
    Ok(images
        .into_iter()
        .map(|r| Loaded {
            id: r.config,
            tags: r.tags,
        })
        .collect())
}
