//! `berth kernel add` of a Debian kernel package (the cloud kernel `cargo xtask` fetched
//! with `apt-get download`) into an installation's own assets: checked, its modules packed,
//! booted by `vm run`, and a machine running containers on it (`berth run --kernel`); a
//! config that lacks what berth needs is refused with the options named, and a kernel a
//! machine uses is not removed.
#![cfg(feature = "vm")]

use std::path::PathBuf;

use berth_tests::Berth;

/// The cloud kernel package xtask downloaded.
fn cloud_deb() -> PathBuf {
    let dir = std::env::var_os("BERTH_TEST_DEBS").expect("cargo xtask test sets BERTH_TEST_DEBS");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the packages folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("linux-image-6.1.0-") && n.contains("-cloud-amd64") && n.ends_with(".deb")
        })
        .collect();
    debs.sort();
    debs.pop()
        .expect("cargo xtask fetched the cloud kernel package")
}

#[test]
fn a_debian_kernel_package_is_added_checked_and_runs_containers() {
    let deb = cloud_deb();
    let shared = PathBuf::from(std::env::var_os("BERTH_ASSETS").expect("BERTH_ASSETS"));
    let assets = tempfile::tempdir().unwrap();
    std::fs::copy(
        shared.join("initramfs.cpio"),
        assets.path().join("initramfs.cpio"),
    )
    .unwrap();
    let a = assets.path().display().to_string();
    let env = [("BERTH_ASSETS", a.as_str())];
    let b = Berth::new();
    let deb_path = deb.display().to_string();

    let added = b.run_env(&["kernel", "add", "--name", "k", &deb_path], &env, b"");
    let out = added.stdout_text();
    assert_eq!(
        added.code, 0,
        "berth kernel add of a .deb: {out}{}",
        added.stderr
    );
    assert!(
        out.contains("added kernel k (release 6.1.0-") && out.contains("overlay"),
        "{out}"
    );
    let release = out
        .split("(release ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();

    // A config without overlayfs and bridges: refused up front, each option named.
    let config = std::fs::read_to_string(assets.path().join("kernels/k/config")).unwrap();
    let lacking: String = config
        .lines()
        .filter(|l| !l.starts_with("CONFIG_OVERLAY_FS=") && !l.starts_with("CONFIG_BRIDGE="))
        .map(|l| format!("{l}\n"))
        .collect();
    let bad_config = assets.path().join("lacking.config");
    std::fs::write(&bad_config, lacking).unwrap();
    let refused = b.run_env(
        &[
            "kernel",
            "add",
            "--name",
            "bad",
            "--config",
            &bad_config.display().to_string(),
            &deb_path,
        ],
        &env,
        b"",
    );
    assert_eq!(
        refused.code, 125,
        "a kernel lacking options must be refused: {}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("CONFIG_OVERLAY_FS (container root file systems)")
            && refused
                .stderr
                .contains("CONFIG_BRIDGE (container networks)"),
        "the refusal names the missing options: {}",
        refused.stderr
    );
    assert!(
        !assets.path().join("kernels/bad").exists(),
        "a refused kernel left files"
    );

    // It boots, with the modules berth-init loads.
    let uname = b.run_env(
        &[
            "vm",
            "run",
            "--kernel",
            "k",
            "--",
            "sh",
            "-c",
            "uname -r; grep -c overlay /proc/filesystems",
        ],
        &env,
        b"",
    );
    assert_eq!(
        uname.code, 0,
        "vm run on the added kernel: {}",
        uname.stderr
    );
    assert_eq!(
        uname.stdout_text(),
        format!("{release}\n1\n"),
        "vm run --kernel k"
    );

    // A matrix from a berth.toml: each target booted in turn, one JSON object each, JUnit.
    let toml = assets.path().join("berth.toml");
    std::fs::write(
        &toml,
        "[[target]]\nname = \"two-cpus\"\nkernel = \"k\"\ncpus = 2\nkernel_args = \"berth.test=1\"\ncommand = \"nproc; grep -o berth.test=1 /proc/cmdline\"\n\
         [[target]]\nname = \"fails\"\nkernel = \"k\"\ncommand = \"echo bad >&2; exit 3\"\n",
    )
    .unwrap();
    let junit = assets.path().join("junit.xml");
    let matrix = b.run_env(
        &[
            "vm",
            "run",
            "--config",
            &toml.display().to_string(),
            "--format",
            "json",
            "--junit",
            &junit.display().to_string(),
        ],
        &env,
        b"",
    );
    assert_eq!(
        matrix.code, 1,
        "a matrix with a failing target exits 1: {}",
        matrix.stderr
    );
    let rows: Vec<serde_json::Value> = matrix
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per target"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", matrix.stdout_text());
    assert_eq!(
        (rows[0]["passed"].as_bool(), rows[0]["stdout"].as_str()),
        (Some(true), Some("2\nberth.test=1\n")),
        "berth.toml's cpus and kernel_args: {}",
        rows[0]
    );
    assert!(rows[0]["boot_ms"].as_u64().unwrap() > 0);
    assert_eq!(
        (
            rows[1]["passed"].as_bool(),
            rows[1]["exit_code"].as_i64(),
            rows[1]["phase"].as_str(),
            rows[1]["stderr"].as_str()
        ),
        (Some(false), Some(3), Some("command"), Some("bad\n")),
        "the failing target's phase and output: {}",
        rows[1]
    );
    let xml = std::fs::read_to_string(&junit).expect("--junit writes the file");
    assert!(
        xml.contains(r#"tests="2""#) && xml.contains(r#"failures="1""#),
        "{xml}"
    );

    // Containers on it: `berth run --kernel` starts the machine on that kernel.
    let busybox = shared.join("images/busybox.tar").display().to_string();
    let load = b.run_env(&["load", "-i", &busybox], &env, b"");
    assert_eq!(load.code, 0, "{}", load.stderr);
    let ran = b.run_env(
        &["run", "--kernel", "k", "--rm", "busybox", "uname", "-r"],
        &env,
        b"",
    );
    assert_eq!(ran.code, 0, "berth run --kernel k: {}", ran.stderr);
    assert_eq!(
        ran.stdout_text(),
        format!("{release}\n"),
        "the container's kernel"
    );
    let other = b.run_env(
        &["run", "--kernel", "6.1", "--rm", "busybox", "true"],
        &env,
        b"",
    );
    assert!(
        other.code == 125 && other.stderr.contains("runs the kernel k, not 6.1"),
        "a running machine on another kernel: {}",
        other.stderr
    );
    let rm = b.run_env(&["kernel", "rm", "k"], &env, b"");
    assert!(
        rm.code != 0 && rm.stderr.contains("machine(s) default"),
        "kernel rm of a used kernel: {}",
        rm.stderr
    );
    assert!(assets.path().join("kernels/k/kernel.json").is_file());
    b.stop_machines();
    let rm = b.run_env(&["kernel", "rm", "--force", "k"], &env, b"");
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    assert!(
        !assets.path().join("kernels/k").exists(),
        "kernel rm left files"
    );
    b.assert_nothing_left();
}
