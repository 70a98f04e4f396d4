//! The last steps of every container process, its first (`rootfs`) and those that
//! `docker exec` adds (`join`): resolve the user from the container's /etc/passwd, build
//! the environment, enter the working directory, limit the capabilities, drop to the
//! user, set no_new_privs and the seccomp filter, and exec with Docker's PATH lookup and
//! exit codes (125 setup, 126 cannot invoke, 127 not found). Runs inside the container's
//! mount namespace, after its root is in place.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_protocol::Security;

use super::rootfs::final_env;
use super::user;
use crate::sys;

/// What to run and as whom.
pub struct Process<'a> {
    pub argv: &'a [String],
    /// The environment before Docker's additions ([`final_env`]).
    pub env: &'a [String],
    pub hostname: &'a str,
    /// `user[:group]` as Docker takes it; root when `None`.
    pub user: Option<&'a str>,
    pub cwd: &'a str,
    /// Create the working directory when it is missing (`docker run` does, `docker exec`
    /// does not).
    pub create_cwd: bool,
    /// The privileges: capabilities and seccomp.
    pub security: &'a Security,
    /// rlimits, OOM score, extra groups.
    pub options: &'a berth_protocol::ProcessOptions,
}

/// Becomes the process `p` describes and execs it; returns (exit code, message) only on
/// failure.
pub fn become_and_exec(p: &Process) -> (i32, String) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let id = match user::resolve(p.user, &passwd, &group) {
        Ok(id) => id,
        Err(e) => return (125, e),
    };
    let env = final_env(p.env, p.hostname, &id.home);
    if let Err(e) = enter_dir(p.cwd, p.create_cwd) {
        return (125, e);
    }
    let caps = match super::security::capability_set(p.security) {
        Ok(c) => c,
        Err(e) => return (125, e),
    };
    if let Err(e) = super::security::limit_bounding_set(&caps) {
        return (125, e);
    }
    if let Err(e) = apply_limits(p.options) {
        return (125, e);
    }
    let groups = match extra_groups(&p.options.group_add, &group) {
        Ok(g) => g,
        Err(e) => return (125, e),
    };
    // The process's terminal is its user's, as runc's console is, so it can open
    // /dev/tty. Best effort: in a private user namespace the terminal's owner is not
    // mapped and the terminal stays root's, still usable through the open descriptors.
    if id.uid != 0 && nix::unistd::isatty(0).unwrap_or(false) {
        let _ = nix::unistd::fchown(0, Some(id.uid.into()), None);
    }
    if let Err(e) = sys::set_identity_with_groups(id.uid, id.gid, &groups) {
        return (125, format!("becoming user {}:{}: {e}", id.uid, id.gid));
    }
    if let Err(e) = super::security::apply_process_caps(id.uid, &caps) {
        return (125, e);
    }
    let confined = !p.security.privileged && !p.security.seccomp_unconfined;
    if confined {
        if let Err(e) = super::seccomp::apply_default(&caps) {
            return (125, e);
        }
    }
    exec(p.argv, &env)
}

/// `--ulimit` and `--oom-score-adj`, set while still root (raising a hard limit needs it).
fn apply_limits(o: &berth_protocol::ProcessOptions) -> Result<(), String> {
    use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};
    for u in &o.ulimits {
        let resource = match u.name.as_str() {
            "as" => Resource::RLIMIT_AS,
            "core" => Resource::RLIMIT_CORE,
            "cpu" => Resource::RLIMIT_CPU,
            "data" => Resource::RLIMIT_DATA,
            "fsize" => Resource::RLIMIT_FSIZE,
            "locks" => Resource::RLIMIT_LOCKS,
            "memlock" => Resource::RLIMIT_MEMLOCK,
            "msgqueue" => Resource::RLIMIT_MSGQUEUE,
            "nice" => Resource::RLIMIT_NICE,
            "nofile" => Resource::RLIMIT_NOFILE,
            "nproc" => Resource::RLIMIT_NPROC,
            "rss" => Resource::RLIMIT_RSS,
            "rtprio" => Resource::RLIMIT_RTPRIO,
            "rttime" => Resource::RLIMIT_RTTIME,
            "sigpending" => Resource::RLIMIT_SIGPENDING,
            "stack" => Resource::RLIMIT_STACK,
            other => return Err(format!("ulimit {other}: unknown")),
        };
        let value = |n: i64| if n < 0 { RLIM_INFINITY } else { n as u64 };
        setrlimit(resource, value(u.soft), value(u.hard))
            .map_err(|e| format!("ulimit {}={}:{}: {e}", u.name, u.soft, u.hard))?;
    }
    if let Some(adj) = o.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("oom_score_adj {adj}: {e}"))?;
    }
    Ok(())
}

/// `--group-add`: numbers as they are, names from the container's /etc/group.
fn extra_groups(wanted: &[String], group_file: &str) -> Result<Vec<u32>, String> {
    wanted
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(n) => Ok(n),
            Err(_) => group_file
                .lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    Some((f.next()?, f.nth(1)?))
                })
                .find(|(name, _)| name == g)
                .and_then(|(_, gid)| gid.parse().ok())
                .ok_or_else(|| {
                    format!("Unable to find group {g}: no matching entries in group file")
                }),
        })
        .collect()
}

/// Changes to the working directory, creating it first when asked to.
fn enter_dir(cwd: &str, create: bool) -> Result<(), String> {
    if create {
        std::fs::create_dir_all(cwd).map_err(|e| format!("working directory {cwd}: {e}"))?;
    }
    std::env::set_current_dir(cwd).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("working directory {cwd}: no such file or directory in the container")
        }
        _ => format!("working directory {cwd}: {e}"),
    })
}

/// The environment of a process started in a running container: the container's, with
/// each of `overrides` (`KEY=VALUE`) replacing the entry of the same key or appended.
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut out: Vec<String> = base.to_vec();
    for o in overrides {
        let k = key(o);
        match out.iter_mut().find(|e| key(e) == k) {
            Some(slot) => slot.clone_from(o),
            None => out.push(o.clone()),
        }
    }
    out
}

/// The files an exec of `program` tries, in order: `program` itself when it has a slash,
/// else `program` in each directory of `path` (a PATH value).
pub(super) fn candidates(program: &str, path: &str) -> Vec<PathBuf> {
    if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(program))
            .collect()
    }
}

/// Looks the program up in the container's PATH and execs it; on failure returns Docker's
/// code (127 not found, 126 cannot invoke) and message.
fn exec(argv: &[String], env: &[String]) -> (i32, String) {
    let Some(program) = argv.first() else {
        return (125, "no command specified".into());
    };
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    let candidates = candidates(program, path);
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let c_argv: Vec<CString> = argv.iter().map(|a| to_c(a)).collect();
    let c_env: Vec<CString> = env.iter().map(|e| to_c(e)).collect();
    let mut denied = None;
    for candidate in candidates {
        let Ok(c_path) = CString::new(candidate.as_os_str().as_bytes()) else {
            continue;
        };
        let err = sys::exec(&c_path, &c_argv, &c_env);
        match err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => continue,
            _ => denied = Some((candidate, err)),
        }
        if !program.contains('/') && denied.is_some() {
            break;
        }
    }
    match denied {
        Some((p, e)) => (126, format!("exec {:?}: {e}", p.display().to_string())),
        None if program.contains('/') => {
            (127, format!("exec {program:?}: no such file or directory"))
        }
        None => (
            127,
            format!("exec {program:?}: executable file not found in $PATH"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_groups_by_name_and_number() {
        let group = "root:x:0:\naudio:x:29:pulse\n";
        assert_eq!(
            extra_groups(&["audio".into(), "1234".into()], group).unwrap(),
            [29, 1234]
        );
        assert!(extra_groups(&["video".into()], group)
            .unwrap_err()
            .contains("video"));
    }

    #[test]
    fn exec_env_overrides_the_containers() {
        let base = ["PATH=/bin".to_string(), "A=1".into(), "B=2".into()];
        let merged = merge_env(&base, &["A=9".into(), "C=3".into(), "A=10".into()]);
        assert_eq!(merged, ["PATH=/bin", "A=10", "B=2", "C=3"]);
        assert_eq!(merge_env(&base, &[]), base);
    }

    #[test]
    fn exec_does_not_create_a_missing_working_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let err = enter_dir(missing.to_str().unwrap(), false).unwrap_err();
        assert!(err.contains("no such file or directory"), "{err}");
        assert!(!missing.exists());
    }
}
