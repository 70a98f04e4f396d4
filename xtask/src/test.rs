//! `cargo xtask test`: unit tests, then the VM tests against each kernel.

use anyhow::{bail, Result};

use crate::assets::{assets_dir, workspace_root};
use crate::cmd::Cmd;
use crate::kernel::Kernel;
use crate::pipeline::{self, Profile};

pub fn run(kernels: &[Kernel]) -> Result<()> {
    let root = workspace_root();

    println!("== test: unit tier (no VMs)");
    Cmd::cargo()
        .args(["test", "--workspace"])
        .dir(&root)
        .run()?;

    let berth = pipeline::build_host(Profile::Debug)?;
    pipeline::assets(kernels)?;
    let assets = assets_dir()?;

    let mut results = Vec::new();
    for &kernel in kernels {
        println!("== test: VM tier on kernel {kernel}");
        let vm_tests = Cmd::cargo()
            .args(["test", "-p", "berth-tests", "--features", "vm"])
            .args(["--", "--test-threads=2"])
            .env("BERTH_TEST_KERNEL", kernel.name())
            .env("BERTH_BIN", &berth)
            .env("BERTH_ASSETS", &assets)
            .env("BERTH_TEST_DEBS", crate::assets::cache_dir()?.join("debs"))
            .env(
                "BERTH_TEST_PYTHON",
                crate::deps::python_clients_venv()?.join("bin/python"),
            )
            .dir(&root);
        let status = vm_tests.status()?;
        results.push((kernel, vm_tests, status));
    }

    println!("== test summary");
    let mut failed = Vec::new();
    for (kernel, vm_tests, status) in &results {
        if status.success() {
            println!("kernel {kernel}: VM tests passed");
        } else {
            println!("kernel {kernel}: VM tests FAILED ({status})");
            failed.push(format!("{vm_tests} ({status})"));
        }
    }
    if !failed.is_empty() {
        bail!("VM tests failed:\n  {}", failed.join("\n  "));
    }
    println!("all tests passed");
    Ok(())
}
