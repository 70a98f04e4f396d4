//! A container's network as it starts and ends: its mode checked at create, then at each
//! start an address on its network, its published ports bound on the host and the
//! guest-side spec; all of it released when it ends.

use berth_protocol::{Attachment, NetworkSpec};

use super::engine::{Container, Engine};
use super::error::ApiError;
use super::networks::Network;
use super::state::{Endpoint, NetSettings, Record};

impl Engine {
    /// Checks a create request's networks: a user network must exist (its name is kept),
    /// `container:NAME` becomes `container:<id>`; aliases need a user network; a shared
    /// stack cannot publish ports or join more networks.
    pub(super) fn resolve_networks(&self, n: &mut NetSettings) -> Result<(), ApiError> {
        n.mode = match n.mode.as_str() {
            "none" | "host" => n.mode.clone(),
            m if m.starts_with("container:") => {
                let other = self.find(&m["container:".len()..])?;
                if !n.ports.is_empty() {
                    return Err(ApiError::bad_request(
                        "conflicting options: port publishing and the container type network mode",
                    ));
                }
                format!("container:{}", other.id)
            }
            name => {
                let network = self.networks.find(name)?;
                if network.driver != "bridge" {
                    network.driver.clone().replace("null", "none")
                } else {
                    network.name
                }
            }
        };
        let mode = n.mode.clone();
        if !n.links.is_empty() && !n.mode_is_network() {
            return Err(ApiError::bad_request(format!(
                "conflicting options: {mode} type networking can't be used with links"
            )));
        }
        if !n.aliases.is_empty() && !user_network(&mode) {
            return Err(ApiError::bad_request(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        let mut seen = vec![mode.clone()];
        let on_network = n.mode_is_network();
        for joined in &mut n.also {
            if !on_network {
                return Err(ApiError::bad_request(format!(
                    "container cannot be connected to multiple networks with one of the networks in {mode} mode"
                )));
            }
            let network = self.networks.find(&joined.network)?;
            if network.driver != "bridge" {
                return Err(ApiError::bad_request(format!(
                    "container cannot be connected to multiple networks with one of the networks in {} mode",
                    network.name
                )));
            }
            if seen.contains(&network.name) {
                return Err(ApiError::bad_request(format!(
                    "network {} is given twice",
                    network.name
                )));
            }
            if !joined.aliases.is_empty() && !network.has_dns() {
                return Err(ApiError::bad_request(
                    "network-scoped alias is supported only for containers in user defined networks",
                ));
            }
            joined.network = network.name.clone();
            seen.push(network.name);
        }
        Ok(())
    }

    /// Container `record`'s place on `network` at `address`, as the guest makes it.
    pub(super) fn attachment(
        &self,
        record: &Record,
        network: &Network,
        aliases: &[String],
        address: std::net::Ipv4Addr,
    ) -> Result<Attachment, ApiError> {
        let (Some((subnet, _, gateway)), Some(bridge)) = (network.subnet, network.bridge_network())
        else {
            return Err(ApiError::internal(format!(
                "network {} has no subnet",
                network.name
            )));
        };
        let mut dns_names = Vec::new();
        if network.has_dns() {
            dns_names.push(record.name.clone());
            dns_names.push(record.id[..12].to_string());
            dns_names.extend(aliases.iter().cloned());
        }
        let extra_hosts = record
            .spec
            .network
            .extra_hosts
            .iter()
            .map(|(name, ip)| {
                let ip = if ip == "host-gateway" {
                    gateway.to_string()
                } else {
                    ip.clone()
                };
                (name.clone(), ip)
            })
            .collect();
        Ok(Attachment {
            network_id: network.id.clone(),
            network_name: bridge.network_name,
            bridge: bridge.bridge,
            subnet: subnet.to_string(),
            prefix: bridge.prefix,
            gateway: bridge.gateway,
            address: address.to_string(),
            dns_names,
            extra_hosts,
            internal: bridge.internal,
            keep_bridge: bridge.keep_bridge,
        })
    }

    /// An address on `network` for container `record`: the attachment the guest makes
    /// and the endpoint the record keeps (without ports).
    pub(super) fn allocate_on(
        &self,
        record: &Record,
        network: &Network,
        aliases: &[String],
    ) -> Result<(Attachment, Endpoint), ApiError> {
        let address = self.networks.allocate(network)?;
        let attachment = match self.attachment(record, network, aliases, address) {
            Ok(a) => a,
            Err(e) => {
                self.networks.release(&network.id, address);
                return Err(e);
            }
        };
        let (_, prefix, gateway) = network.subnet.unwrap_or((address, 0, address));
        let endpoint = Endpoint {
            network_id: network.id.clone(),
            network_name: network.name.clone(),
            address,
            prefix,
            gateway,
            ports: Vec::new(),
        };
        Ok((attachment, endpoint))
    }

    /// Prepares the network of a container about to start: its guest-side spec, its
    /// endpoints (addresses held, ports bound on the host for the first) and the port
    /// tasks.
    pub(super) async fn connect_network(
        &self,
        c: &Container,
        record: &Record,
    ) -> Result<(Option<NetworkSpec>, Vec<Endpoint>), ApiError> {
        let n = &record.spec.network;
        match n.mode.as_str() {
            "host" => return Ok((Some(NetworkSpec::Host), Vec::new())),
            m if m.starts_with("container:") => {
                let other = self.find(&m["container:".len()..])?;
                if !other.state().running {
                    return Err(ApiError::conflict(format!(
                        "cannot join network of a non running container: {}",
                        other.id
                    )));
                }
                return Ok((
                    Some(NetworkSpec::Container {
                        id: other.id.clone(),
                    }),
                    Vec::new(),
                ));
            }
            _ => {}
        }
        let joined = n.networks();
        if joined.is_empty() {
            return Ok((None, Vec::new()));
        }
        let mut attachments = Vec::new();
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let release = |endpoints: &[Endpoint]| {
            for e in endpoints {
                self.networks.release(&e.network_id, e.address);
            }
        };
        for j in &joined {
            let made = self
                .networks
                .find(&j.network)
                .and_then(|network| self.allocate_on(record, &network, &j.aliases));
            match made {
                Ok((a, e)) => {
                    attachments.push(a);
                    endpoints.push(e);
                }
                Err(e) => {
                    release(&endpoints);
                    return Err(e);
                }
            }
        }
        let mut ports = Vec::new();
        let mut tasks = Vec::new();
        let address = endpoints[0].address;
        for p in &n.ports {
            match super::ports::publish(self.guest.clone(), &record.name, address, p).await {
                Ok((bound, task)) => {
                    ports.push(bound);
                    tasks.push(task);
                }
                Err(e) => {
                    super::ports::unpublish(tasks).await;
                    release(&endpoints);
                    return Err(e);
                }
            }
        }
        endpoints[0].ports = ports;
        *c.ports.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        let spec = NetworkSpec::Bridge {
            networks: attachments,
        };
        Ok((Some(spec), endpoints))
    }

    /// Undoes [`connect_network`](Self::connect_network) once the container has ended; its
    /// host ports are free when this returns.
    pub(super) async fn disconnect_network(&self, c: &Container) {
        let tasks = std::mem::take(&mut *c.ports.lock().unwrap_or_else(|p| p.into_inner()));
        super::ports::unpublish(tasks).await;
        let endpoints = c.record().endpoints;
        if !endpoints.is_empty() {
            for e in &endpoints {
                self.networks.release(&e.network_id, e.address);
            }
            c.update(&self.store, |r| r.endpoints.clear());
        }
    }
}

/// A user network: not `bridge`, `none`, `host` or another container's.
fn user_network(mode: &str) -> bool {
    !matches!(mode, "bridge" | "none" | "host" | "") && !mode.starts_with("container:")
}
