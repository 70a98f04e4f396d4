//! The daemon's real connection to `berth-init`: many requests at once over one control
//! stream. A reader task routes every reply to whoever waits for it (by exec id, request
//! id or layer digest); when the connection ends, every waiter learns it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_mux::{write_msg, Opener, Session, Stream};
use berth_protocol::{
    ContainerOp, ContainerResult, ContainerSet, ExecSpec, GuestMessage, HostMessage, PortProto,
    StdioFd, StreamOpen, TtySize,
};
use tokio::sync::mpsc;

use super::{GuestApi, GuestExec};
use crate::client::{AgentClient, ClientError, Events, Requests};

/// How long a container operation (freeze, stats, top) may take in the guest.
const OP_DEADLINE: Duration = Duration::from_secs(20);
/// How long deleting a volume's data may take (many files, an emulated CPU).
const VOLUME_DEADLINE: Duration = Duration::from_secs(300);
/// How long storing one layer may take.
const LAYER_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Exec(u64),
    Request(u64),
    Layer(String),
    LayerList,
}

type Waiters = Arc<Mutex<HashMap<Key, mpsc::UnboundedSender<GuestMessage>>>>;

/// A shared handle on the guest agent.
pub struct Guest {
    session: Opener,
    requests: tokio::sync::Mutex<Requests>,
    waiters: Waiters,
    next_id: AtomicU64,
    /// The digests in the guest's layer cache, once listed (`None` before). Only this
    /// connection adds layers and nothing removes them while the agent runs, so a layer
    /// seen once is there for good. The lock also keeps layer transfers one at a time.
    layers: tokio::sync::Mutex<Option<HashSet<String>>>,
    closed: tokio::sync::watch::Receiver<bool>,
}

impl Guest {
    /// Takes over a handshaken client and starts routing its replies.
    /// Streams the guest opens are served too: `HostPort` ones only for `host_ports`.
    /// The guest's layer cache is listed at once, in the background: a machine's first
    /// container then finds the answer there instead of waiting a round trip for it.
    pub fn new(client: AgentClient, host_ports: Vec<u16>) -> Arc<Guest> {
        let (session, requests, events) = client.into_parts();
        let opener = session.opener();
        tokio::spawn(accept_guest_streams(session, host_ports));
        let waiters: Waiters = Arc::default();
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        tokio::spawn(route(events, waiters.clone(), closed_tx));
        let guest = Arc::new(Guest {
            session: opener,
            requests: tokio::sync::Mutex::new(requests),
            waiters,
            next_id: AtomicU64::new(1),
            layers: tokio::sync::Mutex::new(None),
            closed,
        });
        let listing = guest.clone();
        tokio::spawn(async move {
            let mut known = listing.layers.lock().await;
            match listing.list_layers().await {
                Ok(digests) => *known = Some(digests),
                Err(e) => tracing::debug!("listing the guest's layers: {e}"),
            }
        });
        guest
    }

    /// Opens a flow to `addr` inside the guest (a published port's connection).
    pub async fn connect(&self, addr: &str, proto: PortProto) -> Result<Stream, ClientError> {
        let mut stream = self.session.open().await?;
        write_msg(
            &mut stream,
            &StreamOpen::Connect {
                addr: addr.to_string(),
                proto,
            },
        )
        .await?;
        Ok(stream)
    }

    /// Whether the connection to the guest is gone.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves when the connection to the guest ends.
    pub async fn wait_closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn wait_for(&self, key: Key) -> mpsc::UnboundedReceiver<GuestMessage> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if !self.is_closed() {
            waiters.insert(key, tx);
        }
        rx
    }

    fn forget(&self, key: &Key) {
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    async fn send(&self, msg: &HostMessage) -> Result<(), ClientError> {
        self.requests.lock().await.send(msg).await
    }

    /// Opens the stdio streams of a new process and starts it.
    pub async fn exec(&self, spec: ExecSpec) -> Result<GuestExec, ClientError> {
        let id = self.next_id();
        let stdin = match spec.stdin {
            true => Some(self.open_stdio(id, StdioFd::Stdin).await?),
            false => None,
        };
        let stdout = self.open_stdio(id, StdioFd::Stdout).await?;
        let stderr = self.open_stdio(id, StdioFd::Stderr).await?;
        let events = self.wait_for(Key::Exec(id));
        if let Err(e) = self.send(&HostMessage::Exec { exec_id: id, spec }).await {
            self.forget(&Key::Exec(id));
            return Err(e);
        }
        Ok(GuestExec {
            id,
            stdin,
            stdout,
            stderr,
            events,
        })
    }

    /// Stops routing the events of a finished process.
    pub fn exec_done(&self, exec_id: u64) {
        self.forget(&Key::Exec(exec_id));
    }

    pub async fn signal(&self, exec_id: u64, signal: i32) -> Result<(), ClientError> {
        self.send(&HostMessage::Signal { exec_id, signal }).await
    }

    pub async fn resize(&self, exec_id: u64, size: TtySize) -> Result<(), ClientError> {
        self.send(&HostMessage::Resize { exec_id, size }).await
    }

    /// Runs one container operation and returns its result.
    pub async fn container_op(
        &self,
        id: &str,
        op: ContainerOp,
    ) -> Result<ContainerResult, ClientError> {
        let id = id.to_string();
        let reply = self
            .request(&format!("{op:?}"), OP_DEADLINE, |request_id| {
                HostMessage::Container { request_id, id, op }
            })
            .await?;
        match reply {
            GuestMessage::ContainerReply { result, .. } => Ok(result),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Deletes a volume's data in the guest; the inner error says why it could not be.
    pub async fn remove_volume(&self, name: &str) -> Result<Result<(), String>, ClientError> {
        let name = name.to_string();
        let reply = self
            .request("RemoveVolume", VOLUME_DEADLINE, |request_id| {
                HostMessage::RemoveVolume { request_id, name }
            })
            .await?;
        match reply {
            GuestMessage::VolumeRemoved { error: None, .. } => Ok(Ok(())),
            GuestMessage::VolumeRemoved { error: Some(e), .. } => Ok(Err(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Deletes the kept files of containers that are not running.
    pub async fn remove_container_files(
        &self,
        which: ContainerSet,
    ) -> Result<Result<(), String>, ClientError> {
        let reply = self
            .request("RemoveContainerFiles", VOLUME_DEADLINE, |request_id| {
                HostMessage::RemoveContainerFiles { request_id, which }
            })
            .await?;
        match reply {
            GuestMessage::ContainerFilesRemoved { error: None, .. } => Ok(Ok(())),
            GuestMessage::ContainerFilesRemoved { error: Some(e), .. } => Ok(Err(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Makes a bridge network's bridge in the guest ahead of its first container.
    pub async fn prepare_network(
        &self,
        network: berth_protocol::BridgeNetwork,
    ) -> Result<Result<(), String>, ClientError> {
        let reply = self
            .request("PrepareNetwork", OP_DEADLINE, |request_id| {
                HostMessage::PrepareNetwork {
                    request_id,
                    network,
                }
            })
            .await?;
        match reply {
            GuestMessage::NetworkPrepared { error: None, .. } => Ok(Ok(())),
            GuestMessage::NetworkPrepared { error: Some(e), .. } => Ok(Err(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Tells the guest that the host no longer serves shared folder `tag`: binds of it are
    /// refused from now on, saying `why`.
    pub async fn close_share(
        &self,
        tag: String,
        why: String,
    ) -> Result<Result<(), String>, ClientError> {
        let reply = self
            .request("CloseShare", OP_DEADLINE, |request_id| {
                HostMessage::CloseShare {
                    request_id,
                    tag,
                    why,
                }
            })
            .await?;
        match reply {
            GuestMessage::ShareClosed { error: None, .. } => Ok(Ok(())),
            GuestMessage::ShareClosed { error: Some(e), .. } => Ok(Err(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Bytes used by each container's writable layer and each volume.
    pub async fn disk_usage(&self) -> Result<super::DiskUsage, ClientError> {
        let reply = self
            .request("DiskUsage", VOLUME_DEADLINE, |request_id| {
                HostMessage::DiskUsage { request_id }
            })
            .await?;
        match reply {
            GuestMessage::DiskUsage {
                containers,
                volumes,
                ..
            } => Ok(super::DiskUsage {
                containers: containers.into_iter().collect(),
                volumes: volumes.into_iter().collect(),
            }),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends the request `build` makes with a fresh request id and returns the reply
    /// routed to that id, within `deadline`.
    async fn request(
        &self,
        what: &str,
        deadline: Duration,
        build: impl FnOnce(u64) -> HostMessage,
    ) -> Result<GuestMessage, ClientError> {
        let request_id = self.next_id();
        let key = Key::Request(request_id);
        let mut rx = self.wait_for(key.clone());
        let msg = build(request_id);
        let reply = async {
            self.send(&msg).await?;
            rx.recv().await.ok_or(ClientError::Closed)
        };
        let out = tokio::time::timeout(deadline, reply).await;
        self.forget(&key);
        out.unwrap_or_else(|_| {
            Err(ClientError::Unexpected(format!(
                "no answer to {what} within {deadline:?}"
            )))
        })
    }

    /// Makes sure the guest's layer cache holds every layer, sending the missing ones.
    pub async fn ensure_layers(&self, layers: &[(String, PathBuf)]) -> Result<(), ClientError> {
        if layers.is_empty() {
            return Ok(());
        }
        let mut known = self.layers.lock().await;
        if known.is_none() {
            *known = Some(self.list_layers().await?);
        }
        let cached = known.get_or_insert_with(HashSet::new);
        let missing: Vec<_> = layers.iter().filter(|(d, _)| !cached.contains(d)).collect();
        tracing::info!(
            "the guest's layer cache holds {} of {} layers",
            layers.len() - missing.len(),
            layers.len()
        );
        for (digest, blob) in missing {
            tracing::info!("sending layer {digest}");
            self.put_layer(digest, blob).await?;
            cached.insert(digest.clone());
        }
        Ok(())
    }

    /// Whether the guest's layer list is at hand (see [`GuestApi::layers_listed`]).
    pub fn layers_listed(&self) -> bool {
        self.layers.try_lock().is_ok_and(|known| known.is_some())
    }

    /// The digests in the guest's layer cache, as the guest lists them.
    async fn list_layers(&self) -> Result<HashSet<String>, ClientError> {
        let mut rx = self.wait_for(Key::LayerList);
        self.send(&HostMessage::ListLayers).await?;
        let listed = loop {
            match tokio::time::timeout(OP_DEADLINE, rx.recv()).await {
                Ok(Some(GuestMessage::LayerList { digests })) => break Ok(digests),
                Ok(Some(_)) => continue,
                Ok(None) => break Err(ClientError::Closed),
                Err(_) => {
                    break Err(ClientError::Unexpected(
                        "no layer list from the guest within its deadline".into(),
                    ))
                }
            }
        };
        self.forget(&Key::LayerList);
        listed.map(|digests| digests.into_iter().collect())
    }

    async fn put_layer(&self, digest: &str, blob: &PathBuf) -> Result<(), ClientError> {
        use tokio::io::AsyncWriteExt;
        let key = Key::Layer(digest.to_string());
        let mut rx = self.wait_for(key.clone());
        let transfer = async {
            let mut stream = self.session.open().await?;
            write_msg(
                &mut stream,
                &StreamOpen::Layer {
                    digest: digest.to_string(),
                },
            )
            .await?;
            self.send(&HostMessage::PutLayer {
                digest: digest.to_string(),
            })
            .await?;
            let file = tokio::fs::File::open(blob).await.map_err(|e| {
                ClientError::Unexpected(format!("cannot read layer {}: {e}", blob.display()))
            })?;
            // The guest may drop the stream early (a cached layer): not an error.
            if tokio::io::copy(&mut tokio::io::BufReader::new(file), &mut stream)
                .await
                .is_ok()
            {
                let _ = stream.shutdown().await;
            }
            match rx.recv().await {
                Some(GuestMessage::LayerStored { .. }) => Ok(()),
                Some(GuestMessage::LayerFailed { message, .. }) => Err(ClientError::Refused {
                    kind: berth_protocol::ErrorKind::Internal,
                    message,
                }),
                Some(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
                None => Err(ClientError::Closed),
            }
        };
        let out = tokio::time::timeout(LAYER_DEADLINE, transfer).await;
        self.forget(&key);
        out.unwrap_or_else(|_| {
            Err(ClientError::Unexpected(format!(
                "layer {digest} was not stored within {LAYER_DEADLINE:?}"
            )))
        })
    }

    /// Asks the guest to power off; true once it said it is going down.
    pub async fn power_off(&self) -> bool {
        self.send(&HostMessage::PowerOff).await.is_ok()
    }

    async fn open_stdio(&self, exec_id: u64, fd: StdioFd) -> Result<Stream, ClientError> {
        let mut s = self.session.open().await?;
        write_msg(&mut s, &StreamOpen::Stdio { exec_id, fd }).await?;
        Ok(s)
    }
}

/// Reads the guest's messages and hands each to its waiter.
async fn route(mut events: Events, waiters: Waiters, closed: tokio::sync::watch::Sender<bool>) {
    loop {
        let msg = match events.recv().await {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!("the guest connection ended: {e}");
                break;
            }
        };
        let key = match &msg {
            GuestMessage::Started { exec_id, .. }
            | GuestMessage::Exited { exec_id, .. }
            | GuestMessage::Error {
                exec_id: Some(exec_id),
                ..
            } => Key::Exec(*exec_id),
            GuestMessage::ContainerReply { request_id, .. }
            | GuestMessage::VolumeRemoved { request_id, .. }
            | GuestMessage::ContainerFilesRemoved { request_id, .. }
            | GuestMessage::DiskUsage { request_id, .. }
            | GuestMessage::NetworkPrepared { request_id, .. }
            | GuestMessage::ShareClosed { request_id, .. } => Key::Request(*request_id),
            GuestMessage::LayerStored { digest } | GuestMessage::LayerFailed { digest, .. } => {
                Key::Layer(digest.clone())
            }
            GuestMessage::LayerList { .. } => Key::LayerList,
            other => {
                tracing::info!("guest: {other:?}");
                continue;
            }
        };
        let waiters = waiters.lock().unwrap_or_else(|p| p.into_inner());
        match waiters.get(&key) {
            Some(tx) => {
                let _ = tx.send(msg);
            }
            None => tracing::debug!("no one waits for {msg:?}"),
        }
    }
    let mut waiters = waiters.lock().unwrap_or_else(|p| p.into_inner());
    let _ = closed.send(true);
    waiters.clear();
}

/// Serves the streams the guest opens: each `HostPort` stream is carried to the host's
/// `127.0.0.1:port`, and only for the ports the machine forwards. Owns the session: the
/// connection lives as long as this task.
async fn accept_guest_streams(mut session: Session, host_ports: Vec<u16>) {
    while let Some(mut stream) = session.accept().await {
        let allowed = host_ports.clone();
        tokio::spawn(async move {
            match berth_mux::read_msg::<_, StreamOpen>(&mut stream).await {
                Ok(Some(StreamOpen::HostPort { port })) if allowed.contains(&port) => {
                    match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                        Ok(tcp) => {
                            let _ = tcp.set_nodelay(true);
                            berth_mux::relay(stream, tcp, std::time::Duration::from_secs(30)).await;
                        }
                        Err(e) => tracing::info!("forwarded host port {port}: {e}"),
                    }
                }
                Ok(Some(StreamOpen::HostPort { port })) => {
                    tracing::warn!("the guest asked for host port {port}, which is not forwarded")
                }
                Ok(other) => tracing::warn!("unexpected stream from the guest: {other:?}"),
                Err(e) => tracing::warn!("a stream from the guest: {e}"),
            }
        });
    }
}

#[async_trait::async_trait]
impl GuestApi for Guest {
    async fn exec(&self, spec: ExecSpec) -> Result<GuestExec, ClientError> {
        Guest::exec(self, spec).await
    }
    fn exec_done(&self, exec_id: u64) {
        Guest::exec_done(self, exec_id)
    }
    async fn signal(&self, exec_id: u64, signal: i32) -> Result<(), ClientError> {
        Guest::signal(self, exec_id, signal).await
    }
    async fn resize(&self, exec_id: u64, size: TtySize) -> Result<(), ClientError> {
        Guest::resize(self, exec_id, size).await
    }
    async fn container_op(
        &self,
        id: &str,
        op: ContainerOp,
    ) -> Result<ContainerResult, ClientError> {
        Guest::container_op(self, id, op).await
    }
    async fn remove_volume(&self, name: &str) -> Result<Result<(), String>, ClientError> {
        Guest::remove_volume(self, name).await
    }
    async fn remove_container_files(
        &self,
        which: ContainerSet,
    ) -> Result<Result<(), String>, ClientError> {
        Guest::remove_container_files(self, which).await
    }
    async fn disk_usage(&self) -> Result<super::DiskUsage, ClientError> {
        Guest::disk_usage(self).await
    }
    async fn prepare_network(
        &self,
        network: berth_protocol::BridgeNetwork,
    ) -> Result<Result<(), String>, ClientError> {
        Guest::prepare_network(self, network).await
    }
    async fn ensure_layers(&self, layers: &[(String, PathBuf)]) -> Result<(), ClientError> {
        Guest::ensure_layers(self, layers).await
    }
    fn layers_listed(&self) -> bool {
        Guest::layers_listed(self)
    }
    async fn connect(&self, addr: &str, proto: PortProto) -> Result<Stream, ClientError> {
        Guest::connect(self, addr, proto).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_mux::read_msg;
    use berth_protocol::VERSION;

    /// A fake agent that answers the hello and every `ListLayers` (with one digest), and
    /// counts the lists it was asked for.
    async fn layer_listing_agent(io: tokio::io::DuplexStream, lists: mpsc::UnboundedSender<()>) {
        let mut session = Session::server(io);
        let mut control = session.accept().await.expect("the control stream");
        let _: Option<StreamOpen> = read_msg(&mut control).await.unwrap();
        let _: Option<HostMessage> = read_msg(&mut control).await.unwrap();
        let ack = GuestMessage::HelloAck {
            version: VERSION,
            agent: "fake".into(),
            kernel_release: "6.1".into(),
        };
        write_msg(&mut control, &ack).await.unwrap();
        while let Ok(Some(msg)) = read_msg::<_, HostMessage>(&mut control).await {
            if let HostMessage::ListLayers = msg {
                let _ = lists.send(());
                let listed = GuestMessage::LayerList {
                    digests: vec!["sha256:aa".into()],
                };
                write_msg(&mut control, &listed).await.unwrap();
            }
        }
    }

    /// The layer cache is listed once, when the connection starts and before anyone asks:
    /// a container's start then costs no round trip for it.
    #[tokio::test]
    async fn the_guests_layers_are_listed_once_as_the_connection_starts() {
        let (host, agent_io) = tokio::io::duplex(64 * 1024);
        let (lists_tx, mut lists) = mpsc::unbounded_channel();
        let agent = tokio::spawn(layer_listing_agent(agent_io, lists_tx));
        let client = AgentClient::handshake(Box::new(host), "test")
            .await
            .unwrap();
        let guest = Guest::new(client, Vec::new());
        tokio::time::timeout(Duration::from_secs(10), lists.recv())
            .await
            .expect("the layer cache is listed without a request for layers")
            .unwrap();
        let layer = [("sha256:aa".to_string(), PathBuf::from("/nonexistent"))];
        for _ in 0..3 {
            guest.ensure_layers(&layer).await.unwrap();
        }
        assert!(guest.layers_listed(), "the list is at hand once it came");
        drop(guest);
        agent.abort();
        assert!(
            lists.try_recv().is_err(),
            "the layer cache was listed again for a layer known to be there"
        );
    }
}
