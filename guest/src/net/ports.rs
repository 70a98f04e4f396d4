//! Flows between the host and the guest's networks, carried on the multiplexed transport:
//! - published ports (`-p`): the host opens a `Connect` stream per TCP connection or UDP
//!   flow, and the agent connects to the container's address;
//! - forwarded host ports (`--forward-host-port`): the agent listens on the guest's
//!   addresses and opens a `HostPort` stream to the host per connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use berth_mux::{write_msg, Opener, Stream};
use berth_protocol::{PortProto, StreamOpen};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// How long connecting to a container's port may take. A server whose accept queue is
/// full drops SYNs and the kernel retries them after 1, 3, 7, 15 and 31 s, so a burst of
/// connections to a slow server (a forking httpd under TCG) needs longer than 10 s; Docker's
/// proxy waits as long as the kernel does.
const CONNECT_DEADLINE: Duration = Duration::from_secs(75);
/// A UDP flow with no datagram either way for this long ends.
pub const UDP_IDLE: Duration = Duration::from_secs(120);
/// How long a failed relay keeps reading what the other side still sends.
const RELAY_DRAIN: Duration = Duration::from_secs(30);

/// Serves one `Connect` stream: connects to `addr` and copies both ways.
pub async fn connect(stream: Stream, addr: String, proto: PortProto) {
    let Ok(target) = addr.parse::<SocketAddr>() else {
        tracing::warn!("published port: bad address {addr:?}");
        return;
    };
    match proto {
        PortProto::Tcp => {
            let conn = tokio::time::timeout(CONNECT_DEADLINE, TcpStream::connect(target)).await;
            // On failure the stream is dropped unclosed: yamux resets it, and the host
            // resets its client's connection at once.
            match conn {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    berth_mux::relay(stream, tcp, RELAY_DRAIN).await;
                }
                Ok(Err(e)) => tracing::debug!("published port {addr}: {e}"),
                Err(_) => {
                    tracing::debug!("published port {addr}: no answer in {CONNECT_DEADLINE:?}")
                }
            }
        }
        PortProto::Udp => {
            if let Err(e) = udp_flow(stream, target).await {
                tracing::debug!("published udp port {addr}: {e}");
            }
        }
    }
}

/// Carries datagrams between `stream` (each as a 2-byte length and its bytes) and a UDP
/// socket connected to `target`, until the stream ends or the flow is idle. Each
/// direction has a task of its own (reading a length prefix is not cancel-safe).
async fn udp_flow(stream: Stream, target: SocketAddr) -> std::io::Result<()> {
    let socket = std::sync::Arc::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?);
    socket.connect(target).await?;
    let (mut from_host, mut to_host) = tokio::io::split(stream);
    let replies = socket.clone();
    let back = tokio::spawn(async move {
        let mut buf = vec![0u8; berth_mux::MAX_DATAGRAM];
        loop {
            let n = match replies.recv(&mut buf).await {
                Ok(n) => n,
                // An ICMP "port unreachable" for an earlier datagram (the server was not
                // up yet): the flow goes on, as through a NAT.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            };
            berth_mux::write_datagram(&mut to_host, &buf[..n]).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    let mut datagram = vec![0u8; berth_mux::MAX_DATAGRAM];
    let result = async {
        loop {
            let next = berth_mux::read_datagram(&mut from_host, &mut datagram);
            let len = match tokio::time::timeout(UDP_IDLE, next).await {
                Ok(Ok(Some(len))) => len,
                Ok(Err(e)) => return Err(e),
                // Idle, or the host ended the flow.
                Ok(Ok(None)) | Err(_) => break,
            };
            match socket.send(&datagram[..len]).await {
                Err(e) if e.kind() != std::io::ErrorKind::ConnectionRefused => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    back.abort();
    result
}

/// Listens on every guest address at `port` and carries each connection to the host's
/// loopback port `port` (which the host checks against the machine's forwards).
pub async fn forward_host_port(port: u16, opener: Opener) {
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("forwarding host port {port}: {e}");
            return;
        }
    };
    tracing::info!("forwarding guest port {port} to the host's 127.0.0.1:{port}");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let opener = opener.clone();
        tokio::spawn(async move {
            let mut stream = match opener.open().await {
                Ok(s) => s,
                Err(_) => return,
            };
            if write_msg(&mut stream, &StreamOpen::HostPort { port })
                .await
                .is_err()
            {
                return;
            }
            let _ = tcp.set_nodelay(true);
            berth_mux::relay(stream, tcp, RELAY_DRAIN).await;
        });
    }
}
