//! The syscalls about processes and signals: starting (posix_spawn, a single-threaded
//! fork, exec), sessions and terminals, signal masks and dispositions, reaping.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Gives process `pid` the lowest scheduling priority (nice 19); the children it forks
/// from then on inherit it.
pub fn lowest_priority(pid: u32) -> io::Result<()> {
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, 19) };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Sends `signal` to every process but ourselves (PID 1 is exempt from kill(-1)).
pub fn kill_all(signal: Signal) {
    let _ = nix::sys::signal::kill(Pid::from_raw(-1), signal);
}

/// Reaps children until none is left (as PID 1, every orphan is one) or `deadline`
/// passes. Whoever else reaps meanwhile (the agent's reaper) only makes it end sooner.
pub fn reap_all(deadline: std::time::Duration) {
    let start = std::time::Instant::now();
    loop {
        match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::StillAlive) if start.elapsed() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(1))
            }
            Ok(WaitStatus::StillAlive) => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Sends `signal` (a raw number from the host) to `pid`.
pub fn send_signal(pid: u32, signal: i32) -> Result<(), Errno> {
    let signal = Signal::try_from(signal)?;
    nix::sys::signal::kill(Pid::from_raw(pid as i32), signal)
}

/// Sends SIGKILL to the process group `pgid` (our children lead their own groups).
pub fn kill_group(pgid: u32) {
    let _ = nix::sys::signal::killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
}

/// One reaped child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    Exited(u32, i32),
    Signaled(u32, i32),
}

/// Reaps one terminated child without blocking; `None` when no child has ended.
pub fn reap_one() -> Option<Reaped> {
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                return Some(Reaped::Exited(pid.as_raw() as u32, code))
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                return Some(Reaped::Signaled(pid.as_raw() as u32, sig as i32))
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return None,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Makes the child of `cmd` lead a new session (and so a new process group), so signals
/// and the final clean-up reach everything it started, with its stdin (a pty slave) as
/// the session's terminal. (A process without a terminal is started by posix_spawn, which
/// makes the session itself: `crate::spawn`.)
pub fn new_session_on_terminal(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls setsid(2) and
    // ioctl(2), which are async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid().map_err(io::Error::from)?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// When stdin is a terminal: starts a new session and makes that terminal its controlling
/// terminal, taking it from the parent's session (the container shim's), as runc does.
pub fn take_terminal() -> io::Result<()> {
    if !nix::unistd::isatty(0).unwrap_or(false) {
        return Ok(());
    }
    nix::unistd::setsid().map_err(io::Error::from)?;
    // SAFETY: TIOCSCTTY takes an integer argument (1: steal from another session) and
    // touches no memory of ours.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 1) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Which side of a fork we are on.
pub enum Forked {
    Parent(u32),
    Child,
}

/// Forks the calling process. Only for single-threaded processes (the container shim):
/// with other threads alive, the child could inherit locks held by them.
pub fn fork_single_threaded() -> io::Result<Forked> {
    // SAFETY: callers are single-threaded (documented above), so the child cannot
    // inherit a lock or allocator state held by another thread.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw() as u32)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Replaces the process image; returns only on failure.
pub fn exec(path: &CStr, argv: &[std::ffi::CString], env: &[std::ffi::CString]) -> io::Error {
    match nix::unistd::execve(path, argv, env) {
        Err(e) => io::Error::from(e),
        Ok(never) => match never {},
    }
}

/// The signals a container shim passes on to its container.
pub const FORWARDED_SIGNALS: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

fn shim_sigset() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in FORWARDED_SIGNALS {
        set.add(*s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Blocks the forwarded signals and SIGCHLD, to be taken with [`wait_signal`].
pub fn block_shim_signals() -> io::Result<()> {
    shim_sigset().thread_block().map_err(io::Error::from)
}

/// Puts every signal back at its default action and unblocks them all: a container
/// process starts as Docker's do, with nothing ignored (the shim, a Rust program, ignores
/// SIGPIPE, and an ignored signal stays ignored across exec) and nothing blocked.
pub fn clean_signals() -> io::Result<()> {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // The kernel's own struct sigaction, all zeroes: SIG_DFL, no flags, empty mask.
        // The raw call, as glibc's sigaction refuses its two internal signals.
        let dfl = [0u64; 4];
        // SAFETY: rt_sigaction reads a valid, zeroed struct and writes nothing back (no
        // old action asked for); 8 is the size of the kernel's signal set.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    nix::sys::signal::SigSet::all()
        .thread_unblock()
        .map_err(io::Error::from)
}

/// Waits for one of the blocked shim signals.
pub fn wait_signal() -> io::Result<Signal> {
    shim_sigset().wait().map_err(io::Error::from)
}

/// Sends `signal` to `pid`; a process that is gone is not an error.
pub fn forward_signal(pid: u32, signal: Signal) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), signal);
}

/// Reaps `pid` if it has ended.
pub fn try_reap(pid: u32) -> Option<Reaped> {
    match nix::sys::wait::waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(p, code)) => Some(Reaped::Exited(p.as_raw() as u32, code)),
        Ok(WaitStatus::Signaled(p, sig, _)) => {
            Some(Reaped::Signaled(p.as_raw() as u32, sig as i32))
        }
        _ => None,
    }
}

/// Ends the process the way `signal` would (default action), so the parent sees the same
/// "killed by signal" status; exits 128+N if the signal does not kill.
pub fn die_by_signal(signal: i32) -> ! {
    if let Ok(sig) = Signal::try_from(signal) {
        // SAFETY: restoring the default disposition installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
        let _ = clean_signals();
        let _ = nix::sys::signal::raise(sig);
    }
    std::process::exit(128 + signal)
}

/// posix_spawn(3) of `path` in a new session, every signal at its default and none
/// blocked, with `stdio` as its descriptors 0-2 and in `cwd` when given. The exec's
/// failure is this call's error (glibc reaps that child itself). See `crate::spawn`.
pub fn posix_spawn(
    path: &CStr,
    argv: &[CString],
    envp: &[CString],
    cwd: Option<&CStr>,
    stdio: [BorrowedFd<'_>; 3],
    passed: Option<(BorrowedFd<'_>, RawFd)>,
) -> io::Result<u32> {
    // posix_spawn's functions return the error number itself.
    let check = |rc: libc::c_int| match rc {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    };
    let argv: Vec<*mut libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    let envp: Vec<*mut libc::c_char> = envp
        .iter()
        .map(|a| a.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    let flags = libc::POSIX_SPAWN_SETSID as libc::c_int
        | libc::POSIX_SPAWN_SETSIGMASK as libc::c_int
        | libc::POSIX_SPAWN_SETSIGDEF as libc::c_int;
    // SAFETY: both objects are initialised before use and destroyed once, after the
    // call; every pointer handed over (strings, the NULL-terminated arrays, the signal
    // sets) outlives the calls that read it.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        if let Err(e) = check(libc::posix_spawnattr_init(&mut attr)) {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(e);
        }
        let spawned = (|| -> io::Result<libc::pid_t> {
            for (target, fd) in stdio.iter().enumerate() {
                check(libc::posix_spawn_file_actions_adddup2(
                    &mut actions,
                    fd.as_raw_fd(),
                    target as libc::c_int,
                ))?;
            }
            // After the stdio ones: a descriptor passed as `target` (above 2) is not
            // overwritten by them.
            if let Some((fd, target)) = passed {
                check(libc::posix_spawn_file_actions_adddup2(
                    &mut actions,
                    fd.as_raw_fd(),
                    target,
                ))?;
            }
            if let Some(dir) = cwd {
                check(libc::posix_spawn_file_actions_addchdir_np(
                    &mut actions,
                    dir.as_ptr(),
                ))?;
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            // Every signal 1-64: sigfillset leaves out glibc's two internal ones, which its
            // posix_spawn would then leave ignored in the child, and across its exec.
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            *(&mut all as *mut libc::sigset_t as *mut u64) = u64::MAX;
            check(libc::posix_spawnattr_setsigmask(&mut attr, &none))?;
            check(libc::posix_spawnattr_setsigdefault(&mut attr, &all))?;
            check(libc::posix_spawnattr_setflags(
                &mut attr,
                flags as libc::c_short,
            ))?;
            let mut pid: libc::pid_t = 0;
            check(libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                envp.as_ptr(),
            ))?;
            Ok(pid)
        })();
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        spawned.map(|pid| pid as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of `pid`: the 19th field of /proc/PID/stat (after the command's
    /// closing parenthesis, the 17th).
    fn nice(pid: u32) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn the_lowest_priority_is_nice_19() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        assert_eq!(nice(child.id()), nice(std::process::id()));
        lowest_priority(child.id()).unwrap();
        let got = nice(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(got, 19, "the warm-up container's priority");
    }
}
