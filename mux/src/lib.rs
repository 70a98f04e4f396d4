//! One byte stream between host and guest, many logical streams on top of it.
//!
//! Every transport (vsock, vhost-user vsock, virtio-serial) yields one ordered byte stream;
//! [`Session`] runs yamux over it, so everything above the transport has one code path.
//! yamux gives each stream its own flow-control window: a process writing megabytes to
//! stdout never delays a control message.
//!
//! [`read_msg`] and [`write_msg`] move framed [`berth_protocol`] messages over a stream.

use std::future::poll_fn;
use std::io;
use std::task::Poll;

use berth_protocol::{decode_body, decode_header, encode, FrameError, HEADER_LEN};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

/// A logical stream: tokio `AsyncRead + AsyncWrite`.
pub type Stream = Compat<yamux::Stream>;

/// Errors of the multiplexed session and of message framing.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("the connection to the peer is closed")]
    Closed,
    #[error("multiplexer failure")]
    Yamux(#[from] yamux::ConnectionError),
    #[error("i/o error on a stream")]
    Io(#[from] io::Error),
    #[error("bad frame from the peer")]
    Frame(#[from] FrameError),
}

type OpenReply = oneshot::Sender<Result<Stream, MuxError>>;

/// A yamux session over one byte stream. A background task drives the connection for as
/// long as the `Session` lives (or until the peer goes away).
pub struct Session {
    open_tx: mpsc::Sender<OpenReply>,
    inbound_rx: mpsc::UnboundedReceiver<Stream>,
    driver: tokio::task::JoinHandle<()>,
}

impl Session {
    /// The side that opens streams (the host).
    pub fn client<T>(io: T) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::start(io, yamux::Mode::Client)
    }

    /// The side that accepts streams (the guest agent).
    pub fn server<T>(io: T) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::start(io, yamux::Mode::Server)
    }

    fn start<T>(io: T, mode: yamux::Mode) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let conn = yamux::Connection::new(io.compat(), config(), mode);
        let (open_tx, open_rx) = mpsc::channel(16);
        let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(conn, open_rx, inbound_tx));
        Session {
            open_tx,
            inbound_rx,
            driver,
        }
    }

    /// Opens a new stream to the peer.
    pub async fn open(&self) -> Result<Stream, MuxError> {
        self.opener().open().await
    }

    /// A handle that opens streams on this session from elsewhere (a task that does not
    /// own the session); it fails with `Closed` once the session is gone.
    pub fn opener(&self) -> Opener {
        Opener {
            open_tx: self.open_tx.clone(),
        }
    }

    /// Waits for the peer to open a stream; `None` once the connection has ended.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.inbound_rx.recv().await
    }

    /// Whether the connection has ended (peer gone, transport error).
    pub fn is_closed(&self) -> bool {
        self.driver.is_finished()
    }
}

/// Reads and discards what the peer still sends on `stream` until it ends or `deadline`
/// passes. For a relay whose other side failed after it half-closed this stream: yamux
/// resets a stream dropped while open, but one dropped after its close leaves a peer that
/// is out of window credit blocked for good; reading gives it credit to finish.
pub async fn drain(mut stream: Stream, deadline: std::time::Duration) {
    let mut buf = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(deadline, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// The largest UDP datagram a stream carries.
pub const MAX_DATAGRAM: usize = 65535;

/// Writes one datagram on a UDP flow's stream: a 2-byte big-endian length, then its
/// bytes (`StreamOpen::Connect` with `PortProto::Udp`). Longer datagrams are cut.
pub async fn write_datagram<W: AsyncWrite + Unpin>(w: &mut W, datagram: &[u8]) -> io::Result<()> {
    let d = &datagram[..datagram.len().min(MAX_DATAGRAM)];
    w.write_u16(d.len() as u16).await?;
    w.write_all(d).await?;
    w.flush().await
}

/// Reads one datagram written by [`write_datagram`] into `buf` (at least
/// [`MAX_DATAGRAM`] bytes); its length, or `None` when the stream ended.
pub async fn read_datagram<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
) -> io::Result<Option<usize>> {
    let len = match r.read_u16().await {
        Ok(len) => len as usize,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    r.read_exact(&mut buf[..len]).await?;
    Ok(Some(len))
}

/// The copy buffer of a relay, and the largest yamux frame.
const RELAY_BUFFER: usize = 128 * 1024;

/// Copies bytes both ways between `stream` and `other` (a TCP connection) until both
/// directions end. When one side fails, `other` is closed at once and `stream` drained
/// (see [`drain`]), so neither peer is left blocked.
pub async fn relay<T>(mut stream: Stream, mut other: T, drain_deadline: std::time::Duration)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if tokio::io::copy_bidirectional_with_sizes(&mut stream, &mut other, RELAY_BUFFER, RELAY_BUFFER)
        .await
        .is_err()
    {
        drop(other);
        drain(stream, drain_deadline).await;
    }
}

/// Opens streams on a [`Session`] (see [`Session::opener`]).
#[derive(Clone)]
pub struct Opener {
    open_tx: mpsc::Sender<OpenReply>,
}

impl Opener {
    /// Opens a new stream to the peer.
    pub async fn open(&self) -> Result<Stream, MuxError> {
        let (tx, rx) = oneshot::channel();
        self.open_tx.send(tx).await.map_err(|_| MuxError::Closed)?;
        rx.await.map_err(|_| MuxError::Closed)?
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn config() -> yamux::Config {
    let mut cfg = yamux::Config::default();
    // Each stream may buffer up to the connection window over the stream count (1 GiB / 512
    // = 2 MiB): enough for a bulk flow (a published port) to keep the link busy.
    cfg.set_max_num_streams(512);
    // Bigger frames than the 16 KiB default: fewer headers and wake-ups per megabyte.
    cfg.set_split_send_size(RELAY_BUFFER);
    cfg
}

/// Drives the yamux connection: serves open requests and hands inbound streams out.
async fn drive<T>(
    mut conn: yamux::Connection<T>,
    mut open_rx: mpsc::Receiver<OpenReply>,
    inbound_tx: mpsc::UnboundedSender<Stream>,
) where
    T: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let mut waiting: Option<OpenReply> = None;
    let mut open_rx_done = false;
    let result: Result<(), yamux::ConnectionError> = poll_fn(|cx| {
        loop {
            if waiting.is_none() && !open_rx_done {
                match open_rx.poll_recv(cx) {
                    Poll::Ready(Some(reply)) => waiting = Some(reply),
                    Poll::Ready(None) => open_rx_done = true,
                    Poll::Pending => {}
                }
            }
            let Some(reply) = waiting.take() else { break };
            match conn.poll_new_outbound(cx) {
                Poll::Ready(r) => {
                    let _ = reply.send(r.map(|s| s.compat()).map_err(MuxError::from));
                }
                Poll::Pending => {
                    waiting = Some(reply);
                    break;
                }
            }
        }
        loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => {
                    // A receiver that is gone only means nobody accepts; the stream drops.
                    let _ = inbound_tx.send(stream.compat());
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
    if let Err(e) = result {
        tracing::debug!("multiplexed connection ended: {e}");
    }
    if let Some(reply) = waiting {
        let _ = reply.send(Err(MuxError::Closed));
    }
}

/// Writes one framed message.
pub async fn write_msg<W, T>(w: &mut W, msg: &T) -> Result<(), MuxError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let frame = encode(msg)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one framed message; `Ok(None)` on a clean end of stream between frames.
pub async fn read_msg<R, T>(r: &mut R) -> Result<Option<T>, MuxError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut header = [0u8; HEADER_LEN];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = decode_header(header)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(decode_body(&body)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_protocol::{HostMessage, StreamOpen};

    #[tokio::test]
    async fn datagrams_keep_their_bounds_and_end_cleanly() {
        let (mut a, mut b) = tokio::io::duplex(1 << 18);
        write_datagram(&mut a, b"one").await.unwrap();
        write_datagram(&mut a, b"").await.unwrap();
        write_datagram(&mut a, &vec![7u8; MAX_DATAGRAM + 10])
            .await
            .unwrap();
        drop(a);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        assert_eq!(read_datagram(&mut b, &mut buf).await.unwrap(), Some(3));
        assert_eq!(&buf[..3], b"one");
        assert_eq!(read_datagram(&mut b, &mut buf).await.unwrap(), Some(0));
        assert_eq!(
            read_datagram(&mut b, &mut buf).await.unwrap(),
            Some(MAX_DATAGRAM)
        );
        assert_eq!(read_datagram(&mut b, &mut buf).await.unwrap(), None);
    }

    #[tokio::test]
    async fn streams_carry_messages_and_bulk_bytes_both_ways() {
        let (a, b) = tokio::io::duplex(4096);
        let client = Session::client(a);
        let mut server = Session::server(b);

        let mut s = client.open().await.unwrap();
        write_msg(&mut s, &StreamOpen::Control).await.unwrap();
        write_msg(&mut s, &HostMessage::Ping { nonce: 9 })
            .await
            .unwrap();
        let bulk = vec![7u8; 1 << 20];
        let mut bulk_stream = client.open().await.unwrap();
        let sender = {
            let bulk = bulk.clone();
            tokio::spawn(async move {
                bulk_stream.write_all(&bulk).await.unwrap();
                bulk_stream.shutdown().await.unwrap();
            })
        };

        let mut got = server.accept().await.unwrap();
        let open: StreamOpen = read_msg(&mut got).await.unwrap().unwrap();
        assert_eq!(open, StreamOpen::Control);
        let ping: HostMessage = read_msg(&mut got).await.unwrap().unwrap();
        assert_eq!(ping, HostMessage::Ping { nonce: 9 });

        let mut got_bulk = server.accept().await.unwrap();
        let mut received = Vec::new();
        got_bulk.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, bulk);
        sender.await.unwrap();
    }

    #[tokio::test]
    async fn open_fails_once_the_peer_is_gone() {
        let (a, b) = tokio::io::duplex(64);
        let client = Session::client(a);
        drop(b);
        let mut failed = false;
        for _ in 0..10 {
            if let Ok(mut s) = client.open().await {
                if write_msg(&mut s, &StreamOpen::Control).await.is_err() {
                    failed = true;
                    break;
                }
            } else {
                failed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(failed, "writing to a session whose peer is gone must fail");
    }
}
