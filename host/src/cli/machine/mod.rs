//! `berth machine start|stop|ls|rm|socket`: persistent machines, each owned by a daemon
//! (`berthd`) that serves the Docker Engine API on the machine's socket.
//!
//! `start.rs` starts a daemon and waits for it (`progress.rs` shows what it is doing),
//! `remove.rs` is `machine rm`, `context.rs` the docker CLI context of each machine.

mod context;
mod progress;
mod remove;
mod start;

use std::io::Write;
use std::time::{Duration, Instant};

use hyper::Method;

use super::api::Api;
use super::select::Selection;
use super::Format;
use crate::machine::{self, MachineConfig, MachineDir};
use crate::paths::Paths;
use crate::Error;

pub use start::ensure_running;
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
    /// Remove a machine and its disk (its containers, their logs and its volumes).
    Rm(RmArgs),
    /// Print the path of a machine's API socket (for DOCKER_HOST=unix://...).
    Socket(NameArg),
}

/// Help for every verb's NAME.
const NAME_HELP: &str = "The machine (default: --machine, else $BERTH_MACHINE, else `default`)";

#[derive(Debug, clap::Args)]
pub struct NameArg {
    #[arg(help = NAME_HELP)]
    pub(super) name: Option<String>,
}

#[derive(Debug, Default, clap::Args)]
pub struct StartArgs {
    #[arg(help = NAME_HELP)]
    pub(super) name: Option<String>,
    /// Virtual CPUs.
    #[arg(long)]
    pub(super) cpus: Option<u32>,
    /// Memory (`1G`, `768M`).
    #[arg(long)]
    pub(super) memory: Option<String>,
    /// Size of the persistent disk (`16G`); only when the disk is first made.
    #[arg(long)]
    pub(super) disk: Option<String>,
    /// Kernel: a name from `berth kernel ls`, or a path (default: $BERTH_KERNEL, else the
    /// newest installed).
    #[arg(long)]
    pub(super) kernel: Option<String>,
    /// How the host reaches the VM: auto, vsock, vhost-user or serial.
    #[arg(long)]
    pub(super) transport: Option<String>,
    /// The guest's uplink (QEMU user networking): `open` (containers reach what the host
    /// reaches; the default, or $BERTH_UPLINK), `restricted` (nothing leaves the machine
    /// except forwarded host ports) or `none`.
    #[arg(long)]
    pub(super) uplink: Option<String>,
    /// A TCP port of the host's loopback that containers reach as
    /// `host.berth.internal:PORT` (carried over berth's own transport, so it works with
    /// a restricted uplink). Repeatable; replaces the machine's list.
    #[arg(long = "forward-host-port", value_name = "PORT")]
    pub(super) forward_host_port: Vec<u16>,
    /// Share a host folder with the machine (for `-v DIR:/path`), besides the home and
    /// temp folders it shares by default; repeatable, kept for later starts.
    #[arg(long, value_name = "DIR")]
    pub(super) share: Vec<std::path::PathBuf>,
    /// How shared folders reach the guest: `auto` (virtiofs where virtiofsd is installed,
    /// else 9p), `9p` (QEMU's own server; every host OS) or `virtiofs` (kernels without 9p).
    #[arg(long, value_name = "FS")]
    pub(super) share_fs: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    #[arg(help = NAME_HELP)]
    pub(super) name: Option<String>,
    /// Seconds containers get to stop before they are killed.
    #[arg(short, long, default_value_t = 10)]
    pub(super) time: u64,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    #[arg(help = NAME_HELP)]
    pub(super) name: Option<String>,
    /// Stop it first when it runs, and delete its volumes without asking.
    #[arg(short, long)]
    pub(super) force: bool,
}

pub fn run(cmd: Command, sel: &Selection) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    match cmd {
        Command::Start(a) => {
            let m = MachineDir::new(&paths, &sel.for_verb(a.name.as_deref())?)?;
            let was_running = m.daemon_pid().is_some();
            super::block_on(start::start(&paths, &m, Some(&a)))?;
            match was_running {
                true => println!("machine {} is already running", m.name),
                false => println!("machine {} is running", m.name),
            }
            context::offer(&m, true);
            Ok(0)
        }
        Command::Stop(a) => {
            let m = existing(&paths, sel, a.name.as_deref())?;
            match super::block_on(stop(&m, a.time))? {
                true => println!("machine {} stopped", m.name),
                false => println!("machine {} is not running", m.name),
            }
            Ok(0)
        }
        Command::Ls(a) => ls(&paths, a.format),
        Command::Rm(a) => remove::rm(&paths, sel, a),
        Command::Socket(a) => {
            let m = existing(&paths, sel, a.name.as_deref())?;
            println!("{}", m.socket().display());
            Ok(0)
        }
    }
}

/// The machine a verb names, which must exist.
fn existing(paths: &Paths, sel: &Selection, named: Option<&str>) -> Result<MachineDir, Error> {
    let m = MachineDir::new(paths, &sel.for_verb(named)?)?;
    if !m.exists() {
        return Err(machine::MachineError::NotFound(m.name).into());
    }
    Ok(m)
}

/// Stops the machine's daemon; false when it was not running.
pub(super) async fn stop(m: &MachineDir, timeout: u64) -> Result<bool, Error> {
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
