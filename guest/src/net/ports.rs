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

/// How long connecting to a container's port may take in all (Docker's proxy waits as
/// long as the kernel retries SYNs).
const CONNECT_DEADLINE: Duration = Duration::from_secs(75);
/// How long one connection attempt waits for the server's SYN-ACK before a new attempt
/// (see [`connect_tcp`]): the first, and the most any attempt waits.
const FIRST_ATTEMPT: Duration = Duration::from_millis(250);
const LONGEST_ATTEMPT: Duration = Duration::from_secs(1);
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
            // On failure the stream is dropped unclosed: yamux resets it, and the host
            // resets its client's connection at once.
            match connect_tcp(target, CONNECT_DEADLINE).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    berth_mux::relay(stream, tcp, RELAY_DRAIN).await;
                }
                Err(e) => tracing::debug!("published port {addr}: {e}"),
            }
        }
        PortProto::Udp => {
            if let Err(e) = udp_flow(stream, target).await {
                tracing::debug!("published udp port {addr}: {e}");
            }
        }
    }
}

/// Connects to a container's `target` within `deadline`, in attempts of at most
/// [`LONGEST_ATTEMPT`] each. A server whose accept queue is full drops SYNs, and the
/// kernel would retry them after 1, 3, 7, 15, 31 and 63 s: a burst of connections that
/// arrive together (a hundred clients of a published port, a forking httpd with a backlog
/// of 9 under TCG) would then come back together, about ten getting in per wave, and the
/// last ones wait past the deadline. A fresh attempt at most every second (the first ones
/// sooner, each with a little jitter so the burst spreads) gets the burst through in
/// seconds. A refused connection is an answer and ends at once.
async fn connect_tcp(target: SocketAddr, deadline: Duration) -> std::io::Result<TcpStream> {
    in_attempts(deadline, || TcpStream::connect(target)).await
}

/// Runs `attempt` until one finishes (its result is the answer), giving each
/// [`FIRST_ATTEMPT`], then twice as long up to [`LONGEST_ATTEMPT`] (jittered), and all of
/// them `deadline`.
async fn in_attempts<T, F, Fut>(deadline: Duration, mut attempt: F) -> std::io::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    let mut wait = FIRST_ATTEMPT;
    loop {
        let left = give_up.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer in {deadline:?}"),
            ));
        }
        if let Ok(done) = tokio::time::timeout(jittered(wait).min(left), attempt()).await {
            return done;
        }
        wait = (wait * 2).min(LONGEST_ATTEMPT);
    }
}

/// `d` scaled by a random factor between 0.75 and 1.25.
fn jittered(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    d.mul_f64(0.75 + (random % 1000) as f64 / 2000.0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    /// Attempts that get no answer, then one that does: when each began.
    async fn answered_at(
        attempt: usize,
        deadline: Duration,
    ) -> (std::io::Result<usize>, Vec<Duration>) {
        let start = Instant::now();
        let began = Arc::new(Mutex::new(Vec::new()));
        let log = began.clone();
        let result = in_attempts(deadline, move || {
            let mut b = log.lock().unwrap();
            b.push(start.elapsed());
            let n = b.len();
            async move {
                if n < attempt {
                    std::future::pending::<()>().await;
                }
                Ok(n)
            }
        })
        .await;
        let began = began.lock().unwrap().clone();
        (result, began)
    }

    /// A server whose accept queue is full drops SYNs; the kernel would retry after 1,
    /// 3, 7, 15, 31 and 63 s. A published port's connect starts a fresh attempt at least
    /// every 1.25 s instead, so a burst gets in as soon as the queue drains.
    #[tokio::test(start_paused = true)]
    async fn unanswered_connects_are_tried_again_at_least_every_second() {
        let (result, began) = answered_at(20, Duration::from_secs(75)).await;
        let gaps: Vec<Duration> = began.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps[0] <= Duration::from_millis(313),
            "first attempt: {gaps:?}"
        );
        assert!(
            gaps.iter().all(|g| *g <= Duration::from_millis(1250)),
            "a published port's connect waits longer than a second and a quarter between attempts: {gaps:?}"
        );
        assert_eq!(
            result.expect("a published port's connect answered at its 20th attempt"),
            20
        );
        assert!(began[19] < Duration::from_secs(25), "{began:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn connects_give_up_at_the_deadline_and_take_the_first_answer() {
        let (result, began) = answered_at(usize::MAX, Duration::from_secs(10)).await;
        let e = result.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("no answer in 10s"), "{e}");
        assert!(
            *began.last().unwrap() < Duration::from_secs(10),
            "{began:?}"
        );
        // The first answer, a refusal included, is final.
        let refused = in_attempts(Duration::from_secs(10), || async {
            Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
        })
        .await;
        assert_eq!(
            refused.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
    }

    /// With real sockets: attempts dropped while the queue is full leave nothing in the
    /// way, and the connect gets in once the server accepts again.
    #[tokio::test]
    async fn a_connect_to_a_full_accept_queue_gets_in_once_it_drains() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let target = listener.local_addr().unwrap();
        // A backlog of 1 holds two connections the server has not accepted.
        let mut queued = Vec::new();
        for _ in 0..2 {
            queued.push(TcpStream::connect(target).await.unwrap());
        }
        let ours = tokio::spawn(connect_tcp(target, Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(
            !ours.is_finished(),
            "the test's premise: a full accept queue holds back new connections"
        );
        let server = tokio::spawn(async move {
            let mut accepted = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                accepted.push(c);
            }
        });
        let tcp = ours.await.unwrap().expect("the published port's connect");
        assert_eq!(tcp.peer_addr().unwrap(), target);
        server.abort();
    }

    #[test]
    fn attempts_are_jittered_within_a_quarter() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(1000));
            assert!(
                d >= Duration::from_millis(750) && d <= Duration::from_millis(1250),
                "{d:?}"
            );
        }
        let spread: std::collections::HashSet<_> =
            (0..20).map(|_| jittered(Duration::from_secs(1))).collect();
        assert!(
            spread.len() > 1,
            "attempts of a burst are spread, not in step"
        );
    }
}
