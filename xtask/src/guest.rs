//! `cargo xtask guest`: the static guest binaries that run as PID 1 in the VM.

use std::path::PathBuf;

use anyhow::Result;

use crate::assets::workspace_root;
use crate::cmd::Cmd;
use crate::elf;

const TARGET: &str = "x86_64-unknown-linux-gnu";
/// The Cargo profile of the guest binaries (small and static, see the workspace manifest).
const PROFILE: &str = "guest";

/// The built guest binaries.
pub struct GuestBinaries {
    /// PID 1 of the real guest: the agent berth talks to.
    pub init: PathBuf,
    /// PID 1 of the benchmark floor: reports it is up and powers off.
    pub floor_init: PathBuf,
    /// Where the other binaries are (test tools such as `berth-udp-echo`).
    pub dir: PathBuf,
}

/// Builds `berth-guest`'s binaries statically (own target dir, so the `RUSTFLAGS` do not
/// invalidate the host build) and checks they really are static.
pub fn build() -> Result<GuestBinaries> {
    println!("== guest: building static berth-init and berth-floor-init");
    let target_dir = workspace_root().join("target").join("guest");
    Cmd::cargo()
        .args([
            "build",
            "--profile",
            PROFILE,
            "-p",
            "berth-guest",
            "--bins",
            "--target",
            TARGET,
        ])
        // Static, and not position-independent: a static-pie relocates itself at every
        // start, which costs the guest's PID 1 a pass over its whole data at each boot.
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C relocation-model=static",
        )
        // Would take precedence over RUSTFLAGS if the caller had it set.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("CARGO_TARGET_DIR", &target_dir)
        .dir(workspace_root())
        .run()?;

    let release = target_dir.join(TARGET).join(PROFILE);
    let binaries = GuestBinaries {
        init: release.join("berth-init"),
        floor_init: release.join("berth-floor-init"),
        dir: release.clone(),
    };
    elf::ensure_static(&binaries.init)?;
    elf::ensure_static(&binaries.floor_init)?;
    Ok(binaries)
}
