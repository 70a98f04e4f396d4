//! The host side of berth: finds kernels, chooses the accelerator and transport, launches
//! QEMU, and talks to `berth-init` in the guest. The `berth` binary is a thin CLI on top.
//!
//! Builds for Linux, macOS and Windows (`cargo xtask check-cross`): OS-specific code is
//! behind `cfg`, and the only `unsafe` lives in `sys`.

pub mod accel;
pub mod bench;
pub mod build;
pub mod cli;
pub mod client;
#[cfg(unix)]
pub mod daemon;
pub mod docker_context;
pub mod error;
mod helper;
pub mod image;
pub mod kernels;
pub mod layer_disk;
pub mod machine;
pub mod paths;
pub mod qemu;
pub mod qmp;
pub mod shares;
pub mod size;
mod sys;
pub mod transport;
pub mod vm;

pub use error::Error;

/// (image id, container id) of every container of every machine, for `rmi`.
pub fn daemon_state_in_use(paths: &paths::Paths) -> Vec<(String, String)> {
    #[cfg(unix)]
    {
        daemon::state::images_in_use(&machine::machines_dir(paths))
    }
    #[cfg(not(unix))]
    {
        let _ = paths;
        Vec::new()
    }
}
