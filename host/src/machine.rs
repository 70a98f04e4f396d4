//! Machines: a named, persistent VM that a daemon (`berthd`) owns. Everything of one
//! machine lives in `$BERTH_HOME/machines/<name>/`:
//!
//! - `machine.json`: how it boots (cpus, memory, disk size, kernel, transport);
//! - `disk.img`: its persistent disk (layer cache, container state in the guest);
//! - `docker.sock`: the daemon's API socket (Docker Engine API);
//! - `daemon.pid`, `daemon.lock`, `daemon.log`: the daemon process;
//! - `daemon.phase`: what a starting daemon is doing (see [`Phase`]);
//! - `containers/<id>/`: each container's record and logs (see `daemon::state`);
//! - `volumes/<name>.json`: named volumes (see `daemon::volumes`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::paths::Paths;

/// The Docker Engine API version the daemon serves, and the oldest it accepts.
pub const API_VERSION: &str = "1.43";
pub const MIN_API_VERSION: &str = "1.24";

/// The machine `berth run` and friends use when none is named.
pub const DEFAULT: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("invalid machine name {0:?}: use letters, digits, '-' and '_' (at most 32)")]
    BadName(String),
    #[error("no machine named {0}; create it with `berth machine start {0}`")]
    NotFound(String),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is damaged: {source}")]
    Damaged {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How a machine boots; fixed when it is first started, changed by a later
/// `berth machine start` with flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineConfig {
    pub cpus: u32,
    pub memory_mib: u64,
    pub disk_bytes: u64,
    /// A kernel name from `berth kernel ls`, or a path; the default kernel when absent.
    pub kernel: Option<String>,
    /// auto, vsock, vhost-user or serial.
    pub transport: String,
    /// The guest's uplink: open, restricted or none (see `qemu::Uplink`).
    #[serde(default = "default_uplink")]
    pub uplink: String,
    /// Host loopback ports containers reach at `host.berth.internal:PORT`.
    #[serde(default)]
    pub forward_host_ports: Vec<u16>,
    /// Host folders shared with the guest (virtio-9p), for `-v /host/dir:/path`.
    #[serde(default = "crate::shares::default_dirs")]
    pub shares: Vec<PathBuf>,
    /// How shared folders reach the guest: auto (virtiofs where virtiofsd is installed,
    /// else 9p), 9p or virtiofs.
    #[serde(default = "default_share_fs")]
    pub share_fs: String,
}

fn default_share_fs() -> String {
    "auto".into()
}

/// A new machine's uplink: `$BERTH_UPLINK`, else open (as Docker's containers reach the
/// network). Test harnesses set `BERTH_UPLINK=restricted`.
pub fn default_uplink() -> String {
    std::env::var("BERTH_UPLINK")
        .ok()
        .filter(|u| crate::qemu::Uplink::parse(u).is_some())
        .unwrap_or_else(|| "open".into())
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            cpus: 2,
            memory_mib: 1024,
            disk_bytes: crate::layer_disk::DEFAULT_SIZE,
            kernel: None,
            transport: "auto".into(),
            uplink: default_uplink(),
            forward_host_ports: Vec::new(),
            shares: crate::shares::default_dirs(),
            share_fs: default_share_fs(),
        }
    }
}

/// The directory of one machine.
#[derive(Debug, Clone)]
pub struct MachineDir {
    pub name: String,
    pub dir: PathBuf,
}

impl MachineDir {
    /// The machine `name` under `paths` (it need not exist yet).
    pub fn new(paths: &Paths, name: &str) -> Result<MachineDir, MachineError> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(MachineError::BadName(name.into()));
        }
        Ok(MachineDir {
            name: name.into(),
            dir: machines_dir(paths).join(name),
        })
    }

    pub fn exists(&self) -> bool {
        self.config_path().is_file()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("machine.json")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("daemon.pid")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("daemon.lock")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    pub fn phase_file(&self) -> PathBuf {
        self.dir.join("daemon.phase")
    }

    /// Records what the daemon is doing, for `machine start` to show.
    pub fn write_phase(&self, phase: Phase) {
        if let Err(e) = write_atomic(&self.phase_file(), phase.as_str().as_bytes()) {
            tracing::debug!("writing {}: {e}", self.phase_file().display());
        }
    }

    /// What the daemon last said it is doing.
    pub fn read_phase(&self) -> Option<Phase> {
        Phase::parse(std::fs::read_to_string(self.phase_file()).ok()?.trim())
    }

    /// The names of the machine's volumes (named and anonymous), from their metadata.
    pub fn volume_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.volumes_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                Some(name.strip_suffix(".json")?.to_string())
            })
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.img")
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.dir.join("containers")
    }

    /// Named volumes' metadata (`<name>.json`); their data is in the guest.
    pub fn volumes_dir(&self) -> PathBuf {
        self.dir.join("volumes")
    }

    pub fn read_config(&self) -> Result<MachineConfig, MachineError> {
        let path = self.config_path();
        let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => MachineError::NotFound(self.name.clone()),
            _ => MachineError::Read {
                path: path.clone(),
                source,
            },
        })?;
        serde_json::from_slice(&bytes).map_err(|source| MachineError::Damaged { path, source })
    }

    /// Written atomically: a crash leaves the old file or the new one.
    pub fn write_config(&self, cfg: &MachineConfig) -> Result<(), MachineError> {
        let path = self.config_path();
        let bytes = serde_json::to_vec_pretty(cfg).map_err(std::io::Error::other);
        bytes
            .and_then(|b| write_atomic(&path, &b))
            .map_err(|source| MachineError::Write { path, source })
    }

    /// The pid in `daemon.pid`, when the daemon holding it is alive.
    pub fn daemon_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        process_alive(pid).then_some(pid)
    }
}

/// The smallest persistent disk a machine may have: room for ext4's journal and a few
/// layers.
pub const MIN_DISK_BYTES: u64 = 256 << 20;

/// What a starting daemon is doing; written to `daemon.phase` as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Making and formatting the persistent disk (first start only).
    Disk,
    /// QEMU is booting the kernel.
    Booting,
    /// The agent answered; the API socket is being opened.
    Serving,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Disk => "disk",
            Phase::Booting => "booting",
            Phase::Serving => "serving",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        [Phase::Disk, Phase::Booting, Phase::Serving]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// For people: what is happening now.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Disk => "making its disk",
            Phase::Booting => "booting the VM",
            Phase::Serving => "connecting to the guest",
        }
    }
}

/// `$BERTH_HOME/machines`.
pub fn machines_dir(paths: &Paths) -> PathBuf {
    paths.home.join("machines")
}

/// Every machine that has a config, by name.
pub fn list(paths: &Paths) -> Vec<MachineDir> {
    let mut out: Vec<MachineDir> = std::fs::read_dir(machines_dir(paths))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| MachineDir::new(paths, &e.file_name().to_string_lossy()).ok())
        .filter(MachineDir::exists)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Writes `bytes` to a temp file beside `path`, syncs it and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        crate::sys::proc_stat(pid).is_some_and(|p| p.state != 'Z')
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        crate::sys::signal_process(pid, 0)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(home: &Path) -> Paths {
        Paths {
            home: home.to_path_buf(),
            assets: home.join("assets"),
        }
    }

    #[test]
    fn names_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        assert!(MachineDir::new(&p, "default").is_ok());
        assert!(MachineDir::new(&p, "ci-6_1").is_ok());
        for bad in ["", "../x", "a/b", "a b", &"x".repeat(33)] {
            assert!(MachineDir::new(&p, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_round_trips_and_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        let m = MachineDir::new(&p, "one").unwrap();
        assert!(matches!(m.read_config(), Err(MachineError::NotFound(_))));
        let cfg = MachineConfig {
            cpus: 1,
            ..MachineConfig::default()
        };
        m.write_config(&cfg).unwrap();
        assert_eq!(m.read_config().unwrap(), cfg);
        assert_eq!(list(&p).len(), 1);
        std::fs::write(m.config_path(), b"{half").unwrap();
        assert!(matches!(m.read_config(), Err(MachineError::Damaged { .. })));
    }

    #[test]
    fn volumes_are_listed_from_their_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let m = MachineDir::new(&paths(tmp.path()), "one").unwrap();
        assert!(m.volume_names().is_empty());
        std::fs::create_dir_all(m.volumes_dir()).unwrap();
        for f in ["data.json", "cache.json", ".tmp-x", "notes.txt"] {
            std::fs::write(m.volumes_dir().join(f), b"{}").unwrap();
        }
        assert_eq!(m.volume_names(), ["cache", "data"]);
    }

    #[test]
    fn phases_round_trip_through_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let m = MachineDir::new(&paths(tmp.path()), "one").unwrap();
        assert_eq!(m.read_phase(), None);
        for p in [Phase::Disk, Phase::Booting, Phase::Serving] {
            m.write_phase(p);
            assert_eq!(m.read_phase(), Some(p));
        }
    }

    #[test]
    fn our_own_process_is_alive() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX - 1));
    }
}
