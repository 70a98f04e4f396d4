//! `berth kernel ls`.

use clap::Subcommand;

use super::Format;
use crate::kernels;
use crate::paths::Paths;
use crate::Error;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every kernel berth can boot.
    Ls {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(cmd: Command) -> Result<i32, Error> {
    let Command::Ls { format } = cmd;
    let paths = Paths::from_env()?;
    let list = kernels::list(&paths.assets)?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        ),
        Format::Table => {
            println!(
                "{:<8} {:<24} {:<7} {:<10} PATHS",
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
                    "{:<8} {:<24} {:<7} {:<10} {}",
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
