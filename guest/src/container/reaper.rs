//! `--init`: berth-init, bind-mounted at `/dev/init`, as the container's PID 1. It starts
//! the container's command, forwards the signals it gets to it, reaps every orphan the
//! container leaves, and exits as the command did (128 + N for a signal, as tini: PID 1
//! of a namespace cannot die of its own signals).

use std::ffi::CString;
use std::io::Write;

use crate::sys::{self, Forked, Reaped};

/// The first argument that makes `berth-init` a container's init.
pub const INIT_ARG: &str = "berth-container-init";
/// Where the init binary is in the container.
pub const INIT_PATH: &str = "/dev/init";

/// The command line that runs `argv` under the init.
pub fn init_argv(argv: &[String]) -> Vec<String> {
    let mut out = vec![INIT_PATH.to_string(), INIT_ARG.into(), "--".into()];
    out.extend(argv.iter().cloned());
    out
}

/// Entry point of `/dev/init berth-container-init -- CMD...`.
pub fn main(args: &[String]) -> i32 {
    let argv: Vec<&String> = match args.first().map(String::as_str) {
        Some("--") => args[1..].iter().collect(),
        _ => args.iter().collect(),
    };
    if argv.is_empty() {
        let _ = writeln!(std::io::stderr(), "berth init: no command");
        return 125;
    }
    if let Err(e) = sys::block_shim_signals() {
        let _ = writeln!(std::io::stderr(), "berth init: {e}");
        return 125;
    }
    match sys::fork_single_threaded() {
        Ok(Forked::Child) => {
            let _ = sys::clean_signals();
            let c: Result<Vec<CString>, _> =
                argv.iter().map(|a| CString::new(a.as_bytes())).collect();
            let Ok(c) = c else {
                std::process::exit(125);
            };
            let err = nix::unistd::execvp(&c[0], &c);
            let _ = writeln!(std::io::stderr(), "berth init: exec {}: {err:?}", argv[0]);
            std::process::exit(match err {
                Err(nix::errno::Errno::ENOENT) => 127,
                _ => 126,
            })
        }
        Ok(Forked::Parent(child)) => supervise(child),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "berth init: fork: {e}");
            125
        }
    }
}

fn supervise(child: u32) -> ! {
    loop {
        match sys::wait_signal() {
            Ok(nix::sys::signal::Signal::SIGCHLD) => {
                // Every ended process is reaped; the command's end ends the init.
                while let Some(reaped) = sys::reap_one() {
                    match reaped {
                        Reaped::Exited(pid, code) if pid == child => std::process::exit(code),
                        Reaped::Signaled(pid, sig) if pid == child => std::process::exit(128 + sig),
                        _ => {}
                    }
                }
            }
            Ok(sig) => sys::forward_signal(child, sig),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_runs_under_the_init() {
        assert_eq!(
            init_argv(&["sh".into(), "-c".into(), "x".into()]),
            ["/dev/init", INIT_ARG, "--", "sh", "-c", "x"]
        );
    }
}
