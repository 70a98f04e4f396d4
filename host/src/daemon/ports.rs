//! Published ports (`-p`, `-P`): the daemon listens on the host and carries every TCP
//! connection, and every UDP flow (one per client address), over the transport to the
//! agent, which connects to the container (`StreamOpen::Connect`). Works the same on
//! every host OS and with every transport: no packet filter on the host, no QEMU
//! forwarding rule to add or remove while the VM runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_protocol::PortProto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::error::ApiError;
use super::guest::GuestApi;
use super::state::PortSpec;

/// A UDP flow with no datagram from its client for this long ends (as conntrack's
/// default for UDP streams).
const UDP_IDLE: Duration = Duration::from_secs(120);
/// How long a failed relay keeps reading what the guest still sends.
const RELAY_DRAIN: Duration = Duration::from_secs(30);

/// How long unpublishing waits for a port's task to end.
const UNPUBLISH_DEADLINE: Duration = Duration::from_secs(5);

/// Binds `port` on the host and serves it for the container at `target_ip`. Returns the
/// binding as made (a random host port resolved) and the task that serves it
/// ([`unpublish`] it). A port already taken is Docker's error.
pub async fn publish(
    guest: Arc<dyn GuestApi>,
    container: &str,
    target_ip: std::net::Ipv4Addr,
    port: &PortSpec,
) -> Result<(PortSpec, JoinHandle<()>), ApiError> {
    let ip: std::net::IpAddr = port
        .host_ip
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid host address {:?}", port.host_ip)))?;
    let want = SocketAddr::new(ip, port.host_port);
    let taken = |e: std::io::Error| {
        ApiError::internal(format!(
            "driver failed programming external connectivity on endpoint {container}: Bind for {want} failed: {}",
            if e.kind() == std::io::ErrorKind::AddrInUse {
                "port is already allocated".to_string()
            } else {
                e.to_string()
            }
        ))
    };
    let target = format!("{target_ip}:{}", port.container_port);
    let (local, task) = match port.proto {
        PortProto::Tcp => {
            let listener = TcpListener::bind(want).await.map_err(taken)?;
            let local = listener.local_addr().map_err(taken)?;
            (local, tokio::spawn(serve_tcp(listener, guest, target)))
        }
        PortProto::Udp => {
            let socket = UdpSocket::bind(want).await.map_err(taken)?;
            let local = socket.local_addr().map_err(taken)?;
            (local, tokio::spawn(serve_udp(socket, guest, target)))
        }
    };
    let bound = PortSpec {
        host_port: local.port(),
        ..port.clone()
    };
    Ok((bound, task))
}

/// Ends the tasks of published ports and returns once each has ended, so its host port is
/// free when the caller goes on: Docker's `stop` and `rm` give the ports back before they
/// answer. An aborted task ends (its future dropped, its listener or socket closed) only
/// when the runtime next gets to it, hence the wait.
pub async fn unpublish(tasks: Vec<JoinHandle<()>>) {
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        if tokio::time::timeout(UNPUBLISH_DEADLINE, t).await.is_err() {
            tracing::warn!("a published port's task did not end within {UNPUBLISH_DEADLINE:?}");
        }
    }
}

/// Every connection is a task of `conns`: when the port is unpublished (this future is
/// dropped), they all end with it.
async fn serve_tcp(listener: TcpListener, guest: Arc<dyn GuestApi>, target: String) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of descriptors and the like: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let guest = guest.clone();
        let target = target.clone();
        conns.spawn(async move {
            let _ = tcp.set_nodelay(true);
            match guest.connect(&target, PortProto::Tcp).await {
                Ok(stream) => berth_mux::relay(stream, tcp, RELAY_DRAIN).await,
                Err(e) => tracing::info!("published port to {target}: {e}"),
            }
        });
    }
}

type Flows = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;
/// A datagram from the guest for a client.
type Reply = (Vec<u8>, SocketAddr);

/// Like [`serve_tcp`], the flows' tasks live in a set this future owns. Only this future
/// holds the socket: the flows hand their replies to it. So the socket closes as soon as
/// the port is unpublished (this future dropped), not when the runtime gets round to the
/// flows' aborted tasks.
async fn serve_udp(socket: UdpSocket, guest: Arc<dyn GuestApi>, target: String) {
    let flows: Flows = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let (replies_tx, mut replies) = mpsc::channel::<Reply>(256);
    let mut buf = vec![0u8; berth_mux::MAX_DATAGRAM];
    loop {
        while tasks.try_join_next().is_some() {}
        let (n, client) = tokio::select! {
            got = socket.recv_from(&mut buf) => match got {
                Ok(got) => got,
                Err(_) => continue,
            },
            Some((datagram, client)) = replies.recv() => {
                let _ = socket.send_to(&datagram, client).await;
                continue;
            }
        };
        let datagram = buf[..n].to_vec();
        let existing = flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        let tx = match existing {
            Some(tx) => tx,
            None => match open_flow(&replies_tx, &guest, &target, client, &flows, &mut tasks).await
            {
                Some(tx) => tx,
                None => continue,
            },
        };
        // A flow whose queue is full drops the datagram, as a congested network would.
        let _ = tx.try_send(datagram);
    }
}

/// Starts the flow of one UDP client: a stream to the guest and two pumps.
async fn open_flow(
    replies: &mpsc::Sender<Reply>,
    guest: &Arc<dyn GuestApi>,
    target: &str,
    client: SocketAddr,
    flows: &Flows,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Option<mpsc::Sender<Vec<u8>>> {
    let stream = match guest.connect(target, PortProto::Udp).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!("published udp port to {target}: {e}");
            return None;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    flows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(client, tx.clone());
    let (mut from_guest, mut to_guest) = tokio::io::split(stream);
    let replies = replies.clone();
    let ended = flows.clone();
    let back = tasks.spawn(async move {
        let mut buf = vec![0u8; berth_mux::MAX_DATAGRAM];
        while let Ok(Some(len)) = berth_mux::read_datagram(&mut from_guest, &mut buf).await {
            if replies.send((buf[..len].to_vec(), client)).await.is_err() {
                break;
            }
        }
        // The guest ended the flow: the client's next datagram starts a new one.
        ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&client);
    });
    let flows = flows.clone();
    tasks.spawn(async move {
        while let Ok(Some(d)) = tokio::time::timeout(UDP_IDLE, rx.recv()).await {
            if berth_mux::write_datagram(&mut to_guest, &d).await.is_err() {
                break;
            }
        }
        flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&client);
        let _ = to_guest.shutdown().await;
        back.abort();
    });
    Some(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::guest::fake::FakeGuest;

    fn spec(proto: PortProto) -> PortSpec {
        PortSpec {
            container_port: 53,
            proto,
            host_ip: "127.0.0.1".into(),
            host_port: 0,
        }
    }

    /// Docker's `stop` gives a container's ports back before it answers: once unpublished,
    /// a port binds again at once, also a UDP port with a client's flow open to the guest.
    #[tokio::test]
    async fn an_unpublished_port_is_free_at_once_even_with_a_udp_flow_open() {
        let guest = FakeGuest::new();
        let target = "172.17.0.2".parse().unwrap();
        let (udp, udp_task) = publish(guest.clone(), "c", target, &spec(PortProto::Udp))
            .await
            .unwrap();
        let (tcp, tcp_task) = publish(guest.clone(), "c", target, &spec(PortProto::Tcp))
            .await
            .unwrap();
        // A client's datagram opens a flow: a connection to the guest, which stays open.
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .send_to(b"ping", ("127.0.0.1", udp.host_port))
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while guest.calls_of("connect").is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the datagram never opened a flow to the guest"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        unpublish(vec![udp_task, tcp_task]).await;
        std::net::UdpSocket::bind(("127.0.0.1", udp.host_port))
            .expect("the UDP port is free as soon as it is unpublished");
        std::net::TcpListener::bind(("127.0.0.1", tcp.host_port))
            .expect("the TCP port is free as soon as it is unpublished");
    }
}
