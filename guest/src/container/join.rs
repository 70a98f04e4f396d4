//! `berth-init container-exec <spec>`: a process started in a running container
//! (`docker exec`).
//!
//! Like the container shim, a fresh single-threaded process that the agent spawns and
//! that stays as the new process's parent (forwarding signals, exiting as it did). It
//! joins the container's cgroup, then the namespaces of the container's first process
//! (the one in `init.pid`), forks a child born in the container's PID namespace, and the
//! child becomes the exec'd process with the container's user, environment and
//! privileges (`launch`). The container's own files (`spec.json`) say which ones.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{launch, ShimSpec, CGROUP_PARENT};
use crate::spawn::Process;
use crate::sys::{self, Forked, Namespace};

/// The first argument that makes `berth-init` an exec shim.
pub const EXEC_SHIM_ARG: &str = "container-exec";
/// Exit code when the process cannot be set up (Docker's "the runtime failed").
const SETUP_FAILED: i32 = 125;
/// The namespaces joined before the fork, in this order. The mount namespace comes last
/// among them: it moves the root, and with it the meaning of `/proc`.
const NAMESPACES: &[Namespace] = &[
    Namespace::Ipc,
    Namespace::Uts,
    Namespace::Net,
    Namespace::Cgroup,
    Namespace::Pid,
    Namespace::Mount,
];

/// Everything the exec shim needs, passed as JSON on its command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecShimSpec {
    /// The running container, as its `spec.json` says.
    pub container: ShimSpec,
    /// The guest pid of the container's first process (its `init.pid`); `None` for a
    /// builtin on a container that is not running (its files are mounted instead).
    pub init_pid: Option<u32>,
    pub argv: Vec<String>,
    /// `KEY=VALUE` entries added to (or replacing those of) the container's environment.
    pub env: Vec<String>,
    /// Working directory; the container's when absent.
    pub cwd: Option<String>,
    /// `user[:group]`; the container's user when absent.
    pub user: Option<String>,
    /// Every capability and no seccomp filter (`docker exec --privileged`).
    pub privileged: bool,
    /// File work done by the shim itself instead of running `argv` (`docker cp`).
    #[serde(default)]
    pub builtin: Option<berth_protocol::Builtin>,
}

impl ExecShimSpec {
    /// The process that runs this exec shim.
    pub fn process(&self) -> Result<Process, String> {
        let json = serde_json::to_string(self).map_err(|e| e.to_string())?;
        Ok(Process::berth_init(
            "berth-container-exec",
            EXEC_SHIM_ARG,
            json,
        ))
    }

    /// The process's privileges: the container's, or everything with `privileged`.
    pub fn security(&self) -> berth_protocol::Security {
        if self.privileged {
            berth_protocol::Security {
                privileged: true,
                ..Default::default()
            }
        } else {
            self.container.security.clone()
        }
    }
}

/// Entry point of `berth-init container-exec <spec json>`; never returns normally.
pub fn main(spec_json: &str) -> i32 {
    let spec: ExecShimSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => return fail(&format!("bad exec spec: {e}")),
    };
    // The container's changes are read from its upper directory, from the guest's side.
    let c = &spec.container;
    let targets: Vec<&str> = c
        .mounts
        .iter()
        .map(|m| m.target.as_str())
        .chain(c.tmpfs.iter().map(|t| t.target.as_str()))
        .collect();
    let setup = super::changes::setup_paths(&targets);
    match &spec.builtin {
        Some(berth_protocol::Builtin::LayerTar) => {
            return report(super::changes::layer_tar(&c.upper(), &c.lowerdirs, &setup));
        }
        Some(berth_protocol::Builtin::Changes) => {
            let listed = super::changes::changes(&c.upper(), &c.lowerdirs, &setup).and_then(|c| {
                let json = serde_json::to_string(&c).map_err(std::io::Error::other)?;
                writeln!(std::io::stdout(), "{json}")
            });
            return report(listed);
        }
        Some(op) if spec.init_pid.is_none() => {
            // As the guest's root in a private mount namespace with the container's
            // root and mounts, as Docker's daemon copies into a stopped container.
            let entered = super::rootfs::enter_files(c);
            return match entered {
                Ok(()) => {
                    let (code, message) = super::archive::run(op);
                    if !message.is_empty() {
                        let _ = writeln!(std::io::stderr(), "berth: {message}");
                    }
                    code
                }
                Err(e) => fail(&format!("the container's files: {e}")),
            };
        }
        None if spec.init_pid.is_none() => return fail("the container is not running"),
        _ => {}
    }
    let Some(init_pid) = spec.init_pid else {
        return fail("the container is not running");
    };
    let cgroup = Path::new(CGROUP_PARENT).join(&spec.container.id);
    if let Err(e) = std::fs::write(cgroup.join("cgroup.procs"), std::process::id().to_string()) {
        return fail(&format!("joining the container's cgroup: {e}"));
    }
    // Every namespace file is opened before the first setns: afterwards /proc/<pid> would
    // name another process (or none).
    let open = |ns: Namespace| {
        let path = format!("/proc/{init_pid}/ns/{}", ns.proc_name());
        File::open(&path).map_err(|e| format!("{path}: {e} (is the container running?)"))
    };
    let mut joined = Vec::new();
    for ns in NAMESPACES {
        match open(*ns) {
            Ok(f) => joined.push((f, *ns)),
            Err(e) => return fail(&e),
        }
    }
    // The container's user namespace (`--userns=private`) was made by its first process
    // after the others, so it owns none of them: it is joined last, by the child alone.
    let userns = match spec.container.security.userns_private {
        true => match open(Namespace::User) {
            Ok(f) => Some(f),
            Err(e) => return fail(&e),
        },
        false => None,
    };
    for (file, ns) in &joined {
        if let Err(e) = sys::join_namespace(file, *ns) {
            return fail(&e.to_string());
        }
    }
    drop(joined);
    if let Err(e) = sys::block_shim_signals() {
        return fail(&e.to_string());
    }
    match sys::fork_single_threaded() {
        Ok(Forked::Child) => {
            let (code, message) = child(&spec, userns);
            if !message.is_empty() {
                let _ = writeln!(std::io::stderr(), "berth: {message}");
            }
            std::process::exit(code)
        }
        Ok(Forked::Parent(pid)) => {
            drop(userns);
            super::shim::supervise(pid)
        }
        Err(e) => fail(&format!("fork: {e}")),
    }
}

/// In the container's namespaces: becomes the exec'd process; returns only on failure.
fn child(spec: &ExecShimSpec, userns: Option<File>) -> (i32, String) {
    let _ = sys::clean_signals();
    if let Some(op) = &spec.builtin {
        // As the guest's root in the container's mounts, as Docker's daemon copies.
        return super::archive::run(op);
    }
    // Before the user namespace: taking the terminal from the shim's session needs
    // CAP_SYS_ADMIN where the terminal lives.
    if let Err(e) = sys::take_terminal() {
        return (SETUP_FAILED, format!("terminal: {e}"));
    }
    if let Some(file) = userns {
        let entered =
            sys::join_namespace(&file, Namespace::User).and_then(|_| sys::set_identity(0, 0));
        if let Err(e) = entered {
            return (SETUP_FAILED, format!("user namespace: {e}"));
        }
    }
    let c = &spec.container;
    let env = launch::merge_env(&c.env, &spec.env);
    let cwd = spec.cwd.as_deref().or(c.cwd.as_deref()).unwrap_or("/");
    let security = spec.security();
    launch::become_and_exec(&launch::Process {
        argv: &spec.argv,
        env: &env,
        hostname: &c.hostname,
        user: spec.user.as_deref().or(c.user.as_deref()),
        cwd,
        create_cwd: false,
        security: &security,
        options: &c.process,
    })
}

/// The exit code of a builtin done by the shim itself.
fn report(result: std::io::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "berth: {e}");
            1
        }
    }
}

fn fail(message: &str) -> i32 {
    let _ = writeln!(std::io::stderr(), "berth: exec setup failed: {message}");
    SETUP_FAILED
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(privileged: bool) -> ExecShimSpec {
        ExecShimSpec {
            container: ShimSpec {
                id: "c".into(),
                lowerdirs: vec![],
                dir: "/x".into(),
                argv: vec!["sh".into()],
                env: vec![],
                cwd: None,
                hostname: "h".into(),
                user: None,
                resources: Default::default(),
                security: berth_protocol::Security {
                    cap_drop: vec!["ALL".into()],
                    ..Default::default()
                },
                netns: Default::default(),
                hosts: None,
                resolv_conf: None,
                mounts: vec![],
                tmpfs: vec![],
                read_only_rootfs: false,
                process: Default::default(),
                devpts: false,
                sharing: Default::default(),
                network_gate: false,
            },
            init_pid: Some(7),
            argv: vec!["ls".into()],
            env: vec![],
            cwd: None,
            user: None,
            privileged,
            builtin: None,
        }
    }

    #[test]
    fn privileged_exec_gets_everything_else_the_containers_settings() {
        assert_eq!(spec(false).security().cap_drop, ["ALL"]);
        let p = spec(true).security();
        assert!(p.privileged && p.cap_drop.is_empty());
    }

    #[test]
    fn the_spec_survives_the_command_line() {
        let s = spec(true);
        let p = s.process().unwrap();
        assert_eq!(p.args[0], EXEC_SHIM_ARG);
        assert_eq!(serde_json::from_str::<ExecShimSpec>(&p.args[1]).unwrap(), s);
    }
}
