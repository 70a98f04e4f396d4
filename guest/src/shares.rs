//! Host folders shared by QEMU over virtio-9p (or by virtiofsd over virtiofs), mounted at boot at `/mnt/host<host path>`,
//! and how a container's mount source (a host path, a volume name) becomes a guest path.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use berth_protocol::boot::BootShare;
use berth_protocol::MountSource;

use crate::sys::{self, MountFlags};

/// Where shares are mounted: the host path below this prefix.
pub const PREFIX: &str = "/mnt/host";
/// The 9p message size: the most the virtio transport takes (`PAGE_SIZE * (128 - 3)`).
const MSIZE: u32 = 512_000;
/// How long a lookup in a shared folder waits for the host's server of it (a virtiofsd
/// that ended never answers, and virtiofs offers no way to end its waiting requests).
const LOOKUP_DEADLINE: Duration = Duration::from_secs(10);

/// One share as the guest has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// Its device's tag (virtio-9p or virtiofs).
    pub tag: String,
    /// The shared folder's path on the host.
    pub host_path: String,
    /// Why it could not be mounted, if it could not.
    pub error: Option<String>,
}

/// The shares of this guest and where they are mounted.
#[derive(Debug)]
pub struct Shares {
    pub prefix: PathBuf,
    pub list: Vec<Share>,
    /// Shares the host has stopped serving ([`Shares::close`]): host path, and why.
    closed: Mutex<Vec<(String, String)>>,
}

impl Default for Shares {
    fn default() -> Self {
        Shares::new(PathBuf::from(PREFIX), Vec::new())
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
                    tag: tag.clone(),
                    host_path: host_path.clone(),
                    error,
                }
            })
            .collect();
        Shares::new(PathBuf::from(PREFIX), list)
    }

    pub fn new(prefix: PathBuf, list: Vec<Share>) -> Shares {
        Shares {
            prefix,
            list,
            closed: Mutex::new(Vec::new()),
        }
    }

    /// The host no longer serves share `tag` (its virtiofsd ended): binds of it are
    /// refused from now on, saying `why`. What already waits on it waits on: a virtiofs
    /// mount has no FUSE control connection to abort and cannot be forced off, and QEMU
    /// does not reconnect it to a new server.
    pub fn close(&self, tag: &str, why: &str) -> Result<(), String> {
        let share = self
            .list
            .iter()
            .find(|s| s.tag == tag)
            .ok_or_else(|| format!("no shared folder has the tag {tag}"))?;
        self.closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((share.host_path.clone(), why.to_string()));
        Ok(())
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
        // (Not held past this: the lookup below waits on the share's server, and the
        // share's closing, which ends that wait, takes this lock.)
        let closed = self
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(p, _)| *p == share.host_path)
            .map(|(_, why)| why.clone());
        if let Some(e) = share.error.clone().or(closed) {
            return Err(format!(
                "bind source {path}: the shared folder {} is not available in the machine: {e}",
                share.host_path
            ));
        }
        let guest = self.prefix.join(path.trim_start_matches('/'));
        let looked_up = guest.clone();
        match crate::deadline::within(LOOKUP_DEADLINE, move || looked_up.symlink_metadata()) {
            Some(Ok(_)) => Ok(guest),
            Some(Err(e)) => Err(format!("bind source path {path}: {e}")),
            None => Err(format!(
                "bind source path {path}: the shared folder {} did not answer within \
                 {LOOKUP_DEADLINE:?} (has the host's server of it, its virtiofsd, ended?)",
                share.host_path
            )),
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
        let shares = Shares::new(
            prefix.clone(),
            vec![
                Share {
                    tag: "berth0".into(),
                    host_path: "/home/ann".into(),
                    error: None,
                },
                Share {
                    tag: "berth1".into(),
                    host_path: "/tmp".into(),
                    error: Some("mount 9p on /mnt/host/tmp: No such device".into()),
                },
            ],
        );
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
    fn a_closed_share_is_bound_no_more_and_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("tmp/x")).unwrap();
        let shares = Shares::new(
            tmp.path().to_path_buf(),
            vec![Share {
                tag: "berth1".into(),
                host_path: "/tmp".into(),
                error: None,
            }],
        );
        assert!(shares.guest_path("/tmp/x").is_ok());
        shares
            .close("berth1", "its virtiofsd ended (signal: 9)")
            .unwrap();
        let e = shares.guest_path("/tmp/x").unwrap_err();
        assert_eq!(
            e,
            "bind source /tmp/x: the shared folder /tmp is not available in the machine: \
             its virtiofsd ended (signal: 9)"
        );
        let e = shares.close("berth7", "gone").unwrap_err();
        assert!(e.contains("berth7"), "{e}");
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
