//! Tests for the build context (`context.rs`).

use super::*;
use std::io::{Cursor, Write};

/// One entry of a test tar.
enum T<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str, u32),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
    /// A raw name, bypassing the tar crate's path checks.
    RawFile(&'a str, &'a [u8]),
    Device(&'a str),
}

fn tar_of(entries: &[T]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(1000);
        h.set_gid(1000);
        match e {
            T::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            T::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, p, io::empty()).unwrap();
            }
            T::Link(p, target) | T::Hard(p, target) => {
                let kind = if matches!(e, T::Link(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                h.set_entry_type(kind);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            T::RawFile(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            T::Device(p) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o600);
                h.set_size(0);
                b.append_data(&mut h, p, io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn sample() -> Vec<u8> {
    tar_of(&[
        T::File("Dockerfile", b"FROM scratch\nCOPY . /app/\n", 0o644),
        T::File("a.txt", b"alpha", 0o600),
        T::File("b.txt", b"beta", 0o644),
        T::Dir("src", 0o750),
        T::File("src/main.rs", b"fn main() {}", 0o644),
        T::File("src/lib/mod.rs", b"// lib", 0o755),
        T::File("secret.key", b"hunter2", 0o600),
        T::Link("link", "a.txt"),
        T::Link("srclink", "/src"),
    ])
}

fn unpack(tar: &[u8]) -> (tempfile::TempDir, Context) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::unpack(Cursor::new(tar.to_vec()), dir.path(), 1 << 20).unwrap();
    (dir, ctx)
}

fn srcs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn rels(sel: &[Selected]) -> Vec<&str> {
    sel.iter().map(|s| s.rel.as_str()).collect()
}

#[test]
fn unpacks_plain_tar_with_metadata_and_implied_dirs() {
    let (dir, ctx) = unpack(&sample());
    assert_eq!(ctx.root(), dir.path());
    assert_eq!(
        ctx.read_file("Dockerfile").unwrap(),
        "FROM scratch\nCOPY . /app/\n"
    );
    assert_eq!(ctx.read_file("./a.txt").unwrap(), "alpha");
    assert_eq!(
        ctx.read_file("link").unwrap(),
        "alpha",
        "symlinks are followed in scope"
    );
    assert_eq!(ctx.read_file("srclink/main.rs").unwrap(), "fn main() {}");
    assert!(ctx.read_file("missing").is_none());
    assert!(ctx.read_file("src").is_none());
    assert!(ctx.read_file("../a.txt").is_none());
    let a = ctx.entry("a.txt").unwrap();
    assert_eq!(
        (a.kind, a.mode, a.uid, a.gid, a.size, a.mtime),
        (EntryKind::File, 0o600, 1000, 1000, 5, 1_700_000_000)
    );
    assert_eq!(ctx.entry("src").unwrap().mode, 0o750);
    let implied = ctx.entry("src/lib").unwrap();
    assert_eq!((implied.kind, implied.mode), (EntryKind::Dir, 0o755));
    let link = ctx.entry("link").unwrap();
    assert_eq!(
        (link.kind, link.link_target.as_deref()),
        (EntryKind::Symlink, Some("a.txt"))
    );
    assert!(dir.path().join("src/lib/mod.rs").is_file());
    assert!(
        !dir.path().join("link").exists(),
        "symlinks are not created on disk"
    );
    assert_eq!(ctx.entry("").unwrap().kind, EntryKind::Dir);
    assert_eq!(
        ctx.entries().count(),
        10,
        "9 entries and the implied src/lib"
    );
}

#[test]
fn unpacks_gzip_and_refuses_other_compressions() {
    let (_dir, ctx) = unpack(&gzip(&sample()));
    assert_eq!(ctx.read_file("b.txt").unwrap(), "beta");
    let dir = tempfile::tempdir().unwrap();
    let err =
        Context::unpack(Cursor::new(b"BZh91AY&SY....".to_vec()), dir.path(), 100).unwrap_err();
    assert!(matches!(err, ContextError::UnsupportedCompression("bzip2")));
    assert!(err.to_string().contains("bzip2"), "{err}");
    let xz = [0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2];
    let err = Context::unpack(Cursor::new(xz.to_vec()), dir.path(), 100).unwrap_err();
    assert!(err.to_string().contains("xz"), "{err}");
    // An empty body is an empty context.
    let ctx = Context::unpack(io::empty(), dir.path(), 100).unwrap();
    assert_eq!(ctx.entries().count(), 0);
}

#[test]
fn refuses_escaping_paths_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("ctx");
    fs::create_dir(&inner).unwrap();
    for bad in ["../x", "a/../../x"] {
        let tar = tar_of(&[T::RawFile(bad, b"evil")]);
        let err = Context::unpack(Cursor::new(tar), &inner, 100).unwrap_err();
        assert!(matches!(err, ContextError::PathEscapes(_)), "{bad}: {err}");
    }
    assert!(!dir.path().join("x").exists());
    // Absolute names are made relative, and inner `..` is resolved.
    let tar = tar_of(&[T::RawFile("/abs/x", b"1"), T::RawFile("a/../y", b"2")]);
    let ctx = Context::unpack(Cursor::new(tar), &inner, 100).unwrap();
    assert_eq!(ctx.read_file("abs/x").unwrap(), "1");
    assert_eq!(ctx.read_file("y").unwrap(), "2");

    let dir2 = tempfile::tempdir().unwrap();
    let err = Context::unpack(
        Cursor::new(tar_of(&[T::Device("dev/null")])),
        dir2.path(),
        100,
    )
    .unwrap_err();
    assert!(err.to_string().contains("character device"), "{err}");
}

#[test]
fn never_writes_through_a_symlink() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let tar = tar_of(&[T::Link("evil", &target), T::File("evil/pwned", b"x", 0o644)]);
    let err = Context::unpack(Cursor::new(tar), dir.path(), 100).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(!outside.path().join("pwned").exists());
}

#[test]
fn later_entries_replace_earlier_ones_and_hardlinks_copy() {
    let tar = tar_of(&[
        T::File("x", b"old", 0o644),
        T::File("x", b"newer", 0o600),
        T::Dir("d", 0o755),
        T::File("d/f", b"f", 0o644),
        T::File("d", b"now a file", 0o644),
        T::Hard("h", "x"),
    ]);
    let (_dir, ctx) = unpack(&tar);
    assert_eq!(ctx.read_file("x").unwrap(), "newer");
    assert_eq!(ctx.read_file("d").unwrap(), "now a file");
    assert!(ctx.entry("d/f").is_none());
    assert_eq!(ctx.read_file("h").unwrap(), "newer");
    assert_eq!(ctx.entry("h").unwrap().size, 5);
}

#[test]
fn size_limit() {
    let tar = tar_of(&[
        T::File("one", &[1; 10], 0o644),
        T::File("two", &[2; 10], 0o644),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let err = Context::unpack(Cursor::new(tar.clone()), dir.path(), 15).unwrap_err();
    assert_eq!(err.to_string(), "the build context is larger than 15 bytes");
    let dir = tempfile::tempdir().unwrap();
    assert!(Context::unpack(Cursor::new(tar), dir.path(), 20).is_ok());
}

#[test]
fn select_files_dirs_wildcards_and_root() {
    let (_dir, ctx) = unpack(&sample());
    let none = Ignore::empty();

    let sel = ctx.select(&srcs(&["a.txt"]), &none).unwrap();
    assert_eq!(rels(&sel), ["a.txt"]);
    assert!(sel[0].single_file);
    let sel = ctx.select(&srcs(&["/src/main.rs"]), &none).unwrap();
    assert_eq!(
        (rels(&sel), sel[0].entry.path.as_str()),
        (vec!["main.rs"], "src/main.rs")
    );

    let sel = ctx.select(&srcs(&["src"]), &none).unwrap();
    assert_eq!(rels(&sel), ["", "lib", "lib/mod.rs", "main.rs"]);
    assert!(sel.iter().all(|s| !s.single_file));

    let sel = ctx.select(&srcs(&["*.txt"]), &none).unwrap();
    assert_eq!(rels(&sel), ["a.txt", "b.txt"]);
    assert!(!sel[0].single_file);
    let sel = ctx.select(&srcs(&["src/*"]), &none).unwrap();
    assert_eq!(
        rels(&sel),
        ["", "mod.rs", "main.rs"],
        "a matched dir gives its contents"
    );

    let sel = ctx.select(&srcs(&["."]), &none).unwrap();
    assert_eq!(sel.len(), 11);
    assert_eq!(sel[0].rel, "");
    assert_eq!(ctx.select(&srcs(&["./"]), &none).unwrap().len(), sel.len());

    // A symlink named as a source is followed, keeping its own name.
    let sel = ctx.select(&srcs(&["link"]), &none).unwrap();
    assert_eq!(
        (
            sel[0].rel.as_str(),
            sel[0].entry.kind,
            sel[0].entry.path.as_str()
        ),
        ("link", EntryKind::File, "a.txt")
    );
    let sel = ctx.select(&srcs(&["srclink"]), &none).unwrap();
    assert_eq!(rels(&sel)[1..], ["lib", "lib/mod.rs", "main.rs"]);

    let sel = ctx.select(&srcs(&["a.txt", "src/main.rs"]), &none).unwrap();
    assert_eq!(rels(&sel), ["a.txt", "main.rs"]);
}

#[test]
fn select_errors_and_ignored_paths() {
    let (_dir, ctx) = unpack(&sample());
    let none = Ignore::empty();
    let err = ctx.select(&srcs(&["missing.txt"]), &none).unwrap_err();
    assert_eq!(
        err.to_string(),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist"
    );
    assert!(matches!(
        ctx.select(&srcs(&["*.none"]), &none),
        Err(ContextError::NotFound(_))
    ));
    assert!(matches!(
        ctx.select(&srcs(&["a.txt/x"]), &none),
        Err(ContextError::NotFound(_))
    ));
    let err = ctx.select(&srcs(&["../x"]), &none).unwrap_err();
    assert_eq!(
        err.to_string(),
        "forbidden path outside the build context: ../x"
    );
    assert!(matches!(
        ctx.select(&srcs(&["src/../../x"]), &none),
        Err(ContextError::OutsideContext(_))
    ));
    assert!(matches!(
        ctx.select(&srcs(&["[a"]), &none),
        Err(ContextError::BadPattern(_))
    ));

    let ignore = Ignore::parse("secret.key\nsrc\n!src/main.rs\nlink\n").unwrap();
    assert!(matches!(
        ctx.select(&srcs(&["secret.key"]), &ignore),
        Err(ContextError::NotFound(_))
    ));
    assert!(matches!(
        ctx.select(&srcs(&["link"]), &ignore),
        Err(ContextError::NotFound(_))
    ));
    assert!(matches!(
        ctx.select(&srcs(&["src/lib/mod.rs"]), &ignore),
        Err(ContextError::NotFound(_))
    ));
    let all = ctx.select(&srcs(&["."]), &ignore).unwrap();
    let names = rels(&all);
    assert!(
        !names.contains(&"secret.key") && !names.contains(&"src/lib/mod.rs"),
        "{names:?}"
    );
    assert!(
        names.contains(&"src") && names.contains(&"src/main.rs"),
        "{names:?}"
    );
    assert_eq!(
        rels(&ctx.select(&srcs(&["src"]), &ignore).unwrap()),
        ["", "main.rs"]
    );
    assert!(matches!(
        ctx.select(&srcs(&["a.txt", "*.key"]), &ignore),
        Err(ContextError::NotFound(_))
    ));
}

#[test]
fn destination_rules() {
    let (_dir, ctx) = unpack(&sample());
    let none = Ignore::empty();
    let file = ctx.select(&srcs(&["a.txt"]), &none).unwrap();
    let paths = |sel: &[Selected], dest: &str, wd: &str, several: bool| -> Vec<String> {
        destinations(sel, dest, wd, several)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    };
    assert_eq!(paths(&file, "/dst", "/", false), ["/dst"]);
    assert_eq!(paths(&file, "/dst/", "/", false), ["/dst/a.txt"]);
    assert_eq!(paths(&file, "app", "/srv", false), ["/srv/app"]);
    assert_eq!(paths(&file, ".", "/srv", false), ["/srv/a.txt"]);
    assert_eq!(paths(&file, "sub/", "srv", false), ["/srv/sub/a.txt"]);
    let dir = ctx.select(&srcs(&["src"]), &none).unwrap();
    assert_eq!(
        paths(&dir, "/app", "/", false),
        ["/app", "/app/lib", "/app/lib/mod.rs", "/app/main.rs"]
    );
    let wild = ctx.select(&srcs(&["*.txt"]), &none).unwrap();
    assert_eq!(paths(&wild, "/t", "/", false), ["/t/a.txt", "/t/b.txt"]);
    let two = ctx.select(&srcs(&["a.txt", "b.txt"]), &none).unwrap();
    let err = destinations(&two, "/dst", "/", true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    );
    assert_eq!(
        paths(&two, "/dst/", "/", true),
        ["/dst/a.txt", "/dst/b.txt"]
    );
}

fn read_back(tar: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, u64, Vec<u8>)> {
    let mut archive = tar::Archive::new(Cursor::new(tar.to_vec()));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            (
                name,
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                data,
            )
        })
        .collect()
}

#[test]
fn write_tar_names_owner_mode_and_parents() {
    let (_dir, ctx) = unpack(&sample());
    let none = Ignore::empty();
    let sel = ctx.select(&srcs(&["src", "link"]), &none).unwrap();
    let items = destinations(&sel, "/opt/app/", "/", true).unwrap();
    let mut out = Vec::new();
    write_tar(&ctx, &items, Some((1001, 1002)), None, &mut out).unwrap();
    let got = read_back(&out);
    let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "opt/",
            "opt/app/",
            "opt/app/lib/",
            "opt/app/lib/mod.rs",
            "opt/app/main.rs",
            "opt/app/link"
        ]
    );
    assert!(got.iter().all(|g| g.3 == 1001 && g.4 == 1002));
    assert_eq!((got[0].1, got[0].2), (tar::EntryType::Directory, 0o755));
    assert_eq!(
        got[1].2, 0o750,
        "the source directory's mode goes to the destination"
    );
    assert_eq!(
        (got[3].2, got[3].5.as_slice()),
        (0o755, b"// lib".as_slice())
    );
    assert_eq!(
        (got[5].1, got[5].2, got[5].5.as_slice()),
        (tar::EntryType::Regular, 0o600, b"alpha".as_slice())
    );

    let sel = ctx.select(&srcs(&["a.txt"]), &none).unwrap();
    let items = destinations(&sel, "/x/renamed", "/", false).unwrap();
    let mut out = Vec::new();
    write_tar(&ctx, &items, None, Some(0o640), &mut out).unwrap();
    let got = read_back(&out);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0.as_str(), got[0].3), ("x/", 0));
    assert_eq!(
        (got[1].0.as_str(), got[1].2, got[1].3, got[1].4),
        ("x/renamed", 0o640, 0, 0)
    );
    let mtime = tar::Archive::new(Cursor::new(out))
        .entries()
        .unwrap()
        .nth(1)
        .unwrap()
        .unwrap()
        .header()
        .mtime()
        .unwrap();
    assert_eq!(mtime, 1_700_000_000);
}

#[test]
fn write_tar_keeps_symlinks_inside_directories() {
    let tar = tar_of(&[T::File("d/f", b"1", 0o644), T::Link("d/l", "f")]);
    let (_dir, ctx) = unpack(&tar);
    let sel = ctx.select(&srcs(&["d"]), &Ignore::empty()).unwrap();
    let items = destinations(&sel, "/", "/", false).unwrap();
    let mut out = Vec::new();
    write_tar(&ctx, &items, None, Some(0o600), &mut out).unwrap();
    let got = read_back(&out);
    assert_eq!(
        got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        ["f", "l"]
    );
    assert_eq!((got[1].1, got[1].2), (tar::EntryType::Symlink, 0o777));
    let link = tar::Archive::new(Cursor::new(out))
        .entries()
        .unwrap()
        .nth(1)
        .unwrap()
        .unwrap()
        .link_name()
        .unwrap()
        .unwrap()
        .into_owned();
    assert_eq!(link, Path::new("f"));
}

#[test]
fn content_key_is_stable_and_sensitive() {
    let key_of = |tar: &[u8], chmod: Option<u32>| {
        let (_dir, ctx) = unpack(tar);
        let sel = ctx.select(&srcs(&["."]), &Ignore::empty()).unwrap();
        let items = destinations(&sel, "/app/", "/", false).unwrap();
        content_key(&ctx, &items, None, chmod).unwrap()
    };
    let base = key_of(&sample(), None);
    assert_eq!(base.len(), 64);
    assert_eq!(base, key_of(&sample(), None));
    assert_eq!(base, key_of(&gzip(&sample()), None));
    let files = |content: &'static [u8], mtime: u64| {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_size(content.len() as u64);
        b.append_data(&mut h, "f", content).unwrap();
        b.into_inner().unwrap()
    };
    let k = key_of(&files(b"hello", 1), None);
    assert_eq!(k, key_of(&files(b"hello", 2), None), "mtimes are ignored");
    assert_ne!(
        k,
        key_of(&files(b"hellp", 1), None),
        "one byte changes the key"
    );
    assert_ne!(
        k,
        key_of(&files(b"hello", 1), Some(0o600)),
        "chmod changes the key"
    );
    let (_dir, ctx) = unpack(&files(b"hello", 1));
    let sel = ctx.select(&srcs(&["f"]), &Ignore::empty()).unwrap();
    let items = destinations(&sel, "/f", "/", false).unwrap();
    assert_ne!(
        content_key(&ctx, &items, None, None).unwrap(),
        content_key(&ctx, &items, Some((1, 1)), None).unwrap()
    );
    let moved = destinations(&sel, "/g", "/", false).unwrap();
    assert_ne!(
        content_key(&ctx, &items, None, None).unwrap(),
        content_key(&ctx, &moved, None, None).unwrap()
    );
}

#[test]
fn pack_dir_honours_dockerignore() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    let write = |rel: &str, data: &str| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    };
    write("Dockerfile", "FROM scratch\n");
    write(
        ".dockerignore",
        "*.log\nsecret\n!secret/keep\nDockerfile\n.dockerignore\nnode_modules\n",
    );
    write("app.py", "print(1)\n");
    write("debug.log", "noise");
    write("sub/x.log", "kept: * does not cross /");
    write("secret/key", "hidden");
    write("secret/keep", "kept");
    write("node_modules/pkg/index.js", "big");
    let ignore = Ignore::parse(&fs::read_to_string(root.join(".dockerignore")).unwrap()).unwrap();
    let mut out = Vec::new();
    let bytes = pack_dir(root, &ignore, &["Dockerfile", "./.dockerignore"], &mut out).unwrap();
    let got = read_back(&out);
    let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        names,
        [
            ".dockerignore",
            "Dockerfile",
            "app.py",
            "secret/keep",
            "sub/",
            "sub/x.log"
        ]
    );
    assert!(got.iter().all(|g| g.3 == 0 && g.4 == 0));
    let expected: usize = [
        "FROM scratch\n",
        "print(1)\n",
        "kept",
        "kept: * does not cross /",
    ]
    .iter()
    .map(|s| s.len())
    .sum::<usize>()
        + fs::metadata(root.join(".dockerignore")).unwrap().len() as usize;
    assert_eq!(bytes, expected as u64);

    // The daemon side unpacks what the client packed.
    let (_dir, ctx) = unpack(&out);
    assert_eq!(ctx.read_file("secret/keep").unwrap(), "kept");
    assert_eq!(ctx.entry("secret").unwrap().mode, 0o755, "implied");
    assert!(ctx.entry("node_modules").is_none());
}

#[cfg(unix)]
#[test]
fn pack_dir_keeps_symlinks_and_modes() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(src.path().join("run.sh"), fs::Permissions::from_mode(0o751)).unwrap();
    symlink("run.sh", src.path().join("start")).unwrap();
    let mut out = Vec::new();
    pack_dir(src.path(), &Ignore::empty(), &[], &mut out).unwrap();
    let (_dir, ctx) = unpack(&out);
    assert_eq!(ctx.entry("run.sh").unwrap().mode, 0o751);
    let link = ctx.entry("start").unwrap();
    assert_eq!(
        (link.kind, link.link_target.as_deref()),
        (EntryKind::Symlink, Some("run.sh"))
    );
}
