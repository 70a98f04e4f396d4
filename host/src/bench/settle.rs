//! Measured commands one after the other, never two VMs at once. `vm run` returns while
//! the host's kernel still frees the memory of the VM it killed (`Vm::finish`), and the
//! QEMU it leaves is reparented; a measure that started the next command at once would
//! run beside that teardown. So this process adopts what its commands leave behind (a
//! Linux child subreaper) and, untimed, waits for those QEMUs to end before the next
//! measured command. Elsewhere both are no-ops. Other processes adopted so (a machine's
//! daemon, once it stops) stay zombies until this process ends; `machine::process_alive`
//! counts a zombie as ended.

use std::time::Duration;

/// How long a QEMU left behind may take to end before a measure fails.
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(10);

/// Makes this process the parent of the processes its children leave when they end, so
/// that [`settle`] can wait for them. Call it before the first measured command.
pub fn adopt_orphans() {
    #[cfg(target_os = "linux")]
    crate::sys::become_subreaper();
}

/// Waits until no QEMU that a finished command left to this process is left running,
/// within `deadline`; the error names the ones still there.
pub fn settle(deadline: Duration) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        let start = std::time::Instant::now();
        loop {
            let left = adopted_vms();
            if left.is_empty() {
                return Ok(());
            }
            for &pid in &left {
                crate::sys::reap_if_ended(pid);
            }
            if start.elapsed() > deadline {
                return Err(format!(
                    "the VMs (QEMU process ids {left:?}) that a measured command left behind did not end within {deadline:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = deadline;
        Ok(())
    }
}

/// This process's children that are QEMUs (ended or not, until reaped).
#[cfg(target_os = "linux")]
fn adopted_vms() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = crate::sys::proc_stat(pid)?;
            (stat.parent == me && stat.name.starts_with("qemu-system")).then_some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a shell that leaves an orphan named like QEMU, sleeping `secs`, and returns
    /// once this process has adopted it (it may still be between the shell's fork and
    /// its exec for a moment).
    #[cfg(target_os = "linux")]
    fn leave_vm_behind(fake: &std::path::Path, secs: &str) {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{} {secs} &", fake.display()))
            .status()
            .unwrap();
        assert!(status.success());
        let start = std::time::Instant::now();
        while adopted_vms().is_empty() && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(adopted_vms().len(), 1, "the orphan was not adopted");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn settle_waits_for_a_vm_left_behind() {
        adopt_orphans();
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qemu-system-x86_64");
        std::os::unix::fs::symlink("/bin/sleep", &fake).unwrap();
        leave_vm_behind(&fake, "0.3");
        let start = std::time::Instant::now();
        settle(SETTLE_DEADLINE).unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "settle returned while the VM left behind still ran"
        );
        assert!(adopted_vms().is_empty());
        // One that does not end in time is an error that says so.
        leave_vm_behind(&fake, "2");
        let e = settle(Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("did not end within"), "{e}");
        settle(SETTLE_DEADLINE).unwrap();
    }
}
