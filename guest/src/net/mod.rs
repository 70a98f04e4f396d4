//! Container networking in the guest, all over netlink (rtnetlink for links, addresses and
//! routes; rustables for nftables): no `ip` or `nft` binary.
//!
//! - The guest's uplink is QEMU's user-mode network on `eth0` (10.0.2.15/24 via
//!   10.0.2.2), configured at boot when the host attached one (`berth.uplink=`).
//! - A bridge network is a Linux bridge named by the host, made on first use and deleted
//!   when its last container leaves, with the gateway address on it and a DNS server there
//!   (`dns`). nftables masquerades what leaves through the uplink and drops what one
//!   bridge would forward to another (`nft`): networks are isolated.
//! - Each container on a bridge gets a network namespace kept at
//!   `/run/berth/netns/<id>`, made before its shim starts (the shim joins it), with a veth
//!   pair: one end on the bridge, the other its `eth0` with the address the host allocated.
//!   The pairs, addresses, routes and DNS names are made beside the shim's building of the
//!   container's root ([`Linking`]); the container's command waits for them.
//! - `none` gets a namespace with only `lo` (up); `host` keeps the guest's;
//!   `container:ID` joins another container's (and shares its /etc/hosts and resolver).

pub mod dns;
mod files;
mod links;
mod loopback;
mod nft;
pub mod ports;

pub use files::{hosts_file, with_dns_options};

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use berth_protocol::{Attachment, BridgeNetwork, NetworkSpec};

use crate::container::NsEntry;

/// Where containers' network namespaces are kept.
pub const NETNS_DIR: &str = "/run/berth/netns";
/// QEMU user networking's DNS proxy.
const UPLINK_DNS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 2, 3)), 53);
/// Names of the guest itself, as containers see it (their gateway, or 127.0.0.1 with
/// `--network host`), where forwarded host ports are served.
pub const HOST_NAMES: &str = "host.berth.internal host.docker.internal";

/// How the host attached the guest's uplink (`berth.uplink=`).
pub use berth_protocol::boot::Uplink;

/// What a container's shim needs: its namespace and its /etc files.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub netns: NsEntry,
    pub hosts: String,
    pub resolv_conf: String,
}

struct Bridge {
    /// Its link index, for the veth pairs put on it.
    index: u32,
    names: dns::Names,
    users: usize,
    dns: Option<tokio::task::JoinHandle<()>>,
    /// `--internal`: cut off from the uplink.
    internal: bool,
    /// Kept when its last container leaves (the machine's default bridge).
    keep: bool,
}

/// What the agent made for one container, to undo at its end.
struct Made {
    netns: Option<PathBuf>,
    /// Its interfaces on bridge networks, in the order they were made.
    attached: Vec<Attached>,
    prepared: Prepared,
    /// Its `--dns` servers, which its bridges' DNS servers forward its questions to.
    upstreams: Vec<SocketAddr>,
}

/// One interface of a container on a bridge network.
struct Attached {
    network_id: String,
    network_name: String,
    bridge: String,
    /// `eth<index>` in the container; the host end is `vb<short id><index>`.
    index: usize,
    veth: String,
    address: Ipv4Addr,
    gateway: Ipv4Addr,
    dns_names: Vec<String>,
    /// This interface carries the container's default route.
    routed: bool,
}

/// The most networks one container can be on: the host end of each interface is named
/// `vb`, the short id and one hex digit, within Linux's 15 bytes.
const MAX_NETWORKS: usize = 16;

#[derive(Default)]
struct State {
    bridges: HashMap<String, Bridge>,
    containers: HashMap<String, Made>,
    /// Shared with every bridge's DNS server.
    peers: dns::Peers,
    upstreams: dns::Upstreams,
    /// The ruleset the kernel holds, once one was applied.
    rules: Option<nft::Ruleset>,
}

impl State {
    /// (bridge, internal) for the ruleset, which puts them in order itself.
    fn rule_inputs(&self) -> Vec<(String, bool)> {
        self.bridges
            .iter()
            .map(|(n, b)| (n.clone(), b.internal))
            .collect()
    }
}

/// The guest's networks. One per agent; every method is safe to call concurrently.
pub struct Net {
    uplink: Uplink,
    /// Whether this agent manages the guest's networks at all (it does as PID 1).
    enabled: bool,
    /// The netlink connection, made when first needed: a VM that never runs a networked
    /// container (`vm run`) never pays for it. `None` inside: it could not be made.
    handle: tokio::sync::OnceCell<Option<rtnetlink::Handle>>,
    /// Shared, so that a machine's start can hold it in a task of its own.
    state: Arc<tokio::sync::Mutex<State>>,
    /// Whether the uplink's set-up is over (at once when there is none).
    uplink_settled: tokio::sync::watch::Sender<bool>,
}

/// How long a command in the guest itself waits for the uplink's set-up.
const UPLINK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

impl Net {
    /// Starts the guest's networks. A VM that runs one command (`vm run`) has `lo` up
    /// before this returns. A machine that runs `containers` brings `lo` up in the
    /// background, beside the host's hello and first requests, under the lock that every
    /// container's network takes (so no container joins a network before), and then,
    /// under the same lock, the default network's `bridge` that the boot parameters name,
    /// with its nftables ruleset: a cold machine's first container need not wait for it
    /// after the hello. The rest of the set-up runs beside it in the background, and
    /// containers do not wait for it: the uplink and, on a machine with no bridge yet, the
    /// first ruleset, so that the first container finds that code run once. A VM without an uplink that
    /// runs one command never makes the netlink connection or the ruleset. Failures are
    /// logged: the agent runs without networks rather than not at all, and each container
    /// start then says why.
    pub fn start(uplink: Uplink, containers: bool, bridge: Option<BridgeNetwork>) -> Arc<Net> {
        let net = Arc::new(Net {
            uplink,
            enabled: true,
            handle: Default::default(),
            state: Default::default(),
            uplink_settled: tokio::sync::watch::Sender::new(uplink == Uplink::None),
        });
        let first = match containers {
            true => net.state.clone().try_lock_owned().ok(),
            false => {
                loopback_up();
                None
            }
        };
        // The uplink does not need the lock: it comes up beside the rest.
        let setting_up = net.clone();
        tokio::spawn(async move { setting_up.set_up(containers).await });
        if let Some(mut first) = first {
            let setting_up = net.clone();
            tokio::spawn(async move {
                loopback_up();
                // Forwarding is for containers.
                if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
                    tracing::warn!("ip_forward: {e}");
                }
                // The bridges and the containers' host ends of their veths are on
                // IPv4-only networks too.
                if let Err(e) = links::ipv6_off_for_new_links() {
                    tracing::warn!("{e}");
                }
                if let Some(b) = bridge {
                    // The host's `PrepareNetwork` tries again (also a ruleset that failed),
                    // and says why it failed.
                    match setting_up.ensure_bridge(&mut first, &b).await {
                        Ok(_) => {
                            tracing::debug!(
                                "the default network's bridge {} made at boot",
                                b.bridge
                            )
                        }
                        Err(e) => tracing::warn!("the default network's bridge at boot: {e}"),
                    }
                }
            });
        }
        net
    }

    async fn set_up(&self, containers: bool) {
        if self.uplink != Uplink::None {
            let configured = match self.handle().await {
                Ok(h) => links::configure_uplink(h).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            if let Err(e) = configured {
                tracing::error!("uplink: {e}");
            }
            self.uplink_settled.send_replace(true);
        }
        if containers {
            // Under the lock, and only while there is no bridge: a bridge made meanwhile
            // wrote the ruleset already (and one without it must not replace it).
            let mut state = self.state.lock().await;
            if state.bridges.is_empty() {
                if let Err(e) = self.apply_rules(&mut state) {
                    tracing::warn!("{e}");
                }
            }
        }
    }

    /// No networking at all (an agent that is not PID 1, in tests on a host): containers
    /// get a new, empty network namespace and nothing on the machine is changed.
    pub fn disabled() -> Arc<Net> {
        Arc::new(Net {
            uplink: Uplink::None,
            enabled: false,
            handle: Default::default(),
            state: Default::default(),
            uplink_settled: tokio::sync::watch::Sender::new(true),
        })
    }

    /// Waits until the uplink is configured (or failed to be), for up to
    /// [`UPLINK_DEADLINE`]: a command in the guest itself (`vm run --uplink`) may use it
    /// at once. Containers do not wait for it.
    pub async fn uplink_settled(&self) {
        let mut settled = self.uplink_settled.subscribe();
        if tokio::time::timeout(UPLINK_DEADLINE, settled.wait_for(|s| *s))
            .await
            .is_err()
        {
            tracing::warn!("the uplink was not set up within {UPLINK_DEADLINE:?}");
        }
    }

    /// The netlink connection, made on first use.
    async fn handle(&self) -> Result<&rtnetlink::Handle, String> {
        let made = self
            .handle
            .get_or_init(|| async {
                if !self.enabled {
                    return None;
                }
                links::connect()
                    .inspect_err(|e| tracing::error!("netlink: {e}; containers get no network"))
                    .ok()
            })
            .await;
        made.as_ref()
            .ok_or_else(|| "the guest has no netlink connection".to_string())
    }

    fn uplink_name(&self) -> Option<&'static str> {
        (self.uplink != Uplink::None).then_some(links::UPLINK.0)
    }

    /// Brings the kernel's ruleset in line with the bridges in `state`; nothing is sent
    /// when that would not change it (about 20 ms of a first container's start under
    /// emulation, for its default bridge).
    fn apply_rules(&self, state: &mut State) -> Result<(), String> {
        let rules = nft::Ruleset::new(self.uplink_name(), &state.rule_inputs());
        if state.rules.as_ref() == Some(&rules) {
            return Ok(());
        }
        // Forgotten first: after a failure, the kernel's ruleset is not known.
        state.rules = None;
        nft::apply(&rules).map_err(|e| e.to_string())?;
        state.rules = Some(rules);
        Ok(())
    }

    /// The guest's own resolver, for `--network host` containers.
    fn host_resolv_conf(&self) -> String {
        match self.uplink {
            Uplink::Open => format!("nameserver {}\n", UPLINK_DNS.ip()),
            _ => String::new(),
        }
    }

    /// Prepares the network of container `id` before its shim starts. On a bridge
    /// network, the questions its DNS server cannot answer go to `dns` (`--dns`).
    ///
    /// What the shim needs (its namespace, its /etc/hosts and resolv.conf) is returned
    /// once the namespace is made; on a bridge network its interfaces, addresses, routes
    /// and DNS names are made by the returned [`Linking`], beside the shim's building of
    /// the container's root, and the container's command waits for them (the shim's
    /// network gate). Measured: a warm `berth run --rm busybox true` 5.2 and 3.8 ms
    /// sooner (paired medians of 60 rounds, both orders, won 40 and 33); a cold one
    /// unchanged (+12 and -4.7 ms, 40 rounds each order), its vCPUs being busy anyway.
    pub async fn attach(
        self: &Arc<Self>,
        id: &str,
        hostname: &str,
        spec: Option<&NetworkSpec>,
        dns: &[String],
    ) -> Result<(Prepared, Linking), String> {
        // A namespace of its own is made before the lock: nothing else uses it, and on a
        // cold machine the lock is held by the boot's making of the default bridge, which
        // the first container used to wait for before it even began its namespace.
        let own = match spec {
            Some(NetworkSpec::Bridge { .. }) => Some(self.new_netns(id).await?),
            None if self.handle().await.is_ok() => Some(self.new_netns(id).await?),
            _ => None,
        };
        if let (Some(NetworkSpec::Bridge { networks }), Some(own)) = (spec, &own) {
            let plan = match bridge_plan(hostname, networks, dns, &own.0) {
                Ok(plan) => plan,
                Err(e) => {
                    let _ = crate::sys::remove_netns(&own.0);
                    return Err(e);
                }
            };
            let prepared = plan.prepared.clone();
            let (net, id, networks) = (self.clone(), id.to_string(), networks.clone());
            let own = own.clone();
            let linking = tokio::spawn(async move {
                let mut state = net.state.lock().await;
                let made = net
                    .attach_bridges(&mut state, &id, &networks, own, plan)
                    .await;
                record(&mut state, &id, made).map(|_| ())
            });
            return Ok((prepared, Linking(Some(linking))));
        }
        let mut state = self.state.lock().await;
        let path = own.as_ref().map(|(p, _)| p.clone());
        let made = self
            .attach_with(&state, hostname, spec, own)
            .map_err(|e| (e, path));
        record(&mut state, id, made).map(|prepared| (prepared, Linking::done()))
    }

    /// [`Net::attach`] under the lock for every network but a bridge one, with the
    /// namespace it made (`own`; removed by the caller on failure).
    fn attach_with(
        &self,
        state: &State,
        hostname: &str,
        spec: Option<&NetworkSpec>,
        own: Option<(PathBuf, rtnetlink::Handle)>,
    ) -> Result<Made, String> {
        Ok(match (spec, own) {
            (Some(NetworkSpec::Host), _) => Made {
                netns: None,
                attached: Vec::new(),
                upstreams: Vec::new(),
                prepared: Prepared {
                    netns: NsEntry::Host,
                    hosts: hosts_file(hostname, None, &[("127.0.0.1".into(), HOST_NAMES.into())]),
                    resolv_conf: self.host_resolv_conf(),
                },
            },
            (Some(NetworkSpec::Container { id: other }), _) => {
                let theirs = state
                    .containers
                    .get(other)
                    .ok_or_else(|| format!("container {other} is not running"))?;
                let netns = match &theirs.prepared.netns {
                    NsEntry::Join(path) => NsEntry::Join(path.clone()),
                    NsEntry::Host => NsEntry::Host,
                    NsEntry::New => {
                        return Err(format!("container {other} has no network to share"))
                    }
                };
                Made {
                    netns: None,
                    attached: Vec::new(),
                    upstreams: Vec::new(),
                    prepared: Prepared {
                        netns,
                        ..theirs.prepared.clone()
                    },
                }
            }
            (None, None) => Made {
                netns: None,
                attached: Vec::new(),
                upstreams: Vec::new(),
                prepared: Prepared {
                    netns: NsEntry::New,
                    hosts: hosts_file(hostname, None, &[]),
                    resolv_conf: String::new(),
                },
            },
            (None, Some((path, _inside))) => Made {
                netns: Some(path.clone()),
                attached: Vec::new(),
                upstreams: Vec::new(),
                prepared: Prepared {
                    netns: NsEntry::Join(path),
                    hosts: hosts_file(hostname, None, &[]),
                    resolv_conf: String::new(),
                },
            },
            (Some(NetworkSpec::Bridge { .. }), _) => {
                return Err("a bridge network is attached with a namespace of its own".into())
            }
        })
    }

    /// A new network namespace for container `id` (kept at `NETNS_DIR/<id>-<n>`), set up
    /// ([`links::set_up_inside`]) with `lo` up, and a netlink handle inside it. One thread
    /// makes it, sets it up and opens the netlink socket there, awaited off the runtime's
    /// workers: the container's directories are made meanwhile (a warm run took 4 ms less
    /// than with the worker blocked). Each has a path of its own: a restarting container
    /// makes its new one (before the lock) while its last one may still be deleted (under
    /// the lock, after its exit was reported).
    async fn new_netns(&self, id: &str) -> Result<(PathBuf, rtnetlink::Handle), String> {
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = PathBuf::from(NETNS_DIR).join(format!("{id}-{n}"));
        std::fs::create_dir_all(NETNS_DIR).map_err(|e| format!("{NETNS_DIR}: {e}"))?;
        let rt = tokio::runtime::Handle::current();
        let inside = crate::sys::create_netns(&path, move || links::set_up_inside(rt))
            .await
            .map_err(|e| format!("network namespace: {e}"))?;
        if let Err(e) = links::loopback_up(&inside).await {
            let _ = crate::sys::remove_netns(&path);
            return Err(format!("lo in the network namespace: {e}"));
        }
        Ok((path, inside))
    }

    /// Gives container `id`'s namespace (`path`, `inside` a netlink handle there) an
    /// interface on each of `networks`, as `plan` ([`bridge_plan`]) says. On failure the
    /// interfaces made are undone and the namespace is returned with the error.
    async fn attach_bridges(
        &self,
        state: &mut State,
        id: &str,
        networks: &[Attachment],
        (path, inside): (PathBuf, rtnetlink::Handle),
        plan: BridgePlan,
    ) -> Result<Made, (String, Option<PathBuf>)> {
        let mut attached = Vec::new();
        for (index, a) in networks.iter().enumerate() {
            match self
                .join(state, id, (&path, &inside), index, index == 0, a)
                .await
            {
                Ok(done) => attached.push(done),
                Err(e) => {
                    for done in attached {
                        self.leave(state, done).await;
                    }
                    return Err((e, Some(path)));
                }
            }
        }
        Ok(Made {
            netns: Some(path),
            attached,
            upstreams: plan.upstreams,
            prepared: plan.prepared,
        })
    }

    /// Makes the bridge of `net` ahead of its first container ([`ensure_bridge`]).
    ///
    /// [`ensure_bridge`]: Self::ensure_bridge
    pub async fn prepare(&self, net: &BridgeNetwork) -> Result<(), String> {
        let mut state = self.state.lock().await;
        self.ensure_bridge(&mut state, net).await.map(|_| ())
    }

    /// Makes the bridge of `net`, with the gateway address on it, its DNS server and its
    /// rules, unless it exists; for one that exists, the rules are applied again if they
    /// failed. Returns the gateway.
    async fn ensure_bridge(
        &self,
        state: &mut State,
        net: &BridgeNetwork,
    ) -> Result<Ipv4Addr, String> {
        let gateway: Ipv4Addr = net.gateway.parse().map_err(|_| {
            format!(
                "bad gateway {:?} for network {}",
                net.gateway, net.network_name
            )
        })?;
        if state.bridges.contains_key(&net.bridge) {
            // Nothing is sent when the kernel's ruleset is the one these bridges make.
            self.apply_rules(state)?;
            return Ok(gateway);
        }
        if net.bridge.is_empty() || net.bridge.len() > 15 {
            return Err(format!("bad bridge name {:?}", net.bridge));
        }
        let handle = self.handle().await?;
        let index = links::ensure_bridge(handle, &net.bridge, gateway, net.prefix)
            .await
            .map_err(|e| format!("network {}: {e}", net.network_name))?;
        let names = dns::Names::default();
        let served = dns::serve(
            gateway,
            names.clone(),
            state.peers.clone(),
            state.upstreams.clone(),
            net.internal,
            (self.uplink == Uplink::Open).then_some(UPLINK_DNS),
        );
        let dns = match served {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::warn!("DNS for network {}: {e}", net.network_name);
                None
            }
        };
        state.bridges.insert(
            net.bridge.clone(),
            Bridge {
                index,
                names,
                users: 0,
                dns,
                internal: net.internal,
                keep: net.keep_bridge,
            },
        );
        self.apply_rules(state)?;
        Ok(gateway)
    }

    /// Gives the namespace at `path` (container `id`'s, `inside` a netlink handle there)
    /// interface `eth<index>` on the bridge of `a`, made on first use, and the
    /// container's names in its DNS table.
    async fn join(
        &self,
        state: &mut State,
        id: &str,
        (path, inside): (&std::path::Path, &rtnetlink::Handle),
        index: usize,
        routed: bool,
        a: &Attachment,
    ) -> Result<Attached, String> {
        let handle = self.handle().await?.clone();
        let address: Ipv4Addr = a
            .address
            .parse()
            .map_err(|_| format!("bad address {:?} for network {}", a.address, a.network_name))?;
        let gateway = self.ensure_bridge(state, &a.network()).await?;
        let bridge = state.bridges.get_mut(&a.bridge).ok_or("bridge vanished")?;
        bridge.users += 1;
        let bridge_index = bridge.index;

        let short = &id[..12.min(id.len())];
        let veth = format!("vb{short}{index:x}");
        let interface = format!("eth{index}");
        let made = async {
            let mac = berth_protocol::mac_for(address);
            links::veth_pair(&handle, &veth, bridge_index, path, &interface, mac)
                .await
                .map_err(|e| e.to_string())?;
            links::configure_inside(
                inside,
                &interface,
                address,
                a.prefix,
                routed.then_some(gateway),
            )
            .await
            .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = made {
            let _ = links::delete(&handle, &veth).await;
            self.release_bridge(state, &a.bridge).await;
            return Err(format!("network {}: {e}", a.network_name));
        }
        let bridge = state.bridges.get_mut(&a.bridge).ok_or("bridge vanished")?;
        {
            let mut names = bridge.names.lock().unwrap_or_else(|p| p.into_inner());
            for name in &a.dns_names {
                names
                    .entry(name.to_ascii_lowercase())
                    .or_default()
                    .push(address);
            }
        }
        Ok(Attached {
            network_id: a.network_id.clone(),
            network_name: a.network_name.clone(),
            bridge: a.bridge.clone(),
            index,
            veth,
            address,
            gateway,
            dns_names: a.dns_names.clone(),
            routed,
        })
    }

    /// Undoes [`join`](Self::join): the interface, the names, one user of the bridge.
    async fn leave(&self, state: &mut State, done: Attached) {
        if let Ok(handle) = self.handle().await {
            if let Err(e) = links::delete(handle, &done.veth).await {
                tracing::warn!("deleting {}: {e}", done.veth);
            }
        }
        state
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&done.address);
        state
            .upstreams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&done.address);
        if let Some(bridge) = state.bridges.get(&done.bridge) {
            let mut names = bridge.names.lock().unwrap_or_else(|p| p.into_inner());
            for name in &done.dns_names {
                let key = name.to_ascii_lowercase();
                if let Some(addrs) = names.get_mut(&key) {
                    addrs.retain(|a| *a != done.address);
                    if addrs.is_empty() {
                        names.remove(&key);
                    }
                }
            }
        }
        self.release_bridge(state, &done.bridge).await;
    }

    /// Drops one user of `bridge`; the last one deletes it, unless it is kept.
    async fn release_bridge(&self, state: &mut State, name: &str) {
        let Some(bridge) = state.bridges.get_mut(name) else {
            return;
        };
        bridge.users = bridge.users.saturating_sub(1);
        if bridge.users > 0 || bridge.keep {
            return;
        }
        if let Some(bridge) = state.bridges.remove(name) {
            if let Some(task) = bridge.dns {
                task.abort();
            }
        }
        if let Ok(handle) = self.handle().await {
            if let Err(e) = links::delete(handle, name).await {
                tracing::warn!("deleting bridge {name}: {e}");
            }
        }
        if let Err(e) = self.apply_rules(state) {
            tracing::warn!("{e}");
        }
    }

    /// Puts running container `id` on one more network (`docker network connect`).
    pub async fn connect(&self, id: &str, a: &Attachment) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let made = state
            .containers
            .get(id)
            .ok_or_else(|| format!("container {id} is not running"))?;
        let path = made.netns.clone().ok_or_else(|| {
            format!("container {id} shares a network stack (host or another container's): it cannot join a network")
        })?;
        if made.attached.iter().any(|x| x.network_id == a.network_id) {
            return Err(format!(
                "container {id} is already on network {}",
                a.network_name
            ));
        }
        let index = (0..MAX_NETWORKS)
            .find(|i| !made.attached.iter().any(|x| x.index == *i))
            .ok_or_else(|| format!("a container can be on at most {MAX_NETWORKS} networks"))?;
        let routed = made.attached.is_empty();
        let inside = links::connect_in(&path).map_err(|e| format!("network namespace: {e}"))?;
        let done = self
            .join(&mut state, id, (&path, &inside), index, routed, a)
            .await?;
        if let Some(made) = state.containers.get_mut(id) {
            made.attached.push(done);
        }
        refresh_peers(&mut state, id);
        Ok(())
    }

    /// Takes running container `id` off network `network_id`; the default route moves
    /// to the next network it is on.
    pub async fn disconnect(&self, id: &str, network_id: &str) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let made = state
            .containers
            .get_mut(id)
            .ok_or_else(|| format!("container {id} is not running"))?;
        let at = made
            .attached
            .iter()
            .position(|x| x.network_id == network_id)
            .ok_or_else(|| format!("container {id} is not on network {network_id}"))?;
        let done = made.attached.remove(at);
        let path = made.netns.clone();
        let next = match done.routed {
            true => made.attached.first_mut().map(|n| {
                n.routed = true;
                n.gateway
            }),
            false => None,
        };
        let name = done.network_name.clone();
        self.leave(&mut state, done).await;
        if let (Some(gateway), Some(path)) = (next, path) {
            let inside = links::connect_in(&path).map_err(|e| format!("network namespace: {e}"))?;
            links::default_route(&inside, gateway)
                .await
                .map_err(|e| format!("moving the default route off {name}: {e}"))?;
        }
        refresh_peers(&mut state, id);
        Ok(())
    }

    /// Undoes [`attach`](Self::attach) once container `id` has ended.
    pub async fn detach(&self, id: &str) {
        self.detach_after(id, || {}).await
    }

    /// [`detach`](Self::detach), once `first` has run under the network's lock: a
    /// container's exit is reported first and its interfaces are deleted after, off
    /// the critical path, while a next attach still waits for them to be gone.
    pub async fn detach_after(&self, id: &str, first: impl FnOnce()) {
        let mut state = self.state.lock().await;
        first();
        let Some(made) = state.containers.remove(id) else {
            return;
        };
        for done in made.attached {
            self.leave(&mut state, done).await;
        }
        if let Some(path) = &made.netns {
            if let Err(e) = crate::sys::remove_netns(path) {
                tracing::warn!("{e}");
            }
        }
    }
}

fn loopback_up() {
    if let Err(e) = loopback::loopback_up() {
        tracing::warn!("lo: {e}");
    }
}

/// Keeps what [`Net::attach`] made for container `id`, or, when it failed, removes the
/// namespace it made.
fn record(
    state: &mut State,
    id: &str,
    made: Result<Made, (String, Option<PathBuf>)>,
) -> Result<Prepared, String> {
    let made = match made {
        Ok(made) => made,
        Err((e, netns)) => {
            if let Some(path) = netns {
                let _ = crate::sys::remove_netns(&path);
            }
            return Err(e);
        }
    };
    let prepared = made.prepared.clone();
    state.containers.insert(id.to_string(), made);
    refresh_peers(state, id);
    Ok(prepared)
}

/// What a container on bridge `networks` gets before any of its interfaces is made.
struct BridgePlan {
    /// Its `--dns` servers.
    upstreams: Vec<SocketAddr>,
    /// Its namespace (at `path`) and /etc files, from its first network.
    prepared: Prepared,
}

/// The plan of a container on bridge `networks` in the namespace at `path`; refuses a
/// spec that cannot be attached (before any link is made).
fn bridge_plan(
    hostname: &str,
    networks: &[Attachment],
    dns: &[String],
    path: &std::path::Path,
) -> Result<BridgePlan, String> {
    let upstreams = dns
        .iter()
        .map(|s| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
                .map_err(|_| format!("--dns {s:?} is not an IP address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let first = networks.first().ok_or("a bridge spec names no network")?;
    if networks.len() > MAX_NETWORKS {
        return Err(format!(
            "a container can be on at most {MAX_NETWORKS} networks, not {}",
            networks.len()
        ));
    }
    let mut extra = vec![(first.gateway.clone(), HOST_NAMES.to_string())];
    extra.extend(
        first
            .extra_hosts
            .iter()
            .map(|(n, ip)| (ip.clone(), n.clone())),
    );
    Ok(BridgePlan {
        upstreams,
        prepared: Prepared {
            netns: NsEntry::Join(path.to_path_buf()),
            hosts: hosts_file(hostname, Some(&first.address), &extra),
            resolv_conf: format!("nameserver {}\noptions ndots:0\n", first.gateway),
        },
    })
}

/// A container's interfaces being made ([`Net::attach`]), or nothing left to make.
#[must_use = "a container's network is ready only once its linking is over"]
pub struct Linking(Option<tokio::task::JoinHandle<Result<(), String>>>);

impl Linking {
    /// Nothing left to make.
    pub fn done() -> Linking {
        Linking(None)
    }

    /// Whether there is anything to wait for.
    pub fn pending(&self) -> bool {
        self.0.is_some()
    }

    /// Waits until the interfaces are made; on failure nothing of the container's
    /// network is left (its namespace included) and the error says why.
    pub async fn wait(self) -> Result<(), String> {
        match self.0 {
            None => Ok(()),
            Some(task) => task
                .await
                .unwrap_or_else(|e| Err(format!("the network's set-up failed: {e}"))),
        }
    }
}

/// Tells the DNS servers which other networks container `id` is on (each of its
/// addresses sees the names of its other networks) and where its other questions go.
fn refresh_peers(state: &mut State, id: &str) {
    let Some(made) = state.containers.get(id) else {
        return;
    };
    let mut upstreams = state.upstreams.lock().unwrap_or_else(|p| p.into_inner());
    for me in &made.attached {
        match made.upstreams.is_empty() {
            true => upstreams.remove(&me.address),
            false => upstreams.insert(me.address, made.upstreams.clone()),
        };
    }
    let mut peers = state.peers.lock().unwrap_or_else(|p| p.into_inner());
    for me in &made.attached {
        let others: Vec<dns::Names> = made
            .attached
            .iter()
            .filter(|o| o.network_id != me.network_id)
            .filter_map(|o| state.bridges.get(&o.bridge).map(|b| b.names.clone()))
            .collect();
        match others.is_empty() {
            true => peers.remove(&me.address),
            false => peers.insert(me.address, others),
        };
    }
}
