//! `POST /containers/create`: Docker's `Config` + `HostConfig` body, merged with the
//! image's config, into what the guest will run ([`RunSpec`]).

use std::collections::BTreeMap;

use berth_protocol::{PortProto, Resources, Security, TtySize};

use super::error::ApiError;
use super::models::create::{ContainerConfig, CreateBody, DeviceRate, HostConfig, StrOrList};
use super::state::{NetSettings, PortSpec, RunSpec};

/// Where published ports listen when the request names no address: the host's loopback
/// only (Docker's default is every address; a developer machine should not expose them).
pub const DEFAULT_HOST_IP: &str = "127.0.0.1";

/// Docker's rule: an `Entrypoint` in the request replaces the image's and drops its
/// `Cmd`; a `Cmd` in the request replaces the image's. `[""]` is an explicitly empty
/// entrypoint.
pub fn command(
    request: &ContainerConfig,
    image: &ContainerConfig,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let list = |v: &Option<StrOrList>| v.as_ref().map(StrOrList::to_vec);
    let (entrypoint, cmd) = match list(&request.entrypoint) {
        Some(e) => {
            let e: Vec<String> = e.into_iter().filter(|s| !s.is_empty()).collect();
            (e, list(&request.cmd).unwrap_or_default())
        }
        None => (
            list(&image.entrypoint).unwrap_or_default(),
            list(&request.cmd)
                .or_else(|| list(&image.cmd))
                .unwrap_or_default(),
        ),
    };
    if entrypoint.is_empty() && cmd.is_empty() {
        return Err(ApiError::bad_request("no command specified"));
    }
    Ok((entrypoint, cmd))
}

/// The image's `Env` with the request's on top (a key in both takes the request's value).
pub fn environment(image: &[String], request: &[String]) -> Vec<String> {
    let key = |e: &str| e.split('=').next().unwrap_or_default().to_string();
    let mut env: Vec<String> = image.to_vec();
    for entry in request {
        let k = key(entry);
        env.retain(|e| key(e) != k);
        env.push(entry.clone());
    }
    env
}

/// The run spec of a create request: `image` is the image config's `config` object,
/// `id` the new container id.
pub fn run_spec(body: &CreateBody, image: &ContainerConfig, id: &str) -> Result<RunSpec, ApiError> {
    let c = &body.config;
    let (entrypoint, cmd) = command(c, image)?;
    let host = body.host();
    let console = match host.console_size.as_deref() {
        Some([h, w]) if *h > 0 && *w > 0 => Some(TtySize {
            rows: (*h).min(u16::MAX as u64) as u16,
            cols: (*w).min(u16::MAX as u64) as u16,
        }),
        _ => None,
    };
    Ok(RunSpec {
        argv: entrypoint.into_iter().chain(cmd).collect(),
        env: environment(
            image.env.as_deref().unwrap_or_default(),
            c.env.as_deref().unwrap_or_default(),
        ),
        cwd: string(&c.working_dir).or_else(|| string(&image.working_dir)),
        user: string(&c.user).or_else(|| string(&image.user)),
        hostname: string(&c.hostname).unwrap_or_else(|| id[..12].to_string()),
        tty: c.tty.unwrap_or(false),
        open_stdin: c.open_stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        console,
        auto_remove: host.auto_remove.unwrap_or(false),
        resources: resources(&host)?,
        security: security(&host)?,
        network: net_settings(body, image)?,
        mounts: Vec::new(), // filled by `Engine::prepare_mounts`
        tmpfs: tmpfs(&host)?,
        read_only_rootfs: host.readonly_rootfs.unwrap_or(false),
        process: process_options(&host)?,
        namespaces: super::namespaces::requested(&host, string(&c.hostname).is_some())?,
        // Filled by `Engine::create`, which also sees the image's config.
        restart: Default::default(),
        stop_signal: None,
        stop_timeout: None,
        health: None,
    })
}

/// `HostConfig.Tmpfs`: `{"/run": "size=64m,mode=1777,noexec"}`, with Docker's option names.
/// Mounts are noexec, nosuid and nodev unless `exec`, `suid` or `dev` says otherwise.
pub fn tmpfs(host: &HostConfig) -> Result<Vec<berth_protocol::Tmpfs>, ApiError> {
    let mut out = Vec::new();
    let Some(map) = &host.tmpfs else {
        return Ok(out);
    };
    for (target, options) in map {
        let bad = |why: String| ApiError::bad_request(format!("--tmpfs {target}: {why}"));
        if !target.starts_with('/') || target == "/" {
            return Err(bad(
                "the target must be an absolute path other than /".into()
            ));
        }
        let mut t = berth_protocol::Tmpfs {
            target: target.clone(),
            data: String::new(),
            read_only: false,
            noexec: true,
            nosuid: true,
            nodev: true,
        };
        let mut data = Vec::new();
        for opt in options.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                None => match opt {
                    "ro" => t.read_only = true,
                    "rw" => t.read_only = false,
                    "exec" => t.noexec = false,
                    "noexec" => t.noexec = true,
                    "suid" => t.nosuid = false,
                    "nosuid" => t.nosuid = true,
                    "dev" => t.nodev = false,
                    "nodev" => t.nodev = true,
                    other => return Err(bad(format!("unsupported option {other:?}"))),
                },
                Some((key @ ("size" | "nr_inodes"), value))
                    if !value.is_empty()
                        && value
                            .trim_end_matches(['k', 'm', 'g', 'K', 'M', 'G', '%'])
                            .bytes()
                            .all(|b| b.is_ascii_digit()) =>
                {
                    data.push(format!("{key}={value}"))
                }
                Some((key @ ("uid" | "gid"), value)) if value.parse::<u32>().is_ok() => {
                    data.push(format!("{key}={value}"))
                }
                Some(("mode", value))
                    if u32::from_str_radix(value, 8).is_ok_and(|m| m <= 0o7777) =>
                {
                    data.push(format!("mode={value}"))
                }
                Some(_) => return Err(bad(format!("invalid option {opt:?}"))),
            }
        }
        t.data = data.join(",");
        out.push(t);
    }
    Ok(out)
}

/// `HostConfig.NetworkMode`, `PortBindings`, `PublishAllPorts` (over the image's and the
/// request's `ExposedPorts`), `ExtraHosts`, and the aliases of `NetworkingConfig`.
pub fn net_settings(body: &CreateBody, image: &ContainerConfig) -> Result<NetSettings, ApiError> {
    let host = body.host();
    let mode = match host.network_mode.as_deref().unwrap_or("") {
        "" | "default" => "bridge".to_string(),
        m => m.to_string(),
    };
    // `NetworkingConfig.EndpointsConfig`: the aliases of the network of `NetworkMode`
    // (its entry, or the only one), and any other network as one more to join.
    let endpoints = body.endpoints();
    let aliases_of = |e: &super::models::EndpointSettings| e.aliases.clone().unwrap_or_default();
    let primary_key = match endpoints.contains_key(&mode) || endpoints.len() != 1 {
        true => mode.clone(),
        false => endpoints.keys().next().cloned().unwrap_or_default(),
    };
    let aliases = endpoints
        .get(&primary_key)
        .map(aliases_of)
        .unwrap_or_default();
    let also = endpoints
        .iter()
        .filter(|(k, _)| **k != primary_key)
        .map(|(k, e)| super::state::Joined {
            network: k.clone(),
            aliases: aliases_of(e),
        })
        .collect();
    let mut ports = Vec::new();
    for (key, bindings) in host.port_bindings.iter().flatten() {
        let (container_port, proto) = port_key(key)?;
        let mut list = bindings.clone().unwrap_or_default();
        if list.is_empty() {
            list.push(Default::default());
        }
        for b in list {
            let host_ip = string(&b.host_ip).unwrap_or_else(|| DEFAULT_HOST_IP.to_string());
            if host_ip.parse::<std::net::IpAddr>().is_err() {
                return Err(ApiError::bad_request(format!(
                    "invalid host address {host_ip:?} for port {key}"
                )));
            }
            let host_port = match b.host_port.as_deref().unwrap_or("") {
                "" => 0,
                p => p.parse::<u16>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid host port {p:?} for port {key}: expected a number from 1 to 65535"
                    ))
                })?,
            };
            ports.push(PortSpec {
                container_port,
                proto,
                host_ip,
                host_port,
            });
        }
    }
    if host.publish_all_ports.unwrap_or(false) {
        let exposed = [&image.exposed_ports, &body.config.exposed_ports];
        for key in exposed
            .iter()
            .filter_map(|v| v.as_ref())
            .flat_map(BTreeMap::keys)
        {
            let (container_port, proto) = port_key(key)?;
            if !ports
                .iter()
                .any(|p| p.container_port == container_port && p.proto == proto)
            {
                ports.push(PortSpec {
                    container_port,
                    proto,
                    host_ip: DEFAULT_HOST_IP.into(),
                    host_port: 0,
                });
            }
        }
    }
    ports.sort_by_key(|p| (p.container_port, p.proto.as_str(), p.host_port));
    let mut extra_hosts = Vec::new();
    for entry in host.extra_hosts.iter().flatten() {
        let (name, ip) = entry
            .split_once(['=', ':'])
            .filter(|(n, ip)| !n.is_empty() && !ip.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(format!("invalid extra host {entry:?}: expected NAME:IP"))
            })?;
        extra_hosts.push((name.to_string(), ip.to_string()));
    }
    Ok(NetSettings {
        mode,
        aliases,
        ports,
        extra_hosts,
        links: super::links::requested(body)?,
        also,
    })
}

/// `8080/tcp`, `53/udp` or `8080` (tcp).
pub fn port_key(key: &str) -> Result<(u16, PortProto), ApiError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => PortProto::Tcp,
        "udp" => PortProto::Udp,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid protocol {other:?} in port {key:?}: tcp or udp"
            )))
        }
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid port {key:?}")))?;
    Ok((port, proto))
}

fn resources(host: &HostConfig) -> Result<Resources, ApiError> {
    let positive = |v: Option<i64>| v.filter(|n| *n > 0).map(|n| n as u64);
    let rates = |v: &Option<Vec<DeviceRate>>| -> Result<Vec<(String, u64)>, ApiError> {
        let mut out = Vec::new();
        for r in v.iter().flatten() {
            let path = r
                .path
                .clone()
                .ok_or_else(|| ApiError::bad_request("a device rate needs a Path"))?;
            let rate = r
                .rate
                .ok_or_else(|| ApiError::bad_request("a device rate needs a Rate"))?;
            out.push((path, rate));
        }
        Ok(out)
    };
    let nano = positive(host.nano_cpus);
    let quota = positive(host.cpu_quota);
    let period = positive(host.cpu_period).unwrap_or(100_000);
    let millicpus = match (nano, quota) {
        (Some(n), _) => Some(n / 1_000_000),
        (None, Some(q)) => Some(q * 1000 / period),
        _ => None,
    };
    Ok(Resources {
        memory: positive(host.memory),
        millicpus,
        cpu_shares: positive(host.cpu_shares),
        cpuset_cpus: string(&host.cpuset_cpus),
        pids_limit: host.pids_limit.filter(|n| *n != 0),
        device_read_bps: rates(&host.blkio_device_read_bps)?,
        device_write_bps: rates(&host.blkio_device_write_bps)?,
    })
}

fn security(host: &HostConfig) -> Result<Security, ApiError> {
    let mut seccomp_unconfined = false;
    for opt in host.security_opt.iter().flatten() {
        match opt.replace(':', "=").as_str() {
            "seccomp=unconfined" => seccomp_unconfined = true,
            "no-new-privileges" | "no-new-privileges=true" => {}
            "label=disable" | "apparmor=unconfined" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unsupported security option {other:?}"
                )))
            }
        }
    }
    let userns_private = match host.userns_mode.as_deref().unwrap_or("") {
        "" | "host" => false,
        "private" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "userns mode {other:?}: expected host or private"
            )))
        }
    };
    Ok(Security {
        privileged: host.privileged.unwrap_or(false),
        cap_add: host.cap_add.clone().unwrap_or_default(),
        cap_drop: host.cap_drop.clone().unwrap_or_default(),
        seccomp_unconfined,
        userns_private,
    })
}

/// The rlimits `--ulimit` may set, by Docker's names.
pub const ULIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Kernel parameters a container's namespaces own (Docker's list): only these may be set.
fn namespaced_sysctl(key: &str, network_mode: &str) -> Result<(), String> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let safe = !key.is_empty()
        && key.split('.').all(|p| !p.is_empty())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !safe {
        return Err(format!("sysctl {key:?}: not a kernel parameter name"));
    }
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        return Ok(());
    }
    if key.starts_with("net.") {
        return match network_mode {
            "host" => Err(format!("sysctl {key:?} not allowed in host network namespace")),
            m if m.starts_with("container:") => Err(format!(
                "sysctl {key:?} not allowed: the container shares another container's network namespace"
            )),
            _ => Ok(()),
        };
    }
    Err(format!(
        "sysctl {key:?} is not allowed: only namespaced kernel parameters (net.*, fs.mqueue.*, kernel IPC) can be set in a container"
    ))
}

/// `Ulimits`, `OomScoreAdj`, `GroupAdd`, `Init`, `ShmSize`, `Sysctls`, `Dns*`.
fn process_options(host: &HostConfig) -> Result<berth_protocol::ProcessOptions, ApiError> {
    let bad = |m: String| ApiError::bad_request(m);
    let mut ulimits = Vec::new();
    for u in host.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default();
        if !ULIMITS.contains(&name.as_str()) {
            return Err(bad(format!("invalid ulimit type: {name}")));
        }
        let (soft, hard) = (u.soft.unwrap_or(0), u.hard.unwrap_or(0));
        if soft > hard && hard != -1 {
            return Err(bad(format!(
                "ulimit {name}: soft limit {soft} must be at most the hard limit {hard}"
            )));
        }
        ulimits.push(berth_protocol::Ulimit { name, soft, hard });
    }
    let oom_score_adj = match host.oom_score_adj {
        None | Some(0) => None,
        Some(n) if (-1000..=1000).contains(&n) => Some(n as i32),
        Some(n) => {
            return Err(bad(format!(
                "Invalid value {n}, range for oom score adj is [-1000, 1000]"
            )))
        }
    };
    let shm_size = match host.shm_size {
        None | Some(0) => None,
        Some(n) if n < 0 => return Err(bad("SHM size can not be less than 0".into())),
        Some(n) => Some(n as u64),
    };
    let mode = host.network_mode.as_deref().unwrap_or("bridge");
    let sysctls = host.sysctls.clone().unwrap_or_default();
    for key in sysctls.keys() {
        namespaced_sysctl(key, mode).map_err(bad)?;
    }
    let dns = host.dns.clone().unwrap_or_default();
    for server in &dns {
        if server.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(format!("{server} is not an ip address")));
        }
    }
    for g in host.group_add.iter().flatten() {
        if g.is_empty() || g.contains(':') {
            return Err(bad(format!("--group-add {g:?}: a group name or number")));
        }
    }
    let mut devices = Vec::new();
    for d in host.devices.iter().flatten() {
        let on_host = d.path_on_host.clone().unwrap_or_default();
        let in_container = string(&d.path_in_container).unwrap_or_else(|| on_host.clone());
        if !on_host.starts_with('/') || !in_container.starts_with('/') {
            return Err(bad(format!(
                "--device {on_host}:{in_container}: both paths must be absolute"
            )));
        }
        // berth has no device cgroup: a node in the container gives every access.
        if !matches!(
            d.cgroup_permissions.as_deref().unwrap_or(""),
            "" | "rwm" | "mrw" | "rmw"
        ) {
            return Err(bad(format!(
                "--device {on_host}: permissions {:?} are not supported by berth (only rwm: it has no device cgroup to narrow them)",
                d.cgroup_permissions.as_deref().unwrap_or("")
            )));
        }
        devices.push(berth_protocol::Device {
            path_on_host: on_host,
            path_in_container: in_container,
        });
    }
    Ok(berth_protocol::ProcessOptions {
        devices,
        ulimits,
        oom_score_adj,
        group_add: host.group_add.clone().unwrap_or_default(),
        init: host.init.unwrap_or(false),
        shm_size,
        sysctls,
        dns,
        dns_search: host.dns_search.clone().unwrap_or_default(),
        dns_options: host.dns_options.clone().unwrap_or_default(),
    })
}

/// Docker names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// A Docker-style `adjective_name` for a container created without one.
pub fn random_name(taken: impl Fn(&str) -> bool) -> String {
    const ADJECTIVES: &[&str] = &[
        "brave", "calm", "eager", "fervent", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "quirky", "serene", "tender", "vibrant", "wizardly", "zealous", "bold", "clever",
        "dazzling",
    ];
    const NAMES: &[&str] = &[
        "turing",
        "hopper",
        "lovelace",
        "noether",
        "curie",
        "dijkstra",
        "knuth",
        "ritchie",
        "thompson",
        "torvalds",
        "hamilton",
        "babbage",
        "euler",
        "gauss",
        "shannon",
        "liskov",
        "lamport",
        "wozniak",
        "kay",
        "engelbart",
    ];
    let mut seed = super::random_hex(8);
    for attempt in 0u32.. {
        let n = u64::from_str_radix(&seed, 16).unwrap_or(0);
        let a = ADJECTIVES[(n % ADJECTIVES.len() as u64) as usize];
        let b = NAMES[((n / 97) % NAMES.len() as u64) as usize];
        let name = match attempt {
            0..=9 => format!("{a}_{b}"),
            _ => format!("{a}_{b}{attempt}"),
        };
        if !taken(&name) {
            return name;
        }
        seed = super::random_hex(8);
    }
    unreachable!("the loop above returns")
}

/// A string that is present and not empty.
pub fn string(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// The `config` object of an image's config blob (Docker's `ContainerConfig` shape).
pub fn image_run_config(blob: &[u8]) -> Result<ContainerConfig, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct ImageConfigBlob {
        #[serde(default)]
        config: Option<ContainerConfig>,
    }
    Ok(serde_json::from_slice::<ImageConfigBlob>(blob)?
        .config
        .unwrap_or_default())
}

/// Docker's answer when a name is taken.
pub fn name_in_use(name: &str, id: &str) -> ApiError {
    ApiError::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn body(v: Value) -> CreateBody {
        serde_json::from_value(v).unwrap()
    }

    fn image(v: Value) -> ContainerConfig {
        serde_json::from_value(v).unwrap()
    }

    fn host(v: Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn command_follows_docker() {
        let img = image(json!({"Entrypoint": ["httpd", "-f"], "Cmd": ["-h", "/www"]}));
        let argv = |req: Value| {
            command(&image(req), &img)
                .map(|(e, c)| e.into_iter().chain(c).collect::<Vec<_>>())
                .unwrap()
        };
        assert_eq!(argv(json!({})), ["httpd", "-f", "-h", "/www"]);
        assert_eq!(
            argv(json!({"Cmd": ["-p", "1"]})),
            ["httpd", "-f", "-p", "1"]
        );
        assert_eq!(argv(json!({"Entrypoint": ["sh"]})), ["sh"]);
        assert_eq!(
            argv(json!({"Entrypoint": "sh", "Cmd": ["-c", "x"]})),
            ["sh", "-c", "x"]
        );
        assert_eq!(argv(json!({"Entrypoint": [""], "Cmd": ["ls"]})), ["ls"]);
        assert!(command(&image(json!({})), &image(json!({}))).is_err());
    }

    #[test]
    fn env_overrides_replace_image_values() {
        assert_eq!(
            environment(
                &["PATH=/bin".into(), "A=1".into()],
                &["A=2".into(), "B=3".into()]
            ),
            ["PATH=/bin", "A=2", "B=3"]
        );
    }

    #[test]
    fn host_config_becomes_limits_and_security() {
        let body = body(json!({
            "Cmd": ["true"], "Tty": true, "OpenStdin": true,
            "HostConfig": {
                "Memory": 33554432, "NanoCpus": 500000000, "CpuShares": 512,
                "PidsLimit": 20, "CpusetCpus": "0",
                "BlkioDeviceWriteBps": [{"Path": "/dev/vda", "Rate": 1048576}],
                "CapAdd": ["SYS_ADMIN"], "SecurityOpt": ["seccomp=unconfined"],
                "AutoRemove": true, "ConsoleSize": [30, 100], "UsernsMode": "private"
            }
        }));
        let id = "0123456789abcdef".repeat(4);
        let s = run_spec(&body, &image(json!({"Env": ["A=1"]})), &id).unwrap();
        assert_eq!(s.hostname, "0123456789ab");
        assert_eq!(s.resources.memory, Some(32 << 20));
        assert_eq!(s.resources.millicpus, Some(500));
        assert_eq!(s.resources.pids_limit, Some(20));
        assert_eq!(
            s.resources.device_write_bps,
            [("/dev/vda".to_string(), 1 << 20)]
        );
        assert!(s.security.seccomp_unconfined && s.security.userns_private);
        assert_eq!(s.security.cap_add, ["SYS_ADMIN"]);
        assert!(s.tty && s.open_stdin && s.auto_remove);
        assert_eq!(
            s.console,
            Some(TtySize {
                rows: 30,
                cols: 100
            })
        );
        let bad = json!({"Cmd": ["x"], "HostConfig": {"SecurityOpt": ["apparmor=x"]}});
        assert!(run_spec(&super::tests::body(bad), &image(json!({})), &id).is_err());
    }

    #[test]
    fn ports_and_network_modes_follow_docker() {
        let req = body(json!({
            "Cmd": ["x"], "ExposedPorts": {"9000/tcp": {}},
            "HostConfig": {
                "PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": "18080"}], "53/udp": [{"HostPort": ""}]},
                "PublishAllPorts": true, "ExtraHosts": ["db:10.0.0.9"]
            },
            "NetworkingConfig": {"EndpointsConfig": {"net1": {"Aliases": ["www"]}}}
        }));
        let img = image(json!({"ExposedPorts": {"8080/tcp": {}, "7000/udp": {}}}));
        let n = net_settings(&req, &img).unwrap();
        assert_eq!(n.mode, "bridge");
        assert_eq!(n.aliases, ["www"]);
        let got: Vec<(u16, &str, &str, u16)> = n
            .ports
            .iter()
            .map(|p| {
                (
                    p.container_port,
                    p.proto.as_str(),
                    p.host_ip.as_str(),
                    p.host_port,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (53, "udp", "127.0.0.1", 0),
                (7000, "udp", "127.0.0.1", 0),
                (8080, "tcp", "127.0.0.1", 18080),
                (9000, "tcp", "127.0.0.1", 0)
            ]
        );
        assert_eq!(n.extra_hosts, [("db".to_string(), "10.0.0.9".to_string())]);
        let bad = json!({"HostConfig": {"PortBindings": {"80/sctp": []}}});
        assert!(net_settings(&body(bad), &image(json!({}))).is_err());
        let bad = json!({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "8000-8010"}]}}});
        assert!(net_settings(&body(bad), &image(json!({}))).is_err());
        let host = json!({"HostConfig": {"NetworkMode": "host"}});
        assert_eq!(
            net_settings(&body(host), &image(json!({}))).unwrap().mode,
            "host"
        );
    }

    #[test]
    fn tmpfs_options_follow_docker() {
        let mounts = tmpfs(&host(
            json!({"Tmpfs": {"/run": "size=64m,mode=1777,exec", "/ro": "ro"}}),
        ))
        .unwrap();
        let run = mounts.iter().find(|t| t.target == "/run").unwrap();
        assert_eq!(run.data, "size=64m,mode=1777");
        assert!(!run.noexec && run.nosuid && run.nodev && !run.read_only);
        let ro = mounts.iter().find(|t| t.target == "/ro").unwrap();
        assert!(ro.read_only && ro.noexec);
        for bad in [
            json!({"Tmpfs": {"/x": "size=lots"}}),
            json!({"Tmpfs": {"/x": "mode=999"}}),
            json!({"Tmpfs": {"/x": "huge"}}),
            json!({"Tmpfs": {"relative": ""}}),
            json!({"Tmpfs": {"/": ""}}),
        ] {
            let err = tmpfs(&host(bad)).unwrap_err();
            assert!(err.message.starts_with("--tmpfs"), "{}", err.message);
        }
    }

    #[test]
    fn process_options_are_checked_as_dockers() {
        let opts = process_options(&host(json!({
            "Ulimits": [{"Name": "nofile", "Soft": 64, "Hard": 128}],
            "OomScoreAdj": 200, "ShmSize": 1 << 27, "Init": true,
            "Sysctls": {"net.core.somaxconn": "1024", "kernel.shmmax": "1"},
            "Dns": ["10.0.0.53"], "DnsSearch": ["example.com"], "GroupAdd": ["audio"]
        })))
        .unwrap();
        assert_eq!(opts.ulimits[0].hard, 128);
        assert_eq!(
            (opts.oom_score_adj, opts.shm_size),
            (Some(200), Some(1 << 27))
        );
        assert!(opts.init && opts.sysctls.len() == 2);
        for bad in [
            json!({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}),
            json!({"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 5}]}),
            json!({"OomScoreAdj": 5000}),
            json!({"ShmSize": -1}),
            json!({"Sysctls": {"kernel.hostname": "x"}}),
            json!({"Sysctls": {"net.core.somaxconn": "1"}, "NetworkMode": "host"}),
            json!({"Dns": ["not-an-ip"]}),
        ] {
            assert!(
                process_options(&host(bad.clone())).is_err(),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn names() {
        assert!(valid_name("web") && valid_name("a.b-c_1"));
        assert!(!valid_name("x") && !valid_name("-x") && !valid_name("a/b"));
        let n = random_name(|n| n.starts_with("brave"));
        assert!(n.contains('_') && !n.starts_with("brave"));
    }
}
