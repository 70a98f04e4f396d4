//! The container lifecycle of one machine: create, start, stop, kill, pause, wait,
//! remove. Every container has an in-memory handle ([`Container`]) around its persisted
//! [`Record`]; its output goes to its log and to whoever is attached.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_mux::Stream;
use berth_protocol::{
    Attachment, ContainerOp, ContainerResult, ContainerSpec, ExecSpec, GuestMessage, NetworkSpec,
    TtySize,
};
use bytes::Bytes;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::sync::{broadcast, watch};

use super::create;
use super::error::ApiError;
use super::exec::ExecInstance;
use super::guest::{Guest, GuestExec};
use super::logs::{Entry, LineSplitter, LogWriter, StreamKind};
use super::networks::Networks;
use super::state::{Endpoint, Record, State, Store};
use crate::image::time::rfc3339_nanos;
use crate::image::ImageStore;
use crate::machine::{MachineConfig, MachineDir};

/// How long the guest has to report that a container started.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long output may keep draining after the exit.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long a container has to die after SIGKILL.
const KILL_DEADLINE: Duration = Duration::from_secs(15);

/// A piece of live output, for attached clients.
#[derive(Debug, Clone)]
pub enum Chunk {
    Data(StreamKind, Bytes),
    /// The process ended and all its output was sent.
    End,
}

/// Where a container is in its life, for waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phase {
    pub running: bool,
    /// How many times it has exited.
    pub exits: u64,
    pub removed: bool,
}

/// One container.
pub struct Container {
    pub id: String,
    record: Mutex<Record>,
    /// The log writer; held while reading the log for `logs -f` so no entry is missed.
    pub log: tokio::sync::Mutex<LogWriter>,
    pub log_tx: broadcast::Sender<Entry>,
    pub out_tx: broadcast::Sender<Chunk>,
    pub phase: watch::Sender<Phase>,
    /// The running process's guest exec id.
    exec_id: Mutex<Option<u64>>,
    pub stdin: tokio::sync::Mutex<Option<Stream>>,
    /// Serializes start/stop/kill/remove of this container.
    ops: tokio::sync::Mutex<()>,
    /// The tasks serving its published ports while it runs.
    ports: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Container {
    fn new(record: Record, store: &Store) -> Arc<Container> {
        let (log_tx, _) = broadcast::channel(1024);
        let (out_tx, _) = broadcast::channel(1024);
        let (phase, _) = watch::channel(Phase::default());
        Arc::new(Container {
            id: record.id.clone(),
            log: tokio::sync::Mutex::new(LogWriter::new(store.log_path(&record.id))),
            record: Mutex::new(record),
            log_tx,
            out_tx,
            phase,
            exec_id: Mutex::new(None),
            stdin: tokio::sync::Mutex::new(None),
            ops: tokio::sync::Mutex::new(()),
            ports: Mutex::new(Vec::new()),
        })
    }

    /// A copy of the record.
    pub fn record(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn name(&self) -> String {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .name
            .clone()
    }

    pub fn state(&self) -> State {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state
            .clone()
    }

    fn update(&self, store: &Store, change: impl FnOnce(&mut Record)) {
        let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut r);
        if let Err(e) = store.save(&r) {
            tracing::error!("cannot save container {}: {e}", r.id);
        }
    }

    pub fn exec_id(&self) -> Option<u64> {
        *self.exec_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn short(&self) -> &str {
        &self.id[..12]
    }
}

/// Everything the daemon serves.
pub struct Engine {
    pub machine: MachineDir,
    pub config: MachineConfig,
    pub images: ImageStore,
    pub guest: Arc<Guest>,
    pub store: Store,
    pub kernel_release: String,
    pub started: SystemTime,
    containers: Mutex<Vec<Arc<Container>>>,
    pub execs: Mutex<HashMap<String, Arc<ExecInstance>>>,
    pub networks: Networks,
    pub volumes: super::volumes::VolumeStore,
}

impl Engine {
    pub fn new(
        machine: MachineDir,
        config: MachineConfig,
        images: ImageStore,
        guest: Arc<Guest>,
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
        })
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

    /// Checks a create request's network: a user network must exist, `container:NAME`
    /// becomes `container:<id>`; aliases need a user network; a shared stack cannot
    /// publish ports.
    fn resolve_network_mode(&self, n: &super::state::NetSettings) -> Result<String, ApiError> {
        let mode = match n.mode.as_str() {
            "none" | "host" => n.mode.clone(),
            m if m.starts_with("container:") => {
                let other = self.find(&m["container:".len()..])?;
                if !n.ports.is_empty() {
                    return Err(ApiError::bad_request(
                        "conflicting options: port publishing and the container type network mode",
                    ));
                }
                format!("container:{}", other.id)
            }
            name => {
                let network = self.networks.find(name)?;
                if network.driver != "bridge" {
                    network.driver.clone().replace("null", "none")
                } else {
                    network.name
                }
            }
        };
        let user_network =
            !matches!(mode.as_str(), "bridge" | "none" | "host") && !mode.starts_with("container:");
        if !n.aliases.is_empty() && !user_network {
            return Err(ApiError::bad_request(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        Ok(mode)
    }

    /// Prepares the network of a container about to start: its guest-side spec, its
    /// endpoint (address held, ports bound on the host) and the port tasks.
    async fn connect_network(
        &self,
        c: &Container,
        record: &Record,
    ) -> Result<(Option<NetworkSpec>, Option<Endpoint>), ApiError> {
        let n = &record.spec.network;
        let network = match n.mode.as_str() {
            "none" => return Ok((None, None)),
            "host" => return Ok((Some(NetworkSpec::Host), None)),
            m if m.starts_with("container:") => {
                let other = self.find(&m["container:".len()..])?;
                if !other.state().running {
                    return Err(ApiError::conflict(format!(
                        "cannot join network of a non running container: {}",
                        other.id
                    )));
                }
                return Ok((
                    Some(NetworkSpec::Container {
                        id: other.id.clone(),
                    }),
                    None,
                ));
            }
            name => self.networks.find(name)?,
        };
        let Some((subnet, prefix, gateway)) = network.subnet else {
            return Err(ApiError::internal(format!(
                "network {} has no subnet",
                network.name
            )));
        };
        let address = self.networks.allocate(&network)?;
        let mut ports = Vec::new();
        let mut tasks = Vec::new();
        for p in &n.ports {
            match super::ports::publish(self.guest.clone(), &record.name, address, p).await {
                Ok((bound, task)) => {
                    ports.push(bound);
                    tasks.push(task);
                }
                Err(e) => {
                    for t in tasks {
                        t.abort();
                    }
                    self.networks.release(&network.id, address);
                    return Err(e);
                }
            }
        }
        *c.ports.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        let mut dns_names = Vec::new();
        if network.has_dns() {
            dns_names.push(record.name.clone());
            dns_names.push(record.id[..12].to_string());
            dns_names.extend(n.aliases.iter().cloned());
        }
        let extra_hosts = n
            .extra_hosts
            .iter()
            .map(|(name, ip)| {
                let ip = if ip == "host-gateway" {
                    gateway.to_string()
                } else {
                    ip.clone()
                };
                (name.clone(), ip)
            })
            .collect();
        let spec = NetworkSpec::Bridge(Attachment {
            network_id: network.id.clone(),
            network_name: network.name.clone(),
            bridge: network.bridge_name(),
            subnet: subnet.to_string(),
            prefix,
            gateway: gateway.to_string(),
            address: address.to_string(),
            dns_names,
            extra_hosts,
        });
        let endpoint = Endpoint {
            network_id: network.id,
            network_name: network.name,
            address,
            prefix,
            gateway,
            ports,
        };
        Ok((Some(spec), Some(endpoint)))
    }

    /// Undoes [`connect_network`](Self::connect_network) once the container has ended.
    fn disconnect_network(&self, c: &Container) {
        for task in c.ports.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
        if let Some(e) = c.record().endpoint {
            self.networks.release(&e.network_id, e.address);
            c.update(&self.store, |r| r.endpoint = None);
        }
    }

    /// `POST /containers/create`.
    pub fn create(&self, body: &Value, name: Option<&str>) -> Result<String, ApiError> {
        super::fields::check_create(body)?;
        let image_name = body["Image"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::bad_request("no image given"))?;
        let image = self
            .images
            .find(image_name)?
            .ok_or_else(|| ApiError::not_found(format!("No such image: {image_name}")))?;
        let config: Value = serde_json::from_slice(&self.images.blobs().get(&image.config)?)
            .map_err(|e| ApiError::internal(format!("image {image_name}: bad config: {e}")))?;
        let image_config = &config["config"];
        let id = super::random_hex(64);
        let mut spec = create::run_spec(body, image_config, &id)?;
        super::limits::check(&spec.resources, self.config.cpus)?;
        spec.network.mode = self.resolve_network_mode(&spec.network)?;

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
                    return Err(ApiError::conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        other.id
                    )));
                }
                n.to_string()
            }
            None => create::random_name(taken),
        };
        // After the name checks, so a refused create makes no folder or volume.
        spec.mounts = self.prepare_mounts(body)?;
        let mut full_config = body.clone();
        if let Some(obj) = full_config.as_object_mut() {
            obj.remove("HostConfig");
            obj.remove("NetworkingConfig");
            obj.insert("Hostname".into(), spec.hostname.clone().into());
            obj.insert("Env".into(), spec.env.clone().into());
            obj.insert("Image".into(), image_name.into());
            if obj.get("Cmd").is_none_or(Value::is_null) {
                obj.insert("Cmd".into(), image_config["Cmd"].clone());
            }
            if obj.get("Entrypoint").is_none_or(Value::is_null) {
                obj.insert("Entrypoint".into(), image_config["Entrypoint"].clone());
            }
            if spec.cwd.is_some() {
                obj.insert("WorkingDir".into(), spec.cwd.clone().into());
            }
            obj.insert("User".into(), spec.user.clone().unwrap_or_default().into());
            obj.insert("Labels".into(), body["Labels"].clone());
        }
        let record = Record {
            id: id.clone(),
            name,
            created: rfc3339_nanos(SystemTime::now()),
            image: image_name.to_string(),
            image_id: image.id().to_string(),
            layers: image.layers.iter().map(|d| d.to_string()).collect(),
            config: full_config,
            host_config: body["HostConfig"].clone(),
            spec,
            state: State::default(),
            restart_count: 0,
            endpoint: None,
        };
        self.store.save(&record)?;
        all.push(Container::new(record, &self.store));
        Ok(id)
    }

    /// `POST /containers/{id}/start`. Returns once the guest runs the process.
    pub async fn start(self: &Arc<Self>, c: &Arc<Container>) -> Result<(), ApiError> {
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
        let layers: Vec<(String, PathBuf)> = record
            .layers
            .iter()
            .map(|d| {
                let digest = crate::image::Digest::parse(d)
                    .map_err(|e| ApiError::internal(format!("layer {d}: {e}")))?;
                Ok((d.clone(), self.images.blobs().path(&digest)))
            })
            .collect::<Result<_, ApiError>>()?;
        self.guest.ensure_layers(&layers).await?;
        let (network, endpoint) = self.connect_network(c, &record).await?;
        c.update(&self.store, |r| r.endpoint = endpoint);
        let result = self.launch(c, &record, network).await;
        if result.is_err() {
            self.disconnect_network(c);
        }
        result
    }

    async fn launch(
        self: &Arc<Self>,
        c: &Arc<Container>,
        record: &Record,
        network: Option<NetworkSpec>,
    ) -> Result<(), ApiError> {
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
            container: Some(ContainerSpec {
                id: c.id.clone(),
                layers: record.layers.clone(),
                hostname: s.hostname.clone(),
                user: s.user.clone(),
                resources: s.resources.clone(),
                security: s.security.clone(),
                network,
                mounts: s.mounts.clone(),
                tmpfs: s.tmpfs.clone(),
                read_only_rootfs: s.read_only_rootfs,
            }),
            join: None,
        };
        let mut exec = self.guest.exec(spec).await?;
        let started = tokio::time::timeout(START_DEADLINE, exec.events.recv()).await;
        let pid = match started {
            Ok(Some(GuestMessage::Started { pid, .. })) => pid,
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
        c.phase.send_modify(|p| p.running = true);
        tokio::spawn(self.clone().supervise(c.clone(), exec));
        Ok(())
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
        self.disconnect_network(&c);
        *c.exec_id.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *c.stdin.lock().await = None;
        c.update(&self.store, |r| r.state.set_exited(code, oom, &error));
        tracing::info!("container {} exited with {code}", c.short());
        let _ = c.out_tx.send(Chunk::End);
        c.phase.send_modify(|p| {
            p.running = false;
            p.exits += 1;
        });
        if c.record().spec.auto_remove && self.remove(&c, true).await.is_ok() {
            self.remove_anonymous_volumes(&c.record()).await;
        }
    }

    /// Sends a signal to the container's first process.
    pub async fn kill(&self, c: &Container, signal: i32) -> Result<(), ApiError> {
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

    /// `docker stop`: SIGTERM, then SIGKILL after `timeout`.
    pub async fn stop(&self, c: &Arc<Container>, timeout: Duration) -> Result<(), ApiError> {
        if !c.state().running {
            return Err(ApiError::not_modified());
        }
        if c.state().paused {
            self.set_paused(c, false).await?;
        }
        let mut phase = c.phase.subscribe();
        if self.kill(c, 15).await.is_ok()
            && tokio::time::timeout(timeout, phase.wait_for(|p| !p.running))
                .await
                .is_ok()
        {
            return Ok(());
        }
        let _ = self.kill(c, 9).await;
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

    pub async fn restart(
        self: &Arc<Self>,
        c: &Arc<Container>,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        match self.stop(c, timeout).await {
            Ok(()) => {}
            Err(e) if e.status == 304 => {}
            Err(e) => return Err(e),
        }
        c.update(&self.store, |r| r.restart_count += 1);
        self.start(c).await
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

    /// `DELETE /containers/{id}`.
    pub async fn remove(&self, c: &Arc<Container>, force: bool) -> Result<(), ApiError> {
        if c.state().running {
            if !force {
                return Err(ApiError::conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            let mut phase = c.phase.subscribe();
            let _ = self.kill(c, 9).await;
            if tokio::time::timeout(KILL_DEADLINE, phase.wait_for(|p| !p.running))
                .await
                .is_err()
            {
                return Err(ApiError::internal(format!(
                    "container {} did not die within {KILL_DEADLINE:?}",
                    c.short()
                )));
            }
            if c.phase.borrow().removed {
                return Ok(()); // auto-removed meanwhile
            }
        }
        let mut all = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        if !all.iter().any(|o| Arc::ptr_eq(o, c)) {
            return Ok(());
        }
        self.store.remove(&c.id)?;
        all.retain(|o| !Arc::ptr_eq(o, c));
        c.phase.send_modify(|p| p.removed = true);
        Ok(())
    }

    /// `POST /containers/{id}/wait`: resolves with the exit code and error once the
    /// condition holds. The condition is fixed against the state when this is called.
    pub fn wait(
        &self,
        c: &Arc<Container>,
        condition: &str,
    ) -> Result<impl std::future::Future<Output = (i32, String)> + Send + 'static, ApiError> {
        let mut phase = c.phase.subscribe();
        let now = *phase.borrow_and_update();
        let target = match condition {
            "" | "not-running" => Target::NotRunning,
            "next-exit" => Target::Exits(now.exits + 1),
            "removed" => Target::Removed,
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid condition {other:?}: use not-running, next-exit or removed"
                )))
            }
        };
        let c = c.clone();
        Ok(async move {
            let done = |p: &Phase| match target {
                Target::NotRunning => !p.running,
                Target::Exits(n) => p.exits >= n || p.removed,
                Target::Removed => p.removed,
            };
            let _ = phase.wait_for(done).await;
            let state = c.state();
            (state.exit_code, state.error)
        })
    }

    /// Stops every container (SIGTERM, then SIGKILL after `timeout`), for machine stop.
    pub async fn stop_all(&self, timeout: Duration) {
        let running: Vec<_> = self
            .all()
            .into_iter()
            .filter(|c| c.state().running)
            .collect();
        let stops = running.iter().map(|c| self.stop(c, timeout));
        for r in futures::future::join_all(stops).await {
            if let Err(e) = r {
                tracing::warn!("stopping a container: {e}");
            }
        }
    }

    pub fn resize_target(&self, c: &Container) -> Result<u64, ApiError> {
        c.exec_id()
            .ok_or_else(|| ApiError::conflict(format!("Container {} is not running", c.id)))
    }
}

#[derive(Clone, Copy)]
enum Target {
    NotRunning,
    Exits(u64),
    Removed,
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
