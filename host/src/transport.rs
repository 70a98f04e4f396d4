//! Transports: how bytes get between the host and the guest agent. Three kinds, one
//! interface: each yields a byte stream that `berth_mux` multiplexes, so everything above
//! is the same whichever is used.
//!
//! - vhost-vsock: the host kernel's vsock device (Linux hosts with /dev/vhost-vsock).
//! - vhost-user: rust-vmm's `vhost-device-vsock` backend process; it forwards the guest's
//!   connection to host port P to the unix socket `<uds-path>_P`.
//! - serial: a virtio-serial port behind a QEMU socket chardev; works on every host OS.

use std::fmt;
use std::io;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::qemu::Chardev;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    VhostVsock,
    VhostUser,
    Serial,
}

/// Preference order for `--transport auto`.
pub const ALL: [Kind; 3] = [Kind::VhostVsock, Kind::VhostUser, Kind::Serial];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::VhostVsock => "vsock",
            Kind::VhostUser => "vhost-user",
            Kind::Serial => "serial",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("unknown transport {0:?}: expected auto, vsock, vhost-user or serial")]
    Unknown(String),
    #[error("transport {kind} is not available here: {why}")]
    Unavailable { kind: Kind, why: String },
}

/// Whether a transport works on this host, with a detail or the reason it does not.
#[derive(Debug, Clone)]
pub struct Availability {
    pub kind: Kind,
    pub status: Result<String, String>,
}

pub fn probe(kind: Kind) -> Availability {
    let status = match kind {
        Kind::VhostVsock => probe_vhost_vsock(),
        Kind::VhostUser => probe_vhost_user(),
        Kind::Serial => Ok("virtio-serial port over a QEMU socket chardev".to_string()),
    };
    Availability { kind, status }
}

pub fn probe_all() -> Vec<Availability> {
    ALL.iter().map(|k| probe(*k)).collect()
}

#[cfg(target_os = "linux")]
fn probe_vhost_vsock() -> Result<String, String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/vhost-vsock")
    {
        Ok(_) => Ok("/dev/vhost-vsock".into()),
        Err(e) => Err(format!("/dev/vhost-vsock: {e}")),
    }
}

#[cfg(not(target_os = "linux"))]
fn probe_vhost_vsock() -> Result<String, String> {
    Err("vhost-vsock needs a Linux host kernel".into())
}

/// The `vhost-device-vsock` backend: `BERTH_VHOST_VSOCK`, `PATH`, or cargo's bin dir.
pub fn vhost_user_backend() -> Option<PathBuf> {
    let extra: Vec<PathBuf> = crate::paths::cargo_bin_dir().into_iter().collect();
    crate::paths::find_program("BERTH_VHOST_VSOCK", "vhost-device-vsock", &extra)
}

fn probe_vhost_user() -> Result<String, String> {
    if !cfg!(target_os = "linux") {
        return Err("vhost-user needs memfd shared memory (Linux hosts)".into());
    }
    vhost_user_backend()
        .map(|p| p.display().to_string())
        .ok_or_else(|| "vhost-device-vsock not found (cargo install vhost-device-vsock)".into())
}

/// Resolves `--transport`.
pub fn choose(requested: &str) -> Result<Kind, TransportError> {
    let kind = match requested {
        "auto" => {
            return ALL
                .iter()
                .map(|k| probe(*k))
                .find(|a| a.status.is_ok())
                .map(|a| a.kind)
                .ok_or(TransportError::Unavailable {
                    kind: Kind::Serial,
                    why: "nothing works".into(),
                })
        }
        "vsock" | "vhost-vsock" => Kind::VhostVsock,
        "vhost-user" => Kind::VhostUser,
        "serial" | "virtio-serial" => Kind::Serial,
        other => return Err(TransportError::Unknown(other.to_string())),
    };
    match probe(kind).status {
        Ok(_) => Ok(kind),
        Err(why) => Err(TransportError::Unavailable { kind, why }),
    }
}

/// How host and guest find each other. Over vsock the guest dials the host once its
/// agent is up (no polling, and no connection attempt can race the guest's driver set-up);
/// over virtio-serial the host connects to QEMU's socket and the guest opens its port.
pub enum Endpoint {
    /// vhost-user: `vhost-device-vsock` forwards the guest's connection to host port P to
    /// the unix socket `<uds-path>_P`, on which we listen.
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
    /// The host kernel's vsock: we listen on a port of our own and accept only our guest.
    #[cfg(target_os = "linux")]
    Vsock {
        listener: tokio_vsock::VsockListener,
        cid: u32,
    },
    /// virtio-serial: QEMU listens, we connect.
    Serial(Chardev),
}

/// A connected byte stream to the guest.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
pub type BoxIo = Box<dyn Io>;

impl Endpoint {
    /// Listens for the guest's connection through vhost-device-vsock, whose `--uds-path`
    /// is `uds`; the guest dials `port`. Must be called inside the tokio runtime.
    #[cfg(unix)]
    pub fn listen_vhost_user(uds: &std::path::Path, port: u32) -> io::Result<Endpoint> {
        let mut path = uds.as_os_str().to_owned();
        path.push(format!("_{port}"));
        Ok(Endpoint::Unix(tokio::net::UnixListener::bind(path)?))
    }

    /// Listens on a free host vsock port for the guest with context id `cid`; returns the
    /// endpoint and the port the guest must dial.
    #[cfg(target_os = "linux")]
    pub fn listen_vsock(cid: u32) -> io::Result<(Endpoint, u32)> {
        use tokio_vsock::{VsockAddr, VsockListener, VMADDR_CID_ANY};
        let mut last = None;
        for attempt in 0..32u32 {
            let port = 20000 + (cid.wrapping_mul(7919).wrapping_add(attempt)) % 40000;
            match VsockListener::bind(VsockAddr::new(VMADDR_CID_ANY, port)) {
                Ok(listener) => return Ok((Endpoint::Vsock { listener, cid }, port)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free vsock port")))
    }

    /// Waits for (vsock) or makes (serial) the connection. Loops until it succeeds: the
    /// caller bounds it with the boot deadline and watches QEMU meanwhile.
    pub async fn establish(&mut self) -> io::Result<BoxIo> {
        match self {
            #[cfg(unix)]
            Endpoint::Unix(listener) => Ok(Box::new(listener.accept().await?.0)),
            #[cfg(target_os = "linux")]
            Endpoint::Vsock { listener, cid } => loop {
                let (stream, peer) = listener.accept().await?;
                if peer.cid() == *cid {
                    return Ok(Box::new(stream));
                }
                tracing::warn!(
                    "ignoring a vsock connection from another guest (cid {})",
                    peer.cid()
                );
            },
            Endpoint::Serial(chardev) => loop {
                // QEMU creates the socket shortly after it starts.
                match connect_chardev(chardev).await {
                    Ok(io) => return Ok(io),
                    Err(e) => {
                        tracing::trace!("chardev not ready: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            },
        }
    }
}

async fn connect_chardev(c: &Chardev) -> io::Result<BoxIo> {
    match c {
        #[cfg(unix)]
        Chardev::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
        #[cfg(not(unix))]
        Chardev::Unix(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unix sockets need a unix host",
        )),
        Chardev::Tcp(port) => Ok(Box::new(
            tokio::net::TcpStream::connect(("127.0.0.1", *port)).await?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transport_names() {
        assert!(matches!(
            choose("carrier-pigeon"),
            Err(TransportError::Unknown(_))
        ));
        assert_eq!(choose("serial").unwrap(), Kind::Serial);
        assert!(
            choose("auto").is_ok(),
            "serial is always there, so auto always finds one"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn vhost_user_endpoint_accepts_on_the_forwarded_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("vsock.sock");
        let mut ep = Endpoint::listen_vhost_user(&uds, 1024).unwrap();
        let forwarded = dir.path().join("vsock.sock_1024");
        let guest = tokio::spawn(async move {
            let mut s = tokio::net::UnixStream::connect(forwarded).await.unwrap();
            s.write_all(b"hi").await.unwrap();
        });
        let mut io = ep.establish().await.unwrap();
        let mut buf = [0u8; 2];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        guest.await.unwrap();
    }
}
