//! `berth vm run` on several targets: `--kernel 6.1,6.12,cloud`, or the `[[target]]`s of a
//! `berth.toml` (kernel, cpus, memory, kernel args, command, as vmtest users write them).
//! Each target boots in turn (never two VMs at once, so their timings compare), runs the
//! command with its output captured, and powers off. The result is a kernel × result
//! table (boot, setup and command times, exit code, and for a failure its phase and the
//! tail of the console), one JSON object per target with `--format json`, and a JUnit
//! file with `--junit FILE`.

use std::time::{Duration, Instant};

use berth_protocol::{ExecSpec, GuestMessage};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::paths::Paths;
use crate::vm::{Vm, VmConfig};
use crate::Error;

/// How long the output may still arrive after the exit, and the guest gets to power off.
const DRAIN: Duration = Duration::from_secs(30);
const POWER_OFF: Duration = Duration::from_secs(10);
/// How much of a failure's console and output is kept.
const TAIL_LINES: usize = 20;

/// One thing to run: a kernel and a command, with the VM's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub kernel: String,
    pub cpus: Option<u32>,
    pub memory: Option<String>,
    pub kernel_args: Vec<String>,
    pub command: Vec<String>,
}

/// `berth.toml`: targets as vmtest's `[[target]]` tables; a top-level `command` is every
/// target's default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    command: Option<String>,
    #[serde(default)]
    target: Vec<TargetEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetEntry {
    name: Option<String>,
    kernel: String,
    cpus: Option<u32>,
    memory: Option<String>,
    kernel_args: Option<String>,
    command: Option<String>,
}

/// The targets of a `berth.toml`'s text; `command` (from the command line) is used where
/// a target names none.
pub fn parse_config(text: &str, command: &[String]) -> Result<Vec<Target>, String> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
    if file.target.is_empty() {
        return Err("no [[target]] tables".into());
    }
    file.target
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let command = match t.command.or(file.command.clone()) {
                Some(c) => vec!["/bin/sh".into(), "-c".into(), c],
                None if !command.is_empty() => command.to_vec(),
                None => {
                    return Err(format!(
                        "target {} has no command (give `command`, or one after --)",
                        i + 1
                    ))
                }
            };
            Ok(Target {
                name: t.name.unwrap_or_else(|| t.kernel.clone()),
                kernel: t.kernel,
                cpus: t.cpus,
                memory: t.memory,
                kernel_args: t
                    .kernel_args
                    .map(|a| a.split_whitespace().map(String::from).collect())
                    .unwrap_or_default(),
                command,
            })
        })
        .collect()
}

/// Where a failed target stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The VM did not boot to the agent's handshake (a kernel that does not boot, a
    /// missing driver, a timeout).
    Boot,
    /// The agent did not start the command.
    Agent,
    /// The command ran and failed (non-zero exit, not found, killed).
    Command,
}

/// One target's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub target: String,
    pub kernel: String,
    pub release: String,
    pub passed: bool,
    pub exit_code: Option<i32>,
    pub phase: Option<Phase>,
    /// QEMU's start to the agent's handshake.
    pub boot_ms: Option<u64>,
    /// The handshake to the command running.
    pub setup_ms: Option<u64>,
    /// The command's own run.
    pub duration_ms: Option<u64>,
    pub total_ms: u64,
    pub stdout: String,
    pub stderr: String,
    /// The reason, for a failure.
    pub message: Option<String>,
    /// The end of the guest's console, for a failure.
    pub console_tail: Option<String>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// Boots `cfg`, runs `target`'s command with its output captured, powers off.
pub async fn run_target(paths: &Paths, cfg: &VmConfig, target: &Target) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome {
        target: target.name.clone(),
        kernel: cfg.kernel.name.clone(),
        release: cfg.kernel.release.clone(),
        passed: false,
        exit_code: None,
        phase: Some(Phase::Boot),
        boot_ms: None,
        setup_ms: None,
        duration_ms: None,
        total_ms: 0,
        stdout: String::new(),
        stderr: String::new(),
        message: None,
        console_tail: None,
    };
    let mut vm = match Vm::launch(paths, cfg) {
        Ok(vm) => vm,
        Err(e) => {
            out.message = Some(crate::error::chain(&e));
            out.total_ms = ms(started.elapsed());
            return out;
        }
    };
    let mut client = match vm.connect(cfg.boot_timeout).await {
        Ok(c) => c,
        Err(e) => {
            out.message = Some(crate::error::chain(&e));
            out.console_tail = Some(tail(&vm.tail()));
            out.total_ms = ms(started.elapsed());
            return out;
        }
    };
    let booted = Instant::now();
    out.boot_ms = Some(ms(booted - started));
    out.phase = Some(Phase::Agent);
    let spec = ExecSpec {
        argv: target.command.clone(),
        env: Vec::new(),
        cwd: None,
        stdin: false,
        container: None,
        tty: None,
        join: None,
    };
    let exec = match client.start_exec(spec).await {
        Ok(e) => e,
        Err(e) => {
            out.message = Some(format!("starting the command: {}", crate::error::chain(&e)));
            out.console_tail = Some(tail(&vm.tail()));
            out.total_ms = ms(started.elapsed());
            return out;
        }
    };
    let running = Instant::now();
    out.setup_ms = Some(ms(running - booted));
    out.phase = Some(Phase::Command);
    let crate::client::Exec {
        mut stdout,
        mut stderr,
        ..
    } = exec;
    let collect_out = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b).await;
        b
    });
    let collect_err = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b).await;
        b
    });
    let ended: Result<i32, String> = loop {
        tokio::select! {
            event = client.events.recv() => match event {
                Ok(GuestMessage::Exited { status, .. }) => break Ok(status.shell_code()),
                Ok(GuestMessage::Error { kind, message, .. }) => {
                    out.exit_code = Some(kind.exit_code());
                    break Err(message)
                }
                Ok(_) => {}
                Err(e) => break Err(format!("the agent went away: {}", crate::error::chain(&e))),
            },
            status = vm.exited() => break Err(format!("the VM stopped while the command ran ({status})")),
        }
    };
    out.duration_ms = Some(ms(running.elapsed()));
    if let Ok(Ok(b)) = tokio::time::timeout(DRAIN, collect_out).await {
        out.stdout = String::from_utf8_lossy(&b).into_owned();
    }
    if let Ok(Ok(b)) = tokio::time::timeout(DRAIN, collect_err).await {
        out.stderr = String::from_utf8_lossy(&b).into_owned();
    }
    match ended {
        Ok(0) => {
            out.passed = true;
            out.exit_code = Some(0);
            out.phase = None;
        }
        Ok(code) => {
            out.exit_code = Some(code);
            out.message = Some(format!("the command exited with {code}"));
        }
        Err(message) => out.message = Some(message),
    }
    if !out.passed {
        out.console_tail = Some(tail(&vm.tail()));
    }
    vm.finish(&mut client.requests, POWER_OFF).await;
    out.total_ms = ms(started.elapsed());
    // The next target's VM starts once this one has ended: never two at once.
    vm.wait_ended();
    out
}

fn secs(v: Option<u64>) -> String {
    v.map(|m| format!("{:.2}s", m as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// The kernel × result table, each failure's reason and tails under it, and the count;
/// the result in colour when `colour`.
pub fn table(outcomes: &[Outcome], colour: bool) -> String {
    let mut s = format!(
        "{:<14} {:<30} {:<6} {:>4} {:>7} {:>7} {:>9}  {}\n",
        "TARGET", "RELEASE", "RESULT", "EXIT", "BOOT", "SETUP", "DURATION", "PHASE"
    );
    for o in outcomes {
        let phase = o
            .phase
            .map(|p| format!("{p:?}").to_lowercase())
            .unwrap_or_default();
        let result = match o.passed {
            true => super::style::paint("pass  ", super::style::Colour::Green, colour),
            false => super::style::paint("FAIL  ", super::style::Colour::Red, colour),
        };
        s.push_str(&format!(
            "{:<14} {:<30} {} {:>4} {:>7} {:>7} {:>9}  {}\n",
            o.target,
            o.release,
            result,
            o.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            secs(o.boot_ms),
            secs(o.setup_ms),
            secs(o.duration_ms),
            phase
        ));
    }
    for o in outcomes.iter().filter(|o| !o.passed) {
        s.push_str(&format!(
            "\n--- {} failed ({}): {}\n",
            o.target,
            o.phase
                .map(|p| format!("{p:?}").to_lowercase())
                .unwrap_or_default(),
            o.message.as_deref().unwrap_or("")
        ));
        for (what, text) in [("stderr", &o.stderr), ("stdout", &o.stdout)] {
            if !text.trim().is_empty() {
                s.push_str(&format!("{what}:\n{}\n", tail(text)));
            }
        }
        if let Some(c) = o.console_tail.as_deref().filter(|c| !c.trim().is_empty()) {
            s.push_str(&format!("console:\n{c}\n"));
        }
    }
    let passed = outcomes.iter().filter(|o| o.passed).count();
    s.push_str(&format!(
        "\n{passed} passed, {} failed\n",
        outcomes.len() - passed
    ));
    s
}

/// The outcomes as a JUnit report: a test suite, a test case per target.
pub fn junit(outcomes: &[Outcome], command: &str) -> Result<String, String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("berth vm run");
    for o in outcomes {
        let status = match o.passed {
            true => TestCaseStatus::success(),
            false => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(o.message.clone().unwrap_or_default());
                s.set_type(
                    o.phase
                        .map(|p| format!("{p:?}").to_lowercase())
                        .unwrap_or_default(),
                );
                if let Some(c) = &o.console_tail {
                    s.set_description(c.clone());
                }
                s
            }
        };
        let mut case = TestCase::new(format!("{}: {command}", o.target), status);
        case.set_classname(format!("berth.kernel.{}", o.kernel));
        case.set_time(Duration::from_millis(o.total_ms));
        case.set_system_out_lossy(o.stdout.as_bytes());
        case.set_system_err_lossy(o.stderr.as_bytes());
        suite.add_test_case(case);
    }
    let mut report = Report::new("berth");
    report.add_test_suite(suite);
    report.to_string().map_err(|e| e.to_string())
}

/// Runs every target, then prints the table (or JSON) and writes the JUnit file.
pub async fn run_all(
    paths: &Paths,
    targets: &[(Target, VmConfig)],
    json: bool,
    junit_file: Option<&std::path::Path>,
) -> Result<i32, Error> {
    let mut outcomes = Vec::new();
    for (target, cfg) in targets {
        if !json {
            eprintln!("== {}: booting {} ...", target.name, cfg.kernel.name);
        }
        outcomes.push(run_target(paths, cfg, target).await);
    }
    if json {
        for o in &outcomes {
            println!("{}", serde_json::to_string(o).unwrap_or_default());
        }
    } else {
        print!("{}", table(&outcomes, super::style::enabled(false)));
    }
    if let Some(file) = junit_file {
        let command = targets
            .first()
            .map(|(t, _)| t.command.join(" "))
            .unwrap_or_default();
        let xml = junit(&outcomes, &command).map_err(Error::Usage)?;
        std::fs::write(file, xml)?;
    }
    Ok(match outcomes.iter().all(|o| o.passed) {
        true => 0,
        false => 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berth_toml_targets_as_vmtest_writes_them() {
        let text = r#"
command = "uname -r"
[[target]]
name = "lts"
kernel = "6.1"
cpus = 2
memory = "1G"
kernel_args = "quiet  loglevel=3"
[[target]]
kernel = "cloud"
command = "nproc"
"#;
        let t = parse_config(text, &[]).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].name.as_str(), t[0].cpus), ("lts", Some(2)));
        assert_eq!(t[0].kernel_args, ["quiet", "loglevel=3"]);
        assert_eq!(t[0].command, ["/bin/sh", "-c", "uname -r"]);
        assert_eq!(t[1].name, "cloud");
        assert_eq!(t[1].command[2], "nproc");
        assert!(parse_config("[[target]]\nkernel = \"6.1\"\n", &[])
            .unwrap_err()
            .contains("no command"));
        assert!(
            parse_config("[[target]]\nkernel = \"6.1\"\ncpu = 2\n", &["true".into()])
                .unwrap_err()
                .contains("cpu")
        );
    }

    fn outcome(target: &str, passed: bool) -> Outcome {
        Outcome {
            target: target.into(),
            kernel: target.into(),
            release: format!("{target}.0"),
            passed,
            exit_code: Some(if passed { 0 } else { 3 }),
            phase: (!passed).then_some(Phase::Command),
            boot_ms: Some(1200),
            setup_ms: Some(40),
            duration_ms: Some(5),
            total_ms: 1300,
            stdout: "out\n".into(),
            stderr: if passed {
                String::new()
            } else {
                "boom\n".into()
            },
            message: (!passed).then(|| "the command exited with 3".into()),
            console_tail: (!passed).then(|| "[ 0.1] console line".into()),
        }
    }

    #[test]
    fn the_table_shows_each_target_and_the_failures_tails() {
        let t = table(&[outcome("6.1", true), outcome("cloud", false)], false);
        let coloured = table(&[outcome("cloud", false)], true);
        assert!(coloured.contains("\x1b[31mFAIL  \x1b[0m"), "{coloured}");
        assert!(
            t.contains("6.1.0") && t.contains("pass") && t.contains("1.20s"),
            "{t}"
        );
        assert!(t.contains("FAIL") && t.contains("command"), "{t}");
        assert!(
            t.contains("--- cloud failed (command): the command exited with 3"),
            "{t}"
        );
        assert!(t.contains("boom") && t.contains("console line"), "{t}");
        assert!(t.ends_with("1 passed, 1 failed\n"), "{t}");
        let json = serde_json::to_value(outcome("cloud", false)).unwrap();
        assert_eq!(json["phase"], "command");
        assert_eq!(json["boot_ms"], 1200);
    }

    #[test]
    fn junit_has_a_case_per_target_and_the_failure() {
        let xml = junit(&[outcome("6.1", true), outcome("cloud", false)], "uname -r").unwrap();
        assert!(
            xml.contains(r#"tests="2""#) && xml.contains(r#"failures="1""#),
            "{xml}"
        );
        assert!(
            xml.contains("cloud: uname -r") && xml.contains("the command exited with 3"),
            "{xml}"
        );
    }
}
