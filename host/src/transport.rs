//! Transports: how bytes get between the host and the guest agent. Three kinds, one
//! interface: each yields a byte stream that `berth_mux` multiplexes, so everything above
//! is the same whichever is used.
//!
//! - vhost-vsock: the host kernel's vsock device (Linux hosts with /dev/vhost-vsock).
//! - vhost-user: rust-vmm's `vhost-device-vsock` backend process; the host connects to its
//!   unix socket and asks for the guest port (`CONNECT <port>` / `OK <port>`).
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

/// Where to connect once QEMU runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    VhostVsock { cid: u32, port: u32 },
    VhostUser { uds: PathBuf, port: u32 },
    Serial(Chardev),
}

impl Endpoint {
    /// Whether connecting succeeds before the guest is up (then the handshake is what
    /// proves the guest is there, and the connection must not be retried).
    pub fn connects_before_guest(&self) -> bool {
        matches!(self, Endpoint::Serial(_))
    }
}

/// A connected byte stream to the guest.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
pub type BoxIo = Box<dyn Io>;

/// One connection attempt.
pub async fn connect(ep: &Endpoint) -> io::Result<BoxIo> {
    match ep {
        Endpoint::VhostVsock { cid, port } => connect_vsock(*cid, *port).await,
        Endpoint::VhostUser { uds, port } => connect_vhost_user(uds, *port).await,
        Endpoint::Serial(chardev) => connect_chardev(chardev).await,
    }
}

#[cfg(target_os = "linux")]
async fn connect_vsock(cid: u32, port: u32) -> io::Result<BoxIo> {
    let s = tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(cid, port)).await?;
    Ok(Box::new(s))
}

#[cfg(not(target_os = "linux"))]
async fn connect_vsock(_cid: u32, _port: u32) -> io::Result<BoxIo> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "vhost-vsock needs a Linux host",
    ))
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

#[cfg(unix)]
async fn connect_vhost_user(uds: &std::path::Path, port: u32) -> io::Result<BoxIo> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(uds).await?;
    s.write_all(format!("CONNECT {port}\n").as_bytes()).await?;
    // Read the reply a byte at a time: anything after the newline belongs to the stream.
    let mut line = Vec::new();
    loop {
        let b = s.read_u8().await?;
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() > 64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "overlong reply from vhost-device-vsock",
            ));
        }
    }
    check_connect_reply(&String::from_utf8_lossy(&line))?;
    Ok(Box::new(s))
}

#[cfg(not(unix))]
async fn connect_vhost_user(_uds: &std::path::Path, _port: u32) -> io::Result<BoxIo> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "vhost-user needs a unix host",
    ))
}

/// Checks a `vhost-device-vsock` reply to `CONNECT <port>`.
pub fn check_connect_reply(reply: &str) -> io::Result<()> {
    if reply.starts_with("OK ") {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("vhost-device-vsock said {reply:?}"),
        ))
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

    #[test]
    fn connect_replies() {
        assert!(check_connect_reply("OK 1024").is_ok());
        assert!(check_connect_reply("").is_err());
    }

    #[test]
    fn only_serial_connects_before_the_guest() {
        assert!(Endpoint::Serial(Chardev::Tcp(1)).connects_before_guest());
        assert!(!Endpoint::VhostVsock { cid: 3, port: 1 }.connects_before_guest());
    }
}
