//! Where the host's connection comes from: an AF_VSOCK connection the agent dials, or a
//! virtio-serial port it opens.
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

/// The first connection to the host, being made on a task of its own. The agent starts it
/// before the rest of its set-up (the reaper, the warm-up, the network), while the state
/// disk and the shared folders mount (see `init::mount_state`): on a machine's second vCPU the dial and the
/// host's first requests come in meanwhile. A cold `berth run` waits for both the hello
/// and the disk; moving either alone gained nothing, both together about 15 ms.
pub struct Dialing(tokio::task::JoinHandle<io::Result<Link>>);

/// One connection's byte stream.
enum Link {
    /// The port dialled, and the connection.
    Vsock(u32, tokio_vsock::VsockStream),
    /// The port's device node (reopened for the next connection) and the open port.
    Serial(PathBuf, CharDevice),
}

impl Dialing {
    /// Starts the first connection. Call it on the runtime; the dial is under way once
    /// the caller next yields.
    pub fn start(transport: &AgentTransport) -> Dialing {
        let transport = transport.clone();
        Dialing(tokio::spawn(async move {
            match transport {
                AgentTransport::Vsock { port } => {
                    let stream = dial_vsock(port, Some(Instant::now())).await?;
                    Ok(Link::Vsock(port, stream))
                }
                AgentTransport::Serial { name } => open_serial(&name).await,
            }
        }))
    }
}

/// Serves the host forever, starting with the connection `first` makes (returns only if
/// the transport cannot be set up).
pub async fn serve(first: Dialing, agent: Agent) -> io::Result<()> {
    let link = first
        .0
        .await
        .map_err(|e| io::Error::other(format!("the dial to the host failed: {e}")))??;
    match link {
        Link::Vsock(port, stream) => serve_vsock(port, stream, agent).await,
        Link::Serial(path, dev) => serve_serial(path, dev, agent).await,
    }
}

/// Dials the host (context id 2) on `port`. The guest dials rather than listens so that
/// the host never has to poll, and no connection can arrive before the vsock driver is
/// ready. Until a first connection is made (`first_since` is its start) a failure is
/// retried for [`DEVICE_DEADLINE`]; after that, for ever.
async fn dial_vsock(
    port: u32,
    first_since: Option<Instant>,
) -> io::Result<tokio_vsock::VsockStream> {
    use tokio_vsock::{VsockAddr, VsockStream, VMADDR_CID_HOST};
    loop {
        match VsockStream::connect(VsockAddr::new(VMADDR_CID_HOST, port)).await {
            Ok(stream) => {
                tracing::debug!("connected to the host on vsock port {port}");
                return Ok(stream);
            }
            Err(e) if first_since.is_none_or(|t| t.elapsed() < DEVICE_DEADLINE) => {
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

/// Serves `stream`, then each connection dialled after it ends.
async fn serve_vsock(
    port: u32,
    mut stream: tokio_vsock::VsockStream,
    agent: Agent,
) -> io::Result<()> {
    loop {
        agent.serve(Session::server(stream)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream = dial_vsock(port, None).await?;
    }
}

/// Finds the virtio-serial port called `name` (waiting for it to appear) and opens it.
async fn open_serial(name: &str) -> io::Result<Link> {
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
    let dev = CharDevice::open(&path)?;
    tracing::debug!("serving on virtio-serial port {name} ({})", path.display());
    Ok(Link::Serial(path, dev))
}

/// Serves the open port. A serial port carries one connection at a time; when the host
/// goes away, reopen it and wait for the next one.
async fn serve_serial(path: PathBuf, mut dev: CharDevice, agent: Agent) -> io::Result<()> {
    loop {
        agent.serve(Session::server(dev)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        dev = CharDevice::open(&path)?;
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
