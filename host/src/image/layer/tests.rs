//! Unit tests of layer storage, diff_id checks and the manifest berth writes.

use std::io::Write;

use super::*;

fn store() -> (tempfile::TempDir, BlobStore) {
    let tmp = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(tmp.path()).unwrap();
    (tmp, blobs)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

fn blob_count(tmp: &tempfile::TempDir) -> usize {
    std::fs::read_dir(tmp.path().join("blobs/sha256"))
        .unwrap()
        .count()
}

const TAR: &[u8] = b"pretend this is a tar stream, long enough to matter................";

#[test]
fn sniffs_compression() {
    assert_eq!(Compression::sniff(&gzip(b"x")), Compression::Gzip);
    assert_eq!(Compression::sniff(TAR), Compression::Plain);
    assert_eq!(Compression::sniff(b""), Compression::Plain);
    assert_eq!(
        Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
        Compression::Zstd
    );
    assert_eq!(Compression::sniff(b"BZh9"), Compression::Bzip2);
    assert_eq!(Compression::sniff(b"\xfd7zXZ\x00"), Compression::Xz);
}

#[test]
fn gzip_layers_are_kept_as_they_are() {
    let (_tmp, blobs) = store();
    let gz = gzip(TAR);
    let d = Digest::of(&gz);
    let layer = store_layer(&blobs, "l", &gz[..], Some(&d), Some(gz.len() as u64), true).unwrap();
    assert_eq!(layer.digest, d);
    assert_eq!(layer.size, gz.len() as u64);
    assert_eq!(layer.diff_id, Digest::of(TAR));
    assert!(layer.gzip);
    assert_eq!(blobs.get(&d).unwrap(), gz);
}

#[test]
fn plain_layers_are_gzipped_when_asked() {
    let (_tmp, blobs) = store();
    let layer = store_layer(&blobs, "l", TAR, Some(&Digest::of(TAR)), None, true).unwrap();
    assert!(layer.gzip);
    assert_eq!(layer.diff_id, Digest::of(TAR));
    let stored = blobs.get(&layer.digest).unwrap();
    assert_eq!(Digest::of(&stored), layer.digest);
    assert_eq!(stored.len() as u64, layer.size);
    assert_eq!(gunzip(&stored), TAR);

    let kept = store_layer(&blobs, "l", TAR, None, None, false).unwrap();
    assert!(!kept.gzip);
    assert_eq!(kept.digest, Digest::of(TAR));
    assert_eq!(kept.diff_id, Digest::of(TAR));
}

#[test]
fn tiny_and_empty_layers() {
    let (_tmp, blobs) = store();
    let layer = store_layer(&blobs, "l", &b"ab"[..], None, None, false).unwrap();
    assert_eq!(blobs.get(&layer.digest).unwrap(), b"ab");
    let empty = store_layer(&blobs, "l", &b""[..], None, None, false).unwrap();
    assert_eq!(empty.diff_id, Digest::of(b""));
}

#[test]
fn wrong_digest_or_size_stores_nothing() {
    let (tmp, blobs) = store();
    let wrong = Digest::of(b"something else");
    let err = store_layer(&blobs, "layer x", TAR, Some(&wrong), None, true).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("layer x") && text.contains(&wrong.to_string()),
        "{text}"
    );
    assert!(text.contains(&Digest::of(TAR).to_string()), "{text}");
    let err = store_layer(&blobs, "l", TAR, None, Some(3), false).unwrap_err();
    assert!(
        matches!(err, ImageError::SizeMismatch { expected: 3, .. }),
        "{err}"
    );
    assert_eq!(blob_count(&tmp), 0);
}

#[test]
fn corrupt_gzip_and_other_compressions_are_refused() {
    let (tmp, blobs) = store();
    let mut gz = gzip(TAR);
    let n = gz.len();
    gz[n / 2] ^= 0xff;
    assert!(store_layer(&blobs, "l", &gz[..], None, None, false).is_err());
    let wanted = Digest::of(&gzip(TAR));
    let err = store_layer(&blobs, "l", &gz[..], Some(&wanted), None, false).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
    let err = store_layer(&blobs, "l", &zstd[..], None, None, false).unwrap_err();
    let err = crate::error::chain(&err);
    assert!(err.contains("zstd"), "{err}");
    let xz = [0xfd, b'7', b'z', b'X', b'Z', 0x00, 0, 0];
    let err = store_layer(&blobs, "l", &xz[..], None, None, false).unwrap_err();
    assert!(err.to_string().contains("xz"), "{err}");
    assert_eq!(blob_count(&tmp), 0);
}

#[test]
fn zstd_layers_are_stored_as_is_with_the_tar_as_diff_id() {
    let (_tmp, blobs) = store();
    let zstd = ruzstd::encoding::compress_to_vec(TAR, ruzstd::encoding::CompressionLevel::Fastest);
    let stored = store_layer(
        &blobs,
        "l",
        &zstd[..],
        Some(&Digest::of(&zstd)),
        None,
        false,
    )
    .unwrap();
    assert_eq!(stored.digest, Digest::of(&zstd));
    assert_eq!(stored.diff_id, Digest::of(TAR));
    assert!(stored.zstd);
    assert_eq!(blobs.get(&stored.digest).unwrap(), zstd);
}

#[test]
fn diff_ids_must_match() {
    let d = Digest::of(TAR);
    check_diff_id("l", &d.to_string(), &d).unwrap();
    let err = check_diff_id("l", "sha256:00", &d).unwrap_err().to_string();
    assert!(
        err.contains("sha256:00") && err.contains(&d.to_string()),
        "{err}"
    );
}

#[test]
fn configs_and_their_diff_ids() {
    let config = br#"{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
        "rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
    let parsed = parse_config(config, "c").unwrap();
    assert_eq!(parsed.created().as_deref(), Some("2024-01-01T00:00:00Z"));
    assert_eq!(diff_ids(&parsed, 1, "c").unwrap(), ["sha256:aa"]);
    assert!(diff_ids(&parsed, 2, "c").is_err());
    assert!(parse_config(b"{", "c").is_err());
}

#[test]
fn manifests_use_oci_media_types() {
    let (_tmp, blobs) = store();
    let layer = store_layer(&blobs, "l", TAR, None, None, true).unwrap();
    let config = Digest::of(b"{}");
    let bytes = oci_manifest(&config, 2, std::slice::from_ref(&layer)).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["schemaVersion"], 2);
    assert_eq!(
        json["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        json["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(json["config"]["digest"], config.to_string());
    assert_eq!(json["config"]["size"], 2);
    let l = &json["layers"][0];
    assert_eq!(
        l["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(l["digest"], layer.digest.to_string());
    assert_eq!(l["size"], layer.size);
}
