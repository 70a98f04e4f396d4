//! A container's network as it starts and ends: its mode checked at create, then at each
//! start an address on its network, its published ports bound on the host and the
//! guest-side spec; all of it released when it ends.

use berth_protocol::{Attachment, NetworkSpec};

use super::engine::{Container, Engine};
use super::error::ApiError;
use super::state::{Endpoint, Record};

impl Engine {
    /// Checks a create request's network: a user network must exist, `container:NAME`
    /// becomes `container:<id>`; aliases need a user network; a shared stack cannot
    /// publish ports.
    pub(super) fn resolve_network_mode(
        &self,
        n: &super::state::NetSettings,
    ) -> Result<String, ApiError> {
        let mode = match n.mode.as_str() {
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
        let user_network =
            !matches!(mode.as_str(), "bridge" | "none" | "host") && !mode.starts_with("container:");
        if !n.links.is_empty()
            && (matches!(mode.as_str(), "none" | "host") || mode.starts_with("container:"))
        {
            return Err(ApiError::bad_request(format!(
                "conflicting options: {mode} type networking can't be used with links"
            )));
        }
        if !n.aliases.is_empty() && !user_network {
            return Err(ApiError::bad_request(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        Ok(mode)
    }

    /// Prepares the network of a container about to start: its guest-side spec, its
    /// endpoint (address held, ports bound on the host) and the port tasks.
    pub(super) async fn connect_network(
        &self,
        c: &Container,
        record: &Record,
    ) -> Result<(Option<NetworkSpec>, Option<Endpoint>), ApiError> {
        let n = &record.spec.network;
        let network = match n.mode.as_str() {
            "none" | super::attach_net::DISCONNECTED => return Ok((None, None)),
            "host" => return Ok((Some(NetworkSpec::Host), None)),
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
                    None,
                ));
            }
            name => self.networks.find(name)?,
        };
        let Some((subnet, prefix, gateway)) = network.subnet else {
            return Err(ApiError::internal(format!(
                "network {} has no subnet",
                network.name
            )));
        };
        let address = self.networks.allocate(&network)?;
        let mut ports = Vec::new();
        let mut tasks = Vec::new();
        for p in &n.ports {
            match super::ports::publish(self.guest.clone(), &record.name, address, p).await {
                Ok((bound, task)) => {
                    ports.push(bound);
                    tasks.push(task);
                }
                Err(e) => {
                    for t in tasks {
                        t.abort();
                    }
                    self.networks.release(&network.id, address);
                    return Err(e);
                }
            }
        }
        *c.ports.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        let mut dns_names = Vec::new();
        if network.has_dns() {
            dns_names.push(record.name.clone());
            dns_names.push(record.id[..12].to_string());
            dns_names.extend(n.aliases.iter().cloned());
        }
        let extra_hosts = n
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
        let spec = NetworkSpec::Bridge(Attachment {
            network_id: network.id.clone(),
            network_name: network.name.clone(),
            bridge: network.bridge_name(),
            subnet: subnet.to_string(),
            prefix,
            gateway: gateway.to_string(),
            address: address.to_string(),
            dns_names,
            extra_hosts,
            internal: network.internal,
        });
        let endpoint = Endpoint {
            network_id: network.id,
            network_name: network.name,
            address,
            prefix,
            gateway,
            ports,
        };
        Ok((Some(spec), Some(endpoint)))
    }

    /// Undoes [`connect_network`](Self::connect_network) once the container has ended.
    pub(super) fn disconnect_network(&self, c: &Container) {
        for task in c.ports.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
        if let Some(e) = c.record().endpoint {
            self.networks.release(&e.network_id, e.address);
            c.update(&self.store, |r| r.endpoint = None);
        }
    }
}
