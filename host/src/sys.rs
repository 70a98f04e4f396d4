//! The host crate's only `unsafe`: process set-up that std does not offer.

use std::process::Command;

/// Asks the kernel to SIGKILL the child when berth dies, so a killed `berth` never leaves
/// QEMU or a backend behind. Linux only; elsewhere the `Vm` drop guard is the clean-up.
pub fn kill_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
        // async-signal-safe, allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}
