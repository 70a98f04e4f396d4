//! vhost-vsock: the host kernel's vsock device (`/dev/vhost-vsock`). We listen on a vsock
//! port of our own and accept only our guest's context id.

use std::io;

use tokio_vsock::{VsockAddr, VsockListener, VMADDR_CID_ANY};

use super::{Establish, Kind, Transport, TransportError};
use crate::qemu::TransportDevice;
use berth_protocol::boot::AgentTransport;

pub struct VhostVsock {
    listener: VsockListener,
    cid: u32,
    port: u32,
}

impl VhostVsock {
    pub fn open() -> Result<VhostVsock, TransportError> {
        let cid = pick_cid();
        let mut last = None;
        for attempt in 0..32u32 {
            let port = 20000 + cid.wrapping_mul(7919).wrapping_add(attempt) % 40000;
            match VsockListener::bind(VsockAddr::new(VMADDR_CID_ANY, port)) {
                Ok(listener) => {
                    return Ok(VhostVsock {
                        listener,
                        cid,
                        port,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(TransportError::Setup {
            kind: Kind::VhostVsock,
            what: "listening on a host vsock port".into(),
            source: last.unwrap_or_else(|| io::Error::other("no free vsock port")),
        })
    }
}

impl Transport for VhostVsock {
    fn kind(&self) -> Kind {
        Kind::VhostVsock
    }

    fn device(&self) -> TransportDevice {
        TransportDevice::VhostVsock { cid: self.cid }
    }

    fn agent_transport(&self) -> AgentTransport {
        AgentTransport::Vsock { port: self.port }
    }

    fn establish(&mut self) -> Establish<'_> {
        Box::pin(async move {
            loop {
                let (stream, peer) = self.listener.accept().await?;
                if peer.cid() == self.cid {
                    return Ok(Box::new(stream) as super::BoxIo);
                }
                tracing::warn!(
                    "ignoring a vsock connection from another guest (cid {})",
                    peer.cid()
                );
            }
        })
    }
}

/// A guest context id; ids are host-wide, so spread them out.
fn pick_cid() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    3 + (nanos ^ std::process::id().rotate_left(16)) % 0x7fff_0000
}

#[cfg(test)]
mod tests {
    #[test]
    fn cids_avoid_reserved_values() {
        for _ in 0..100 {
            assert!(super::pick_cid() >= 3);
        }
    }
}
