//! Unit tests of reference parsing, normalization and the familiar (short) form.

use super::*;

const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn full(text: &str) -> String {
    Reference::parse(text).unwrap().to_string()
}

fn familiar(text: &str) -> String {
    Reference::parse(text).unwrap().familiar()
}

fn reason(text: &str) -> String {
    Reference::parse(text).unwrap_err().to_string()
}

#[test]
fn official_images_get_library_and_latest() {
    assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
    assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
    assert_eq!(full("library/busybox"), "docker.io/library/busybox:latest");
    assert_eq!(
        full("docker.io/busybox:latest"),
        "docker.io/library/busybox:latest"
    );
    assert_eq!(
        full("index.docker.io/library/busybox"),
        "docker.io/library/busybox:latest"
    );
    let r = Reference::parse("busybox").unwrap();
    assert_eq!(r.domain(), "docker.io");
    assert_eq!(r.path(), "library/busybox");
    assert_eq!(r.tag(), Some("latest"));
    assert_eq!(r.digest(), None);
}

#[test]
fn user_repositories_stay_as_written() {
    assert_eq!(full("user/app:1"), "docker.io/user/app:1");
    assert_eq!(full("user/team/app"), "docker.io/user/team/app:latest");
    assert_eq!(
        full("my-org/my_app.x__y"),
        "docker.io/my-org/my_app.x__y:latest"
    );
}

#[test]
fn registries_are_recognised() {
    assert_eq!(full("localhost:5000/x/y:t"), "localhost:5000/x/y:t");
    assert_eq!(full("localhost/x"), "localhost/x:latest");
    assert_eq!(full("registry.example/x"), "registry.example/x:latest");
    assert_eq!(
        full("ghcr.io/owner/image:v1.2.3"),
        "ghcr.io/owner/image:v1.2.3"
    );
    assert_eq!(full("[::1]:5000/x"), "[::1]:5000/x:latest");
    let r = Reference::parse("localhost:5000/x/y:t").unwrap();
    assert_eq!(r.domain(), "localhost:5000");
    assert_eq!(r.path(), "x/y");
    assert_eq!(r.tag(), Some("t"));
    // Without a dot, colon or `localhost`, the first component is part of the path.
    assert_eq!(full("example/x"), "docker.io/example/x:latest");
}

#[test]
fn digests() {
    let by_digest = format!("busybox@sha256:{HEX}");
    let r = Reference::parse(&by_digest).unwrap();
    assert_eq!(r.tag(), None);
    assert_eq!(r.digest().unwrap().hex(), HEX);
    assert_eq!(
        r.to_string(),
        format!("docker.io/library/busybox@sha256:{HEX}")
    );
    assert_eq!(r.familiar(), by_digest);
    let both = Reference::parse(&format!("localhost:5000/x:1@sha256:{HEX}")).unwrap();
    assert_eq!(both.tag(), Some("1"));
    assert!(both.digest().is_some());
    assert!(reason(&format!("busybox@sha512:{HEX}")).contains("sha256 only"));
    assert!(Reference::parse("busybox@sha256:abc").is_err());
}

#[test]
fn familiar_form_drops_docker_io_and_library() {
    assert_eq!(
        familiar("docker.io/library/busybox:latest"),
        "busybox:latest"
    );
    assert_eq!(familiar("busybox"), "busybox:latest");
    assert_eq!(familiar("user/app:1"), "user/app:1");
    assert_eq!(familiar("docker.io/library/a/b"), "library/a/b:latest");
    assert_eq!(familiar("localhost:5000/x/y:t"), "localhost:5000/x/y:t");
    let r = Reference::parse("busybox").unwrap();
    assert_eq!(r.familiar_repository(), "busybox");
    assert_eq!(r.repository(), "docker.io/library/busybox");
}

#[test]
fn short_and_long_names_are_equal() {
    assert_eq!(
        Reference::parse("busybox").unwrap(),
        Reference::parse("docker.io/library/busybox:latest").unwrap()
    );
}

#[test]
fn refuses_invalid_references() {
    assert!(reason("").contains("empty"));
    assert!(reason("Busybox").contains("must be lowercase"));
    assert!(reason("user/App").contains("must be lowercase"));
    assert!(reason("busybox:bad tag").contains("invalid tag"));
    assert!(reason("busybox:-x").contains("invalid tag"));
    assert!(reason("busybox:").contains("invalid tag"));
    assert!(reason(&format!("busybox:{}", "a".repeat(129))).contains("invalid tag"));
    assert!(reason("a//b").contains("component"));
    assert!(reason("a..b").contains("component"));
    assert!(reason("-a").contains("component"));
    assert!(reason("a-").contains("component"));
    assert!(reason("registry.example/").contains("empty"));
    assert!(reason("bad_host.example/x").contains("registry"));
    assert!(reason("localhost:port/x").contains("registry"));
    assert!(reason(HEX).contains("image ID"));
    assert!(reason(&"a".repeat(300)).contains("longer than"));
}

#[test]
fn serde_uses_the_full_form() {
    let r = Reference::parse("busybox").unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, "\"docker.io/library/busybox:latest\"");
    assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
    assert!(serde_json::from_str::<Reference>("\"Bad\"").is_err());
}
