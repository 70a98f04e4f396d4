//! Starting a machine: the daemon is spawned detached and awaited with a deadline; only
//! `default` is created on first use.

use std::time::{Duration, Instant};

use hyper::Method;

use super::progress::StartProgress;
use super::StartArgs;
use crate::cli::api::Api;
use crate::machine::{self, MachineConfig, MachineDir};
use crate::paths::Paths;
use crate::{size, Error};

/// How long `machine start` waits for the daemon to boot the VM and answer.
const START_DEADLINE: Duration = Duration::from_secs(120);
/// How often a starting machine is checked: every cold `berth run` waits here, on average
/// half of it after the daemon answers. A check is a few syscalls (the socket, the phase
/// file, the daemon's pid).
const POLL: Duration = Duration::from_millis(2);

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
/// With `kernel` (`berth run --kernel`), a stopped machine starts on that kernel, and a
/// running one must already run it.
pub async fn ensure_running(paths: &Paths, name: &str, kernel: Option<&str>) -> Result<Api, Error> {
    let m = MachineDir::new(paths, name)?;
    if !m.exists() && m.name != machine::DEFAULT {
        return Err(machine::MachineError::NotFound(m.name).into());
    }
    let was_running = m.daemon_pid().is_some();
    let args = kernel.map(|k| StartArgs {
        kernel: Some(k.to_string()),
        ..StartArgs::default()
    });
    start(paths, &m, args.as_ref()).await?;
    if !was_running {
        super::context::offer(&m, false);
    }
    Ok(Api::new(&m.socket()))
}

/// Starts the machine's daemon unless it runs, and waits until its API answers.
pub async fn start(paths: &Paths, m: &MachineDir, args: Option<&StartArgs>) -> Result<(), Error> {
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
        let running = existing.as_ref().and_then(|c| c.kernel.clone());
        if existing.is_some() && running != cfg.kernel {
            return Err(Error::Usage(format!(
                "machine {} runs the kernel {}, not {}: `berth machine stop {}` first",
                m.name,
                running.as_deref().unwrap_or("(default)"),
                cfg.kernel.as_deref().unwrap_or("(default)"),
                m.name
            )));
        }
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
