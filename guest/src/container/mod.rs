//! Containers: an overlayfs root from cached layers, Linux namespaces, a cgroup, and a
//! process that is PID 1 in its own PID namespace.
//!
//! The agent (multi-threaded, tokio) never forks itself into a container. It starts
//! `berth-init container-shim <spec>`: a fresh single-threaded process that joins the
//! container's cgroup, unshares the namespaces and forks the container's first process,
//! then stays as its parent: it forwards signals to it and exits the way it did, so the
//! agent's ordinary process plumbing (stdio pipes, signals, exit status) serves
//! containers unchanged. `docker exec` works the same way with
//! `berth-init container-exec <spec>` (`join`), which enters a running container's
//! cgroup and namespaces instead of making new ones.

mod archive;
pub mod cgroup;
mod changes;
mod devices;
mod join;
mod launch;
pub mod mounts;
pub mod prefetch;
pub(crate) use rootfs::DEFAULT_PATH;
pub mod reaper;
mod rootfs;
mod seccomp;
mod security;
mod shim;
pub mod state;
pub mod stats;
pub mod top;
pub mod user;
pub mod userns;
pub mod warmup;

use std::path::{Path, PathBuf};

use crate::spawn::Process;

use serde::{Deserialize, Serialize};

pub use join::{main as exec_shim_main, ExecShimSpec, EXEC_SHIM_ARG};
pub use shim::main as shim_main;

/// The first argument that makes `berth-init` a container shim.
pub const SHIM_ARG: &str = "container-shim";
/// A container's devpts instance, as Docker's.
pub const DEVPTS_OPTIONS: &str = "newinstance,ptmxmode=0666,mode=0620,gid=5";
/// Where container cgroups live.
pub const CGROUP_PARENT: &str = "/sys/fs/cgroup/berth";

/// Everything the shim needs, passed as JSON on its command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimSpec {
    pub id: String,
    /// Unpacked layer directories, top layer first (overlayfs `lowerdir` order).
    pub lowerdirs: Vec<PathBuf>,
    /// The container's state directory: `upper/`, `work/`, `rootfs/`, and `spec.json`
    /// and `init.pid` while it runs (`state`).
    pub dir: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub hostname: String,
    pub user: Option<String>,
    #[serde(default)]
    pub resources: berth_protocol::Resources,
    #[serde(default)]
    pub security: berth_protocol::Security,
    /// The container's network namespace.
    #[serde(default)]
    pub netns: NsEntry,
    /// The contents of the container's /etc/hosts and /etc/resolv.conf, when its network
    /// decides them (see `crate::net`); else Docker's defaults for no network.
    #[serde(default)]
    pub hosts: Option<String>,
    #[serde(default)]
    pub resolv_conf: Option<String>,
    /// Host folders and volumes, their sources already guest paths.
    #[serde(default)]
    pub mounts: Vec<mounts::BindMount>,
    /// `--tmpfs` mounts, after `mounts`.
    #[serde(default)]
    pub tmpfs: Vec<berth_protocol::Tmpfs>,
    /// `--read-only`: the root is remounted read-only once everything is in place.
    #[serde(default)]
    pub read_only_rootfs: bool,
    /// Limits, groups, init, /dev/shm's size and kernel parameters.
    #[serde(default)]
    pub process: berth_protocol::ProcessOptions,
    /// The agent mounted the container's devpts instance at `pts()` (where the
    /// container's terminal, and those of `docker exec -t`, are made): the shim binds it
    /// at /dev/pts instead of making one, so a terminal is `/dev/pts/N` inside.
    #[serde(default)]
    pub devpts: bool,
    /// Namespaces shared with the guest or another container.
    #[serde(default)]
    pub sharing: Sharing,
    /// The container's network interfaces are still being made when the shim starts:
    /// the shim gets [`NETWORK_GATE_FD`], and the container's command waits, once its
    /// root is in place, until the agent writes a byte there (the network is ready) or
    /// closes it (the network failed; the command does not run).
    #[serde(default)]
    pub network_gate: bool,
}

/// The shim's descriptor of the network gate (see [`ShimSpec::network_gate`]).
pub const NETWORK_GATE_FD: std::os::fd::RawFd = 3;

/// Which namespace of a kind (network, PID, IPC, UTS) a container runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsEntry {
    /// A new, empty one.
    #[default]
    New,
    /// The guest's own (`--network host`, `--pid host`, ...).
    Host,
    /// The one at this path (kept by the agent, or another container's in /proc).
    Join(PathBuf),
}

/// The PID, IPC and UTS namespaces of a container (`--pid`, `--ipc`, `--uts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sharing {
    #[serde(default)]
    pub pid: NsEntry,
    #[serde(default)]
    pub ipc: NsEntry,
    /// `New` or `Host`; with `Host` the hostname is the guest's and is not set.
    #[serde(default)]
    pub uts: NsEntry,
    /// `--ipc none`: no /dev/shm.
    #[serde(default)]
    pub no_shm: bool,
    /// The /dev/shm that goes with a shared IPC namespace (the guest's, or the joined
    /// container's through `/proc/<pid>/root`), bound instead of a new one.
    #[serde(default)]
    pub shm_from: Option<PathBuf>,
}

impl ShimSpec {
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The container's devpts instance, as the agent sees it (see `devpts`).
    pub fn pts(&self) -> PathBuf {
        self.dir.join("pts")
    }

    /// The container's own /dev/shm, as the agent sees it: a container that joins its
    /// IPC namespace binds the same one.
    pub fn shm(&self) -> PathBuf {
        self.dir.join("shm")
    }

    /// Mounts the container's /dev/shm at `shm()` when it has one of its own.
    pub fn mount_shm(&mut self) -> std::io::Result<()> {
        if self.sharing.shm_from.is_some() || self.sharing.no_shm {
            return Ok(());
        }
        let size = self.process.shm_size.unwrap_or(64 << 20);
        crate::sys::mount_fs(
            "shm",
            &self.shm().display().to_string(),
            "tmpfs",
            crate::sys::MountFlags::MS_NOSUID
                | crate::sys::MountFlags::MS_NODEV
                | crate::sys::MountFlags::MS_NOEXEC,
            Some(&format!("mode=1777,size={size}")),
        )?;
        self.sharing.shm_from = Some(self.shm());
        Ok(())
    }

    /// Mounts the container's own devpts instance at `pts()`.
    pub fn mount_devpts(&mut self) -> std::io::Result<()> {
        crate::sys::mount_fs(
            "devpts",
            &self.pts().display().to_string(),
            "devpts",
            crate::sys::MountFlags::MS_NOSUID | crate::sys::MountFlags::MS_NOEXEC,
            Some(DEVPTS_OPTIONS),
        )?;
        self.devpts = true;
        Ok(())
    }

    /// Creates the state directories (an upper directory kept from an earlier run stays
    /// as it is) and saves this spec in them (for `docker exec`).
    pub fn prepare(&self) -> std::io::Result<()> {
        self.create_dirs()?;
        state::save_spec(self)
    }

    /// Creates the state directories, saving nothing: the container is not running.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        for d in [self.upper(), self.work(), self.rootfs()] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }

    /// The process that runs this container's shim.
    pub fn process(&self) -> Result<Process, String> {
        let json = serde_json::to_string(self).map_err(|e| e.to_string())?;
        Ok(Process::berth_init("berth-container-shim", SHIM_ARG, json))
    }
}

/// Whether `id` is a container id: 64 hex digits (so it is also a safe path component).
pub fn valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Ends a run of a container: its cgroup and the files that say it runs (`state`) go;
/// its files (the overlay's upper directory) stay until the container is removed
/// ([`state::remove_files`]), as a stopped Docker container keeps its changes.
pub fn finish(spec: &ShimSpec) {
    for mount in [spec.pts(), spec.shm()] {
        if let Err(e) = crate::sys::unmount(&mount) {
            tracing::warn!("container {}: {e}", &spec.id[..12.min(spec.id.len())]);
        }
    }
    state::forget_run(&spec.dir);
    let _ = std::fs::remove_dir(Path::new(CGROUP_PARENT).join(&spec.id));
}
