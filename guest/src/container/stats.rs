//! `docker stats`: a container's cgroup v2 counters plus the guest-wide CPU and memory
//! figures Docker's percentages need. The cgroup directory and the proc directory are
//! parameters, so everything is tested on sample files in a temp dir.

use std::io;
use std::path::Path;

use berth_protocol::CgroupStats;

use super::top::USER_HZ;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Reads the counters of the cgroup `dir`, with the guest-wide figures from `proc`
/// (normally `/proc`). `cpu.stat` must exist (every cgroup v2 directory has it); the
/// files of a controller that is not enabled read as zero (the limit as unlimited).
pub fn read(dir: &Path, proc: &Path) -> io::Result<CgroupStats> {
    let cpu = CpuStat::parse(&std::fs::read_to_string(dir.join("cpu.stat"))?);
    let proc_stat = SystemCpu::parse(&std::fs::read_to_string(proc.join("stat"))?);
    let memory_limit = match optional(&dir.join("memory.max"))?.as_deref().map(limit) {
        Some(Some(bytes)) => bytes,
        // Unlimited, or no memory controller: what the guest has.
        _ => {
            let meminfo = std::fs::read_to_string(proc.join("meminfo"))?;
            mem_total(&meminfo).ok_or_else(|| bad("/proc/meminfo has no MemTotal"))?
        }
    };
    let number = |file: &str| -> io::Result<u64> {
        Ok(optional(&dir.join(file))?
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0))
    };
    Ok(CgroupStats {
        cpu_total_ns: cpu.usage_usec * 1000,
        cpu_user_ns: cpu.user_usec * 1000,
        cpu_system_ns: cpu.system_usec * 1000,
        system_cpu_ns: proc_stat.total_ticks * (NANOS_PER_SEC / USER_HZ),
        online_cpus: proc_stat.cpus,
        memory_usage: number("memory.current")?,
        memory_limit,
        memory_inactive_file: optional(&dir.join("memory.stat"))?
            .and_then(|t| keyed(&t, "inactive_file"))
            .unwrap_or(0),
        pids_current: number("pids.current")?,
        pids_limit: optional(&dir.join("pids.max"))?.as_deref().and_then(limit),
        cpu_periods: cpu.nr_periods,
        cpu_throttled_periods: cpu.nr_throttled,
        cpu_throttled_ns: cpu.throttled_usec * 1000,
        io: optional(&dir.join("io.stat"))?
            .map(|t| io_stat(&t))
            .unwrap_or_default(),
        networks: first_process(dir)
            .and_then(|pid| std::fs::read_to_string(proc.join(pid).join("net/dev")).ok())
            .map(|t| net_dev(&t))
            .unwrap_or_default(),
    })
}

/// A process of the cgroup, whose network namespace is the container's.
fn first_process(dir: &Path) -> Option<String> {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    procs.lines().next().map(|l| l.trim().to_string())
}

/// `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N` per line.
pub fn io_stat(text: &str) -> Vec<berth_protocol::IoStat> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (major, minor) = fields.next()?.split_once(':')?;
            let mut s = berth_protocol::IoStat {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                ..Default::default()
            };
            for f in fields {
                let Some((k, v)) = f.split_once('=') else {
                    continue;
                };
                let v = v.parse().unwrap_or(0);
                match k {
                    "rbytes" => s.read_bytes = v,
                    "wbytes" => s.write_bytes = v,
                    "rios" => s.reads = v,
                    "wios" => s.writes = v,
                    _ => {}
                }
            }
            Some(s)
        })
        .collect()
}

/// `/proc/net/dev`: two header lines, then `name: rx(8 numbers) tx(8 numbers)`.
pub fn net_dev(text: &str) -> Vec<berth_protocol::InterfaceStat> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            if n.len() < 12 {
                return None;
            }
            Some(berth_protocol::InterfaceStat {
                name: name.to_string(),
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            })
        })
        .collect()
}

/// `cpu.stat`, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub usage_usec: u64,
    pub user_usec: u64,
    pub system_usec: u64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: u64,
}

impl CpuStat {
    pub fn parse(text: &str) -> CpuStat {
        CpuStat {
            usage_usec: keyed(text, "usage_usec").unwrap_or(0),
            user_usec: keyed(text, "user_usec").unwrap_or(0),
            system_usec: keyed(text, "system_usec").unwrap_or(0),
            nr_periods: keyed(text, "nr_periods").unwrap_or(0),
            nr_throttled: keyed(text, "nr_throttled").unwrap_or(0),
            throttled_usec: keyed(text, "throttled_usec").unwrap_or(0),
        }
    }
}

/// The guest's CPU time and CPU count, from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemCpu {
    /// All CPUs' time in ticks, as Docker sums it: user, nice, system, idle, iowait, irq
    /// and softirq of the `cpu` line (guest and guest_nice are already in user and nice).
    pub total_ticks: u64,
    /// The `cpuN` lines: CPUs online.
    pub cpus: u32,
}

impl SystemCpu {
    pub fn parse(text: &str) -> SystemCpu {
        let mut out = SystemCpu::default();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("cpu") => {
                    out.total_ticks = fields.take(7).filter_map(|f| f.parse::<u64>().ok()).sum();
                }
                Some(name) if name.starts_with("cpu") => out.cpus += 1,
                _ => {}
            }
        }
        out
    }
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A limit file (`memory.max`, `pids.max`): `None` for `max`.
pub fn limit(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// MemTotal from `/proc/meminfo`, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A file's text, or `None` when it does not exist.
fn optional(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_STAT: &str = "cpu  100 5 50 1000 10 1 2 7 0 0\n\
        cpu0 50 2 25 500 5 1 1 3 0 0\n\
        cpu1 50 3 25 500 5 0 1 4 0 0\n\
        intr 12345 0 0\nctxt 999\nbtime 1700000000\nprocesses 321\n";
    const MEMINFO: &str = "MemTotal:        2030400 kB\nMemFree:         1800000 kB\n";

    #[test]
    fn parsers() {
        assert_eq!(
            CpuStat::parse("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n"),
            CpuStat {
                usage_usec: 1500,
                user_usec: 1000,
                system_usec: 500,
                ..CpuStat::default()
            }
        );
        assert_eq!(
            SystemCpu::parse(PROC_STAT),
            SystemCpu {
                total_ticks: 1168,
                cpus: 2
            }
        );
        assert_eq!(
            keyed("anon 5\ninactive_file 4096\n", "inactive_file"),
            Some(4096)
        );
        assert_eq!(keyed("inactive_filex 1\n", "inactive_file"), None);
        assert_eq!(limit("max\n"), None);
        assert_eq!(limit("1048576\n"), Some(1_048_576));
        assert_eq!(mem_total(MEMINFO), Some(2_030_400 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn stats_of_a_limited_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let (cg, proc) = (tmp.path().join("cg"), tmp.path().join("proc"));
        std::fs::create_dir_all(&cg).unwrap();
        std::fs::create_dir_all(&proc).unwrap();
        write(&proc, "stat", PROC_STAT);
        write(&proc, "meminfo", MEMINFO);
        write(
            &cg,
            "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 250\n",
        );
        write(
            &cg,
            "io.stat",
            "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        );
        write(&cg, "cgroup.procs", "42\n43\n");
        std::fs::create_dir_all(proc.join("42/net")).unwrap();
        write(
            &proc.join("42/net"),
            "dev",
            "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 1000 10 1 2 0 0 0 0 500 5 3 4 0 0 0 0\n",
        );
        write(&cg, "memory.current", "8388608\n");
        write(&cg, "memory.max", "33554432\n");
        write(&cg, "memory.stat", "anon 1\nfile 2\ninactive_file 4096\n");
        write(&cg, "pids.current", "3\n");
        write(&cg, "pids.max", "20\n");
        assert_eq!(
            read(&cg, &proc).unwrap(),
            CgroupStats {
                cpu_total_ns: 1_500_000,
                cpu_user_ns: 1_000_000,
                cpu_system_ns: 500_000,
                system_cpu_ns: 11_680_000_000,
                online_cpus: 2,
                memory_usage: 8_388_608,
                memory_limit: 33_554_432,
                memory_inactive_file: 4096,
                pids_current: 3,
                pids_limit: Some(20),
                cpu_periods: 10,
                cpu_throttled_periods: 4,
                cpu_throttled_ns: 250_000,
                io: vec![berth_protocol::IoStat {
                    major: 254,
                    minor: 0,
                    read_bytes: 4096,
                    write_bytes: 8192,
                    reads: 1,
                    writes: 2,
                }],
                networks: vec![berth_protocol::InterfaceStat {
                    name: "eth0".into(),
                    rx_bytes: 1000,
                    rx_packets: 10,
                    rx_errors: 1,
                    rx_dropped: 2,
                    tx_bytes: 500,
                    tx_packets: 5,
                    tx_errors: 3,
                    tx_dropped: 4,
                }],
            }
        );
    }

    #[test]
    fn unlimited_and_missing_controllers() {
        let tmp = tempfile::tempdir().unwrap();
        let (cg, proc) = (tmp.path().join("cg"), tmp.path().join("proc"));
        std::fs::create_dir_all(&cg).unwrap();
        std::fs::create_dir_all(&proc).unwrap();
        write(&proc, "stat", PROC_STAT);
        write(&proc, "meminfo", MEMINFO);
        // No cpu.stat: not a cgroup.
        assert!(read(&cg, &proc).is_err());
        write(&cg, "cpu.stat", "usage_usec 7\n");
        write(&cg, "memory.max", "max\n");
        write(&cg, "pids.max", "max\n");
        let s = read(&cg, &proc).unwrap();
        assert_eq!(s.cpu_total_ns, 7000);
        assert_eq!(s.memory_limit, 2_030_400 * 1024);
        assert_eq!(s.pids_limit, None);
        assert_eq!((s.memory_usage, s.pids_current), (0, 0));
    }
}
