//! Registries, for real: Debian's `docker-registry` on 127.0.0.1 (started by each test
//! with its own config), skopeo as an independent writer and reader, a bearer-token server
//! in the test, and a TCP proxy that breaks or stalls a download on purpose. These tests work on the
//! host's store and boot no VM; `registry_vm.rs` runs pulled images on a machine.
#![cfg(feature = "vm")]

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_tests::fixtures::{
    image_file, multi_platform, registry_with_busybox, rootfs_tarball, Proxy, CUT, PASS, STALL,
};
use berth_tests::registry::{Auth, Registry, PASSWORD, USER};
use berth_tests::{ok, Berth, Outcome};
use serde_json::Value;

/// Runs berth; it must fail (exit `code`) with `needle` in its stderr.
fn fails(b: &Berth, args: &[&str], code: i32, needle: &str) -> Outcome {
    let out = b.run(args, b"");
    assert_eq!(
        out.code,
        code,
        "berth {args:?} should exit {code}: {}{}",
        out.stdout_text(),
        out.stderr
    );
    assert!(
        out.stderr.contains(needle),
        "berth {args:?}: expected {needle:?} in: {}",
        out.stderr
    );
    out
}

/// The image index and the blob names: what a failed pull must leave as it was.
fn snapshot(b: &Berth) -> (String, Vec<String>) {
    let images = b.home().join("images");
    let index = std::fs::read_to_string(images.join("index.json")).unwrap_or_default();
    let mut blobs: Vec<String> = std::fs::read_dir(images.join("blobs/sha256"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    (index, blobs)
}

fn partials(b: &Berth) -> Vec<(PathBuf, u64)> {
    std::fs::read_dir(b.home().join("images/downloads"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
        .collect()
}

#[test]
fn pull_push_save_import_history_prune_on_the_host_store() {
    let r = registry_with_busybox(Auth::None);
    let host = r.host();
    let b = Berth::new();
    let name = format!("{host}/lib/busybox:v2s2");

    let first = ok(&b, &["pull", &name]).stdout_text();
    assert!(
        first.contains("v2s2: Pulling from lib/busybox"),
        "pull: {first}"
    );
    assert!(first.contains("Pull complete"), "pull: {first}");
    assert!(
        first.contains(&format!("Status: Downloaded newer image for {name}")),
        "pull: {first}"
    );
    assert!(
        first.trim_end().ends_with(&name),
        "pull prints the name last: {first}"
    );
    let again = ok(&b, &["pull", &name]).stdout_text();
    assert!(again.contains("Already exists"), "second pull: {again}");
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "second pull: {again}"
    );
    let id = ok(&b, &["images", "-q"]).stdout_text();
    assert_eq!(id.lines().count(), 1, "one image: {id}");

    // By digest: the manifest digest skopeo reads from the registry.
    let digest = r.skopeo_inspect("lib/busybox:v2s2", false)["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let by_digest = ok(&b, &["pull", &format!("{host}/lib/busybox@{digest}")]).stdout_text();
    assert!(
        by_digest.contains(&format!("Digest: {digest}")),
        "pull by digest: {by_digest}"
    );
    assert!(
        ok(&b, &["history", &format!("{host}/lib/busybox@{digest}")])
            .stdout_text()
            .contains("cargo xtask images"),
        "history names the image's build step"
    );

    // Push: blobs first, the manifest last; skopeo reads back what was pushed.
    ok(&b, &["tag", &name, &format!("{host}/pushed/bb:1")]);
    let pushed = ok(&b, &["push", &format!("{host}/pushed/bb:1")]).stdout_text();
    assert!(
        pushed.contains(&format!("The push refers to repository [{host}/pushed/bb]")),
        "push: {pushed}"
    );
    assert!(pushed.contains("Pushed"), "push: {pushed}");
    let line = pushed
        .lines()
        .find(|l| l.starts_with("1: digest: sha256:"))
        .unwrap_or_else(|| panic!("push prints the digest line: {pushed}"));
    let pushed_digest = line.split_whitespace().nth(2).unwrap();
    let seen = r.skopeo_inspect("pushed/bb:1", false);
    assert_eq!(
        seen["Digest"], pushed_digest,
        "skopeo sees the pushed manifest"
    );
    assert_eq!(seen["Architecture"], "amd64");
    let again = ok(&b, &["push", &format!("{host}/pushed/bb:1")]).stdout_text();
    assert!(
        again.contains("Layer already exists"),
        "a second push sends no blob: {again}"
    );
    assert!(
        !again.contains(": Pushed"),
        "a second push sends no blob: {again}"
    );

    // Save, then load into another installation: the same image id; skopeo reads it too.
    let tar = b.home().join("saved.tar");
    ok(&b, &["save", "-o", tar.to_str().unwrap(), &name]);
    let other = Berth::new();
    let loaded = ok(&other, &["load", "-i", tar.to_str().unwrap()]).stdout_text();
    assert_eq!(loaded, format!("Loaded image: {name}\n"));
    assert_eq!(
        ok(&other, &["images", "-q"]).stdout_text(),
        id,
        "save then load keeps the id"
    );
    let out = Command::new("skopeo")
        .args(["inspect", &format!("docker-archive:{}", tar.display())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo reads the saved archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Import: a tarball becomes a one-layer image with the changes applied.
    let tgz = rootfs_tarball(b.home(), "etc/greeting", "imported\n");
    let imported = ok(
        &b,
        &[
            "import",
            "-c",
            "CMD [\"/bin/cat\", \"/etc/greeting\"]",
            "-c",
            "ENV A=1",
            "-m",
            "from a test",
            tgz.to_str().unwrap(),
            "imp:1",
        ],
    )
    .stdout_text();
    assert!(
        imported.starts_with("sha256:"),
        "import prints the id: {imported}"
    );
    let history = ok(&b, &["history", "imp:1"]).stdout_text();
    assert!(
        history.contains("from a test"),
        "import's message is the history comment: {history}"
    );
    let bad = b.run(&["import", "-c", "RUN true", tgz.to_str().unwrap()], b"");
    assert_eq!(bad.code, 125, "a change import cannot apply is refused");
    assert!(
        bad.stderr.contains("RUN is not a valid change command"),
        "{}",
        bad.stderr
    );

    // registry-mirrors in daemon.json: Docker Hub names come from the mirror first.
    r.skopeo_copy(
        &format!("docker-archive:{}", image_file("busybox")),
        "library/busybox:latest",
        &["--format", "v2s2"],
    );
    let m = Berth::new();
    std::fs::write(
        m.home().join("daemon.json"),
        format!(r#"{{"registry-mirrors": ["http://{host}"]}}"#),
    )
    .unwrap();
    let mirrored = ok(&m, &["pull", "busybox"]).stdout_text();
    assert!(mirrored.contains("Using default tag: latest"), "{mirrored}");
    assert!(
        mirrored.contains("Status: Downloaded newer image for busybox:latest"),
        "the mirror serves Docker Hub names: {mirrored}"
    );
    assert!(
        r.log().contains("GET /v2/library/busybox/manifests/latest"),
        "the pull went to the mirror"
    );
    std::fs::write(m.home().join("daemon.json"), r#"{"registry-mirror": []}"#).unwrap();
    let bad = m.run(&["pull", "busybox"], b"");
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("registry-mirror"),
        "an unknown daemon.json key is named: {}",
        bad.stderr
    );

    // Prune: only the untagged image goes, unless -a.
    let dangling = ok(&b, &["import", tgz.to_str().unwrap()]).stdout_text();
    let pruned = ok(&b, &["image", "prune", "-f"]).stdout_text();
    assert!(
        pruned.contains(&format!("deleted: {}", dangling.trim())),
        "prune: {pruned}"
    );
    assert!(pruned.contains("Total reclaimed space"), "prune: {pruned}");
    assert!(
        ok(&b, &["images"]).stdout_text().contains("imp"),
        "tagged images stay"
    );
    let refused = b.run(&["image", "prune"], b"");
    assert_ne!(refused.code, 0, "prune without a terminal needs -f");
    let all = ok(&b, &["image", "prune", "-a", "-f"]).stdout_text();
    assert!(all.contains("untagged: imp:1"), "prune -a: {all}");
    assert_eq!(ok(&b, &["images", "-q"]).stdout_text(), "");
}

#[test]
fn indexes_give_the_guest_platform_and_every_compression_pulls() {
    let r = Registry::start(Auth::None);
    let host = r.host();
    let work = tempfile::tempdir().unwrap();
    let layout = multi_platform(&work.path().join("layout"));
    layout.copy(&r, "multi", "multi:1");
    layout.copy(&r, "arm", "armonly:1");
    let raw = r.skopeo_inspect("multi:1", true);
    assert_eq!(
        raw["manifests"].as_array().map(Vec::len),
        Some(2),
        "the registry holds the index: {raw}"
    );

    let b = Berth::new();
    ok(&b, &["pull", &format!("{host}/multi:1")]);
    let ids = ok(&b, &["images", "-q"]).stdout_text();
    assert!(
        layout.amd64.contains(ids.trim()),
        "an index gives linux/amd64: {ids} vs {}",
        layout.amd64
    );
    ok(
        &b,
        &[
            "pull",
            "--platform",
            "linux/arm64",
            &format!("{host}/multi:1"),
        ],
    );
    let tagged = ok(&b, &["images", "--no-trunc", "--format", "{{.ID}}"]).stdout_text();
    assert!(
        tagged.contains(&layout.arm64),
        "--platform linux/arm64 is honoured: {tagged}"
    );

    let before = snapshot(&b);
    fails(
        &b,
        &[
            "pull",
            "--platform",
            "linux/s390x",
            &format!("{host}/multi:1"),
        ],
        1,
        "no matching manifest for linux/s390x",
    );
    fails(
        &b,
        &["pull", &format!("{host}/armonly:1")],
        1,
        "wanted linux/amd64, actual: linux/arm64",
    );
    fails(
        &b,
        &["pull", "--platform", "linux//x", &format!("{host}/multi:1")],
        1,
        "invalid platform",
    );
    assert_eq!(
        snapshot(&b),
        before,
        "refused pulls leave the store as it was"
    );

    // zstd and uncompressed layers (copied as they are: skopeo would otherwise reuse
    // the gzip blob it knows for the same content).
    layout.copy(&r, "zstd", "zstd:1");
    layout.copy(&r, "plain", "plain:1");
    for name in ["zstd:1", "plain:1"] {
        let raw = r.skopeo_inspect(name, true);
        let media = raw["layers"][0]["mediaType"].as_str().unwrap().to_string();
        let out = ok(&b, &["pull", &format!("{host}/{name}")]).stdout_text();
        assert!(
            out.contains("Pull complete") || out.contains("Already exists"),
            "{name} ({media}): {out}"
        );
    }
    let zstd_layer = r.skopeo_inspect("zstd:1", true)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = std::fs::read(
        b.home()
            .join("images/blobs/sha256")
            .join(zstd_layer.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert_eq!(
        &blob[..4],
        &[0x28, 0xb5, 0x2f, 0xfd],
        "the zstd layer is stored as the registry sent it"
    );
}

/// A registry holding `big:1`: one 24 MiB layer of random bytes (so it does not compress).
fn registry_with_big_image() -> (Registry, String) {
    let r = Registry::start(Auth::None);
    let b = Berth::new();
    let mut data = vec![0u8; 24 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut data)
        .unwrap();
    let tgz = rootfs_tarball(b.home(), "noise", &data);
    let name = format!("{}/big:1", r.host());
    ok(&b, &["import", tgz.to_str().unwrap(), &name]);
    ok(&b, &["push", &name]);
    let layer = r.skopeo_inspect("big:1", true)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    (r, layer)
}

#[test]
fn faults_give_clear_errors_and_leave_the_store_as_it_was() {
    let mut r = registry_with_busybox(Auth::None);
    let host = r.host();
    let b = Berth::new();
    ok(&b, &["pull", &format!("{host}/lib/busybox:v2s2")]);
    let before = snapshot(&b);

    fails(
        &b,
        &["pull", &format!("{host}/lib/busybox:nosuch")],
        1,
        &format!("manifest for {host}/lib/busybox:nosuch not found"),
    );
    fails(
        &b,
        &["pull", &format!("{host}/no/such/repo:1")],
        1,
        "not found",
    );
    fails(&b, &["pull", "Bad//Name"], 125, "invalid reference format");
    let nobody = berth_tests::registry::free_port();
    fails(
        &b,
        &["pull", &format!("127.0.0.1:{nobody}/x:1")],
        1,
        "cannot reach the registry",
    );
    assert_eq!(
        snapshot(&b),
        before,
        "failed pulls leave the store as it was"
    );

    // A blob whose bytes are not its digest, and a gzip layer that is not gzip.
    let work = tempfile::tempdir().unwrap();
    let layout = multi_platform(&work.path().join("layout"));
    layout.copy(&r, "zstd", "tampered:1");
    layout.copy(&r, "corrupt", "corrupt:1");
    let layer = r.skopeo_inspect("tampered:1", true)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let file = r.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let before = snapshot(&b);
    fails(
        &b,
        &["pull", &format!("{host}/tampered:1")],
        1,
        "digest mismatch",
    );
    fails(&b, &["pull", &format!("{host}/corrupt:1")], 1, "corrupt");
    assert_eq!(snapshot(&b), before, "bad content never enters the store");
    assert!(
        partials(&b).is_empty(),
        "bad content is not kept to resume: {:?}",
        partials(&b)
    );

    // The registry goes away mid-layer: a clear error, then a resumed pull completes.
    let (big, big_layer) = registry_with_big_image();
    let proxy = Proxy::start(
        big.host().rsplit(':').next().unwrap().parse().unwrap(),
        6 << 20,
    );
    let via = format!("127.0.0.1:{}/big:1", proxy.port);
    let c = Berth::new();
    proxy.set(CUT);
    let cut = fails(&c, &["pull", &via], 1, "pull again to resume");
    assert!(
        cut.stderr.contains("cannot reach the registry"),
        "{}",
        cut.stderr
    );
    let kept = partials(&c);
    assert!(
        kept.iter().any(|(_, len)| *len > 0),
        "the part already downloaded is kept: {kept:?}"
    );
    assert!(
        ok(&c, &["images", "-q"]).stdout_text().is_empty(),
        "no half image is visible"
    );
    proxy.set(PASS);
    proxy.saw_range.store(false, Ordering::SeqCst);
    ok(&c, &["pull", &via]);
    assert!(
        proxy.saw_range.load(Ordering::SeqCst),
        "the second pull resumes with a ranged request"
    );
    assert!(partials(&c).is_empty());

    // kill -9 in the middle of a download: run again and it completes.
    let d = Berth::new();
    proxy.set(STALL);
    let mut child = berth_tests::ChildGuard(
        d.command(&["pull", &via])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    berth_tests::wait_until(
        "a pull to start downloading",
        Duration::from_secs(60),
        || partials(&d).iter().any(|(_, len)| *len > 0),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        ok(&d, &["images", "-q"]).stdout_text().is_empty(),
        "a killed pull shows no image"
    );
    proxy.set(PASS);
    ok(&d, &["pull", &via]);
    assert_eq!(ok(&d, &["images", "-q"]).stdout_text().lines().count(), 1);

    // Two pulls of one layer at once download it once.
    let e = Berth::new();
    let name = format!("{}/big:1", big.host());
    let before_gets = big.blob_gets(&big_layer);
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            berth_tests::ChildGuard(
                e.command(&["pull", &name])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    for mut p in pulls {
        assert!(p.wait().unwrap().success(), "two concurrent pulls of one layer must both succeed (one downloads it, the other waits)");
    }
    assert_eq!(
        big.blob_gets(&big_layer) - before_gets,
        1,
        "two concurrent pulls of one layer download it once: {}",
        big.log()
    );
    r.stop();
}

#[test]
fn basic_and_bearer_auth_with_berth_login() {
    for auth in [Auth::Basic, Auth::Token] {
        let r = registry_with_busybox(auth);
        let host = r.host();
        let b = Berth::new();
        let name = format!("{host}/lib/busybox:v2s2");
        fails(&b, &["pull", &name], 1, "pull access denied");
        let wrong = b.run(
            &["login", "-u", USER, "--password-stdin", &host],
            b"wrong\n",
        );
        assert_eq!(
            wrong.code, 1,
            "{auth:?}: a wrong password is refused: {}",
            wrong.stderr
        );
        assert!(
            wrong.stderr.contains("incorrect username or password"),
            "{auth:?}: {}",
            wrong.stderr
        );
        let login = b.run(
            &["login", "-u", USER, "--password-stdin", &host],
            format!("{PASSWORD}\n").as_bytes(),
        );
        assert_eq!(login.code, 0, "{auth:?}: {}", login.stderr);
        assert_eq!(login.stdout_text(), "Login Succeeded\n");
        let config: Value =
            serde_json::from_slice(&std::fs::read(b.docker_config().join("config.json")).unwrap())
                .unwrap();
        assert!(
            config["auths"][&host]["auth"].is_string(),
            "login keeps the credentials as the docker CLI does: {config}"
        );
        ok(&b, &["pull", &name]);
        ok(&b, &["tag", &name, &format!("{host}/mine:1")]);
        ok(&b, &["push", &format!("{host}/mine:1")]);
        assert_eq!(r.skopeo_inspect("mine:1", false)["Architecture"], "amd64");
        if auth == Auth::Token {
            let (issued, refused) = r.tokens();
            assert!(
                issued > 0 && refused > 0,
                "tokens came from the token server: {issued} issued, {refused} refused"
            );
        }
        assert_eq!(
            ok(&b, &["logout", &host]).stdout_text(),
            format!("Removing login credentials for {host}\n")
        );
        fails(
            &b,
            &["pull", &format!("{host}/mine:1")],
            1,
            "pull access denied",
        );
    }
}
