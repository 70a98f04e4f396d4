//! One control stream: the handshake, then requests until the host closes it.

use std::sync::Arc;

use berth_mux::{read_msg, write_msg, Stream};
use berth_protocol::{ContainerOp, ErrorKind, GuestMessage, HostMessage, VERSION};
use tokio::sync::{mpsc, oneshot};

use super::{containers, exec, layers, usage, volumes, Agent, Connection};
use crate::sys;

/// A reply, with an optional acknowledgement once it has been written out.
pub(super) struct Outgoing {
    pub msg: GuestMessage,
    pub written: Option<oneshot::Sender<()>>,
}

/// Where handlers send replies; a writer task owns the stream's write half.
#[derive(Clone)]
pub(super) struct Replies(mpsc::UnboundedSender<Outgoing>);

impl Replies {
    pub fn send(&self, msg: GuestMessage) {
        let _ = self.0.send(Outgoing { msg, written: None });
    }

    /// Sends and waits until the message is on the wire (or the stream is gone).
    pub async fn send_flushed(&self, msg: GuestMessage) {
        let (tx, rx) = oneshot::channel();
        if self
            .0
            .send(Outgoing {
                msg,
                written: Some(tx),
            })
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    pub fn error(&self, exec_id: Option<u64>, kind: ErrorKind, message: impl Into<String>) {
        self.send(GuestMessage::Error {
            exec_id,
            kind,
            message: message.into(),
        });
    }
}

pub(super) async fn run(agent: Agent, conn: Arc<Connection>, stream: Stream) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            if let Err(e) = write_msg(&mut wr, &out.msg).await {
                tracing::warn!("control stream write failed: {e}");
                break;
            }
            if let Some(ack) = out.written {
                let _ = ack.send(());
            }
        }
    });
    let replies = Replies(tx);

    if handshake(&mut rd, &replies).await {
        let mut state_in_place = false;
        loop {
            match read_msg::<_, HostMessage>(&mut rd).await {
                Ok(Some(msg)) => {
                    if !state_in_place && holds_for_the_state(&msg) {
                        agent.ready.wait().await;
                        state_in_place = true;
                    }
                    handle(&agent, &conn, &replies, msg).await
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream is out of sync after a bad frame: say why, then close it.
                    replies.error(
                        None,
                        ErrorKind::BadRequest,
                        format!("malformed request: {e}"),
                    );
                    break;
                }
            }
        }
    }
    drop(replies);
    let _ = writer.await;
}

/// Whether a request waits, and holds up the requests behind it, until the agent's state
/// (a machine's disk) is in place. The order of requests is kept, except that these do not
/// wait: a network's preparation, which needs no state (answered while a cold machine's
/// disk mounts), and a share's closing, the layer list and the deletion of left-over
/// container files, which wait for the state in tasks of their own.
fn holds_for_the_state(msg: &HostMessage) -> bool {
    !matches!(
        msg,
        HostMessage::PrepareNetwork { .. }
            | HostMessage::CloseShare { .. }
            | HostMessage::ListLayers
            | HostMessage::RemoveContainerFiles { .. }
    )
}

async fn handshake<R: tokio::io::AsyncRead + Unpin>(rd: &mut R, replies: &Replies) -> bool {
    match read_msg::<_, HostMessage>(rd).await {
        Ok(Some(HostMessage::Hello { version, client })) if version == VERSION => {
            tracing::debug!("host connected: {client}");
            replies.send(GuestMessage::HelloAck {
                version: VERSION,
                agent: format!("berth-init {}", env!("CARGO_PKG_VERSION")),
                kernel_release: sys::kernel_release(),
            });
            true
        }
        Ok(Some(HostMessage::Hello { version, .. })) => {
            replies.error(
                None,
                ErrorKind::VersionMismatch,
                format!("host speaks protocol {version}, this agent speaks {VERSION}"),
            );
            false
        }
        Ok(Some(other)) => {
            replies.error(
                None,
                ErrorKind::BadRequest,
                format!("expected hello, got {other:?}"),
            );
            false
        }
        Ok(None) => false,
        Err(e) => {
            replies.error(None, ErrorKind::BadRequest, format!("malformed hello: {e}"));
            false
        }
    }
}

async fn handle(agent: &Agent, conn: &Arc<Connection>, replies: &Replies, msg: HostMessage) {
    match msg {
        HostMessage::Hello { .. } => {
            replies.error(None, ErrorKind::BadRequest, "hello was already received")
        }
        HostMessage::Resize { exec_id, size } => {
            let ttys = conn.ttys.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(master) = ttys.get(&exec_id) {
                if let Err(e) = sys::set_winsize(master, size.rows, size.cols) {
                    tracing::debug!("resizing the terminal of exec {exec_id}: {e}");
                }
            }
        }
        HostMessage::Ping { nonce } => replies.send(GuestMessage::Pong { nonce }),
        HostMessage::ListLayers => {
            let (ready, dir, replies) = (
                agent.ready.clone(),
                agent.layers_dir.clone(),
                replies.clone(),
            );
            tokio::spawn(async move {
                ready.wait().await;
                let digests = layers::cached(&dir);
                replies.send(GuestMessage::LayerList { digests })
            });
        }
        HostMessage::PutLayer { digest } => {
            tokio::spawn(layers::put(
                agent.layers_dir.clone(),
                conn.clone(),
                replies.clone(),
                digest,
            ));
        }
        HostMessage::Exec { exec_id, spec } => {
            tokio::spawn(exec::run(
                agent.clone(),
                conn.clone(),
                replies.clone(),
                exec_id,
                spec,
            ));
        }
        HostMessage::Signal { exec_id, signal } => {
            let pid = conn
                .pids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&exec_id)
                .copied();
            match pid {
                Some(pid) => {
                    if let Err(e) = sys::send_signal(pid, signal) {
                        replies.error(
                            Some(exec_id),
                            ErrorKind::BadRequest,
                            format!("signal {signal}: {e}"),
                        );
                    }
                }
                None => tracing::debug!("signal for exec {exec_id}, which is not running"),
            }
        }
        HostMessage::Container { request_id, id, op } => match op {
            ContainerOp::Connect(_) | ContainerOp::Disconnect { .. } => {
                containers::spawn_network(replies.clone(), agent.net.clone(), request_id, id, op)
            }
            op => containers::spawn(replies.clone(), request_id, id, op),
        },
        HostMessage::RemoveVolume { request_id, name } => {
            volumes::spawn(replies.clone(), agent.volumes_dir.clone(), request_id, name)
        }
        HostMessage::RemoveContainerFiles { request_id, which } => {
            let (ready, dir) = (agent.ready.clone(), agent.containers_dir.clone());
            let replies = replies.clone();
            tokio::spawn(async move {
                ready.wait().await;
                let error = crate::container::state::remove_files_in_turn(dir, which)
                    .await
                    .err();
                replies.send(GuestMessage::ContainerFilesRemoved { request_id, error });
            });
        }
        HostMessage::PrepareNetwork {
            request_id,
            network,
        } => {
            let (agent, replies) = (agent.clone(), replies.clone());
            tokio::spawn(async move {
                let error = agent.net.prepare(&network).await.err();
                if let Some(e) = &error {
                    tracing::warn!("preparing network {}: {e}", network.network_name);
                }
                replies.send(GuestMessage::NetworkPrepared { request_id, error });
            });
        }
        HostMessage::CloseShare {
            request_id,
            tag,
            why,
        } => {
            let (agent, replies) = (agent.clone(), replies.clone());
            tokio::spawn(async move {
                // The shares are mounted at boot; a share the host closes had one.
                agent.ready.wait().await;
                tracing::warn!("the host closed shared folder {tag}: {why}");
                let error = agent.shares().close(&tag, &why).err();
                replies.send(GuestMessage::ShareClosed { request_id, error });
            });
        }
        HostMessage::DiskUsage { request_id } => usage::spawn(
            replies.clone(),
            agent.containers_dir.clone(),
            agent.volumes_dir.clone(),
            request_id,
        ),
        HostMessage::PowerOff => {
            replies.send_flushed(GuestMessage::PoweringOff).await;
            if agent.is_init {
                crate::init::power_off();
            } else {
                std::process::exit(0);
            }
        }
    }
}
