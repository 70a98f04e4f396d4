//! Links, addresses and routes over rtnetlink: the guest's uplink, bridges, and the veth
//! pair of each container.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

/// The uplink QEMU's user-mode network gives every guest: address, prefix, gateway.
pub const UPLINK: (&str, Ipv4Addr, u8, Ipv4Addr) = (
    "eth0",
    Ipv4Addr::new(10, 0, 2, 15),
    24,
    Ipv4Addr::new(10, 0, 2, 2),
);

fn nl_err(what: &str) -> impl Fn(rtnetlink::Error) -> io::Error + '_ {
    move |e| io::Error::other(format!("{what}: {e}"))
}

/// A netlink connection in the calling thread's network namespace, driven by a task on
/// the current tokio runtime. Must be called inside that runtime.
pub fn connect() -> io::Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(connection);
    Ok(handle)
}

/// A netlink connection inside the network namespace kept at `netns`.
pub fn connect_in(netns: &Path) -> io::Result<Handle> {
    let rt = tokio::runtime::Handle::current();
    crate::sys::in_netns(netns, move || {
        let _entered = rt.enter();
        connect()
    })
}

/// Where the calling thread's network namespace keeps the IPv6 setting that the links
/// made in it afterwards start with.
const IPV6_DEFAULT_OFF: &str = "/proc/sys/net/ipv6/conf/default/disable_ipv6";

/// Turns IPv6 off for every link made from now on in the calling thread's network
/// namespace, as Docker does since 26.0.2 (CVE-2024-32473) for the interfaces it gives
/// only an IPv4 address, and berth's networks are all IPv4-only. The links that exist
/// keep theirs: `lo` its `::1`, the guest's uplink its own. An interface that comes up
/// with IPv6 on gets a link-local address and starts duplicate address detection,
/// multicast joins and router solicitations; on a cold machine the kernel's code for
/// them ran under emulation beside the first container (a cold `berth run --rm busybox
/// true` took 22-31 ms longer). A kernel without IPv6 has nothing to turn off.
pub fn ipv6_off_for_new_links() -> io::Result<()> {
    match std::fs::write(IPV6_DEFAULT_OFF, "1") {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io::Error::other(format!("{IPV6_DEFAULT_OFF}: {e}")))
        }
        _ => Ok(()),
    }
}

/// Sets up a container's new network namespace from a thread inside it: as Docker, any
/// user may bind any port there (`ip_unprivileged_port_start=0`: the namespace is the
/// container's alone), and its interfaces, on IPv4-only networks, have IPv6 off (`lo`
/// keeps `::1`). Returns a netlink connection there, driven on `rt`.
pub fn set_up_inside(rt: tokio::runtime::Handle) -> io::Result<Handle> {
    std::fs::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0")
        .map_err(|e| io::Error::other(format!("ip_unprivileged_port_start: {e}")))?;
    ipv6_off_for_new_links()?;
    let _entered = rt.enter();
    connect()
}

/// Gives the uplink its address and default route, and brings it up.
pub async fn configure_uplink(h: &Handle) -> io::Result<()> {
    let (name, address, prefix, gateway) = UPLINK;
    let index = require(h, name).await?;
    add_address(h, index, address, prefix).await?;
    up(h, index, name).await?;
    default_route(h, gateway).await
}

/// The index of the link called `name`, if there is one.
pub async fn index_of(handle: &Handle, name: &str) -> io::Result<Option<u32>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        // The kernel answers ENODEV for a name it does not know.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ENODEV => Ok(None),
        Err(e) => Err(io::Error::other(format!("looking up link {name}: {e}"))),
    }
}

pub async fn require(handle: &Handle, name: &str) -> io::Result<u32> {
    index_of(handle, name)
        .await?
        .ok_or_else(|| io::Error::other(format!("no link named {name}")))
}

/// Brings the link with `index` (`name`, for errors) up.
pub async fn up(handle: &Handle, index: u32, name: &str) -> io::Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl_err(name))
}

/// Adds `address/prefix` to the link with `index`; an address already there is fine.
pub async fn add_address(
    handle: &Handle,
    index: u32,
    address: Ipv4Addr,
    prefix: u8,
) -> io::Result<()> {
    match handle
        .address()
        .add(index, IpAddr::V4(address), prefix)
        .execute()
        .await
    {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::EEXIST => Ok(()),
        other => other.map_err(nl_err("adding an address")),
    }
}

/// Adds the default route through `gateway`.
pub async fn default_route(handle: &Handle, gateway: Ipv4Addr) -> io::Result<()> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
        .gateway(gateway)
        .build();
    match handle.route().add(route).execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::EEXIST => Ok(()),
        other => other.map_err(nl_err("adding the default route")),
    }
}

/// Creates the bridge `name` with `gateway/prefix` and brings it up (idempotent);
/// returns its index. A new bridge is made up in its creation request: four round trips
/// to the kernel, three for one that exists. Its MAC address is set, from the gateway's
/// address as containers' are ([`berth_protocol::mac_for`]), as Docker sets docker0's: a
/// bridge left to the kernel takes the lowest of its ports' addresses, so it changed as
/// containers came and went (each time a notice to the whole stack), and read all zeroes
/// once the last had gone.
pub async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> io::Result<u32> {
    let index = match index_of(handle, name).await? {
        Some(index) => {
            up(handle, index, name).await?;
            index
        }
        None => {
            handle
                .link()
                .add(
                    LinkBridge::new(name)
                        .address(berth_protocol::mac_for(gateway).to_vec())
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(nl_err("creating a bridge"))?;
            require(handle, name).await?
        }
    };
    add_address(handle, index, gateway, prefix).await?;
    Ok(index)
}

/// Deletes the link `name` (a veth's peer goes with it); a missing link is fine.
pub async fn delete(handle: &Handle, name: &str) -> io::Result<()> {
    match index_of(handle, name).await? {
        Some(index) => match handle.link().del(index).execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ENODEV => Ok(()),
            other => other.map_err(nl_err(name)),
        },
        None => Ok(()),
    }
}

/// Creates a container's veth pair in one request: `host` up on the bridge with index
/// `bridge`, and its peer made directly inside the network namespace at `netns` as
/// `interface` (`eth0`, ...) with `mac` (brought up by [`configure_inside`]: a veth end
/// cannot come up before its pair exists, ENOTCONN). A `host` left by an earlier run of
/// the same container is deleted and the pair made again.
pub async fn veth_pair(
    handle: &Handle,
    host: &str,
    bridge: u32,
    netns: &Path,
    interface: &str,
    mac: [u8; 6],
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(netns)?;
    let pair = || {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(interface)
            .address(mac.to_vec())
            .setns_by_fd(ns.as_raw_fd())
            .build();
        LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host)
            .controller(bridge)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build()
    };
    match handle.link().add(pair()).execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::EEXIST => {
            delete(handle, host).await?;
            handle
                .link()
                .add(pair())
                .execute()
                .await
                .map_err(nl_err("creating a veth pair"))
        }
        other => other.map_err(nl_err("creating a veth pair")),
    }
}

/// Inside a container's namespace (whose `lo` is already up): `interface` comes up with
/// `address/prefix`, and the default route goes through `gateway` when given.
pub async fn configure_inside(
    handle: &Handle,
    interface: &str,
    address: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> io::Result<()> {
    let index = require(handle, interface).await?;
    up(handle, index, interface).await?;
    add_address(handle, index, address, prefix).await?;
    match gateway {
        Some(gateway) => default_route(handle, gateway).await,
        None => Ok(()),
    }
}

/// Brings up `lo` of a new network namespace: it is always the first link there.
pub async fn loopback_up(handle: &Handle) -> io::Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(1).up().build())
        .execute()
        .await
        .map_err(nl_err("lo"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_off_for_the_links_made_afterwards_and_lo_keeps_it() {
        let outcome = crate::sys::in_new_netns(|| {
            ipv6_off_for_new_links()?;
            let lo = std::fs::read_to_string("/proc/sys/net/ipv6/conf/lo/disable_ipv6")?;
            Ok((std::fs::read_to_string(IPV6_DEFAULT_OFF)?, lo))
        })
        .unwrap();
        match outcome {
            None => eprintln!("skipped: creating a network namespace needs root"),
            Some((default, lo)) => {
                assert_eq!(default.trim(), "1", "new links would start with IPv6 on");
                assert_eq!(lo.trim(), "0", "lo lost its IPv6 (::1)");
            }
        }
    }
}
