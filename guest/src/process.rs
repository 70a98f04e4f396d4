//! Starting processes and collecting their exit status.
//!
//! As PID 1, berth-init inherits every orphan in the VM, so one reaper calls `waitpid(-1)`
//! on each SIGCHLD and hands the status of processes we started to whoever waits for
//! them; orphans are simply reaped. Nothing else may call `wait` (so no `tokio::process`).

use std::collections::HashMap;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use berth_protocol::ExitStatus;
use tokio::sync::oneshot;

use crate::spawn::{Process, Started, Stdio};
use crate::sys::{self, Reaped};

/// Exit-status waiters by pid.
type Table = HashMap<u32, oneshot::Sender<ExitStatus>>;

/// The one place that reaps children. Cheap to clone.
#[derive(Clone, Default)]
pub struct Reaper {
    table: Arc<Mutex<Table>>,
}

impl Reaper {
    /// Starts the reaping task. Must be called inside a tokio runtime, before any spawn.
    pub fn start() -> io::Result<Reaper> {
        let reaper = Reaper::default();
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
        let r = reaper.clone();
        tokio::spawn(async move {
            loop {
                r.reap_all();
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(reaper)
    }

    /// Reaps every ended child while holding the table lock: `spawn` holds it too, and std
    /// waits for the child itself when exec fails, so the reaper must not race that wait.
    fn reap_all(&self) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(reaped) = sys::reap_one() {
            let (pid, status) = match reaped {
                Reaped::Exited(pid, code) => (pid, ExitStatus::Code(code)),
                Reaped::Signaled(pid, sig) => (pid, ExitStatus::Signal(sig)),
            };
            match table.remove(&pid) {
                Some(tx) => {
                    let _ = tx.send(status);
                }
                None => tracing::debug!("reaped orphan {pid}: {status:?}"),
            }
        }
    }

    /// Launches `process` ([`Process::spawn`]) and returns it with a receiver for its exit
    /// status. The table stays locked across the start, so the reaper can neither miss the
    /// new pid nor steal the wait glibc does itself when the exec fails.
    pub fn launch(
        &self,
        process: &Process,
        stdio: Stdio,
    ) -> io::Result<(Started, oneshot::Receiver<ExitStatus>)> {
        self.launch_passing(process, stdio, None)
    }

    /// [`Reaper::launch`] with one more descriptor ([`Process::spawn_passing`]).
    pub fn launch_passing(
        &self,
        process: &Process,
        stdio: Stdio,
        passed: Option<(BorrowedFd<'_>, RawFd)>,
    ) -> io::Result<(Started, oneshot::Receiver<ExitStatus>)> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let started = process.spawn_passing(stdio, passed)?;
        let (tx, rx) = oneshot::channel();
        table.insert(started.pid, tx);
        Ok((started, rx))
    }

    /// Spawns `cmd` (for what [`Reaper::launch`] cannot do: a process on a terminal) and
    /// returns the child with a receiver for its exit status. The table stays locked
    /// across the spawn, as in `launch`, for the wait std does itself when exec fails.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<(Child, oneshot::Receiver<ExitStatus>)> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let child = cmd.spawn()?;
        let (tx, rx) = oneshot::channel();
        table.insert(child.id(), tx);
        Ok((child, rx))
    }
}

/// Tests whose children this process waits for take turns with the reaper's test, whose
/// reaper takes any child of the process.
#[cfg(test)]
pub(crate) static TEST_CHILDREN: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_signals_are_delivered() {
        let _turn = TEST_CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let reaper = Reaper::start().unwrap();
            let (_c, rx) = reaper
                .spawn(Command::new("sh").args(["-c", "exit 3"]))
                .unwrap();
            assert_eq!(rx.await.unwrap(), ExitStatus::Code(3));
            let (_c, rx) = reaper
                .spawn(Command::new("sh").args(["-c", "kill -9 $$"]))
                .unwrap();
            assert_eq!(rx.await.unwrap(), ExitStatus::Signal(9));
            let sh = |script: &str| Process {
                program: "sh".into(),
                argv0: None,
                args: vec!["-c".into(), script.into()],
                env: vec!["PATH=/usr/bin:/bin".into()],
                cwd: None,
            };
            let (_s, rx) = reaper.launch(&sh("exit 4"), Stdio::Null).unwrap();
            assert_eq!(rx.await.unwrap(), ExitStatus::Code(4));
            let mut missing = sh("");
            missing.program = "/no/such/program".into();
            let e = reaper.launch(&missing, Stdio::Null).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
            let (_s, rx) = reaper.launch(&sh("kill -9 $$"), Stdio::Null).unwrap();
            assert_eq!(rx.await.unwrap(), ExitStatus::Signal(9));
        });
    }
}
