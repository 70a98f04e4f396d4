//! The `/networks` routes: list, inspect, create and remove, with their events.

use serde_json::{json, Value};

use super::engine::Engine;
use super::error::ApiError;

/// (id, name, address) of the running containers on network `id`.
pub fn network_members(engine: &Engine, id: &str) -> Vec<(String, String, std::net::Ipv4Addr)> {
    engine
        .all()
        .iter()
        .map(|c| c.record())
        .filter(|r| r.state.running)
        .filter_map(|r| {
            let e = r.endpoint.as_ref()?;
            (e.network_id == id).then(|| (r.id.clone(), r.name.clone(), e.address))
        })
        .collect()
}

pub fn networks_list(engine: &Engine) -> Value {
    engine
        .networks
        .all()
        .iter()
        .map(|n| super::networks::view(n, &network_members(engine, &n.id)))
        .collect()
}

/// `POST /networks/create`: Docker's body (`Name`, `Driver`, `IPAM.Config[0]`,
/// `Internal`, `Labels`).
pub fn network_create(engine: &Engine, body: &Value) -> Result<Value, ApiError> {
    let name = body["Name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("a network needs a name"))?;
    let driver = body["Driver"]
        .as_str()
        .filter(|d| !d.is_empty())
        .unwrap_or("bridge");
    let ipam = &body["IPAM"]["Config"][0];
    let subnet = match ipam["Subnet"].as_str().filter(|s| !s.is_empty()) {
        Some(s) => Some(super::networks::parse_cidr(s)?),
        None => None,
    };
    let gateway = match ipam["Gateway"].as_str().filter(|s| !s.is_empty()) {
        Some(g) => Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gateway {g:?}")))?,
        ),
        None => None,
    };
    if gateway.is_some() && subnet.is_none() {
        return Err(ApiError::bad_request("a gateway needs a subnet"));
    }
    let labels = body["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let internal = body["Internal"].as_bool().unwrap_or(false);
    let n = engine
        .networks
        .create(name, driver, subnet, gateway, labels, internal)?;
    engine.events.network(&n.id, &n.name, "create", None);
    Ok(json!({"Id": n.id, "Warning": ""}))
}

/// `DELETE /networks/{id}`: refused for the predefined networks and while any container
/// (running or not) is configured to use it.
pub fn network_remove(engine: &Engine, name: &str) -> Result<(), ApiError> {
    let n = engine.networks.find(name)?;
    if n.is_predefined() {
        return Err(ApiError::forbidden(format!(
            "{} is a pre-defined network and cannot be removed",
            n.name
        )));
    }
    let users: Vec<String> = engine
        .all()
        .iter()
        .map(|c| c.record())
        .filter(|r| r.spec.network.mode == n.name)
        .map(|r| r.name)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::forbidden(format!(
            "error while removing network: network {} id {} has active endpoints ({})",
            n.name,
            n.id,
            users.join(", ")
        )));
    }
    engine.networks.remove(&n.id)?;
    engine.events.network(&n.id, &n.name, "destroy", None);
    Ok(())
}
