//! `berth load` and `berth images` end to end: archives built here with the `tar` crate, the
//! real `berth` binary, a temporary `BERTH_HOME`. Boots no VM.

mod support;

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use support::{gzip, ok, refused, sha256, tar_files, tar_of, write_dir, Home, Image};

#[test]
fn docker_save_loads_and_short_and_long_names_are_one_image() {
    let home = Home::new();
    assert!(home.rows().is_empty());
    let image = Image::new("2020-01-01T00:00:00Z");
    let out = ok(home.load("busybox.tar", &image.docker_save(&["busybox"], &[])));
    assert_eq!(out, "Loaded image: busybox:latest\n");
    let rows = home.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row[..3], ["busybox", "latest", &image.id()[..12]]);
    assert!(row[3].ends_with("years ago"), "{row:?}");
    assert!(row[4].ends_with('B'), "{row:?}");

    let long = image.docker_save(&["docker.io/library/busybox:latest"], &[]);
    assert_eq!(
        ok(home.load("long.tar", &long)),
        "Loaded image: busybox:latest\n"
    );
    assert_eq!(home.rows().len(), 1, "the same image, not a second one");
    assert_eq!(
        ok(home.berth(&["images", "-q"], None)),
        format!("{}\n", &image.id()[..12])
    );

    // The store's own record of it (the index berth keeps under its home).
    let store = berth::image::ImageStore::open(&home.dir.path().join("images")).unwrap();
    let records: Vec<_> = store.index().read().unwrap().iter().cloned().collect();
    let json = serde_json::to_value(&records).unwrap();
    let record = &json[0];
    assert_eq!(
        records[0].id().to_string(),
        format!("sha256:{}", image.id())
    );
    assert_eq!(record["tags"], json!(["docker.io/library/busybox:latest"]));
    assert_eq!(
        record["diff_ids"][0],
        format!("sha256:{}", sha256(&image.layer))
    );
    // The layer was stored gzip-compressed, under its own digest; the manifest is OCI.
    let blobs = home.dir.path().join("images/blobs/sha256");
    let layer_digest = record["layers"][0].as_str().unwrap();
    let layer = std::fs::read(blobs.join(&layer_digest["sha256:".len()..])).unwrap();
    assert_eq!(layer[..2], [0x1f, 0x8b]);
    assert_eq!(format!("sha256:{}", sha256(&layer)), layer_digest);
    assert_eq!(record["size"], layer.len());
    let manifest_digest = record["manifest"].as_str().unwrap();
    let manifest = std::fs::read(blobs.join(&manifest_digest["sha256:".len()..])).unwrap();
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
}

#[test]
fn a_tag_moves_to_a_new_image_and_the_old_one_shows_as_none() {
    let home = Home::new();
    let old = Image::new("2020-01-01T00:00:00Z");
    let new = Image::new("2021-01-01T00:00:00Z");
    ok(home.load("old.tar", &old.docker_save(&["app:1"], &[])));
    ok(home.load("new.tar", &new.docker_save(&["app:1"], &[])));
    let rows = home.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][..3], ["app", "1", &new.id()[..12]]);
    assert_eq!(rows[1][..3], ["<none>", "<none>", &old.id()[..12]]);
}

#[test]
fn gzipped_archives_and_stdin() {
    let home = Home::new();
    let image = Image::new("2020-01-01T00:00:00Z");
    let gz = gzip(&image.docker_save(&["user/app:2"], &[]));
    assert_eq!(
        ok(home.load("app.tar.gz", &gz)),
        "Loaded image: user/app:2\n"
    );
    let out = ok(home.berth(&["load"], Some(&image.docker_save(&["user/app:3"], &[]))));
    assert_eq!(out, "Loaded image: user/app:3\n");
    let rows = home.rows();
    let tags: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(tags, [("user/app", "2"), ("user/app", "3")]);
}

#[test]
fn oci_layouts_as_directory_and_tar() {
    let home = Home::new();
    let image = Image::new("2022-01-01T00:00:00Z");
    let layout = home.dir.path().join("layout");
    write_dir(&layout, &image.oci_files("localhost:5000/x/y:t"));
    let out = ok(home.berth(&["load", "--input", layout.to_str().unwrap()], None));
    assert_eq!(out, "Loaded image: localhost:5000/x/y:t\n");

    // A bare tag names no repository: the image is loaded untagged.
    let other = Image::new("2023-01-01T00:00:00Z");
    let out = ok(home.load("layout.tar", &tar_files(&other.oci_files("latest"))));
    assert_eq!(out, format!("Loaded image ID: sha256:{}\n", other.id()));
    let rows = home.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][..3], ["<none>", "<none>", &other.id()[..12]]);
    assert_eq!(rows[1][..3], ["localhost:5000/x/y", "t", &image.id()[..12]]);
}

#[test]
fn docker_25_archives_use_manifest_json() {
    // Docker 25+ writes an OCI layout and a manifest.json naming blobs/sha256/ paths.
    let home = Home::new();
    let image = Image::new("2024-01-01T00:00:00Z");
    let mut files = image.oci_files("latest");
    let config = format!("blobs/sha256/{}", image.id());
    let layer = files
        .iter()
        .find(|(_, b)| b[..2] == [0x1f, 0x8b])
        .unwrap()
        .0
        .clone();
    let manifest = json!([{"Config": config, "RepoTags": ["app:25"], "Layers": [layer]}]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    assert_eq!(
        ok(home.load("d25.tar", &tar_files(&files))),
        "Loaded image: app:25\n"
    );
    let rows = home.rows();
    assert_eq!(rows[0][..3], ["app", "25", &image.id()[..12]]);
}

#[test]
fn corrupted_blobs_are_refused_and_the_index_is_unchanged() {
    let home = Home::new();
    let good = Image::new("2020-01-01T00:00:00Z");
    ok(home.load("good.tar", &good.docker_save(&["busybox"], &[])));
    let before = home.index().unwrap();

    // OCI: a layer blob whose content does not match its name and descriptor.
    let bad = Image::new("2024-01-01T00:00:00Z");
    let mut files = bad.oci_files("evil:1");
    let layer = files
        .iter_mut()
        .find(|(_, b)| b[..2] == [0x1f, 0x8b])
        .unwrap();
    let expected = format!("sha256:{}", &layer.0["blobs/sha256/".len()..]);
    let n = layer.1.len();
    layer.1[n - 9] ^= 0x55;
    let err = refused(home.load("bad-oci.tar", &tar_files(&files)));
    assert!(
        err.contains(&expected) && err.contains("digest mismatch"),
        "{err}"
    );
    assert_eq!(home.index().unwrap(), before);

    // docker save: a config whose content does not match its `<digest>.json` name.
    let tampered = Image::new("2024-01-01T00:00:00Z");
    let claimed = tampered.id();
    let config_name = format!("{claimed}.json");
    let config = String::from_utf8(tampered.config.clone())
        .unwrap()
        .replace("2024", "1999");
    let manifest =
        json!([{"Config": config_name, "RepoTags": ["evil:2"], "Layers": ["l/layer.tar"]}]);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let files: [(&str, &[u8]); 3] = [
        ("l/layer.tar", &tampered.layer),
        (&config_name, config.as_bytes()),
        ("manifest.json", &manifest),
    ];
    let err = refused(home.load("bad-config.tar", &tar_of(&files)));
    assert!(err.contains(&format!("sha256:{claimed}")), "{err}");
    assert_eq!(home.index().unwrap(), before);

    // docker save: a layer that is not the one the config's diff_ids name.
    let mut wrong_layer = Image::new("2024-01-01T00:00:00Z");
    wrong_layer.layer = tar_of(&[("hello.txt", b"something else\n")]);
    let err = refused(home.load("bad-layer.tar", &wrong_layer.docker_save(&["evil:3"], &[])));
    assert!(
        err.contains("diff_id") && err.contains(&sha256(&wrong_layer.layer)),
        "{err}"
    );
    assert_eq!(home.index().unwrap(), before);
    assert_eq!(home.rows().len(), 1);
}

#[test]
fn concurrent_loads_lose_no_update() {
    let home = Home::new();
    let children: Vec<_> = (0..6)
        .map(|i| {
            let image = Image::new(&format!("202{i}-01-01T00:00:00Z"));
            let path = home.dir.path().join(format!("{i}.tar"));
            std::fs::write(&path, image.docker_save(&[&format!("app:{i}")], &[])).unwrap();
            Command::new(env!("CARGO_BIN_EXE_berth"))
                .args(["load", "-i", path.to_str().unwrap()])
                .env("BERTH_HOME", home.dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ok(child.wait_with_output().unwrap());
    }
    let mut tags: Vec<String> = home.rows().iter().map(|r| r[1].clone()).collect();
    tags.sort();
    assert_eq!(tags, ["0", "1", "2", "3", "4", "5"]);
}

#[test]
fn archives_with_escaping_entries_are_refused() {
    let home = Home::new();
    let image = Image::new("2020-01-01T00:00:00Z");
    ok(home.load("good.tar", &image.docker_save(&["busybox"], &[])));
    let before = home.index().unwrap();
    let files_before = files_under(home.dir.path());
    let evil = Image::new("2024-01-01T00:00:00Z");
    let archive = evil.docker_save(&["evil"], &[("../escape", b"gotcha")]);
    let err = refused(home.load("evil.tar", &archive));
    assert!(err.contains("../escape"), "{err}");
    // Refused whole: no index entry, and no blob, temporary or stray file left anywhere
    // under berth's home (its own layers included, not only the escaping entry).
    assert_eq!(home.index().unwrap(), before);
    assert_eq!(files_under(home.dir.path()), files_before);

    let err = refused(home.load("not-an-image.tar", &tar_of(&[("README", b"hi")])));
    assert!(
        err.contains("manifest.json") && err.contains("oci-layout"),
        "{err}"
    );
    assert_eq!(home.index().unwrap(), before);
}

/// Every file under `dir`, except the archives the test itself wrote there and lock files.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.retain(|p| !p.ends_with(".tar") && !p.ends_with(".lock"));
    out.sort();
    out
}
