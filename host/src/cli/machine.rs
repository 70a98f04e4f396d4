//! `berth machine start|stop|ls|rm|socket`: persistent machines, each owned by a daemon
//! (`berthd`) that serves the Docker Engine API on the machine's socket.

use std::io::Write;
use std::time::{Duration, Instant};

use hyper::Method;

use super::api::Api;
use super::select::Selection;
use super::Format;
use crate::docker_context::{self, DockerConfig, Written};
use crate::machine::{self, MachineConfig, MachineDir, Phase};
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
    name: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    #[arg(help = NAME_HELP)]
    name: Option<String>,
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
    #[arg(help = NAME_HELP)]
    name: Option<String>,
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
    #[arg(help = NAME_HELP)]
    name: Option<String>,
    /// Stop it first when it runs, and delete its volumes without asking.
    #[arg(short, long)]
    force: bool,
}

pub fn run(cmd: Command, sel: &Selection) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    match cmd {
        Command::Start(a) => {
            let m = MachineDir::new(&paths, &sel.for_verb(a.name.as_deref())?)?;
            let was_running = m.daemon_pid().is_some();
            super::block_on(start(&paths, &m, Some(&a)))?;
            match was_running {
                true => println!("machine {} is already running", m.name),
                false => println!("machine {} is running", m.name),
            }
            offer_context(&m, true);
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
        Command::Rm(a) => rm(&paths, sel, a),
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

/// `machine rm`: refused while the machine runs unless `-f`; a disk that holds volumes is
/// deleted only after a yes on a terminal, or with `-f`.
fn rm(paths: &Paths, sel: &Selection, a: RmArgs) -> Result<i32, Error> {
    let m = existing(paths, sel, a.name.as_deref())?;
    let running = m.daemon_pid().is_some();
    if running && !a.force {
        return Err(Error::Usage(format!(
            "machine {} is running: stop it first (`berth machine stop {}`) or use --force",
            m.name, m.name
        )));
    }
    let volumes = m.volume_names();
    if !volumes.is_empty() && !a.force {
        let what = format!(
            "machine {}'s disk holds {} volume{} ({})",
            m.name,
            volumes.len(),
            if volumes.len() == 1 { "" } else { "s" },
            volumes.join(", ")
        );
        if !super::prompt::interactive() {
            return Err(Error::Usage(format!(
                "{what}: use --force to delete them with the machine"
            )));
        }
        let them = if volumes.len() == 1 { "it" } else { "them" };
        if !super::prompt::confirm(&format!("{what}. Delete {them} with the machine?"))? {
            eprintln!("machine {} kept", m.name);
            return Ok(1);
        }
    }
    if running {
        super::block_on(stop(&m, 0))?;
    }
    std::fs::remove_dir_all(&m.dir)?;
    if let Some(docker) = DockerConfig::from_env() {
        let name = docker_context::context_name(&m.name);
        match docker.remove(&name) {
            Ok(true) => eprintln!("removed the docker CLI context {name}"),
            Ok(false) => {}
            Err(e) => eprintln!("berth: removing the docker CLI context {name}: {e}"),
        }
    }
    println!("{}", m.name);
    Ok(0)
}

/// Writes the machine's docker CLI context and, the first time, offers to make it the
/// docker CLI's current one: asks when `ask` and a person is at a terminal, else says how.
fn offer_context(m: &MachineDir, ask: bool) {
    let Some(docker) = DockerConfig::from_env() else {
        return;
    };
    let name = docker_context::context_name(&m.name);
    match docker.write(&name, &m.name, &m.socket()) {
        Ok(Written::Created) => {}
        Ok(Written::Updated | Written::Unchanged) => return,
        Ok(Written::Foreign) => {
            eprintln!(
                "berth: the docker CLI has a context named {name} that berth did not write; left it alone"
            );
            return;
        }
        Err(e) => {
            eprintln!("berth: writing the docker CLI context {name}: {e}");
            return;
        }
    }
    if docker.current().as_deref() == Some(name.as_str()) {
        return;
    }
    let question = format!(
        "Wrote the docker CLI context {name} (machine {}). Make it the docker CLI's current context?",
        m.name
    );
    if ask && super::prompt::interactive() {
        match super::prompt::confirm(&question) {
            Ok(true) => match docker.set_current(Some(&name)) {
                Ok(()) => eprintln!("the docker CLI now uses {name}"),
                Err(e) => eprintln!("berth: setting the docker CLI context: {e}"),
            },
            Ok(false) => eprintln!("`docker context use {name}` makes it current later"),
            Err(e) => eprintln!("berth: {e}"),
        }
    } else {
        eprintln!(
            "wrote the docker CLI context {name}: `docker --context {name} ps`, or `docker context use {name}` to make it current"
        );
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

/// The API of machine `name`, starting the machine when it is not running. Only
/// `default` is created on first use; any other machine must have been made with
/// `berth machine start NAME`, so a typo never boots a new machine.
pub async fn ensure_running(paths: &Paths, name: &str) -> Result<Api, Error> {
    let m = MachineDir::new(paths, name)?;
    if !m.exists() && m.name != machine::DEFAULT {
        return Err(machine::MachineError::NotFound(m.name).into());
    }
    start(paths, &m, None).await?;
    offer_context(&m, false);
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
            let bytes = size::parse_bytes(d).map_err(Error::Usage)?;
            if bytes < machine::MIN_DISK_BYTES {
                return Err(Error::Usage(format!(
                    "--disk {d}: a machine's disk must be at least {} MiB",
                    machine::MIN_DISK_BYTES >> 20
                )));
            }
            if m.disk().exists() && bytes != cfg.disk_bytes {
                return Err(Error::Usage(format!(
                    "--disk {d}: machine {} already has its disk ({} MiB), which cannot be resized; `berth machine rm {}` makes a new one",
                    m.name,
                    cfg.disk_bytes >> 20,
                    m.name
                )));
            }
            cfg.disk_bytes = bytes;
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
        return wait_ready(&api, m, pid, START_DEADLINE, &mut StartProgress::quiet(m)).await;
    }
    // Checked here so a bad kernel is a clear error before anything starts.
    crate::kernels::resolve(&paths.assets, cfg.kernel.as_deref())?;
    if cfg.memory_mib < crate::vm::MIN_MEMORY_MIB {
        return Err(crate::vm::VmError::TooLittleMemory(cfg.memory_mib).into());
    }
    match existing.is_some() {
        true => eprintln!("starting machine {} ...", m.name),
        false => eprintln!(
            "creating machine {} ({} CPUs, {} MiB memory, {} MiB disk) ...",
            m.name,
            cfg.cpus,
            cfg.memory_mib,
            cfg.disk_bytes >> 20
        ),
    }
    std::fs::create_dir_all(&m.dir)?;
    m.write_config(&cfg)?;
    let _ = std::fs::remove_file(m.phase_file());
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
    let mut progress = StartProgress::new(m);
    let ready = wait_ready(&api, m, pid, START_DEADLINE, &mut progress).await;
    progress.finish(ready.is_ok());
    ready
}

async fn wait_ready(
    api: &Api,
    m: &MachineDir,
    pid: u32,
    deadline: Duration,
    progress: &mut StartProgress,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut pid = pid;
    loop {
        if m.socket().exists() && api.call_status(Method::GET, "/_ping").await.is_ok() {
            return Ok(());
        }
        progress.update(m.read_phase());
        if !machine::process_alive(pid) {
            // Another command started the machine at the same moment and its daemon took
            // the lock: wait for that one.
            if let Some(other) = m.daemon_pid().filter(|p| *p != pid) {
                pid = other;
                continue;
            }
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

/// What a starting machine is doing, on stderr: a spinner with the phase on a terminal,
/// a line per phase otherwise.
struct StartProgress {
    name: String,
    started: Instant,
    phase: Option<Phase>,
    spinner: Option<indicatif::ProgressBar>,
    quiet: bool,
}

impl StartProgress {
    fn new(m: &MachineDir) -> StartProgress {
        let spinner = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let s = indicatif::ProgressBar::new_spinner();
            s.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            s.set_message(format!("machine {}: starting the daemon", m.name));
            s.enable_steady_tick(Duration::from_millis(120));
            s
        });
        StartProgress {
            name: m.name.clone(),
            started: Instant::now(),
            phase: None,
            spinner,
            quiet: false,
        }
    }

    /// For a machine that is already starting (another command started it): no output.
    fn quiet(m: &MachineDir) -> StartProgress {
        StartProgress {
            name: m.name.clone(),
            started: Instant::now(),
            phase: None,
            spinner: None,
            quiet: true,
        }
    }

    fn update(&mut self, phase: Option<Phase>) {
        if self.quiet || phase.is_none() || phase == self.phase {
            return;
        }
        self.phase = phase;
        let Some(p) = phase else { return };
        let text = format!("machine {}: {}", self.name, p.describe());
        match &self.spinner {
            Some(s) => s.set_message(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&mut self, ok: bool) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
        if ok && !self.quiet {
            eprintln!(
                "machine {} started in {:.1}s",
                self.name,
                self.started.elapsed().as_secs_f64()
            );
        }
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
