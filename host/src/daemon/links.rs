//! Legacy links (`--link NAME[:ALIAS]`, `HostConfig.Links`, an endpoint's `Links`): the
//! linked container's address under the alias, its name and short id in /etc/hosts, and
//! on the default bridge Docker's environment variables (`ALIAS_PORT_80_TCP_ADDR`, ...,
//! `ALIAS_ENV_X`). The linked container must run, on the same network, when this one
//! starts.

use super::engine::Engine;
use super::error::ApiError;
use super::models::CreateBody;
use super::state::Record;

/// `NAME[:ALIAS]` entries of a create body, from `HostConfig.Links` and every endpoint.
pub fn requested(body: &CreateBody) -> Result<Vec<(String, String)>, ApiError> {
    let host = body.host();
    let endpoint_links = body
        .endpoints()
        .values()
        .flat_map(|e| e.links.clone().unwrap_or_default())
        .collect::<Vec<_>>();
    let mut out = Vec::new();
    for entry in host.links.iter().flatten().chain(&endpoint_links) {
        let (name, alias) = match entry.split_once(':') {
            Some((n, a)) => (n, a),
            None => (entry.as_str(), entry.as_str()),
        };
        // Docker's inspect form is `/name:/parent/alias`.
        let name = name.trim_start_matches('/');
        let alias = alias.rsplit('/').next().unwrap_or(alias);
        if name.is_empty() || alias.is_empty() {
            return Err(ApiError::bad_request(format!(
                "invalid link {entry:?}: expected NAME[:ALIAS]"
            )));
        }
        let link = (name.to_string(), alias.to_string());
        if !out.contains(&link) {
            out.push(link);
        }
    }
    Ok(out)
}

/// What a started container gets from its links.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// (names, address) for /etc/hosts.
    pub hosts: Vec<(String, String)>,
    /// `KEY=VALUE` entries (default bridge only).
    pub env: Vec<String>,
}

impl Engine {
    /// Link names become container ids (the containers must exist).
    pub(super) fn resolve_links(&self, links: &mut [(String, String)]) -> Result<(), ApiError> {
        for (target, _) in links.iter_mut() {
            let c = self.find(target).map_err(|_| {
                ApiError::not_found(format!("could not get container for {target}"))
            })?;
            *target = c.id.clone();
        }
        Ok(())
    }

    /// At a start on `network`: each linked container's address there.
    pub(super) fn links_at_start(
        &self,
        record: &Record,
        network: &str,
    ) -> Result<Resolved, ApiError> {
        let mut out = Resolved::default();
        for (target, alias) in &record.spec.network.links {
            let other = self.find(target)?;
            let theirs = other.record();
            let endpoint = theirs
                .endpoint_on(network)
                .or(theirs.primary_endpoint())
                .filter(|_| theirs.state.running)
                .ok_or_else(|| {
                    ApiError::conflict(format!(
                        "Cannot link to a non running container: /{} AS /{}/{alias}",
                        theirs.name, record.name
                    ))
                })?;
            if endpoint.network_name != network {
                return Err(ApiError::conflict(format!(
                    "Cannot link to /{}, as it is not on network {network}",
                    theirs.name
                )));
            }
            let address = endpoint.address.to_string();
            let mut names = vec![alias.clone()];
            for n in [theirs.id[..12].to_string(), theirs.name.clone()] {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            out.hosts.push((names.join(" "), address.clone()));
            if network == "bridge" {
                out.env
                    .extend(link_env(&theirs, alias, &record.name, &address));
            }
        }
        Ok(out)
    }
}

/// Docker's variables for one link on the default bridge.
pub fn link_env(target: &Record, alias: &str, parent: &str, address: &str) -> Vec<String> {
    let prefix = alias.to_ascii_uppercase().replace('-', "_");
    let mut env = vec![format!("{prefix}_NAME=/{parent}/{alias}")];
    let mut ports: Vec<(u16, String)> = target
        .config
        .exposed_ports
        .iter()
        .flatten()
        .filter_map(|(key, _)| {
            let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            Some((port.parse().ok()?, proto.to_string()))
        })
        .collect();
    ports.sort();
    if let Some((port, proto)) = ports.first() {
        env.push(format!("{prefix}_PORT={proto}://{address}:{port}"));
    }
    for (port, proto) in &ports {
        let key = format!("{prefix}_PORT_{port}_{}", proto.to_ascii_uppercase());
        env.push(format!("{key}={proto}://{address}:{port}"));
        env.push(format!("{key}_ADDR={address}"));
        env.push(format!("{key}_PORT={port}"));
        env.push(format!("{key}_PROTO={proto}"));
    }
    for kv in &target.spec.env {
        if let Some((k, v)) = kv.split_once('=') {
            if !matches!(k, "HOME" | "PATH" | "HOSTNAME") {
                env.push(format!("{prefix}_ENV_{k}={v}"));
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::models::parse;

    #[test]
    fn links_are_read_from_the_host_config_and_endpoints() {
        let body: CreateBody = parse(
            br#"{"HostConfig": {"Links": ["db:database", "/cache:/app/c", "web"]},
                 "NetworkingConfig": {"EndpointsConfig": {"n": {"Links": ["db:database", "q:queue"]}}}}"#,
        )
        .unwrap();
        assert_eq!(
            requested(&body).unwrap(),
            [
                ("db".into(), "database".into()),
                ("cache".into(), "c".into()),
                ("web".into(), "web".into()),
                ("q".into(), "queue".into()),
            ]
        );
        let bad: CreateBody = parse(br#"{"HostConfig": {"Links": [":x"]}}"#).unwrap();
        assert!(requested(&bad).is_err());
    }
}
