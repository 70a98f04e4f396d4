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

/// Waits for our child `pid` to end and reaps it; the status is not kept.
#[cfg(unix)]
pub fn reap(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid(2) writes only the status integer it is given.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
}

/// Whether some of what was written to the unix stream socket `fd` still waits in its
/// peer's receive queue, unread (`TIOCOUTQ`, which counts the queued buffers with their
/// overhead, not the bytes). `None` where the kernel cannot say. The caller keeps `fd`
/// open meanwhile (it holds the connection).
#[cfg(target_os = "linux")]
pub fn unread_by_peer(fd: std::os::fd::RawFd) -> Option<bool> {
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int through the pointer, which points at `queued`, alive
    // for the call; on a descriptor that is not a socket the call fails and writes nothing.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
    (rc == 0).then_some(queued > 0)
}

#[cfg(all(unix, not(target_os = "linux")))]
pub fn unread_by_peer(_fd: std::os::fd::RawFd) -> Option<bool> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_unix_socket_has_unread_bytes_until_its_peer_reads_them() {
        let (mut ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(super::unread_by_peer(ours.as_raw_fd()), Some(false));
        ours.write_all(b"HTTP/1.1 101").unwrap();
        assert_eq!(super::unread_by_peer(ours.as_raw_fd()), Some(true));
        let mut buf = [0u8; 12];
        theirs.read_exact(&mut buf).unwrap();
        assert_eq!(super::unread_by_peer(ours.as_raw_fd()), Some(false));
    }

    #[test]
    // The child is reaped by the function under test, not through its `Child`.
    #[allow(clippy::zombie_processes)]
    fn reap_waits_for_the_child_and_leaves_no_zombie() {
        let child = std::process::Command::new("sh")
            .args(["-c", "sleep 0.2"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = std::time::Instant::now();
        super::reap(pid);
        assert!(
            start.elapsed() >= std::time::Duration::from_millis(150),
            "reap returned before the child ended"
        );
        // Reaped: it is no longer our child, and no process of that id is left.
        let mut status = 0;
        // SAFETY: waitpid(2) writes only the status integer it is given.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        assert_eq!(rc, -1, "the child was left to be reaped");
        assert!(
            !super::signal_process(pid, 0),
            "a zombie of the child is left"
        );
    }
}
