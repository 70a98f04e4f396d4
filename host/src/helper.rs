//! The helper processes a VM needs beside QEMU (the vhost-user vsock backend, a virtiofsd
//! per shared folder): each serves QEMU on a unix socket that must exist before QEMU
//! starts, since QEMU connects to it at start-up. One wait for those sockets, and one
//! stop, for all of them.

use std::path::Path;
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

/// Waits until `child` has created `socket`, checking every `poll`, until `deadline`.
/// A helper that exits, or is still starting at the deadline, is not stopped here: the
/// caller stops it with the others ([`stop_all`]).
pub fn await_socket(
    child: &mut Child,
    socket: &Path,
    deadline: Instant,
    poll: Duration,
) -> Result<(), NotListening> {
    loop {
        if socket.exists() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            // It may have made the socket just before it ended.
            return match socket.exists() {
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

/// Kills and reaps helper processes (those that already ended are only reaped).
pub fn stop_all(started: &mut Vec<Child>) {
    for c in started.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    started.clear();
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
    fn a_helper_that_makes_its_socket_is_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("s.sock");
        let mut child = sh(&format!("sleep 0.1; touch {}; sleep 5", socket.display()));
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(await_socket(&mut child, &socket, deadline, POLL), Ok(()));
        let mut started = vec![child];
        stop_all(&mut started);
        assert!(started.is_empty());
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
        let mut started = vec![child];
        stop_all(&mut started);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the stopped helper is gone"
        );
    }
}
