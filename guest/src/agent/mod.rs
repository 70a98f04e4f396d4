//! The agent: serves the host over one multiplexed connection.
//!
//! Each stream the host opens starts with a `StreamOpen` frame. Control streams carry
//! requests (`control`); stdio streams are parked in a per-connection registry until the
//! `Exec` that names them picks them up (`exec`). Handlers validate, delegate, and map
//! failures to an `Error` reply: a malformed or failing request never ends the agent.

mod containers;
mod control;
mod exec;
mod join;
mod layers;
mod spec;
mod stdio;
mod usage;
mod volumes;

use std::path::PathBuf;
use std::sync::Arc;

use berth_mux::{read_msg, Session};
use berth_protocol::{StdioFd, StreamOpen};

use crate::process::Reaper;
pub use stdio::StreamRegistry;
pub use volumes::volume_dir;

/// What the agent needs from the rest of berth-init.
#[derive(Clone)]
pub struct Agent {
    pub reaper: Reaper,
    /// Whether the agent is PID 1 (then `PowerOff` really powers the VM off).
    pub is_init: bool,
    /// The layer cache: one directory per layer, named by the hex of its digest.
    pub layers_dir: PathBuf,
    /// Per-container state (overlay upper and work dirs, the rootfs mount point).
    pub containers_dir: PathBuf,
    /// The guest's networks.
    pub net: Arc<crate::net::Net>,
    /// Host loopback ports served inside the guest (`--forward-host-port`).
    pub host_ports: Vec<u16>,
    /// Named volumes: `<name>/_data` each (`berth_protocol::VOLUMES_DIR` in the VM).
    pub volumes_dir: PathBuf,
    /// Host folders shared with this guest, mounted at boot: set once they are, before
    /// [`Ready`] (see [`Agent::shares`]).
    pub shares: Arc<std::sync::OnceLock<crate::shares::Shares>>,
    /// Whether the state (the machine's disk) is in place; see [`Ready`].
    pub ready: Ready,
}

/// Whether the agent's state is in place: a machine mounts its disk while the host's
/// hello is already answered, so the host's own start (its API socket, the client's
/// first calls) overlaps the mount. The requests after the hello that need the state wait
/// for it (see `control::holds_for_the_state`).
#[derive(Clone)]
pub struct Ready(Vec<tokio::sync::watch::Receiver<bool>>);

impl Ready {
    /// In place from the start.
    pub fn now() -> Ready {
        Ready(Vec::new())
    }

    /// In place once the sender sends `true`, or is dropped (its work failed: the
    /// requests then meet what is there, as they would after a failed mount).
    pub fn later() -> (tokio::sync::watch::Sender<bool>, Ready) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Ready(vec![rx]))
    }

    /// In place once both are.
    pub fn and(mut self, other: Ready) -> Ready {
        self.0.extend(other.0);
        self
    }

    /// Resolves once the state is in place.
    pub async fn wait(&self) {
        for rx in &self.0 {
            let _ = rx.clone().wait_for(|ready| *ready).await;
        }
    }
}

/// State of one host connection.
#[derive(Default)]
struct Connection {
    stdio: StreamRegistry<(u64, StdioFd)>,
    layers: StreamRegistry<String>,
    /// Processes started on this connection: exec id -> pid.
    pids: std::sync::Mutex<std::collections::HashMap<u64, u32>>,
    /// Pseudo-terminal masters of processes started with a tty, for `Resize`.
    ttys: std::sync::Mutex<std::collections::HashMap<u64, std::os::fd::OwnedFd>>,
}

impl Agent {
    /// The host folders this guest shares. Read by requests that wait for [`Ready`], so
    /// they are mounted by then; none before (a bind of a host folder is then refused).
    pub fn shares(&self) -> &crate::shares::Shares {
        static NONE: std::sync::LazyLock<crate::shares::Shares> =
            std::sync::LazyLock::new(Default::default);
        self.shares.get().unwrap_or(&NONE)
    }

    /// Serves one host connection until it ends.
    pub async fn serve(&self, mut session: Session) {
        let conn = Arc::new(Connection::default());
        let forwards: Vec<_> = self
            .host_ports
            .iter()
            .map(|&port| tokio::spawn(crate::net::ports::forward_host_port(port, session.opener())))
            .collect();
        while let Some(mut stream) = session.accept().await {
            let agent = self.clone();
            let conn = conn.clone();
            tokio::spawn(async move {
                match read_msg::<_, StreamOpen>(&mut stream).await {
                    Ok(Some(StreamOpen::Control)) => control::run(agent, conn, stream).await,
                    Ok(Some(StreamOpen::Stdio { exec_id, fd })) => {
                        conn.stdio.put((exec_id, fd), stream)
                    }
                    Ok(Some(StreamOpen::Layer { digest })) => conn.layers.put(digest, stream),
                    Ok(Some(StreamOpen::Connect { addr, proto })) => {
                        crate::net::ports::connect(stream, addr, proto).await
                    }
                    Ok(Some(StreamOpen::HostPort { port })) => {
                        tracing::warn!(
                            "the host opened a host-port stream ({port}); only the guest does"
                        )
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("dropping a stream with a bad opening frame: {e}"),
                }
            });
        }
        for f in forwards {
            f.abort();
        }
        tracing::info!("host connection closed");
    }
}
