use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;

/// Builds a tar with raw names, so hostile entries can be written as-is.
struct Crafted(tar::Builder<Vec<u8>>);

impl Crafted {
    fn new() -> Self {
        Crafted(tar::Builder::new(Vec::new()))
    }

    fn entry(mut self, name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>) -> Self {
        let mut h = tar::Header::new_gnu();
        let raw = &mut h.as_gnu_mut().unwrap().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            let raw = &mut h.as_gnu_mut().unwrap().linkname;
            raw[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, name: &str, data: &str) -> Self {
        self.entry(name, tar::EntryType::Regular, data.as_bytes(), None)
    }

    fn dir(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Directory, b"", None)
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Symlink, b"", Some(target))
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Link, b"", Some(target))
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A sandbox: `root/layer` is the layer dir, `root/outside` must stay untouched.
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("layer")).unwrap();
        fs::create_dir(root.path().join("outside")).unwrap();
        fs::write(root.path().join("outside/keep"), "original").unwrap();
        Sandbox { root }
    }

    fn layer(&self) -> PathBuf {
        self.root.path().join("layer")
    }

    fn outside(&self) -> PathBuf {
        self.root.path().join("outside")
    }

    fn unpack(&self, tar: &[u8]) -> Result<Unpacked, LayerError> {
        unpack(tar, &self.layer())
    }

    /// Nothing appeared next to the layer dir or in `outside`, and `keep` is intact.
    fn assert_contained(&self) {
        let mut top: Vec<_> = fs::read_dir(self.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        top.sort();
        assert_eq!(top, ["layer", "outside"]);
        let outside: Vec<_> = fs::read_dir(self.outside())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(outside, ["keep"]);
        assert_eq!(
            fs::read_to_string(self.outside().join("keep")).unwrap(),
            "original"
        );
    }
}

#[test]
fn unpacks_files_dirs_links_and_modes_from_gzip() {
    let s = Sandbox::new();
    let tar = Crafted::new()
        .dir("etc/")
        .file("etc/hostname", "box\n")
        .symlink("etc/name", "hostname")
        .hardlink("etc/hostname2", "etc/hostname")
        .file("bin/tool", "#!/bin/sh\n")
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let done = unpack(&gz.finish().unwrap()[..], &s.layer()).unwrap();
    assert_eq!(done.entries, 5);
    let l = s.layer();
    assert_eq!(fs::read_to_string(l.join("etc/hostname")).unwrap(), "box\n");
    assert_eq!(
        fs::read_link(l.join("etc/name")).unwrap(),
        Path::new("hostname")
    );
    assert_eq!(
        fs::metadata(l.join("etc/hostname2")).unwrap().ino(),
        fs::metadata(l.join("etc/hostname")).unwrap().ino()
    );
    assert_eq!(
        fs::metadata(l.join("bin/tool")).unwrap().mode() & 0o7777,
        0o644
    );
    assert!(l.join("bin").is_dir(), "missing parents are created");
}

#[test]
fn unpacks_zstd_layers() {
    let s = Sandbox::new();
    let tar = Crafted::new().file("etc/hostname", "zbox\n").bytes();
    let zstd =
        ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
    let done = unpack(&zstd[..], &s.layer()).unwrap();
    assert_eq!(done.entries, 1);
    assert_eq!(
        fs::read_to_string(s.layer().join("etc/hostname")).unwrap(),
        "zbox\n"
    );
}

#[test]
fn dot_dot_entries_refuse_the_layer() {
    let s = Sandbox::new();
    let err = s
        .unpack(&Crafted::new().file("../outside/keep", "pwned").bytes())
        .unwrap_err();
    assert!(matches!(err, LayerError::Escape(_)), "{err}");
    let err = s
        .unpack(&Crafted::new().file("a/../../escape", "x").bytes())
        .unwrap_err();
    assert!(matches!(err, LayerError::Escape(_)), "{err}");
    s.assert_contained();
}

#[test]
fn absolute_entries_stay_inside() {
    let s = Sandbox::new();
    let outside = s.outside().join("abs");
    let name = outside.to_str().unwrap().to_string();
    s.unpack(&Crafted::new().file(&name, "contained").bytes())
        .unwrap();
    let inside = s.layer().join(outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(inside).unwrap(), "contained");
    s.assert_contained();
}

#[test]
fn symlinks_cannot_redirect_later_entries() {
    let s = Sandbox::new();
    let outside = s.outside().to_str().unwrap().to_string();
    for tar in [
        Crafted::new()
            .symlink("evil", &outside)
            .file("evil/pwned", "x")
            .bytes(),
        Crafted::new()
            .symlink("evil", "../outside")
            .file("evil/keep", "x")
            .bytes(),
        Crafted::new()
            .symlink("evil", &outside)
            .dir("evil/sub/")
            .bytes(),
    ] {
        let err = s.unpack(&tar).unwrap_err();
        assert!(matches!(err, LayerError::ThroughSymlink { .. }), "{err}");
    }
    // A symlink may itself point anywhere: it is only followed inside the container.
    assert_eq!(
        fs::read_link(s.layer().join("evil")).unwrap(),
        Path::new(&outside)
    );
    s.assert_contained();
}

#[test]
fn hardlinks_must_stay_in_the_layer() {
    let s = Sandbox::new();
    let keep = s.outside().join("keep").to_str().unwrap().to_string();
    for tar in [
        Crafted::new().hardlink("h", "../outside/keep").bytes(),
        Crafted::new().hardlink("h", &keep).bytes(),
        Crafted::new()
            .symlink("s", "../outside")
            .hardlink("h", "s/keep")
            .bytes(),
    ] {
        let err = s.unpack(&tar).unwrap_err();
        assert!(matches!(err, LayerError::BadHardlink { .. }), "{err}");
    }
    assert!(!s.layer().join("h").exists());
    s.assert_contained();
}

#[test]
fn a_file_replacing_a_symlink_does_not_write_through_it() {
    let s = Sandbox::new();
    let keep = s.outside().join("keep").to_str().unwrap().to_string();
    s.unpack(&Crafted::new().symlink("f", &keep).file("f", "new").bytes())
        .unwrap();
    assert_eq!(fs::read_to_string(s.layer().join("f")).unwrap(), "new");
    assert!(!fs::symlink_metadata(s.layer().join("f"))
        .unwrap()
        .file_type()
        .is_symlink());
    s.assert_contained();
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let s = Sandbox::new();
    let tar = Crafted::new()
        .dir("d/")
        .file("d/.wh..wh..opq", "")
        .file(".wh.gone", "")
        .bytes();
    match s.unpack(&tar) {
        Ok(done) => {
            assert_eq!(done.whiteouts, 2);
            let gone = fs::symlink_metadata(s.layer().join("gone")).unwrap();
            assert!(gone.file_type().is_char_device());
            assert_eq!(gone.rdev(), 0);
            assert_eq!(
                sys::get_xattr(&s.layer().join("d"), OPAQUE_XATTR).unwrap(),
                b"y"
            );
            assert!(!s.layer().join(".wh.gone").exists());
        }
        // Without CAP_MKNOD / CAP_SYS_ADMIN (not root) the kernel refuses both; the layer
        // must then fail rather than silently lose its whiteouts.
        Err(LayerError::Entry { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EPERM), "{source}");
        }
        Err(e) => panic!("unexpected: {e}"),
    }
    s.assert_contained();
}

#[test]
fn modification_times_come_from_the_layer() {
    let s = Sandbox::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mtime: u64, link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        match link {
            Some(l) => b.append_link(&mut h, name, l).unwrap(),
            None => b.append_data(&mut h, name, std::io::empty()).unwrap(),
        }
    };
    add("d/", tar::EntryType::Directory, 1_000_000, None);
    add("d/f", tar::EntryType::Regular, 2_000_000, None);
    add("d/l", tar::EntryType::Symlink, 3_000_000, Some("f"));
    let tar = b.into_inner().unwrap();
    unpack(&tar[..], &s.layer()).unwrap();
    let l = s.layer();
    let mtime = |p: &str| fs::symlink_metadata(l.join(p)).unwrap().mtime();
    assert_eq!(mtime("d/f"), 2_000_000, "a file's mtime");
    assert_eq!(mtime("d/l"), 3_000_000, "a symlink's own mtime");
    assert_eq!(
        mtime("d"),
        1_000_000,
        "a directory's mtime, set after its entries"
    );
}
