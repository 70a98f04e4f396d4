//! Talking to `berth-init`: the handshake, then requests on a control stream, with each
//! process's stdio on streams of its own.

use berth_mux::{read_msg, write_msg, MuxError, Session, Stream};
use berth_protocol::{
    ErrorKind, ExecSpec, GuestMessage, HostMessage, StdioFd, StreamOpen, VERSION,
};
use tokio::io::{ReadHalf, WriteHalf};

use crate::transport::BoxIo;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("lost the connection to the guest agent")]
    Mux(#[from] MuxError),
    #[error("the guest agent closed the connection")]
    Closed,
    #[error("the guest agent refused: {message}")]
    Refused { kind: ErrorKind, message: String },
    #[error("unexpected reply from the guest agent: {0}")]
    Unexpected(String),
}

/// What the guest said about itself in the handshake.
#[derive(Debug, Clone)]
pub struct GuestInfo {
    pub agent: String,
    pub kernel_release: String,
}

/// A connected, handshaken agent.
pub struct AgentClient {
    session: Session,
    pub requests: Requests,
    pub events: Events,
    pub guest: GuestInfo,
}

/// The sending half of the control stream.
pub struct Requests {
    wr: WriteHalf<Stream>,
    next_exec_id: u64,
}

/// The receiving half of the control stream.
pub struct Events {
    rd: ReadHalf<Stream>,
}

/// A process started with [`AgentClient::start_exec`].
pub struct Exec {
    pub id: u64,
    pub stdin: Option<Stream>,
    pub stdout: Stream,
    pub stderr: Stream,
}

impl AgentClient {
    /// Runs the multiplexer over `io`, opens the control stream and does the handshake.
    pub async fn handshake(io: BoxIo, client: &str) -> Result<AgentClient, ClientError> {
        let session = Session::client(io);
        let mut control = session.open().await?;
        write_msg(&mut control, &StreamOpen::Control).await?;
        write_msg(
            &mut control,
            &HostMessage::Hello {
                version: VERSION,
                client: client.to_string(),
            },
        )
        .await?;
        let (rd, wr) = tokio::io::split(control);
        let mut events = Events { rd };
        let guest = match events.recv().await? {
            GuestMessage::HelloAck {
                version,
                agent,
                kernel_release,
            } if version == VERSION => GuestInfo {
                agent,
                kernel_release,
            },
            GuestMessage::Error { kind, message, .. } => {
                return Err(ClientError::Refused { kind, message })
            }
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        };
        Ok(AgentClient {
            session,
            requests: Requests {
                wr,
                next_exec_id: 1,
            },
            events,
            guest,
        })
    }

    /// Splits the client for a long-lived user (the daemon), which routes replies itself.
    pub fn into_parts(self) -> (Session, Requests, Events) {
        (self.session, self.requests, self.events)
    }

    /// Opens the stdio streams of a new process, then asks the agent to start it.
    /// `Started`/`Exited` (or an `Error`) follow on [`Events`].
    pub async fn start_exec(&mut self, spec: ExecSpec) -> Result<Exec, ClientError> {
        let id = self.requests.next_exec_id;
        self.requests.next_exec_id += 1;
        let stdin = match spec.stdin {
            true => Some(self.open_stdio(id, StdioFd::Stdin).await?),
            false => None,
        };
        let stdout = self.open_stdio(id, StdioFd::Stdout).await?;
        let stderr = self.open_stdio(id, StdioFd::Stderr).await?;
        self.requests
            .send(&HostMessage::Exec { exec_id: id, spec })
            .await?;
        Ok(Exec {
            id,
            stdin,
            stdout,
            stderr,
        })
    }

    async fn open_stdio(&self, exec_id: u64, fd: StdioFd) -> Result<Stream, ClientError> {
        let mut s = self.session.open().await?;
        write_msg(&mut s, &StreamOpen::Stdio { exec_id, fd }).await?;
        Ok(s)
    }
}

impl Requests {
    pub async fn send(&mut self, msg: &HostMessage) -> Result<(), ClientError> {
        Ok(write_msg(&mut self.wr, msg).await?)
    }
}

impl Events {
    /// The next message from the agent.
    pub async fn recv(&mut self) -> Result<GuestMessage, ClientError> {
        read_msg(&mut self.rd).await?.ok_or(ClientError::Closed)
    }
}
