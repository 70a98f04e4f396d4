//! `POST /containers/{id}/rename` and `POST /networks/{id}/connect|disconnect`: changes
//! to a container's name and network that its record takes, with their events.
//!
//! berth gives a container one network. Connecting and disconnecting work on containers
//! that are not running (what docker-compose does between create and start); a running
//! container, or a second network, is refused with the reason.

use std::sync::Arc;

use serde::Deserialize;

use super::create;
use super::engine::{name_in_use, Container, Engine};
use super::error::ApiError;
use super::models::EndpointSettings;

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

    /// `POST /networks/{id}/connect`.
    pub fn connect(&self, network: &str, body: &ConnectBody) -> Result<(), ApiError> {
        let n = self.networks.find(network)?;
        let c = self.find(&body.container)?;
        let endpoint = body.endpoint_config.clone().unwrap_or_default();
        super::fields::check_other("EndpointConfig.", &endpoint.other)?;
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
        if r.state.running || r.state.restarting {
            return Err(ApiError::bad_request(format!(
                "berth connects only containers that are not running: stop {} first (a running container keeps the one network it started on)",
                r.name
            )));
        }
        if mode != DISCONNECTED && mode != n.name {
            return Err(ApiError::bad_request(format!(
                "berth puts a container on one network: {} is on {mode}; disconnect it first",
                r.name
            )));
        }
        let aliases = endpoint.aliases.unwrap_or_default();
        if !aliases.is_empty() && !n.has_dns() {
            return Err(ApiError::bad_request(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        c.update_spec(&self.store, |s| {
            s.network.mode = n.name.clone();
            for a in aliases {
                if !s.network.aliases.contains(&a) {
                    s.network.aliases.push(a);
                }
            }
        });
        self.events.network(&n.id, &n.name, "connect", Some(&c.id));
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub fn disconnect(&self, network: &str, body: &DisconnectBody) -> Result<(), ApiError> {
        let n = self.networks.find(network)?;
        let c = self.find(&body.container)?;
        let r = c.record();
        if r.spec.network.mode != n.name {
            return Err(ApiError::forbidden(format!(
                "container {} is not connected to network {}",
                r.id, n.name
            )));
        }
        if r.state.running || r.state.restarting {
            return Err(ApiError::bad_request(format!(
                "berth disconnects only containers that are not running{}: stop {} first",
                if body.force { ", even with force" } else { "" },
                r.name
            )));
        }
        c.update_spec(&self.store, |s| {
            s.network.mode = DISCONNECTED.into();
            s.network.aliases.clear();
        });
        self.events
            .network(&n.id, &n.name, "disconnect", Some(&c.id));
        Ok(())
    }
}
