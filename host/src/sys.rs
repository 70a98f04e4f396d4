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

/// Starts the child in a session of its own (setsid), so it outlives the terminal and
/// the process group of whoever started it: the daemon.
pub fn detach(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs between fork and exec and only calls setsid(2), which
        // is async-signal-safe and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    let _ = cmd;
}

/// Sends `signal` to `pid`; whether the process existed. Signal 0 only checks.
#[cfg(unix)]
pub fn signal_process(pid: u32, signal: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, signal) == 0 }
}
