//! The container lifecycle of one machine: create, start, stop, kill, pause (removal and
//! waits: `removal`). Every container has an in-memory handle ([`Container`]) around its persisted
//! [`Record`]; its output goes to its log and to whoever is attached.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_mux::Stream;
use berth_protocol::{
    ContainerOp, ContainerResult, ErrorKind, ExecSpec, GuestMessage, NetworkSpec, TtySize,
};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::create::{self, image_run_config, name_in_use};
use super::error::ApiError;
use super::events::Events;
use super::exec::ExecInstance;
use super::guest::{GuestApi, GuestExec};
use super::logs::{Entry, LineSplitter, StreamKind};
use super::models::CreateBody;
use super::networks::Networks;
use super::restart::{Backoff, Policy};
use super::state::{Record, State, Store};
use crate::image::time::rfc3339_nanos;
use crate::image::ImageStore;
use crate::machine::{MachineConfig, MachineDir};

/// How a container's first process started.
enum Launched {
    Running,
    /// The guest lacks one of the container's layers: nothing was started.
    LayersMissing,
}

/// How long the guest has to report that a container started.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long output may keep draining after the exit.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long a container has to die after SIGKILL.
pub(super) const KILL_DEADLINE: Duration = Duration::from_secs(15);
/// Docker's grace period between the stop signal and SIGKILL.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub use super::container::{Chunk, Container};

/// Everything the daemon serves.
pub struct Engine {
    pub machine: MachineDir,
    pub config: MachineConfig,
    pub images: ImageStore,
    pub guest: Arc<dyn GuestApi>,
    pub store: Store,
    pub kernel_release: String,
    pub started: SystemTime,
    pub(super) containers: Mutex<Vec<Arc<Container>>>,
    pub execs: Mutex<HashMap<String, Arc<ExecInstance>>>,
    pub networks: Networks,
    pub volumes: super::volumes::VolumeStore,
    pub events: Events,
    /// Set when the machine stops: exits from now on are not restarted.
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Engine {
    pub fn new(
        machine: MachineDir,
        config: MachineConfig,
        images: ImageStore,
        guest: Arc<dyn GuestApi>,
        kernel_release: String,
        networks: Networks,
    ) -> Arc<Engine> {
        let store = Store::new(machine.containers_dir());
        let containers = store
            .load_all()
            .into_iter()
            .map(|r| {
                let c = Container::new(r, &store);
                c.phase.send_modify(|p| p.exits = 1);
                c
            })
            .collect();
        let volumes = super::volumes::VolumeStore::new(machine.volumes_dir());
        Arc::new(Engine {
            machine,
            config,
            images,
            guest,
            store,
            kernel_release,
            started: SystemTime::now(),
            containers: Mutex::new(containers),
            execs: Mutex::new(HashMap::new()),
            networks,
            volumes,
            events: Events::default(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Starts what the restart policies bring back with the daemon: `always`
    /// containers, and `unless-stopped` ones the user had not stopped.
    /// Files the guest keeps for containers the daemon has no record of are deleted.
    pub fn restore(self: &Arc<Self>) {
        self.prepare_default_network();
        let known: Vec<String> = self.all().iter().map(|c| c.id.clone()).collect();
        let engine = self.clone();
        tokio::spawn(async move {
            let which = berth_protocol::ContainerSet::AllBut(known);
            match engine.guest.remove_container_files(which).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("left-over container files: {e}"),
                Err(e) => tracing::warn!("deleting left-over container files: {e}"),
            }
        });
        for c in self.all() {
            let r = c.record();
            if r.spec.restart.starts_with_daemon(r.stopped_by_user) {
                let engine = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = engine.start_policy(&c).await {
                        tracing::warn!("restarting container {}: {e}", c.short());
                    }
                });
            }
        }
    }

    /// Has the guest make the default network's bridge (which it keeps) while the first
    /// requests come in, rather than when the first container needs it. A machine's guest
    /// has usually made it at boot (`berth.bridge`); then this finds it made, and it is
    /// what makes it when the boot could not.
    fn prepare_default_network(self: &Arc<Self>) {
        let network = self.networks.find(super::networks::DEFAULT_BRIDGE);
        let Some(bridge) = network.ok().and_then(|n| n.bridge_network()) else {
            return;
        };
        let engine = self.clone();
        tokio::spawn(async move {
            match engine.guest.prepare_network(bridge).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("the default network's bridge: {e}"),
                Err(e) => tracing::warn!("preparing the default network: {e}"),
            }
        });
    }

    /// Runs `f` with the container list locked.
    pub(super) fn with_containers<T>(&self, f: impl FnOnce(&[Arc<Container>]) -> T) -> T {
        f(&self.containers.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A container by full id, name (with or without `/`) or unique id prefix.
    pub fn find(&self, name: &str) -> Result<Arc<Container>, ApiError> {
        let all = self.all();
        let bare = name.strip_prefix('/').unwrap_or(name);
        if let Some(c) = all.iter().find(|c| c.id == name || c.name() == bare) {
            return Ok(c.clone());
        }
        let matches: Vec<_> = all
            .iter()
            .filter(|c| !name.is_empty() && c.id.starts_with(name))
            .collect();
        match matches[..] {
            [one] => Ok(one.clone()),
            [] => Err(ApiError::no_such_container(name)),
            _ => Err(ApiError::bad_request(format!(
                "multiple containers match {name:?}: use more of the id"
            ))),
        }
    }

    /// `POST /containers/create`.
    pub fn create(&self, body: &CreateBody, name: Option<&str>) -> Result<String, ApiError> {
        super::fields::check_create(body)?;
        let image_name = body
            .config
            .image
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::bad_request("no image given"))?;
        let image = self
            .images
            .find(image_name)?
            .ok_or_else(|| ApiError::not_found(format!("No such image: {image_name}")))?;
        let image_config = image_run_config(&self.images.blobs().get(&image.config)?)
            .map_err(|e| ApiError::internal(format!("image {image_name}: bad config: {e}")))?;
        let id = super::random_hex(64);
        let mut spec = create::run_spec(body, &image_config, &id)?;
        super::limits::check(&spec.resources, self.config.cpus)?;
        self.resolve_networks(&mut spec.network)?;
        self.resolve_namespaces(&mut spec.namespaces)?;
        self.resolve_links(&mut spec.network.links)?;
        let host = body.host().into_owned();
        if let Some(p) = &host.restart_policy {
            spec.restart = Policy::from_request(p)?;
        }
        if spec.auto_remove && spec.restart != Policy::No {
            return Err(ApiError::bad_request(
                "conflicting options: cannot specify both --restart and --rm",
            ));
        }
        spec.stop_signal = match body
            .config
            .stop_signal
            .as_deref()
            .or(image_config.stop_signal.as_deref())
        {
            None | Some("") => None,
            Some(s) => Some(super::api::parse_signal(s)?),
        };
        spec.stop_timeout = body.config.stop_timeout;
        spec.health = super::health::Check::merged(
            body.config.healthcheck.as_ref(),
            image_config.healthcheck.as_ref(),
        )?;

        let mut all = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        let taken = |n: &str| all.iter().any(|c| c.name() == n);
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n);
                if !create::valid_name(n) {
                    return Err(ApiError::bad_request(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                if let Some(other) = all.iter().find(|c| c.name() == n) {
                    return Err(name_in_use(n, &other.id));
                }
                n.to_string()
            }
            None => create::random_name(taken),
        };
        // After the name checks, so a refused create makes no folder or volume.
        spec.mounts = self.prepare_mounts(body)?;
        let mut config = body.config.clone();
        config.hostname = Some(spec.hostname.clone());
        config.env = Some(spec.env.clone());
        config.image = Some(image_name.to_string());
        if config.cmd.is_none() {
            config.cmd = image_config.cmd.clone();
        }
        if config.entrypoint.is_none() {
            config.entrypoint = image_config.entrypoint.clone();
        }
        if spec.cwd.is_some() {
            config.working_dir = spec.cwd.clone();
        }
        config.user = Some(spec.user.clone().unwrap_or_default());
        // Docker's `Config.ExposedPorts`: the image's and the request's.
        let mut exposed = image_config.exposed_ports.clone().unwrap_or_default();
        exposed.extend(body.config.exposed_ports.clone().unwrap_or_default());
        for key in exposed.keys() {
            create::port_key(key)?;
        }
        config.exposed_ports = (!exposed.is_empty()).then_some(exposed);
        let mut labels = image_config.labels.clone().unwrap_or_default();
        labels.extend(body.config.labels.clone().unwrap_or_default());
        config.labels = Some(labels);
        if config.stop_signal.is_none() {
            config.stop_signal = image_config.stop_signal.clone();
        }
        if config.healthcheck.is_none() {
            config.healthcheck = image_config.healthcheck.clone();
        }
        let record = Record {
            id: id.clone(),
            name,
            created: rfc3339_nanos(SystemTime::now()),
            image: image_name.to_string(),
            image_id: image.id().to_string(),
            layers: image.layers.iter().map(|d| d.to_string()).collect(),
            config,
            host_config: host,
            spec,
            state: State::default(),
            restart_count: 0,
            stopped_by_user: false,
            endpoints: Vec::new(),
        };
        self.store.save(&record)?;
        let c = Container::new(record, &self.store);
        all.push(c.clone());
        drop(all);
        self.events.container(&c, "create");
        Ok(id)
    }

    /// `POST /containers/{id}/start`. Returns once the guest runs the process.
    pub async fn start(self: &Arc<Self>, c: &Arc<Container>) -> Result<(), ApiError> {
        let _op = c.ops.lock().await;
        c.user_action();
        if c.state().restarting {
            return Err(ApiError::not_modified());
        }
        c.update(&self.store, |r| {
            r.stopped_by_user = false;
            r.restart_count = 0;
        });
        *c.backoff.lock().unwrap_or_else(|p| p.into_inner()) = Backoff::default();
        let started = self.start_locked(c).await;
        if started.is_err() && c.record().spec.auto_remove && !c.state().running {
            // As Docker's: a `--rm` container that cannot start is removed (the docker
            // CLI waits for that before it exits).
            drop(_op);
            let _ = self.remove_with(c, true, true).await;
        }
        started
    }

    /// A start by the restart policy (after an exit, or when the daemon comes up).
    async fn start_policy(self: &Arc<Self>, c: &Arc<Container>) -> Result<(), ApiError> {
        let _op = c.ops.lock().await;
        self.start_locked(c).await
    }

    async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> Result<(), ApiError> {
        let record = c.record();
        if record.state.running {
            return Err(ApiError::not_modified());
        }
        if c.phase.borrow().removed {
            return Err(ApiError::no_such_container(&c.id));
        }
        self.check_namespace_targets(&record.spec.namespaces)?;
        // Links add to this run's hosts and (before the container's own) environment.
        let mut record = record;
        let links = self.links_at_start(&record, &record.spec.network.mode)?;
        let n = &mut record.spec.network;
        n.extra_hosts.extend(links.hosts);
        record.spec.env = links.env.into_iter().chain(record.spec.env).collect();
        // While the guest's layer list is still coming (a machine that just booted mounts
        // its state disk), the container starts at once, and its layers are sent only if
        // the guest finds one missing: a cold machine's first container saves the round
        // trip of the list.
        let listed = self.guest.layers_listed();
        if listed {
            self.ensure_container_layers(&record).await?;
        }
        let (network, endpoints) = self.connect_network(c, &record).await?;
        c.update(&self.store, |r| r.endpoints = endpoints);
        let mut result = self.launch(c, &record, network.clone(), !listed).await;
        match result {
            Ok(Launched::LayersMissing) => {
                result = match self.ensure_container_layers(&record).await {
                    Ok(()) => self.launch(c, &record, network, false).await,
                    Err(e) => Err(e),
                };
            }
            // What `ensure_layers` says when it finds them all.
            Ok(Launched::Running) if !listed => tracing::info!(
                "the guest's layer cache holds {n} of {n} layers",
                n = record.layers.len()
            ),
            _ => {}
        }
        let result = result.map(|_| ());
        if result.is_err() {
            self.disconnect_network(c).await;
        }
        result
    }

    /// Makes sure the guest's layer cache has the container's layers.
    pub(super) async fn ensure_container_layers(&self, record: &Record) -> Result<(), ApiError> {
        let layers: Vec<(String, PathBuf)> = record
            .layers
            .iter()
            .map(|d| {
                let digest = crate::image::Digest::parse(d)
                    .map_err(|e| ApiError::internal(format!("layer {d}: {e}")))?;
                Ok((d.clone(), self.images.blobs().path(&digest)))
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(self.guest.ensure_layers(&layers).await?)
    }

    /// Starts the container's first process. With `layers_may_be_missing`, a guest that
    /// lacks one of its layers is not a failure but [`Launched::LayersMissing`].
    async fn launch(
        self: &Arc<Self>,
        c: &Arc<Container>,
        record: &Record,
        network: Option<NetworkSpec>,
        layers_may_be_missing: bool,
    ) -> Result<Launched, ApiError> {
        let s = &record.spec;
        self.ensure_volumes(&s.mounts)?;
        let spec = ExecSpec {
            argv: s.argv.clone(),
            env: s.env.clone(),
            cwd: s.cwd.clone(),
            stdin: s.open_stdin,
            tty: s
                .tty
                .then(|| s.console.unwrap_or(TtySize { rows: 24, cols: 80 })),
            container: Some(record.guest_spec(network)),
            join: None,
        };
        let mut exec = self.guest.exec(spec).await?;
        let started = tokio::time::timeout(START_DEADLINE, exec.events.recv()).await;
        let pid = match started {
            Ok(Some(GuestMessage::Started { pid, .. })) => pid,
            Ok(Some(GuestMessage::Error {
                kind: ErrorKind::LayerMissing,
                ..
            })) if layers_may_be_missing => {
                self.guest.exec_done(exec.id);
                return Ok(Launched::LayersMissing);
            }
            Ok(Some(GuestMessage::Error { kind, message, .. })) => {
                self.guest.exec_done(exec.id);
                let code = kind.exit_code();
                c.update(&self.store, |r| r.state.set_exited(code, false, &message));
                let _ = c.out_tx.send(Chunk::End);
                return Err(ApiError::new(if code == 125 { 500 } else { 400 }, message));
            }
            Ok(other) => {
                self.guest.exec_done(exec.id);
                return Err(ApiError::internal(format!(
                    "unexpected answer from the guest: {other:?}"
                )));
            }
            Err(_) => {
                self.guest.exec_done(exec.id);
                return Err(ApiError::internal(format!(
                    "the guest did not start container {} within {START_DEADLINE:?}",
                    c.short()
                )));
            }
        };
        *c.exec_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(exec.id);
        *c.stdin.lock().await = exec.stdin.take();
        c.update(&self.store, |r| r.state.set_running(pid));
        *c.started_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
        c.phase.send_modify(|p| p.running = true);
        self.events.container(c, "start");
        tokio::spawn(self.clone().supervise(c.clone(), exec));
        match &record.spec.health {
            Some(check) => {
                tokio::spawn(self.clone().run_health(c.clone(), check.clone()));
            }
            None => c.set_health(&self.store, None),
        }
        Ok(Launched::Running)
    }

    /// Pumps the output of a running container and records how it ended.
    async fn supervise(self: Arc<Self>, c: Arc<Container>, mut exec: GuestExec) {
        let out = tokio::spawn(pump(c.clone(), exec.stdout, StreamKind::Stdout));
        let err = tokio::spawn(pump(c.clone(), exec.stderr, StreamKind::Stderr));
        let (code, oom, error) = loop {
            match exec.events.recv().await {
                Some(GuestMessage::Exited {
                    status, oom_killed, ..
                }) => break (status.shell_code(), oom_killed, String::new()),
                Some(GuestMessage::Error { kind, message, .. }) => {
                    break (kind.exit_code(), false, message)
                }
                Some(_) => continue,
                None => break (255, false, "the machine stopped while it ran".to_string()),
            }
        };
        self.guest.exec_done(exec.id);
        let drained = tokio::time::timeout(DRAIN_DEADLINE, async {
            let _ = out.await;
            let _ = err.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("container {}: output still open after its exit", c.short());
        }
        c.log.lock().await.close();
        self.disconnect_network(&c).await;
        *c.exec_id.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *c.stdin.lock().await = None;
        // The events first: whoever sees the container exited finds its die event.
        if oom {
            self.events.container(&c, "oom");
        }
        self.events
            .container_with(&c, "die", &[("exitCode", code.to_string())]);
        c.update(&self.store, |r| r.state.set_exited(code, oom, &error));
        tracing::info!("container {} exited with {code}", c.short());
        let _ = c.out_tx.send(Chunk::End);
        let record = c.record();
        let ran_for = c
            .started_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.elapsed())
            .unwrap_or_default();
        let restart = !self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
            && record.spec.restart.should_restart(
                code,
                record.restart_count,
                record.stopped_by_user,
            );
        if restart {
            // Marked before waiters learn of the exit, so they see `restarting`.
            c.update(&self.store, |r| r.state.set_restarting());
        }
        c.phase.send_modify(|p| {
            p.running = false;
            p.exits += 1;
        });
        if record.spec.auto_remove {
            let _ = self.remove_with(&c, true, true).await;
        } else if restart {
            let delay = c
                .backoff
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .next(ran_for);
            let generation = c.generation();
            tracing::info!(
                "container {}: restarting in {delay:?} ({} policy)",
                c.short(),
                record.spec.restart.name()
            );
            tokio::spawn(self.clone().restart_later(c.clone(), delay, generation));
        }
    }

    /// The restart policy's start after `delay`, unless the user acted meanwhile.
    /// (Boxed: it starts the container, whose supervisor may schedule this again.)
    fn restart_later(
        self: Arc<Self>,
        c: Arc<Container>,
        delay: Duration,
        generation: u64,
    ) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(self.restart_later_inner(c, delay, generation))
    }

    async fn restart_later_inner(
        self: Arc<Self>,
        c: Arc<Container>,
        delay: Duration,
        generation: u64,
    ) {
        tokio::time::sleep(delay).await;
        let _op = c.ops.lock().await;
        if c.generation() != generation
            || c.phase.borrow().removed
            || self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        c.update(&self.store, |r| r.restart_count += 1);
        if let Err(e) = self.start_locked(&c).await {
            tracing::warn!("container {}: restart failed: {e}", c.short());
            c.update(&self.store, |r| {
                let code = r.state.exit_code;
                r.state.set_exited(code, false, &e.message);
            });
        }
    }

    /// `docker kill`: a signal to the container's first process, from the user, so the
    /// restart policy leaves the container alone. SIGKILL answers once it is dead.
    pub async fn kill(&self, c: &Container, signal: i32) -> Result<(), ApiError> {
        if !c.state().running {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        c.user_action();
        c.update(&self.store, |r| r.stopped_by_user = true);
        let mut phase = c.phase.subscribe();
        self.signal(c, signal).await?;
        self.events
            .container_with(c, "kill", &[("signal", signal.to_string())]);
        if signal == 9
            && tokio::time::timeout(KILL_DEADLINE, phase.wait_for(|p| !p.running))
                .await
                .is_err()
        {
            return Err(ApiError::internal(format!(
                "container {} did not die within {KILL_DEADLINE:?} of SIGKILL",
                c.short()
            )));
        }
        Ok(())
    }

    /// Sends a signal to the container's first process.
    pub(super) async fn signal(&self, c: &Container, signal: i32) -> Result<(), ApiError> {
        let exec_id = c
            .exec_id()
            .filter(|_| c.state().running)
            .ok_or_else(|| ApiError::conflict(format!("Container {} is not running", c.id)))?;
        if c.state().paused && signal == 9 {
            // A frozen cgroup still takes SIGKILL, but thaw it so the exit is prompt.
            let _ = self.set_paused(c, false).await;
        }
        self.guest.signal(exec_id, signal).await?;
        Ok(())
    }

    /// `docker stop`: the stop signal (SIGTERM unless the container names another), then
    /// SIGKILL after `timeout` (the request's, else the container's `StopTimeout`, else
    /// 10 s). A container waiting to be restarted just stays stopped.
    pub async fn stop(
        &self,
        c: &Arc<Container>,
        timeout: Option<Duration>,
    ) -> Result<(), ApiError> {
        c.user_action();
        let state = c.state();
        if state.restarting {
            c.update(&self.store, |r| {
                r.stopped_by_user = true;
                let code = r.state.exit_code;
                r.state.set_exited(code, false, "");
            });
            self.events.container(c, "stop");
            return Ok(());
        }
        if !state.running {
            return Err(ApiError::not_modified());
        }
        c.update(&self.store, |r| r.stopped_by_user = true);
        self.stop_process(c, timeout).await?;
        self.events.container(c, "stop");
        Ok(())
    }

    async fn stop_process(
        &self,
        c: &Arc<Container>,
        timeout: Option<Duration>,
    ) -> Result<(), ApiError> {
        let spec = c.record().spec;
        let timeout = timeout
            .or_else(|| {
                spec.stop_timeout
                    .map(|t| Duration::from_secs(t.max(0) as u64))
            })
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        if c.state().paused {
            self.set_paused(c, false).await?;
        }
        let mut phase = c.phase.subscribe();
        let signal = spec.stop_signal.unwrap_or(15);
        if self.signal(c, signal).await.is_ok()
            && tokio::time::timeout(timeout, phase.wait_for(|p| !p.running))
                .await
                .is_ok()
        {
            return Ok(());
        }
        let _ = self.signal(c, 9).await;
        let stopped = tokio::time::timeout(KILL_DEADLINE, phase.wait_for(|p| !p.running))
            .await
            .is_ok();
        match stopped {
            true => Ok(()),
            false => Err(ApiError::internal(format!(
                "container {} did not stop within {KILL_DEADLINE:?} of SIGKILL",
                c.short()
            ))),
        }
    }

    /// `docker restart`: stop (if running), then start; the restart count starts over.
    pub async fn restart(
        self: &Arc<Self>,
        c: &Arc<Container>,
        timeout: Option<Duration>,
    ) -> Result<(), ApiError> {
        match self.stop(c, timeout).await {
            Ok(()) => {}
            Err(e) if e.status == 304 => {}
            Err(e) => return Err(e),
        }
        self.start(c).await?;
        self.events.container(c, "restart");
        Ok(())
    }

    /// `docker pause` / `unpause`: the cgroup freezer in the guest.
    pub async fn set_paused(&self, c: &Container, paused: bool) -> Result<(), ApiError> {
        let state = c.state();
        if !state.running {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if state.paused == paused {
            return Err(ApiError::conflict(format!(
                "Container {} is {}paused",
                c.id,
                if paused { "already " } else { "not " }
            )));
        }
        let op = if paused {
            ContainerOp::Freeze
        } else {
            ContainerOp::Thaw
        };
        match self.guest.container_op(&c.id, op).await? {
            ContainerResult::Done => {
                c.update(&self.store, |r| r.state.set_paused(paused));
                self.events
                    .container(c, if paused { "pause" } else { "unpause" });
                Ok(())
            }
            ContainerResult::Failed { message } => Err(ApiError::internal(message)),
            other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
        }
    }

    /// Runs a container operation that returns data (stats, top).
    pub async fn query(&self, c: &Container, op: ContainerOp) -> Result<ContainerResult, ApiError> {
        if !c.state().running {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        match self.guest.container_op(&c.id, op).await? {
            ContainerResult::Failed { message } => Err(ApiError::internal(message)),
            other => Ok(other),
        }
    }

    /// Stops every container (SIGTERM, then SIGKILL after `timeout`), for machine stop.
    /// Returns how many containers were running.
    pub async fn stop_all(&self, timeout: Duration) -> usize {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let running: Vec<_> = self
            .all()
            .into_iter()
            .filter(|c| c.state().running)
            .collect();
        let stops = running.iter().map(|c| self.stop_process(c, Some(timeout)));
        for r in futures::future::join_all(stops).await {
            if let Err(e) = r {
                tracing::warn!("stopping a container: {e}");
            }
        }
        running.len()
    }

    pub fn resize_target(&self, c: &Container) -> Result<u64, ApiError> {
        c.exec_id()
            .ok_or_else(|| ApiError::conflict(format!("Container {} is not running", c.id)))
    }
}

/// Copies one output stream of a running container to its log and attached clients.
async fn pump(c: Arc<Container>, mut from: Stream, kind: StreamKind) {
    let mut lines = LineSplitter::new(kind);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = Bytes::copy_from_slice(&buf[..n]);
        let _ = c.out_tx.send(Chunk::Data(kind, chunk));
        let entries = lines.push(&buf[..n]);
        if !entries.is_empty() {
            write_entries(&c, &entries).await;
        }
    }
    if let Some(last) = lines.finish() {
        write_entries(&c, &[last]).await;
    }
}

async fn write_entries(c: &Container, entries: &[Entry]) {
    let mut log = c.log.lock().await;
    for e in entries {
        if let Err(err) = log.append(e) {
            tracing::warn!("container {}: cannot write its log: {err}", &c.id[..12]);
        }
        let _ = c.log_tx.send(e.clone());
    }
}
