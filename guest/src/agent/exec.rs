//! `Exec`: run a process directly in the guest with its stdio on streams of their own.

use std::io;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use berth_mux::Stream;
use berth_protocol::{ContainerSpec, ErrorKind, ExecSpec, GuestMessage, StdioFd};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;

use super::control::Replies;
use super::Agent;
use super::Connection;
use crate::container::ShimSpec;
use crate::sys;

/// How long the host has to open the stdio streams an `Exec` names.
const STDIO_DEADLINE: Duration = Duration::from_secs(10);
/// How long output may keep draining after the process has ended.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
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

    let container = match &spec.container {
        Some(c) => Some(container_spec(agent, c, &spec)?),
        None => None,
    };
    let mut cmd = match &container {
        Some(shim) => shim.command().map_err(|e| (ErrorKind::Internal, e))?,
        None => {
            let mut cmd = Command::new(program);
            cmd.args(&spec.argv[1..])
                .env_clear()
                .envs(DEFAULT_ENV.iter().copied())
                .envs(spec.env.iter().filter_map(|kv| kv.split_once('=')))
                .current_dir(spec.cwd.as_deref().unwrap_or("/"));
            cmd
        }
    };
    cmd.stdin(if spec.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    sys::new_session_on_spawn(&mut cmd);
    let (mut child, status) = agent
        .reaper
        .spawn(&mut cmd)
        .map_err(|e| spawn_error(program, &e))?;
    let pid = child.id();
    replies.send(GuestMessage::Started { exec_id, pid });
    conn.pids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(exec_id, pid);

    let mut pumps = Vec::new();
    if let (Some(from_host), Some(to_child)) = (stdin, child.stdin.take()) {
        pumps.push(tokio::spawn(pump_in(from_host, to_child.into())));
    }
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump_out(out.into(), stdout)));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump_out(err.into(), stderr)));
    }

    let status = status
        .await
        .map_err(|_| (ErrorKind::Internal, "lost track of the process".to_string()))?;
    // What the process left running in its session dies with it, as in a container.
    sys::kill_group(pid);
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
    if let Some(shim) = &container {
        crate::container::clean_up(shim);
    }
    replies.send(GuestMessage::Exited { exec_id, status });
    Ok(())
}

/// The shim spec of a container: its layers must be in the cache.
fn container_spec(
    agent: &Agent,
    c: &ContainerSpec,
    spec: &ExecSpec,
) -> Result<ShimSpec, (ErrorKind, String)> {
    let valid_id = c.id.len() == 64 && c.id.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid_id {
        return Err((
            ErrorKind::BadRequest,
            format!("bad container id {:?}", c.id),
        ));
    }
    let mut lowerdirs = Vec::new();
    for digest in c.layers.iter().rev() {
        let dir = super::layers::layer_dir(&agent.layers_dir, digest)
            .map_err(|e| (ErrorKind::BadRequest, e))?;
        if !dir.is_dir() {
            return Err((
                ErrorKind::BadRequest,
                format!("layer {digest} is not in the cache"),
            ));
        }
        lowerdirs.push(dir);
    }
    if lowerdirs.is_empty() {
        return Err((
            ErrorKind::BadRequest,
            "a container needs at least one layer".into(),
        ));
    }
    let shim = ShimSpec {
        id: c.id.clone(),
        lowerdirs,
        dir: agent.containers_dir.join(&c.id),
        argv: spec.argv.clone(),
        env: spec.env.clone(),
        cwd: spec.cwd.clone(),
        hostname: c.hostname.clone(),
        user: c.user.clone(),
        resources: c.resources.clone(),
        security: c.security.clone(),
    };
    shim.prepare()
        .map_err(|e| (ErrorKind::Internal, format!("container state: {e}")))?;
    Ok(shim)
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
