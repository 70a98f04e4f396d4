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

/// Binds `port` on the host and serves it for the container at `target_ip`. Returns the
/// binding as made (a random host port resolved) and the task that serves it (abort it
/// to unpublish). A port already taken is Docker's error.
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
            (
                local,
                tokio::spawn(serve_udp(Arc::new(socket), guest, target)),
            )
        }
    };
    let bound = PortSpec {
        host_port: local.port(),
        ..port.clone()
    };
    Ok((bound, task))
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

/// Like [`serve_tcp`], the flows' tasks live in a set this future owns, so none keeps
/// the socket bound once the port is unpublished.
async fn serve_udp(socket: Arc<UdpSocket>, guest: Arc<dyn GuestApi>, target: String) {
    let flows: Flows = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; berth_mux::MAX_DATAGRAM];
    loop {
        while tasks.try_join_next().is_some() {}
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let datagram = buf[..n].to_vec();
        let existing = flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        let tx = match existing {
            Some(tx) => tx,
            None => match open_flow(&socket, &guest, &target, client, &flows, &mut tasks).await {
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
    socket: &Arc<UdpSocket>,
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
    let replies = socket.clone();
    let ended = flows.clone();
    let back = tasks.spawn(async move {
        let mut buf = vec![0u8; berth_mux::MAX_DATAGRAM];
        while let Ok(Some(len)) = berth_mux::read_datagram(&mut from_guest, &mut buf).await {
            let _ = replies.send_to(&buf[..len], client).await;
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
