//! The container shim process (see the module docs of `container`).

use std::io::{Read, Write};
use std::path::Path;

use super::{rootfs, ShimSpec, CGROUP_PARENT};
use crate::sys::{self, Forked, Namespace, Reaped};

/// Exit code when the container cannot be set up (Docker's "the runtime failed").
const SETUP_FAILED: i32 = 125;

/// Entry point of `berth-init container-shim <spec json>`; never returns normally.
pub fn main(spec_json: &str) -> i32 {
    let spec: ShimSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => return fail(&format!("bad container spec: {e}")),
    };
    // The network gate goes to the container's first process, which reads it; the
    // command it execs does not get it.
    let gate = match spec.network_gate {
        true => match sys::inherited_fd(super::NETWORK_GATE_FD) {
            Ok(fd) => Some(fd),
            Err(e) => return fail(&format!("the network gate: {e}")),
        },
        false => None,
    };
    if let Err(e) = join_cgroup(&spec) {
        return fail(&format!("cgroup: {e}"));
    }
    let namespaces = match &spec.netns {
        super::NsEntry::Join(path) => sys::enter_netns(path),
        _ => Ok(()),
    }
    .and_then(|_| join_shared(&spec.sharing))
    .and_then(|_| sys::unshare_container_namespaces(&fresh_namespaces(&spec)))
    .and_then(|_| sys::block_shim_signals());
    if let Err(e) = namespaces {
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
    // Closes (close-on-exec) when the container's command runs, or its process dies.
    let (exec_seen, exec_signal) = match sys::pipe() {
        Ok(pair) => pair,
        Err(e) => return fail(&format!("pipe: {e}")),
    };
    match sys::fork_single_threaded() {
        Ok(Forked::Child) => {
            drop(parent_side);
            drop(exec_seen);
            let _open_until_exec = exec_signal;
            let _ = sys::clean_signals();
            if let Err(e) = sys::take_terminal() {
                return fail(&format!("terminal: {e}"));
            }
            let (code, message) = rootfs::enter_and_exec(&spec, child_side, gate);
            let _ = writeln!(std::io::stderr(), "berth: {message}");
            std::process::exit(code)
        }
        Ok(Forked::Parent(child)) => {
            drop(gate);
            drop(child_side);
            drop(exec_signal);
            if let Some(side) = parent_side {
                if let Err(e) = side.map(child) {
                    let _ = writeln!(std::io::stderr(), "berth: mapping the user namespace: {e}");
                }
            }
            record_init_pid(&spec, exec_seen, child);
            supervise(child)
        }
        Err(e) => fail(&format!("fork: {e}")),
    }
}

/// Joins the PID and IPC namespaces of another container (`--pid`/`--ipc
/// container:NAME`); the PID one holds for the children forked after it.
fn join_shared(sharing: &super::Sharing) -> std::io::Result<()> {
    for (entry, ns) in [
        (&sharing.pid, Namespace::Pid),
        (&sharing.ipc, Namespace::Ipc),
    ] {
        if let super::NsEntry::Join(path) = entry {
            let file = std::fs::File::open(path).map_err(|e| {
                std::io::Error::other(format!(
                    "the {} namespace to join, {}: {e} (is that container running?)",
                    ns.proc_name(),
                    path.display()
                ))
            })?;
            sys::join_namespace(&file, ns)?;
        }
    }
    Ok(())
}

/// The namespaces the container gets new ones of.
fn fresh_namespaces(spec: &ShimSpec) -> Vec<Namespace> {
    let s = &spec.sharing;
    [
        (&spec.netns, Namespace::Net),
        (&s.pid, Namespace::Pid),
        (&s.ipc, Namespace::Ipc),
        (&s.uts, Namespace::Uts),
    ]
    .into_iter()
    .filter(|(entry, _)| **entry == super::NsEntry::New)
    .map(|(_, ns)| ns)
    .collect()
}

/// Waits until the container's first process has exec'd its command (its end of the pipe
/// closes), then records its pid for `docker exec` (see `state`): from then on its
/// namespaces and root are the container's. Signals stay pending meanwhile.
fn record_init_pid(spec: &ShimSpec, exec_seen: std::os::fd::OwnedFd, child: u32) {
    let mut rest = Vec::new();
    let _ = std::fs::File::from(exec_seen).read_to_end(&mut rest);
    if let Err(e) = super::state::save_init_pid(&spec.dir, child) {
        let _ = writeln!(
            std::io::stderr(),
            "berth: recording the container's pid: {e}"
        );
    }
}

/// Forwards signals to `child` (the container's first process, or a process `docker exec`
/// started) until it ends, then ends the same way.
pub(super) fn supervise(child: u32) -> ! {
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
