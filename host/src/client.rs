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
        let mut agent = Self::hello(io, client).await?;
        agent.read_ack().await?;
        Ok(agent)
    }

    /// The handshake with a first process asked for in the same breath: its streams and
    /// its `Exec` go out right behind the hello, before the answer (the agent reads the
    /// control stream in order, and runs nothing unless it accepted the hello), so a
    /// fresh VM's command starts one round trip sooner.
    pub async fn handshake_then(
        io: BoxIo,
        client: &str,
        first: ExecSpec,
    ) -> Result<(AgentClient, Exec), ClientError> {
        let mut agent = Self::hello(io, client).await?;
        let exec = agent.start_exec(first).await;
        // An agent that refused the hello may close the stream before the request is
        // out: its reason, read first, is the error to report.
        agent.read_ack().await?;
        Ok((agent, exec?))
    }

    /// Sends the hello on a new control stream; the answer is still to be read.
    async fn hello(io: BoxIo, client: &str) -> Result<AgentClient, ClientError> {
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
        Ok(AgentClient {
            session,
            requests: Requests {
                wr,
                next_exec_id: 1,
            },
            events: Events { rd },
            guest: GuestInfo {
                agent: String::new(),
                kernel_release: String::new(),
            },
        })
    }

    /// Reads the agent's answer to the hello: what it is, or why it refused.
    async fn read_ack(&mut self) -> Result<(), ClientError> {
        self.guest = match self.events.recv().await? {
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
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_protocol::ExitStatus;
    use std::time::Duration;

    fn spec() -> ExecSpec {
        ExecSpec {
            argv: vec!["true".into()],
            env: Vec::new(),
            cwd: None,
            stdin: false,
            container: None,
            tty: None,
            join: None,
        }
    }

    /// A refused hello is reported with the agent's reason, even when the agent closed
    /// the stream before the pipelined request went out.
    #[tokio::test]
    async fn a_refused_hello_reports_the_agents_reason() {
        let (host, guest) = tokio::io::duplex(64 * 1024);
        let agent = tokio::spawn(async move {
            let mut session = Session::server(guest);
            let mut control = session.accept().await.expect("the control stream");
            let _: Option<StreamOpen> = read_msg(&mut control).await.unwrap();
            let _: Option<HostMessage> = read_msg(&mut control).await.unwrap();
            let refusal = GuestMessage::Error {
                exec_id: None,
                kind: ErrorKind::VersionMismatch,
                message: "host speaks protocol 0".into(),
            };
            write_msg(&mut control, &refusal).await.unwrap();
            drop(control);
            session
        });
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            AgentClient::handshake_then(Box::new(host), "test", spec()),
        )
        .await
        .expect("the handshake ends");
        match outcome {
            Err(ClientError::Refused { kind, message }) => {
                assert_eq!(kind, ErrorKind::VersionMismatch);
                assert_eq!(message, "host speaks protocol 0");
            }
            Err(other) => panic!("the refusal's reason was lost: {other}"),
            Ok(_) => panic!("a refused hello was accepted"),
        }
        drop(agent.await.unwrap());
    }

    /// A fake agent that answers the hello only once the exec request has arrived behind
    /// it: a client that waited for the answer before asking would never get one.
    #[tokio::test]
    async fn the_first_exec_goes_out_before_the_hello_is_answered() {
        let (host, guest) = tokio::io::duplex(64 * 1024);
        let agent = tokio::spawn(async move {
            let mut session = Session::server(guest);
            let (mut control, mut stdio) = (None, Vec::new());
            while control.is_none() || stdio.len() < 2 {
                let mut s = session.accept().await.expect("a stream from the host");
                match read_msg::<_, StreamOpen>(&mut s).await.unwrap().unwrap() {
                    StreamOpen::Control => control = Some(s),
                    StreamOpen::Stdio { exec_id, fd } => stdio.push((exec_id, fd, s)),
                    other => panic!("unexpected stream {other:?}"),
                }
            }
            let mut control = control.unwrap();
            let hello = read_msg::<_, HostMessage>(&mut control).await.unwrap();
            assert!(
                matches!(hello, Some(HostMessage::Hello { .. })),
                "{hello:?}"
            );
            let exec = read_msg::<_, HostMessage>(&mut control).await.unwrap();
            assert!(
                matches!(exec, Some(HostMessage::Exec { exec_id: 1, .. })),
                "the exec request follows the hello: {exec:?}"
            );
            let ack = GuestMessage::HelloAck {
                version: VERSION,
                agent: "fake".into(),
                kernel_release: "6.1".into(),
            };
            write_msg(&mut control, &ack).await.unwrap();
            let exited = GuestMessage::Exited {
                exec_id: 1,
                status: ExitStatus::Code(0),
                oom_killed: false,
            };
            write_msg(&mut control, &exited).await.unwrap();
            let fds: Vec<_> = stdio.iter().map(|(id, fd, _)| (*id, *fd)).collect();
            (session, control, fds)
        });
        let pipelined = AgentClient::handshake_then(Box::new(host), "test", spec());
        let (mut client, exec) = tokio::time::timeout(Duration::from_secs(10), pipelined)
            .await
            .expect("the hello was answered: the exec request went out without waiting for it")
            .unwrap();
        assert_eq!(exec.id, 1);
        assert_eq!(client.guest.agent, "fake");
        assert!(matches!(
            client.events.recv().await.unwrap(),
            GuestMessage::Exited { exec_id: 1, .. }
        ));
        let (_session, _control, fds) = agent.await.unwrap();
        assert_eq!(fds, [(1, StdioFd::Stdout), (1, StdioFd::Stderr)]);
    }
}
