//! `berth info`: what berth would use on this host, and why.

use std::process::Command;

use serde::Serialize;

use super::Format;
use crate::paths::{find_program, Paths};
use crate::{accel, kernels, transport, Error};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Serialize)]
struct Info {
    host_os: String,
    host_arch: String,
    qemu: String,
    accelerator: String,
    accelerator_reason: String,
    transports: Vec<TransportInfo>,
    transport_auto: Option<String>,
    home_dir: String,
    assets_dir: String,
    kernels: Vec<String>,
}

#[derive(Serialize)]
struct TransportInfo {
    name: String,
    available: bool,
    detail: String,
}

pub fn run(args: Args) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    let accel = accel::choose();
    let info = Info {
        host_os: std::env::consts::OS.into(),
        host_arch: std::env::consts::ARCH.into(),
        qemu: qemu_version(),
        accelerator: accel.accel.to_string(),
        accelerator_reason: accel.reason,
        transports: transport::probe_all()
            .into_iter()
            .map(|a| TransportInfo {
                name: a.kind.to_string(),
                available: a.status.is_ok(),
                detail: a.status.unwrap_or_else(|e| e),
            })
            .collect(),
        transport_auto: transport::choose("auto").ok().map(|k| k.to_string()),
        home_dir: paths.home.display().to_string(),
        assets_dir: paths.assets.display().to_string(),
        kernels: kernels::list(&paths.assets)
            .map(|l| {
                l.into_iter()
                    .map(|k| format!("{} ({})", k.name, k.release))
                    .collect()
            })
            .unwrap_or_else(|e| vec![format!("error: {e}")]),
    };
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&info).unwrap_or_default()
        ),
        Format::Table => print_text(&info),
    }
    Ok(0)
}

fn print_text(i: &Info) {
    println!("Host:          {} {}", i.host_os, i.host_arch);
    println!("QEMU:          {}", i.qemu);
    println!(
        "Accelerator:   {} ({})",
        i.accelerator, i.accelerator_reason
    );
    println!("Transports:");
    for t in &i.transports {
        let mark = if t.available { "yes" } else { "no " };
        println!("  {:<11} {mark}  {}", t.name, t.detail);
    }
    println!(
        "  auto picks:  {}",
        i.transport_auto.as_deref().unwrap_or("none")
    );
    println!("State dir:     {}", i.home_dir);
    println!("Assets dir:    {}", i.assets_dir);
    println!(
        "Kernels:       {}",
        if i.kernels.is_empty() {
            "none".to_string()
        } else {
            i.kernels.join(", ")
        }
    );
}

fn qemu_version() -> String {
    let Some(bin) = find_program("BERTH_QEMU", "qemu-system-x86_64", &[]) else {
        return "not found (install qemu-system-x86, or set BERTH_QEMU)".into();
    };
    match Command::new(&bin).arg("--version").output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            format!(
                "{} ({})",
                text.lines().next().unwrap_or("unknown version"),
                bin.display()
            )
        }
        Err(e) => format!("{} fails to run: {e}", bin.display()),
    }
}
