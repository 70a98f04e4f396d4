//! The persistent state disk (layer cache and container state), mounted at boot.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sys::{self, MountFlags};

/// How much of the disk's start must be zeros for it to count as blank.
const BLANK_CHECK: usize = 64 * 1024;

/// Whether a disk's first bytes are all zeros: nothing was ever written there (mkfs writes
/// its superblock at 1 KiB).
pub fn is_blank(head: &[u8]) -> bool {
    !head.is_empty() && head.iter().all(|b| *b == 0)
}

/// How long the disk may take to appear (module loading, device probe).
const APPEAR_DEADLINE: Duration = Duration::from_secs(5);
/// How long the power-off waits for the disk's last users to let go of it.
const SETTLE_DEADLINE: Duration = Duration::from_millis(500);

/// The state disk's read-ahead, in KiB (the kernel's default is 128). Each request to an
/// emulated disk costs about a millisecond whatever its size, and a container's first
/// exec reads its binary from the layer cache: busybox's took 23 requests (36 ms from its
/// exec to its exit, on a cold machine) with the default, 10 (22 ms) with this.
const READ_AHEAD_KIB: u32 = 1024;

/// The state disk's ext4 options. By default (since Linux 5.9) a mount starts a kernel
/// thread that reads every block group's bitmap ahead, for the allocator; on a cold
/// machine that thread and its reads ran beside the first container, on the same vCPUs.
/// Without it a group's bitmap is read when the allocator first needs that group, as
/// before 5.9. Measured: a cold `berth run --rm busybox true` 14 and 16 ms sooner (paired
/// medians of 45 and 50 rounds, alternating guest assets, both orders).
const MOUNT_OPTIONS: &str = "no_prefetch_block_bitmaps";

/// Whether the state disk is mounted (else the state lives in memory).
static MOUNTED: AtomicBool = AtomicBool::new(false);

/// Mounts `device` (ext4; a blank disk is formatted first) on `target`.
pub fn mount_state_disk(device: &Path, target: &Path) -> Result<(), String> {
    mount_or_format(device, target)?;
    MOUNTED.store(true, Ordering::SeqCst);
    if let Err(e) = set_read_ahead(device, READ_AHEAD_KIB) {
        tracing::warn!("read-ahead of {}: {e}", device.display());
    }
    Ok(())
}

/// Sets the read-ahead of the whole disk `device` (`/dev/vda`) through its sysfs queue.
fn set_read_ahead(device: &Path, kib: u32) -> std::io::Result<()> {
    let name = device
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a device path"))?;
    let knob = Path::new("/sys/block")
        .join(name)
        .join("queue/read_ahead_kb");
    std::fs::write(knob, kib.to_string())
}

/// Leaves the state disk clean before the power-off, once nothing runs: remounted
/// read-only, ext4 writes its journal out and marks itself clean, so the next boot's
/// mount has nothing to recover (a journal left dirty cost every boot's mount a replay,
/// 30-100 ms under emulation). Unmounting could meet a container's mount namespace that
/// the kernel has not yet torn down; a read-only remount only needs no file open for
/// writing. Logged on failure: the journal still protects the data.
pub fn settle(target: &Path) {
    if !MOUNTED.load(Ordering::SeqCst) {
        return;
    }
    let start = Instant::now();
    loop {
        match sys::remount_fs_read_only(target) {
            Ok(()) => return,
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < SETTLE_DEADLINE =>
            {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => {
                tracing::warn!("leaving the state disk clean: {e}");
                return;
            }
        }
    }
}

fn mount_or_format(device: &Path, target: &Path) -> Result<(), String> {
    let start = Instant::now();
    while !device.exists() {
        if start.elapsed() > APPEAR_DEADLINE {
            return Err(format!(
                "{} did not appear within {APPEAR_DEADLINE:?}",
                device.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let dev = device.display().to_string();
    let dir = target.display().to_string();
    let Err(mount_error) = mount_ext4(&dev, &dir) else {
        return Ok(());
    };
    // Only a blank disk is formatted. A disk with anything on it that does not mount (a
    // kernel without ext4, a damaged file system) is an error: its layers and volumes
    // are never formatted away.
    let mut head = vec![0u8; BLANK_CHECK];
    let read = std::fs::File::open(device)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| format!("reading {dev}: {e}"))?;
    if !is_blank(&head[..read]) {
        return Err(format!(
            "{dev} holds a file system that does not mount ({mount_error}); it is left as it is"
        ));
    }
    // A blank disk (hosts without mkfs.ext4): busybox makes ext2, which the ext4 driver mounts.
    let status = Command::new("/bin/mke2fs")
        .args(["-q", "-L", "berth-layers", &dev])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("running mke2fs: {e}"))?;
    if !status.success() {
        return Err(format!("mke2fs {dev} failed ({status})"));
    }
    mount_ext4(&dev, &dir).map_err(|e| e.to_string())
}

/// Mounts the ext4 on `dev` with [`MOUNT_OPTIONS`], or, where the kernel refuses them
/// (older than 5.9), without: the options only make the mount cheaper.
fn mount_ext4(dev: &str, dir: &str) -> std::io::Result<()> {
    sys::mount_fs(
        dev,
        dir,
        "ext4",
        MountFlags::MS_NOATIME,
        Some(MOUNT_OPTIONS),
    )
    .or_else(|e| {
        tracing::debug!("{dev} with {MOUNT_OPTIONS}: {e}; mounting it without them");
        sys::mount_fs(dev, dir, "ext4", MountFlags::MS_NOATIME, None)
    })
}

/// Removes what an interrupted run left: half-unpacked layers, and the run files of the
/// containers that were running (their own files stay).
pub fn clean_state(state: &Path) {
    if let Ok(entries) = std::fs::read_dir(state.join("layers")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".partial-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    // Containers keep their files across a power-off (until the daemon removes them);
    // nothing runs at boot.
    if let Ok(entries) = std::fs::read_dir(state.join("containers")) {
        for e in entries.flatten() {
            crate::container::state::forget_run(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_disk_of_zeros_is_blank() {
        assert!(is_blank(&[0u8; 4096]));
        let mut ext = vec![0u8; 4096];
        ext[1080] = 0x53;
        ext[1081] = 0xEF;
        assert!(!is_blank(&ext), "an ext superblock");
        assert!(!is_blank(&[]), "nothing read");
    }

    #[test]
    fn cleaning_keeps_finished_layers_and_container_files() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = tmp.path().join("layers");
        std::fs::create_dir_all(layers.join("abc")).unwrap();
        std::fs::create_dir_all(layers.join(".partial-abc-1")).unwrap();
        let container = tmp.path().join("containers/x");
        std::fs::create_dir_all(container.join("upper")).unwrap();
        std::fs::write(container.join("spec.json"), "{}").unwrap();
        std::fs::write(container.join("init.pid"), "7").unwrap();
        clean_state(tmp.path());
        assert!(layers.join("abc").is_dir());
        assert!(!layers.join(".partial-abc-1").exists());
        assert!(container.join("upper").is_dir());
        assert!(!container.join("spec.json").exists() && !container.join("init.pid").exists());
    }
}
