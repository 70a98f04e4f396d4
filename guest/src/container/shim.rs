//! The container shim process (see the module docs of `container`).

use std::io::Write;
use std::path::Path;

use super::{rootfs, ShimSpec, CGROUP_PARENT};
use crate::sys::{self, Forked, Reaped};

/// Exit code when the container cannot be set up (Docker's "the runtime failed").
const SETUP_FAILED: i32 = 125;

/// Entry point of `berth-init container-shim <spec json>`; never returns normally.
pub fn main(spec_json: &str) -> i32 {
    let spec: ShimSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => return fail(&format!("bad container spec: {e}")),
    };
    if let Err(e) = join_cgroup(&spec) {
        return fail(&format!("cgroup: {e}"));
    }
    if let Err(e) = sys::unshare_container_namespaces().and_then(|_| sys::block_shim_signals()) {
        return fail(&e.to_string());
    }
    let userns = match spec.security.userns_private {
        true => match super::userns::channel() {
            Ok(pair) => Some(pair),
            Err(e) => return fail(&format!("user namespace: {e}")),
        },
        false => None,
    };
    let (parent_side, child_side) = match userns {
        Some((p, c)) => (Some(p), Some(c)),
        None => (None, None),
    };
    match sys::fork_single_threaded() {
        Ok(Forked::Child) => {
            drop(parent_side);
            let _ = sys::unblock_all_signals();
            if let Err(e) = sys::take_terminal() {
                return fail(&format!("terminal: {e}"));
            }
            let (code, message) = rootfs::enter_and_exec(&spec, child_side);
            let _ = writeln!(std::io::stderr(), "berth: {message}");
            std::process::exit(code)
        }
        Ok(Forked::Parent(child)) => {
            drop(child_side);
            if let Some(side) = parent_side {
                if let Err(e) = side.map(child) {
                    let _ = writeln!(std::io::stderr(), "berth: mapping the user namespace: {e}");
                }
            }
            supervise(child)
        }
        Err(e) => fail(&format!("fork: {e}")),
    }
}

/// Forwards signals to the container's first process until it ends, then ends the same way.
fn supervise(child: u32) -> ! {
    loop {
        match sys::wait_signal() {
            Ok(nix::sys::signal::Signal::SIGCHLD) => match sys::try_reap(child) {
                Some(Reaped::Exited(_, code)) => std::process::exit(code),
                Some(Reaped::Signaled(_, sig)) => sys::die_by_signal(sig),
                None => {}
            },
            Ok(sig) => sys::forward_signal(child, sig),
            Err(_) => {}
        }
    }
}

/// Moves this process into the container's own cgroup, before the cgroup namespace is
/// made, so the container sees its cgroup as `/`.
fn join_cgroup(spec: &ShimSpec) -> std::io::Result<()> {
    let dir = Path::new(CGROUP_PARENT).join(&spec.id);
    std::fs::create_dir_all(&dir)?;
    super::cgroup::apply(&dir, &spec.resources, super::cgroup::device_numbers)?;
    std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
}

fn fail(message: &str) -> i32 {
    let _ = writeln!(
        std::io::stderr(),
        "berth: container setup failed: {message}"
    );
    SETUP_FAILED
}
