//! One QEMU virtual machine: launch, connect to its agent with a deadline, and clean up.
//!
//! Every wait here has a deadline and checks whether QEMU died; failures name what was
//! awaited and carry the tail of the guest console and of QEMU's own output.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::accel;
use crate::client::{AgentClient, ClientError, Exec, Requests};
use crate::helper;
use crate::kernels::symbols::Symbols;
use crate::kernels::Kernel;
use crate::paths::{find_program, Paths, PathsError};
use crate::qemu::{self, Machine};
use crate::transport::{self, BoxIo, Kind, Transport, TransportError};
use berth_protocol::boot::BootParams;
use berth_protocol::{ExecSpec, HostMessage};

/// The least guest memory berth boots with: below it, kernels die before their console
/// starts (nothing to show the user), so the request is refused up front instead.
pub const MIN_MEMORY_MIB: u64 = 64;

const POLL: Duration = Duration::from_millis(10);
/// How often a VM told to power off is checked: its exit is a few milliseconds away,
/// and every `vm run` waits for it.
const EXIT_POLL: Duration = Duration::from_millis(1);
const CONSOLE_TAIL_LINES: usize = 25;
/// How long QEMU's control socket gets to say where the vCPUs are.
const QMP_DEADLINE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(
        "QEMU (qemu-system-x86_64) not found: install it (`cargo xtask deps`) or set BERTH_QEMU"
    )]
    QemuNotFound,
    #[error(
        "vhost-device-vsock not found: `cargo install vhost-device-vsock` or set BERTH_VHOST_VSOCK"
    )]
    BackendNotFound,
    #[error("cannot start {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A helper process (virtiofsd) that never listened; `log` is the end of its log.
    #[error("{what}{}", helper_log(log))]
    Helper { what: String, log: String },
    #[error("{what} did not happen within {after:?}{vcpus}{tail}")]
    Timeout {
        what: String,
        after: Duration,
        /// Where QEMU said the vCPUs were ([`crate::qmp`]).
        vcpus: String,
        tail: String,
    },
    #[error("the VM stopped ({status}) before {what}{tail}")]
    Died {
        what: String,
        status: String,
        tail: String,
    },
    #[error("the guest agent failed during {what}: {source}{tail}")]
    Agent {
        what: String,
        tail: String,
        #[source]
        source: ClientError,
    },
    #[error("--memory {0}M is below the {MIN_MEMORY_MIB}M a berth VM needs: the kernel and its initramfs must fit and unpack")]
    TooLittleMemory(u64),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Paths(#[from] PathsError),
    #[error("i/o error in the VM's run directory")]
    Io(#[from] std::io::Error),
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub kernel: Kernel,
    pub cpus: u32,
    pub memory_mib: u64,
    pub transport: Kind,
    pub machine: Machine,
    pub accel: accel::Choice,
    /// Deadline for boot + agent handshake.
    pub boot_timeout: Duration,
    /// `berth.debug=1` on the kernel command line: the agent logs more to the console.
    pub debug_guest: bool,
    /// The persistent layer-cache disk, when this VM may have it.
    pub layer_disk: Option<PathBuf>,
    /// The guest's network uplink.
    pub uplink: qemu::Uplink,
    /// Host loopback ports the agent serves inside the guest (`--forward-host-port`).
    pub host_ports: Vec<u16>,
    /// QEMU's own forwards of host loopback ports to guest ports (`vm run -p`).
    pub hostfwd: Vec<(u16, u16)>,
    /// Host folders shared with the guest (mounted by the agent at boot).
    pub shares: Vec<crate::shares::Share>,
    /// How the shares are served (virtio-9p, or virtiofs with a virtiofsd per share).
    pub share_fs: crate::shares::ShareFs,
    /// More kernel command-line arguments (`vm run --kernel-arg`, a berth.toml target's
    /// `kernel_args`), after berth's own.
    pub kernel_args: Vec<String>,
    /// The default network's bridge, which a machine's guest makes as it boots.
    pub bridge: Option<berth_protocol::boot::BootBridge>,
    /// How the guest kernel probes its devices ([`qemu::Probing`]).
    pub probing: qemu::Probing,
}

/// A running VM. Dropping it kills QEMU, drops the transport (and its backend process)
/// and removes the run directory.
pub struct Vm {
    qemu: Child,
    transport: Box<dyn Transport>,
    /// One virtiofsd per shared folder, when shares are served over virtiofs (behind a
    /// lock so that an error's [`Vm::tail`] can ask whether one ended).
    virtiofsd: std::sync::Mutex<Vec<helper::Helper>>,
    dir: PathBuf,
    logs_dir: PathBuf,
    /// Whether the VM holds anything that outlives it: the layer disk, shared folders.
    keeps_state: bool,
    /// QEMU's control socket, asked where the vCPUs are when the guest never answers.
    qmp: Option<PathBuf>,
    /// The kernel and its extra arguments, for naming the functions in that report.
    kernel: (Kernel, Vec<String>),
    /// Who waits for QEMU's end.
    reaper: Reaper,
}

impl Vm {
    /// Starts QEMU (and the vhost-user backend when that transport is used).
    pub fn launch(paths: &Paths, cfg: &VmConfig) -> Result<Vm, VmError> {
        if cfg.memory_mib < MIN_MEMORY_MIB {
            return Err(VmError::TooLittleMemory(cfg.memory_mib));
        }
        let qemu_bin =
            find_program("BERTH_QEMU", "qemu-system-x86_64", &[]).ok_or(VmError::QemuNotFound)?;
        let mut started = Started {
            dir: new_run_dir(&paths.run_dir()?)?,
            virtiofsd: Vec::new(),
            transport: None,
        };
        let dir = started.dir.clone();
        // QEMU connects to its helpers' sockets at start-up, and each helper takes a few
        // milliseconds to create its socket: the virtiofsd start while the transport's
        // backend does, and QEMU starts once all of them are listening.
        if cfg.share_fs == crate::shares::ShareFs::Virtiofs {
            spawn_virtiofsd(&cfg.shares, &dir, &mut started.virtiofsd)?;
        }
        let transport = started
            .transport
            .insert(transport::open(cfg.transport, &dir)?);
        let params = BootParams {
            transport: transport.agent_transport(),
            debug: cfg.debug_guest,
            hostname: None,
            // The layer disk is the machine's only disk, so the guest sees it first (its
            // name does not depend on the order of parallel probes: `qemu::Probing`).
            disk: cfg.layer_disk.as_ref().map(|_| "/dev/vda".to_string()),
            uplink: cfg.uplink,
            host_ports: cfg.host_ports.clone(),
            shares: cfg
                .shares
                .iter()
                .map(crate::shares::Share::boot_share)
                .collect(),
            shares_virtiofs: cfg.share_fs == crate::shares::ShareFs::Virtiofs,
            bridge: cfg.bridge.clone(),
        }
        .to_args();
        let traits = cfg.kernel.launch_traits();
        let clock = qemu::GuestClock {
            tsc_khz: accel::host_tsc_khz(),
            tick_hz: traits.tick_hz,
            takes_lapic_timer_period: traits.takes_lapic_timer_period,
        };
        let spec = qemu::Spec {
            machine: cfg.machine,
            accel: cfg.accel.accel,
            cpus: cfg.cpus,
            memory_mib: cfg.memory_mib,
            ram: qemu::Ram::for_host(),
            kernel: cfg
                .kernel
                .image(cfg.machine == Machine::Microvm)
                .to_path_buf(),
            initramfs: cfg.kernel.initramfs.clone(),
            cmdline: qemu::cmdline(
                cfg.machine,
                cfg.accel.accel,
                clock,
                cfg.probing,
                &[params.clone(), cfg.kernel_args.clone()].concat(),
            ),
            console_log: dir.join("console.log"),
            transport: transport.device(),
            disks: cfg.layer_disk.iter().cloned().collect(),
            uplink: cfg.uplink,
            hostfwd: cfg.hostfwd.clone(),
            shares: cfg.shares.clone(),
            share_fs: cfg.share_fs,
            virtiofs_dir: dir.clone(),
            // berth's QMP client is for Unix sockets only.
            qmp: cfg!(unix).then(|| dir.join("qmp.sock")),
            one_tcg_thread: qemu::one_tcg_thread(
                cfg.accel.accel,
                cfg.cpus,
                traits.patches_its_code,
            ),
            pit: qemu::needs_pit(cfg.machine, cfg.accel.accel, clock),
        };
        await_virtiofsd(&cfg.shares, &dir, &mut started.virtiofsd)?;
        let args = qemu::args(&spec);
        tracing::debug!(
            "qemu command line: {}",
            qemu::shell_line(&qemu_bin.display().to_string(), &args)
        );
        let logs_dir = paths.logs_dir()?;
        let qemu_log = std::fs::File::create(dir.join("qemu.log"))?;
        let mut cmd = Command::new(&qemu_bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(qemu_log.try_clone()?)
            .stderr(qemu_log);
        crate::sys::kill_with_parent(&mut cmd);
        let qemu = cmd.spawn().map_err(|source| VmError::Spawn {
            what: qemu_bin.display().to_string(),
            source,
        })?;
        // QEMU runs: from here the `Vm` owns the helpers and the run directory.
        let transport = started.transport.take().expect("the transport was opened");
        Ok(Vm {
            qemu,
            transport,
            virtiofsd: std::sync::Mutex::new(std::mem::take(&mut started.virtiofsd)),
            dir: std::mem::take(&mut started.dir),
            logs_dir,
            keeps_state: cfg.layer_disk.is_some() || !cfg.shares.is_empty(),
            qmp: spec.qmp,
            kernel: (cfg.kernel.clone(), cfg.kernel_args.clone()),
            reaper: Reaper::Here,
        })
    }

    /// Waits for the guest's connection and the agent's handshake, within `deadline`,
    /// failing early if QEMU exits.
    pub async fn connect(&mut self, deadline: Duration) -> Result<AgentClient, VmError> {
        let (client, ()) = self
            .connect_with(deadline, |io| async move {
                Ok((AgentClient::handshake(io, "berth").await?, ()))
            })
            .await?;
        Ok(client)
    }

    /// [`Vm::connect`], asking for a first process along with the handshake
    /// ([`AgentClient::handshake_then`]).
    pub async fn connect_then(
        &mut self,
        deadline: Duration,
        first: ExecSpec,
    ) -> Result<(AgentClient, Exec), VmError> {
        self.connect_with(deadline, |io| {
            AgentClient::handshake_then(io, "berth", first)
        })
        .await
    }

    async fn connect_with<T, F, Fut>(
        &mut self,
        deadline: Duration,
        handshake: F,
    ) -> Result<(AgentClient, T), VmError>
    where
        F: FnOnce(BoxIo) -> Fut,
        Fut: std::future::Future<Output = Result<(AgentClient, T), ClientError>>,
    {
        let what = format!("the guest agent answering over {}", self.transport.kind());
        let start = Instant::now();
        let Vm {
            qemu, transport, ..
        } = self;
        let attempt = async {
            let io = transport
                .establish()
                .await
                .map_err(|e| ClientError::Mux(e.into()))?;
            handshake(io).await
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(deadline, attempt) => r,
            status = wait_child(qemu) => {
                return Err(VmError::Died { what, status: describe_exit_text(status), tail: self.tail() });
            }
        };
        match outcome {
            Ok(Ok((client, extra))) => {
                tracing::debug!(
                    "agent answered after {:?}: {} on {}",
                    start.elapsed(),
                    client.guest.agent,
                    client.guest.kernel_release
                );
                Ok((client, extra))
            }
            Ok(Err(source)) => Err(VmError::Agent {
                what,
                tail: self.tail(),
                source,
            }),
            Err(_elapsed) => Err(VmError::Timeout {
                what,
                after: deadline,
                vcpus: self.vcpus().await,
                tail: self.tail(),
            }),
        }
    }

    /// The helpers (a virtiofsd) that have ended since the last call while QEMU runs on:
    /// the guest's requests to what they served would wait forever. (Once QEMU has ended,
    /// its helpers end with it: that is QEMU's end, reported by [`Vm::exited`].)
    pub fn lost_helpers(&mut self) -> Vec<helper::Ended> {
        if !matches!(self.reaper, Reaper::Here) || !matches!(self.qemu.try_wait(), Ok(None)) {
            return Vec::new();
        }
        helper::newly_ended(&mut self.virtiofsd.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Resolves when QEMU exits (for watching a running VM); describes how it ended.
    pub async fn exited(&mut self) -> String {
        describe_exit_text(wait_child(&mut self.qemu).await)
    }

    /// Waits for QEMU to exit by itself, up to `timeout`; kills it after that.
    pub async fn wait_exit(&mut self, timeout: Duration) -> bool {
        let exited = tokio::time::timeout(timeout, wait_child_every(&mut self.qemu, EXIT_POLL))
            .await
            .is_ok();
        if !exited {
            tracing::warn!("the VM did not power off within {timeout:?}; killing QEMU");
            let _ = self.qemu.kill();
            let _ = self.qemu.wait();
        }
        exited
    }

    /// Ends a VM whose work is done. One that keeps something (the layer disk, shared
    /// folders) powers off through its agent, which settles the disk and flushes what the
    /// guest still caches, within `timeout`. One that keeps nothing (everything it had was
    /// in its own RAM, and its command's exit and output are in) is stopped at once: the
    /// guest's shutdown would cost a round trip and the kernel's power-off path, and
    /// could lose nothing. Nor is its end waited for: the host's kernel frees the guest's
    /// memory before a killed QEMU can be reaped, which took 15-20 ms of every `vm run`
    /// on a 512M guest, and nothing left of it (it holds no disk) can be in the way of
    /// what comes next; a thread reaps it.
    pub async fn finish(&mut self, requests: &mut Requests, timeout: Duration) {
        if !self.keeps_state {
            let _ = self.qemu.kill();
            self.reaper = match reap_in_background(&mut self.qemu) {
                Some(thread) => Reaper::Thread(thread),
                None => Reaper::Done,
            };
        } else if requests.send(&HostMessage::PowerOff).await.is_ok() {
            self.wait_exit(timeout).await;
        }
    }

    /// Waits until a VM that [`Vm::finish`] stopped has ended (its memory freed), for one
    /// who starts another VM next and must not run two at once (the `vm run` matrix).
    pub fn wait_ended(&mut self) {
        if let Reaper::Thread(reaper) = std::mem::replace(&mut self.reaper, Reaper::Done) {
            let _ = reaper.join();
        }
    }

    /// Where QEMU says the guest's vCPUs are, with the kernel's function names when its
    /// symbols are known: for a guest that never answered (stuck in the kernel, or idle
    /// while its init waits). Empty where QEMU has no control socket.
    async fn vcpus(&self) -> String {
        let Some(socket) = &self.qmp else {
            return String::new();
        };
        let report = match crate::qmp::report(socket, QMP_DEADLINE).await {
            Ok(report) => report,
            Err(e) => {
                return format!("\n--- where the guest's vCPUs were ---\n(QEMU did not say: {e})")
            }
        };
        let (kernel, args) = &self.kernel;
        let symbols = match kernel.symbols(args).map(Path::to_path_buf) {
            Ok(path) => tokio::task::spawn_blocking(move || Symbols::from_file(&path))
                .await
                .unwrap_or_else(|e| Err(e.to_string())),
            Err(why) => Err(why.to_string()),
        };
        match symbols {
            Ok(s) => report.describe(&|addr| s.name(addr), None),
            Err(why) => report.describe(&|_| None, Some(&why)),
        }
    }

    /// The last lines of the guest console and of QEMU's output, for error messages. The
    /// console is also copied to the logs directory so it outlives the run directory.
    pub fn tail(&self) -> String {
        let console = self.dir.join("console.log");
        let kept = self.logs_dir.join(format!(
            "{}-console.log",
            self.dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        let _ = std::fs::copy(&console, &kept);
        let mut out = format!(
            "\n--- last lines of the guest console (kept in {}) ---\n",
            kept.display()
        );
        let lines = last_lines(&console, CONSOLE_TAIL_LINES);
        if lines.trim().is_empty() {
            out.push_str("(empty: the kernel stopped before its console started)\n");
        } else {
            out.push_str(&lines);
        }
        let qemu_out = last_lines(&self.dir.join("qemu.log"), 10);
        if !qemu_out.trim().is_empty() {
            out.push_str("--- QEMU said ---\n");
            out.push_str(&qemu_out);
        }
        out.push_str(&self.transport.diagnostics());
        out.push_str(&helper::ended(
            &mut self.virtiofsd.lock().unwrap_or_else(|p| p.into_inner()),
            10,
        ));
        out.trim_end().to_string()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Reaper::Here = self.reaper {
            if let Ok(None) = self.qemu.try_wait() {
                let _ = self.qemu.kill();
            }
            let _ = self.qemu.wait();
        }
        helper::stop_all(self.virtiofsd.get_mut().unwrap_or_else(|p| p.into_inner()));
        // The vhost-user backend listens again on its socket once QEMU is gone: stop it
        // first, or it can put a file into the directory while it is being removed.
        self.transport.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a launch has started so far. Until QEMU runs and a [`Vm`] owns them, dropping
/// this (a launch that failed) stops the helpers and removes the run directory, as
/// dropping a `Vm` does.
struct Started {
    dir: PathBuf,
    virtiofsd: Vec<helper::Helper>,
    transport: Option<Box<dyn Transport>>,
}

impl Drop for Started {
    fn drop(&mut self) {
        helper::stop_all(&mut self.virtiofsd);
        if let Some(transport) = self.transport.as_mut() {
            transport.stop();
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// How long a virtiofsd gets to create its socket.
const VIRTIOFSD_DEADLINE: Duration = Duration::from_secs(10);

/// Starts a virtiofsd for each share into `started`, listening on
/// `qemu::virtiofs_socket(dir, tag)` (QEMU connects at start-up, so each socket must
/// exist first: [`await_virtiofsd`]). `--sandbox none`: it runs as the user, with the
/// user's access to the folder, as QEMU's 9p server does. None is waited for here, so
/// their start-ups overlap each other's and the transport backend's.
fn spawn_virtiofsd(
    shares: &[crate::shares::Share],
    dir: &Path,
    started: &mut Vec<helper::Helper>,
) -> Result<(), VmError> {
    let bin = crate::shares::virtiofsd().ok_or_else(|| VmError::Spawn {
        what: "virtiofsd".into(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not installed (`cargo install virtiofsd`, or set BERTH_VIRTIOFSD)",
        ),
    })?;
    for s in shares {
        let socket = qemu::virtiofs_socket(dir, &s.tag);
        let log_path = virtiofsd_log(dir, &s.tag);
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--socket-path")
            .arg(&socket)
            .arg("--shared-dir")
            .arg(&s.path)
            .args(["--sandbox", "none", "--cache", "never", "--allow-mmap"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        crate::sys::kill_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|source| VmError::Spawn {
            what: bin.display().to_string(),
            source,
        })?;
        started.push(helper::Helper::new(
            child,
            format!("virtiofsd for {}", s.path.display()),
            s.tag.clone(),
            log_path,
        ));
    }
    Ok(())
}

/// Waits until each virtiofsd that [`spawn_virtiofsd`] started has created its socket, for
/// up to [`VIRTIOFSD_DEADLINE`] in all; the error names the share and ends with the
/// helper's log (the caller's [`Started`] stops them all).
fn await_virtiofsd(
    shares: &[crate::shares::Share],
    dir: &Path,
    started: &mut [helper::Helper],
) -> Result<(), VmError> {
    let deadline = Instant::now() + VIRTIOFSD_DEADLINE;
    for (s, h) in shares.iter().zip(started.iter_mut()) {
        let socket = qemu::virtiofs_socket(dir, &s.tag);
        if let Err(failed) =
            helper::await_socket(&mut h.child, &socket, deadline, Duration::from_millis(2))
        {
            return Err(VmError::Helper {
                what: failed.describe(&h.name, &socket, VIRTIOFSD_DEADLINE),
                log: last_lines(&h.log, 10),
            });
        }
    }
    Ok(())
}

/// Where the virtiofsd for the share `tag` writes its output, in the VM's run directory.
fn virtiofsd_log(dir: &Path, tag: &str) -> PathBuf {
    dir.join(format!("{tag}.virtiofsd.log"))
}

/// Who waits for a VM's QEMU to end.
enum Reaper {
    /// `Drop` (killing it first if it still runs).
    Here,
    /// A thread that [`Vm::finish`] started after killing it: nothing else may signal or
    /// wait for its process id again.
    Thread(std::thread::JoinHandle<()>),
    /// Nobody: it was reaped.
    Done,
}

/// Reaps a killed child on a thread of its own, returned (else, `None`, the child was
/// waited for here). Unix only: elsewhere the child is waited for at once.
fn reap_in_background(child: &mut Child) -> Option<std::thread::JoinHandle<()>> {
    #[cfg(unix)]
    {
        let pid = child.id();
        let reaper = std::thread::Builder::new()
            .name("reap-qemu".into())
            .spawn(move || crate::sys::reap(pid));
        if let Ok(reaper) = reaper {
            return Some(reaper);
        }
    }
    let _ = child.wait();
    None
}

/// QEMU exits 0 when the guest reboots or powers off (-no-reboot), so before the agent
/// answered that means the kernel panicked or gave up.
fn describe_exit_text(status: String) -> String {
    if status == "exit status: 0" {
        "the guest kernel panicked or rebooted".into()
    } else {
        format!("QEMU {status}")
    }
}

/// Polls a child until it exits; returns its status as text.
async fn wait_child(child: &mut Child) -> String {
    wait_child_every(child, POLL).await
}

async fn wait_child_every(child: &mut Child, poll: Duration) -> String {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.to_string(),
            Ok(None) => tokio::time::sleep(poll).await,
            Err(e) => return format!("unknown status: {e}"),
        }
    }
}

/// A helper's log for an error: its last lines, when it wrote any.
fn helper_log(log: &str) -> String {
    match log.trim_end() {
        "" => String::new(),
        log => format!("\n--- its log ---\n{log}"),
    }
}

/// A unique, short run directory (unix socket paths are limited to ~100 bytes).
fn new_run_dir(run: &Path) -> Result<PathBuf, VmError> {
    for attempt in 0..100u32 {
        let id = format!(
            "{:x}{:04x}",
            std::process::id(),
            unique_u32().wrapping_add(attempt) & 0xffff
        );
        let dir = run.join(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::other("cannot create a unique run directory").into())
}

fn unique_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// The last `n` lines of a text file (empty when it cannot be read).
pub fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_takes_the_end() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("c.log");
        std::fs::write(&f, "a\nb\nc\nd\n").unwrap();
        assert_eq!(last_lines(&f, 2), "c\nd\n");
        assert_eq!(last_lines(&tmp.path().join("missing"), 2), "\n");
    }

    #[test]
    fn run_dirs_are_unique() {
        let tmp = tempfile::tempdir().unwrap();
        let a = new_run_dir(tmp.path()).unwrap();
        let b = new_run_dir(tmp.path()).unwrap();
        assert_ne!(a, b);
    }
}
