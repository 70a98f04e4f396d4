//! virtio-serial: QEMU listens on a socket chardev, the guest opens its named port, and
//! the host connects. Works with every QEMU host OS (no vsock needed).

use std::path::Path;

use super::{BoxIo, Establish, Kind, Transport};
use crate::qemu::{Chardev, TransportDevice};
use berth_protocol::boot::AgentTransport;

pub struct Serial {
    chardev: Chardev,
}

impl Serial {
    pub fn open(dir: &Path) -> Serial {
        Serial {
            chardev: chardev(dir),
        }
    }
}

impl Transport for Serial {
    fn kind(&self) -> Kind {
        Kind::Serial
    }

    fn device(&self) -> TransportDevice {
        TransportDevice::Serial {
            chardev: self.chardev.clone(),
            name: berth_protocol::SERIAL_PORT_NAME.to_string(),
        }
    }

    fn agent_transport(&self) -> AgentTransport {
        AgentTransport::Serial {
            name: berth_protocol::SERIAL_PORT_NAME.to_string(),
        }
    }

    fn establish(&mut self) -> Establish<'_> {
        Box::pin(async move {
            loop {
                // QEMU creates the socket shortly after it starts. Bytes we send before
                // the guest opens its port wait in QEMU, so one connection is enough.
                match connect(&self.chardev).await {
                    Ok(io) => return Ok(io),
                    Err(e) => {
                        tracing::trace!("chardev not ready: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        })
    }
}

#[cfg(unix)]
fn chardev(dir: &Path) -> Chardev {
    Chardev::Unix(dir.join("agent.sock"))
}

#[cfg(not(unix))]
fn chardev(_dir: &Path) -> Chardev {
    // Windows QEMU listens on loopback TCP; take a free port from the OS.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(40000);
    Chardev::Tcp(port)
}

async fn connect(c: &Chardev) -> std::io::Result<BoxIo> {
    match c {
        #[cfg(unix)]
        Chardev::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
        #[cfg(not(unix))]
        Chardev::Unix(_) => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "unix sockets need a unix host",
        )),
        Chardev::Tcp(port) => Ok(Box::new(
            tokio::net::TcpStream::connect(("127.0.0.1", *port)).await?,
        )),
    }
}
