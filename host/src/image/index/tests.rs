//! Unit tests of the image index: tags moving between images, atomic updates, the lock.

use super::*;

fn record(config: &[u8], tags: &[&str]) -> ImageRecord {
    ImageRecord {
        manifest: Digest::of(&[config, b"-manifest"].concat()),
        config: Digest::of(config),
        layers: vec![Digest::of(b"layer")],
        diff_ids: vec![Digest::of(b"diff")],
        size: 42,
        created: Some("2024-01-01T00:00:00Z".into()),
        tags: tags.iter().map(|t| Reference::parse(t).unwrap()).collect(),
        repo_digests: vec![],
        intermediate: false,
    }
}

fn tags(images: &Images, config: &[u8]) -> Vec<String> {
    let r = images.get(&Digest::of(config)).unwrap();
    r.tags.iter().map(|t| t.familiar()).collect()
}

#[test]
fn adding_merges_tags_of_the_same_image() {
    let mut images = Images::default();
    images.add(record(b"a", &["busybox"]));
    images.add(record(
        b"a",
        &["docker.io/library/busybox:latest", "busybox:1"],
    ));
    assert_eq!(images.len(), 1);
    assert_eq!(tags(&images, b"a"), ["busybox:latest", "busybox:1"]);
    // The image stored first keeps its manifest and layers.
    let mut again = record(b"a", &[]);
    again.manifest = Digest::of(b"another manifest");
    images.add(again);
    let stored = images.get(&Digest::of(b"a")).unwrap();
    assert_eq!(stored.manifest, record(b"a", &[]).manifest);
    assert_eq!(stored.tags.len(), 2);
}

#[test]
fn a_tag_moves_and_the_old_image_stays_as_none() {
    let mut images = Images::default();
    images.add(record(b"old", &["app:1", "app:latest"]));
    images.add(record(b"new", &["app:latest"]));
    assert_eq!(tags(&images, b"old"), ["app:1"]);
    assert_eq!(tags(&images, b"new"), ["app:latest"]);
    images.add(record(b"newer", &["app:1"]));
    assert_eq!(images.len(), 3);
    assert!(tags(&images, b"old").is_empty(), "listed as <none>");
    let latest = Reference::parse("app").unwrap();
    assert_eq!(images.find_tag(&latest).unwrap().id(), &Digest::of(b"new"));
}

#[test]
fn digest_references_are_not_tags() {
    let mut images = Images::default();
    let by_digest = format!("app@{}", Digest::of(b"m"));
    images.add(record(b"a", &[&by_digest, "app:2"]));
    assert_eq!(tags(&images, b"a"), ["app:2"]);
}

#[test]
fn update_round_trips_and_a_failed_change_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let index = ImageIndex::new(tmp.path());
    assert!(index.read().unwrap().is_empty());
    index
        .update(|images| {
            images.add(record(b"a", &["busybox"]));
            Ok(())
        })
        .unwrap();
    let before = std::fs::read(index.path()).unwrap();
    let result: Result<(), _> = index.update(|images| {
        images.add(record(b"b", &["busybox"]));
        Err(ImageError::Unsupported("changed my mind".into()))
    });
    assert!(result.is_err());
    assert_eq!(std::fs::read(index.path()).unwrap(), before);
    let images = index.read().unwrap();
    assert_eq!(tags(&images, b"a"), ["busybox:latest"]);
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".index-"))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}

#[test]
fn a_held_lock_times_out_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let index = ImageIndex::new(tmp.path()).with_lock_timeout(Duration::from_millis(100));
    let held = index.lock().unwrap();
    let start = Instant::now();
    let err = index.update(|_| Ok(())).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, ImageError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("index.lock"), "{err}");
    drop(held);
    index.update(|_| Ok(())).unwrap();
}

#[test]
fn a_corrupt_or_newer_index_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let index = ImageIndex::new(tmp.path());
    std::fs::write(index.path(), "{not json").unwrap();
    assert!(index
        .read()
        .unwrap_err()
        .to_string()
        .contains("invalid JSON"));
    std::fs::write(index.path(), r#"{"version": 99, "images": {}}"#).unwrap();
    assert!(index
        .read()
        .unwrap_err()
        .to_string()
        .contains("newer berth"));
}

#[test]
fn repo_digests_are_one_per_repository_and_find_by_digest() {
    let mut images = Images::default();
    let mut a = record(b"a", &["localhost:5000/x:1"]);
    a.repo_digests = vec![format!("localhost:5000/x@{}", Digest::of(b"old"))];
    images.add(a.clone());
    a.repo_digests = vec![format!("localhost:5000/x@{}", Digest::of(b"new"))];
    images.add(a);
    let r = images.get(&Digest::of(b"a")).unwrap();
    assert_eq!(
        r.repo_digests,
        vec![format!("localhost:5000/x@{}", Digest::of(b"new"))]
    );
    let by_new = Reference::parse(&format!("localhost:5000/x@{}", Digest::of(b"new"))).unwrap();
    let by_old = Reference::parse(&format!("localhost:5000/x@{}", Digest::of(b"old"))).unwrap();
    assert_eq!(
        images.find_repo_digest(&by_new).unwrap().config,
        Digest::of(b"a")
    );
    assert!(images.find_repo_digest(&by_old).is_none());
}
