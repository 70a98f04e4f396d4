//! The measurements of `berth bench`, each by running the berth binary as a user would
//! (its wall time), in a private installation (`BERTH_HOME`) with a restricted uplink, so
//! nothing of the user's machines is touched and no packet leaves the computer. A command
//! that fails fails its measure (with the reason in the report's notes): a failed run is
//! never a fast sample.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Density, KernelReport, Memory, Plan, Startup, Stat};

/// A private berth installation driven by the plan's binary.
struct Home<'a> {
    plan: &'a Plan,
    kernel: &'a str,
    dir: tempfile::TempDir,
}

impl Home<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.plan.berth);
        cmd.args(args)
            .env("BERTH_HOME", self.dir.path())
            .env("BERTH_ASSETS", &self.plan.assets)
            .env("BERTH_KERNEL", self.kernel)
            .env("BERTH_UPLINK", "restricted")
            .env_remove("BERTH_MACHINE")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs berth to the end; its stdout and wall time, or why it failed.
    fn run(&self, args: &[&str]) -> Result<(String, f64), String> {
        timed(&mut self.command(args))
    }
}

/// Runs `cmd` and times it; then, untimed, waits for a VM it left ending
/// ([`super::settle`]), so that no two VMs run at once.
fn timed(cmd: &mut Command) -> Result<(String, f64), String> {
    super::settle::adopt_orphans();
    let start = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    let took = start.elapsed().as_secs_f64();
    super::settle::settle(super::settle::SETTLE_DEADLINE)?;
    if !out.status.success() {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        return Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), took))
}

/// `runs` samples of `f`; the first failure ends the measure.
fn sample(runs: usize, mut f: impl FnMut() -> Result<f64, String>) -> Result<Stat, String> {
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        v.push(f()?);
    }
    Stat::of(&v).ok_or_else(|| "no runs".to_string())
}

/// Keeps a measure, or its failure as a note.
fn keep<T>(notes: &mut Vec<String>, what: &str, r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            notes.push(format!("{what}: {e}"));
            None
        }
    }
}

/// The clock the scripts read: `/proc/uptime` in centiseconds (busybox's `date` has no
/// nanoseconds), the same in a container, the guest and a Linux host.
const NOW: &str = "$(awk '{printf \"%d\", $1 * 100}' /proc/uptime)";

/// A read that times itself after an untimed write of the file it reads.
fn read_script(write: &str, read: &str) -> String {
    format!("set -e; {write}; a={NOW}; {read}; b={NOW}; echo $(( (b - a) * 10000 ))")
}

/// The script that times itself in the guest or on the host: prints microseconds.
fn timed_script(body: &str) -> String {
    format!("set -e; a={NOW}; {body}; b={NOW}; echo $(( (b - a) * 10000 ))")
}

fn micros(out: &str) -> Result<f64, String> {
    out.lines()
        .last()
        .and_then(|l| l.trim().parse::<f64>().ok())
        .map(|us| us / 1e6)
        .ok_or_else(|| format!("no timing in {out:?}"))
}

/// Everything for one kernel. `progress` is told what is being measured.
pub fn run_kernel(plan: &Plan, kernel: &str, progress: &dyn Fn(&str)) -> KernelReport {
    let mut r = KernelReport {
        kernel: kernel.to_string(),
        ..Default::default()
    };
    let home = match tempfile::Builder::new().prefix("berth-bench-").tempdir() {
        Ok(dir) => Home { plan, kernel, dir },
        Err(e) => {
            r.notes.push(format!("a temporary directory: {e}"));
            return r;
        }
    };
    let n = plan.runs;
    let vm = [
        "vm", "run", "--kernel", kernel, "--cpus", "2", "--memory", "1G", "--",
    ];
    let in_vm = |script: &str| {
        let mut args = vm.to_vec();
        args.extend(["sh", "-c", script]);
        home.run(&args)
    };
    let mut notes = Vec::new();

    progress("a cold VM to a command");
    r.release = keep(
        &mut notes,
        "kernel release",
        in_vm("uname -r").map(|(o, _)| o.trim().to_string()),
    )
    .unwrap_or_default();
    let mut cmd = vm.to_vec();
    cmd.push("true");
    let cold_vm = sample(n, || home.run(&cmd).map(|(_, t)| t));
    let mut startup = Startup {
        cold_vm: keep(&mut notes, "cold VM", cold_vm),
        ..Default::default()
    };

    progress("the machine and its image");
    let image = plan.image.display().to_string();
    let ready = home
        .run(&["load", "-i", &image])
        .and_then(|_| {
            home.run(&[
                "machine", "start", "--kernel", kernel, "--cpus", "2", "--memory", "1G",
            ])
        })
        .and_then(|_| home.run(&["run", "--rm", "busybox", "true"]));
    if keep(&mut notes, "machine start", ready).is_some() {
        progress("containers on a running machine");
        startup.warm_container = keep(
            &mut notes,
            "warm container",
            sample(n, || {
                home.run(&["run", "--rm", "busybox", "true"])
                    .map(|(_, t)| t)
            }),
        );
        let boxed = home.run(&[
            "run",
            "-d",
            "--name",
            "box",
            "--tmpfs",
            "/scratch:size=512m",
            "busybox",
            "sleep",
            "1000000",
        ]);
        if keep(&mut notes, "an idle container", boxed).is_some() {
            startup.exec = keep(
                &mut notes,
                "exec",
                sample(n, || home.run(&["exec", "box", "true"]).map(|(_, t)| t)),
            );
            progress("memory");
            r.memory = memory(&home, plan, &mut notes);
            progress("CPU and I/O in a container");
            r.cpu.container = keep(
                &mut notes,
                "CPU loop in a container",
                sample(n, || {
                    home.run(&["exec", "box", "sh", "-c", &timed_script(&cpu_loop(plan))])
                        .and_then(|(o, _)| micros(&o))
                }),
            );
            let (w, rd) = io_scripts(plan, "/scratch/berth-bench");
            r.io_write.container = keep(
                &mut notes,
                "tmpfs write in a container",
                sample(n, || {
                    home.run(&["exec", "box", "sh", "-c", &timed_script(&w)])
                        .and_then(|(o, _)| micros(&o))
                }),
            );
            r.io_read.container = keep(
                &mut notes,
                "tmpfs read in a container",
                sample(n, || {
                    home.run(&["exec", "box", "sh", "-c", &read_script(&w, &rd)])
                        .and_then(|(o, _)| micros(&o))
                }),
            );
        }
        progress("a cold container (the machine's boot included)");
        startup.cold_container = keep(
            &mut notes,
            "cold container",
            sample(n.min(3), || {
                home.run(&["machine", "stop", "-t", "0"])?;
                home.run(&["run", "--rm", "busybox", "true"])
                    .map(|(_, t)| t)
            }),
        );
        let _ = home.run(&["machine", "rm", "-f"]);
    }

    progress("CPU and I/O directly in the guest");
    r.cpu.guest = keep(
        &mut notes,
        "CPU loop in the guest",
        sample(n, || {
            in_vm(&timed_script(&cpu_loop(plan))).and_then(|(o, _)| micros(&o))
        }),
    );
    let (w, rd) = io_scripts(plan, "/tmp/berth-bench");
    r.io_write.guest = keep(
        &mut notes,
        "tmpfs write in the guest",
        sample(n, || in_vm(&timed_script(&w)).and_then(|(o, _)| micros(&o))),
    );
    r.io_read.guest = keep(
        &mut notes,
        "tmpfs read in the guest",
        sample(n, || {
            in_vm(&read_script(&w, &rd)).and_then(|(o, _)| micros(&o))
        }),
    );

    progress("CPU and I/O on the host");
    host_overhead(plan, &mut r, &mut notes);

    progress("crun in the same guest");
    match crate::bench::crun::measure(
        &plan.berth,
        &plan.assets,
        kernel,
        if plan.runs > 3 { 20 } else { 5 },
    ) {
        Ok(t) => {
            let one = |d: std::time::Duration| Stat {
                median: d.as_secs_f64(),
                min: d.as_secs_f64(),
                max: d.as_secs_f64(),
                runs: t.batch as usize,
            };
            startup.crun_run = Some(one(t.run));
            startup.crun_exec = Some(one(t.exec));
        }
        Err(e) => notes.push(format!("crun in the guest: {e}")),
    }
    r.startup = startup;
    r.density = density(plan, &r.memory);
    r.notes = notes;
    r
}

fn cpu_loop(plan: &Plan) -> String {
    format!(
        "i=0; while [ $i -lt {} ]; do i=$((i+1)); done",
        plan.loop_iterations
    )
}

/// Writing and then reading `io_mib` MiB of a file on a tmpfs (`path`), so the container,
/// the guest and the host do the same work without their disks in the way.
fn io_scripts(plan: &Plan, path: &str) -> (String, String) {
    (
        format!(
            "dd if=/dev/zero of={path} bs=1048576 count={} 2>/dev/null; sync",
            plan.io_mib
        ),
        format!("dd if={path} of=/dev/null bs=1048576 2>/dev/null; rm -f {path}"),
    )
}

fn meminfo_used_mib(text: &str) -> Option<f64> {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((field("MemTotal:")? - field("MemAvailable:")?) / 1024.0)
}

fn status_rss_mib(text: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
}

/// The RSS of `pid` and of its QEMU child, MiB (Linux hosts).
fn host_rss(pid: u32) -> (Option<f64>, Option<f64>) {
    let read = |p: &str| std::fs::read_to_string(format!("/proc/{p}/status")).ok();
    let own = read(&pid.to_string()).as_deref().and_then(status_rss_mib);
    let mut qemu = None;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(status) = read(&name) else { continue };
            let ppid = status
                .lines()
                .find(|l| l.starts_with("PPid:"))
                .and_then(|l| l.split_whitespace().nth(1));
            let comm = status.lines().next().unwrap_or("");
            if ppid == Some(&pid.to_string()) && comm.contains("qemu") {
                qemu = status_rss_mib(&status);
            }
        }
    }
    (own, qemu)
}

fn memory(home: &Home, plan: &Plan, notes: &mut Vec<String>) -> Memory {
    let mut m = Memory::default();
    let used = |notes: &mut Vec<String>| {
        keep(
            notes,
            "guest memory",
            home.run(&["exec", "box", "cat", "/proc/meminfo"])
                .and_then(|(o, _)| {
                    meminfo_used_mib(&o).ok_or_else(|| "no MemAvailable in /proc/meminfo".into())
                }),
        )
    };
    m.guest_used = used(notes);
    let pid = std::fs::read_to_string(home.dir.path().join("machines/default/daemon.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok());
    match pid {
        Some(pid) => (m.daemon_rss, m.qemu_rss) = host_rss(pid),
        None => notes.push("host RSS: no daemon pid".into()),
    }
    // The agent's RSS: berth-init is PID 1 of a VM of its own.
    let agent = home.run(&[
        "vm",
        "run",
        "--kernel",
        home.kernel,
        "--",
        "cat",
        "/proc/1/status",
    ]);
    m.agent_rss = keep(
        notes,
        "agent RSS",
        agent.and_then(|(o, _)| status_rss_mib(&o).ok_or_else(|| "no VmRSS".into())),
    );
    // Each idle container: the guest's used memory before and after starting some.
    let before = m.guest_used;
    let mut started = 0;
    for i in 0..plan.containers {
        let name = format!("idle{i}");
        if home
            .run(&["run", "-d", "--name", &name, "busybox", "sleep", "1000000"])
            .is_ok()
        {
            started += 1;
        }
    }
    let after = used(notes);
    if let (Some(b), Some(a), true) = (before, after, started > 0) {
        m.per_container = Some(((a - b) / started as f64).max(0.0));
    }
    for i in 0..plan.containers {
        let _ = home.run(&["rm", "-f", &format!("idle{i}")]);
    }
    m
}

fn host_overhead(plan: &Plan, r: &mut KernelReport, notes: &mut Vec<String>) {
    let shell = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .find(|p| Path::new(p).is_file())
        .map(|p| (p.to_string(), true))
        .unwrap_or(("sh".to_string(), false));
    if !shell.1 {
        notes.push("the host has no busybox: its CPU loop ran in sh".into());
    }
    let host = |script: &str| {
        let mut cmd = Command::new(&shell.0);
        if shell.1 {
            cmd.arg("sh");
        }
        cmd.args(["-c", script]);
        timed(&mut cmd).and_then(|(o, _)| micros(&o))
    };
    let n = plan.runs;
    r.cpu.host = keep(
        notes,
        "CPU loop on the host",
        sample(n, || host(&timed_script(&cpu_loop(plan)))),
    );
    let shm = Path::new("/dev/shm");
    let tmpfs = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = tmpfs.join(format!("berth-bench-{}", std::process::id()));
    let path = dir.display().to_string();
    let (w, rd) = io_scripts(plan, &path);
    r.io_write.host = keep(
        notes,
        "tmpfs write on the host",
        sample(n, || host(&timed_script(&w))),
    );
    r.io_read.host = keep(
        notes,
        "tmpfs read on the host",
        sample(n, || host(&read_script(&w, &rd))),
    );
    let _ = std::fs::remove_file(&dir);
}

/// How many idle containers one machine holds in the budget (after the machine's own
/// QEMU and daemon), against idle VMs of the same size (QEMU's RSS each).
fn density(plan: &Plan, m: &Memory) -> Density {
    let budget = plan.budget_mib as f64;
    let containers = match (m.qemu_rss, m.daemon_rss, m.per_container) {
        (Some(q), Some(d), Some(c)) if budget > q + d => {
            Some(((budget - q - d) / c.max(0.01)).floor() as u64)
        }
        (Some(_), Some(_), Some(_)) => Some(0),
        _ => None,
    };
    let vms = m
        .qemu_rss
        .filter(|q| *q > 0.0)
        .map(|q| (budget / q).floor() as u64);
    Density {
        budget_mib: plan.budget_mib,
        containers,
        vms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_give_memory_in_mib() {
        let meminfo = "MemTotal:        1024000 kB\nMemFree:  1 kB\nMemAvailable:     921600 kB\n";
        assert_eq!(meminfo_used_mib(meminfo), Some(100.0));
        assert_eq!(
            status_rss_mib("Name:\tqemu\nVmRSS:\t  204800 kB\n"),
            Some(200.0)
        );
        assert_eq!(micros("noise\n1500000\n"), Ok(1.5));
        assert!(micros("").is_err());
    }

    #[test]
    fn density_leaves_the_machine_its_own_memory() {
        let plan = Plan::new("b".into(), "a".into(), "i".into(), true);
        let m = Memory {
            qemu_rss: Some(200.0),
            daemon_rss: Some(12.0),
            per_container: Some(1.5),
            ..Default::default()
        };
        let d = density(&plan, &m);
        assert_eq!(
            (d.budget_mib, d.containers, d.vms),
            (512, Some(200), Some(2))
        );
    }
}
