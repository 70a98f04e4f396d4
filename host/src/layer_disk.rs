//! The persistent layer cache: a raw disk image under `$BERTH_HOME/disks/` that VMs get
//! as virtio-blk. The guest unpacks each layer there once per digest; every later
//! container and every later boot reuses it.
//!
//! One VM at a time may have it (an exclusive lock held for the VM's life): a second
//! concurrent `berth run` boots without it and keeps its layers in guest memory.
//! Formatting: `mkfs.ext4` on the host where there is one (Linux); otherwise the guest
//! formats the blank disk itself (busybox mke2fs).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::paths::{find_program, Paths};

/// Size of a new layer disk (sparse: it only takes what is written).
pub const DEFAULT_SIZE: u64 = 16 << 30;

/// The layer disk, locked for this process until dropped.
pub struct LayerDisk {
    path: PathBuf,
    lock: File,
}

impl LayerDisk {
    /// Takes the layer disk, creating it on first use. `None` (with the reason logged)
    /// when another VM holds it or it cannot be made: callers then boot without it.
    pub fn acquire(paths: &Paths) -> Option<LayerDisk> {
        match Self::try_acquire(&paths.home.join("disks")) {
            Ok(disk) => disk,
            Err(e) => {
                tracing::warn!("no persistent layer cache for this VM: {e}");
                None
            }
        }
    }

    fn try_acquire(dir: &Path) -> std::io::Result<Option<LayerDisk>> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("layers.lock"))?;
        match fs4::FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                tracing::debug!("the layer disk is in use by another VM");
                return Ok(None);
            }
            Err(fs4::TryLockError::Error(e)) => return Err(e),
        }
        let path = dir.join("layers.img");
        if !path.exists() {
            create(&path, DEFAULT_SIZE)?;
        }
        Ok(Some(LayerDisk { path, lock }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LayerDisk {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.lock);
    }
}

/// Creates a sparse disk image and formats it where the host can; a half-made image is
/// never left under the final name.
pub fn create(path: &Path, size: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("img.partial");
    File::create(&tmp)?.set_len(size)?;
    if let Some(mkfs) = find_program(
        "BERTH_MKFS_EXT4",
        "mkfs.ext4",
        &[PathBuf::from("/sbin"), PathBuf::from("/usr/sbin")],
    ) {
        let status = Command::new(&mkfs)
            .args([
                "-q",
                "-F",
                "-L",
                "berth-layers",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1",
            ])
            .arg(&tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(std::io::Error::other(format!(
                "{} failed ({status})",
                mkfs.display()
            )));
        }
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        std::env::set_var("BERTH_MKFS_EXT4", "/bin/true");
        let first = LayerDisk::try_acquire(tmp.path())
            .unwrap()
            .expect("first takes it");
        assert!(first.path().is_file());
        assert_eq!(first.path().metadata().unwrap().len(), DEFAULT_SIZE);
        assert!(
            LayerDisk::try_acquire(tmp.path()).unwrap().is_none(),
            "second must not get it"
        );
        drop(first);
        assert!(
            LayerDisk::try_acquire(tmp.path()).unwrap().is_some(),
            "free again after drop"
        );
    }
}
