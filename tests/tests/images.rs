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
    // On a terminal (util-linux's `script` gives it one), each layer gets Docker's
    // `Loading layer` bar before the `Loaded image` line.
    let berth = b.command(&["load", "--input", httpd.to_str().unwrap()]);
    let line: Vec<String> = std::iter::once(berth.get_program())
        .chain(berth.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line.join(" "), "/dev/null"]);
    for (k, v) in berth.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let shown = script.output().expect("script(1) from util-linux");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(": Loading layer [")
            && shown.contains("Loaded image: berth-test/httpd:latest"),
        "berth load on a terminal shows a bar per layer: {shown:?}"
    );
    let out = b.run(&["load", "--input", httpd.to_str().unwrap()], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    // To a pipe: the line alone, no bar and no escape codes.
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
