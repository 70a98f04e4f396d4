//! The machine's networks (`docker network`): Docker's three predefined ones (`bridge`,
//! `host`, `none`) and user-defined bridge networks, kept in the machine's
//! `networks.json`, and the address allocation of each bridge network (IPAM). The guest
//! makes a network's bridge when its first container starts (see `berth_protocol::Attachment`).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use crate::image::time::rfc3339_nanos;
use crate::machine::write_atomic;

/// Docker's default bridge network, and its subnet.
pub const DEFAULT_BRIDGE: &str = berth_protocol::boot::DEFAULT_NETWORK;
const DEFAULT_SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(172, 17, 0, 0), 16);
/// The guest's uplink subnet (QEMU user networking): no network may overlap it.
const UPLINK_SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 0, 2, 0), 24);

/// One network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null`, as Docker.
    pub driver: String,
    pub created: String,
    /// For bridge networks: subnet, prefix length, gateway.
    pub subnet: Option<(Ipv4Addr, u8, Ipv4Addr)>,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub internal: bool,
    /// Docker's flag for containers started by hand on a network; berth's networks all
    /// take them, and inspect shows what was asked.
    #[serde(default)]
    pub attachable: bool,
}

/// A network's switches, as created.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// `--internal`: no route out of the bridge.
    pub internal: bool,
    pub attachable: bool,
}

impl Network {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    pub fn is_predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    /// Containers on user-defined networks resolve each other by name; on Docker's
    /// default bridge they do not.
    pub fn has_dns(&self) -> bool {
        self.driver == "bridge" && self.name != DEFAULT_BRIDGE
    }

    /// The network as the guest makes its bridge; `None` without a subnet (no bridge).
    /// The default bridge is kept when its last container leaves, as Docker's docker0.
    pub fn bridge_network(&self) -> Option<berth_protocol::BridgeNetwork> {
        let (_, prefix, gateway) = self.subnet?;
        Some(berth_protocol::BridgeNetwork {
            network_name: self.name.clone(),
            bridge: self.bridge_name(),
            prefix,
            gateway: gateway.to_string(),
            internal: self.internal,
            keep_bridge: self.name == DEFAULT_BRIDGE,
        })
    }

    /// The bridge's interface name in the guest (at most 15 bytes).
    pub fn bridge_name(&self) -> String {
        if self.name == DEFAULT_BRIDGE {
            "berth0".into()
        } else {
            format!("br-{}", self.short_id())
        }
    }
}

/// The networks of one machine, and which addresses its running containers hold.
pub struct Networks {
    path: PathBuf,
    list: Mutex<Vec<Network>>,
    in_use: Mutex<HashMap<String, HashSet<Ipv4Addr>>>,
}

impl Networks {
    /// Loads `path`, adding the predefined networks when missing. A damaged file is
    /// moved aside (`networks.json.damaged-<time>`) and reported, never written over: the
    /// user's networks in it can be recovered by hand.
    pub fn open(path: PathBuf) -> std::io::Result<Networks> {
        let mut list: Vec<Network> = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(list) => list,
                Err(e) => {
                    let stamp = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let aside = path.with_extension(format!("json.damaged-{stamp}"));
                    std::fs::rename(&path, &aside)?;
                    tracing::error!(
                        "{} is damaged ({e}): kept as {}; starting with the predefined networks",
                        path.display(),
                        aside.display()
                    );
                    Vec::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            if !list.iter().any(|n| n.name == name) {
                list.push(Network {
                    id: super::random_hex(64),
                    name: name.into(),
                    driver: driver.into(),
                    created: rfc3339_nanos(std::time::SystemTime::now()),
                    subnet: (name == "bridge").then(|| {
                        let (net, prefix) = DEFAULT_SUBNET;
                        (net, prefix, first_host(net))
                    }),
                    labels: HashMap::new(),
                    internal: false,
                    attachable: false,
                });
            }
        }
        let networks = Networks {
            path,
            list: Mutex::new(list),
            in_use: Mutex::default(),
        };
        networks.save()?;
        Ok(networks)
    }

    fn save(&self) -> std::io::Result<()> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = serde_json::to_vec_pretty(&*list).map_err(std::io::Error::other)?;
        write_atomic(&self.path, &bytes)
    }

    pub fn all(&self) -> Vec<Network> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The default network's bridge as a machine's boot parameters carry it, so that its
    /// guest makes it as it boots.
    pub fn boot_bridge(&self) -> Option<berth_protocol::boot::BootBridge> {
        let n = self.find(DEFAULT_BRIDGE).ok()?;
        let (_, prefix, gateway) = n.subnet?;
        (!n.internal).then(|| berth_protocol::boot::BootBridge {
            bridge: n.bridge_name(),
            gateway,
            prefix,
        })
    }

    /// By full name, full id or unique id prefix, as Docker.
    pub fn find(&self, key: &str) -> Result<Network, ApiError> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = list.iter().find(|n| n.name == key || n.id == key) {
            return Ok(n.clone());
        }
        let matches: Vec<&Network> = list
            .iter()
            .filter(|n| !key.is_empty() && n.id.starts_with(key))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ApiError::new(404, format!("network {key} not found"))),
            _ => Err(ApiError::bad_request(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                matches.len()
            ))),
        }
    }

    /// `docker network create`: a bridge network on `subnet` (or the next free subnet of
    /// Docker's default pools, [`default_pools`]).
    pub fn create(
        &self,
        name: &str,
        driver: &str,
        subnet: Option<(Ipv4Addr, u8)>,
        gateway: Option<Ipv4Addr>,
        labels: HashMap<String, String>,
        flags: Flags,
    ) -> Result<Network, ApiError> {
        let valid = name.len() <= 128
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return Err(ApiError::bad_request(format!(
                "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if driver != "bridge" {
            return Err(ApiError::bad_request(format!(
                "network driver {driver:?}: berth makes bridge networks only"
            )));
        }
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        if list.iter().any(|n| n.name == name) {
            return Err(ApiError::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let taken: Vec<(Ipv4Addr, u8)> = list
            .iter()
            .filter_map(|n| n.subnet.map(|(a, p, _)| (a, p)))
            .chain([UPLINK_SUBNET])
            .collect();
        let (net, prefix) = match subnet {
            Some((addr, prefix)) => {
                if !(8..=30).contains(&prefix) {
                    return Err(ApiError::bad_request(format!(
                        "subnet prefix /{prefix}: berth takes /8 to /30"
                    )));
                }
                let net = network_of(addr, prefix);
                if let Some((a, p)) = taken.iter().find(|t| overlaps(**t, (net, prefix))) {
                    return Err(ApiError::forbidden(format!(
                        "Pool overlaps with other one on this address space ({a}/{p})"
                    )));
                }
                (net, prefix)
            }
            None => default_pools()
                .find(|c| !taken.iter().any(|t| overlaps(*t, *c)))
                .ok_or_else(|| {
                    ApiError::forbidden(
                        "all predefined address pools have been fully subnetted; give --subnet",
                    )
                })?,
        };
        let gateway = gateway.unwrap_or_else(|| first_host(net));
        if network_of(gateway, prefix) != net || gateway == net || gateway == broadcast(net, prefix)
        {
            return Err(ApiError::bad_request(format!(
                "gateway {gateway} is not a host address of {net}/{prefix}"
            )));
        }
        let network = Network {
            id: super::random_hex(64),
            name: name.into(),
            driver: driver.into(),
            created: rfc3339_nanos(std::time::SystemTime::now()),
            subnet: Some((net, prefix, gateway)),
            labels,
            internal: flags.internal,
            attachable: flags.attachable,
        };
        list.push(network.clone());
        drop(list);
        self.save()
            .map_err(|e| ApiError::internal(format!("saving networks: {e}")))?;
        Ok(network)
    }

    /// `docker network rm`; the caller has checked that no container uses it.
    pub fn remove(&self, id: &str) -> Result<(), ApiError> {
        self.list
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|n| n.id != id);
        self.in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.save()
            .map_err(|e| ApiError::internal(format!("saving networks: {e}")))
    }

    /// An address of `network` that no running container holds, now held.
    pub fn allocate(&self, network: &Network) -> Result<Ipv4Addr, ApiError> {
        let Some((net, prefix, gateway)) = network.subnet else {
            return Err(ApiError::internal(format!(
                "network {} has no subnet",
                network.name
            )));
        };
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        let held = in_use.entry(network.id.clone()).or_default();
        let found = (u32::from(net) + 1..u32::from(broadcast(net, prefix)))
            .map(Ipv4Addr::from)
            .find(|a| *a != gateway && !held.contains(a))
            .ok_or_else(|| {
                ApiError::internal(format!("no free address left in network {}", network.name))
            })?;
        held.insert(found);
        Ok(found)
    }

    /// Gives `address` back to `network_id`'s pool.
    pub fn release(&self, network_id: &str, address: Ipv4Addr) {
        if let Some(held) = self
            .in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(network_id)
        {
            held.remove(&address);
        }
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

fn network_of(addr: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(addr) & mask(prefix))
}

fn broadcast(net: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net) | !mask(prefix))
}

fn first_host(net: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net) + 1)
}

fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let p = a.1.min(b.1);
    network_of(a.0, p) == network_of(b.0, p)
}

/// Docker's default address pools for new networks, in order: 172.18-31.0.0/16 (172.17
/// is the default bridge's), then 192.168.0.0/16 cut into /20s.
pub fn default_pools() -> impl Iterator<Item = (Ipv4Addr, u8)> {
    (18..=31)
        .map(|b| (Ipv4Addr::new(172, b, 0, 0), 16))
        .chain((0..16).map(|i| (Ipv4Addr::new(192, 168, i * 16, 0), 20)))
}

/// `172.18.0.0/16` into its parts.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid subnet {s:?}: expected an IPv4 CIDR such as 172.30.0.0/16"
        ))
    };
    let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(bad)?;
    Ok((addr, prefix))
}

/// Docker's network JSON (`GET /networks/{id}`); `containers` are (id, name, address).
pub fn view(n: &Network, containers: &[(String, String, Ipv4Addr)]) -> Value {
    let config: Vec<Value> = n
        .subnet
        .iter()
        .map(|(net, prefix, gw)| json!({"Subnet": format!("{net}/{prefix}"), "Gateway": gw.to_string()}))
        .collect();
    let prefix = n.subnet.map(|(_, p, _)| p).unwrap_or(0);
    let members: serde_json::Map<String, Value> = containers
        .iter()
        .map(|(id, name, addr)| {
            (
                id.clone(),
                json!({
                    "Name": name,
                    "EndpointID": id,
                    "MacAddress": "",
                    "IPv4Address": format!("{addr}/{prefix}"),
                    "IPv6Address": "",
                }),
            )
        })
        .collect();
    // Docker names the bridge of its predefined network only; user networks show the
    // options they were created with (compose compares them), and berth takes none.
    let mut options = serde_json::Map::new();
    if n.driver == "bridge" && n.is_predefined() {
        options.insert(
            "com.docker.network.bridge.name".into(),
            Value::String(n.bridge_name()),
        );
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": config},
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": members,
        "Options": options,
        "Labels": n.labels,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn pools_are_dockers_and_a_damaged_file_is_kept() {
        let pools: Vec<_> = default_pools().collect();
        assert_eq!(pools.len(), 30);
        assert_eq!(pools[14], (Ipv4Addr::new(192, 168, 0, 0), 20));
        assert_eq!(pools[29], (Ipv4Addr::new(192, 168, 240, 0), 20));
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("networks.json");
        std::fs::write(&path, b"{ damaged").unwrap();
        let n = Networks::open(path.clone()).unwrap();
        assert!(n.find("bridge").is_ok());
        let kept: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("damaged-"))
            .collect();
        assert_eq!(kept.len(), 1, "the damaged file is kept aside");
        assert_eq!(std::fs::read(kept[0].path()).unwrap(), b"{ damaged");
        // 30 user networks fit, as with Docker (14 in 172.18-31, 16 in 192.168).
        for i in 0..30 {
            n.create(
                &format!("n{i}"),
                "bridge",
                None,
                None,
                HashMap::new(),
                Flags::default(),
            )
            .unwrap_or_else(|e| panic!("network {i}: {}", e.message));
        }
        let err = n
            .create(
                "one-more",
                "bridge",
                None,
                None,
                HashMap::new(),
                Flags::default(),
            )
            .unwrap_err();
        assert!(err.message.contains("address pools"), "{}", err.message);
    }

    use super::*;

    fn store() -> (tempfile::TempDir, Networks) {
        let dir = tempfile::tempdir().unwrap();
        let n = Networks::open(dir.path().join("networks.json")).unwrap();
        (dir, n)
    }

    #[test]
    fn the_boot_bridge_is_the_default_networks() {
        let (_dir, n) = store();
        let boot = n
            .boot_bridge()
            .expect("the default network boots with the machine");
        let prepared = n.find("bridge").unwrap().bridge_network().unwrap();
        assert_eq!(boot.network(), prepared, "what PrepareNetwork would send");
        assert_eq!(boot.bridge, "berth0");
        assert_eq!(boot.gateway, Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(boot.prefix, 16);
    }

    #[test]
    fn predefined_networks_exist_and_persist() {
        let (dir, n) = store();
        let names: Vec<String> = n.all().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["bridge", "host", "none"]);
        let bridge = n.find("bridge").unwrap();
        assert_eq!(bridge.bridge_name(), "berth0");
        assert!(!bridge.has_dns());
        let again = Networks::open(dir.path().join("networks.json")).unwrap();
        assert_eq!(again.find("bridge").unwrap().id, bridge.id);
    }

    #[test]
    fn user_networks_get_free_subnets_and_refuse_overlaps() {
        let (_dir, n) = store();
        let a = n
            .create("a", "bridge", None, None, HashMap::new(), Flags::default())
            .unwrap();
        let b = n
            .create("b", "bridge", None, None, HashMap::new(), Flags::default())
            .unwrap();
        assert_eq!(
            a.subnet,
            Some((
                Ipv4Addr::new(172, 18, 0, 0),
                16,
                Ipv4Addr::new(172, 18, 0, 1)
            ))
        );
        assert_eq!(b.subnet.unwrap().0, Ipv4Addr::new(172, 19, 0, 0));
        assert!(a.has_dns() && a.bridge_name().starts_with("br-") && a.bridge_name().len() == 15);
        assert_eq!(
            n.create("a", "bridge", None, None, HashMap::new(), Flags::default())
                .unwrap_err()
                .status,
            409
        );
        let overlap = n.create(
            "c",
            "bridge",
            Some(parse_cidr("172.18.5.0/24").unwrap()),
            None,
            HashMap::new(),
            Flags::default(),
        );
        assert_eq!(overlap.unwrap_err().status, 403);
        let uplink = n.create(
            "d",
            "bridge",
            Some(parse_cidr("10.0.0.0/8").unwrap()),
            None,
            HashMap::new(),
            Flags::default(),
        );
        assert_eq!(uplink.unwrap_err().status, 403);
        assert!(n
            .create("e", "overlay", None, None, HashMap::new(), Flags::default())
            .is_err());
        assert!(parse_cidr("300.1.1.1/8").is_err() && parse_cidr("10.1.1.1").is_err());
        assert_eq!(n.find(&a.id[..6]).unwrap().name, "a");
        assert_eq!(n.find("nope").unwrap_err().status, 404);
    }

    #[test]
    fn allocation_never_hands_out_an_address_in_use() {
        let (_dir, n) = store();
        let net = n
            .create(
                "small",
                "bridge",
                Some(parse_cidr("192.168.7.0/29").unwrap()),
                None,
                HashMap::new(),
                Flags::default(),
            )
            .unwrap();
        let got: Vec<Ipv4Addr> = (0..5).map(|_| n.allocate(&net).unwrap()).collect();
        assert_eq!(got[0], Ipv4Addr::new(192, 168, 7, 2));
        assert_eq!(got[4], Ipv4Addr::new(192, 168, 7, 6));
        assert!(
            n.allocate(&net).is_err(),
            "the /29 has 5 host addresses besides the gateway"
        );
        n.release(&net.id, got[2]);
        assert_eq!(n.allocate(&net).unwrap(), got[2]);
    }
}
