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

mod container;
pub mod dns;
mod files;
mod links;
mod loopback;
mod nft;
pub mod ports;

pub use container::Linking;
pub use files::{hosts_file, with_dns_options};

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use berth_protocol::BridgeNetwork;

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
}

fn loopback_up() {
    if let Err(e) = loopback::loopback_up() {
        tracing::warn!("lo: {e}");
    }
}
