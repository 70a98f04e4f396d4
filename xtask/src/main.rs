//! `cargo xtask`: everything in berth that is not plain cargo.

mod archive;
mod assets;
mod bench;
mod cmd;
mod cross;
mod demo;
mod deps;
mod elf;
mod guest;
mod images;
mod initramfs;
mod install;
mod kernel;
mod pipeline;
mod test;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use kernel::Kernel;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build berth's guest assets, run its tests and benchmarks",
    after_help = "Assets go to $BERTH_ASSETS (else $BERTH_HOME/assets, else ~/.local/share/berth/assets); \
                  kernel builds are cached in $BERTH_CACHE (else ~/.cache/berth)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install host packages (QEMU, kernel sources, build tools) and vhost-device-vsock.
    Deps,
    /// Build the static guest binaries (berth-init, berth-floor-init).
    Guest,
    /// Build the guest binaries, then write initramfs.cpio and floor-init.cpio.
    Initramfs,
    /// Build the test images of images/*/image.json (docker-save and OCI layout tarballs).
    Images,
    /// Build (or reuse from the cache) and install guest kernels.
    Kernel {
        /// Kernels: 6.1, 6.12, cloud, cloud-6.12, generic-6.1, rt-6.12, or all.
        #[arg(required = true, value_name = "KERNEL")]
        kernels: Vec<String>,
        /// Only report the cache key, paths and what would be built and installed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Build the initramfs, then the kernels.
    Assets {
        /// Comma-separated kernels, or all.
        #[arg(long, default_value = "6.1,cloud")]
        kernels: String,
    },
    /// Unit tests, the macOS/Windows build check, then the VM tests on each kernel, with
    /// the kernel x test matrix in target/matrix.
    Test {
        /// Comma-separated kernels, or all.
        #[arg(long, default_value = "6.1")]
        kernels: String,
        /// Print the kernels, one per line (a CI matrix runs one shard per job).
        #[arg(long)]
        list_shards: bool,
        /// Only the VM tests this nextest filterset selects, e.g. 'binary(kernels)'.
        #[arg(long, short = 'E', value_name = "FILTERSET")]
        filter: Option<String>,
    },
    /// Join the shard-*.json files under DIR (from a CI matrix's jobs) into one matrix.
    MatrixMerge { dir: std::path::PathBuf },
    /// Criterion benchmarks against a release build.
    Bench {
        /// The kernel to benchmark: 6.1, 6.12 or cloud.
        #[arg(long, default_value = "6.1")]
        kernel: Kernel,
    },
    /// First run: install deps, build berth and the cloud-kernel assets, run a VM.
    Demo,
    /// Put berth on the PATH (cargo install) and build the guest assets it boots.
    Install {
        /// Comma-separated kernels to install, or all (default: cloud, no compile).
        #[arg(long, default_value = "cloud")]
        kernels: String,
    },
    /// Check that the host CLI compiles for macOS and Windows.
    CheckCross,
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Deps => deps::run(),
        Command::Guest => guest::build().map(drop),
        Command::Initramfs => initramfs::run(),
        Command::Images => images::run(),
        Command::Kernel { kernels, dry_run } => {
            kernel::install(&kernel::parse_list(&kernels)?, dry_run)
        }
        Command::Assets { kernels } => pipeline::assets(&kernel::parse_list(&[kernels])?),
        Command::Test {
            kernels,
            list_shards: true,
            ..
        } => {
            test::list_shards(&kernel::parse_list(&[kernels])?);
            Ok(())
        }
        Command::Test {
            kernels, filter, ..
        } => test::run(&kernel::parse_list(&[kernels])?, filter.as_deref()),
        Command::MatrixMerge { dir } => test::merge(&dir),
        Command::Bench { kernel } => bench::run(kernel),
        Command::Demo => demo::run(),
        Command::Install { kernels } => install::run(&kernel::parse_list(&[kernels])?),
        Command::CheckCross => cross::run(),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
