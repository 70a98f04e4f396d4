//! What the daemon keeps of each container, on disk under the machine's `containers/`:
//! `<id>/container.json` (the record below, replaced atomically on every change) and
//! `<id>/json.log` (its output, see `logs`). Records survive a daemon restart and a
//! machine stop/start; containers that were running are then Exited.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::health::{Check, Health};
use super::models::{ContainerConfig, HostConfig};
use super::restart::Policy;
use berth_protocol::{ContainerSpec, PortProto, Resources, Security, TtySize};
use serde::{Deserialize, Serialize};

use crate::image::time::rfc3339_nanos;
use crate::machine::write_atomic;

/// The zero time, as Docker shows a time that has not happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    /// `sha256:...`.
    pub image_id: String,
    /// Layer digests, base first.
    pub layers: Vec<String>,
    /// Docker's `Config` as created (image defaults filled in).
    pub config: ContainerConfig,
    /// Docker's `HostConfig` as created.
    pub host_config: HostConfig,
    pub spec: RunSpec,
    pub state: State,
    #[serde(default)]
    pub restart_count: u32,
    /// Stopped or killed by the user: the restart policy leaves it alone.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Where the running container is on each of its networks (the first is where its
    /// ports are published); empty while it does not run.
    #[serde(default, alias = "endpoint", deserialize_with = "endpoints_or_one")]
    pub endpoints: Vec<Endpoint>,
}

/// Records written before containers had several networks hold one `endpoint` or null.
fn endpoints_or_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Endpoint>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Many(Vec<Endpoint>),
        One(Option<Endpoint>),
    }
    Ok(match Either::deserialize(d)? {
        Either::Many(all) => all,
        Either::One(one) => one.into_iter().collect(),
    })
}

impl Record {
    /// The endpoint on the network with this id or name, while running.
    pub fn endpoint_on(&self, network: &str) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.network_id == network || e.network_name == network)
    }

    /// The first endpoint: published ports, the top-level address of inspect.
    pub fn primary_endpoint(&self) -> Option<&Endpoint> {
        self.endpoints.first()
    }
}

impl Record {
    /// The container as the guest runs it, on `network` (`None`: no network, or only
    /// its files for work on a container that is not running).
    pub fn guest_spec(&self, network: Option<berth_protocol::NetworkSpec>) -> ContainerSpec {
        let s = &self.spec;
        ContainerSpec {
            id: self.id.clone(),
            layers: self.layers.clone(),
            hostname: s.hostname.clone(),
            user: s.user.clone(),
            resources: s.resources.clone(),
            security: s.security.clone(),
            network,
            mounts: s.mounts.clone(),
            tmpfs: s.tmpfs.clone(),
            read_only_rootfs: s.read_only_rootfs,
            process: s.process.clone(),
            namespaces: s.namespaces.clone(),
        }
    }
}

/// A running container's place on a bridge network and its published ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: String,
    pub network_name: String,
    pub address: std::net::Ipv4Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv4Addr,
    /// The ports as bound on the host (random ones resolved).
    pub ports: Vec<PortSpec>,
}

/// How a container is networked, from the create request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSettings {
    /// `bridge`, `none`, `host`, `container:<id>`, or a user network's name.
    pub mode: String,
    /// `--network-alias`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `-p`; a host port of 0 is picked at start.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// `--add-host`: (name, address).
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `--link`: (container id, alias), ids resolved at create.
    #[serde(default)]
    pub links: Vec<(String, String)>,
    /// The bridge networks it is on besides `mode` (`docker network connect`, or more
    /// than one network at create), in the order they were joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Joined>,
}

/// One more network of a container, by name, with its aliases there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub network: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl NetSettings {
    /// Whether `mode` names a bridge network (`bridge` or a user network's name), not
    /// `none`, `host`, `container:ID` or nothing at all.
    pub fn mode_is_network(&self) -> bool {
        !matches!(self.mode.as_str(), "none" | "host" | "") && !self.mode.starts_with("container:")
    }

    /// Every bridge network it is on, with its aliases there: `mode` first.
    pub fn networks(&self) -> Vec<Joined> {
        let first = self.mode_is_network().then(|| Joined {
            network: self.mode.clone(),
            aliases: self.aliases.clone(),
        });
        first.into_iter().chain(self.also.iter().cloned()).collect()
    }

    /// Whether it is on the network named `name`.
    pub fn is_on(&self, name: &str) -> bool {
        (self.mode_is_network() && self.mode == name) || self.also.iter().any(|j| j.network == name)
    }
}

impl Default for NetSettings {
    /// Containers made before berth had networks had none.
    fn default() -> Self {
        NetSettings {
            mode: "none".into(),
            aliases: Vec::new(),
            ports: Vec::new(),
            extra_hosts: Vec::new(),
            links: Vec::new(),
            also: Vec::new(),
        }
    }
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub container_port: u16,
    pub proto: PortProto,
    pub host_ip: String,
    pub host_port: u16,
}

/// What the guest runs for this container, derived from the create request once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSpec {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<String>,
    pub hostname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub console: Option<TtySize>,
    pub auto_remove: bool,
    pub resources: Resources,
    pub security: Security,
    #[serde(default)]
    pub network: NetSettings,
    /// Host folders and volumes (`-v`, `--mount`), checked and named at create.
    #[serde(default)]
    pub mounts: Vec<berth_protocol::Mount>,
    /// `--tmpfs` mounts.
    #[serde(default)]
    pub tmpfs: Vec<berth_protocol::Tmpfs>,
    /// `--read-only`.
    #[serde(default)]
    pub read_only_rootfs: bool,
    /// `--ulimit`, `--init`, `--shm-size`, `--sysctl`, `--dns*`, ...
    #[serde(default)]
    pub process: berth_protocol::ProcessOptions,
    /// `--pid`, `--ipc`, `--uts` (container ids resolved).
    #[serde(default)]
    pub namespaces: berth_protocol::Namespaces,
    /// `--restart`.
    #[serde(default)]
    pub restart: Policy,
    /// `--stop-signal` (or the image's `STOPSIGNAL`); SIGTERM when absent.
    #[serde(default)]
    pub stop_signal: Option<i32>,
    /// `--stop-timeout` in seconds; the stop request's or 10 s when absent.
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    /// The healthcheck, merged from the request and the image.
    #[serde(default)]
    pub health: Option<Check>,
}

/// Docker's container states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

/// Docker's `State` object, field for field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: Status,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: u32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: Status::Created,
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            health: None,
        }
    }
}

impl State {
    pub fn set_running(&mut self, pid: u32) {
        self.status = Status::Running;
        self.running = true;
        self.restarting = false;
        self.paused = false;
        self.oom_killed = false;
        self.pid = pid;
        self.exit_code = 0;
        self.error.clear();
        self.started_at = rfc3339_nanos(SystemTime::now());
        self.finished_at = ZERO_TIME.into();
    }

    pub fn set_exited(&mut self, code: i32, oom_killed: bool, error: &str) {
        self.status = Status::Exited;
        self.running = false;
        self.restarting = false;
        if let Some(h) = &mut self.health {
            h.status = "unhealthy".into();
        }
        self.paused = false;
        self.pid = 0;
        self.exit_code = code;
        self.oom_killed = oom_killed;
        self.error = error.into();
        self.finished_at = rfc3339_nanos(SystemTime::now());
    }

    /// Exited, waiting for the restart policy's next start.
    pub fn set_restarting(&mut self) {
        self.status = Status::Restarting;
        self.restarting = true;
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        self.status = if paused {
            Status::Paused
        } else {
            Status::Running
        };
    }

    /// Running or paused: the process exists.
    pub fn is_live(&self) -> bool {
        self.running
    }
}

/// The containers directory of a machine.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join("json.log")
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join("container.json")
    }

    /// Writes a record atomically.
    pub fn save(&self, record: &Record) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_atomic(&self.record_path(&record.id), &bytes)
    }

    /// Every readable record. Containers that were running when the daemon went away are
    /// Exited now (with Docker's 255 when no exit was recorded); damaged records are
    /// skipped with a warning, never lost: their files stay.
    pub fn load_all(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let path = self.record_path(&id);
            let record = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()));
            match record {
                Ok(mut r) => {
                    if r.state.running || r.state.restarting || r.state.status == Status::Removing {
                        r.state
                            .set_exited(255, false, "the machine stopped while it ran");
                        let _ = self.save(&r);
                    }
                    out.push(r);
                }
                Err(e) => tracing::warn!("skipping container record {}: {e}", path.display()),
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        out
    }

    /// Removes everything of a container.
    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.dir_of(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Image ids that containers of any machine under `machines` use (for `rmi`).
pub fn images_in_use(machines: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in std::fs::read_dir(machines).into_iter().flatten().flatten() {
        let store = Store::new(m.path().join("containers"));
        for entry in std::fs::read_dir(&store.dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Ok(bytes) = std::fs::read(store.record_path(&id)) {
                if let Ok(r) = serde_json::from_slice::<Record>(&bytes) {
                    out.push((r.image_id, r.id));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn record(id: &str) -> Record {
        Record {
            id: id.into(),
            name: "web".into(),
            created: rfc3339_nanos(SystemTime::now()),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            layers: vec![],
            config: ContainerConfig::default(),
            host_config: HostConfig::default(),
            spec: RunSpec::default(),
            state: State::default(),
            restart_count: 0,
            stopped_by_user: false,
            endpoints: Vec::new(),
        }
    }

    #[test]
    fn records_survive_and_running_ones_come_back_exited() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().to_path_buf());
        let mut a = record("a");
        a.state.set_running(42);
        store.save(&a).unwrap();
        let mut b = record("b");
        b.state.set_exited(3, false, "");
        store.save(&b).unwrap();
        // A damaged record is skipped, not fatal.
        std::fs::create_dir_all(tmp.path().join("c")).unwrap();
        std::fs::write(tmp.path().join("c/container.json"), b"{").unwrap();
        let all = store.load_all();
        assert_eq!(all.len(), 2);
        let a = all.iter().find(|r| r.id == "a").unwrap();
        assert_eq!(a.state.status, Status::Exited);
        assert_eq!(a.state.exit_code, 255);
        assert!(!a.state.running);
        let b = all.iter().find(|r| r.id == "b").unwrap();
        assert_eq!(b.state.exit_code, 3);
        assert!(tmp.path().join("c/container.json").exists());
        store.remove("a").unwrap();
        store.remove("a").unwrap();
        assert_eq!(store.load_all().len(), 1);
    }

    #[test]
    fn state_serializes_with_dockers_names() {
        let v = serde_json::to_value(State::default()).unwrap();
        for key in [
            "Status",
            "Running",
            "OOMKilled",
            "ExitCode",
            "StartedAt",
            "Pid",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["Status"], "created");
    }
}
