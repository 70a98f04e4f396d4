//! Host folders shared by QEMU over virtio-9p (or by virtiofsd over virtiofs), mounted at boot at `/mnt/host<host path>`,
//! and how a container's mount source (a host path, a volume name) becomes a guest path.

use std::path::{Path, PathBuf};

use berth_protocol::boot::BootShare;
use berth_protocol::MountSource;

use crate::sys::{self, MountFlags};

/// Where shares are mounted: the host path below this prefix.
pub const PREFIX: &str = "/mnt/host";
/// The 9p message size: the most the virtio transport takes (`PAGE_SIZE * (128 - 3)`).
const MSIZE: u32 = 512_000;

/// One share as the guest has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The shared folder's path on the host.
    pub host_path: String,
    /// Why it could not be mounted, if it could not.
    pub error: Option<String>,
}

/// The shares of this guest and where they are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shares {
    pub prefix: PathBuf,
    pub list: Vec<Share>,
}

impl Default for Shares {
    fn default() -> Self {
        Shares {
            prefix: PathBuf::from(PREFIX),
            list: Vec::new(),
        }
    }
}

impl Shares {
    /// Mounts each share (tag, host path) under [`PREFIX`], parents first. Failures are kept
    /// (and logged): a container that needs the share then fails with the reason.
    pub fn mount_all(shares: &[BootShare], virtiofs: bool) -> Shares {
        let mut sorted: Vec<&BootShare> = shares.iter().collect();
        sorted.sort_by_key(|s| s.path.len());
        let list = sorted
            .into_iter()
            .map(|share| {
                let (tag, host_path) = (&share.tag, &share.path);
                let target = format!("{PREFIX}{host_path}");
                let mounted = match virtiofs {
                    true => mount_virtiofs(tag, &target),
                    false => mount_9p(tag, &target),
                };
                let error = mounted.err().map(|e| match virtiofs {
                    true => e.to_string(),
                    false => explain(&e.to_string()),
                });
                match &error {
                    None => tracing::debug!("host folder {host_path} at {target}"),
                    Some(e) => tracing::error!("host folder {host_path}: {e}"),
                }
                Share {
                    host_path: host_path.clone(),
                    error,
                }
            })
            .collect();
        Shares {
            prefix: PathBuf::from(PREFIX),
            list,
        }
    }

    /// The guest path of host path `path`: it must lie in a share that is mounted.
    pub fn guest_path(&self, path: &str) -> Result<PathBuf, String> {
        let host = Path::new(path);
        if !host.is_absolute()
            || host
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!(
                "bind source {path:?} is not an absolute, clean path"
            ));
        }
        let share = self
            .list
            .iter()
            .filter(|s| host.starts_with(&s.host_path))
            .max_by_key(|s| s.host_path.len())
            .ok_or_else(|| format!("bind source {path} is not in a folder this machine shares"))?;
        if let Some(e) = &share.error {
            return Err(format!(
                "bind source {path}: the shared folder {} is not available in the machine: {e}",
                share.host_path
            ));
        }
        let guest = self.prefix.join(path.trim_start_matches('/'));
        match guest.symlink_metadata() {
            Ok(_) => Ok(guest),
            Err(e) => Err(format!("bind source path {path}: {e}")),
        }
    }
}

/// The guest directory of a mount's source: a host path in a share, or a volume's data
/// directory under `volumes_dir` (created when missing).
pub fn source_path(
    shares: &Shares,
    volumes_dir: &Path,
    source: &MountSource,
) -> Result<PathBuf, String> {
    match source {
        MountSource::Host { path } => shares.guest_path(path),
        MountSource::Volume { name } => {
            let dir = crate::agent::volume_dir(volumes_dir, name)?.join("_data");
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("volume {name}: creating {}: {e}", dir.display()))?;
            Ok(dir)
        }
    }
}

/// virtiofs: the host's virtiofsd serves the folder; no options needed.
fn mount_virtiofs(tag: &str, target: &str) -> std::io::Result<()> {
    sys::mount_fs(
        tag,
        target,
        "virtiofs",
        MountFlags::MS_NODEV | MountFlags::MS_NOSUID,
        None,
    )
}

fn mount_9p(tag: &str, target: &str) -> std::io::Result<()> {
    let options = format!("trans=virtio,version=9p2000.L,msize={MSIZE},cache=mmap");
    sys::mount_fs(
        tag,
        target,
        "9p",
        MountFlags::MS_NODEV | MountFlags::MS_NOSUID,
        Some(&options),
    )
}

/// A mount failure, with the likely cause when the kernel has no 9p at all.
fn explain(error: &str) -> String {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if filesystems.lines().any(|l| l.trim_end().ends_with("\t9p")) {
        return error.to_string();
    }
    format!(
        "{error} (kernel {} has no 9p support: it needs CONFIG_NET_9P, CONFIG_NET_9P_VIRTIO and CONFIG_9P_FS; \
         berth's own kernels have them, e.g. `berth machine start --kernel 6.1`; or share over virtiofs: \
         install virtiofsd and `berth machine start --share-fs virtiofs`)",
        sys::kernel_release()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_resolve_inside_mounted_shares_only() {
        let tmp = tempfile::tempdir().unwrap();
        let prefix = tmp.path().to_path_buf();
        std::fs::create_dir_all(prefix.join("home/ann/src")).unwrap();
        let shares = Shares {
            prefix: prefix.clone(),
            list: vec![
                Share {
                    host_path: "/home/ann".into(),
                    error: None,
                },
                Share {
                    host_path: "/tmp".into(),
                    error: Some("mount 9p on /mnt/host/tmp: No such device".into()),
                },
            ],
        };
        assert_eq!(
            shares.guest_path("/home/ann/src").unwrap(),
            prefix.join("home/ann/src")
        );
        let e = shares.guest_path("/home/annie").unwrap_err();
        assert!(e.contains("not in a folder this machine shares"), "{e}");
        let e = shares.guest_path("/tmp/x").unwrap_err();
        assert!(e.contains("No such device"), "{e}");
        assert!(shares.guest_path("/home/ann/missing").is_err());
        assert!(shares.guest_path("/home/ann/../../etc").is_err());
        assert!(shares.guest_path("home/ann").is_err());
    }

    #[test]
    fn volumes_are_made_on_first_use() {
        let tmp = tempfile::tempdir().unwrap();
        let src = MountSource::Volume {
            name: "vol1".into(),
        };
        let dir = source_path(&Shares::default(), tmp.path(), &src).unwrap();
        assert_eq!(dir, tmp.path().join("vol1/_data"));
        assert!(dir.is_dir());
        let bad = MountSource::Volume {
            name: "../x".into(),
        };
        assert!(source_path(&Shares::default(), tmp.path(), &bad).is_err());
    }
}
