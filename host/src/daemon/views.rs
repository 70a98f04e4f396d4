//! Docker's JSON shapes of what the daemon holds: container inspect and list entries,
//! images, stats and top.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_protocol::{CgroupStats, ProcessInfo};
use serde_json::{json, Value};

use std::collections::BTreeMap;

use super::engine::Container;
use super::error::ApiError;
use super::state::{PortSpec, Record, Status};
use crate::image::time::{human_duration, parse_rfc3339, rfc3339_nanos};
use crate::image::{ImageRecord, Reference};

/// `GET /containers/{id}/json`.
pub fn inspect(c: &Container, log_path: &std::path::Path) -> Value {
    let r = c.record();
    let argv = &r.spec.argv;
    let mut host = r.host_config.clone();
    host.network_mode = Some(r.spec.network.mode.clone());
    host.restart_policy = Some(r.spec.restart.to_request());
    let mut host_config = serde_json::to_value(&host).unwrap_or_else(|_| json!({}));
    if let Some(h) = host_config.as_object_mut() {
        h.insert(
            "LogConfig".into(),
            json!({"Type": "json-file", "Config": {}}),
        );
    }
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": argv.first().cloned().unwrap_or_default(),
        "Args": argv.get(1..).unwrap_or_default(),
        "State": r.state,
        "Image": r.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": log_path.display().to_string(),
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay2", "Data": Value::Null},
        "Mounts": super::mounts::view(&r.spec.mounts),
        "Config": r.config,
        "NetworkSettings": network_settings(&r),
    })
}

/// Docker's `NetworkSettings`: an entry per network the container is on (with its
/// address there while it runs), the published ports keyed `8080/tcp`, and the first
/// network's address at the top level.
pub fn network_settings(r: &Record) -> Value {
    let mut ports = serde_json::Map::new();
    let mut networks = serde_json::Map::new();
    let running = r.state.running;
    let endpoint_of = |name: &str| r.endpoint_on(name).filter(|_| running);
    for (key, binding) in shown_ports(r) {
        let entry = ports.entry(key).or_insert(Value::Null);
        if let Some(p) = binding {
            let binding = json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()});
            match entry {
                Value::Array(list) => list.push(binding),
                other => *other = Value::Array(vec![binding]),
            }
        }
    }
    let short = r.id[..12].to_string();
    for joined in r.spec.network.networks() {
        let e = endpoint_of(&joined.network);
        let mut aliases = joined.aliases.clone();
        aliases.push(short.clone());
        let mut dns_names = vec![r.name.clone(), short.clone()];
        dns_names.extend(joined.aliases.iter().cloned());
        let text = |f: &dyn Fn(&super::state::Endpoint) -> String| e.map(f).unwrap_or_default();
        networks.insert(
            joined.network.clone(),
            json!({
                "IPAMConfig": null, "Links": null, "Aliases": aliases,
                "NetworkID": text(&|e| e.network_id.clone()),
                "EndpointID": text(&|e| format!("{}{}", &r.id[..32], &e.network_id[..32])),
                "Gateway": text(&|e| e.gateway.to_string()),
                "IPAddress": text(&|e| e.address.to_string()),
                "IPPrefixLen": e.map(|e| e.prefix).unwrap_or(0),
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "MacAddress": text(&|e| berth_protocol::mac_text(berth_protocol::mac_for(e.address))),
                "DriverOpts": null,
                "DNSNames": dns_names,
            }),
        );
    }
    let first = r.primary_endpoint().filter(|_| running);
    let ip = first.map(|e| e.address.to_string()).unwrap_or_default();
    let gateway = first.map(|e| e.gateway.to_string()).unwrap_or_default();
    let prefix = first.map(|e| e.prefix).unwrap_or(0);
    let mac = first
        .map(|e| berth_protocol::mac_text(berth_protocol::mac_for(e.address)))
        .unwrap_or_default();
    json!({
        "Bridge": "", "SandboxID": "", "HairpinMode": false,
        "Ports": ports, "SandboxKey": "", "Networks": networks,
        "IPAddress": ip, "Gateway": gateway, "IPPrefixLen": prefix, "MacAddress": mac
    })
}

/// `GET /containers/json`'s `Ports`: one entry per published binding, and one without a
/// host side per exposed port that has none.
fn list_ports(r: &Record) -> Value {
    shown_ports(r)
        .into_iter()
        .map(|(key, binding)| {
            let (port, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
            let port: u16 = port.parse().unwrap_or(0);
            match binding {
                Some(p) => json!({"IP": p.host_ip, "PrivatePort": port,
                                  "PublicPort": p.host_port, "Type": proto}),
                None => json!({"PrivatePort": port, "Type": proto}),
            }
        })
        .collect()
}

/// The ports a running container on a network shows, as Docker's `port/proto` keys:
/// each published binding, and each exposed port (the image's and the request's,
/// `Config.ExposedPorts`) that has no binding, with none. Nothing while it does not run.
fn shown_ports(r: &Record) -> Vec<(String, Option<&PortSpec>)> {
    let Some(e) = r.primary_endpoint().filter(|_| r.state.running) else {
        return Vec::new();
    };
    let key = |p: &PortSpec| format!("{}/{}", p.container_port, p.proto.as_str());
    let mut shown: Vec<(String, Option<&PortSpec>)> =
        e.ports.iter().map(|p| (key(p), Some(p))).collect();
    for exposed in r.config.exposed_ports.iter().flat_map(|m| m.keys()) {
        let exposed = match exposed.contains('/') {
            true => exposed.clone(),
            false => format!("{exposed}/tcp"),
        };
        if !shown.iter().any(|(k, _)| *k == exposed) {
            shown.push((exposed, None));
        }
    }
    shown
}

/// Docker's `Status` column: `Up 5 seconds`, `Exited (0) 3 minutes ago`, `Created`.
pub fn status_text(r: &Record, now: SystemTime) -> String {
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let since = |t: &str| {
        parse_rfc3339(t)
            .map(|t| human_duration(now_s.saturating_sub(t).max(0)))
            .unwrap_or_default()
    };
    match r.state.status {
        Status::Running => format!(
            "Up {}{}",
            since(&r.state.started_at),
            match r.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)",
                Some("healthy") => " (healthy)",
                Some("unhealthy") => " (unhealthy)",
                _ => "",
            }
        ),
        Status::Paused => format!("Up {} (Paused)", since(&r.state.started_at)),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            since(&r.state.finished_at)
        ),
        Status::Created => "Created".into(),
        Status::Restarting => "Restarting".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// One entry of `GET /containers/json`.
pub fn list_entry(c: &Container, now: SystemTime) -> Value {
    let r = c.record();
    let created = parse_rfc3339(&r.created).unwrap_or(0);
    json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": quote_command(&r.spec.argv),
        "Created": created,
        "Ports": list_ports(&r),
        "Labels": r.config.labels.clone().unwrap_or_default(),
        "State": r.state.status.as_str(),
        "Status": status_text(&r, now),
        "HostConfig": {"NetworkMode": r.spec.network.mode},
        "NetworkSettings": {"Networks": network_settings(&r)["Networks"].clone()},
        "Mounts": super::mounts::view(&r.spec.mounts),
    })
}

/// The command as `docker ps` shows it (arguments with spaces quoted).
fn quote_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("\"{a}\"")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `docker ps --filter`: Docker's keys, each value an alternative, every key required.
#[derive(Debug)]
pub struct ContainerFilter {
    keys: BTreeMap<String, Vec<String>>,
    /// `before` / `since`: the places in creation order of the containers they name.
    before: Option<usize>,
    since: Option<usize>,
    order: std::collections::HashMap<String, usize>,
    /// `ancestor`: the image ids they name.
    ancestors: Vec<String>,
}

impl ContainerFilter {
    pub fn parse(
        json: Option<&str>,
        all: &[std::sync::Arc<Container>],
        images: &crate::image::ImageStore,
    ) -> Result<ContainerFilter, ApiError> {
        let keys = super::filters::parse(json)?;
        super::filters::only(
            &keys,
            &[
                "ancestor", "before", "exited", "health", "id", "label", "name", "network",
                "since", "status", "volume", "publish", "expose", "is-task",
            ],
        )?;
        // `all` is in creation order.
        let created_of = |key: &str| -> Result<Option<usize>, ApiError> {
            let Some(name) = keys.get(key).and_then(|v| v.first()) else {
                return Ok(None);
            };
            let bare = name.trim_start_matches('/');
            all.iter()
                .position(|c| c.id.starts_with(bare) || c.name() == bare)
                .map(Some)
                .ok_or_else(|| ApiError::not_found(format!("No such container: {name}")))
        };
        let mut ancestors = Vec::new();
        for name in keys.get("ancestor").into_iter().flatten() {
            match images.find(name) {
                Ok(Some(i)) => ancestors.push(i.id().to_string()),
                _ => ancestors.push(name.clone()),
            }
        }
        for code in keys.get("exited").into_iter().flatten() {
            code.parse::<i32>()
                .map_err(|_| ApiError::bad_request(format!("invalid filter 'exited={code}'")))?;
        }
        for status in keys.get("status").into_iter().flatten() {
            if !matches!(
                status.as_str(),
                "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
            ) {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'status={status}'"
                )));
            }
        }
        Ok(ContainerFilter {
            before: created_of("before")?,
            since: created_of("since")?,
            keys,
            ancestors,
            order: all
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.clone(), i))
                .collect(),
        })
    }

    /// `status`, `exited`, `before` and `since` look at stopped containers too.
    pub fn selects_stopped(&self) -> bool {
        ["status", "exited", "before", "since"]
            .iter()
            .any(|k| self.keys.contains_key(*k))
    }

    pub fn matches(&self, r: &Record) -> bool {
        let labels = r.config.labels.clone().unwrap_or_default();
        let place = self.order.get(&r.id).copied().unwrap_or(usize::MAX);
        if self.before.is_some_and(|b| place >= b) || self.since.is_some_and(|s| place <= s) {
            return false;
        }
        self.keys.iter().all(|(key, wanted)| {
            // Every label must be there (Docker's rule); other keys' values are alternatives.
            if key == "label" {
                return wanted.iter().all(|w| super::filters::label_matches(w, &labels));
            }
            wanted.iter().any(|w| match key.as_str() {
                "name" => {
                    let w = w.trim_start_matches('/');
                    match (w.strip_prefix('^'), w.strip_suffix('$')) {
                        (Some(p), _) if p.ends_with('$') => r.name == p[..p.len() - 1],
                        (Some(p), None) => r.name.starts_with(p),
                        (None, Some(s)) => r.name.ends_with(s),
                        _ => r.name.contains(w),
                    }
                }
                "id" => r.id.starts_with(w.as_str()),
                "status" => w == r.state.status.as_str(),
                "label" => super::filters::label_matches(w, &labels),
                "exited" => {
                    r.state.status == Status::Exited && w.parse() == Ok(r.state.exit_code)
                }
                "health" => {
                    let status = r.state.health.as_ref().map(|h| h.status.as_str());
                    status.unwrap_or("none") == w
                }
                "ancestor" => {
                    r.image == *w
                        || self.ancestors.contains(&r.image_id)
                        || r.image_id.trim_start_matches("sha256:").starts_with(w.as_str())
                }
                "network" => {
                    r.spec.network.is_on(w)
                        || r.endpoints.iter().any(|e| e.network_id.starts_with(w.as_str()))
                }
                "volume" => r.spec.mounts.iter().any(|m| {
                    m.target == *w
                        || matches!(&m.source, berth_protocol::MountSource::Volume { name } if name == w)
                }),
                "publish" | "expose" => r.spec.network.ports.iter().any(|p| {
                    let (port, proto) = w.split_once('/').unwrap_or((w, "tcp"));
                    let number = if key == "publish" { p.host_port } else { p.container_port };
                    port.parse() == Ok(number) && proto == p.proto.as_str()
                }),
                "is-task" => w == "false",
                // Checked above, against the creation order.
                "before" | "since" => true,
                _ => false,
            })
        })
    }
}

/// One entry of `GET /images/json`.
pub fn image_entry(i: &ImageRecord, containers: i64) -> Value {
    let created = i.created.as_deref().and_then(parse_rfc3339).unwrap_or(0);
    let tags: Vec<String> = i.tags.iter().map(Reference::familiar).collect();
    json!({
        "Id": i.id().to_string(),
        "ParentId": "",
        "RepoTags": tags,
        "RepoDigests": i.repo_digests,
        "Created": created,
        "Size": i.size,
        "SharedSize": -1,
        "VirtualSize": i.size,
        "Labels": {},
        "Containers": containers,
    })
}

/// `GET /images/{name}/json`.
pub fn image_inspect(i: &ImageRecord, config: &Value) -> Value {
    let tags: Vec<String> = i.tags.iter().map(Reference::familiar).collect();
    json!({
        "Id": i.id().to_string(),
        "RepoTags": tags,
        "RepoDigests": i.repo_digests,
        "Parent": "",
        "Comment": "",
        "Created": i.created.clone().unwrap_or_default(),
        "Config": config["config"],
        // API 1.43 still has it (compose 1.x reads its `Volumes`): the config the image
        // was made with, which is what berth knows of it.
        "ContainerConfig": config["container_config"].as_object().map_or_else(|| config["config"].clone(), |_| config["container_config"].clone()),
        "Architecture": config["architecture"],
        "Os": config["os"],
        "Size": i.size,
        "VirtualSize": i.size,
        "GraphDriver": {"Name": "overlay2", "Data": Value::Null},
        "RootFS": {"Type": "layers", "Layers": i.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
}

/// Docker's stats object from two samples (the earlier may be absent).
pub fn stats(
    c: &Container,
    now: &CgroupStats,
    pre: Option<(&CgroupStats, SystemTime)>,
    read: SystemTime,
) -> Value {
    let cpu = |s: &CgroupStats| {
        json!({
            "cpu_usage": {
                "total_usage": s.cpu_total_ns,
                "usage_in_kernelmode": s.cpu_system_ns,
                "usage_in_usermode": s.cpu_user_ns,
            },
            "system_cpu_usage": s.system_cpu_ns,
            "online_cpus": s.online_cpus,
            "throttling_data": {
                "periods": s.cpu_periods,
                "throttled_periods": s.cpu_throttled_periods,
                "throttled_time": s.cpu_throttled_ns,
            },
        })
    };
    // cgroup v2 as Docker reports it: bytes and operations per device, read and write.
    let io = |pick: fn(&berth_protocol::IoStat) -> (u64, u64)| -> Value {
        now.io
            .iter()
            .flat_map(|d| {
                let (r, w) = pick(d);
                [("read", r), ("write", w)].map(|(op, value)| {
                    json!({"major": d.major, "minor": d.minor, "op": op, "value": value})
                })
            })
            .collect()
    };
    let networks: serde_json::Map<String, Value> = now
        .networks
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                json!({
                    "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
                    "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped,
                    "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
                    "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped,
                }),
            )
        })
        .collect();
    let (precpu, preread) = match pre {
        Some((p, t)) => (cpu(p), rfc3339_nanos(t)),
        None => (
            json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}}),
            "0001-01-01T00:00:00Z".into(),
        ),
    };
    json!({
        "read": rfc3339_nanos(read),
        "preread": preread,
        "id": c.id,
        "name": format!("/{}", c.name()),
        "pids_stats": {"current": now.pids_current, "limit": now.pids_limit},
        "blkio_stats": {
            "io_service_bytes_recursive": io(|d| (d.read_bytes, d.write_bytes)),
            "io_serviced_recursive": io(|d| (d.reads, d.writes)),
        },
        // Docker's is 0 on Linux too (a Windows figure); the process count is pids_stats.
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(now),
        "precpu_stats": precpu,
        "memory_stats": {
            "usage": now.memory_usage,
            "limit": now.memory_limit,
            "stats": {"inactive_file": now.memory_inactive_file},
        },
        "networks": networks,
    })
}

/// `GET /containers/{id}/top` in `ps -ef` columns. `booted` is when the guest booted
/// (for STIME).
pub fn top(processes: &[ProcessInfo], booted: SystemTime) -> Value {
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            let start = booted + std::time::Duration::from_secs(p.start_secs);
            let stime = rfc3339_nanos(start);
            let hhmm = stime.get(11..16).unwrap_or("?").to_string();
            let t = p.cpu_secs;
            vec![
                if p.uid == 0 {
                    "root".into()
                } else {
                    p.uid.to_string()
                },
                p.pid.to_string(),
                p.ppid.to_string(),
                "0".into(),
                hhmm,
                "?".into(),
                format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60),
                p.cmd.clone(),
            ]
        })
        .collect();
    json!({
        "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "Processes": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_like_docker() {
        assert_eq!(
            quote_command(&["sh".into(), "-c".into(), "sleep 1".into()]),
            "sh -c \"sleep 1\""
        );
    }

    #[test]
    fn top_has_ps_columns() {
        let p = ProcessInfo {
            pid: 7,
            ppid: 1,
            uid: 0,
            start_secs: 3,
            cpu_secs: 3661,
            cmd: "sleep 1000".into(),
        };
        let v = top(&[p], UNIX_EPOCH);
        assert_eq!(v["Titles"][1], "PID");
        assert_eq!(v["Processes"][0][1], "7");
        assert_eq!(v["Processes"][0][6], "01:01:01");
        assert_eq!(v["Processes"][0][7], "sleep 1000");
    }
}
