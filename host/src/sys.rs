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

/// Reaps our child `pid` if it has ended; does not wait. (For the benches' settling,
/// which adopts orphans as Linux's child subreaper.)
#[cfg(target_os = "linux")]
pub fn reap_if_ended(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid(2) writes only the status integer it is given.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

/// Makes this process the parent of the processes its children leave when they end
/// (Linux's child subreaper), so that it can wait for them.
#[cfg(target_os = "linux")]
pub fn become_subreaper() {
    // SAFETY: prctl(2) with integer arguments only; it touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// What `/proc/PID/stat` says of a process.
#[cfg(any(target_os = "linux", test))]
#[derive(Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// The command name (`comm`: at most 15 bytes of the executable's name).
    pub name: String,
    /// The state letter: `R`, `S`, `Z` (ended, not yet reaped)...
    pub state: char,
    pub parent: u32,
}

/// Reads `/proc/PID/stat`; `None` when there is no such process.
#[cfg(target_os = "linux")]
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_proc_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses a `/proc/PID/stat` line: "PID (COMM) STATE PPID ...", where COMM may hold
/// spaces and parentheses.
#[cfg(any(target_os = "linux", test))]
pub fn parse_proc_stat(stat: &str) -> Option<ProcStat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some(ProcStat {
        name: stat.get(open + 1..close)?.to_string(),
        state,
        parent: rest.next()?.parse().ok()?,
    })
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
    fn stat_lines_give_the_name_state_and_parent() {
        let stat = |name: &str, state, parent| super::ProcStat {
            name: name.into(),
            state,
            parent,
        };
        assert_eq!(
            super::parse_proc_stat("4242 (qemu-system-x86) S 17 4242 4242 0 -1"),
            Some(stat("qemu-system-x86", 'S', 17))
        );
        assert_eq!(
            super::parse_proc_stat("7 (a (b) c) Z 1 7 7"),
            Some(stat("a (b) c", 'Z', 1))
        );
        assert_eq!(super::parse_proc_stat("garbage"), None);
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
