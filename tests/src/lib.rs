//! Harness for the VM tests: runs the real `berth` binary with its own state directory,
//! the assets `cargo xtask` built, and a deadline on every command.
//!
//! The tests themselves are in `tests/*.rs` and are compiled only with the `vm` feature,
//! which `cargo xtask test` turns on (plain `cargo test` never boots a VM).

pub mod docker;
pub mod fixtures;
pub mod registry;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every berth command in a test must finish within this, or the test fails (no hangs).
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(180);

/// The berth binary under test: `BERTH_BIN`, else the workspace's debug build.
pub fn berth_bin() -> PathBuf {
    match std::env::var_os("BERTH_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/berth"),
    }
}

/// The kernel the VM tests boot: `BERTH_TEST_KERNEL` (set per kernel by `cargo xtask test`).
pub fn test_kernel() -> String {
    std::env::var("BERTH_TEST_KERNEL").unwrap_or_else(|_| "6.1".into())
}

/// Says that the rest of a test cannot run here, and why: `cargo xtask test` counts the
/// test as skipped with `reason` in its matrix (the marker is its `SKIP_MARKER`), not as
/// a pass. Call it, then return, after the parts that could run have run.
pub fn skip(reason: &str) {
    println!("berth-skip: {reason}");
}

/// Polls `done` until it holds, failing with `what` once `within` has passed: the way a
/// test waits for something to happen (never a bare sleep that decides the outcome).
pub fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    wait_for(what, within, || match done() {
        true => Ok(()),
        false => Err("not yet".into()),
    })
}

/// Polls `look` until it gives `Ok(value)`, and returns the value; fails after `within`
/// naming `what` and the last thing `look` saw (its `Err`).
pub fn wait_for<T>(what: &str, within: Duration, mut look: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match look() {
            Ok(value) => return value,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "{what} did not happen within {within:?}; last seen: {seen}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A fresh installation with the busybox test image loaded.
pub fn with_busybox() -> Berth {
    let b = Berth::new();
    let assets = std::env::var_os("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    let file = Path::new(&assets).join("images/busybox.tar");
    let out = b.run(&["load", "-i", file.to_str().unwrap()], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    b
}

/// Runs berth with `args` (no stdin); it must succeed.
pub fn ok(b: &Berth, args: &[&str]) -> Outcome {
    let out = b.run(args, b"");
    assert_eq!(out.code, 0, "berth {args:?}: {}", out.stderr);
    out
}

/// Runs `cmd` in the machine's guest itself (its PID 1's mount namespace, where the state
/// disk and the cgroups are), from a privileged container in the guest's PID namespace;
/// it must succeed. Needs the busybox image.
pub fn in_guest(b: &Berth, cmd: &[&str]) -> Outcome {
    let mut args = vec![
        "run",
        "--rm",
        "--privileged",
        "--pid",
        "host",
        "--network",
        "none",
        "busybox",
        "nsenter",
        "-t",
        "1",
        "-m",
    ];
    args.extend_from_slice(cmd);
    ok(b, &args)
}

/// What a finished command left.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// One isolated berth installation: its own `BERTH_HOME`, the shared assets.
pub struct Berth {
    home: tempfile::TempDir,
}

impl Default for Berth {
    fn default() -> Self {
        Self::new()
    }
}

impl Berth {
    pub fn new() -> Berth {
        Berth {
            home: tempfile::Builder::new()
                .prefix("berth-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The docker CLI configuration directory (`DOCKER_CONFIG`) berth is given.
    pub fn docker_config(&self) -> PathBuf {
        self.home.path().join("docker-config")
    }

    /// Names of this installation's machines (those with a `machine.json`).
    pub fn machines(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.home.path().join("machines"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("machine.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.args(args)
            .env("BERTH_HOME", self.home.path())
            .env("BERTH_KERNEL", test_kernel())
            // No test may send a packet beyond this machine: every machine a test starts
            // has a restricted uplink (host ports come only through explicit forwards).
            .env("BERTH_UPLINK", "restricted")
            // The docker CLI contexts `machine start` writes go to this installation's own
            // docker config, never the user's.
            .env("DOCKER_CONFIG", self.docker_config())
            .env_remove("BERTH_MACHINE");
        if let Some(assets) = std::env::var_os("BERTH_ASSETS") {
            cmd.env("BERTH_ASSETS", assets);
        } else if let Some(data) = std::env::var_os("HOME") {
            cmd.env(
                "BERTH_ASSETS",
                Path::new(&data).join(".local/share/berth/assets"),
            );
        }
        cmd
    }

    /// Starts berth with `args` and leaves it running (a follower, a stream); its stdout
    /// comes line by line through the returned guard, which kills it when dropped.
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Spawned {
            child,
            lines,
            what: args.join(" "),
        }
    }

    /// Runs berth with `args`, feeding `stdin`, and waits (with the deadline).
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Outcome {
        self.run_env(args, &[], stdin)
    }

    /// As [`Berth::run`], with extra environment variables (`BERTH_MACHINE`, say).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Outcome {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawn berth");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = collect(child, started, args);
        let _ = feeder.join();
        out
    }

    /// `berth vm run --kernel <test kernel> EXTRA... -- CMD...`
    pub fn vm_run(&self, extra: &[&str], cmd: &[&str]) -> Outcome {
        self.vm_run_stdin(extra, cmd, b"")
    }

    pub fn vm_run_stdin(&self, extra: &[&str], cmd: &[&str], stdin: &[u8]) -> Outcome {
        let kernel = test_kernel();
        let mut args = vec!["vm", "run", "--kernel", kernel.as_str()];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(cmd);
        self.run(&args, stdin)
    }

    /// Names of this installation's machines whose daemon runs.
    pub fn running_machines(&self) -> Vec<String> {
        let dir = self.home.path().join("machines");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let pid = std::fs::read_to_string(entry.path().join("daemon.pid")).unwrap_or_default();
            let alive = pid.trim().parse::<u32>().is_ok_and(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                    !s.rsplit_once(')')
                        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                })
            });
            if alive {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        out
    }

    /// Stops every running machine of this installation (`berth machine stop -t 0`).
    /// Never panics (a failing test's `Drop` runs this while it unwinds, and a second
    /// panic there would abort the whole test binary): failures are reported on stderr.
    pub fn stop_machines(&self) {
        for name in self.running_machines() {
            let mut cmd = self.command(&["machine", "stop", "-t", "0", &name]);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = match cmd.spawn() {
                Ok(child) => child,
                Err(e) => {
                    eprintln!("stopping machine {name}: cannot run berth: {e}");
                    continue;
                }
            };
            let deadline = Instant::now() + COMMAND_DEADLINE;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => break,
                    Ok(Some(status)) => {
                        eprintln!("stopping machine {name}: berth machine stop: {status}");
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Ok(None) | Err(_) => {
                        eprintln!("stopping machine {name}: no end within {COMMAND_DEADLINE:?}");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Asserts that nothing of this installation is left running or listening: no run
    /// directory (sockets live there) and no process whose command line names our home.
    /// Machines are stopped first (their stop must leave nothing either).
    pub fn assert_nothing_left(&self) {
        self.stop_machines();
        let run = self.home.path().join("run");
        let left: Vec<_> = std::fs::read_dir(&run)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "run directories left behind: {left:?}");
        let needle = self.home.path().to_string_lossy().into_owned();
        // Processes may take a moment to be reaped after berth exits.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let procs = processes_mentioning(&needle);
            if procs.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "processes left behind: {procs:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.stop_machines();
        // A failed test's installation is kept for a look: its daemons' logs, the copies
        // of its guests' consoles, its machines' configs.
        if std::thread::panicking() {
            self.home.disable_cleanup(true);
            eprintln!(
                "berth-test: this test's BERTH_HOME is kept in {} (daemon.log, logs/)",
                self.home.path().display()
            );
        }
    }
}

/// A child process a test drives by hand (its signals, its pipes): killed and reaped
/// when dropped if it is still running, so a failing test leaves nothing behind.
pub struct ChildGuard(pub Child);

impl std::ops::Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A running `berth` process from [`Berth::spawn`]: killed and reaped when dropped, so
/// a failing test leaves nothing running.
pub struct Spawned {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    what: String,
}

impl Spawned {
    /// The stdout lines up to and including the first that satisfies `want`, waiting at
    /// most `within`; fails naming `awaited` (and what came) when it never comes.
    pub fn lines_until(
        &self,
        awaited: &str,
        within: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = want(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!(
                    "`berth {}`: {awaited} did not come within {within:?}; its output: {seen:?}",
                    self.what
                ),
            }
        }
    }
}

impl Spawned {
    /// Waits for the process to end by itself, at most `within`; fails naming `awaited`.
    pub fn wait_exit(&mut self, awaited: &str, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "`berth {}`: {awaited} did not happen within {within:?}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Spawned {
    /// SIGTERM first, so berth cleans up after itself (a `vm run` powers its VM off),
    /// then SIGKILL if it is still there after 15 s.
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return; // ended (and reaped) already: its pid may be someone else's now
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(mut child: Child, started: Instant, args: &[&str]) -> Outcome {
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > COMMAND_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth {args:?} did not finish within {COMMAND_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// Pids (with command lines) of processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{name}: {text}"));
            }
        }
    }
    found
}

/// The release string of an installed kernel, from `berth kernel ls --format json`.
pub fn kernel_release(berth: &Berth, name: &str) -> String {
    let out = berth.run(&["kernel", "ls", "--format", "json"], b"");
    assert_eq!(out.code, 0, "kernel ls failed: {}", out.stderr);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("kernel ls json");
    list.as_array()
        .into_iter()
        .flatten()
        .find(|k| k["name"] == name)
        .and_then(|k| k["release"].as_str())
        .unwrap_or_else(|| panic!("kernel {name} not listed: {list}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_tests_home_is_kept_and_a_passed_ones_is_not() {
        let (tx, rx) = std::sync::mpsc::channel();
        let failed = std::thread::spawn(move || {
            let b = Berth::new();
            tx.send(b.home().to_path_buf()).unwrap();
            panic!("a failing test");
        });
        assert!(failed.join().is_err());
        let kept = rx.recv().unwrap();
        assert!(kept.is_dir(), "a failed test's BERTH_HOME was deleted");
        std::fs::remove_dir_all(&kept).unwrap();
        let passed = Berth::new();
        let home = passed.home().to_path_buf();
        drop(passed);
        assert!(!home.exists(), "a passed test's BERTH_HOME was kept");
    }
}
