//! The DNS server of a bridge network: answers the names of the network's containers
//! (name, `--network-alias`es, short id) from the agent's table, and passes every other
//! question to the uplink's resolver when the machine has an open uplink (else answers
//! "server failure" at once). It listens on the bridge's gateway address, port 53/udp,
//! which is the `nameserver` of the network's containers.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use simple_dns::rdata::{RData, A};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};
use tokio::net::UdpSocket;

/// How long a container may cache an answer (Docker's embedded DNS uses 600 s).
const TTL: u32 = 600;
/// How long an upstream resolver gets to answer.
const UPSTREAM_DEADLINE: Duration = Duration::from_secs(3);

/// Lower-case name -> addresses, for one network.
pub type Names = Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>;

/// A container's address on one network -> the name tables of the other networks it is
/// on, so a container on several networks resolves the names of all of them (as
/// Docker's embedded DNS does), whichever network's server it asks. Shared by every
/// bridge's server.
pub type Peers = Arc<Mutex<HashMap<Ipv4Addr, Vec<Names>>>>;

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

/// Serves DNS on `listen` until the returned task is aborted.
pub fn serve(
    listen: Ipv4Addr,
    names: Names,
    peers: Peers,
    upstream: Option<SocketAddr>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let socket = std::net::UdpSocket::bind((listen, 53))?;
    socket.set_nonblocking(true)?;
    let socket = Arc::new(UdpSocket::from_std(socket)?);
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let query = buf[..n].to_vec();
            let others: Vec<HashMap<String, Vec<Ipv4Addr>>> = match from.ip() {
                std::net::IpAddr::V4(ip) => {
                    let peers = peers.lock().unwrap_or_else(|p| p.into_inner());
                    peers
                        .get(&ip)
                        .into_iter()
                        .flatten()
                        .map(|t| t.lock().unwrap_or_else(|p| p.into_inner()).clone())
                        .collect()
                }
                std::net::IpAddr::V6(_) => Vec::new(),
            };
            let reply = {
                let table = names.lock().unwrap_or_else(|p| p.into_inner());
                match others.is_empty() {
                    true => answer(&query, &table, upstream.is_some()),
                    false => answer(&query, &visible(&table, &others), upstream.is_some()),
                }
            };
            match (reply, upstream) {
                (Reply::Answer(bytes), _) => {
                    let _ = socket.send_to(&bytes, from).await;
                }
                (Reply::Forward, Some(upstream)) => {
                    let socket = socket.clone();
                    tokio::spawn(async move {
                        if let Some(bytes) =
                            forward_or_fail(&query, upstream, UPSTREAM_DEADLINE).await
                        {
                            let _ = socket.send_to(&bytes, from).await;
                        }
                    });
                }
                _ => {}
            }
        }
    }))
}

/// Asks `upstream`; when it does not answer by `deadline`, the client gets SERVFAIL at
/// once (as from Docker's embedded DNS) instead of waiting out its own timeouts.
async fn forward_or_fail(
    query: &[u8],
    upstream: SocketAddr,
    deadline: Duration,
) -> Option<Vec<u8>> {
    if let Some(bytes) = forward(query, upstream, deadline).await {
        return Some(bytes);
    }
    match answer(query, &HashMap::new(), false) {
        Reply::Answer(bytes) => Some(bytes),
        Reply::Forward | Reply::Ignore => None,
    }
}

/// Asks `upstream` and returns its answer, or nothing by the deadline.
async fn forward(query: &[u8], upstream: SocketAddr, deadline: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await.ok()?;
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

    /// A resolver on the loopback that answers every query with `reply` (or, with
    /// `None`, reads it and never answers).
    async fn fake_upstream(reply: Option<Vec<u8>>) -> SocketAddr {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            while let Ok((_, from)) = socket.recv_from(&mut buf).await {
                if let Some(reply) = &reply {
                    let _ = socket.send_to(reply, from).await;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn forwarded_queries_get_the_upstreams_answer() {
        // An answer only the upstream can give (an address for the name).
        let known = HashMap::from([("example.org".to_string(), vec![Ipv4Addr::new(192, 0, 2, 7)])]);
        let Reply::Answer(theirs) = answer(&query("example.org", TYPE::A), &known, false) else {
            panic!("no answer");
        };
        let upstream = fake_upstream(Some(theirs.clone())).await;
        let got = forward_or_fail(
            &query("example.org", TYPE::A),
            upstream,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(got, Some(theirs), "the upstream's own reply, relayed");
    }

    #[tokio::test]
    async fn an_upstream_that_never_answers_is_servfail_at_its_deadline() {
        let upstream = fake_upstream(None).await;
        let bytes = forward_or_fail(
            &query("example.org", TYPE::A),
            upstream,
            Duration::from_millis(100),
        )
        .await
        .expect("an answer to the client, not silence");
        let reply = Packet::parse(&bytes).unwrap();
        assert_eq!(reply.id(), 7, "the client's query id");
        assert_eq!(reply.rcode(), RCODE::ServerFailure);
    }
}
