//! vhost-user vsock: rust-vmm's `vhost-device-vsock` runs as a backend process next to
//! QEMU (which then needs shareable guest memory). The backend forwards the guest's
//! connection to host port P to the unix socket `<uds-path>_P`, on which we listen.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::UnixListener;

use super::{Establish, Kind, Transport, TransportError};
use crate::qemu::TransportDevice;
use crate::vm::last_lines;
use berth_protocol::boot::AgentTransport;

/// How long the backend gets to create its socket.
const BACKEND_DEADLINE: Duration = Duration::from_secs(10);

pub struct VhostUser {
    listener: UnixListener,
    socket: PathBuf,
    log: PathBuf,
    backend: Child,
}

impl VhostUser {
    pub fn open(dir: &Path) -> Result<VhostUser, TransportError> {
        let socket = dir.join("vhu.sock");
        let uds = dir.join("vsock.sock");
        let log = dir.join("backend.log");
        let port = berth_protocol::VSOCK_PORT;
        // Listen before the guest can dial.
        let listener =
            listen(&uds, port).map_err(|source| setup("listening for the guest", source))?;
        let backend = start_backend(&socket, &uds, &log)?;
        Ok(VhostUser {
            listener,
            socket,
            log,
            backend,
        })
    }
}

impl Transport for VhostUser {
    fn kind(&self) -> Kind {
        Kind::VhostUser
    }

    fn device(&self) -> TransportDevice {
        TransportDevice::VhostUser {
            socket: self.socket.clone(),
        }
    }

    fn agent_transport(&self) -> AgentTransport {
        AgentTransport::default()
    }

    fn establish(&mut self) -> Establish<'_> {
        Box::pin(async move { Ok(Box::new(self.listener.accept().await?.0) as super::BoxIo) })
    }

    fn stop(&mut self) {
        if let Ok(None) = self.backend.try_wait() {
            let _ = self.backend.kill();
        }
        let _ = self.backend.wait();
    }

    fn diagnostics(&self) -> String {
        let tail = last_lines(&self.log, 5);
        if tail.trim().is_empty() {
            String::new()
        } else {
            format!("--- vhost-device-vsock said ---\n{tail}")
        }
    }
}

impl Drop for VhostUser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Listens on `<uds>_<port>`, where the backend forwards the guest's connections.
pub fn listen(uds: &Path, port: u32) -> std::io::Result<UnixListener> {
    let mut path = uds.as_os_str().to_owned();
    path.push(format!("_{port}"));
    UnixListener::bind(path)
}

fn setup(what: &str, source: std::io::Error) -> TransportError {
    TransportError::Setup {
        kind: Kind::VhostUser,
        what: what.into(),
        source,
    }
}

fn start_backend(socket: &Path, uds: &Path, log_path: &Path) -> Result<Child, TransportError> {
    let bin = super::vhost_user_backend().ok_or_else(|| TransportError::Unavailable {
        kind: Kind::VhostUser,
        why: "vhost-device-vsock not found: `cargo install vhost-device-vsock` or set BERTH_VHOST_VSOCK".into(),
    })?;
    let log = std::fs::File::create(log_path).map_err(|e| setup("creating the backend log", e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| setup("creating the backend log", e))?;
    let mut cmd = Command::new(&bin);
    cmd.arg("--guest-cid")
        .arg("3")
        .arg("--socket")
        .arg(socket)
        .arg("--uds-path")
        .arg(uds)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    crate::sys::kill_with_parent(&mut cmd);
    tracing::debug!("vhost-user backend: {cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|e| setup(&format!("starting {}", bin.display()), e))?;
    // QEMU connects to the backend's socket at start-up, so it must exist first. The
    // backend takes a few milliseconds to start: every VM's start waits here.
    let deadline = Instant::now() + BACKEND_DEADLINE;
    if let Err(failed) =
        crate::helper::await_socket(&mut child, socket, deadline, Duration::from_millis(1))
    {
        crate::helper::stop(&mut child);
        return Err(TransportError::Backend {
            what: failed.describe("vhost-device-vsock", socket, BACKEND_DEADLINE),
            log: format!("\n{}", last_lines(log_path, 10)),
        });
    }
    Ok(child)
}
