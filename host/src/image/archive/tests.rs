//! Unit tests of archive reading: names, links, in-place reads, size limits.

use super::*;

/// A tar with the given entries; `(name, Some(data))` is a file, `(name, None)` a directory.
/// Names are written raw into the header so that hostile ones survive.
fn tar_with(entries: &[(&str, Option<&[u8]>)], links: &[(&str, &str)]) -> tempfile::NamedTempFile {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        match data {
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                builder.append(&h, *d).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                h.set_cksum();
                builder.append(&h, &[][..]).unwrap();
            }
        }
    }
    for (name, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        builder.append(&h, &[][..]).unwrap();
    }
    let bytes = builder.into_inner().unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, &bytes).unwrap();
    file
}

fn read(src: &dyn Source, path: &str) -> Vec<u8> {
    let (mut r, size) = src.open(path).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out.len() as u64, size);
    out
}

#[test]
fn cleans_names_and_refuses_escapes() {
    assert_eq!(clean("./a//b/").unwrap(), "a/b");
    assert_eq!(clean("manifest.json").unwrap(), "manifest.json");
    for bad in [
        "../escape",
        "a/../../b",
        "a/..",
        "/etc/passwd",
        "\\x",
        "a\\..\\b",
        "",
        ".",
    ] {
        assert!(clean(bad).is_err(), "{bad}");
    }
}

#[test]
fn symlinks_resolve_inside_the_archive_only() {
    assert_eq!(
        resolve_symlink("b/layer.tar", "../a/layer.tar").unwrap(),
        "a/layer.tar"
    );
    assert_eq!(resolve_symlink("x", "y").unwrap(), "y");
    assert!(resolve_symlink("b/layer.tar", "../../a").is_err());
    assert!(resolve_symlink("b/layer.tar", "/etc/passwd").is_err());
}

#[test]
fn reads_files_in_place_and_follows_links() {
    let file = tar_with(
        &[
            ("./", None),
            ("a/", None),
            ("a/layer.tar", Some(b"layer bytes")),
            ("./manifest.json", Some(b"[]")),
        ],
        &[("b/layer.tar", "../a/layer.tar")],
    );
    let src = TarSource::scan(file.path(), "test.tar").unwrap();
    assert_eq!(src.name(), "test.tar");
    assert_eq!(read(&src, "manifest.json"), b"[]");
    assert_eq!(read(&src, "a/layer.tar"), b"layer bytes");
    assert_eq!(read(&src, "b/layer.tar"), b"layer bytes");
    assert!(src.exists("./a/layer.tar"));
    assert!(!src.exists("nope"));
    let err = src.open("nope").err().unwrap().to_string();
    assert!(err.contains("test.tar") && err.contains("nope"), "{err}");
    assert!(src.open("../a/layer.tar").is_err());
}

#[test]
fn refuses_archives_with_unsafe_entries() {
    for name in ["../escape", "a/../../escape", "/abs"] {
        let file = tar_with(&[("ok", Some(b"x")), (name, Some(b"evil"))], &[]);
        let err = TarSource::scan(file.path(), "evil.tar").err().unwrap();
        assert!(
            matches!(err, ImageError::UnsafePath { .. }),
            "{name}: {err}"
        );
    }
    let file = tar_with(&[("../", None)], &[]);
    assert!(TarSource::scan(file.path(), "evil.tar").is_err());
    let file = tar_with(&[], &[("link", "../../etc/passwd")]);
    let err = TarSource::scan(file.path(), "evil.tar").err().unwrap();
    assert!(err.to_string().contains("outside"), "{err}");
}

#[test]
fn link_loops_end() {
    let file = tar_with(&[], &[("a", "b"), ("b", "a")]);
    let src = TarSource::scan(file.path(), "loop.tar").unwrap();
    assert!(src.open("a").err().unwrap().to_string().contains("links"));
}

#[test]
fn read_small_caps_the_size() {
    let big = vec![b' '; JSON_LIMIT as usize + 1];
    let file = tar_with(
        &[("big.json", Some(&big)), ("small.json", Some(b"{}"))],
        &[],
    );
    let src = TarSource::scan(file.path(), "t.tar").unwrap();
    assert_eq!(src.read_small("small.json").unwrap(), b"{}");
    let err = src.read_small("big.json").unwrap_err();
    assert!(matches!(err, ImageError::TooLarge { .. }), "{err}");
}

#[test]
fn directories_are_sources_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    std::fs::write(dir.path().join("blobs/sha256/abc"), b"blob").unwrap();
    let src = DirSource::new(dir.path(), "layout");
    assert!(src.exists("blobs/sha256/abc"));
    assert!(!src.exists("blobs/sha256"));
    assert_eq!(read(&src, "./blobs/sha256/abc"), b"blob");
    assert!(src.open("../x").is_err());
    assert!(matches!(
        src.open("index.json").err().unwrap(),
        ImageError::Missing { .. }
    ));
}
