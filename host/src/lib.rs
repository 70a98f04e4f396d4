//! The host side of berth: finds kernels, chooses the accelerator and transport, launches
//! QEMU, and talks to `berth-init` in the guest. The `berth` binary is a thin CLI on top.
//!
//! Builds for Linux, macOS and Windows (`cargo xtask check-cross`): OS-specific code is
//! behind `cfg`, and the only `unsafe` lives in `sys`.

pub mod accel;
pub mod cli;
pub mod client;
pub mod error;
pub mod image;
pub mod kernels;
pub mod layer_disk;
pub mod paths;
pub mod qemu;
pub mod size;
mod sys;
pub mod transport;
pub mod vm;

pub use error::Error;
