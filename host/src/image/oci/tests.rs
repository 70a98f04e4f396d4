//! Unit tests of the OCI layout importer on layouts written into temporary directories.

use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::image::archive::DirSource;

const LAYER: &[u8] = b"not really a tar, but a layer all the same";

struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Layout { dir }
    }

    fn blob(&self, bytes: &[u8]) -> (Digest, u64) {
        let d = Digest::of(bytes);
        std::fs::write(self.dir.path().join("blobs/sha256").join(d.hex()), bytes).unwrap();
        (d, bytes.len() as u64)
    }

    fn json_blob(&self, value: &Value) -> (Digest, u64) {
        self.blob(&serde_json::to_vec(value).unwrap())
    }

    /// An amd64 (or other) image with one uncompressed layer; returns its manifest descriptor.
    fn image(&self, arch: &str, layer_media: &str) -> Value {
        let (layer, layer_size) = self.blob(LAYER);
        let config = json!({
            "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(LAYER).to_string()]}
        });
        let (config, config_size) = self.json_blob(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config.to_string(), "size": config_size},
            "layers": [{"mediaType": layer_media, "digest": layer.to_string(), "size": layer_size}]
        });
        let (digest, size) = self.json_blob(&manifest);
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": digest.to_string(), "size": size,
               "platform": {"architecture": arch, "os": "linux"}})
    }

    fn index(&self, manifests: Vec<Value>) {
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        std::fs::write(self.dir.path().join("index.json"), index.to_string()).unwrap();
    }

    fn import(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let store = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(store.path()).unwrap();
        import(&DirSource::new(self.dir.path(), "layout"), &blobs)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn annotated(mut desc: Value, key: &str, value: &str) -> Value {
    desc["annotations"] = json!({ key: value });
    desc
}

#[test]
fn imports_an_image_and_keeps_its_oci_manifest() {
    let layout = Layout::new();
    let desc = layout.image("amd64", "application/vnd.oci.image.layer.v1.tar");
    layout.index(vec![annotated(
        desc.clone(),
        ANNOTATION_REF_NAME,
        "busybox:1",
    )]);
    let images = layout.import().unwrap();
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!(image.manifest.to_string(), desc["digest"]);
    assert_eq!(image.layers, [Digest::of(LAYER)]);
    assert_eq!(image.diff_ids, [Digest::of(LAYER)]);
    assert_eq!(image.size, LAYER.len() as u64);
    assert_eq!(image.created.as_deref(), Some("2024-01-01T00:00:00Z"));
    assert_eq!(image.tags[0].to_string(), "docker.io/library/busybox:1");
}

#[test]
fn follows_nested_indexes_to_linux_amd64() {
    let layout = Layout::new();
    let arm = layout.image("arm64", "application/vnd.oci.image.layer.v1.tar");
    let amd = layout.image("amd64", "application/vnd.oci.image.layer.v1.tar");
    let inner = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [arm, amd.clone()]});
    let (digest, size) = layout.json_blob(&inner);
    let outer = json!({"mediaType": "application/vnd.oci.image.index.v1+json",
                       "digest": digest.to_string(), "size": size});
    layout.index(vec![annotated(
        outer,
        CONTAINERD_NAME,
        "docker.io/user/app:2",
    )]);
    let images = layout.import().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].manifest.to_string(), amd["digest"]);
    assert_eq!(images[0].tags[0].familiar(), "user/app:2");
}

#[test]
fn other_platforms_only_is_an_error() {
    let layout = Layout::new();
    layout.index(vec![
        layout.image("arm64", "application/vnd.oci.image.layer.v1.tar")
    ]);
    let err = layout.import().unwrap_err().to_string();
    assert!(
        err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
}

#[test]
fn a_tampered_blob_is_refused() {
    let layout = Layout::new();
    layout.index(vec![
        layout.image("amd64", "application/vnd.oci.image.layer.v1.tar")
    ]);
    let layer = Digest::of(LAYER);
    std::fs::write(
        layout.path().join("blobs/sha256").join(layer.hex()),
        b"evil",
    )
    .unwrap();
    let err = layout.import().unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&layer.to_string()), "{text}");
}

#[test]
fn zstd_typed_layers_are_imported() {
    let layout = Layout::new();
    layout.index(vec![
        layout.image("amd64", "application/vnd.oci.image.layer.v1.tar+zstd")
    ]);
    let images = layout.import().unwrap();
    assert_eq!(images[0].diff_ids, vec![Digest::of(LAYER)]);
}

#[test]
fn tags_come_from_names_not_bare_tags() {
    let desc = |key: &str, value: &str| -> Descriptor {
        let d = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": Digest::of(b"m").to_string(), "size": 1});
        serde_json::from_value(annotated(d, key, value)).unwrap()
    };
    let tags =
        |d: &Descriptor| -> Vec<String> { tags_of(d).iter().map(|t| t.familiar()).collect() };
    assert_eq!(
        tags(&desc(ANNOTATION_REF_NAME, "latest")),
        Vec::<String>::new()
    );
    assert_eq!(tags(&desc(ANNOTATION_REF_NAME, "busybox:1")), ["busybox:1"]);
    assert_eq!(
        tags(&desc(ANNOTATION_REF_NAME, "localhost:5000/x")),
        ["localhost:5000/x:latest"]
    );
    assert_eq!(
        tags(&desc(ANNOTATION_REF_NAME, "Bad:Name")),
        Vec::<String>::new()
    );
    assert_eq!(
        tags(&desc(CONTAINERD_NAME, "docker.io/library/busybox:2")),
        ["busybox:2"]
    );
}
