//! The command line: one module per command; each parses nothing itself and returns the
//! process exit code or an [`Error`].

mod images;
mod info;
mod kernel;
mod load;
mod run;
mod signals;
mod terminal;
mod vm_run;

use clap::{Parser, Subcommand};

use crate::Error;

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Linux containers and kernels in small QEMU VMs"
)]
pub struct Cli {
    /// Log what berth does (the QEMU command line among it) to stderr.
    #[arg(long, global = true, env = "BERTH_DEBUG")]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the stored images.
    Images(images::Args),
    /// Show the host, QEMU, the accelerator and transports berth will use, and its directories.
    Info(info::Args),
    /// Kernels berth can boot.
    #[command(subcommand)]
    Kernel(kernel::Command),
    /// Load images from a `docker save` archive or an OCI image layout.
    Load(load::Args),
    /// Run a command in a new container (in a VM booted for this run).
    Run(Box<run::Args>),
    /// Virtual machines without containers (the kernel-CI path).
    #[command(subcommand)]
    Vm(VmCommand),
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Boot a fresh VM, run a command directly in the guest, power off; exits with its code.
    Run(vm_run::Args),
}

/// Parses the command line. Usage errors exit 125 as Docker's CLI does; help and version
/// print and exit 0.
pub fn parse() -> Result<Cli, i32> {
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            125
        } else {
            0
        }
    })
}

pub fn run(cli: Cli) -> Result<i32, Error> {
    init_logging(cli.debug);
    match cli.command {
        Command::Images(args) => images::run(args),
        Command::Info(args) => info::run(args),
        Command::Kernel(cmd) => kernel::run(cmd),
        Command::Load(args) => load::run(args),
        Command::Vm(VmCommand::Run(args)) => vm_run::run(args),
        Command::Run(args) => run::run(*args),
    }
}

fn init_logging(debug: bool) {
    let filter = match std::env::var("BERTH_LOG") {
        Ok(f) => f,
        Err(_) if debug => "berth=debug,berth_mux=debug".into(),
        Err(_) => "warn".into(),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// `--format` for commands that print data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Runs `work` on a fresh runtime. The runtime is then shut down without waiting for
/// blocking tasks: a read of an interactive stdin never ends by itself.
fn block_on<T>(work: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(work);
    rt.shutdown_background();
    result
}
