//! `cargo xtask bench`: criterion benchmarks against a release build of berth.

use anyhow::Result;

use crate::assets::{assets_dir, workspace_root};
use crate::cmd::Cmd;
use crate::kernel::Kernel;
use crate::pipeline::{self, Profile};

pub fn run(kernel: Kernel) -> Result<()> {
    let berth = pipeline::build_host(Profile::Release)?;
    pipeline::assets(&[kernel])?;
    println!("== bench: kernel {kernel}");
    Cmd::cargo()
        .args(["bench", "-p", "berth-bench"])
        .env("BERTH_BIN", &berth)
        .env("BERTH_BENCH_KERNEL", kernel.name())
        .env("BERTH_ASSETS", assets_dir()?)
        .dir(workspace_root())
        .run()
}
