//! `docker top`: the processes of a container's cgroup, as `ps -ef` shows them, read from
//! `/proc`. The proc directory is a parameter, so the reading is tested on sample files.

use std::io;
use std::path::Path;

use berth_protocol::ProcessInfo;

/// Clock ticks per second in `/proc` (USER_HZ: 100 on every x86_64 kernel; fixed by its ABI).
pub const USER_HZ: u64 = 100;

/// The fields of `/proc/<pid>/stat` that `top` and the liveness check need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    /// User CPU time, ticks.
    pub utime: u64,
    /// System CPU time, ticks.
    pub stime: u64,
    /// Start time, ticks since boot.
    pub starttime: u64,
}

/// Parses `/proc/<pid>/stat`. The command name sits in parentheses and may itself hold
/// spaces and parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    // Fields 3.. of proc(5): state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt,
    // cminflt, majflt, cmajflt, utime (14), stime (15), ..., starttime (22).
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        starttime: field(22)?.parse().ok()?,
    })
}

/// The real uid from `/proc/<pid>/status` (`Uid:` real, effective, saved, fs).
pub fn parse_real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// The command line from `/proc/<pid>/cmdline` (arguments separated by NULs), or
/// `[comm]` when it is empty (kernel threads, zombies), as ps does.
pub fn command_line(cmdline: &[u8], comm: &str) -> String {
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let joined = args.join(" ");
    let joined = joined.trim_end();
    if joined.is_empty() {
        format!("[{comm}]")
    } else {
        joined.to_string()
    }
}

/// One process, read under `proc`; `None` when it has gone (or its files make no sense).
pub fn process_info(proc: &Path, pid: u32) -> Option<ProcessInfo> {
    let dir = proc.join(pid.to_string());
    let stat = parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
    let uid = parse_real_uid(&std::fs::read_to_string(dir.join("status")).ok()?)?;
    let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
    Some(ProcessInfo {
        pid,
        ppid: stat.ppid,
        uid,
        start_secs: stat.starttime / USER_HZ,
        cpu_secs: (stat.utime + stat.stime) / USER_HZ,
        cmd: command_line(&cmdline, &stat.comm),
    })
}

/// The processes of the cgroup `dir` and its descendants, by pid; processes that end
/// while they are read are left out, and so are berth's shims: they share the cgroup but
/// not the container's PID namespace (they are in ours, `proc/self`).
pub fn processes(dir: &Path, proc: &Path) -> io::Result<Vec<ProcessInfo>> {
    let pid_ns = |p: &str| std::fs::read_link(proc.join(p).join("ns/pid")).ok();
    let ours = pid_ns("self");
    Ok(super::cgroup::pids(dir)?
        .into_iter()
        .filter(|pid| ours.is_none() || pid_ns(&pid.to_string()) != ours)
        .filter_map(|pid| process_info(proc, pid))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (my (odd) cmd) S 4200 4242 4242 34816 4242 4194560 \
        120 0 0 0 250 130 0 0 20 0 1 0 12345 4096000 200 18446744073709551615";

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(
            s,
            Stat {
                comm: "my (odd) cmd".into(),
                state: 'S',
                ppid: 4200,
                utime: 250,
                stime: 130,
                starttime: 12345,
            }
        );
        assert_eq!(parse_stat("12 (sh) S 1"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn uid_is_the_real_one() {
        let status = "Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_real_uid(status), Some(1000));
        assert_eq!(parse_real_uid("Name:\tsh\n"), None);
    }

    #[test]
    fn command_lines_join_arguments() {
        assert_eq!(
            command_line(b"sleep\x00100\x00", "sleep"),
            "sleep 100".to_string()
        );
        assert_eq!(command_line(b"", "kworker/0:1"), "[kworker/0:1]");
        assert_eq!(command_line(b"a\xffb\0", "x"), "a\u{fffd}b");
    }

    #[test]
    fn processes_of_a_cgroup_tree_skip_the_vanished() {
        let tmp = tempfile::tempdir().unwrap();
        let (cg, proc) = (tmp.path().join("cg"), tmp.path().join("proc"));
        std::fs::create_dir_all(cg.join("child")).unwrap();
        std::fs::write(cg.join("cgroup.procs"), "6\n7\n9\n").unwrap();
        std::fs::write(cg.join("child/cgroup.procs"), "8\n").unwrap();
        // Pid 6 is a shim: in our PID namespace, not the container's.
        let ns = |pid: &str, ns: &str| {
            std::fs::create_dir_all(proc.join(pid).join("ns")).unwrap();
            std::os::unix::fs::symlink(ns, proc.join(pid).join("ns/pid")).unwrap();
        };
        ns("self", "pid:[4026531836]");
        ns("6", "pid:[4026531836]");
        for pid in ["7", "8"] {
            ns(pid, "pid:[4026532300]");
        }
        for (pid, cmdline) in [(6u32, &b"shim\0"[..]), (7, b"sh\0-c\0sleep 9\0"), (8, b"")] {
            let d = proc.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            let stat = format!("{pid} (sh) S 1 1 1 0 -1 0 0 0 0 0 250 150 0 0 20 0 1 0 1234 0 0");
            std::fs::write(d.join("stat"), stat).unwrap();
            std::fs::write(d.join("status"), "Uid:\t5\t5\t5\t5\n").unwrap();
            std::fs::write(d.join("cmdline"), cmdline).unwrap();
        }
        // Pid 9 is in cgroup.procs but has no /proc entry: it ended meanwhile.
        let ps = processes(&cg, &proc).unwrap();
        assert_eq!(
            ps,
            [
                ProcessInfo {
                    pid: 7,
                    ppid: 1,
                    uid: 5,
                    start_secs: 12,
                    cpu_secs: 4,
                    cmd: "sh -c sleep 9".into(),
                },
                ProcessInfo {
                    pid: 8,
                    ppid: 1,
                    uid: 5,
                    start_secs: 12,
                    cpu_secs: 4,
                    cmd: "[sh]".into(),
                },
            ]
        );
        assert!(processes(&tmp.path().join("nope"), &proc).is_err());
    }
}
