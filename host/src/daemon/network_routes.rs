//! The `/networks` routes: list, inspect, create and remove, with their events.

use serde_json::{json, Value};

use super::fields::check_other;
use super::models::network::NetworkCreateBody;

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
            let e = r.endpoint_on(id)?;
            Some((r.id.clone(), r.name.clone(), e.address))
        })
        .collect()
}

/// `GET /networks`, with Docker's filters: `name` and `id` (substrings), `driver`,
/// `label`, `scope` (`local` holds them all), `type` (`builtin` or `custom`) and
/// `dangling` (no container attached, predefined networks left out).
pub fn networks_list(engine: &Engine, filters: Option<&str>) -> Result<Value, ApiError> {
    let filters = super::filters::parse(filters)?;
    super::filters::only(
        &filters,
        &["name", "id", "driver", "label", "scope", "type", "dangling"],
    )?;
    let any = |key: &str, test: &dyn Fn(&str) -> bool| {
        filters
            .get(key)
            .is_none_or(|vals| vals.iter().any(|v| test(v)))
    };
    for (key, allowed) in [
        ("type", &["builtin", "custom"][..]),
        ("dangling", &["true", "false", "1", "0"]),
    ] {
        if let Some(bad) = filters
            .get(key)
            .into_iter()
            .flatten()
            .find(|v| !allowed.contains(&v.as_str()))
        {
            return Err(ApiError::bad_request(format!(
                "invalid filter '{key}={bad}'"
            )));
        }
    }
    let labels = |n: &super::networks::Network| -> std::collections::BTreeMap<String, String> {
        n.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    Ok(engine
        .networks
        .all()
        .iter()
        .filter(|n| any("name", &|v| n.name.contains(v)))
        .filter(|n| any("id", &|v| n.id.contains(v)))
        .filter(|n| any("driver", &|v| n.driver == v))
        .filter(|_| any("scope", &|v| v == "local"))
        .filter(|n| {
            filters.get("label").is_none_or(|want| {
                let have = labels(n);
                want.iter().all(|w| super::filters::label_matches(w, &have))
            })
        })
        .filter(|n| any("type", &|v| (v == "builtin") == n.is_predefined()))
        .map(|n| (n, network_members(engine, &n.id)))
        .filter(|(n, members)| {
            any("dangling", &|v| {
                let dangling = !n.is_predefined() && members.is_empty();
                matches!(v, "true" | "1") == dangling
            })
        })
        .map(|(n, members)| super::networks::view(n, &members))
        .collect())
}

/// `POST /networks/create`: `Name`, `Driver`, one `IPAM.Config` pool, `Internal`,
/// `Labels`; anything else a client asks for is refused by name.
pub fn network_create(engine: &Engine, body: &NetworkCreateBody) -> Result<Value, ApiError> {
    check_other("", &body.other)?;
    let unsupported = |what: &str| {
        Err(ApiError::bad_request(format!(
            "{what} is not supported by berth: it is refused rather than ignored"
        )))
    };
    if body.options.as_ref().is_some_and(|o| !o.is_empty()) {
        let keys: Vec<&str> = body
            .options
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        return unsupported(&format!("Options ({})", keys.join(", ")));
    }
    if !matches!(body.scope.as_deref().unwrap_or(""), "" | "local") {
        return unsupported(&format!("Scope {:?}", body.scope.as_deref().unwrap_or("")));
    }
    let name = body
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("a network needs a name"))?;
    let driver = body
        .driver
        .as_deref()
        .filter(|d| !d.is_empty())
        .unwrap_or("bridge");
    let ipam = body.ipam.clone().unwrap_or_default();
    check_other("IPAM.", &ipam.other)?;
    if !matches!(ipam.driver.as_deref().unwrap_or(""), "" | "default") {
        return unsupported(&format!(
            "IPAM.Driver {:?}",
            ipam.driver.as_deref().unwrap_or("")
        ));
    }
    if ipam.options.as_ref().is_some_and(|o| !o.is_empty()) {
        return unsupported("IPAM.Options");
    }
    let pools = ipam.config.unwrap_or_default();
    if pools.len() > 1 {
        return unsupported("more than one IPAM.Config pool");
    }
    let pool = pools.into_iter().next().unwrap_or_default();
    check_other("IPAM.Config.0.", &pool.other)?;
    let subnet = match pool.subnet.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(super::networks::parse_cidr(s)?),
        None => None,
    };
    let gateway = match pool.gateway.as_deref().filter(|s| !s.is_empty()) {
        Some(g) => Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gateway {g:?}")))?,
        ),
        None => None,
    };
    if gateway.is_some() && subnet.is_none() {
        return Err(ApiError::bad_request("a gateway needs a subnet"));
    }
    let labels = body
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let flags = super::networks::Flags {
        internal: body.internal.unwrap_or(false),
        attachable: body.attachable.unwrap_or(false),
    };
    let n = engine
        .networks
        .create(name, driver, subnet, gateway, labels, flags)?;
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
        .filter(|r| r.spec.network.is_on(&n.name))
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
