//! From the host's [`ContainerSpec`] to the shim's [`ShimSpec`]: the container's layers
//! in the cache, its mounts as guest paths, and (for a run) its network.

use std::path::Path;

use berth_protocol::{ContainerSpec, ErrorKind, ExecSpec, MountSource, Namespaces, NsMode};

use super::Agent;
use crate::container::mounts::BindMount;
use crate::container::{state, NsEntry, Sharing, ShimSpec};
use crate::net::Linking;

/// The shim spec of a container that is about to run: its layers must be in the cache.
/// Prepares its network and saves the spec in its state directory. Its network's
/// interfaces may still be in the making ([`Linking`]): the shim is then started with
/// its network gate, and the gate opened once they are made.
pub(super) async fn container_spec(
    agent: &Agent,
    c: &ContainerSpec,
    spec: &ExecSpec,
) -> Result<(ShimSpec, Linking), (ErrorKind, String)> {
    let mut shim = files_spec(agent, c, Some(spec))?;
    // Its program comes off the disk while its network and directories are made.
    if let Some(argv0) = spec.argv.first() {
        let path = spec
            .env
            .iter()
            .map(String::as_str)
            .chain([crate::container::DEFAULT_PATH])
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or_default();
        crate::container::prefetch::start(
            shim.lowerdirs.clone(),
            argv0.clone(),
            path.into(),
            spec.cwd.clone(),
        );
    }
    shim.sharing = sharing(agent, &c.namespaces).await?;
    if shim.sharing.uts == NsEntry::Host {
        shim.hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .map_err(|e| (ErrorKind::Internal, format!("the guest's hostname: {e}")))?;
    }
    // The network and the container's directories (with its devpts and shm) are made
    // side by side: the network often waits for its lock (a cold machine's first bridge),
    // and the directories' mounts are the slowest part of a first container's files.
    // Held shared from the directories to the saved spec: see `state::setting_up`.
    let _setting_up = crate::container::state::setting_up().await;
    let (net, dirs) = tokio::join!(
        agent
            .net
            .attach(&c.id, &c.hostname, c.network.as_ref(), &c.process.dns),
        async {
            shim.create_dirs()
                .and_then(|()| shim.mount_devpts())
                .and_then(|()| shim.mount_shm())
        }
    );
    let (net, linking) = match (net, dirs) {
        (Ok(net), Ok(())) => net,
        (Err(e), _) => {
            crate::container::finish(&shim);
            return Err((ErrorKind::Internal, e));
        }
        (Ok((_, linking)), Err(e)) => {
            undo_start(agent, &shim, linking).await;
            return Err((ErrorKind::Internal, format!("container state: {e}")));
        }
    };
    shim.resolv_conf = Some(crate::net::with_dns_options(
        &net.resolv_conf,
        &c.process,
        user_network(c),
    ));
    shim.hosts = Some(net.hosts);
    shim.netns = net.netns;
    // A process on a terminal starts through std's fork path, which passes no gate: its
    // network is made first.
    let linking = match spec.tty {
        Some(_) => match linking.wait().await {
            Ok(()) => Linking::done(),
            Err(e) => {
                crate::container::finish(&shim);
                return Err((ErrorKind::Internal, e));
            }
        },
        None => linking,
    };
    shim.network_gate = linking.pending();
    if let Err(e) = crate::container::state::save_spec(&shim) {
        undo_start(agent, &shim, linking).await;
        return Err((ErrorKind::Internal, format!("container state: {e}")));
    }
    Ok((shim, linking))
}

/// Undoes what was made for a container whose start failed before its command ran: its
/// network, once its interfaces are no longer in the making (a detach before would miss
/// them), and its files' mounts.
pub(super) async fn undo_start(agent: &Agent, shim: &ShimSpec, linking: Linking) {
    let _ = linking.wait().await;
    agent.net.detach(&shim.id).await;
    crate::container::finish(shim);
}

/// The shim spec of a container's files alone (no network, nothing saved): what a
/// builtin on a container that is not running works on. Creates its state directories.
pub(super) fn stopped_spec(
    agent: &Agent,
    c: &ContainerSpec,
) -> Result<ShimSpec, (ErrorKind, String)> {
    let shim = files_spec(agent, c, None)?;
    shim.create_dirs()
        .map_err(|e| (ErrorKind::Internal, format!("container state: {e}")))?;
    Ok(shim)
}

fn files_spec(
    agent: &Agent,
    c: &ContainerSpec,
    spec: Option<&ExecSpec>,
) -> Result<ShimSpec, (ErrorKind, String)> {
    if !crate::container::valid_id(&c.id) {
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
                ErrorKind::LayerMissing,
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
    let mounts = c
        .mounts
        .iter()
        .map(|m| {
            let source = crate::shares::source_path(agent.shares(), &agent.volumes_dir, &m.source)?;
            Ok(BindMount {
                source,
                target: m.target.clone(),
                read_only: m.read_only,
                copy_up: matches!(m.source, MountSource::Volume { .. }) && !m.no_copy,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| (ErrorKind::BadRequest, e))?;
    Ok(ShimSpec {
        netns: Default::default(),
        hosts: None,
        resolv_conf: None,
        id: c.id.clone(),
        lowerdirs,
        dir: agent.containers_dir.join(&c.id),
        argv: spec.map(|s| s.argv.clone()).unwrap_or_default(),
        env: spec.map(|s| s.env.clone()).unwrap_or_default(),
        cwd: spec.and_then(|s| s.cwd.clone()),
        hostname: c.hostname.clone(),
        user: c.user.clone(),
        resources: c.resources.clone(),
        security: c.security.clone(),
        mounts,
        tmpfs: c.tmpfs.clone(),
        read_only_rootfs: c.read_only_rootfs,
        process: c.process.clone(),
        devpts: false,
        sharing: Sharing::default(),
        network_gate: false,
    })
}

/// The host's `--pid`/`--ipc`/`--uts` as namespaces to keep, join or make: a container
/// to join must be running (its first process's namespaces are joined).
async fn sharing(agent: &Agent, ns: &Namespaces) -> Result<Sharing, (ErrorKind, String)> {
    let entry = |mode: &NsMode, kind: &str| -> Result<NsEntry, (ErrorKind, String)> {
        Ok(match mode {
            NsMode::Private | NsMode::None => NsEntry::New,
            NsMode::Host => NsEntry::Host,
            NsMode::Container(id) => {
                let not_running = || {
                    (
                        ErrorKind::BadRequest,
                        format!(
                            "cannot join the {kind} namespace of container {}: it is not running",
                            &id[..12.min(id.len())]
                        ),
                    )
                };
                if !crate::container::valid_id(id) {
                    return Err(not_running());
                }
                let pid = running_pid(&agent.containers_dir.join(id))
                    .filter(|pid| state::is_container_process(Path::new("/proc"), *pid, id))
                    .ok_or_else(not_running)?;
                NsEntry::Join(format!("/proc/{pid}/ns/{kind}").into())
            }
        })
    };
    // A container the host was just told started may not have exec'd its command yet.
    for mode in [&ns.pid, &ns.ipc] {
        if let NsMode::Container(id) = mode {
            if crate::container::valid_id(id) {
                let dir = agent.containers_dir.join(id);
                let deadline = tokio::time::Instant::now() + START_DEADLINE;
                while state::load_spec(&dir).ok().flatten().is_some()
                    && running_pid(&dir).is_none()
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }
    if matches!(ns.uts, NsMode::Container(_) | NsMode::None) {
        return Err((
            ErrorKind::BadRequest,
            "the UTS namespace is the container's own or the machine's".into(),
        ));
    }
    let ipc = entry(&ns.ipc, "ipc")?;
    let shm_from = match &ipc {
        NsEntry::Host => Some("/dev/shm".into()),
        // The joined container's own /dev/shm, which the agent mounted for it.
        NsEntry::Join(_) => match &ns.ipc {
            NsMode::Container(id) => Some(agent.containers_dir.join(id).join("shm")),
            _ => None,
        },
        NsEntry::New => None,
    };
    Ok(Sharing {
        pid: entry(&ns.pid, "pid")?,
        ipc,
        uts: entry(&ns.uts, "uts")?,
        no_shm: ns.ipc == NsMode::None,
        shm_from,
    })
}

/// How long a container still starting may take to exec its command before another
/// container joining its namespaces is refused.
const START_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// The first process of the container whose state directory is `dir`, once it runs.
fn running_pid(dir: &Path) -> Option<u32> {
    state::load_init_pid(dir).ok().flatten()
}

/// Whether the container's resolver is berth's, on a user network (it answers names).
fn user_network(c: &ContainerSpec) -> bool {
    matches!(&c.network, Some(berth_protocol::NetworkSpec::Bridge { networks })
        if networks.first().is_some_and(|a| !a.dns_names.is_empty()))
}
