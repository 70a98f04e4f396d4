//! `berth kernel ls|add|rm`.

use std::path::PathBuf;

use clap::Subcommand;

use super::Format;
use crate::kernels::{self, add};
use crate::paths::Paths;
use crate::Error;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every kernel berth can boot.
    Ls {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Add a kernel: a Debian linux-image-*.deb, or a bzImage/vmlinux with its config and
    /// modules. Installed into berth's own directories; the host's /boot is not touched.
    Add {
        /// The package or kernel image.
        path: PathBuf,
        /// Its name for --kernel (default: its release).
        #[arg(long)]
        name: Option<String>,
        /// The kernel's config (default: config-RELEASE beside the image, or /boot's).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Its modules (default: the package's, or /lib/modules/RELEASE).
        #[arg(long, value_name = "DIR")]
        modules: Option<PathBuf>,
        /// Replace a kernel of the same name.
        #[arg(long, short)]
        force: bool,
        /// What to record as its source (default: the package and version, or the file).
        #[arg(long, hide = true)]
        source: Option<String>,
    },
    /// Remove a kernel that `berth kernel add` installed.
    Rm {
        name: String,
        /// Also a kernel that machines are configured with, or one xtask built.
        #[arg(long, short)]
        force: bool,
    },
}

pub fn run(cmd: Command) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    let format = match cmd {
        Command::Ls { format } => format,
        Command::Add {
            path,
            name,
            config,
            modules,
            force,
            source,
        } => {
            let opts = add::AddOptions {
                path,
                name,
                config,
                modules,
                force,
                source,
            };
            let added = add::add(&paths.assets, &opts)?;
            let k = &added.kernel;
            println!(
                "added kernel {} (release {}, from {})",
                k.name, k.release, k.source
            );
            if !added.modules.is_empty() {
                println!(
                    "modules in its initramfs ({}): {}",
                    added.modules.len(),
                    added.modules.join(" ")
                );
            }
            if added.builtin > 0 {
                println!("built in: {} of the modules berth loads", added.builtin);
            }
            if added.no_shares {
                eprintln!("note: it has neither 9p nor virtiofs: host folders (-v /path) cannot be shared with it; volumes work");
            }
            println!("use it with: berth vm run --kernel {0} -- uname -r; berth machine start --kernel {0}", k.name);
            return Ok(0);
        }
        Command::Rm { name, force } => {
            let users: Vec<String> = crate::machine::list(&paths)
                .into_iter()
                .filter(|m| {
                    m.read_config()
                        .is_ok_and(|c| c.kernel.as_deref() == Some(name.as_str()))
                })
                .map(|m| m.name)
                .collect();
            if !users.is_empty() && !force {
                return Err(Error::Usage(format!(
                    "the kernel {name} is the kernel of the machine(s) {}: start them with another --kernel first, or use --force",
                    users.join(", ")
                )));
            }
            add::remove(&paths.assets, &name, force)?;
            println!("removed kernel {name}");
            return Ok(0);
        }
    };
    let list = kernels::list(&paths.assets)?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        ),
        Format::Table => {
            println!(
                "{:<12} {:<28} {:<7} {:<10} PATHS",
                "NAME", "RELEASE", "KIND", "INITRAMFS"
            );
            for k in &list {
                let kind = serde_json::to_value(k.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let initramfs = if k.initramfs == kernels::base_initramfs(&paths.assets) {
                    "base"
                } else {
                    "own"
                };
                let files: Vec<String> = [&k.vmlinux, &k.bzimage]
                    .into_iter()
                    .flatten()
                    .chain(std::iter::once(&k.initramfs))
                    .map(|p| p.display().to_string())
                    .collect();
                println!(
                    "{:<12} {:<28} {:<7} {:<10} {}",
                    k.name,
                    k.release,
                    kind,
                    initramfs,
                    files.join(" ")
                );
            }
            if list.is_empty() {
                eprintln!(
                    "no kernels in {}: run `cargo xtask demo` or `cargo xtask assets`",
                    paths.assets.display()
                );
            }
        }
    }
    Ok(0)
}
