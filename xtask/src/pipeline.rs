//! Steps shared by the bigger commands: building the host CLI and all assets.

use std::path::PathBuf;

use anyhow::Result;

use crate::assets::workspace_root;
use crate::cmd::Cmd;
use crate::initramfs;
use crate::kernel::{self, Kernel};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// Builds the host CLI and returns the path of the `berth` binary.
pub fn build_host(profile: Profile) -> Result<PathBuf> {
    println!("== host: building berth ({profile:?})");
    let root = workspace_root();
    let mut cmd = Cmd::cargo().args(["build", "-p", "berth"]).dir(&root);
    if profile == Profile::Release {
        cmd = cmd.arg("--release");
    }
    cmd.run()?;
    let dir = match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    };
    let exe = format!("berth{}", std::env::consts::EXE_SUFFIX);
    Ok(root.join("target").join(dir).join(exe))
}

/// `cargo xtask assets`: the initramfs, then each kernel.
pub fn assets(kernels: &[Kernel]) -> Result<()> {
    let names: Vec<&str> = kernels.iter().map(|k| k.name()).collect();
    println!("== assets: initramfs and kernels {}", names.join(", "));
    initramfs::run()?;
    crate::images::run()?;
    kernel::install(kernels, false)
}
