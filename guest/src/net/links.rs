//! Links, addresses and routes over rtnetlink: the guest's uplink, bridges, and the veth
//! pair of each container.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

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

async fn require(handle: &Handle, name: &str) -> io::Result<u32> {
    index_of(handle, name)
        .await?
        .ok_or_else(|| io::Error::other(format!("no link named {name}")))
}

/// Brings `name` up.
pub async fn up(handle: &Handle, name: &str) -> io::Result<()> {
    let index = require(handle, name).await?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl_err(name))
}

/// Adds `address/prefix` to `name`; an address already there is fine.
pub async fn add_address(
    handle: &Handle,
    name: &str,
    address: Ipv4Addr,
    prefix: u8,
) -> io::Result<()> {
    let index = require(handle, name).await?;
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

/// Creates the bridge `name` with `gateway/prefix` and brings it up (idempotent).
pub async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> io::Result<()> {
    if index_of(handle, name).await?.is_none() {
        handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
            .map_err(nl_err("creating a bridge"))?;
    }
    add_address(handle, name, gateway, prefix).await?;
    up(handle, name).await
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

/// Creates the veth pair `host`/`peer`, puts `host` on `bridge` (up) and moves `peer`
/// into the network namespace at `netns`.
pub async fn veth_into(
    handle: &Handle,
    host: &str,
    peer: &str,
    bridge: &str,
    netns: &Path,
) -> io::Result<()> {
    handle
        .link()
        .add(LinkVeth::new(host, peer).build())
        .execute()
        .await
        .map_err(nl_err("creating a veth pair"))?;
    let bridge_index = require(handle, bridge).await?;
    let host_index = require(handle, host).await?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(host_index)
                .controller(bridge_index)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl_err("attaching the veth to its bridge"))?;
    let ns = std::fs::File::open(netns)?;
    let peer_index = require(handle, peer).await?;
    use std::os::fd::AsRawFd;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(peer_index)
                .setns_by_fd(ns.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(nl_err("moving the veth into the container's namespace"))
}

/// Inside a container's namespace: `lo` up, `peer` renamed to `interface` (`eth0`,
/// `eth1`, ...) with `address`, up, and the default route through `gateway` when given.
pub async fn configure_inside(
    handle: &Handle,
    peer: &str,
    interface: &str,
    address: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> io::Result<()> {
    up(handle, "lo").await?;
    let index = require(handle, peer).await?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .name(interface)
                .address(berth_protocol::mac_for(address).to_vec())
                .build(),
        )
        .execute()
        .await
        .map_err(nl_err("renaming the container's interface"))?;
    add_address(handle, interface, address, prefix).await?;
    up(handle, interface).await?;
    match gateway {
        Some(gateway) => default_route(handle, gateway).await,
        None => Ok(()),
    }
}
