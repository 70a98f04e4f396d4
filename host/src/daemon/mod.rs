//! `berthd`: the daemon of one machine. It boots the machine's VM, connects to its agent
//! and serves the Docker Engine API on the machine's unix socket until it is told to stop
//! (`POST /berth/machine/stop`, SIGTERM or SIGINT) or the VM dies.
//!
//! Started by `berth machine start` (also implicitly by `berth run`), detached, with its
//! output in the machine's `daemon.log`.

mod api;
mod archive;
mod attach_net;
mod builder;
mod commit;
mod container;
mod create;
mod detach;
mod endpoints;
mod engine;
#[cfg(test)]
mod engine_start_tests;
#[cfg(test)]
mod engine_tests;
mod error;
mod events;
mod exec;
mod fields;
mod filters;
mod guest;
mod health;
mod http;
mod images;
mod limits;
mod links;
mod logs;
mod models;
mod mounts;
mod namespaces;
mod network_routes;
mod networks;
mod ports;
mod registry;
mod removal;
mod restart;
pub mod state;
mod system;
mod update;
mod views;
mod volumes;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

pub use api::{API_VERSION, MIN_API_VERSION};
pub use error::ApiError;
pub use logs::frame;

use crate::image::ImageStore;
use crate::machine::{MachineConfig, MachineDir};
use crate::paths::Paths;
use crate::qemu::Machine;
use crate::vm::{Vm, VmConfig};
use crate::{accel, kernels, transport, Error};

/// How long the VM has to power off at the end.
const POWER_OFF_DEADLINE: Duration = Duration::from_secs(15);

impl engine::Engine {
    /// `$BERTH_HOME/machines`: the parent of this machine's directory.
    pub fn machines_dir(&self) -> &std::path::Path {
        self.machine.dir.parent().unwrap_or(&self.machine.dir)
    }
}

/// Random lowercase hex digits (ids, names).
pub fn random_hex(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut seed = Vec::new();
    while seed.len() * 2 < len.max(64) {
        // RandomState is seeded from the OS's random source for each instance.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        seed.extend_from_slice(&h.finish().to_le_bytes());
    }
    let hex = crate::image::Digest::of(&seed).hex().to_string();
    hex[..len.min(64)].to_string()
}

/// Runs the daemon of machine `name` in this process until it stops; the exit code.
pub fn main(paths: &Paths, name: &str) -> Result<i32, Error> {
    let machine = MachineDir::new(paths, name).map_err(|e| Error::Usage(e.to_string()))?;
    let config = machine
        .read_config()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(machine.lock_file())?;
    match fs4::FileExt::try_lock(&lock) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            return Err(Error::Usage(format!(
                "machine {name:?} already has a running daemon"
            )))
        }
        Err(fs4::TryLockError::Error(e)) => return Err(e.into()),
    }
    std::fs::write(machine.pid_file(), std::process::id().to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(serve(paths, machine.clone(), config));
    rt.shutdown_timeout(Duration::from_secs(2));
    let _ = std::fs::remove_file(machine.socket());
    let _ = std::fs::remove_file(machine.pid_file());
    let _ = std::fs::remove_file(machine.phase_file());
    drop(lock);
    result
}

async fn serve(paths: &Paths, machine: MachineDir, config: MachineConfig) -> Result<i32, Error> {
    let disk = machine.disk();
    if !disk.exists() {
        machine.write_phase(crate::machine::Phase::Disk);
        crate::layer_disk::create(&disk, config.disk_bytes)?;
    }
    let networks = networks::Networks::open(machine.dir.join("networks.json"))?;
    let vm_config = VmConfig {
        kernel: kernels::resolve(&paths.assets, config.kernel.as_deref())?,
        cpus: config.cpus,
        memory_mib: config.memory_mib,
        transport: transport::choose(&config.transport)?,
        machine: Machine::Microvm,
        accel: accel::choose(),
        boot_timeout: Duration::from_secs(60),
        debug_guest: tracing::enabled!(tracing::Level::DEBUG),
        layer_disk: Some(disk),
        uplink: crate::qemu::Uplink::parse(&config.uplink).ok_or_else(|| {
            Error::Usage(format!(
                "machine {}: unknown uplink {:?}",
                machine.name, config.uplink
            ))
        })?,
        host_ports: config.forward_host_ports.clone(),
        hostfwd: Vec::new(),
        shares: crate::shares::resolve(&config.shares),
        share_fs: crate::shares::ShareFs::choose(&config.share_fs).map_err(Error::Usage)?,
        kernel_args: Vec::new(),
        bridge: networks.boot_bridge(),
        probing: crate::qemu::Probing::for_machine(config.cpus),
    };
    for s in &vm_config.shares {
        tracing::info!("sharing {} with the guest ({})", s.path.display(), s.tag);
    }
    tracing::info!(
        "booting machine {} ({} CPUs, {} MiB, kernel {})",
        machine.name,
        config.cpus,
        config.memory_mib,
        vm_config.kernel.name
    );
    machine.write_phase(crate::machine::Phase::Booting);
    let mut vm = Vm::launch(paths, &vm_config)?;
    let client = vm.connect(vm_config.boot_timeout).await?;
    machine.write_phase(crate::machine::Phase::Serving);
    let kernel_release = client.guest.kernel_release.clone();
    tracing::info!("the guest agent answered: {}", client.guest.agent);
    let guest = guest::Guest::new(client, config.forward_host_ports.clone());
    let images = ImageStore::open(&ImageStore::root_for(paths))?;
    let engine = engine::Engine::new(
        machine.clone(),
        config,
        images,
        guest.clone(),
        kernel_release,
        networks,
    );
    engine.restore();

    let socket = machine.socket();
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(None::<u64>);
    let ctl = Arc::new(api::Control {
        engine: engine.clone(),
        stop: stop_tx,
    });
    tracing::info!("serving the Docker API on {}", socket.display());
    let mut term = signal_stream()?;
    let mut helpers_check = tokio::time::interval(HELPERS_CHECK);
    helpers_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (timeout, code) = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let ctl = ctl.clone();
                let peer = http::PeerFd(std::os::fd::AsRawFd::as_raw_fd(&stream));
                tokio::spawn(async move {
                    let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(peer);
                        api::handle(ctl.clone(), req)
                    });
                    let conn = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    if let Err(e) = conn.await {
                        tracing::debug!("API connection: {e}");
                    }
                });
            }
            changed = stop_rx.changed() => {
                let t = changed.ok().and_then(|_| *stop_rx.borrow());
                tracing::info!("asked to stop the machine");
                break (Duration::from_secs(t.unwrap_or(10)), 0);
            }
            _ = term.recv() => {
                tracing::info!("signalled to stop the machine");
                break (Duration::from_secs(10), 0);
            }
            _ = helpers_check.tick() => {
                for lost in vm.lost_helpers() {
                    close_share(&guest, &machine.name, lost, vm.tail());
                }
            }
            status = vm.exited() => {
                tracing::error!("the VM stopped unexpectedly ({status}){}", vm.tail());
                // Running containers are recorded as ended by their supervisors.
                guest.wait_closed().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(1);
            }
        }
    };
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    if engine.stop_all(timeout).await > 0 {
        // Give supervisors a moment to record the exits (and remove `--rm` containers).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if guest.power_off().await {
        vm.wait_exit(POWER_OFF_DEADLINE).await;
    }
    tracing::info!("machine {} stopped", machine.name);
    Ok(code)
}

/// How often the daemon looks for a helper (a share's virtiofsd) that ended while the
/// machine runs.
const HELPERS_CHECK: Duration = Duration::from_secs(1);

/// A share's server ended while the machine runs: QEMU cannot serve the share again, and
/// the guest's requests to it would wait forever. The guest is told to refuse binds of
/// the share from now on, saying why (the machine's other work goes on).
fn close_share(guest: &Arc<guest::Guest>, machine: &str, lost: crate::helper::Ended, tail: String) {
    tracing::error!(
        "{}: the machine's containers can no longer use its shared folder{tail}",
        lost.what
    );
    let why = format!(
        "{}; stop and start the machine to share it again (`berth machine stop {machine}`, \
         then `berth machine start {machine}`)",
        lost.what
    );
    let guest = guest.clone();
    tokio::spawn(async move {
        let closed = guest.close_share(lost.tag.clone(), why).await;
        match closed.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(()) => tracing::info!("the guest closed shared folder {}", lost.tag),
            Err(e) => tracing::error!("closing shared folder {} in the guest: {e}", lost.tag),
        }
    });
}

/// SIGTERM and SIGINT, as one stream.
fn signal_stream() -> std::io::Result<tokio::sync::mpsc::UnboundedReceiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        let mut s = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}
