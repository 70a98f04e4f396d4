//! `cargo xtask test`: the unit tier, the macOS and Windows build check, then the VM tier
//! on each kernel with cargo-nextest (a JUnit report per kernel), and the kernel × test
//! matrix written as markdown, JUnit XML and JSON under `target/matrix/`. The last line is
//! the plain `N passed, N failed, N skipped` count. `--list-shards` prints one kernel per
//! line for a CI engine's matrix; each shard writes `shard-<kernel>.json`, and
//! `cargo xtask matrix-merge DIR` joins the shards' files into one matrix.

pub mod matrix;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::assets::{assets_dir, cache_dir, workspace_root};
use crate::cmd::Cmd;
use crate::kernel::Kernel;
use crate::pipeline::{self, Profile};

/// What a kernel runs: the tuned kernels and `cloud` every VM test; the other Debian
/// kernels a subset (a nextest filterset) that boots them, runs containers on them and
/// adds a kernel package, named in the matrix.
fn scope(kernel: Kernel) -> (Option<&'static str>, &'static str) {
    match kernel {
        Kernel::V6_1 | Kernel::V6_12 | Kernel::Cloud => (None, "all VM tests"),
        Kernel::Cloud6_12 | Kernel::Generic6_1 | Kernel::Rt6_12 => (
            Some("binary(vm_run) | binary(containers) | binary(kernels)"),
            "a subset: vm_run, containers and kernels",
        ),
    }
}

/// `target/matrix`, where the matrix files go.
pub fn matrix_dir() -> PathBuf {
    workspace_root().join("target").join("matrix")
}

/// `--list-shards`: one kernel per line.
pub fn list_shards(kernels: &[Kernel]) {
    for k in kernels {
        println!("{k}");
    }
}

pub fn run(kernels: &[Kernel], only: Option<&str>) -> Result<()> {
    let root = workspace_root();

    println!("== test: unit tier (no VMs)");
    Cmd::cargo()
        .args(["test", "--workspace"])
        .dir(&root)
        .run()?;
    // The macOS and Windows builds are checked on every run, so they cannot rot.
    crate::cross::run()?;

    let berth = pipeline::build_host(Profile::Debug)?;
    pipeline::assets(kernels)?;
    // The kernel-package test adds the cloud kernel's .deb itself.
    crate::kernel::fetch_cloud_package()?;
    let assets = assets_dir()?;
    let out = matrix_dir();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let mut shards = Vec::new();
    let mut broken = Vec::new();
    for &kernel in kernels {
        let (filter, scope_text) = scope(kernel);
        let (filter, scope_text) = match (only, filter) {
            (Some(o), Some(f)) => (
                Some(format!("({f}) & ({o})")),
                format!("{scope_text}, filtered by {o}"),
            ),
            (Some(o), None) => (Some(o.to_string()), format!("filtered by {o}")),
            (None, f) => (f.map(String::from), scope_text.to_string()),
        };
        println!("== test: VM tier on kernel {kernel} ({scope_text})");
        let junit = root.join("target/nextest/vm/junit.xml");
        let _ = std::fs::remove_file(&junit);
        let mut cmd = Cmd::cargo()
            .args(["nextest", "run", "-p", "berth-tests", "--features", "vm"])
            .args(["--profile", "vm", "--no-fail-fast"]);
        if let Some(f) = &filter {
            cmd = cmd.args(["-E", f.as_str()]);
        }
        let status = cmd
            .env("BERTH_TEST_KERNEL", kernel.name())
            .env("BERTH_BIN", &berth)
            .env("BERTH_ASSETS", &assets)
            .env("BERTH_TEST_DEBS", cache_dir()?.join("debs"))
            .env(
                "BERTH_TEST_PYTHON",
                crate::deps::python_clients_venv()?.join("bin/python"),
            )
            .dir(&root)
            .status()?;
        match std::fs::read_to_string(&junit) {
            Ok(xml) => {
                let shard = matrix::shard_from_junit(kernel.name(), &scope_text, &xml)?;
                let file = out.join(format!("shard-{kernel}.json"));
                std::fs::write(&file, serde_json::to_string_pretty(&shard)?)?;
                shards.push(shard);
            }
            Err(e) => broken.push(format!(
                "kernel {kernel}: nextest ({status}) left no report at {}: {e}",
                junit.display()
            )),
        }
    }
    finish(&out, &shards, &broken)
}

/// Writes the matrix, prints it and the per-kernel summary, and ends with the count line;
/// exits non-zero when anything failed.
fn finish(out: &Path, shards: &[matrix::Shard], broken: &[String]) -> Result<()> {
    let line = matrix::write_all(out, shards)?;
    println!(
        "== test matrix (also {}/matrix.{{md,xml,json}})",
        out.display()
    );
    print!(
        "{}",
        matrix::markdown(shards)
            .lines()
            .skip(2)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let mut failed = broken.to_vec();
    for shard in shards {
        let bad: Vec<&String> = shard
            .tests
            .iter()
            .filter(|(_, c)| c.status == matrix::Status::Fail)
            .map(|(n, _)| n)
            .collect();
        if bad.is_empty() {
            println!("kernel {}: VM tests passed", shard.kernel);
        } else {
            failed.push(format!(
                "kernel {}: {} failed: {}",
                shard.kernel,
                bad.len(),
                bad.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    for f in &failed {
        eprintln!("FAILED {f}");
    }
    println!("{line}");
    if !failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// `cargo xtask matrix-merge DIR`: the shards under DIR (one kernel each, from separate
/// CI jobs) as one matrix in `target/matrix`.
pub fn merge(dir: &Path) -> Result<()> {
    let shards = matrix::merge(dir)?;
    anyhow::ensure!(
        !shards.is_empty(),
        "no shard-*.json under {}",
        dir.display()
    );
    finish(&matrix_dir(), &shards, &[])
}
