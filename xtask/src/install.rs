//! `cargo xtask install`: `berth` on the PATH (cargo's bin directory, with `cargo install`)
//! and the guest assets it boots (berth-init's initramfs, the test images and the named
//! kernels, default `cloud`: no compile) in the default assets directory, so the README's
//! commands work as written.

use anyhow::Result;

use crate::assets::{assets_dir, workspace_root};
use crate::cmd::Cmd;
use crate::kernel::Kernel;
use crate::pipeline;

pub fn run(kernels: &[Kernel]) -> Result<()> {
    println!("== install: berth into cargo's bin directory");
    Cmd::cargo()
        .args([
            "install", "--locked", "--force", "--path", "host", "--bin", "berth",
        ])
        .dir(workspace_root())
        .run()?;
    pipeline::assets(kernels)?;
    println!(
        "installed: berth (cargo's bin directory must be on PATH), assets in {}",
        assets_dir()?.display()
    );
    println!("try: berth info; berth vm run -- uname -r; berth run --rm busybox echo hello");
    Ok(())
}
