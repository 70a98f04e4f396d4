//! The helper processes a VM needs beside QEMU (the vhost-user vsock backend, a virtiofsd
//! per shared folder): each serves QEMU on a unix socket that must exist before QEMU
//! starts, since QEMU connects to it at start-up. One wait for those sockets, one stop,
//! and one account of those that ended, for all of them.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Why a helper's socket never appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotListening {
    /// The helper ended first.
    Exited(ExitStatus),
    /// It still ran at the deadline.
    TimedOut,
}

impl NotListening {
    /// The failure as a sentence about `helper` (say, "virtiofsd for ~/src").
    pub fn describe(&self, helper: &str, socket: &Path, waited: Duration) -> String {
        match self {
            NotListening::Exited(status) => {
                format!("{helper} exited ({status}) before it listened on its socket")
            }
            NotListening::TimedOut => format!(
                "{helper} did not listen on {} within {waited:?}",
                socket.display()
            ),
        }
    }
}

/// Waits until `child` listens on `socket`, checking every `poll`, until `deadline`.
/// A helper that exits, or is still starting at the deadline, is not stopped here: the
/// caller stops it with the others ([`stop_all`]).
pub fn await_socket(
    child: &mut Child,
    socket: &Path,
    deadline: Instant,
    poll: Duration,
) -> Result<(), NotListening> {
    loop {
        if listening(socket) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            // It may have listened just before it ended.
            return match listening(socket) {
                true => Ok(()),
                false => Err(NotListening::Exited(status)),
            };
        }
        if Instant::now() >= deadline {
            return Err(NotListening::TimedOut);
        }
        std::thread::sleep(poll);
    }
}

/// Whether a unix socket bound at `path` accepts connections. Its file exists from its
/// bind(2) on, but a connect is refused until its listen(2): QEMU, started in between,
/// failed with "Failed to connect to ...: Connection refused" (seen for a virtiofsd on a
/// busy host). A probe connection cannot tell instead: these helpers serve the first
/// connection they accept and end with it. On Linux the kernel's table of unix sockets
/// says which are listening; elsewhere the file is all there is to see.
fn listening(path: &Path) -> bool {
    #[cfg(target_os = "linux")]
    if let Ok(table) = std::fs::read_to_string("/proc/net/unix") {
        return listening_in(&table, path);
    }
    path.exists()
}

/// Whether `/proc/net/unix`'s `table` has a listening socket bound at `path`.
#[cfg(any(target_os = "linux", test))]
fn listening_in(table: &str, path: &Path) -> bool {
    /// `__SO_ACCEPTCON`, in the table's Flags column: listen(2) was called.
    const ACCEPTING: u32 = 1 << 16;
    let wanted = path.as_os_str().as_encoded_bytes();
    table.lines().skip(1).any(|line| {
        // "Num: RefCount Protocol Flags Type St Inode Path", the path last (unbound
        // sockets have none) and preceded by one space.
        let mut rest = line;
        let mut flags = None;
        for field in 0..7 {
            rest = rest.trim_start();
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if field == 3 {
                flags = u32::from_str_radix(&rest[..end], 16).ok();
            }
            rest = &rest[end..];
        }
        let bound = rest.strip_prefix(' ').unwrap_or_default();
        flags.is_some_and(|f| f & ACCEPTING != 0) && bound.as_bytes() == wanted
    })
}

/// Kills and reaps a helper process (one that already ended is only reaped).
pub fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A helper a VM runs for its whole life (a virtiofsd), with its name for messages and
/// the file its output goes to.
pub struct Helper {
    pub child: Child,
    /// Says which one it is: "virtiofsd for /home/ann".
    pub name: String,
    /// What the guest knows its service by: a shared folder's tag.
    pub tag: String,
    pub log: PathBuf,
    /// Whether its end was already reported ([`newly_ended`]).
    reported: bool,
}

impl Helper {
    pub fn new(child: Child, name: String, tag: String, log: PathBuf) -> Helper {
        Helper {
            child,
            name,
            tag,
            log,
            reported: false,
        }
    }

    /// "virtiofsd for /tmp ended (signal: 9 (SIGKILL))", once it has ended.
    fn end(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        Some(format!("{} ended ({status})", self.name))
    }
}

/// A helper that ended while its VM ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub tag: String,
    /// "virtiofsd for /tmp ended (signal: 9 (SIGKILL))".
    pub what: String,
}

/// The helpers that have ended since the last call, each reported once.
pub fn newly_ended(helpers: &mut [Helper]) -> Vec<Ended> {
    let mut ended = Vec::new();
    for h in helpers.iter_mut().filter(|h| !h.reported) {
        if let Some(what) = h.end() {
            h.reported = true;
            ended.push(Ended {
                tag: h.tag.clone(),
                what,
            });
        }
    }
    ended
}

/// Kills and reaps helpers, and forgets them.
pub fn stop_all(helpers: &mut Vec<Helper>) {
    for h in helpers.iter_mut() {
        stop(&mut h.child);
    }
    helpers.clear();
}

/// For an error about the VM they served: each helper that has ended, with its exit
/// status and the last `lines` of its log. A VM whose QEMU died, or whose guest lost a
/// shared folder, may have lost it because one ended; those still running say nothing.
pub fn ended(helpers: &mut [Helper], lines: usize) -> String {
    let mut out = String::new();
    for h in helpers.iter_mut() {
        if let Some(what) = h.end() {
            out.push_str(&format!("--- {what}; its log ends ---\n"));
            let log = crate::vm::last_lines(&h.log, lines);
            match log.trim().is_empty() {
                true => out.push_str("(empty)\n"),
                false => out.push_str(&log),
            }
        }
    }
    out
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::process::Command;

    const POLL: Duration = Duration::from_millis(2);

    fn sh(script: &str) -> Child {
        Command::new("sh").args(["-c", script]).spawn().unwrap()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_helper_is_waited_for_until_its_socket_listens_not_only_exists() {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("s.sock");
        let mut child = sh("sleep 5");
        // The helper's part, played here: bind (the file appears), then listen later.
        let path = socket.clone();
        let helper = std::thread::spawn(move || {
            // SAFETY: a new socket, owned at once.
            let fd =
                unsafe { OwnedFd::from_raw_fd(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)) };
            // SAFETY: all zeros is a valid (empty) sockaddr_un.
            let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            for (d, s) in addr
                .sun_path
                .iter_mut()
                .zip(path.as_os_str().as_encoded_bytes())
            {
                *d = *s as libc::c_char;
            }
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: a valid address of its own size.
            let bound = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                )
            };
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            assert!(path.exists());
            std::thread::sleep(Duration::from_millis(300));
            let listened = Instant::now();
            // SAFETY: a bound socket.
            assert_eq!(unsafe { libc::listen(fd.as_raw_fd(), 1) }, 0);
            (fd, listened)
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(await_socket(&mut child, &socket, deadline, POLL), Ok(()));
        let returned = Instant::now();
        let (_fd, listened) = helper.join().unwrap();
        assert!(
            returned >= listened,
            "the wait ended while the socket was bound but not listening: QEMU's connect \
             would have been refused"
        );
        stop(&mut child);
    }

    #[test]
    fn the_kernels_table_tells_a_listening_socket_from_a_bound_one() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 23456 /run/a.sock\n\
            0000000000000000: 00000002 00000000 00000000 0001 01  7890 /run/b.sock\n\
            0000000000000000: 00000003 00000000 00000000 0001 03  7891\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 23457 /home/ann/my vms/c.sock\n";
        assert!(listening_in(table, Path::new("/run/a.sock")));
        assert!(
            !listening_in(table, Path::new("/run/b.sock")),
            "bound, not listening"
        );
        assert!(!listening_in(table, Path::new("/run/a")), "another path");
        assert!(listening_in(table, Path::new("/home/ann/my vms/c.sock")));
        assert!(!listening_in(table, Path::new("/run/missing.sock")));
    }

    #[test]
    fn a_helper_that_exits_first_is_named_with_its_status() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("s.sock");
        let mut child = sh("exit 3");
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = await_socket(&mut child, &socket, deadline, POLL).unwrap_err();
        assert!(matches!(err, NotListening::Exited(s) if s.code() == Some(3)));
        let text = err.describe("virtiofsd for /src", &socket, Duration::from_secs(5));
        assert_eq!(
            text,
            "virtiofsd for /src exited (exit status: 3) before it listened on its socket"
        );
    }

    #[test]
    fn a_helper_still_starting_at_the_deadline_times_out_and_is_stopped() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("s.sock");
        let mut child = sh("sleep 30");
        let deadline = Instant::now() + Duration::from_millis(50);
        let err = await_socket(&mut child, &socket, deadline, POLL).unwrap_err();
        assert_eq!(err, NotListening::TimedOut);
        let text = err.describe("vhost-device-vsock", &socket, Duration::from_millis(50));
        assert!(
            text.contains("did not listen on") && text.contains("s.sock"),
            "{text}"
        );
        let pid = child.id();
        let mut started = vec![Helper::new(
            child,
            "vhost-device-vsock".into(),
            String::new(),
            tmp.path().join("none.log"),
        )];
        stop_all(&mut started);
        assert!(started.is_empty());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the stopped helper is gone"
        );
    }

    #[test]
    fn a_vm_error_tells_which_helpers_ended_and_what_they_said_last() {
        let tmp = tempfile::tempdir().unwrap();
        let log = |name: &str, text: &str| {
            let path = tmp.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let mut helpers = vec![
            Helper::new(
                sh("exit 1"),
                "virtiofsd for /home/ann".into(),
                "berth0".into(),
                log(
                    "a.log",
                    "starting\n[ERROR virtiofsd] cannot open /home/ann\n",
                ),
            ),
            Helper::new(
                sh("sleep 30"),
                "virtiofsd for /tmp".into(),
                "berth1".into(),
                log("b.log", "Waiting for vhost-user socket connection...\n"),
            ),
            Helper::new(
                sh("kill -9 $$"),
                "virtiofsd for /srv".into(),
                "berth2".into(),
                tmp.path().join("never-written.log"),
            ),
        ];
        let deadline = Instant::now() + Duration::from_secs(5);
        let report = loop {
            let report = ended(&mut helpers, 5);
            if report.matches(" ended (").count() == 2 || Instant::now() > deadline {
                break report;
            }
            std::thread::sleep(POLL);
        };
        assert_eq!(
            report,
            "--- virtiofsd for /home/ann ended (exit status: 1); its log ends ---\n\
             starting\n[ERROR virtiofsd] cannot open /home/ann\n\
             --- virtiofsd for /srv ended (signal: 9 (SIGKILL)); its log ends ---\n\
             (empty)\n",
            "the ended helpers, with their status and log; not the running one"
        );
        assert_eq!(
            newly_ended(&mut helpers),
            vec![
                Ended {
                    tag: "berth0".into(),
                    what: "virtiofsd for /home/ann ended (exit status: 1)".into()
                },
                Ended {
                    tag: "berth2".into(),
                    what: "virtiofsd for /srv ended (signal: 9 (SIGKILL))".into()
                },
            ]
        );
        assert_eq!(
            newly_ended(&mut helpers),
            vec![],
            "each end is reported once"
        );
        stop_all(&mut helpers);
    }
}
