//! `POST /containers/{id}/rename` and `POST /networks/{id}/connect|disconnect`: changes
//! to a container's name and network that its record takes, with their events.
//!
//! A container can be on several bridge networks: connecting one that is not running
//! (what docker-compose does between create and start) takes effect at its start; a
//! running one gets (or loses) an interface at once, and its names on each network.

use std::sync::Arc;

use serde::Deserialize;

use super::create;
use super::create::name_in_use;
use super::engine::{Container, Engine};
use super::error::ApiError;
use super::models::EndpointSettings;
use super::state::{Joined, NetSettings};

/// The mode of a container disconnected from its last network: only `lo`, as `none`.
pub const DISCONNECTED: &str = "";

/// `POST /networks/{id}/connect`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectBody {
    pub container: String,
    pub endpoint_config: Option<EndpointSettings>,
}

/// `POST /networks/{id}/disconnect`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DisconnectBody {
    pub container: String,
    #[serde(default)]
    pub force: bool,
}

impl Engine {
    /// `POST /containers/{id}/rename?name=`.
    pub fn rename(&self, c: &Arc<Container>, new: &str) -> Result<(), ApiError> {
        let new = new.strip_prefix('/').unwrap_or(new);
        if new.is_empty() {
            return Err(ApiError::bad_request(
                "Neither old nor new names may be empty",
            ));
        }
        if !create::valid_name(new) {
            return Err(ApiError::bad_request(format!(
                "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let old = c.name();
        if old == new {
            return Err(ApiError::conflict(
                "Renaming a container with the same name as its current name",
            ));
        }
        // Under the container list's lock, so two renames cannot take one name.
        self.with_containers(|all| {
            if let Some(other) = all.iter().find(|o| o.name() == new) {
                return Err(name_in_use(new, &other.id));
            }
            c.set_name(&self.store, new);
            Ok(())
        })?;
        self.events
            .container_with(c, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// `POST /networks/{id}/connect`: a container that is not running joins it at its
    /// next start; a running one gets its interface now.
    pub async fn connect(&self, network: &str, body: &ConnectBody) -> Result<(), ApiError> {
        let n = self.networks.find(network)?;
        let c = self.find(&body.container)?;
        let endpoint = body.endpoint_config.clone().unwrap_or_default();
        super::fields::check_other("EndpointConfig.", &endpoint.other)?;
        let _op = c.ops.lock().await;
        let r = c.record();
        let mode = r.spec.network.mode.as_str();
        if n.driver != "bridge" || mode == "host" || mode.starts_with("container:") {
            return Err(ApiError::forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network",
            ));
        }
        if mode == "none" {
            return Err(ApiError::forbidden(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode",
            ));
        }
        let aliases = endpoint.aliases.unwrap_or_default();
        if !aliases.is_empty() && !n.has_dns() {
            return Err(ApiError::bad_request(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        let running = r.state.running || r.state.restarting;
        if running && r.endpoint_on(&n.id).is_some() {
            return Err(ApiError::forbidden(format!(
                "endpoint with name {} already exists in network {}",
                r.name, n.name
            )));
        }
        if running && !r.state.restarting {
            let (attachment, endpoint) = self.allocate_on(&r, &n, &aliases)?;
            let op = berth_protocol::ContainerOp::Connect(attachment);
            let done = match self.guest.container_op(&c.id, op).await {
                Ok(berth_protocol::ContainerResult::Done) => Ok(()),
                Ok(berth_protocol::ContainerResult::Failed { message }) => Err(ApiError::internal(
                    format!("connecting to {}: {message}", n.name),
                )),
                Ok(other) => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = done {
                self.networks.release(&n.id, endpoint.address);
                return Err(e);
            }
            c.update(&self.store, |r| r.endpoints.push(endpoint));
        } else if running {
            return Err(ApiError::conflict(format!(
                "container {} is restarting: connect it once it runs",
                r.name
            )));
        }
        c.update_spec(&self.store, |s| join(&mut s.network, &n.name, aliases));
        self.events.network(&n.id, &n.name, "connect", Some(&c.id));
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`: a running container loses its interface now.
    pub async fn disconnect(&self, network: &str, body: &DisconnectBody) -> Result<(), ApiError> {
        let n = self.networks.find(network)?;
        let c = self.find(&body.container)?;
        let _op = c.ops.lock().await;
        let r = c.record();
        if !r.spec.network.is_on(&n.name) {
            return Err(ApiError::forbidden(format!(
                "container {} is not connected to network {}",
                r.id, n.name
            )));
        }
        if r.state.restarting {
            return Err(ApiError::conflict(format!(
                "container {} is restarting: disconnect it once it runs",
                r.name
            )));
        }
        if let Some(e) = r.endpoint_on(&n.id).filter(|_| r.state.running) {
            if !e.ports.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "berth publishes {}'s ports on {}: stop it before disconnecting it from that network",
                    r.name, n.name
                )));
            }
            let op = berth_protocol::ContainerOp::Disconnect {
                network_id: n.id.clone(),
            };
            match self.guest.container_op(&c.id, op).await? {
                berth_protocol::ContainerResult::Done => {}
                berth_protocol::ContainerResult::Failed { message } if !body.force => {
                    return Err(ApiError::internal(format!(
                        "disconnecting from {}: {message}",
                        n.name
                    )))
                }
                other => tracing::warn!("disconnecting {} from {}: {other:?}", r.name, n.name),
            }
            let address = e.address;
            self.networks.release(&n.id, address);
            c.update(&self.store, |r| {
                r.endpoints.retain(|x| x.network_id != n.id)
            });
        }
        c.update_spec(&self.store, |s| leave(&mut s.network, &n.name));
        self.events
            .network(&n.id, &n.name, "disconnect", Some(&c.id));
        Ok(())
    }
}

/// Adds network `name` (with `aliases`) to a container's networks: the first one it is on
/// becomes its mode; joining one it is on adds the aliases.
fn join(n: &mut NetSettings, name: &str, aliases: Vec<String>) {
    let merge = |have: &mut Vec<String>, more: Vec<String>| {
        for a in more {
            if !have.contains(&a) {
                have.push(a);
            }
        }
    };
    if n.mode_is_network() && n.mode == name {
        merge(&mut n.aliases, aliases);
    } else if let Some(j) = n.also.iter_mut().find(|j| j.network == name) {
        merge(&mut j.aliases, aliases);
    } else if !n.mode_is_network() {
        n.mode = name.to_string();
        n.aliases = aliases;
    } else {
        n.also.push(Joined {
            network: name.to_string(),
            aliases,
        });
    }
}

/// Takes network `name` off a container's networks: leaving its mode makes the next one
/// the mode, or leaves it on no network.
fn leave(n: &mut NetSettings, name: &str) {
    if n.mode_is_network() && n.mode == name {
        match n.also.is_empty() {
            true => {
                n.mode = DISCONNECTED.into();
                n.aliases.clear();
            }
            false => {
                let next = n.also.remove(0);
                n.mode = next.network;
                n.aliases = next.aliases;
            }
        }
    } else {
        n.also.retain(|j| j.network != name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_join_after_the_first_and_leaving_it_promotes_the_next() {
        let mut n = NetSettings {
            mode: DISCONNECTED.into(),
            ..Default::default()
        };
        join(&mut n, "front", vec!["web".into()]);
        assert_eq!(
            (n.mode.as_str(), n.aliases.clone()),
            ("front", vec!["web".to_string()])
        );
        join(&mut n, "back", vec![]);
        join(&mut n, "back", vec!["api".into()]);
        assert_eq!(
            n.also,
            vec![Joined {
                network: "back".into(),
                aliases: vec!["api".into()]
            }]
        );
        assert!(n.is_on("front") && n.is_on("back") && !n.is_on("other"));
        leave(&mut n, "front");
        assert_eq!((n.mode.as_str(), n.also.len()), ("back", 0));
        assert_eq!(n.aliases, vec!["api".to_string()]);
        leave(&mut n, "back");
        assert_eq!(n.mode, DISCONNECTED);
        assert!(n.networks().is_empty());
    }
}
