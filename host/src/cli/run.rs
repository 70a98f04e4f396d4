//! `berth run`, `create`, `start` and `attach`: clients of the machine's daemon, making the
//! same API calls as the docker CLI (create, attach, wait, start).

use hyper::Method;
use serde_json::{json, Value};

use super::api::{enc, Api};
use super::session::{self, Opts};
use crate::{size, Error};

/// The flags of `docker create` that berth supports.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Keep stdin open and forward it to the container.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal (stdout and stderr merged).
    #[arg(short, long)]
    tty: bool,
    /// Container name.
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables (`KEY=VALUE`, or `KEY` to take it from here).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// User (`name|uid[:group|gid]`).
    #[arg(short, long)]
    user: Option<String>,
    /// Overwrite the image's entrypoint.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Container hostname (default: the short container id).
    #[arg(long)]
    hostname: Option<String>,
    /// Memory limit (`32m`, `1g`); the container is OOM-killed (exit 137) beyond it.
    #[arg(short, long)]
    memory: Option<String>,
    /// CPUs the container may use (`1.5`).
    #[arg(long)]
    cpus: Option<f64>,
    /// Relative CPU weight (1024 is the default).
    #[arg(short = 'c', long)]
    cpu_shares: Option<u64>,
    /// CPUs the container may run on (`0-1`, `0,2`).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Most processes the container may have (-1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Read rate limit of a device (`/dev/vda:1mb`).
    #[arg(long, value_name = "PATH:RATE")]
    device_read_bps: Vec<String>,
    /// Write rate limit of a device (`/dev/vda:1mb`).
    #[arg(long, value_name = "PATH:RATE")]
    device_write_bps: Vec<String>,
    /// Give the container every capability, no seccomp filter and no masked paths.
    #[arg(long)]
    privileged: bool,
    /// Mount the container's root file system read-only (volumes, binds and tmpfs
    /// mounts keep their own modes).
    #[arg(long)]
    read_only: bool,
    /// A fresh tmpfs at PATH, with options (`/run:size=64m,mode=1777,exec`).
    #[arg(long, value_name = "PATH[:OPTIONS]")]
    tmpfs: Vec<String>,
    /// Add a capability (`NET_ADMIN`, `ALL`).
    #[arg(long, value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop a capability (`CHOWN`, `ALL`).
    #[arg(long, value_name = "CAP")]
    cap_drop: Vec<String>,
    /// User namespace: `host` (default) or `private` (root in the container is an
    /// unprivileged id range, 100000-165535, on the guest).
    #[arg(long, default_value = "host")]
    userns: String,
    /// PID namespace: the container's own (default), `host` (the machine's) or
    /// `container:NAME`.
    #[arg(long, value_name = "MODE")]
    pid: Option<String>,
    /// IPC namespace: `private` (default), `shareable`, `none`, `host` or
    /// `container:NAME`.
    #[arg(long, value_name = "MODE")]
    ipc: Option<String>,
    /// UTS namespace: the container's own (default) or `host` (the machine's hostname).
    #[arg(long, value_name = "MODE")]
    uts: Option<String>,
    /// Security options; `seccomp=unconfined` turns the seccomp filter off.
    #[arg(long, value_name = "OPT")]
    security_opt: Vec<String>,
    /// Set a label (`KEY=VALUE`).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Publish a container port on the host: `[HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp]`
    /// (HOSTIP defaults to 127.0.0.1; no HOSTPORT picks a free one).
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    publish: Vec<String>,
    /// Publish every port the image exposes on a free host port.
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// Expose a port (for `-P`), `PORT[/tcp|/udp]`.
    #[arg(long, value_name = "PORT")]
    expose: Vec<String>,
    /// The network: `bridge` (default), `none`, `host`, `container:NAME` or a network
    /// made with `berth network create`.
    #[arg(long, visible_alias = "net", default_value = "bridge")]
    network: String,
    /// Another name the container has on its (user-defined) network.
    #[arg(long = "network-alias", value_name = "ALIAS")]
    network_alias: Vec<String>,
    /// An /etc/hosts entry, `NAME:IP` (`host-gateway` is the guest itself).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// A DNS server for the container. On a network made with `berth network create`,
    /// berth's resolver stays the container's nameserver and forwards to it the names
    /// it does not know; elsewhere it replaces the network's.
    #[arg(long, value_name = "IP")]
    dns: Vec<String>,
    /// A DNS search domain.
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    dns_search: Vec<String>,
    /// A resolver option (`ndots:2`).
    #[arg(long = "dns-option", value_name = "OPT")]
    dns_option: Vec<String>,
    /// Mount a host folder or a volume: `/host/dir:/path[:ro]` (a folder the machine
    /// shares), `NAME:/path` (a named volume, created when missing) or `/path` (an
    /// anonymous volume).
    #[arg(short, long = "volume", value_name = "SRC:DST[:ro]")]
    volume: Vec<String>,
    /// Mount: `type=bind,source=/host/dir,target=/path[,readonly]` (the source must
    /// exist) or `type=volume,source=NAME,target=/path[,readonly]`.
    #[arg(long, value_name = "SPEC")]
    mount: Vec<String>,
    /// Pull the image first: `missing` (when the store lacks it), `always`, or `never`.
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing)]
    pull: PullPolicy,
    /// The image's platform: linux/amd64, the machines' (others are refused).
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    /// The image (a name such as `busybox` or `user/app:tag`, or an image id), then the
    /// command and its arguments (default: the image's Cmd). Everything after the image
    /// belongs to the command, as with `docker run`.
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "IMAGE [COMMAND [ARG...]]"
    )]
    image_and_command: Vec<String>,
}

/// `--pull`: when `run` and `create` pull the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    Missing,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    detach: bool,
    /// The machine's kernel (berth kernel ls): a stopped machine starts on it; a running
    /// one must already run it.
    #[arg(long)]
    pub kernel: Option<String>,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Attach to the container's output and wait for it.
    #[arg(short, long)]
    attach: bool,
    /// Attach stdin too.
    #[arg(short, long)]
    interactive: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Do not attach stdin.
    #[arg(long)]
    no_stdin: bool,
    container: String,
}

/// Docker's create body from the flags.
pub fn create_body(a: &CreateArgs, attach: bool) -> Result<Value, Error> {
    let (image, command) = a
        .image_and_command
        .split_first()
        .ok_or_else(|| Error::Usage("an image is required".into()))?;
    let env: Vec<String> = a
        .env
        .iter()
        .filter_map(|e| match e.split_once('=') {
            Some(_) => Some(e.clone()),
            None => std::env::var(e).ok().map(|v| format!("{e}={v}")),
        })
        .collect();
    let rate = |flag: &str, v: &String| -> Result<Value, Error> {
        let (path, rate) = v
            .rsplit_once(':')
            .ok_or_else(|| Error::Usage(format!("{flag} {v:?}: expected PATH:RATE")))?;
        Ok(json!({"Path": path, "Rate": size::parse_bytes(rate).map_err(Error::Usage)?}))
    };
    let nano_cpus = match a.cpus {
        Some(c) if c > 0.0 && c.is_finite() => (c * 1e9).round() as u64,
        Some(c) => {
            return Err(Error::Usage(format!(
                "--cpus {c}: must be a positive number"
            )))
        }
        None => 0,
    };
    let memory = match &a.memory {
        Some(m) => size::parse_bytes(m).map_err(Error::Usage)?,
        None => 0,
    };
    match a.userns.as_str() {
        "" | "host" | "private" => {}
        other => {
            return Err(Error::Usage(format!(
                "--userns {other:?}: expected host or private"
            )))
        }
    }
    let labels: serde_json::Map<String, Value> = a
        .label
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), Value::from(v)),
            None => (l.clone(), Value::from("")),
        })
        .collect();
    let console = a.tty.then(super::terminal::size);
    let (binds, mounts, anonymous) = super::volumes::create_fields(&a.volume, &a.mount)?;
    let entrypoint = a.entrypoint.as_ref().map(|e| vec![e.clone()]);
    let mut body = json!({
        "Image": image,
        "Cmd": if command.is_empty() { Value::Null } else { json!(command) },
        "Entrypoint": entrypoint,
        "Env": env,
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "User": a.user.clone().unwrap_or_default(),
        "Hostname": a.hostname.clone().unwrap_or_default(),
        "Labels": labels,
        "Volumes": anonymous,
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "StdinOnce": a.interactive && attach,
        "AttachStdin": a.interactive && attach,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "HostConfig": {
            "AutoRemove": a.rm,
            "Binds": binds,
            "Mounts": mounts,
            "Memory": memory,
            "NanoCpus": nano_cpus,
            "CpuShares": a.cpu_shares.unwrap_or(0),
            "CpusetCpus": a.cpuset_cpus.clone().unwrap_or_default(),
            "PidsLimit": a.pids_limit,
            "BlkioDeviceReadBps": a.device_read_bps.iter().map(|v| rate("--device-read-bps", v)).collect::<Result<Vec<_>, _>>()?,
            "BlkioDeviceWriteBps": a.device_write_bps.iter().map(|v| rate("--device-write-bps", v)).collect::<Result<Vec<_>, _>>()?,
            "Privileged": a.privileged,
            "ReadonlyRootfs": a.read_only,
            "Tmpfs": a.tmpfs.iter().map(|t| match t.split_once(':') {
                Some((path, opts)) => (path.to_string(), json!(opts)),
                None => (t.clone(), json!("")),
            }).collect::<serde_json::Map<String, Value>>(),
            "CapAdd": a.cap_add,
            "CapDrop": a.cap_drop,
            "SecurityOpt": a.security_opt,
            "UsernsMode": if a.userns == "host" { "" } else { a.userns.as_str() },
            "ConsoleSize": console.map(|s| [s.rows, s.cols]).unwrap_or([0, 0]),
            "NetworkMode": a.network,
            "PortBindings": port_bindings(&a.publish)?,
            "PublishAllPorts": a.publish_all,
            "ExtraHosts": a.add_host,
            "Dns": a.dns,
            "DnsSearch": a.dns_search,
            "DnsOptions": a.dns_option,
        },
        "ExposedPorts": a.expose.iter().map(|p| {
            let p = if p.contains('/') { p.clone() } else { format!("{p}/tcp") };
            (p, json!({}))
        }).collect::<serde_json::Map<String, Value>>(),
        "NetworkingConfig": {
            "EndpointsConfig": if a.network_alias.is_empty() { json!({}) } else {
                json!({ a.network.clone(): {"Aliases": a.network_alias} })
            }
        },
    });
    // The namespaces (the daemon checks the modes); apart, as json! has a recursion limit.
    for (field, mode) in [
        ("PidMode", &a.pid),
        ("IpcMode", &a.ipc),
        ("UTSMode", &a.uts),
    ] {
        body["HostConfig"][field] = json!(mode.clone().unwrap_or_default());
    }
    Ok(body)
}

/// `-p` values as Docker's `PortBindings` (`{"8080/tcp": [{"HostIp", "HostPort"}]}`).
pub fn port_bindings(publish: &[String]) -> Result<Value, Error> {
    let mut map = serde_json::Map::new();
    for p in publish {
        let bad = || {
            Error::Usage(format!(
                "-p {p:?}: expected [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp]"
            ))
        };
        let (spec, proto) = match p.rsplit_once('/') {
            Some((s, proto @ ("tcp" | "udp"))) => (s, proto),
            Some(_) => return Err(bad()),
            None => (p.as_str(), "tcp"),
        };
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        let (container, host_port, host_ip) = match parts.as_slice() {
            [c] => (*c, "", ""),
            [c, hp] => (*c, *hp, ""),
            [c, hp, ip] => (*c, *hp, *ip),
            _ => return Err(bad()),
        };
        let port_ok = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
        if !port_ok(container) || !(host_port.is_empty() || port_ok(host_port)) {
            return Err(bad());
        }
        let host_ip = host_ip.trim_start_matches('[').trim_end_matches(']');
        if !host_ip.is_empty() && host_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(bad());
        }
        let entry = map
            .entry(format!("{container}/{proto}"))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(json!({"HostIp": host_ip, "HostPort": host_port}));
        }
    }
    Ok(Value::Object(map))
}

/// Creates the container, pulling its image first as `--pull` says (a missing image is
/// pulled by default, with progress on stderr, as `docker run` does).
async fn create(api: &Api, a: &CreateArgs, attach: bool) -> Result<String, Error> {
    let body = create_body(a, attach)?;
    let image = body["Image"].as_str().unwrap_or_default().to_string();
    let platform = super::pull::platform(a.platform.as_deref()).map_err(exec_error)?;
    if !platform.runnable() {
        return Err(Error::Exec {
            code: 125,
            message: format!("--platform {platform}: berth's machines run linux/amd64 images only"),
        });
    }
    if a.pull == PullPolicy::Always {
        pull_for_run(&image, &platform).await?;
    }
    match create_call(api, a, &body).await {
        Err(Error::Api {
            status: 404,
            message,
        }) if message.starts_with("No such image") && a.pull == PullPolicy::Missing => {
            eprintln!("Unable to find image '{}' locally", familiar(&image));
            pull_for_run(&image, &platform).await?;
            create_call(api, a, &body).await.map_err(exec_error)
        }
        Err(Error::Api {
            status: 404,
            message,
        }) if message.starts_with("No such image") => Err(Error::Exec {
            code: 125,
            message: format!(
                "Unable to find image '{}' locally, and --pull never forbids pulling it",
                familiar(&image)
            ),
        }),
        other => other.map_err(exec_error),
    }
}

/// `busybox` as Docker names it in messages: `busybox:latest`.
fn familiar(image: &str) -> String {
    crate::image::Reference::parse(image)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| image.to_string())
}

async fn pull_for_run(
    image: &str,
    platform: &crate::image::registry::Platform,
) -> Result<(), Error> {
    super::pull::pull_image(image, platform.clone(), true, false)
        .await
        .map(drop)
        .map_err(exec_error)
}

async fn create_call(api: &Api, a: &CreateArgs, body: &Value) -> Result<String, Error> {
    let path = match &a.name {
        Some(n) => format!("/containers/create?name={}", enc(n)),
        None => "/containers/create".to_string(),
    };
    let v = api.call(Method::POST, &path, Some(body)).await?;
    Ok(v["Id"].as_str().unwrap_or_default().to_string())
}

/// `run`'s own failures exit 125, with Docker's words.
fn exec_error(e: Error) -> Error {
    match e {
        Error::Api { message, .. } => Error::Exec {
            code: 125,
            message: format!("Error response from daemon: {message}"),
        },
        Error::Registry(r) => Error::Exec {
            code: 125,
            message: format!("Error response from daemon: {}", crate::error::chain(&r)),
        },
        Error::Exec { .. } => e,
        other => Error::Exec {
            code: 125,
            message: crate::error::chain(&other),
        },
    }
}

/// Docker's exit codes for a failed start: 127 not found, 126 cannot invoke, else 125.
fn start_error(e: Error) -> Error {
    match e {
        Error::Api { message, .. } => {
            let code = if message.contains("executable file not found")
                || message.contains("no such file or directory")
            {
                127
            } else if message.contains("permission denied") || message.contains("cannot invoke") {
                126
            } else {
                125
            };
            Error::Exec {
                code,
                message: format!("Error response from daemon: {message}"),
            }
        }
        other => other,
    }
}

pub async fn run(api: &Api, a: RunArgs) -> Result<i32, Error> {
    let c = &a.create;
    if a.detach && c.rm && c.interactive {
        // Fine in Docker too: nothing to forward, stdin just stays open.
    }
    let id = create(api, c, !a.detach).await?;
    if a.detach {
        api.call(Method::POST, &format!("/containers/{id}/start"), None)
            .await
            .map_err(start_error)?;
        println!("{id}");
        return Ok(0);
    }
    let stdin = if c.interactive { "&stdin=1" } else { "" };
    let io = api
        .hijack(
            &format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1{stdin}"),
            None,
        )
        .await?;
    // The wait is registered once its headers arrive: before the start, so no exit is missed.
    let condition = if c.rm { "removed" } else { "next-exit" };
    let wait = api
        .stream(
            Method::POST,
            &format!("/containers/{id}/wait?condition={condition}"),
        )
        .await?;
    if let Err(e) = api
        .call(Method::POST, &format!("/containers/{id}/start"), None)
        .await
    {
        if c.rm {
            let _ = api
                .call(
                    Method::DELETE,
                    &format!("/containers/{id}?force=1&v=1"),
                    None,
                )
                .await;
        }
        return Err(start_error(e));
    }
    session::run(
        api,
        io,
        Opts {
            tty: c.tty,
            stdin: c.interactive,
            resize_path: Some(format!("/containers/{id}/resize")),
            kill_path: (!c.tty).then(|| format!("/containers/{id}/kill")),
        },
    )
    .await?;
    if c.tty && detached(api, &id).await {
        return Ok(0);
    }
    wait_code(wait).await
}

/// Whether an attached session ended with the container still running: the user typed
/// the detach keys (the daemon ends the session on them; output ends only after the
/// container is recorded as exited otherwise).
async fn detached(api: &Api, id: &str) -> bool {
    match api
        .call(Method::GET, &format!("/containers/{id}/json"), None)
        .await
    {
        Ok(info) => info["State"]["Running"].as_bool().unwrap_or(false),
        Err(_) => false,
    }
}

/// The exit code from a wait answer.
async fn wait_code(resp: hyper::Response<hyper::body::Incoming>) -> Result<i32, Error> {
    let bytes = super::api::collect(resp).await?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Daemon(format!("bad answer to wait: {e}")))?;
    if let Some(m) = v["Error"]["Message"].as_str().filter(|m| !m.is_empty()) {
        tracing::debug!("wait: {m}");
    }
    Ok(v["StatusCode"].as_i64().unwrap_or(125) as i32)
}

pub async fn create_cmd(api: &Api, a: CreateArgs) -> Result<i32, Error> {
    let id = create(api, &a, false).await?;
    println!("{id}");
    Ok(0)
}

pub async fn start(api: &Api, a: StartArgs) -> Result<i32, Error> {
    if a.attach || a.interactive {
        let [one] = &a.containers[..] else {
            return Err(Error::Usage(
                "you cannot start and attach multiple containers at once".into(),
            ));
        };
        return attach_and(api, one, a.interactive, true).await;
    }
    super::containers::each(api, &a.containers, |n| format!("/containers/{n}/start")).await
}

pub async fn attach(api: &Api, a: AttachArgs) -> Result<i32, Error> {
    attach_and(api, &a.container, !a.no_stdin, false).await
}

/// Attaches to a container (starting it first when asked) and returns its exit code.
async fn attach_and(api: &Api, name: &str, stdin: bool, start: bool) -> Result<i32, Error> {
    let info = api
        .call(
            Method::GET,
            &format!("/containers/{}/json", enc(name)),
            None,
        )
        .await?;
    let id = info["Id"].as_str().unwrap_or(name).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let s = if stdin { "&stdin=1" } else { "" };
    let io = api
        .hijack(
            &format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1{s}"),
            None,
        )
        .await?;
    let wait = api
        .stream(
            Method::POST,
            &format!(
                "/containers/{id}/wait?condition={}",
                if start { "next-exit" } else { "not-running" }
            ),
        )
        .await?;
    if start {
        match api
            .call_status(Method::POST, &format!("/containers/{id}/start"))
            .await
        {
            Ok(_) => {}
            Err(e) => return Err(start_error(e)),
        }
    }
    session::run(
        api,
        io,
        Opts {
            tty,
            stdin,
            resize_path: Some(format!("/containers/{id}/resize")),
            kill_path: (!tty).then(|| format!("/containers/{id}/kill")),
        },
    )
    .await?;
    if tty && detached(api, &id).await {
        return Ok(0);
    }
    wait_code(wait).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_flags_become_port_bindings() {
        let b = port_bindings(&[
            "18080:8080".into(),
            "127.0.0.2:15353:53/udp".into(),
            "9000".into(),
            "0.0.0.0::7000/tcp".into(),
        ])
        .unwrap();
        assert_eq!(b["8080/tcp"][0]["HostPort"], "18080");
        assert_eq!(b["8080/tcp"][0]["HostIp"], "");
        assert_eq!(b["53/udp"][0]["HostIp"], "127.0.0.2");
        assert_eq!(b["53/udp"][0]["HostPort"], "15353");
        assert_eq!(b["9000/tcp"][0]["HostPort"], "");
        assert_eq!(b["7000/tcp"][0]["HostIp"], "0.0.0.0");
        for bad in ["x", "80/sctp", "1:2:3:4", "70000:80", "nohost:80:80"] {
            assert!(port_bindings(&[bad.into()]).is_err(), "{bad}");
        }
    }
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CreateArgs,
    }

    #[test]
    fn flags_become_dockers_create_body() {
        let t = T::parse_from([
            "x",
            "--rm",
            "-i",
            "--name",
            "web",
            "-e",
            "A=1",
            "--memory",
            "32m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "20",
            "--device-write-bps",
            "/dev/vda:1mb",
            "--cap-add",
            "SYS_ADMIN",
            "--userns",
            "private",
            "--pid",
            "host",
            "--ipc",
            "container:db",
            "--uts",
            "host",
            "busybox",
            "sh",
            "-c",
            "echo hi",
        ]);
        let b = create_body(&t.a, true).unwrap();
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["OpenStdin"], true);
        assert_eq!(b["StdinOnce"], true);
        let h = &b["HostConfig"];
        assert_eq!(h["AutoRemove"], true);
        assert_eq!(h["Memory"], 32 << 20);
        assert_eq!(h["NanoCpus"], 500_000_000u64);
        assert_eq!(h["PidsLimit"], 20);
        assert_eq!(h["BlkioDeviceWriteBps"][0]["Rate"], 1 << 20);
        assert_eq!(h["UsernsMode"], "private");
        assert_eq!(h["PidMode"], "host");
        assert_eq!(h["IpcMode"], "container:db");
        assert_eq!(h["UTSMode"], "host");
        let none = T::parse_from(["x", "busybox"]);
        assert_eq!(create_body(&none.a, false).unwrap()["Cmd"], Value::Null);
        let bad = T::parse_from(["x", "--userns", "odd", "busybox"]);
        assert!(create_body(&bad.a, false).is_err());
    }
}
