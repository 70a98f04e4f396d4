//! `Container` requests about a running container: freeze and thaw (the cgroup v2
//! freezer), stats (its cgroup counters) and top (its processes). Each runs on the
//! blocking pool, off the control loop, and is answered by exactly one `ContainerReply`,
//! a failure or a panic included.

use std::path::Path;
use std::time::Duration;

use berth_protocol::{ContainerOp, ContainerResult, GuestMessage};

use super::control::Replies;
use crate::container::{self, cgroup, CGROUP_PARENT};

/// How long freezing or thawing may take before the request fails.
const FREEZE_DEADLINE: Duration = Duration::from_secs(5);
/// A container the host was just told started may still be making its cgroup: how
/// long a request waits for it.
const CGROUP_DEADLINE: Duration = Duration::from_secs(5);

/// Connects or disconnects running container `id` (`op` is `Connect` or
/// `Disconnect`); the reply comes when its interface is up or gone.
pub(super) fn spawn_network(
    replies: Replies,
    net: std::sync::Arc<crate::net::Net>,
    request_id: u64,
    id: String,
    op: ContainerOp,
) {
    tokio::spawn(async move {
        let done = match &op {
            ContainerOp::Connect(a) => net.connect(&id, a).await,
            ContainerOp::Disconnect { network_id } => net.disconnect(&id, network_id).await,
            other => Err(format!("{other:?} is not a network change")),
        };
        let result = match done {
            Ok(()) => ContainerResult::Done,
            Err(message) => ContainerResult::Failed { message },
        };
        replies.send(GuestMessage::ContainerReply { request_id, result });
    });
}

/// Starts `op` on container `id`; the reply comes when it is done.
pub(super) fn spawn(replies: Replies, request_id: u64, id: String, op: ContainerOp) {
    tokio::spawn(async move {
        let work = tokio::task::spawn_blocking(move || {
            let dir = Path::new(CGROUP_PARENT).join(&id);
            let deadline = std::time::Instant::now() + CGROUP_DEADLINE;
            while container::valid_id(&id) && !dir.is_dir() && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            run(Path::new(CGROUP_PARENT), Path::new("/proc"), &id, op)
        });
        let result = work.await.unwrap_or_else(|_panic| ContainerResult::Failed {
            message: "the agent failed while handling the request".into(),
        });
        replies.send(GuestMessage::ContainerReply { request_id, result });
    });
}

/// Carries out `op` on the container whose cgroup is `parent/id`, reading processes
/// under `proc`. Blocks (freezing waits for the kernel).
pub fn run(parent: &Path, proc: &Path, id: &str, op: ContainerOp) -> ContainerResult {
    let dir = parent.join(id);
    if !container::valid_id(id) || !dir.is_dir() {
        return ContainerResult::Failed {
            message: format!("no such container: {id}"),
        };
    }
    let failed = |what: &str, e: std::io::Error| ContainerResult::Failed {
        message: format!("{what}: {e}"),
    };
    match op {
        ContainerOp::Update(resources) => {
            match cgroup::apply(&dir, &resources, cgroup::device_numbers) {
                Ok(()) => ContainerResult::Done,
                Err(e) => failed("update", e),
            }
        }
        ContainerOp::Freeze => match cgroup::set_frozen(&dir, true, FREEZE_DEADLINE) {
            Ok(()) => ContainerResult::Done,
            Err(e) => failed("freeze", e),
        },
        ContainerOp::Thaw => match cgroup::set_frozen(&dir, false, FREEZE_DEADLINE) {
            Ok(()) => ContainerResult::Done,
            Err(e) => failed("thaw", e),
        },
        ContainerOp::Stats => match container::stats::read(&dir, proc) {
            Ok(stats) => ContainerResult::Stats(stats),
            Err(e) => failed("stats", e),
        },
        ContainerOp::Top => match container::top::processes(&dir, proc) {
            Ok(processes) => ContainerResult::Top { processes },
            Err(e) => failed("top", e),
        },
        ContainerOp::Connect(_) | ContainerOp::Disconnect { .. } => ContainerResult::Failed {
            message: "network changes are made by the agent's network state, not here".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ab23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn unknown_containers_fail_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        for id in [ID, "../..", ""] {
            for op in [
                ContainerOp::Freeze,
                ContainerOp::Thaw,
                ContainerOp::Stats,
                ContainerOp::Top,
            ] {
                assert_eq!(
                    run(tmp.path(), tmp.path(), id, op.clone()),
                    ContainerResult::Failed {
                        message: format!("no such container: {id}")
                    }
                );
            }
        }
    }

    #[test]
    fn ops_on_a_cgroup_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = tmp.path().join(ID);
        std::fs::create_dir_all(&cg).unwrap();
        std::fs::write(cg.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        std::fs::write(cg.join("cgroup.procs"), "").unwrap();
        assert_eq!(
            run(tmp.path(), tmp.path(), ID, ContainerOp::Freeze),
            ContainerResult::Done
        );
        assert_eq!(
            run(tmp.path(), tmp.path(), ID, ContainerOp::Top),
            ContainerResult::Top { processes: vec![] }
        );
        // No cpu.stat here: a failure with a message, not a panic.
        match run(tmp.path(), tmp.path(), ID, ContainerOp::Stats) {
            ContainerResult::Failed { message } => assert!(message.starts_with("stats: ")),
            other => panic!("{other:?}"),
        }
    }
}
