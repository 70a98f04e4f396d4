//! `Exec`: run a process directly in the guest, in a new container, or in a running
//! container (`join`), with its stdio on streams of their own.

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use berth_mux::Stream;
use berth_protocol::{ErrorKind, ExecSpec, ExitStatus, GuestMessage, StdioFd};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;

use super::control::Replies;
use super::Agent;
use super::Connection;
use crate::net::Linking;
use crate::spawn::{self, Process, Started};
use crate::sys;

/// How long the host has to open the stdio streams an `Exec` names.
const STDIO_DEADLINE: Duration = Duration::from_secs(10);
/// How long output may keep draining after the process has ended.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// How long a container's shim may take to end once its network gate closed unopened.
const GATE_DEADLINE: Duration = Duration::from_secs(10);
/// The environment every process starts from.
const DEFAULT_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("TERM", "linux"),
];

pub(super) async fn run(
    agent: Agent,
    conn: Arc<Connection>,
    replies: Replies,
    exec_id: u64,
    spec: ExecSpec,
) {
    use futures::FutureExt;
    let work = std::panic::AssertUnwindSafe(run_inner(&agent, &conn, &replies, exec_id, spec));
    let result = match work.catch_unwind().await {
        Ok(result) => result,
        // The host always gets an answer, even when the agent has a bug.
        Err(_panic) => Err((
            ErrorKind::Internal,
            "the agent failed while running the command".into(),
        )),
    };
    if let Err((kind, message)) = result {
        replies.error(Some(exec_id), kind, message);
    }
}

async fn run_inner(
    agent: &Agent,
    conn: &Connection,
    replies: &Replies,
    exec_id: u64,
    spec: ExecSpec,
) -> Result<(), (ErrorKind, String)> {
    let Some(program) = spec.argv.first() else {
        return Err((ErrorKind::BadRequest, "empty command".into()));
    };
    let stdin = if spec.stdin {
        Some(take(conn, exec_id, StdioFd::Stdin).await?)
    } else {
        None
    };
    let stdout = take(conn, exec_id, StdioFd::Stdout).await?;
    let stderr = take(conn, exec_id, StdioFd::Stderr).await?;

    // `docker exec`: a process in a running container, which it neither sets up nor
    // cleans up.
    let joined = match &spec.join {
        Some(j) => Some(super::join::prepare(agent, j, &spec).await?),
        None => None,
    };
    let (container, linking) = match &spec.container {
        Some(c) => {
            let (shim, linking) = super::spec::container_spec(agent, c, &spec).await?;
            (Some(shim), linking)
        }
        None => (None, Linking::done()),
    };
    // A command in the guest itself (`vm run`) may use the uplink at once.
    if container.is_none() && joined.is_none() {
        agent.net.uplink_settled().await;
    }
    let process = match (&container, &joined) {
        (Some(shim), _) => shim.process().map_err(|e| (ErrorKind::Internal, e))?,
        (None, Some(exec_shim)) => exec_shim.process().map_err(|e| (ErrorKind::Internal, e))?,
        (None, None) => Process {
            program: program.clone(),
            argv0: None,
            args: spec.argv[1..].to_vec(),
            env: environment(&spec.env),
            cwd: Some(spec.cwd.clone().unwrap_or_else(|| "/".into())),
        },
    };
    // A container's terminal comes from its own devpts instance (`/dev/pts/N` inside).
    let devpts = match (&container, &joined) {
        (Some(shim), _) => Some(shim),
        (None, Some(exec_shim)) => Some(&exec_shim.container),
        (None, None) => None,
    }
    .filter(|shim| shim.devpts)
    .map(|shim| shim.pts().join("ptmx"));
    let pty = match spec.tty {
        Some(size) => match &devpts {
            Some(ptmx) => sys::open_pty_at(ptmx, size.rows, size.cols),
            None => sys::open_pty(size.rows, size.cols),
        }
        .map(Some),
        None => Ok(None),
    };
    let pty = match pty {
        Ok(pty) => pty,
        Err(e) => {
            if let Some(shim) = &container {
                super::spec::undo_start(agent, shim, linking).await;
            }
            return Err((ErrorKind::Internal, format!("pseudo-terminal: {e}")));
        }
    };
    // The network gate (see `ShimSpec::network_gate`): the shim's end, and ours.
    let gate = match linking.pending() {
        true => match sys::pipe() {
            Ok(pair) => Some(pair),
            Err(e) => {
                if let Some(shim) = &container {
                    super::spec::undo_start(agent, shim, linking).await;
                }
                return Err((ErrorKind::Internal, format!("the network gate: {e}")));
            }
        },
        false => None,
    };
    let spawned = match &pty {
        // `container_spec` waited for the network of a container on a terminal.
        Some((_, slave)) => spawn_on_terminal(agent, &process, slave),
        None => agent.reaper.launch_passing(
            &process,
            spawn::Stdio::Pipes { stdin: spec.stdin },
            gate.as_ref()
                .map(|(theirs, _)| (theirs.as_fd(), crate::container::NETWORK_GATE_FD)),
        ),
    };
    // Our copy of the pty slave must close, or reading the master never ends.
    let master = pty.map(|(master, _slave)| master);
    let (started, status) = match spawned {
        Ok(s) => s,
        Err(e) => {
            if let Some(shim) = &container {
                super::spec::undo_start(agent, shim, linking).await;
            }
            return Err(spawn_error(program, &e));
        }
    };
    let pid = started.pid;
    let mut status = status;
    if let (Some(shim), Some((_, ours))) = (&container, gate) {
        if let Err(e) = open_gate(linking, ours).await {
            // The gate closed unopened: the container's command does not run, and its
            // shim ends.
            if tokio::time::timeout(GATE_DEADLINE, &mut status)
                .await
                .is_err()
            {
                sys::kill_group(pid);
            }
            crate::container::finish(shim);
            return Err((ErrorKind::Internal, e));
        }
    }
    replies.send(GuestMessage::Started { exec_id, pid });
    conn.pids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(exec_id, pid);

    // Output pumps are drained after the exit; input pumps are dropped at the exit (a
    // terminal's stdin never ends by itself).
    let mut pumps = Vec::new();
    let mut inputs = Vec::new();
    if let Some(master) = master {
        let resize = master
            .try_clone()
            .map_err(|e| (ErrorKind::Internal, e.to_string()))?;
        conn.ttys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(exec_id, resize);
        let device = sys::CharDevice::from_owned(master)
            .map_err(|e| (ErrorKind::Internal, e.to_string()))?;
        let (from_tty, to_tty) = tokio::io::split(device);
        pumps.push(tokio::spawn(pump_tty_out(from_tty, stdout)));
        if let Some(from_host) = stdin {
            inputs.push(tokio::spawn(pump_tty_in(from_host, to_tty)));
        }
        // With a tty, stderr is merged into the terminal: end the stderr stream now.
        let mut stderr = stderr;
        let _ = stderr.shutdown().await;
    } else {
        pump_pipes(&mut pumps, &mut inputs, started, stdin, stdout, stderr);
    }

    let status = status
        .await
        .map_err(|_| (ErrorKind::Internal, "lost track of the process".to_string()))?;
    // What the process left running in its session dies with it, as in a container.
    sys::kill_group(pid);
    for input in inputs {
        input.abort();
    }
    let drained = tokio::time::timeout(DRAIN_DEADLINE, async {
        for p in pumps {
            let _ = p.await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("exec {exec_id}: output still open {DRAIN_DEADLINE:?} after exit; dropped");
    }
    conn.pids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&exec_id);
    conn.ttys
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&exec_id);
    let oom_killed = container.as_ref().is_some_and(|shim| {
        let cgroup = std::path::Path::new(crate::container::CGROUP_PARENT).join(&shim.id);
        crate::container::cgroup::oom_killed(&cgroup)
    });
    let exited = GuestMessage::Exited {
        exec_id,
        status,
        oom_killed,
    };
    match &container {
        Some(shim) => {
            crate::container::finish(shim);
            agent
                .net
                .detach_after(&shim.id, || replies.send(exited))
                .await;
        }
        None => replies.send(exited),
    }
    Ok(())
}

/// Waits for a container's network, then lets its command run (a byte through the gate,
/// `ours`); on failure the gate closes unopened and the error says why. A shim that
/// ended meanwhile (its container's set-up failed) no longer reads the gate: its exit
/// says why, as for any other container.
async fn open_gate(linking: Linking, ours: OwnedFd) -> Result<(), String> {
    linking.wait().await?;
    if let Err(e) = std::fs::File::from(ours).write_all(b"1") {
        tracing::debug!("the network gate: {e}");
    }
    Ok(())
}

async fn take(conn: &Connection, exec_id: u64, fd: StdioFd) -> Result<Stream, (ErrorKind, String)> {
    conn.stdio
        .take(&(exec_id, fd), STDIO_DEADLINE)
        .await
        .ok_or_else(|| {
            (
                ErrorKind::BadRequest,
                format!(
                    "the {fd:?} stream of exec {exec_id} did not arrive within {STDIO_DEADLINE:?}"
                ),
            )
        })
}

/// Maps a spawn failure to Docker's classes: not found (127) or cannot invoke (126).
fn spawn_error(program: &str, e: &io::Error) -> (ErrorKind, String) {
    let kind = match e.raw_os_error() {
        Some(libc::ENOENT) => ErrorKind::NotFound,
        Some(libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::EPERM | libc::ENOTDIR) => {
            ErrorKind::CannotInvoke
        }
        _ => ErrorKind::Internal,
    };
    let what = match kind {
        ErrorKind::NotFound => "executable file not found".to_string(),
        _ => e.to_string(),
    };
    (kind, format!("exec {program:?}: {what}"))
}

/// The environment of a command run directly in the guest: the defaults, then the
/// request's variables; of several with one name, the last one counts.
fn environment(requested: &[String]) -> Vec<String> {
    let defaults = DEFAULT_ENV.iter().map(|(k, v)| format!("{k}={v}"));
    let mut env: Vec<String> = Vec::new();
    for kv in defaults.chain(requested.iter().filter(|kv| kv.contains('=')).cloned()) {
        let name = kv.split_once('=').map(|(name, _)| name.to_string());
        env.retain(|e| e.split_once('=').map(|(n, _)| n) != name.as_deref());
        env.push(kv);
    }
    env
}

/// Starts `process` on the terminal whose slave end is `slave`, as the leader of a new
/// session with that terminal as its controlling one (which takes code in the child, so
/// this is std's fork path rather than [`Reaper::launch`](crate::process::Reaper::launch)).
fn spawn_on_terminal(
    agent: &Agent,
    process: &Process,
    slave: &OwnedFd,
) -> io::Result<(Started, tokio::sync::oneshot::Receiver<ExitStatus>)> {
    let mut cmd = process.command();
    let end = || slave.try_clone().map(std::process::Stdio::from);
    cmd.stdin(end()?).stdout(end()?).stderr(end()?);
    sys::new_session_on_terminal(&mut cmd);
    let (child, status) = agent.reaper.spawn(&mut cmd)?;
    Ok((
        Started {
            pid: child.id(),
            stdin: None,
            stdout: None,
            stderr: None,
        },
        status,
    ))
}

/// Connects a process's stdio pipes to the host's streams.
fn pump_pipes(
    pumps: &mut Vec<tokio::task::JoinHandle<()>>,
    inputs: &mut Vec<tokio::task::JoinHandle<()>>,
    started: Started,
    stdin: Option<Stream>,
    stdout: Stream,
    stderr: Stream,
) {
    if let (Some(from_host), Some(to_process)) = (stdin, started.stdin) {
        inputs.push(tokio::spawn(pump_in(from_host, to_process)));
    }
    if let Some(out) = started.stdout {
        pumps.push(tokio::spawn(pump_out(out, stdout)));
    }
    if let Some(err) = started.stderr {
        pumps.push(tokio::spawn(pump_out(err, stderr)));
    }
}

/// Terminal output to the host. Reading the master fails with EIO once every slave is
/// closed: that is the end of the output.
async fn pump_tty_out(mut from: impl tokio::io::AsyncRead + Unpin, mut to: Stream) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

/// Host keystrokes to the terminal.
async fn pump_tty_in(mut from: Stream, mut to: impl tokio::io::AsyncWrite + Unpin) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
}

async fn pump_out(from: OwnedFd, mut to: Stream) {
    if let Ok(mut rx) = pipe::Receiver::from_owned_fd(from) {
        if let Err(e) = tokio::io::copy(&mut rx, &mut to).await {
            tracing::debug!("output pump ended: {e}");
        }
    }
    let _ = to.shutdown().await;
}

async fn pump_in(mut from: Stream, to: OwnedFd) {
    if let Ok(mut tx) = pipe::Sender::from_owned_fd(to) {
        // EPIPE (the process stopped reading) is normal; either way the pipe closes here.
        let _ = tokio::io::copy(&mut from, &mut tx).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requests_variables_replace_the_defaults_and_the_last_one_counts() {
        let env = environment(&[
            "HOME=/home/u".into(),
            "X=1".into(),
            "X=2".into(),
            "bad".into(),
        ]);
        assert_eq!(
            env,
            [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=linux",
                "HOME=/home/u",
                "X=2"
            ]
        );
    }

    #[test]
    fn spawn_errors_map_to_docker_classes() {
        let nf = spawn_error("nope", &io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(nf.0, ErrorKind::NotFound);
        assert!(nf.1.contains("nope"));
        assert_eq!(
            spawn_error("/etc", &io::Error::from_raw_os_error(libc::EACCES)).0,
            ErrorKind::CannotInvoke
        );
        assert_eq!(
            spawn_error("x", &io::Error::from_raw_os_error(libc::ENOMEM)).0,
            ErrorKind::Internal
        );
    }
}
