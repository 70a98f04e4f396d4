//! `berth machine start|stop|ls|rm|socket`: persistent machines, each owned by a daemon
//! (`berthd`) that serves the Docker Engine API on the machine's socket.

use std::io::Write;
use std::time::{Duration, Instant};

use hyper::Method;

use super::api::Api;
use super::Format;
use crate::machine::{self, MachineConfig, MachineDir};
use crate::paths::Paths;
use crate::{size, Error};

/// How long `machine start` waits for the daemon to boot the VM and answer.
const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long `machine stop` waits beyond the containers' stop timeout.
const STOP_GRACE: Duration = Duration::from_secs(40);
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start a machine (boot its VM and its daemon); flags change its settings.
    Start(StartArgs),
    /// Stop a machine: its containers get SIGTERM, then SIGKILL after -t seconds.
    Stop(StopArgs),
    /// List machines.
    Ls(LsArgs),
    /// Remove a machine and its disk (its containers and their logs).
    Rm(RmArgs),
    /// Print the path of a machine's API socket (for DOCKER_HOST=unix://...).
    Socket(NameArg),
}

#[derive(Debug, clap::Args)]
pub struct NameArg {
    /// The machine (default: `default`).
    #[arg(default_value = machine::DEFAULT)]
    name: String,
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    #[arg(default_value = machine::DEFAULT)]
    name: String,
    /// Virtual CPUs.
    #[arg(long)]
    cpus: Option<u32>,
    /// Memory (`1G`, `768M`).
    #[arg(long)]
    memory: Option<String>,
    /// Size of the persistent disk (`16G`); only when the disk is first made.
    #[arg(long)]
    disk: Option<String>,
    /// Kernel: a name from `berth kernel ls`, or a path (default: $BERTH_KERNEL, else the
    /// newest installed).
    #[arg(long)]
    kernel: Option<String>,
    /// How the host reaches the VM: auto, vsock, vhost-user or serial.
    #[arg(long)]
    transport: Option<String>,
    /// The guest's uplink (QEMU user networking): `open` (containers reach what the host
    /// reaches; the default, or $BERTH_UPLINK), `restricted` (nothing leaves the machine
    /// except forwarded host ports) or `none`.
    #[arg(long)]
    uplink: Option<String>,
    /// A TCP port of the host's loopback that containers reach as
    /// `host.berth.internal:PORT` (carried over berth's own transport, so it works with
    /// a restricted uplink). Repeatable; replaces the machine's list.
    #[arg(long = "forward-host-port", value_name = "PORT")]
    forward_host_port: Vec<u16>,
    /// Share a host folder with the machine (for `-v DIR:/path`), besides the home and
    /// temp folders it shares by default; repeatable, kept for later starts.
    #[arg(long, value_name = "DIR")]
    share: Vec<std::path::PathBuf>,
    /// How shared folders reach the guest: `auto` (virtiofs where virtiofsd is installed,
    /// else 9p), `9p` (QEMU's own server; every host OS) or `virtiofs` (kernels without 9p).
    #[arg(long, value_name = "FS")]
    share_fs: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    #[arg(default_value = machine::DEFAULT)]
    name: String,
    /// Seconds containers get to stop before they are killed.
    #[arg(short, long, default_value_t = 10)]
    time: u64,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    #[arg(default_value = machine::DEFAULT)]
    name: String,
    /// Stop it first when it runs.
    #[arg(short, long)]
    force: bool,
}

pub fn run(cmd: Command) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    match cmd {
        Command::Start(a) => {
            let m = MachineDir::new(&paths, &a.name)?;
            let was_running = m.daemon_pid().is_some();
            super::block_on(start(&paths, &m, Some(&a)))?;
            match was_running {
                true => println!("machine {} is already running", m.name),
                false => println!("machine {} is running", m.name),
            }
            Ok(0)
        }
        Command::Stop(a) => {
            let m = MachineDir::new(&paths, &a.name)?;
            if !m.exists() {
                return Err(machine::MachineError::NotFound(m.name).into());
            }
            match super::block_on(stop(&m, a.time))? {
                true => println!("machine {} stopped", m.name),
                false => println!("machine {} is not running", m.name),
            }
            Ok(0)
        }
        Command::Ls(a) => ls(&paths, a.format),
        Command::Rm(a) => {
            let m = MachineDir::new(&paths, &a.name)?;
            if !m.exists() {
                return Err(machine::MachineError::NotFound(m.name).into());
            }
            if m.daemon_pid().is_some() {
                if !a.force {
                    return Err(Error::Usage(format!(
                        "machine {} is running: stop it first or use --force",
                        m.name
                    )));
                }
                super::block_on(stop(&m, 0))?;
            }
            std::fs::remove_dir_all(&m.dir)?;
            println!("{}", m.name);
            Ok(0)
        }
        Command::Socket(a) => {
            let m = MachineDir::new(&paths, &a.name)?;
            println!("{}", m.socket().display());
            Ok(0)
        }
    }
}

/// Adds `dirs` (made canonical; each must be a folder) to the machine's shares.
fn add_shares(cfg: &mut MachineConfig, dirs: &[std::path::PathBuf]) -> Result<(), Error> {
    for d in dirs {
        let canon = std::fs::canonicalize(d)
            .map_err(|e| Error::Usage(format!("--share {}: {e}", d.display())))?;
        if !canon.is_dir() {
            return Err(Error::Usage(format!(
                "--share {}: not a directory",
                d.display()
            )));
        }
        if !cfg.shares.contains(&canon) {
            cfg.shares.push(canon);
        }
    }
    Ok(())
}

/// The API of machine `name`, starting the machine when it is not running.
pub async fn ensure_running(paths: &Paths, name: &str) -> Result<Api, Error> {
    let m = MachineDir::new(paths, name)?;
    start(paths, &m, None).await?;
    Ok(Api::new(&m.socket()))
}

/// Starts the machine's daemon unless it runs, and waits until its API answers.
async fn start(paths: &Paths, m: &MachineDir, args: Option<&StartArgs>) -> Result<(), Error> {
    let api = Api::new(&m.socket());
    let existing = m.read_config().ok();
    let mut cfg = existing.clone().unwrap_or_else(|| MachineConfig {
        kernel: std::env::var("BERTH_KERNEL").ok().filter(|k| !k.is_empty()),
        ..MachineConfig::default()
    });
    if let Some(a) = args {
        if let Some(c) = a.cpus {
            if c == 0 {
                return Err(Error::Usage("--cpus must be at least 1".into()));
            }
            cfg.cpus = c;
        }
        if let Some(mem) = &a.memory {
            cfg.memory_mib = size::parse_mib(mem).map_err(Error::Usage)?;
        }
        if let Some(d) = &a.disk {
            cfg.disk_bytes = size::parse_bytes(d).map_err(Error::Usage)?;
        }
        if a.kernel.is_some() {
            cfg.kernel = a.kernel.clone();
        }
        if let Some(t) = &a.transport {
            crate::transport::choose(t)?;
            cfg.transport = t.clone();
        }
        if let Some(u) = &a.uplink {
            if crate::qemu::Uplink::parse(u).is_none() {
                return Err(Error::Usage(format!(
                    "--uplink {u:?}: expected open, restricted or none"
                )));
            }
            cfg.uplink = u.clone();
        }
        if !a.forward_host_port.is_empty() {
            if a.forward_host_port.contains(&0) {
                return Err(Error::Usage(
                    "--forward-host-port 0: give a port number".into(),
                ));
            }
            cfg.forward_host_ports = a.forward_host_port.clone();
        }
        add_shares(&mut cfg, &a.share)?;
        if let Some(fs) = &a.share_fs {
            crate::shares::ShareFs::choose(fs).map_err(Error::Usage)?;
            cfg.share_fs = fs.clone();
        }
    }
    if let Some(pid) = m.daemon_pid() {
        if existing.as_ref() != Some(&cfg) {
            return Err(Error::Usage(format!(
                "machine {} is running (daemon pid {pid}): stop it to change its settings",
                m.name
            )));
        }
        return wait_ready(&api, m, pid, START_DEADLINE).await;
    }
    // Checked here so a bad kernel is a clear error before anything starts.
    crate::kernels::resolve(&paths.assets, cfg.kernel.as_deref())?;
    if cfg.memory_mib < crate::vm::MIN_MEMORY_MIB {
        return Err(crate::vm::VmError::TooLittleMemory(cfg.memory_mib).into());
    }
    std::fs::create_dir_all(&m.dir)?;
    m.write_config(&cfg)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(m.log_file())?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("daemon")
        .arg(&m.name)
        .env("BERTH_HOME", &paths.home)
        .env("BERTH_ASSETS", &paths.assets)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if std::env::var_os("BERTH_LOG").is_none() {
        cmd.env("BERTH_LOG", "berth=info");
    }
    crate::sys::detach(&mut cmd);
    let child = cmd.spawn()?;
    let pid = child.id();
    // The daemon outlives us; reap it in the background should it end while we wait.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    wait_ready(&api, m, pid, START_DEADLINE).await
}

async fn wait_ready(api: &Api, m: &MachineDir, pid: u32, deadline: Duration) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        if m.socket().exists() && api.call_status(Method::GET, "/_ping").await.is_ok() {
            return Ok(());
        }
        if !machine::process_alive(pid) {
            return Err(Error::Daemon(format!(
                "the daemon of machine {} stopped before it answered; the end of {}:\n{}",
                m.name,
                m.log_file().display(),
                crate::vm::last_lines(&m.log_file(), 30).trim_end()
            )));
        }
        if started.elapsed() > deadline {
            return Err(Error::Daemon(format!(
                "machine {} did not answer on {} within {deadline:?}; the end of {}:\n{}",
                m.name,
                m.socket().display(),
                m.log_file().display(),
                crate::vm::last_lines(&m.log_file(), 30).trim_end()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Stops the machine's daemon; false when it was not running.
async fn stop(m: &MachineDir, timeout: u64) -> Result<bool, Error> {
    let Some(pid) = m.daemon_pid() else {
        return Ok(false);
    };
    let api = Api::new(&m.socket());
    let asked = api
        .call(
            Method::POST,
            &format!("/berth/machine/stop?t={timeout}"),
            None,
        )
        .await;
    if let Err(e) = &asked {
        tracing::warn!("asking the daemon to stop: {e}; sending SIGTERM");
        #[cfg(unix)]
        crate::sys::signal_process(pid, libc::SIGTERM);
    }
    let deadline = Duration::from_secs(timeout) + STOP_GRACE;
    let started = Instant::now();
    while machine::process_alive(pid) {
        if started.elapsed() > deadline {
            eprintln!(
                "berth: the daemon of machine {} did not stop within {deadline:?}; killing it",
                m.name
            );
            #[cfg(unix)]
            crate::sys::signal_process(pid, libc::SIGKILL);
            tokio::time::sleep(Duration::from_millis(500)).await;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let _ = std::fs::remove_file(m.socket());
    Ok(true)
}

fn ls(paths: &Paths, format: Format) -> Result<i32, Error> {
    let rows: Vec<(MachineDir, Option<MachineConfig>, bool)> = machine::list(paths)
        .into_iter()
        .map(|m| {
            let cfg = m.read_config().ok();
            let running = m.daemon_pid().is_some();
            (m, cfg, running)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let list: Vec<_> = rows
                .iter()
                .map(|(m, cfg, running)| {
                    serde_json::json!({
                        "name": m.name,
                        "running": running,
                        "config": cfg,
                        "socket": m.socket(),
                    })
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            )?;
        }
        Format::Table => {
            writeln!(
                out,
                "{:<16} {:<9} {:>4} {:>8} {:<12} SOCKET",
                "NAME", "STATUS", "CPUS", "MEMORY", "KERNEL"
            )?;
            for (m, cfg, running) in rows {
                let cfg = cfg.unwrap_or_default();
                writeln!(
                    out,
                    "{:<16} {:<9} {:>4} {:>7}M {:<12} {}",
                    m.name,
                    if running { "running" } else { "stopped" },
                    cfg.cpus,
                    cfg.memory_mib,
                    cfg.kernel.as_deref().unwrap_or("(default)"),
                    m.socket().display()
                )?;
            }
        }
    }
    Ok(0)
}
