//! The DNS server of a bridge network: answers the names of the network's containers
//! (name, `--network-alias`es, short id) from the agent's table, and passes every other
//! question on: to the asking container's own `--dns` servers when it has some (as
//! Docker's embedded DNS does with a container's external servers), else to the
//! uplink's resolver when the machine has an open uplink; with neither it answers
//! "server failure" at once. It listens on the bridge's gateway address, port 53/udp,
//! which is the `nameserver` of the network's containers.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use simple_dns::rdata::{RData, A};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};
use tokio::net::UdpSocket;

/// How long a container may cache an answer (Docker's embedded DNS uses 600 s).
const TTL: u32 = 600;
/// How long an upstream resolver gets to answer.
const UPSTREAM_DEADLINE: Duration = Duration::from_secs(3);
/// How long a question that its upstreams left unanswered gets SERVFAIL without asking
/// them again: clients retry a SERVFAIL at once (busybox's nslookup up to four times),
/// and each retry would wait out the deadline again.
const SILENT_MEMO: Duration = Duration::from_secs(5);

/// Lower-case name -> addresses, for one network.
pub type Names = Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>;

/// A container's address on one network -> the name tables of the other networks it is
/// on, so a container on several networks resolves the names of all of them (as
/// Docker's embedded DNS does), whichever network's server it asks. Shared by every
/// bridge's server.
pub type Peers = Arc<Mutex<HashMap<Ipv4Addr, Vec<Names>>>>;

/// A container's address -> its `--dns` servers, which its questions that no table
/// answers go to. Shared by every bridge's server.
pub type Upstreams = Arc<Mutex<HashMap<Ipv4Addr, Vec<SocketAddr>>>>;

/// The names a client sees: its own network's, then those of the other networks it
/// is on (its own network's answer wins for a name on both).
pub fn visible(
    own: &HashMap<String, Vec<Ipv4Addr>>,
    others: &[HashMap<String, Vec<Ipv4Addr>>],
) -> HashMap<String, Vec<Ipv4Addr>> {
    let mut all = own.clone();
    for table in others {
        for (name, addrs) in table {
            all.entry(name.clone()).or_insert_with(|| addrs.clone());
        }
    }
    all
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes back.
    Answer(Vec<u8>),
    /// Not ours: ask the upstream resolver.
    Forward,
    /// Not even a DNS query: ignore it.
    Ignore,
}

/// Answers `query` from `names` when it asks about one of them.
pub fn answer(query: &[u8], names: &HashMap<String, Vec<Ipv4Addr>>, can_forward: bool) -> Reply {
    let Ok(packet) = Packet::parse(query) else {
        return Reply::Ignore;
    };
    if packet.has_flags(PacketFlag::RESPONSE) {
        return Reply::Ignore;
    }
    let Some(question) = packet.questions.first() else {
        return Reply::Ignore;
    };
    let qname = question
        .qname
        .to_string()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mut reply = Packet::new_reply(packet.id());
    reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    if packet.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply.questions.push(question.clone());
    match names.get(&qname) {
        Some(addrs) => {
            let wants_a = matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY);
            if wants_a {
                for addr in addrs {
                    reply.answers.push(ResourceRecord::new(
                        question.qname.clone(),
                        CLASS::IN,
                        TTL,
                        RData::A(A {
                            address: u32::from(*addr),
                        }),
                    ));
                }
            }
            // A known name with no record of the asked type (AAAA): an empty answer.
        }
        None if can_forward => return Reply::Forward,
        None => *reply.rcode_mut() = RCODE::ServerFailure,
    }
    match reply.build_bytes_vec() {
        Ok(bytes) => Reply::Answer(bytes),
        Err(_) => Reply::Ignore,
    }
}

/// Serves DNS on `listen` until the returned task is aborted. `uplink` is where the
/// questions of a client without `--dns` servers of its own (in `upstreams`) go; an
/// `internal` network's questions never leave it.
pub fn serve(
    listen: Ipv4Addr,
    names: Names,
    peers: Peers,
    upstreams: Upstreams,
    internal: bool,
    uplink: Option<SocketAddr>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let socket = std::net::UdpSocket::bind((listen, 53))?;
    socket.set_nonblocking(true)?;
    let socket = Arc::new(UdpSocket::from_std(socket)?);
    let silent = Silent::default();
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let query = buf[..n].to_vec();
            let (others, theirs) = match from.ip() {
                std::net::IpAddr::V4(ip) => {
                    let peers = peers.lock().unwrap_or_else(|p| p.into_inner());
                    let others: Vec<HashMap<String, Vec<Ipv4Addr>>> = peers
                        .get(&ip)
                        .into_iter()
                        .flatten()
                        .map(|t| t.lock().unwrap_or_else(|p| p.into_inner()).clone())
                        .collect();
                    let upstreams = upstreams.lock().unwrap_or_else(|p| p.into_inner());
                    (others, upstreams.get(&ip).cloned().unwrap_or_default())
                }
                std::net::IpAddr::V6(_) => (Vec::new(), Vec::new()),
            };
            let to = upstreams_for(theirs, internal, uplink);
            let reply = {
                let table = names.lock().unwrap_or_else(|p| p.into_inner());
                match others.is_empty() {
                    true => answer(&query, &table, !to.is_empty()),
                    false => answer(&query, &visible(&table, &others), !to.is_empty()),
                }
            };
            match reply {
                Reply::Answer(bytes) => {
                    let _ = socket.send_to(&bytes, from).await;
                }
                Reply::Forward => {
                    let (socket, silent) = (socket.clone(), silent.clone());
                    tokio::spawn(async move {
                        let forwarded = forward_or_fail(&query, &to, UPSTREAM_DEADLINE, &silent);
                        if let Some(bytes) = forwarded.await {
                            let _ = socket.send_to(&bytes, from).await;
                        }
                    });
                }
                Reply::Ignore => {}
            }
        }
    }))
}

/// Where a client's unanswered questions go: nowhere on an internal network, else its
/// own `--dns` servers, else the uplink's resolver (`None` with no open uplink).
pub fn upstreams_for(
    theirs: Vec<SocketAddr>,
    internal: bool,
    uplink: Option<SocketAddr>,
) -> Vec<SocketAddr> {
    match internal {
        true => Vec::new(),
        false if !theirs.is_empty() => theirs,
        false => uplink.into_iter().collect(),
    }
}

/// A question ("name type") to some upstreams.
type Asked = (Vec<SocketAddr>, String);

/// Questions that their upstreams just left unanswered, and when.
#[derive(Clone, Default)]
struct Silent(Arc<Mutex<HashMap<Asked, Instant>>>);

impl Silent {
    fn key(query: &[u8], upstreams: &[SocketAddr]) -> Option<Asked> {
        let packet = Packet::parse(query).ok()?;
        let q = packet.questions.first()?;
        let question = format!("{} {:?}", q.qname, q.qtype).to_ascii_lowercase();
        Some((upstreams.to_vec(), question))
    }

    fn recent(&self, key: &Asked) -> bool {
        let memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        memo.get(key).is_some_and(|at| at.elapsed() < SILENT_MEMO)
    }

    fn mark(&self, key: Asked) {
        let mut memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        memo.retain(|_, at| at.elapsed() < SILENT_MEMO);
        memo.insert(key, Instant::now());
    }
}

/// Asks every one of `upstreams` at once and relays the first answer; when none
/// answers by `deadline`, the client gets SERVFAIL at once (as from Docker's embedded
/// DNS) instead of waiting out its own timeouts, and so does the same question to the
/// same upstreams for a while after (`silent`).
async fn forward_or_fail(
    query: &[u8],
    upstreams: &[SocketAddr],
    deadline: Duration,
    silent: &Silent,
) -> Option<Vec<u8>> {
    let key = Silent::key(query, upstreams);
    if !key.as_ref().is_some_and(|k| silent.recent(k)) {
        if let Some(bytes) = forward_to_any(query, upstreams, deadline).await {
            return Some(bytes);
        }
        if let Some(key) = key {
            silent.mark(key);
        }
    }
    match answer(query, &HashMap::new(), false) {
        Reply::Answer(bytes) => Some(bytes),
        Reply::Forward | Reply::Ignore => None,
    }
}

/// Asks every one of `upstreams` at once; the first answer by `deadline`.
async fn forward_to_any(
    query: &[u8],
    upstreams: &[SocketAddr],
    deadline: Duration,
) -> Option<Vec<u8>> {
    let mut asked = tokio::task::JoinSet::new();
    for upstream in upstreams {
        let (query, upstream) = (query.to_vec(), *upstream);
        asked.spawn(async move { forward(&query, upstream, deadline).await });
    }
    while let Some(answered) = asked.join_next().await {
        if let Ok(Some(bytes)) = answered {
            return Some(bytes);
        }
    }
    None
}

/// Asks `upstream` and returns its answer, or nothing by the deadline.
async fn forward(query: &[u8], upstream: SocketAddr, deadline: Duration) -> Option<Vec<u8>> {
    let any: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(deadline, socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{Name, Question};

    fn query(name: &str, qtype: TYPE) -> Vec<u8> {
        let mut q = Packet::new_query(7);
        q.set_flags(PacketFlag::RECURSION_DESIRED);
        q.questions.push(Question::new(
            Name::new_unchecked(name),
            qtype.into(),
            CLASS::IN.into(),
            false,
        ));
        q.build_bytes_vec().unwrap()
    }

    fn table() -> HashMap<String, Vec<Ipv4Addr>> {
        HashMap::from([("web".to_string(), vec![Ipv4Addr::new(172, 18, 0, 2)])])
    }

    #[test]
    fn known_names_get_their_address_in_any_case() {
        let Reply::Answer(bytes) = answer(&query("WEB.", TYPE::A), &table(), true) else {
            panic!("no answer");
        };
        let reply = Packet::parse(&bytes).unwrap();
        assert_eq!(reply.id(), 7);
        assert_eq!(reply.rcode(), RCODE::NoError);
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(
            reply.answers[0].rdata,
            RData::A(A {
                address: u32::from(Ipv4Addr::new(172, 18, 0, 2))
            })
        );
    }

    #[test]
    fn a_client_on_several_networks_sees_all_their_names_its_own_first() {
        let back = HashMap::from([
            ("db".to_string(), vec![Ipv4Addr::new(172, 19, 0, 2)]),
            ("web".to_string(), vec![Ipv4Addr::new(172, 19, 0, 3)]),
        ]);
        let all = visible(&table(), &[back]);
        assert_eq!(all["db"], vec![Ipv4Addr::new(172, 19, 0, 2)]);
        assert_eq!(all["web"], vec![Ipv4Addr::new(172, 18, 0, 2)]);
        assert_eq!(visible(&table(), &[]), table());
    }

    #[test]
    fn aaaa_of_a_known_name_is_empty_and_unknown_names_go_upstream_or_fail() {
        let Reply::Answer(bytes) = answer(&query("web", TYPE::AAAA), &table(), true) else {
            panic!("no answer");
        };
        let reply = Packet::parse(&bytes).unwrap();
        assert!(reply.answers.is_empty());
        assert_eq!(reply.rcode(), RCODE::NoError);
        assert_eq!(
            answer(&query("example.org", TYPE::A), &table(), true),
            Reply::Forward
        );
        let Reply::Answer(bytes) = answer(&query("example.org", TYPE::A), &table(), false) else {
            panic!("no answer");
        };
        assert_eq!(Packet::parse(&bytes).unwrap().rcode(), RCODE::ServerFailure);
        assert_eq!(answer(b"\x01\x02", &table(), true), Reply::Ignore);
    }

    #[test]
    fn a_clients_own_servers_come_before_the_uplink_and_internal_networks_ask_no_one() {
        let own: SocketAddr = "172.19.0.1:53".parse().unwrap();
        let uplink: SocketAddr = "10.0.2.3:53".parse().unwrap();
        assert_eq!(upstreams_for(vec![own], false, Some(uplink)), vec![own]);
        assert_eq!(upstreams_for(vec![own], false, None), vec![own]);
        assert_eq!(upstreams_for(vec![], false, Some(uplink)), vec![uplink]);
        assert_eq!(upstreams_for(vec![], false, None), vec![]);
        assert_eq!(upstreams_for(vec![own], true, Some(uplink)), vec![]);
    }

    /// A resolver on the loopback that answers every query with `reply` (or, with
    /// `None`, reads it and never answers), and counts the queries it got.
    async fn fake_upstream(
        reply: Option<Vec<u8>>,
    ) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            while let Ok((_, from)) = socket.recv_from(&mut buf).await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let Some(reply) = &reply {
                    let _ = socket.send_to(reply, from).await;
                }
            }
        });
        (addr, asked)
    }

    #[tokio::test]
    async fn forwarded_queries_get_the_upstreams_answer() {
        // An answer only the upstream can give (an address for the name).
        let known = HashMap::from([("example.org".to_string(), vec![Ipv4Addr::new(192, 0, 2, 7)])]);
        let Reply::Answer(theirs) = answer(&query("example.org", TYPE::A), &known, false) else {
            panic!("no answer");
        };
        let (upstream, _) = fake_upstream(Some(theirs.clone())).await;
        let (silent, _) = fake_upstream(None).await;
        let got = forward_or_fail(
            &query("example.org", TYPE::A),
            &[silent, upstream],
            Duration::from_secs(10),
            &Silent::default(),
        )
        .await;
        assert_eq!(
            got,
            Some(theirs),
            "the answering upstream's own reply, relayed past a silent one"
        );
    }

    #[tokio::test]
    async fn an_upstream_that_never_answers_is_servfail_at_its_deadline() {
        let (upstream, asked) = fake_upstream(None).await;
        let memo = Silent::default();
        for _ in 0..3 {
            let bytes = forward_or_fail(
                &query("example.org", TYPE::A),
                &[upstream],
                Duration::from_millis(100),
                &memo,
            )
            .await
            .expect("an answer to the client, not silence");
            let reply = Packet::parse(&bytes).unwrap();
            assert_eq!(reply.id(), 7, "the client's query id");
            assert_eq!(reply.rcode(), RCODE::ServerFailure);
        }
        assert_eq!(
            asked.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the same question retried at once is SERVFAIL without asking the silent upstream again"
        );
        // Another question still goes to it.
        forward_or_fail(
            &query("example.net", TYPE::A),
            &[upstream],
            Duration::from_millis(100),
            &memo,
        )
        .await;
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
