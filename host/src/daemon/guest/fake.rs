//! A guest in memory, for the engine's unit tests. Processes are scripts named by their
//! first argument:
//! - `exit N`: starts, then exits with N;
//! - `echo WORDS...`: prints the words on stdout, then exits 0;
//! - `sleep`: runs until a signal ends it (SIGTERM is ignored under `sleep ignore-term`);
//! - `nostart`: the start fails (as a missing executable does);
//! - any container's start fails with `LayerMissing` while `layers_missing` is set;
//! - a builtin (`docker cp`'s): `Stat` prints a directory's stat, the others exit 0.
//!
//! Every request is recorded (`calls`), and [`FakeGuest::die`] plays a machine that went
//! away: every running process's events end and later requests fail.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use berth_mux::{Session, Stream};
use berth_protocol::{
    ContainerOp, ContainerResult, ContainerSet, ErrorKind, ExecSpec, ExitStatus, GuestMessage,
    PortProto, TtySize,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{GuestApi, GuestExec};
use crate::client::ClientError;

struct Running {
    events: mpsc::UnboundedSender<GuestMessage>,
    ignore_term: bool,
    /// The guest's ends of stdout and stderr, closed when the process ends.
    _output: (Stream, Stream),
}

pub struct FakeGuest {
    host: Session,
    guest_ends: tokio::sync::Mutex<mpsc::UnboundedReceiver<Stream>>,
    next_id: AtomicU64,
    running: Mutex<HashMap<u64, Running>>,
    dead: AtomicBool,
    pub calls: Mutex<Vec<String>>,
    /// When each process was started, by tokio's clock (paused in tests).
    pub exec_times: Mutex<Vec<tokio::time::Instant>>,
    /// The next container operation fails with this message.
    pub fail_next_op: Mutex<Option<String>>,
    /// What `disk_usage` answers.
    pub usage: Mutex<super::DiskUsage>,
    /// `layers_listed` answers no (a machine still mounting its disk).
    pub layers_unlisted: AtomicBool,
    /// A container's start fails with `LayerMissing` until `ensure_layers` is called.
    pub layers_missing: AtomicBool,
    /// The guest's ends of the connections to containers, kept open as a container's
    /// server keeps them.
    connections: Mutex<Vec<Stream>>,
}

impl FakeGuest {
    pub fn new() -> Arc<FakeGuest> {
        let (a, b) = tokio::io::duplex(1 << 16);
        let host = Session::client(a);
        let mut guest = Session::server(b);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(s) = guest.accept().await {
                if tx.send(s).is_err() {
                    break;
                }
            }
        });
        Arc::new(FakeGuest {
            host,
            guest_ends: tokio::sync::Mutex::new(rx),
            next_id: AtomicU64::new(1),
            running: Mutex::new(HashMap::new()),
            dead: AtomicBool::new(false),
            calls: Mutex::new(Vec::new()),
            exec_times: Mutex::new(Vec::new()),
            fail_next_op: Mutex::new(None),
            usage: Mutex::new(Default::default()),
            layers_unlisted: AtomicBool::new(false),
            layers_missing: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        })
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    /// The calls so far that start with `prefix`.
    pub fn calls_of(&self, prefix: &str) -> Vec<String> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// The machine goes away.
    pub fn die(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.running.lock().unwrap().clear();
    }

    fn check_alive(&self) -> Result<(), ClientError> {
        match self.dead.load(Ordering::SeqCst) {
            true => Err(ClientError::Closed),
            false => Ok(()),
        }
    }

    /// A stream pair: the host's end, and the guest's end the script writes to.
    async fn pair(&self) -> Result<(Stream, Stream), ClientError> {
        let mut host = self.host.open().await?;
        // yamux announces a stream with its first frame: one byte the guest end drops.
        let io = |e: std::io::Error| ClientError::Unexpected(e.to_string());
        host.write_all(b"\0").await.map_err(io)?;
        host.flush().await.map_err(io)?;
        let mut guest = self
            .guest_ends
            .lock()
            .await
            .recv()
            .await
            .ok_or(ClientError::Closed)?;
        let mut byte = [0u8; 1];
        guest.read_exact(&mut byte).await.map_err(io)?;
        Ok((host, guest))
    }
}

#[async_trait::async_trait]
impl GuestApi for FakeGuest {
    async fn exec(&self, spec: ExecSpec) -> Result<GuestExec, ClientError> {
        self.check_alive()?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let target = match (&spec.container, &spec.join) {
            (Some(c), _) => format!("container {}", &c.id[..12]),
            (_, Some(j)) if j.stopped.is_some() => format!("files {}", &j.id[..12]),
            (_, Some(j)) => format!("join {}", &j.id[..12]),
            _ => "vm".into(),
        };
        self.record(format!("exec {target} {}", spec.argv.join(" ")));
        if let Some(berth_protocol::NetworkSpec::Bridge { networks }) =
            spec.container.as_ref().and_then(|c| c.network.as_ref())
        {
            let names: Vec<String> = networks
                .iter()
                .map(|a| format!("{}={}", a.network_name, a.address))
                .collect();
            self.record(format!("networks {target} {}", names.join(",")));
        }
        self.exec_times
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        let (stdout, mut out) = self.pair().await?;
        let (stderr, mut err) = self.pair().await?;
        let (tx, events) = mpsc::unbounded_channel();
        let argv = spec.argv.clone();
        let builtin = spec.join.as_ref().and_then(|j| j.builtin.clone());
        let script = match builtin {
            Some(_) => "builtin",
            None if spec.container.is_some() && self.layers_missing.load(Ordering::SeqCst) => {
                "layers-missing"
            }
            None => argv.first().map(String::as_str).unwrap_or(""),
        };
        match script {
            "layers-missing" => {
                let _ = tx.send(GuestMessage::Error {
                    exec_id: Some(id),
                    kind: ErrorKind::LayerMissing,
                    message: "layer sha256:... is not in the cache".into(),
                });
            }
            "nostart" => {
                let _ = tx.send(GuestMessage::Error {
                    exec_id: Some(id),
                    kind: ErrorKind::NotFound,
                    message: "exec: \"nostart\": executable file not found".into(),
                });
            }
            "exit" | "echo" | "builtin" => {
                let _ = tx.send(GuestMessage::Started {
                    exec_id: id,
                    pid: 100 + id as u32,
                });
                if script == "echo" {
                    let line = format!("{}\n", argv[1..].join(" "));
                    let _ = out.write_all(line.as_bytes()).await;
                }
                if let Some(berth_protocol::Builtin::Stat { path }) = &builtin {
                    let stat = berth_protocol::PathStat {
                        name: path.rsplit('/').next().unwrap_or("").into(),
                        size: 4096,
                        mode: 0o040755,
                        mtime_secs: 0,
                        mtime_nanos: 0,
                        link_target: String::new(),
                        uid: 0,
                        gid: 0,
                    };
                    let line = serde_json::to_string(&stat).unwrap() + "\n";
                    let _ = out.write_all(line.as_bytes()).await;
                }
                let code = match script {
                    "exit" => argv.get(1).and_then(|c| c.parse().ok()).unwrap_or(0),
                    _ => 0,
                };
                let _ = out.shutdown().await;
                let _ = err.shutdown().await;
                let _ = tx.send(GuestMessage::Exited {
                    exec_id: id,
                    status: ExitStatus::Code(code),
                    oom_killed: false,
                });
            }
            _ => {
                let _ = tx.send(GuestMessage::Started {
                    exec_id: id,
                    pid: 100 + id as u32,
                });
                self.running.lock().unwrap().insert(
                    id,
                    Running {
                        events: tx,
                        ignore_term: argv.iter().any(|a| a == "ignore-term"),
                        _output: (out, err),
                    },
                );
            }
        }
        Ok(GuestExec {
            id,
            stdin: None,
            stdout,
            stderr,
            events,
        })
    }

    fn exec_done(&self, exec_id: u64) {
        self.running.lock().unwrap().remove(&exec_id);
    }

    async fn signal(&self, exec_id: u64, signal: i32) -> Result<(), ClientError> {
        self.check_alive()?;
        self.record(format!("signal {exec_id} {signal}"));
        let mut running = self.running.lock().unwrap();
        if let Some(p) = running.get(&exec_id) {
            if !(signal == 15 && p.ignore_term) {
                let _ = p.events.send(GuestMessage::Exited {
                    exec_id,
                    status: ExitStatus::Signal(signal),
                    oom_killed: false,
                });
                running.remove(&exec_id);
            }
        }
        Ok(())
    }

    async fn resize(&self, exec_id: u64, size: TtySize) -> Result<(), ClientError> {
        self.check_alive()?;
        self.record(format!("resize {exec_id} {}x{}", size.rows, size.cols));
        Ok(())
    }

    async fn container_op(
        &self,
        id: &str,
        op: ContainerOp,
    ) -> Result<ContainerResult, ClientError> {
        self.check_alive()?;
        let line = match &op {
            ContainerOp::Connect(a) => format!("connect {}={}", a.network_name, a.address),
            ContainerOp::Disconnect { network_id } => format!("disconnect {}", &network_id[..12]),
            op => format!("{op:?}"),
        };
        self.record(format!("op {} {line}", &id[..12]));
        if let Some(message) = self.fail_next_op.lock().unwrap().take() {
            return Ok(ContainerResult::Failed { message });
        }
        Ok(ContainerResult::Done)
    }

    async fn remove_volume(&self, name: &str) -> Result<Result<(), String>, ClientError> {
        self.check_alive()?;
        self.record(format!("remove-volume {name}"));
        Ok(Ok(()))
    }

    async fn remove_container_files(
        &self,
        which: ContainerSet,
    ) -> Result<Result<(), String>, ClientError> {
        self.check_alive()?;
        let line = match which {
            ContainerSet::These(ids) => format!("rm-files {}", short_ids(&ids)),
            ContainerSet::AllBut(ids) => format!("rm-files all-but {}", short_ids(&ids)),
        };
        self.record(line);
        Ok(Ok(()))
    }

    async fn disk_usage(&self) -> Result<super::DiskUsage, ClientError> {
        self.check_alive()?;
        self.record("disk-usage".into());
        Ok(self.usage.lock().unwrap().clone())
    }

    async fn prepare_network(
        &self,
        network: berth_protocol::BridgeNetwork,
    ) -> Result<Result<(), String>, ClientError> {
        self.check_alive()?;
        self.record(format!(
            "prepare-network {} {}/{}",
            network.bridge, network.gateway, network.prefix
        ));
        Ok(Ok(()))
    }

    async fn ensure_layers(&self, layers: &[(String, PathBuf)]) -> Result<(), ClientError> {
        self.check_alive()?;
        self.record(format!("layers {}", layers.len()));
        self.layers_missing.store(false, Ordering::SeqCst);
        self.layers_unlisted.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn layers_listed(&self) -> bool {
        !self.layers_unlisted.load(Ordering::SeqCst)
    }

    async fn connect(&self, addr: &str, _proto: PortProto) -> Result<Stream, ClientError> {
        self.check_alive()?;
        self.record(format!("connect {addr}"));
        let (host, guest) = self.pair().await?;
        self.connections.lock().unwrap().push(guest);
        Ok(host)
    }
}

/// Ids as the calls log writes them: 12 digits each, comma-separated.
fn short_ids(ids: &[String]) -> String {
    ids.iter().map(|id| &id[..12]).collect::<Vec<_>>().join(",")
}
