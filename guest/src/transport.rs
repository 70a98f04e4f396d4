//! Where the host's connection comes from: an AF_VSOCK listener or a virtio-serial port.
//! Either way the agent gets one byte stream and runs a multiplexed session over it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_mux::Session;

use crate::agent::Agent;
use crate::config::AgentTransport;
use crate::sys::CharDevice;

/// How long to wait for the transport device to appear after boot.
const DEVICE_DEADLINE: Duration = Duration::from_secs(20);
const VIRTIO_PORTS: &str = "/sys/class/virtio-ports";

/// Serves the host forever (returns only if the transport cannot be set up).
pub async fn serve(transport: &AgentTransport, agent: Agent) -> io::Result<()> {
    match transport {
        AgentTransport::Vsock { port } => serve_vsock(*port, agent).await,
        AgentTransport::Serial { name } => serve_serial(name, agent).await,
    }
}

/// Dials the host (context id 2) on `port`, serves the connection, and dials again when
/// it ends. The guest dials rather than listens so that the host never has to poll, and
/// no connection can arrive before the vsock driver is ready.
async fn serve_vsock(port: u32, agent: Agent) -> io::Result<()> {
    use tokio_vsock::{VsockAddr, VsockStream, VMADDR_CID_HOST};
    let started = Instant::now();
    let mut connected_once = false;
    loop {
        match VsockStream::connect(VsockAddr::new(VMADDR_CID_HOST, port)).await {
            Ok(stream) => {
                tracing::info!("connected to the host on vsock port {port}");
                connected_once = true;
                agent.serve(Session::server(stream)).await;
            }
            Err(e) if connected_once || started.elapsed() < DEVICE_DEADLINE => {
                tracing::debug!("vsock connect to the host failed: {e}");
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("dialing the host on vsock port {port}: {e}"),
                ))
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve_serial(name: &str, agent: Agent) -> io::Result<()> {
    let started = Instant::now();
    let path = loop {
        match find_port(Path::new(VIRTIO_PORTS), name) {
            Some(p) => break p,
            None if started.elapsed() < DEVICE_DEADLINE => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no virtio-serial port named {name} under {VIRTIO_PORTS}"),
                ))
            }
        }
    };
    tracing::info!("serving on virtio-serial port {name} ({})", path.display());
    // A serial port carries one connection at a time; when the host goes away, reopen it
    // and wait for the next one.
    loop {
        let dev = CharDevice::open(&path)?;
        agent.serve(Session::server(dev)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Finds the device node of the virtio-serial port called `name`.
pub fn find_port(class_dir: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(class_dir)
        .ok()?
        .flatten()
        .find_map(|entry| {
            let port_name = std::fs::read_to_string(entry.path().join("name")).ok()?;
            (port_name.trim() == name).then(|| Path::new("/dev").join(entry.file_name()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_port_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (dev, name) in [("vport0p0", "other"), ("vport0p1", "berth.0")] {
            std::fs::create_dir(dir.path().join(dev)).unwrap();
            std::fs::write(dir.path().join(dev).join("name"), format!("{name}\n")).unwrap();
        }
        assert_eq!(
            find_port(dir.path(), "berth.0"),
            Some(PathBuf::from("/dev/vport0p1"))
        );
        assert_eq!(find_port(dir.path(), "missing"), None);
    }
}
