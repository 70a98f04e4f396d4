//! `berth vm run`: boot a fresh VM, run one command directly in the guest, power off.

use std::time::Duration;

use berth_protocol::{ExecSpec, GuestMessage, HostMessage};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::signals::Forwarder;
use super::terminal::{self, RawMode, Resizes};
use crate::client::ClientError;
use crate::paths::Paths;
use crate::qemu::Machine;
use crate::vm::{Vm, VmConfig, VmError};
use crate::{accel, kernels, size, transport, Error};

/// How long output may still be arriving after the agent reported the exit.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the guest gets to power off before QEMU is killed.
const POWER_OFF_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kernel to boot: a name from `berth kernel ls`, or a path to a kernel image. Several
    /// (`6.1,6.12,cloud`) run the command on each and print a kernel × result table.
    #[arg(long)]
    kernel: Option<String>,
    /// Targets from a berth.toml (`[[target]]` tables: name, kernel, cpus, memory,
    /// kernel_args, command), run in turn as a matrix.
    #[arg(long, value_name = "FILE", conflicts_with = "kernel")]
    config: Option<std::path::PathBuf>,
    /// The matrix's output: table, or json (one object per target).
    #[arg(long, value_enum, default_value_t)]
    format: super::Format,
    /// Also write the matrix's results as JUnit XML.
    #[arg(long, value_name = "FILE")]
    junit: Option<std::path::PathBuf>,
    /// One more kernel command-line argument (repeatable).
    #[arg(long = "kernel-arg", value_name = "ARG")]
    kernel_args: Vec<String>,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    cpus: u32,
    /// Guest memory, e.g. 512M or 2G.
    #[arg(long, default_value = "512M")]
    memory: String,
    /// How the host reaches the guest: auto, vsock, vhost-user or serial.
    #[arg(long, default_value = "auto")]
    transport: String,
    /// QEMU machine type: microvm (PVH boot, virtio-mmio) or pc (BIOS, virtio-pci).
    #[arg(long, value_name = "TYPE", default_value = "microvm")]
    machine_type: String,
    /// Seconds to wait for the VM to boot and its agent to answer.
    #[arg(long, default_value_t = 30)]
    boot_timeout: u64,
    /// Keep stdin open and forward it to the command.
    #[arg(short, long)]
    interactive: bool,
    /// Run the command on a pseudo-terminal (stdout and stderr merged, as `docker run -t`).
    #[arg(short, long)]
    tty: bool,
    /// A network device: `open`, `restricted` (nothing leaves the VM) or `none`
    /// (default; `restricted` when -p is given). The guest is 10.0.2.15/24 on eth0.
    #[arg(long)]
    uplink: Option<String>,
    /// Forward a host port to a guest port with QEMU's own forwarding,
    /// `HOSTPORT:GUESTPORT` (TCP, on 127.0.0.1). Repeatable.
    #[arg(short = 'p', long = "publish", value_name = "HOSTPORT:GUESTPORT")]
    publish: Vec<String>,
    /// The command and its arguments (a berth.toml's targets may give their own).
    #[arg(trailing_var_arg = true)]
    command: Vec<String>,
}

pub fn run(args: Args) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    let machine = Machine::parse(&args.machine_type).ok_or_else(|| {
        Error::Usage(format!(
            "--machine-type {:?}: expected microvm or pc",
            args.machine_type
        ))
    })?;
    let mut hostfwd = Vec::new();
    for p in &args.publish {
        let pair = p
            .split_once(':')
            .and_then(|(h, g)| Some((h.parse::<u16>().ok()?, g.parse::<u16>().ok()?)))
            .filter(|(h, g)| *h > 0 && *g > 0)
            .ok_or_else(|| Error::Usage(format!("-p {p:?}: expected HOSTPORT:GUESTPORT")))?;
        hostfwd.push(pair);
    }
    let uplink = match args.uplink.as_deref() {
        None if hostfwd.is_empty() => crate::qemu::Uplink::None,
        None => crate::qemu::Uplink::Restricted,
        Some(u) => crate::qemu::Uplink::parse(u).ok_or_else(|| {
            Error::Usage(format!("--uplink {u:?}: expected open, restricted or none"))
        })?,
    };
    if uplink == crate::qemu::Uplink::None && !hostfwd.is_empty() {
        return Err(Error::Usage(
            "-p needs an uplink: drop --uplink none".into(),
        ));
    }
    let memory_mib = size::parse_mib(&args.memory).map_err(Error::Usage)?;
    let vm_config = |kernel: Option<&str>, cpus: u32, memory_mib: u64, extra: &[String]| {
        Ok::<_, Error>(VmConfig {
            kernel: kernels::resolve(&paths.assets, kernel)?,
            cpus,
            memory_mib,
            transport: transport::choose(&args.transport)?,
            machine,
            accel: accel::choose(),
            boot_timeout: Duration::from_secs(args.boot_timeout),
            debug_guest: tracing::enabled!(tracing::Level::DEBUG),
            layer_disk: None,
            uplink,
            host_ports: Vec::new(),
            hostfwd: hostfwd.clone(),
            shares: Vec::new(),
            share_fs: crate::shares::ShareFs::NineP,
            kernel_args: [args.kernel_args.clone(), extra.to_vec()].concat(),
            bridge: None,
            // The kernel under test probes as it was built to.
            probing: crate::qemu::Probing::AsBuilt,
        })
    };
    let several = args.kernel.as_deref().is_some_and(|k| k.contains(','));
    let json = args.format == super::Format::Json;
    if several || args.config.is_some() || json || args.junit.is_some() {
        if args.interactive || args.tty {
            return Err(Error::Usage(
                "-i and -t take one VM: run a matrix without them".into(),
            ));
        }
        let targets = match &args.config {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| Error::Usage(format!("--config {}: {e}", file.display())))?;
                super::vm_matrix::parse_config(&text, &args.command)
                    .map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?
            }
            None => {
                if args.command.is_empty() {
                    return Err(Error::Usage("give the command to run after --".into()));
                }
                kernels::names(&paths.assets, args.kernel.as_deref())?
                    .into_iter()
                    .map(|k| super::vm_matrix::Target {
                        name: k.clone(),
                        kernel: k,
                        cpus: None,
                        memory: None,
                        kernel_args: Vec::new(),
                        command: args.command.clone(),
                    })
                    .collect()
            }
        };
        let mut runs = Vec::new();
        for t in targets {
            let memory = match &t.memory {
                Some(m) => size::parse_mib(m).map_err(Error::Usage)?,
                None => memory_mib,
            };
            let cfg = vm_config(
                Some(&t.kernel),
                t.cpus.unwrap_or(args.cpus),
                memory,
                &t.kernel_args,
            )?;
            runs.push((t, cfg));
        }
        let junit = args.junit.clone();
        return super::block_on(super::vm_matrix::run_all(
            &paths,
            &runs,
            json,
            junit.as_deref(),
        ));
    }
    if args.command.is_empty() {
        return Err(Error::Usage("give the command to run after --".into()));
    }
    let cfg = vm_config(args.kernel.as_deref(), args.cpus, memory_mib, &[])?;
    tracing::debug!(
        "booting {} ({}) with {} on {}",
        cfg.kernel.name,
        cfg.kernel.release,
        cfg.transport,
        cfg.accel.accel
    );
    let spec = ExecSpec {
        argv: args.command,
        env: Vec::new(),
        cwd: None,
        stdin: args.interactive,
        container: None,
        tty: args.tty.then(terminal::size),
        join: None,
    };
    super::block_on(boot_and_run(&paths, &cfg, spec)).map(|ended| ended.code)
}

/// How a command run by [`boot_and_run`] ended.
pub(super) struct Ended {
    /// Docker's exit code: the code, or 128 + signal.
    pub code: i32,
}

/// Boots a VM, runs `spec` with stdio streamed and signals forwarded, powers off;
/// returns how the command ended.
pub(super) async fn boot_and_run(
    paths: &Paths,
    cfg: &VmConfig,
    spec: ExecSpec,
) -> Result<Ended, Error> {
    let mut vm = Vm::launch(paths, cfg)?;
    let agent_err = |vm: &Vm, what: &str, source: ClientError| VmError::Agent {
        what: what.into(),
        tail: vm.tail(),
        source,
    };

    let spec_tty = spec.tty.is_some();
    let spec_stdin = spec.stdin;
    let (mut client, exec) = vm.connect_then(cfg.boot_timeout, spec).await?;
    let stdout = tokio::spawn(copy_out(exec.stdout, tokio::io::stdout()));
    let stderr = tokio::spawn(copy_out(exec.stderr, tokio::io::stderr()));
    let stdin = exec.stdin.map(|mut to_guest| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut to_guest).await;
            let _ = to_guest.shutdown().await;
        })
    });

    let mut signals = Forwarder::start();
    let mut resizes = Resizes::watch();
    // Raw mode only when keystrokes go to the remote terminal (`-it`), as Docker.
    let _raw = (spec_tty && spec_stdin).then(RawMode::enable);
    let outcome = loop {
        tokio::select! {
            event = client.events.recv() => match event {
                Ok(GuestMessage::Exited { status, .. }) => {
                    break Ok(Ended { code: status.shell_code() })
                }
                Ok(GuestMessage::Error { kind, message, .. }) => {
                    break Err(Error::Exec { code: kind.exit_code(), message })
                }
                Ok(other) => tracing::debug!("agent: {other:?}"),
                Err(e) => break Err(agent_err(&vm, "running the command", e).into()),
            },
            status = vm.exited() => {
                break Err(VmError::Died { what: "the command finished".into(), status, tail: vm.tail() }.into())
            }
            size = resizes.next(), if spec_tty => {
                let _ = client.requests.send(&HostMessage::Resize { exec_id: exec.id, size }).await;
            }
            signal = signals.recv() => {
                let _ = client.requests.send(&HostMessage::Signal { exec_id: exec.id, signal }).await;
            }
        }
    };
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let _ = stdout.await;
        let _ = stderr.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("output did not finish within {DRAIN_TIMEOUT:?} of the exit");
    }
    if let Some(stdin) = stdin {
        stdin.abort();
    }
    vm.finish(&mut client.requests, POWER_OFF_TIMEOUT).await;
    outcome
}

async fn copy_out<W: AsyncWrite + Unpin>(mut from: berth_mux::Stream, mut to: W) {
    if let Err(e) = tokio::io::copy(&mut from, &mut to).await {
        tracing::debug!("output copy ended: {e}");
    }
    let _ = to.flush().await;
}
