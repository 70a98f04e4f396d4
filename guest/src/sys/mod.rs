//! Every syscall berth-init makes, behind small safe wrappers. This is the only module
//! allowed `unsafe`; each block carries a `// SAFETY:` line.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use nix::errno::Errno;
use nix::mount::MsFlags;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod process;

pub use nix::errno::Errno as SysError;
pub use process::*;

/// Mounts `fstype` from `source` on `target`, creating `target` first. Already mounted
/// (`EBUSY`) counts as success.
pub fn mount_fs(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    match nix::mount::mount(Some(source), target, Some(fstype), flags, data) {
        Ok(()) | Err(Errno::EBUSY) => Ok(()),
        Err(e) => Err(io::Error::other(format!("mount {fstype} on {target}: {e}"))),
    }
}

pub use nix::mount::MsFlags as MountFlags;

/// The kind of special file [`make_node`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// Creates a device node or FIFO (never following a symlink at `path`: mknod does not).
pub fn make_node(path: &Path, kind: NodeKind, mode: u32, major: u64, minor: u64) -> io::Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let kind = match kind {
        NodeKind::Char => SFlag::S_IFCHR,
        NodeKind::Block => SFlag::S_IFBLK,
        NodeKind::Fifo => SFlag::S_IFIFO,
    };
    mknod(
        path,
        kind,
        Mode::from_bits_truncate(mode),
        makedev(major, minor),
    )
    .map_err(io::Error::from)
}

/// Sets the modification (and access) time of `path` itself (a symlink is not followed),
/// as a layer's tar header gives it.
pub fn set_mtime(path: &Path, secs: i64) -> io::Result<()> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let t = TimeSpec::new(secs, 0);
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(io::Error::from)
}

/// Sets an extended attribute on `path` itself (a symlink is not followed).
pub fn set_xattr(path: &Path, name: &CStr, value: &[u8]) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: both strings are NUL-terminated CStrings that outlive the call, and `value`
    // is a valid slice whose pointer and length are passed together.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads an extended attribute of `path` itself (a symlink is not followed).
pub fn get_xattr(path: &Path, name: &CStr) -> io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated CStrings that outlive the call; the buffer
    // pointer and its length are passed together, and the kernel writes at most that much.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Loads a kernel module from an open file. A module that is already loaded is success.
pub fn load_module(file: &File, params: &CStr) -> Result<(), Errno> {
    match nix::kmod::finit_module(file, params, nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn set_hostname(name: &str) -> Result<(), Errno> {
    nix::unistd::sethostname(name)
}

pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Flushes every filesystem.
pub fn sync() {
    nix::unistd::sync();
}

/// Makes the file system mounted at `path` read-only: the file system itself, not one
/// bind of it.
pub fn remount_fs_read_only(path: &Path) -> io::Result<()> {
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    nix::mount::mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .map_err(io::Error::from)
}

/// Ends the VM: the host starts QEMU with `-no-reboot` and the kernel with `reboot=t`, so a
/// reboot is the quickest reliable way out on every machine type. Only returns on failure.
pub fn power_off() -> Errno {
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// A new pseudo-terminal of `rows` x `cols`: (master, slave).
pub fn open_pty(rows: u16, cols: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    let size = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(&size, None).map_err(io::Error::from)?;
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(io::Error::from)?;
    }
    Ok((pty.master, pty.slave))
}

/// A new pseudo-terminal of the devpts instance whose `ptmx` is given (a container's
/// own, so the terminal is `/dev/pts/N` inside it): (master, slave), both close-on-exec.
pub fn open_pty_at(ptmx: &Path, rows: u16, cols: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let master: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(ptmx)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", ptmx.display())))?
        .into();
    let unlock: libc::c_int = 0;
    // SAFETY: `master` is an open pty master we own; TIOCSPTLCK reads the int we pass.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TIOCGPTPEER opens the master's slave and returns a new descriptor, which
    // we own from here on.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let slave = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(slave) };
    set_winsize(&master, rows, cols)?;
    Ok((master, slave))
}

/// Detaches the mount at `path`; nothing mounted there counts as done.
pub fn unmount(path: &Path) -> io::Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(io::Error::other(format!(
            "unmounting {}: {e}",
            path.display()
        ))),
    }
}

/// Sets the size of the terminal behind `fd` (its foreground job gets SIGWINCH).
pub fn set_winsize(fd: &OwnedFd, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `fd` is an open descriptor we own and `size` is a valid winsize that
    // outlives the call; TIOCSWINSZ only reads it.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A character device (a virtio-serial port) as a non-blocking tokio stream.
pub struct CharDevice {
    fd: AsyncFd<OwnedFd>,
}

impl CharDevice {
    pub fn open(path: &Path) -> io::Result<CharDevice> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)?;
        Self::from_owned(OwnedFd::from(file))
    }

    /// Wraps an open descriptor (a pty master, say), switching it to non-blocking mode.
    pub fn from_owned(fd: OwnedFd) -> io::Result<CharDevice> {
        let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
            .map_err(io::Error::from)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(io::Error::from)?;
        // SAFETY: the AsyncFd owns `fd` for its whole life, so the descriptor it registers
        // stays open and is not reused until the AsyncFd (and its registration) is dropped.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(CharDevice { fd })
    }
}

impl AsyncRead for CharDevice {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_raw_fd(), unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for CharDevice {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| {
                nix::unistd::write(fd.get_ref().as_fd(), data).map_err(io::Error::from)
            }) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The namespaces the container shim makes for the container's first process: its
/// children are born into the new PID namespace. The mount namespace is made by that
/// process itself ([`unshare_mount_namespace`]), so its pivot_root leaves the shim's root
/// (and the shim's view of /proc) alone. User namespaces are separate: `--userns`. The
/// network, PID, IPC and UTS namespaces are new only when `fresh` says so: otherwise the
/// shim has already joined another ([`enter_netns`], [`join_namespace`]) or keeps the
/// guest's (`--network host`, `--pid host`, ...). The cgroup namespace is always new.
pub fn unshare_container_namespaces(fresh: &[Namespace]) -> io::Result<()> {
    let flags = fresh
        .iter()
        .fold(nix::sched::CloneFlags::CLONE_NEWCGROUP, |f, ns| {
            f | ns.flag()
        });
    nix::sched::unshare(flags).map_err(|e| io::Error::other(format!("unshare: {e}")))
}

/// Gives the calling process a mount namespace of its own.
pub fn unshare_mount_namespace() -> io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| io::Error::other(format!("unshare(CLONE_NEWNS): {e}")))
}

/// Makes every mount private, so nothing done in this mount namespace leaks out.
pub fn make_mounts_private() -> io::Result<()> {
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| io::Error::other(format!("making / private: {e}")))
}

/// Bind-mounts `path` onto itself read-only (Docker's read-only paths).
pub fn remount_read_only(path: &str) -> io::Result<()> {
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    nix::mount::mount(Some(path), path, None::<&str>, bind, None::<&str>)
        .and_then(|_| {
            let flags = MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV;
            nix::mount::mount(Some(path), path, None::<&str>, flags, None::<&str>)
        })
        .map_err(|e| io::Error::other(format!("read-only {path}: {e}")))
}

/// Makes the mount at `path` read-only (that mount only, not the ones below it).
pub fn remount_mount_read_only(path: &Path) -> io::Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    nix::mount::mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .map_err(|e| io::Error::other(format!("read-only root {}: {e}", path.display())))
}

/// Bind-mounts `source` (with the mounts below it) on `target`. Read-only binds are
/// remounted with `MS_RDONLY`, keeping the nosuid, nodev and noexec of the source.
pub fn bind_mount(source: &Path, target: &Path, read_only: bool) -> io::Result<()> {
    let fail = |what: &str, e: Errno| {
        io::Error::other(format!(
            "{what} {} on {}: {e}",
            source.display(),
            target.display()
        ))
    };
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    nix::mount::mount(Some(source), target, None::<&str>, bind, None::<&str>)
        .map_err(|e| fail("bind-mounting", e))?;
    if !read_only {
        return Ok(());
    }
    use nix::sys::statvfs::FsFlags;
    let have = nix::sys::statvfs::statvfs(target)
        .map_err(|e| fail("reading the flags of", e))?
        .flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if have.contains(fs) {
            flags |= ms;
        }
    }
    nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| fail("making read-only the bind of", e))
}

/// Hides `path` (Docker's masked paths): /dev/null over files, an empty read-only tmpfs over
/// directories. Missing paths are fine.
pub fn mask(path: &str) -> io::Result<()> {
    let result = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        ),
        Ok(_) => nix::mount::mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ),
        Err(_) => return Ok(()),
    };
    result.map_err(|e| io::Error::other(format!("masking {path}: {e}")))
}

/// Makes the current directory the root (pivot_root to itself, then detach the old root).
pub fn pivot_to_cwd() -> io::Result<()> {
    nix::unistd::pivot_root(".", ".").map_err(|e| io::Error::other(format!("pivot_root: {e}")))?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| io::Error::other(format!("detaching the old root: {e}")))?;
    std::env::set_current_dir("/")
}

/// Moves the mount at `from` to `to`, then chroots into it (switch_root's core).
pub fn move_root(from: &str) -> io::Result<()> {
    std::env::set_current_dir(from)?;
    nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| io::Error::other(format!("moving {from} to /: {e}")))?;
    nix::unistd::chroot(".").map_err(|e| io::Error::other(format!("chroot: {e}")))?;
    std::env::set_current_dir("/")
}

/// Drops to `uid`/`gid` (supplementary groups cleared).
/// Becomes `uid:gid` with `gid` and `extra` as the supplementary groups.
pub fn set_identity_with_groups(uid: u32, gid: u32, extra: &[u32]) -> io::Result<()> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    let mut groups = vec![Gid::from_raw(gid)];
    groups.extend(extra.iter().map(|g| Gid::from_raw(*g)));
    setgroups(&groups).map_err(io::Error::from)?;
    setgid(Gid::from_raw(gid)).map_err(io::Error::from)?;
    setuid(Uid::from_raw(uid)).map_err(io::Error::from)
}

pub fn set_identity(uid: u32, gid: u32) -> io::Result<()> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    setgroups(&[Gid::from_raw(gid)]).map_err(io::Error::from)?;
    setgid(Gid::from_raw(gid)).map_err(io::Error::from)?;
    setuid(Uid::from_raw(uid)).map_err(io::Error::from)
}

/// Sets no_new_privs: execve can no longer grant privileges (setuid bits, file caps).
pub fn set_no_new_privs() -> io::Result<()> {
    nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)
}

/// A pipe: (read end, write end), both close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// Takes descriptor `fd`, which this process inherited open (a started process's
/// `Process::spawn_passing` one), marked close-on-exec.
///
/// # Errors
/// When `fd` is not open.
pub fn inherited_fd(fd: std::os::fd::RawFd) -> io::Result<OwnedFd> {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| io::Error::other(format!("descriptor {fd}: {e}")))?;
    // SAFETY: `fd` is open (fcntl succeeded) and was passed to this process for it to own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Reads one byte from `fd` within `deadline`: `Ok(true)` when one came, `Ok(false)`
/// when the other end closed first.
pub fn read_one_byte(fd: &OwnedFd, deadline: std::time::Duration) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let started = std::time::Instant::now();
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        let timeout = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nothing within {deadline:?}"),
                ))
            }
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut byte) {
            Ok(n) => return Ok(n == 1),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Moves the calling (single-threaded) process into a new user namespace.
pub fn unshare_user_namespace() -> io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| io::Error::other(format!("unshare(CLONE_NEWUSER): {e}")))
}

/// A namespace a process can join with [`join_namespace`], by its `/proc/<pid>/ns/` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    User,
    Ipc,
    Uts,
    Net,
    Cgroup,
    Pid,
    Mount,
}

impl Namespace {
    /// The file name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Net => "net",
            Namespace::Cgroup => "cgroup",
            Namespace::Pid => "pid",
            Namespace::Mount => "mnt",
        }
    }

    fn flag(self) -> nix::sched::CloneFlags {
        use nix::sched::CloneFlags;
        match self {
            Namespace::User => CloneFlags::CLONE_NEWUSER,
            Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
            Namespace::Uts => CloneFlags::CLONE_NEWUTS,
            Namespace::Net => CloneFlags::CLONE_NEWNET,
            Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            Namespace::Pid => CloneFlags::CLONE_NEWPID,
            Namespace::Mount => CloneFlags::CLONE_NEWNS,
        }
    }
}

/// Moves the calling process into the namespace `fd` refers to (an open
/// `/proc/<pid>/ns/<name>`); the kernel checks that `fd` is a namespace of kind `ns`.
/// Only for single-threaded processes: mount and user namespaces refuse others. A PID
/// namespace applies to children forked afterwards; a mount namespace also moves the
/// root and working directory to that namespace's root.
pub fn join_namespace(fd: &File, ns: Namespace) -> io::Result<()> {
    nix::sched::setns(fd.as_fd(), ns.flag())
        .map_err(|e| io::Error::other(format!("setns({}): {e}", ns.proc_name())))
}

/// Makes a new network namespace and keeps it alive by bind-mounting it on `path` (an
/// empty file is created there), as `ip netns add` does, then runs `then` inside it (to
/// set it up, or open netlink sockets there: a socket stays in the namespace it was made
/// in). All on one short-lived thread of its own, so no thread of the agent changes
/// namespace; the caller awaits it without blocking a runtime worker. On failure nothing
/// is left at `path`.
pub async fn create_netns<T: Send + 'static>(
    path: &Path,
    then: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    File::create(path)?;
    let target = path.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let made = (|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("unshare(CLONE_NEWNET): {e}")))?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| io::Error::other(format!("bind-mounting the network namespace: {e}")))?;
            then()
        })();
        let _ = tx.send(made);
    });
    let made = rx
        .await
        .map_err(|_| io::Error::other("the network namespace thread panicked"))
        .and_then(|made| made);
    if made.is_err() {
        let _ = remove_netns(path);
    }
    made
}

/// Runs `f` on a thread of its own in a new network namespace (for tests): `None` where
/// making one is not allowed (not root).
#[cfg(test)]
pub fn in_new_netns<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<Option<T>> {
    std::thread::spawn(
        move || match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            Ok(()) => f().map(Some),
            Err(Errno::EPERM) => Ok(None),
            Err(e) => Err(e.into()),
        },
    )
    .join()
    .expect("the test's namespace thread panicked")
}

/// Undoes [`create_netns`]: the namespace ends once nothing else holds it.
pub fn remove_netns(path: &Path) -> io::Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(io::Error::other(format!(
                "unmounting {}: {e}",
                path.display()
            )))
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Runs `f` on a fresh thread that has entered the network namespace at `path`; for
/// opening netlink sockets there (a socket stays in the namespace it was made in).
pub fn in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = File::open(path)?;
    std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| io::Error::other(format!("setns(net): {e}")))?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}

/// Enters the network namespace at `path` (the container shim, before it forks).
pub fn enter_netns(path: &Path) -> io::Result<()> {
    let ns = File::open(path)?;
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::other(format!("joining network namespace {}: {e}", path.display())))
}

#[cfg(test)]
mod gate_tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    #[test]
    fn one_byte_opens_a_gate_and_a_closed_end_does_not() {
        let (rd, wr) = pipe().unwrap();
        std::fs::File::from(wr).write_all(b"1").unwrap();
        assert!(read_one_byte(&rd, Duration::from_secs(5)).unwrap());

        let (rd, wr) = pipe().unwrap();
        drop(wr);
        assert!(!read_one_byte(&rd, Duration::from_secs(5)).unwrap());

        let (rd, _wr) = pipe().unwrap();
        let e = read_one_byte(&rd, Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    }
}
