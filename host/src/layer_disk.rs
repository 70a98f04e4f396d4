//! A machine's persistent disk (`machines/<name>/disk.img`), which its VM gets as
//! virtio-blk: the guest unpacks each layer there once per digest, and every later
//! container and boot of that machine reuses it. The machine's daemon lock gives it to one
//! VM at a time. Formatting: `mkfs.ext4` on the host where there is one (Linux); otherwise
//! the guest formats the blank disk itself (busybox mke2fs).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::paths::find_program;

/// Size of a new layer disk (sparse: it only takes what is written).
pub const DEFAULT_SIZE: u64 = 16 << 30;

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
    fn a_new_disk_is_sparse_and_of_the_asked_size() {
        let tmp = tempfile::tempdir().unwrap();
        std::env::set_var("BERTH_MKFS_EXT4", "/bin/true");
        let disk = tmp.path().join("disk.img");
        create(&disk, DEFAULT_SIZE).unwrap();
        assert!(disk.is_file());
        assert!(!tmp.path().join("disk.img.partial").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let used = disk.metadata().unwrap().blocks() * 512;
            assert!(
                used < 1 << 20,
                "a new disk takes no space until written: {used} bytes"
            );
        }
        // A failed format leaves no disk under either name (one test: the variable is
        // the process's).
        std::env::set_var("BERTH_MKFS_EXT4", "/bin/false");
        let disk = tmp.path().join("failed.img");
        let err = create(&disk, 1 << 20).unwrap_err().to_string();
        std::env::set_var("BERTH_MKFS_EXT4", "/bin/true");
        assert!(err.contains("failed"), "{err}");
        assert!(!disk.exists() && !tmp.path().join("failed.img.partial").exists());
    }
}
