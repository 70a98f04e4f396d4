//! Pulled images on a machine, and the docker CLI's pull, run of a missing image, push,
//! save, history, import, prune and login against a real registry on 127.0.0.1.
#![cfg(feature = "vm")]

use std::process::Command;

use berth_tests::docker::Docker;
use berth_tests::fixtures::{image_file, multi_platform, registry_with_busybox, rootfs_tarball};
use berth_tests::registry::{Auth, PASSWORD, USER};
use berth_tests::{ok, Berth};
use serde_json::Value;

#[test]
fn pulled_images_run_and_the_docker_cli_pulls_pushes_and_saves() {
    let r = registry_with_busybox(Auth::None);
    let host = r.host();
    let work = tempfile::tempdir().unwrap();
    let layout = multi_platform(&work.path().join("layout"));
    layout.copy(&r, "multi", "multi:1");
    layout.copy(&r, "zstd", "zstd:1");
    let busybox = format!("docker-archive:{}", image_file("busybox"));
    r.skopeo_copy(&busybox, "lib/busybox:other", &["--format", "v2s2"]);
    r.skopeo_copy(&busybox, "fresh:1", &["--format", "v2s2"]);

    let b = Berth::new();
    ok(&b, &["machine", "start"]);
    // run of a missing image pulls it first (the index's linux/amd64 image).
    let page = b.run(
        &[
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            &format!("{host}/multi:1"),
            "/www/index.html",
        ],
        b"",
    );
    assert_eq!(page.code, 0, "run pulls a missing image: {}", page.stderr);
    assert!(
        page.stderr
            .contains(&format!("Unable to find image '{host}/multi:1' locally")),
        "{}",
        page.stderr
    );
    assert_eq!(page.stdout_text(), "<h1>hello from berth</h1>\n");
    let z = ok(
        &b,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            &format!("{host}/zstd:1"),
            "/www/index.html",
        ],
    );
    assert_eq!(
        z.stdout_text(),
        "<h1>hello from berth</h1>\n",
        "a zstd layer unpacks in the guest"
    );
    let never = b.run(
        &[
            "run",
            "--rm",
            "--pull",
            "never",
            &format!("{host}/lib/busybox:v2s2"),
            "true",
        ],
        b"",
    );
    assert_eq!(
        never.code, 125,
        "--pull never does not pull: {}",
        never.stderr
    );
    let missing = b.run(
        &["run", "--rm", &format!("{host}/lib/busybox:nosuch"), "true"],
        b"",
    );
    assert_eq!(missing.code, 125, "{}", missing.stderr);
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);
    let arm = b.run(
        &[
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            &format!("{host}/multi:1"),
            "true",
        ],
        b"",
    );
    assert_eq!(arm.code, 125, "{}", arm.stderr);
    assert!(
        arm.stderr.contains("linux/amd64 images only"),
        "{}",
        arm.stderr
    );

    // The docker CLI: pull (with RepoDigests), run of a missing image, push, save, history.
    let d = Docker::new(&b);
    let (code, out, _) = d.run(&["pull", &format!("{host}/lib/busybox:other")]);
    assert_eq!(code, 0, "docker pull: {out}");
    assert!(out.contains("Downloaded newer image"), "docker pull: {out}");
    let digests = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RepoDigests}}",
        &format!("{host}/lib/busybox:other"),
    ]);
    assert!(
        digests.contains(&format!("{host}/lib/busybox@sha256:")),
        "RepoDigests after a pull: {digests}"
    );
    let (code, _, err) = d.run(&["pull", &format!("{host}/lib/busybox:nosuch")]);
    assert_eq!(code, 1, "docker pull of a missing tag exits 1: {err}");
    assert!(err.contains("not found"), "{err}");
    let hi = d.ok(&[
        "run",
        "--rm",
        &format!("{host}/fresh:1"),
        "echo",
        "pulled by docker run",
    ]);
    assert_eq!(hi, "pulled by docker run\n");
    d.ok(&[
        "tag",
        &format!("{host}/fresh:1"),
        &format!("{host}/dpush:1"),
    ]);
    let pushed = d.ok(&["push", &format!("{host}/dpush:1")]);
    assert!(pushed.contains("digest: sha256:"), "docker push: {pushed}");
    assert_eq!(r.skopeo_inspect("dpush:1", false)["Architecture"], "amd64");
    let saved = b.home().join("docker-saved.tar");
    d.ok(&[
        "save",
        "-o",
        saved.to_str().unwrap(),
        &format!("{host}/fresh:1"),
    ]);
    let id = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        &format!("{host}/fresh:1"),
    ]);
    let other = Berth::new();
    ok(&other, &["load", "-i", saved.to_str().unwrap()]);
    let reloaded = ok(&other, &["images", "--no-trunc", "--format", "{{.ID}}"]).stdout_text();
    assert!(
        reloaded.contains(id.trim()),
        "docker save then berth load: the same id {id}: {reloaded}"
    );
    let history = d.ok(&["history", &format!("{host}/fresh:1")]);
    assert!(
        history.contains("cargo xtask images"),
        "docker history: {history}"
    );
    // GET /distribution: what a reference names, without pulling it.
    let socket = d
        .host
        .as_ref()
        .unwrap()
        .trim_start_matches("unix://")
        .to_string();
    let out = Command::new("curl")
        .args(["-sS", "--unix-socket", &socket])
        .arg(format!(
            "http://berth/v1.43/distribution/{host}/multi:1/json"
        ))
        .output()
        .unwrap();
    let dist: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "distribution: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(
        dist["Descriptor"]["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{dist}"
    );
    assert_eq!(
        dist["Platforms"].as_array().map(Vec::len),
        Some(2),
        "{dist}"
    );

    // docker import: a tarball becomes a one-layer image with the changes.
    let tgz = rootfs_tarball(b.home(), "etc/greeting", "imported by docker\n");
    let imported = d.ok(&[
        "import",
        "-c",
        "ENV IMPORTED=yes",
        "-m",
        "by docker import",
        tgz.to_str().unwrap(),
        "dimp:1",
    ]);
    assert!(
        imported.trim().starts_with("sha256:"),
        "docker import prints the id: {imported}"
    );
    let env = d.ok(&["image", "inspect", "-f", "{{json .Config.Env}}", "dimp:1"]);
    assert!(
        env.contains("IMPORTED=yes"),
        "docker import applies -c: {env}"
    );
    let dangling = d.ok(&["import", tgz.to_str().unwrap()]);
    let pruned = d.ok(&["image", "prune", "-f"]);
    assert!(
        pruned.contains(dangling.trim()),
        "docker image prune removes the untagged import: {pruned}"
    );
    let comment = d.ok(&["history", "--format", "{{.Comment}}", "dimp:1"]);
    assert!(
        comment.contains("by docker import"),
        "docker import's -m: {comment}"
    );

    // docker login against a basic-auth registry, then a pull with its credentials.
    let locked = registry_with_busybox(Auth::Basic);
    let (code, _, err) = d.run(&["pull", &format!("{}/lib/busybox:v2s2", locked.host())]);
    assert_eq!(code, 1, "no credentials, no pull: {err}");
    let login = Command::new(berth_tests::docker::docker_bin())
        .env("DOCKER_HOST", d.host.as_ref().unwrap())
        .env("DOCKER_CONFIG", &d.config)
        .args(["login", "-u", USER, "-p", PASSWORD, &locked.host()])
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "docker login: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    assert!(String::from_utf8_lossy(&login.stdout).contains("Login Succeeded"));
    d.ok(&["pull", &format!("{}/lib/busybox:v2s2", locked.host())]);
    ok(&b, &["machine", "stop"]);
}
