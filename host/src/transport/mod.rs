//! Transports: how bytes get between the host and the guest agent. Three kinds, one
//! interface: each yields a byte stream that `berth_mux` multiplexes, so everything above
//! is the same whichever is used.
//!
//! - vhost-vsock: the host kernel's vsock device (Linux hosts with /dev/vhost-vsock).
//! - vhost-user: rust-vmm's `vhost-device-vsock` backend process; it forwards the guest's
//!   connection to host port P to the unix socket `<uds-path>_P`.
//! - serial: a virtio-serial port behind a QEMU socket chardev; works on every host OS.

mod serial;
#[cfg(unix)]
mod vhost_user;
#[cfg(target_os = "linux")]
mod vsock;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::qemu::TransportDevice;
use berth_protocol::boot::AgentTransport;

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
    #[error("setting up transport {kind}: {what}")]
    Setup {
        kind: Kind,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}{log}")]
    Backend { what: String, log: String },
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
            let found: Vec<(Kind, bool)> =
                ALL.iter().map(|k| (*k, probe(*k).status.is_ok())).collect();
            return pick(&found).ok_or(TransportError::Unavailable {
                kind: Kind::Serial,
                why: "nothing works".into(),
            });
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

/// `auto`: the first transport that works, in the order given (fastest first).
fn pick(found: &[(Kind, bool)]) -> Option<Kind> {
    found.iter().find(|(_, works)| *works).map(|(k, _)| *k)
}

/// A connected byte stream to the guest.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
pub type BoxIo = Box<dyn Io>;

/// What `establish` returns.
pub type Establish<'a> = Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send + 'a>>;

/// One transport, set up for one VM before QEMU starts. Everything berth needs from a
/// transport goes through this trait; whatever it owns (sockets, a backend process) is
/// released when it is dropped.
pub trait Transport: Send {
    fn kind(&self) -> Kind;
    /// The QEMU device that carries the transport.
    fn device(&self) -> TransportDevice;
    /// How the agent reaches the host (said on the kernel command line).
    fn agent_transport(&self) -> AgentTransport;
    /// Waits for (vsock: the guest dials) or makes (serial: we dial QEMU) the connection.
    /// Loops until it succeeds: the caller bounds it with the boot deadline and watches
    /// QEMU meanwhile.
    fn establish(&mut self) -> Establish<'_>;
    /// The tail of a helper process's log for error messages; empty when there is none.
    fn diagnostics(&self) -> String {
        String::new()
    }
    /// Ends any helper process (and waits for it), so nothing writes into the VM's run
    /// directory once the VM removes it. Called again by `Drop`; must be idempotent.
    fn stop(&mut self) {}
}

/// Sets up a transport of `kind` for a VM whose run directory is `dir`. Must be called
/// inside the tokio runtime (listeners are registered with it).
pub fn open(kind: Kind, dir: &Path) -> Result<Box<dyn Transport>, TransportError> {
    match kind {
        #[cfg(target_os = "linux")]
        Kind::VhostVsock => Ok(Box::new(vsock::VhostVsock::open()?)),
        #[cfg(unix)]
        Kind::VhostUser => Ok(Box::new(vhost_user::VhostUser::open(dir)?)),
        Kind::Serial => Ok(Box::new(serial::Serial::open(dir))),
        #[allow(unreachable_patterns)]
        other => Err(TransportError::Unavailable {
            kind: other,
            why: "not supported on this host OS".into(),
        }),
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
    }

    #[test]
    fn auto_takes_the_first_transport_that_works() {
        use Kind::*;
        assert_eq!(
            pick(&[(VhostVsock, true), (VhostUser, true), (Serial, true)]),
            Some(VhostVsock)
        );
        assert_eq!(
            pick(&[(VhostVsock, false), (VhostUser, true), (Serial, true)]),
            Some(VhostUser)
        );
        assert_eq!(
            pick(&[(VhostVsock, false), (VhostUser, false), (Serial, true)]),
            Some(Serial)
        );
        assert_eq!(
            pick(&[(VhostVsock, false), (VhostUser, false), (Serial, false)]),
            None
        );
        // ALL is that order: the kernel's vsock, then vhost-user, then serial.
        assert_eq!(ALL, [VhostVsock, VhostUser, Serial]);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn vhost_user_endpoint_accepts_on_the_forwarded_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("vsock.sock");
        let ep = vhost_user::listen(&uds, 1024).unwrap();
        let forwarded = dir.path().join("vsock.sock_1024");
        let guest = tokio::spawn(async move {
            let mut s = tokio::net::UnixStream::connect(forwarded).await.unwrap();
            s.write_all(b"hi").await.unwrap();
        });
        let (mut io, _) = ep.accept().await.unwrap();
        let mut buf = [0u8; 2];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        guest.await.unwrap();
    }
}
