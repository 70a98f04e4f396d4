//! `cargo xtask demo`: a newcomer's first command. Installs what is missing, builds berth and
//! the fast assets (Debian's cloud kernel: nothing to compile), and runs a few commands in a VM.

use anyhow::{bail, Result};

use crate::assets::assets_dir;
use crate::cmd::Cmd;
use crate::deps;
use crate::kernel::Kernel;
use crate::pipeline::{self, Profile};

pub fn run() -> Result<()> {
    deps::run()?;
    let berth_bin = pipeline::build_host(Profile::Debug)?;
    pipeline::assets(&[Kernel::Cloud])?;
    let assets = assets_dir()?;
    let berth = |args: &[&str]| Cmd::new(&berth_bin).args(args).env("BERTH_ASSETS", &assets);

    println!("== demo: what berth sees");
    berth(&["info"]).run()?;
    berth(&["kernel", "ls"]).run()?;

    println!("== demo: a command in a fresh VM");
    berth(&["vm", "run", "--kernel", "cloud", "--", "uname", "-a"]).run()?;

    println!("== demo: stdout, stderr and the exit code come back separately");
    let script = "echo out; echo err >&2; exit 3";
    let status = berth(&["vm", "run", "--kernel", "cloud", "--", "sh", "-c", script]).status()?;
    if status.code() != Some(3) {
        bail!("expected exit code 3 from the VM, got {status}");
    }
    println!("exit code 3 as expected");

    println!("== demo: a container (the busybox test image, on a machine of its own)");
    let busybox = assets.join("images/busybox.tar");
    berth(&["load", "-i", &busybox.display().to_string()]).run()?;
    // A machine named `demo`, so the user's `default` keeps its own settings; its uplink is
    // restricted: the demo reaches nothing beyond this computer.
    berth(&[
        "machine",
        "start",
        "demo",
        "--kernel",
        "cloud",
        "--uplink",
        "restricted",
    ])
    .run()?;
    let ran = berth(&[
        "--machine",
        "demo",
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo hello from a container; echo pid $$ of $(ls /proc | grep -c '^[0-9]') processes; hostname",
    ])
    .status();
    berth(&["machine", "stop", "demo"]).run()?;
    if !ran?.success() {
        bail!("berth run in the demo machine failed");
    }
    println!("(the demo machine is stopped; `berth machine rm demo` removes it)");

    println!("== demo: done");
    println!("next: `cargo xtask test` builds the tuned 6.1 kernel (10+ minutes the first time,");
    println!("cached after that) and runs the VM tests against it.");
    Ok(())
}
