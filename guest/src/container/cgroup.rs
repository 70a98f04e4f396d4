//! cgroup v2 for containers: enabling controllers, writing a container's limits into its
//! cgroup directory, the freezer (`docker pause`) and the list of its pids. Every
//! function takes the directory as a path, so it is tested in a temp dir.

use std::io;
use std::path::Path;

use berth_protocol::Resources;

/// The controllers containers get.
pub const CONTROLLERS: &str = berth_protocol::CGROUP_CONTROLLERS;
/// cpu.max period in microseconds (Docker's default CFS period).
const CPU_PERIOD: u64 = 100_000;

/// Enables the container controllers for the children of `root` and of `root/berth`.
pub fn enable_controllers(root: &Path, parent: &Path) -> io::Result<()> {
    std::fs::write(root.join("cgroup.subtree_control"), CONTROLLERS)?;
    std::fs::create_dir_all(parent)?;
    std::fs::write(parent.join("cgroup.subtree_control"), CONTROLLERS)
}

/// Docker's conversion of `--cpu-shares` (2..262144) to cgroup v2 `cpu.weight` (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Writes `r` into the cgroup directory `dir`. `device` maps a device path to
/// `major:minor` (a stat in the guest; a fake in tests).
pub fn apply(
    dir: &Path,
    r: &Resources,
    device: impl Fn(&str) -> io::Result<String>,
) -> io::Result<()> {
    let write = |file: &str, value: String| {
        std::fs::write(dir.join(file), &value)
            .map_err(|e| io::Error::new(e.kind(), format!("{file} = {value}: {e}")))
    };
    if let Some(bytes) = r.memory {
        write("memory.max", bytes.to_string())?;
        // No swap beyond the limit, as `--memory-swap` equal to `--memory`.
        if dir.join("memory.swap.max").exists() {
            write("memory.swap.max", "0".into())?;
        }
    }
    if let Some(milli) = r.millicpus {
        write(
            "cpu.max",
            format!("{} {CPU_PERIOD}", milli * CPU_PERIOD / 1000),
        )?;
    }
    if let Some(shares) = r.cpu_shares {
        write("cpu.weight", shares_to_weight(shares).to_string())?;
    }
    if let Some(cpus) = &r.cpuset_cpus {
        write("cpuset.cpus", cpus.clone())?;
    }
    if let Some(limit) = r.pids_limit {
        write(
            "pids.max",
            if limit > 0 {
                limit.to_string()
            } else {
                "max".into()
            },
        )?;
    }
    for (path, rate) in &r.device_read_bps {
        write("io.max", format!("{} rbps={rate}", device(path)?))?;
    }
    for (path, rate) in &r.device_write_bps {
        write("io.max", format!("{} wbps={rate}", device(path)?))?;
    }
    Ok(())
}

/// `major:minor` of a block device node.
pub fn device_numbers(path: &str) -> io::Result<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path)?;
    if !meta.file_type().is_block_device() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path} is not a block device"),
        ));
    }
    let rdev = meta.rdev();
    Ok(format!("{}:{}", libc::major(rdev), libc::minor(rdev)))
}

/// Whether the container's cgroup saw an OOM kill.
pub fn oom_killed(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("memory.events"))
        .map(|t| {
            t.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    > 0
            })
        })
        .unwrap_or(false)
}

/// The pids in the cgroup `dir` and in every cgroup below it, sorted. Child cgroups that
/// disappear while they are read are skipped; `dir` itself must be readable.
pub fn pids(dir: &Path) -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    collect_pids(dir, &mut out)?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn collect_pids(dir: &Path, out: &mut Vec<u32>) -> io::Result<()> {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs"))?;
    out.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = collect_pids(&entry.path(), out);
        }
    }
    Ok(())
}

/// Whether `cgroup.events` (its text) says the cgroup is frozen.
pub fn parse_frozen(events: &str) -> Option<bool> {
    events
        .lines()
        .find_map(|l| l.strip_prefix("frozen "))
        .map(|v| v.trim() == "1")
}

/// Whether the cgroup `dir` is frozen now (`cgroup.events`).
pub fn is_frozen(dir: &Path) -> io::Result<bool> {
    let events = std::fs::read_to_string(dir.join("cgroup.events"))?;
    parse_frozen(&events).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "cgroup.events has no frozen line (no cgroup v2 freezer)",
        )
    })
}

/// Freezes (`frozen`) or thaws the cgroup `dir` and waits, blocking, until the kernel
/// reports it done, for at most `deadline`.
pub fn set_frozen(dir: &Path, frozen: bool, deadline: std::time::Duration) -> io::Result<()> {
    let value = if frozen { "1" } else { "0" };
    std::fs::write(dir.join("cgroup.freeze"), value)
        .map_err(|e| io::Error::new(e.kind(), format!("cgroup.freeze = {value}: {e}")))?;
    let start = std::time::Instant::now();
    loop {
        if is_frozen(dir)? == frozen {
            return Ok(());
        }
        if start.elapsed() >= deadline {
            let what = if frozen { "freeze" } else { "thaw" };
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the container did not {what} within {deadline:?}"),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, f: &str) -> String {
        std::fs::read_to_string(dir.join(f)).unwrap()
    }

    #[test]
    fn limits_land_in_the_interface_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("memory.swap.max"), "max").unwrap();
        let r = Resources {
            memory: Some(32 << 20),
            millicpus: Some(1500),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(20),
            device_read_bps: vec![("/dev/vda".into(), 1_048_576)],
            device_write_bps: vec![],
        };
        apply(d, &r, |p| {
            assert_eq!(p, "/dev/vda");
            Ok("254:0".into())
        })
        .unwrap();
        assert_eq!(read(d, "memory.max"), "33554432");
        assert_eq!(read(d, "memory.swap.max"), "0");
        assert_eq!(read(d, "cpu.max"), "150000 100000");
        assert_eq!(read(d, "cpu.weight"), "20");
        assert_eq!(read(d, "cpuset.cpus"), "0");
        assert_eq!(read(d, "pids.max"), "20");
        assert_eq!(read(d, "io.max"), "254:0 rbps=1048576");
    }

    #[test]
    fn unlimited_pids_and_no_limits() {
        let tmp = tempfile::tempdir().unwrap();
        apply(
            tmp.path(),
            &Resources {
                pids_limit: Some(-1),
                ..Default::default()
            },
            |_| unreachable!(),
        )
        .unwrap();
        assert_eq!(read(tmp.path(), "pids.max"), "max");
        assert!(!tmp.path().join("memory.max").exists());
    }

    #[test]
    fn cpu_shares_follow_dockers_formula() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn oom_kills_are_read_from_memory_events() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert!(oom_killed(tmp.path()));
        std::fs::write(tmp.path().join("memory.events"), "oom_kill 0\n").unwrap();
        assert!(!oom_killed(tmp.path()));
    }

    #[test]
    fn pids_include_child_cgroups() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("cgroup.procs"), "30\n10\n").unwrap();
        std::fs::write(d.join("a/cgroup.procs"), "").unwrap();
        std::fs::write(d.join("a/b/cgroup.procs"), "20\n10\n").unwrap();
        assert_eq!(pids(d).unwrap(), [10, 20, 30]);
        assert!(pids(&d.join("missing")).is_err());
    }

    #[test]
    fn freezing_waits_for_cgroup_events() {
        let events = "populated 1\nfrozen 0\n";
        assert_eq!(parse_frozen(events), Some(false));
        assert_eq!(parse_frozen("populated 1\nfrozen 1\n"), Some(true));
        assert_eq!(parse_frozen("populated 1\n"), None);

        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let short = std::time::Duration::from_millis(50);
        // The kernel reports the change: done.
        std::fs::write(d.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        set_frozen(d, true, short).unwrap();
        assert_eq!(read(d, "cgroup.freeze"), "1");
        assert!(is_frozen(d).unwrap());
        // It never does: a clear error after the deadline.
        let err = set_frozen(d, false, short).unwrap_err();
        assert_eq!(read(d, "cgroup.freeze"), "0");
        assert!(err.to_string().contains("did not thaw"), "{err}");
        // Not a cgroup at all.
        assert!(set_frozen(&d.join("missing"), true, short).is_err());
    }
}
