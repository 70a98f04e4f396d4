//! `berth run`: a container from a stored image, in a VM booted for this run (until the
//! daemon exists). Docker's flags and exit codes where they apply.

use std::path::PathBuf;
use std::time::Duration;

use berth_protocol::{ContainerSpec, ExecSpec, Resources, Security};
use serde_json::Value;

use crate::image::{Digest, ImageRecord, ImageStore, Reference};
use crate::layer_disk::LayerDisk;
use crate::paths::Paths;
use crate::qemu::Machine;
use crate::vm::VmConfig;
use crate::{accel, kernels, size, transport, Error};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove the container when it exits (containers never outlive this VM yet).
    #[arg(long)]
    rm: bool,
    /// Keep stdin open and forward it to the container.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal (stdout and stderr merged).
    #[arg(short, long)]
    tty: bool,
    /// Container name (kept for the daemon; accepted now).
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
    /// Security options; `seccomp=unconfined` turns the seccomp filter off.
    #[arg(long, value_name = "OPT")]
    security_opt: Vec<String>,
    /// Kernel for the VM: a name from `berth kernel ls`, or a path.
    #[arg(long)]
    kernel: Option<String>,
    /// How the host reaches the VM: auto, vsock, vhost-user or serial.
    #[arg(long, default_value = "auto")]
    transport: String,
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

pub fn run(args: Args) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    let store = ImageStore::open(&ImageStore::root_for(&paths))?;
    let (image_name, command_args) = args
        .image_and_command
        .split_first()
        .ok_or_else(|| Error::Usage("an image is required".into()))?;
    let image = find_image(&store, image_name)?;
    let config: Value = serde_json::from_slice(&store.blobs().get(&image.config)?)
        .map_err(|e| Error::Usage(format!("image {image_name}: bad config: {e}")))?;
    let config = &config["config"];
    let id = new_container_id();
    let spec = ExecSpec {
        argv: command(config, args.entrypoint.as_deref(), command_args)?,
        env: environment(config, &args.env),
        cwd: args
            .workdir
            .clone()
            .or_else(|| string(&config["WorkingDir"])),
        stdin: args.interactive,
        tty: args.tty.then(super::terminal::size),
        container: Some(ContainerSpec {
            hostname: args
                .hostname
                .clone()
                .unwrap_or_else(|| id[..12].to_string()),
            user: args.user.clone().or_else(|| string(&config["User"])),
            layers: image.layers.iter().map(|d| d.to_string()).collect(),
            resources: resources(&args)?,
            security: security(&args)?,
            id,
        }),
    };
    let layers: Vec<(String, PathBuf)> = image
        .layers
        .iter()
        .map(|d| (d.to_string(), store.blobs().path(d)))
        .collect();
    // Held until the VM is gone: one VM at a time writes the layer cache.
    let layer_disk = LayerDisk::acquire(&paths);
    let cfg = VmConfig {
        kernel: kernels::resolve(&paths.assets, args.kernel.as_deref())?,
        cpus: 1,
        memory_mib: 512,
        transport: transport::choose(&args.transport)?,
        machine: Machine::Microvm,
        accel: accel::choose(),
        boot_timeout: Duration::from_secs(30),
        debug_guest: tracing::enabled!(tracing::Level::DEBUG),
        layer_disk: layer_disk.as_ref().map(|d| d.path().to_path_buf()),
    };
    let record = (!args.rm).then(|| State::new(&spec, &args, image_name));
    let ended = super::block_on(super::vm_run::boot_and_run(&paths, &cfg, &layers, spec))?;
    if let Some(mut state) = record {
        state.exited(ended.code, ended.oom_killed);
        state.save(&paths)?;
    }
    Ok(ended.code)
}

/// What `berth run` records of a container it did not remove (`$BERTH_HOME/containers/<id>/
/// state.json`, Docker's field names). The daemon will serve it through `inspect`.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct State {
    id: String,
    name: Option<String>,
    image: String,
    args: Vec<String>,
    created: u64,
    state: ExitState,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExitState {
    status: String,
    exit_code: i32,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
}

impl State {
    fn new(spec: &ExecSpec, args: &Args, image: &str) -> State {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        State {
            id: spec
                .container
                .as_ref()
                .map(|c| c.id.clone())
                .unwrap_or_default(),
            name: args.name.clone(),
            image: image.to_string(),
            args: spec.argv.clone(),
            created,
            state: ExitState {
                status: "running".into(),
                exit_code: 0,
                oom_killed: false,
            },
        }
    }

    fn exited(&mut self, code: i32, oom_killed: bool) {
        self.state = ExitState {
            status: "exited".into(),
            exit_code: code,
            oom_killed,
        };
    }

    /// Written atomically: a crash leaves the previous file or none, never half of one.
    fn save(&self, paths: &Paths) -> Result<(), Error> {
        let dir = paths.home.join("containers").join(&self.id);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join("state.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, dir.join("state.json"))?;
        Ok(())
    }
}

/// `--privileged`, `--cap-add`, `--cap-drop`, `--security-opt`.
fn security(args: &Args) -> Result<Security, Error> {
    let mut seccomp_unconfined = false;
    for opt in &args.security_opt {
        match opt.replace(':', "=").as_str() {
            "seccomp=unconfined" => seccomp_unconfined = true,
            "no-new-privileges" | "no-new-privileges=true" => {} // always on in berth
            other => {
                return Err(Error::Usage(format!(
                    "unsupported --security-opt {other:?}"
                )))
            }
        }
    }
    let userns_private = match args.userns.as_str() {
        "host" | "" => false,
        "private" => true,
        other => {
            return Err(Error::Usage(format!(
                "--userns {other:?}: expected host or private"
            )))
        }
    };
    Ok(Security {
        userns_private,
        privileged: args.privileged,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        seccomp_unconfined,
    })
}

/// The cgroup limits of `docker run`'s flags.
fn resources(args: &Args) -> Result<Resources, Error> {
    let rate = |flag: &str, v: &String| -> Result<(String, u64), Error> {
        let (path, rate) = v
            .rsplit_once(':')
            .ok_or_else(|| Error::Usage(format!("{flag} {v:?}: expected PATH:RATE")))?;
        Ok((
            path.to_string(),
            size::parse_bytes(rate).map_err(Error::Usage)?,
        ))
    };
    let millicpus = match args.cpus {
        Some(c) if c > 0.0 && c.is_finite() => Some((c * 1000.0).round() as u64),
        Some(c) => {
            return Err(Error::Usage(format!(
                "--cpus {c}: must be a positive number"
            )))
        }
        None => None,
    };
    Ok(Resources {
        memory: args
            .memory
            .as_deref()
            .map(size::parse_bytes)
            .transpose()
            .map_err(Error::Usage)?,
        millicpus,
        cpu_shares: args.cpu_shares,
        cpuset_cpus: args.cpuset_cpus.clone(),
        pids_limit: args.pids_limit,
        device_read_bps: args
            .device_read_bps
            .iter()
            .map(|v| rate("--device-read-bps", v))
            .collect::<Result<_, _>>()?,
        device_write_bps: args
            .device_write_bps
            .iter()
            .map(|v| rate("--device-write-bps", v))
            .collect::<Result<_, _>>()?,
    })
}

/// An image by name (`busybox` = `docker.io/library/busybox:latest`) or by (short) id.
fn find_image(store: &ImageStore, name: &str) -> Result<ImageRecord, Error> {
    let images = store.index().read()?;
    if let Ok(reference) = Reference::parse(name) {
        if let Some(found) = images.find_tag(&reference) {
            return Ok(found.clone());
        }
    }
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let matches: Vec<_> = images
            .iter()
            .filter(|r| r.id().hex().starts_with(hex))
            .collect();
        if let [one] = matches[..] {
            return Ok(one.clone());
        }
    }
    Err(Error::Usage(format!(
        "unable to find image '{name}' locally: load it with `berth load -i FILE` (registry pulls come later)"
    )))
}

/// Docker's rule: `--entrypoint` replaces the image's Entrypoint and drops its Cmd;
/// arguments after the image replace Cmd.
pub fn command(
    config: &Value,
    entrypoint: Option<&str>,
    args: &[String],
) -> Result<Vec<String>, Error> {
    let mut argv = match entrypoint {
        Some(e) if !e.is_empty() => vec![e.to_string()],
        Some(_) => Vec::new(),
        None => strings(&config["Entrypoint"]),
    };
    if !args.is_empty() {
        argv.extend(args.iter().cloned());
    } else if entrypoint.is_none() {
        argv.extend(strings(&config["Cmd"]));
    }
    if argv.is_empty() {
        return Err(Error::Usage("no command specified".into()));
    }
    Ok(argv)
}

/// The image's Env with `-e` applied on top (`KEY` alone copies this process's value).
pub fn environment(config: &Value, overrides: &[String]) -> Vec<String> {
    let mut env = strings(&config["Env"]);
    for o in overrides {
        let entry = match o.split_once('=') {
            Some(_) => o.clone(),
            None => match std::env::var(o) {
                Ok(v) => format!("{o}={v}"),
                Err(_) => continue,
            },
        };
        let key = entry.split('=').next().unwrap_or_default().to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(entry);
    }
    env
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn string(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// 64 random hex digits, as Docker's container ids.
fn new_container_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // RandomState is seeded from the OS's random source for each instance.
    let mut seed = Vec::new();
    for _ in 0..4 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        seed.extend_from_slice(&h.finish().to_le_bytes());
    }
    Digest::of(&seed).hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn command_follows_docker() {
        let c = json!({"Entrypoint": ["httpd", "-f"], "Cmd": ["-h", "/www"]});
        assert_eq!(
            command(&c, None, &[]).unwrap(),
            ["httpd", "-f", "-h", "/www"]
        );
        assert_eq!(
            command(&c, None, &["-p".into(), "1".into()]).unwrap(),
            ["httpd", "-f", "-p", "1"]
        );
        assert_eq!(command(&c, Some("sh"), &[]).unwrap(), ["sh"]);
        assert_eq!(
            command(&c, Some("sh"), &["-c".into(), "x".into()]).unwrap(),
            ["sh", "-c", "x"]
        );
        assert!(command(&json!({}), None, &[]).is_err());
        assert_eq!(command(&json!({"Cmd": ["sh"]}), None, &[]).unwrap(), ["sh"]);
    }

    #[test]
    fn env_overrides_replace_image_values() {
        let c = json!({"Env": ["PATH=/bin", "A=1"]});
        assert_eq!(
            environment(&c, &["A=2".into(), "B=3".into()]),
            ["PATH=/bin", "A=2", "B=3"]
        );
    }

    #[test]
    fn container_ids_are_64_hex_and_differ() {
        let (a, b) = (new_container_id(), new_container_id());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
