//! `Exec` with `join` (`docker exec`): finds the running container and describes the
//! exec shim that enters it (`container::join`). A builtin (`docker cp`) on a container
//! that is not running works on its files instead, laid out from the host's spec.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_protocol::{ErrorKind, ExecSpec, JoinSpec};

use super::Agent;
use crate::container::{self, state, ExecShimSpec, CGROUP_PARENT};

/// How long a container that is still starting (spec saved, command not yet exec'd) may
/// take before an exec into it is refused.
const START_DEADLINE: Duration = Duration::from_secs(5);
const START_POLL: Duration = Duration::from_millis(20);

/// The exec shim's spec for `join`, or the `Error` to answer: a container that is not
/// running (or paused) is a bad request.
pub(super) async fn prepare(
    agent: &Agent,
    join: &JoinSpec,
    spec: &ExecSpec,
) -> Result<ExecShimSpec, (ErrorKind, String)> {
    if spec.container.is_some() {
        return Err((
            ErrorKind::BadRequest,
            "an exec cannot both start a container and join one".into(),
        ));
    }
    if !container::valid_id(&join.id) {
        return Err((
            ErrorKind::BadRequest,
            format!("bad container id {:?}", join.id),
        ));
    }
    let short = &join.id[..12];
    let not_running = || {
        (
            ErrorKind::BadRequest,
            format!("container {short} is not running"),
        )
    };
    let internal = |e: std::io::Error| {
        (
            ErrorKind::Internal,
            format!("state of container {short}: {e}"),
        )
    };
    let dir = agent.containers_dir.join(&join.id);
    if let Some(stopped) = &join.stopped {
        let running = state::load_spec(&dir).map_err(internal)?.is_some();
        if !running {
            return stopped_files(agent, join, stopped, spec);
        }
    }
    let deadline = Instant::now() + START_DEADLINE;
    let (running, init_pid) = loop {
        let running = state::load_spec(&dir)
            .map_err(internal)?
            .ok_or_else(not_running)?;
        match state::load_init_pid(&dir).map_err(internal)? {
            Some(pid) => break (running, pid),
            None if Instant::now() < deadline => tokio::time::sleep(START_POLL).await,
            None => return Err(not_running()),
        }
    };
    if !state::is_container_process(Path::new("/proc"), init_pid, &join.id) {
        return Err(not_running());
    }
    let cgroup = Path::new(CGROUP_PARENT).join(&join.id);
    // Reading a container's changes does not enter it: a paused one is fine (commit
    // pauses it on purpose).
    let reads_changes = matches!(
        join.builtin,
        Some(berth_protocol::Builtin::LayerTar | berth_protocol::Builtin::Changes)
    );
    if !reads_changes && container::cgroup::is_frozen(&cgroup).unwrap_or(false) {
        return Err((
            ErrorKind::BadRequest,
            format!("container {short} is paused, unpause the container before exec"),
        ));
    }
    Ok(ExecShimSpec {
        container: running,
        init_pid: Some(init_pid),
        argv: spec.argv.clone(),
        env: spec.env.clone(),
        cwd: spec.cwd.clone(),
        user: join.user.clone(),
        privileged: join.privileged,
        builtin: join.builtin.clone(),
    })
}

/// The exec shim's spec for a builtin on the files of a container that is not running.
fn stopped_files(
    agent: &Agent,
    join: &JoinSpec,
    stopped: &berth_protocol::ContainerSpec,
    spec: &ExecSpec,
) -> Result<ExecShimSpec, (ErrorKind, String)> {
    if join.builtin.is_none() {
        return Err((
            ErrorKind::BadRequest,
            format!("container {} is not running", &join.id[..12]),
        ));
    }
    if stopped.id != join.id {
        return Err((
            ErrorKind::BadRequest,
            "the stopped container's spec names another container".into(),
        ));
    }
    Ok(ExecShimSpec {
        container: super::spec::stopped_spec(agent, stopped)?,
        init_pid: None,
        argv: spec.argv.clone(),
        env: Vec::new(),
        cwd: None,
        user: None,
        privileged: true,
        builtin: join.builtin.clone(),
    })
}
