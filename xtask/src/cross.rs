//! `cargo xtask check-cross`: the host CLI must keep compiling for macOS and Windows.

use anyhow::{bail, Result};

use crate::assets::workspace_root;
use crate::cmd::Cmd;

const TARGETS: &[&str] = &["x86_64-apple-darwin", "x86_64-pc-windows-gnu"];

pub fn run() -> Result<()> {
    let installed = Cmd::new("rustup")
        .args(["target", "list", "--installed"])
        .read()?;
    for target in TARGETS {
        if installed.lines().any(|line| line.trim() == *target) {
            println!("rust target {target}: installed");
        } else {
            Cmd::new("rustup").args(["target", "add", target]).run()?;
        }
    }

    let mut failed = Vec::new();
    for target in TARGETS {
        println!("== check-cross: {target}");
        let check = Cmd::cargo()
            .args(["check", "-p", "berth", "--target", target])
            .dir(workspace_root());
        let status = check.status()?;
        if status.success() {
            println!("{target}: ok");
        } else {
            println!("{target}: FAILED ({status})");
            failed.push(format!("{check} ({status})"));
        }
    }
    if !failed.is_empty() {
        bail!("command(s) failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}
