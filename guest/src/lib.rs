//! The guest side of berth: `berth-init` is PID 1 in the VM's initramfs. It mounts what a
//! Linux system needs, loads kernel modules where the kernel has them, reaps orphans and
//! serves the host over vsock or virtio-serial (see `agent`).
//!
//! Linux only. Raw syscalls and `unsafe` live in `sys` and nowhere else.

pub mod agent;
pub mod config;
pub mod container;
pub mod copy;
pub mod deadline;
pub mod disk;
pub mod init;
pub mod layer;
pub mod modules;
pub mod net;
pub mod process;
pub mod shares;
pub mod spawn;
pub mod sys;
pub mod transport;

/// `a: b: c` from an error and its sources, for messages sent to the host.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
