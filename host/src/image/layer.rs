//! What both importers share: storing a layer while computing its digests (one pass over the
//! input, verified before the blob becomes visible), checking diff_ids against the config, and
//! writing the OCI manifest berth keeps for every image.

use std::io::{self, Read, Write};
use std::str::FromStr;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageManifest, ImageManifestBuilder, MediaType,
};

use super::digest::{HashingReader, HashingSink};
use super::{BlobStore, Digest, ImageError, ImageRecord, Reference};

/// How a stream is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    Plain,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    pub(crate) fn sniff(magic: &[u8]) -> Compression {
        match magic {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            [b'B', b'Z', b'h', ..] => Compression::Bzip2,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
            _ => Compression::Plain,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::Plain => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
        }
    }
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the stream.
pub(crate) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A layer as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub gzip: bool,
    pub zstd: bool,
}

/// The index record of an image whose manifest, config and layers are stored.
pub(crate) fn record(
    manifest: Digest,
    config: Digest,
    layers: Vec<StoredLayer>,
    created: Option<String>,
    tags: Vec<Reference>,
) -> ImageRecord {
    ImageRecord {
        manifest,
        config,
        size: layers.iter().map(|l| l.size).sum(),
        diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
        layers: layers.into_iter().map(|l| l.digest).collect(),
        created,
        tags,
        repo_digests: Vec::new(),
        intermediate: false,
    }
}

/// Writes everything read through it to `out`.
struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Stores the layer `reader` yields in one pass. The input must have `expected` digest and
/// `expected_size` when given. Gzip input is stored as is and decompressed on the way to get
/// its diff_id; an uncompressed tar is gzipped when `compress`, else stored as is.
pub(crate) fn store_layer(
    blobs: &BlobStore,
    what: &str,
    reader: impl Read,
    expected: Option<&Digest>,
    expected_size: Option<u64>,
    compress: bool,
) -> Result<StoredLayer, ImageError> {
    let mut blob = blobs.writer()?;
    let read = read_layer(what, reader, expected, expected_size, &mut blob, compress)?;
    let size = blob.written();
    let digest = blob.commit(None)?;
    Ok(StoredLayer {
        digest,
        size,
        diff_id: read.diff_id,
        gzip: read.kind == Compression::Gzip || compress,
        zstd: read.kind == Compression::Zstd,
    })
}

/// Verifies the layer in `path` (digest, size, and that it decompresses), then moves the
/// file itself into the store: for downloads, which are already on the store's file system.
pub(crate) fn adopt_layer(
    blobs: &BlobStore,
    what: &str,
    path: &std::path::Path,
    expected: &Digest,
    expected_size: u64,
) -> Result<StoredLayer, ImageError> {
    let file = std::fs::File::open(path).map_err(ImageError::io("cannot open", path))?;
    let reader = io::BufReader::with_capacity(1 << 17, file);
    let read = read_layer(
        what,
        reader,
        Some(expected),
        Some(expected_size),
        &mut io::sink(),
        false,
    )?;
    blobs.adopt(path, expected)?;
    Ok(StoredLayer {
        digest: expected.clone(),
        size: expected_size,
        diff_id: read.diff_id,
        gzip: read.kind == Compression::Gzip,
        zstd: read.kind == Compression::Zstd,
    })
}

/// What reading a layer found.
struct ReadLayer {
    diff_id: Digest,
    kind: Compression,
}

/// Reads a layer once, writing it (or, with `compress`, its gzip) to `out`, checking its
/// digest and size and finding its diff_id.
fn read_layer(
    what: &str,
    reader: impl Read,
    expected: Option<&Digest>,
    expected_size: Option<u64>,
    out: &mut dyn Write,
    compress: bool,
) -> Result<ReadLayer, ImageError> {
    let failed = |source| ImageError::Io {
        context: format!("cannot import {what}"),
        source,
    };
    let limit = expected_size.map_or(u64::MAX, |s| s.saturating_add(1));
    let mut source = HashingReader::new(reader.take(limit));
    let mut magic = [0u8; 6];
    let n = read_up_to(&mut source, &mut magic).map_err(failed)?;
    let kind = Compression::sniff(&magic[..n]);
    if !matches!(
        kind,
        Compression::Gzip | Compression::Zstd | Compression::Plain
    ) {
        return Err(ImageError::Unsupported(format!(
            "{what}: {} compressed layers are not supported",
            kind.name()
        )));
    }
    let mut input = (&magic[..n]).chain(&mut source);
    let copied = copy_layer(kind, &mut input, out, compress);
    if copied.is_err() && expected.is_some() {
        // Corrupt content shows as bad gzip first; the digest names the real problem.
        let _ = io::copy(&mut input, &mut io::sink());
    }
    let (source_digest, source_size) = source.finish();
    if let Some(expected) = expected.filter(|e| **e != source_digest) {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: expected.clone(),
            actual: source_digest,
        });
    }
    let diff_id = copied.map_err(failed)?;
    if let Some(size) = expected_size.filter(|s| *s != source_size) {
        return Err(ImageError::SizeMismatch {
            what: what.to_string(),
            expected: size,
            actual: source_size,
        });
    }
    Ok(ReadLayer {
        diff_id: diff_id.unwrap_or(source_digest),
        kind,
    })
}

/// Copies a plain or gzip layer into `blob`; returns the diff_id when it differs from the
/// digest of the input (gzip input).
fn copy_layer(
    kind: Compression,
    input: &mut impl Read,
    blob: &mut dyn Write,
    compress: bool,
) -> io::Result<Option<Digest>> {
    match kind {
        Compression::Gzip => {
            let mut diff = HashingSink::default();
            let mut gz = MultiGzDecoder::new(Tee {
                inner: &mut *input,
                out: &mut *blob,
            });
            io::copy(&mut gz, &mut diff)?;
            io::copy(&mut gz.into_inner(), &mut io::sink())?;
            Ok(Some(diff.finish().0))
        }
        Compression::Zstd => {
            let mut diff = HashingSink::default();
            let tee = Tee {
                inner: &mut *input,
                out: &mut *blob,
            };
            let mut zstd = ruzstd::decoding::StreamingDecoder::new(tee)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
            io::copy(&mut zstd, &mut diff)
                .map_err(|e| io::Error::new(e.kind(), format!("corrupt zstd data: {e}")))?;
            io::copy(&mut zstd.into_inner(), &mut io::sink())?;
            Ok(Some(diff.finish().0))
        }
        _ if compress => {
            let mut gz = GzEncoder::new(blob, flate2::Compression::default());
            io::copy(input, &mut gz)?;
            gz.finish()?;
            Ok(None)
        }
        _ => {
            io::copy(input, blob)?;
            Ok(None)
        }
    }
}

/// Parses an image config (Docker's and OCI's are the same document).
pub(crate) fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfiguration, ImageError> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: what.to_string(),
        source,
    })
}

/// The config's diff_ids, one per layer.
pub(crate) fn diff_ids(
    config: &ImageConfiguration,
    layers: usize,
    what: &str,
) -> Result<Vec<String>, ImageError> {
    let ids = config.rootfs().diff_ids();
    if ids.len() != layers {
        let reason = format!(
            "the config lists {} diff_ids for {layers} layers",
            ids.len()
        );
        return Err(ImageError::invalid(what, reason));
    }
    Ok(ids.clone())
}

/// Refuses a layer whose content is not what the config says.
pub(crate) fn check_diff_id(
    layer: &str,
    expected: &str,
    actual: &Digest,
) -> Result<(), ImageError> {
    if expected == actual.to_string() {
        Ok(())
    } else {
        Err(ImageError::DiffIdMismatch {
            layer: layer.to_string(),
            expected: expected.to_string(),
            actual: actual.clone(),
        })
    }
}

/// A descriptor in OCI terms.
fn descriptor(media_type: MediaType, size: u64, digest: &Digest) -> Result<Descriptor, ImageError> {
    let digest = oci_spec::image::Digest::from_str(&digest.to_string())
        .map_err(|e| ImageError::invalid(digest.to_string(), e.to_string()))?;
    Ok(Descriptor::new(media_type, size, digest))
}

/// Stores an image's manifest as berth keeps every image's: as it came when it is
/// OCI-typed throughout, else rewritten as an OCI manifest of the same config and layers.
/// Returns the stored manifest's digest.
pub(crate) fn store_manifest(
    blobs: &BlobStore,
    media_type: &str,
    manifest: &ImageManifest,
    bytes: &[u8],
    digest: &Digest,
    config: &[u8],
    layers: &[StoredLayer],
) -> Result<Digest, ImageError> {
    let oci_typed = media_type == MediaType::ImageManifest.to_string()
        && manifest.config().media_type().to_string() == MediaType::ImageConfig.to_string()
        && manifest.layers().iter().all(|l| {
            l.media_type()
                .to_string()
                .starts_with("application/vnd.oci.")
        });
    if oci_typed {
        blobs.put(bytes, Some(digest))
    } else {
        let config_digest = Digest::of(config);
        let rewritten = oci_manifest(&config_digest, config.len() as u64, layers)?;
        blobs.put(&rewritten[..], None)
    }
}

/// Stores an image whose layers are stored: its config, an OCI manifest for them, and
/// its index record with `tags`. Returns the image ID (the config's digest).
pub(crate) fn store_image(
    store: &super::ImageStore,
    config_bytes: &[u8],
    layers: Vec<StoredLayer>,
    created: String,
    tags: Vec<Reference>,
) -> Result<Digest, ImageError> {
    let blobs = store.blobs();
    parse_config(config_bytes, "image config")?;
    let config_digest = blobs.put(config_bytes, None)?;
    let manifest = oci_manifest(&config_digest, config_bytes.len() as u64, &layers)?;
    let manifest = blobs.put(&manifest[..], None)?;
    let record = record(manifest, config_digest.clone(), layers, Some(created), tags);
    store.index().update(|images| {
        images.add(record);
        Ok(())
    })?;
    Ok(config_digest)
}

/// An OCI image manifest (OCI media types) for a config and its stored layers.
pub(crate) fn oci_manifest(
    config: &Digest,
    config_size: u64,
    layers: &[StoredLayer],
) -> Result<Vec<u8>, ImageError> {
    let layers = layers
        .iter()
        .map(|l| {
            let media = if l.zstd {
                MediaType::ImageLayerZstd
            } else if l.gzip {
                MediaType::ImageLayerGzip
            } else {
                MediaType::ImageLayer
            };
            descriptor(media, l.size, &l.digest)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, config_size, config)?)
        .layers(layers)
        .build()
        .map_err(|e| ImageError::invalid("image manifest", e.to_string()))?;
    serde_json::to_vec(&manifest).map_err(|source| ImageError::Json {
        what: "image manifest".into(),
        source,
    })
}

#[cfg(test)]
mod tests;
