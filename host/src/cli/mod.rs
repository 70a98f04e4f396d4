//! The command line: one module per command; each parses nothing itself and returns the
//! process exit code or an [`Error`].

mod api;
mod bench;
mod build;
mod containers;
mod format;
mod history;
mod images;
mod info;
mod kernel;
mod load;
mod login;
mod machine;
mod network;
mod prompt;
mod ps;
mod pull;
mod run;
mod save;
pub mod select;
mod session;
mod signals;
mod stats;
pub mod style;
mod system;
mod terminal;
mod vm_matrix;
mod vm_run;
mod volumes;

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
    /// The machine commands act on: container commands talk to it (starting it when it
    /// is not running; only `default` is created on first use) and `berth machine` verbs
    /// use it when no NAME is given. Default: $BERTH_MACHINE, else `default`.
    #[arg(long, global = true, value_name = "NAME")]
    pub machine: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to a running container's output (and input).
    Attach(run::AttachArgs),
    /// Build an image from a Dockerfile, on the machine, into the host's store.
    Build(Box<build::BuildArgs>),
    /// Create a container without starting it; prints its id.
    Create(Box<run::CreateArgs>),
    /// Run the daemon of a machine in this process (what `machine start` starts).
    #[command(hide = true)]
    Daemon { name: String },
    /// Run a command in a running container.
    Exec(containers::ExecArgs),
    /// List the stored images.
    Images(images::Args),
    /// Images: the grouped forms of the image verbs.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Make a one-layer image from a root file system tarball.
    Import(save::ImportArgs),
    /// Show an image's history.
    History(history::HistoryArgs),
    /// Show low-level information on containers (or images) as JSON.
    Inspect(containers::InspectArgs),
    /// Send a signal to containers (default KILL).
    Kill(containers::KillArgs),
    /// Show a container's output (kept after it exits).
    Logs(containers::LogsArgs),
    /// Log in to a registry (credentials go where the docker CLI keeps them).
    Login(login::LoginArgs),
    /// Forget a registry's credentials.
    Logout(login::LogoutArgs),
    /// Persistent machines and their daemons.
    #[command(subcommand)]
    Machine(machine::Command),
    /// Networks: create, ls, rm, inspect.
    #[command(subcommand)]
    Network(network::Command),
    /// Freeze every process of containers.
    Pause(containers::NamesArgs),
    /// List a container's published ports.
    Port(network::PortArgs),
    /// List containers.
    Ps(ps::PsArgs),
    /// Restart containers.
    Restart(containers::StopArgs),
    /// Download an image from a registry.
    Pull(pull::PullArgs),
    /// Upload an image to a registry.
    Push(pull::PushArgs),
    /// Remove containers.
    Rm(containers::RmArgs),
    /// Remove images.
    Rmi(images::RmiArgs),
    /// Write images to a tar archive (`docker save`'s format).
    Save(save::SaveArgs),
    /// Start stopped or created containers.
    Start(run::StartArgs),
    /// CPU, memory and process counts of running containers.
    Stats(stats::StatsArgs),
    /// Stop containers (SIGTERM, then SIGKILL after -t seconds).
    Stop(containers::StopArgs),
    /// Give an image another name.
    Tag(images::TagArgs),
    /// Show the processes of a container.
    Top(containers::TopArgs),
    /// Thaw paused containers.
    Unpause(containers::NamesArgs),
    /// Show the client's and the daemon's versions.
    Version,
    /// Wait for containers to stop; prints their exit codes.
    Wait(containers::NamesArgs),
    /// Show the host, QEMU, the accelerator and transports berth will use, and its directories.
    Info(info::Args),
    /// Kernels berth can boot.
    #[command(subcommand)]
    Kernel(kernel::Command),
    /// Measure containers against VMs on this computer: start-up, memory, density, CPU
    /// and I/O, per kernel; a table, JSON and SVG charts.
    Bench(bench::Args),
    /// Load images from a `docker save` archive or an OCI image layout.
    Load(load::Args),
    /// Run a command in a new container.
    Run(Box<run::RunArgs>),
    /// Virtual machines without containers (the kernel-CI path).
    #[command(subcommand)]
    Vm(VmCommand),
    /// Named volumes: data on the machine's disk that outlives containers.
    #[command(subcommand)]
    Volume(volumes::Command),
    /// Containers: the grouped forms of the container verbs (`berth container ls`, ...).
    #[command(subcommand)]
    Container(ContainerCommand),
    /// The machine's disk usage, a prune of everything unused, and `info`.
    #[command(subcommand)]
    System(SystemCommand),
    /// Print a shell completion script: bash, zsh, fish, powershell or elvish
    /// (e.g. `berth completion bash > /etc/bash_completion.d/berth`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// List containers.
    #[command(alias = "list", alias = "ps")]
    Ls(ps::PsArgs),
    /// Remove containers.
    #[command(alias = "remove")]
    Rm(containers::RmArgs),
    /// Run a command in a new container.
    Run(Box<run::RunArgs>),
    /// Create a container without starting it.
    Create(Box<run::CreateArgs>),
    /// Start stopped or created containers.
    Start(run::StartArgs),
    /// Attach to a running container's input and output.
    Attach(run::AttachArgs),
    /// Run a command in a running container.
    Exec(containers::ExecArgs),
    /// Show low-level information on containers as JSON.
    Inspect(containers::InspectArgs),
    /// Send a signal to containers (default KILL).
    Kill(containers::KillArgs),
    /// Show a container's output.
    Logs(containers::LogsArgs),
    /// Freeze every process of containers.
    Pause(containers::NamesArgs),
    /// Thaw paused containers.
    Unpause(containers::NamesArgs),
    /// List a container's published ports.
    Port(network::PortArgs),
    /// Restart containers.
    Restart(containers::StopArgs),
    /// CPU, memory and process counts of running containers.
    Stats(stats::StatsArgs),
    /// Stop containers.
    Stop(containers::StopArgs),
    /// Show the processes of a container.
    Top(containers::TopArgs),
    /// Wait for containers to stop; prints their exit codes.
    Wait(containers::NamesArgs),
    /// Remove every stopped container.
    Prune(system::PruneArgs),
}

impl ContainerCommand {
    /// The short form this grouped form means (`prune` has none).
    fn short(self) -> Result<Command, system::PruneArgs> {
        Ok(match self {
            ContainerCommand::Ls(a) => Command::Ps(a),
            ContainerCommand::Rm(a) => Command::Rm(a),
            ContainerCommand::Run(a) => Command::Run(a),
            ContainerCommand::Create(a) => Command::Create(a),
            ContainerCommand::Start(a) => Command::Start(a),
            ContainerCommand::Attach(a) => Command::Attach(a),
            ContainerCommand::Exec(a) => Command::Exec(a),
            ContainerCommand::Inspect(a) => Command::Inspect(a),
            ContainerCommand::Kill(a) => Command::Kill(a),
            ContainerCommand::Logs(a) => Command::Logs(a),
            ContainerCommand::Pause(a) => Command::Pause(a),
            ContainerCommand::Unpause(a) => Command::Unpause(a),
            ContainerCommand::Port(a) => Command::Port(a),
            ContainerCommand::Restart(a) => Command::Restart(a),
            ContainerCommand::Stats(a) => Command::Stats(a),
            ContainerCommand::Stop(a) => Command::Stop(a),
            ContainerCommand::Top(a) => Command::Top(a),
            ContainerCommand::Wait(a) => Command::Wait(a),
            ContainerCommand::Prune(a) => return Err(a),
        })
    }
}

#[cfg(test)]
mod grouped_tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
            .unwrap()
            .command
    }

    #[test]
    fn grouped_container_forms_are_the_short_ones() {
        for (grouped, short) in [
            (vec!["container", "ls", "-a"], vec!["ps", "-a"]),
            (vec!["container", "list", "-q"], vec!["ps", "-q"]),
            (vec!["container", "rm", "-f", "x"], vec!["rm", "-f", "x"]),
            (
                vec!["container", "logs", "-f", "x"],
                vec!["logs", "-f", "x"],
            ),
            (
                vec!["container", "exec", "x", "true"],
                vec!["exec", "x", "true"],
            ),
        ] {
            let Command::Container(c) = parse(&grouped) else {
                panic!("{grouped:?}")
            };
            let as_short = format!("{:?}", c.short().unwrap());
            assert_eq!(as_short, format!("{:?}", parse(&short)), "{grouped:?}");
        }
        let Command::Container(c) = parse(&["container", "prune", "-f"]) else {
            panic!()
        };
        assert!(c.short().is_err(), "prune has no short form");
        assert!(matches!(
            parse(&["system", "df"]),
            Command::System(SystemCommand::Df)
        ));
        assert!(matches!(
            parse(&["completion", "fish"]),
            Command::Completion { .. }
        ));
    }
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Disk usage of images, containers, volumes and the build cache.
    Df,
    /// Remove stopped containers, unused networks and dangling images (-a: all unused
    /// images; --volumes: unused volumes).
    Prune(system::SystemPruneArgs),
    /// The host, QEMU, the accelerator and the transports berth uses.
    Info(info::Args),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List the stored images.
    #[command(alias = "list")]
    Ls(images::Args),
    /// Remove images.
    #[command(alias = "remove")]
    Rm(images::RmiArgs),
    /// Give an image another name.
    Tag(images::TagArgs),
    /// Download an image from a registry.
    Pull(pull::PullArgs),
    /// Upload an image to a registry.
    Push(pull::PushArgs),
    /// Write images to a tar archive.
    Save(save::SaveArgs),
    /// Load images from a `docker save` archive or an OCI image layout.
    Load(load::Args),
    /// Make a one-layer image from a root file system tarball.
    Import(save::ImportArgs),
    /// Show an image's history.
    History(history::HistoryArgs),
    /// Remove untagged (with -a, all unused) images.
    Prune(images::PruneArgs),
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
    let sel = select::Selection::new(cli.machine);
    let machine = sel.machine().to_string();
    // A grouped container form is its short form (`container prune` has none).
    let command = match cli.command {
        Command::Container(c) => match c.short() {
            Ok(short) => short,
            Err(prune) => Command::Container(ContainerCommand::Prune(prune)),
        },
        other => other,
    };
    match command {
        Command::Images(args) => images::run(args),
        Command::Image(cmd) => image_command(cmd),
        Command::Pull(args) => pull::pull(args),
        Command::Push(args) => pull::push(args),
        Command::Save(args) => save::save(args),
        Command::Import(args) => save::import(args),
        Command::History(args) => history::run(args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::Info(args) => info::run(args),
        Command::Kernel(cmd) => kernel::run(cmd),
        Command::Bench(a) => bench::run(a),
        Command::Load(args) => load::run(args),
        Command::Rmi(args) => images::rmi(args),
        Command::Tag(args) => images::tag(args),
        Command::Vm(VmCommand::Run(args)) => vm_run::run(args),
        Command::Machine(cmd) => machine::run(cmd, &sel),
        Command::Daemon { name } => daemon(&name),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "berth", &mut script);
            // A reader that stops early (`| head`) is not an error.
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(0),
            }
        }
        Command::System(SystemCommand::Info(args)) => info::run(args),
        Command::Version => {
            let paths = crate::paths::Paths::from_env()?;
            let m = crate::machine::MachineDir::new(&paths, &machine)?;
            let api = m.daemon_pid().map(|_| api::Api::new(&m.socket()));
            block_on(containers::version(api.as_ref()))
        }
        other => with_api(&machine, other),
    }
}

/// `berth image VERB`: on the host's store, as the short forms.
fn image_command(cmd: ImageCommand) -> Result<i32, Error> {
    match cmd {
        ImageCommand::Ls(a) => images::run(a),
        ImageCommand::Rm(a) => images::rmi(a),
        ImageCommand::Tag(a) => images::tag(a),
        ImageCommand::Pull(a) => pull::pull(a),
        ImageCommand::Push(a) => pull::push(a),
        ImageCommand::Save(a) => save::save(a),
        ImageCommand::Load(a) => load::run(a),
        ImageCommand::Import(a) => save::import(a),
        ImageCommand::History(a) => history::run(a),
        ImageCommand::Prune(a) => images::prune(a),
    }
}

#[cfg(unix)]
fn daemon(name: &str) -> Result<i32, Error> {
    let paths = crate::paths::Paths::from_env()?;
    crate::daemon::main(&paths, name)
}

#[cfg(not(unix))]
fn daemon(_name: &str) -> Result<i32, Error> {
    Err(Error::Usage(
        "the berth daemon needs a unix host for now".into(),
    ))
}

/// Container commands: clients of the machine's daemon, which is started when needed.
fn with_api(machine: &str, cmd: Command) -> Result<i32, Error> {
    let paths = crate::paths::Paths::from_env()?;
    block_on(async move {
        let kernel = match &cmd {
            Command::Run(a) => a.kernel.clone(),
            _ => None,
        };
        let api = machine::ensure_running(&paths, machine, kernel.as_deref()).await?;
        let api = &api;
        match cmd {
            Command::Run(a) => run::run(api, *a).await,
            Command::Create(a) => run::create_cmd(api, *a).await,
            Command::Start(a) => run::start(api, a).await,
            Command::Attach(a) => run::attach(api, a).await,
            Command::Build(a) => build::build(api, *a).await,
            Command::Exec(a) => containers::exec(api, a).await,
            Command::Inspect(a) => containers::inspect(api, a).await,
            Command::Kill(a) => containers::kill(api, a).await,
            Command::Logs(a) => containers::logs(api, a).await,
            Command::Pause(a) => containers::pause(api, a, true).await,
            Command::Unpause(a) => containers::pause(api, a, false).await,
            Command::Ps(a) => ps::ps(api, a).await,
            Command::Restart(a) => containers::restart(api, a).await,
            Command::Rm(a) => containers::rm(api, a).await,
            Command::Stats(a) => stats::stats(api, a).await,
            Command::Stop(a) => containers::stop(api, a).await,
            Command::Top(a) => containers::top(api, a).await,
            Command::Network(c) => network::run(api, c).await,
            Command::Port(a) => network::port(api, a).await,
            Command::Wait(a) => containers::wait(api, a).await,
            Command::Volume(c) => volumes::run(api, c).await,
            Command::Container(ContainerCommand::Prune(a)) => system::container_prune(api, a).await,
            Command::System(SystemCommand::Df) => system::df(api).await,
            Command::System(SystemCommand::Prune(a)) => system::system_prune(api, a).await,
            other => Err(Error::Usage(format!(
                "{other:?} is not a container command"
            ))),
        }
    })
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
