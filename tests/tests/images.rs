//! The test images `cargo xtask images` builds load into berth's store.
#![cfg(feature = "vm")]

use berth_tests::Berth;

fn image_file(name: &str) -> std::path::PathBuf {
    let assets = std::env::var_os("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    std::path::Path::new(&assets)
        .join("images")
        .join(format!("{name}.tar"))
}

#[test]
fn test_images_load_and_list() {
    let b = Berth::new();
    let busybox = image_file("busybox");
    let out = b.run(&["load", "-i", busybox.to_str().unwrap()], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout_text(), "Loaded image: busybox:latest\n");
    let httpd = image_file("httpd");
    let out = b.run(&["load", "--input", httpd.to_str().unwrap()], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout_text(), "Loaded image: berth-test/httpd:latest\n");

    let out = b.run(&["images"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let table = out.stdout_text();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows.iter().any(|r| r[0] == "busybox" && r[1] == "latest"),
        "{table}"
    );
    assert!(
        rows.iter()
            .any(|r| r[0] == "berth-test/httpd" && r[1] == "latest"),
        "{table}"
    );
}
