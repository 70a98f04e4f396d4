//! The processes the agent starts (a command in the guest, a container's shim, an exec
//! shim), described once and started with posix_spawn(3) in a session of their own.
//!
//! glibc's posix_spawn starts the child with `clone(CLONE_VM | CLONE_VFORK)`: the agent's
//! address space is neither copied nor write-protected, as `fork` does (and as
//! `std::process::Command` does whenever it runs code between fork and exec, here the
//! `setsid`). Under emulation that copy and the copy-on-write faults after it are slow
//! guest code on the path of every start: measured in the guest, a start took 5-8 ms
//! instead of 10-15. A process on a terminal still goes through [`Process::command`],
//! since making the terminal its controlling one needs code in the child.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sys;

/// The PATH a program is looked up in when the environment has none (execvp's default).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A process to start: what execve(2) gets, and the directory it starts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// A path, or a name looked up in the `PATH` of `env`.
    pub program: String,
    /// What the process sees as `argv[0]`; `program` when `None`.
    pub argv0: Option<String>,
    pub args: Vec<String>,
    /// The whole environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Where it starts; the agent's own directory when `None`.
    pub cwd: Option<String>,
}

/// Where a started process's stdio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// `/dev/null`, all three.
    Null,
    /// Pipes for stdout and stderr; stdin a pipe too when `stdin`, else `/dev/null`.
    Pipes { stdin: bool },
}

/// A started process and the agent's ends of its pipes.
#[derive(Debug)]
pub struct Started {
    pub pid: u32,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl Process {
    /// berth-init itself in another role (`main.rs` dispatches on `role`), named `name`
    /// in `ps`, with `spec` (JSON) as its one argument and an empty environment.
    pub fn berth_init(name: &str, role: &str, spec: String) -> Process {
        Process {
            program: "/proc/self/exe".into(),
            argv0: Some(name.into()),
            args: vec![role.into(), spec],
            env: Vec::new(),
            cwd: None,
        }
    }

    /// The file to execute: `program` itself when it has a `/`, else the first executable
    /// file of that name in the `PATH` of `env`, as execvp(3) finds it. ENOENT when there
    /// is none, EACCES when one exists but may not be executed.
    pub fn resolve(&self) -> io::Result<PathBuf> {
        if self.program.contains('/') {
            return Ok(PathBuf::from(&self.program));
        }
        if self.program.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let path = self
            .env
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let mut denied = false;
        for dir in path.split(':') {
            // A relative entry is relative to where the process starts, as for execvp
            // in the child.
            let dir = Path::new(if dir.is_empty() { "." } else { dir });
            let candidate = match &self.cwd {
                Some(cwd) if dir.is_relative() => Path::new(cwd).join(dir),
                _ => dir.to_path_buf(),
            }
            .join(&self.program);
            if !candidate.is_file() {
                continue;
            }
            match nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK) {
                Ok(()) => return Ok(candidate),
                Err(_) => denied = true,
            }
        }
        Err(io::Error::from_raw_os_error(match denied {
            true => libc::EACCES,
            false => libc::ENOENT,
        }))
    }

    /// The same process as a [`Command`] (stdio and the session are the caller's).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        if let Some(argv0) = &self.argv0 {
            cmd.arg0(argv0);
        }
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().filter_map(|kv| kv.split_once('=')));
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        cmd
    }

    /// Starts the process, leading a new session (so signals and the final clean-up reach
    /// everything it starts), with no signal blocked and every signal at its default.
    /// An exec that fails is this call's error, and nothing is left running.
    pub fn spawn(&self, stdio: Stdio) -> io::Result<Started> {
        self.spawn_passing(stdio, None)
    }

    /// [`Process::spawn`], with one more descriptor: `passed.0` is the process's
    /// `passed.1` (above 2).
    pub fn spawn_passing(
        &self,
        stdio: Stdio,
        passed: Option<(BorrowedFd<'_>, RawFd)>,
    ) -> io::Result<Started> {
        let path = cstring(self.resolve()?.as_os_str().as_bytes())?;
        let argv0 = self.argv0.as_deref().unwrap_or(&self.program);
        let argv = std::iter::once(argv0)
            .chain(self.args.iter().map(String::as_str))
            .map(|a| cstring(a.as_bytes()))
            .collect::<io::Result<Vec<_>>>()?;
        let envp = self
            .env
            .iter()
            .map(|kv| cstring(kv.as_bytes()))
            .collect::<io::Result<Vec<_>>>()?;
        let cwd = self
            .cwd
            .as_deref()
            .map(|d| cstring(d.as_bytes()))
            .transpose()?;
        let ends = Ends::new(stdio)?;
        let [stdin, stdout, stderr] = &ends.theirs;
        let stdio = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
        let pid = match sys::posix_spawn(&path, &argv, &envp, cwd.as_deref(), stdio, passed) {
            // As execvp(3) does: a file the kernel cannot execute (no `#!` line) is a
            // script for /bin/sh.
            Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
                let sh = cstring(b"/bin/sh")?;
                let argv: Vec<CString> = [sh.clone(), path]
                    .into_iter()
                    .chain(argv.into_iter().skip(1))
                    .collect();
                sys::posix_spawn(&sh, &argv, &envp, cwd.as_deref(), stdio, passed)?
            }
            spawned => spawned?,
        };
        Ok(Started {
            pid,
            stdin: ends.ours.0,
            stdout: ends.ours.1,
            stderr: ends.ours.2,
        })
    }
}

/// The child's three stdio descriptors and the agent's ends of the pipes among them. The
/// child's are closed in the agent once it has started.
struct Ends {
    theirs: [OwnedFd; 3],
    ours: (Option<OwnedFd>, Option<OwnedFd>, Option<OwnedFd>),
}

impl Ends {
    fn new(stdio: Stdio) -> io::Result<Ends> {
        let null = || -> io::Result<OwnedFd> { Ok(std::fs::File::open("/dev/null")?.into()) };
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from);
        match stdio {
            Stdio::Null => Ok(Ends {
                theirs: [null()?, null()?, null()?],
                ours: (None, None, None),
            }),
            Stdio::Pipes { stdin } => {
                let (in_theirs, in_ours) = match stdin {
                    true => {
                        let (r, w) = pipe()?;
                        (r, Some(w))
                    }
                    false => (null()?, None),
                };
                let (out_ours, out_theirs) = pipe()?;
                let (err_ours, err_theirs) = pipe()?;
                Ok(Ends {
                    theirs: [in_theirs, out_theirs, err_theirs],
                    ours: (in_ours, Some(out_ours), Some(err_ours)),
                })
            }
        }
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an argument, variable or path holds a NUL byte",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sh(script: &str) -> Process {
        Process {
            program: "sh".into(),
            argv0: None,
            args: vec!["-c".into(), script.into()],
            env: vec!["PATH=/usr/bin:/bin".into(), "GREETING=hello".into()],
            cwd: Some("/tmp".into()),
        }
    }

    /// The reaper's test reaps every child of this process: tests with children of their
    /// own take turns with it.
    fn turn() -> std::sync::MutexGuard<'static, ()> {
        crate::process::TEST_CHILDREN
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `text` to `path`, executable by anyone.
    fn executable(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    fn read_all(fd: Option<OwnedFd>) -> String {
        let mut s = String::new();
        std::fs::File::from(fd.expect("a pipe"))
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    fn wait(pid: u32) -> i32 {
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
        match status.unwrap() {
            nix::sys::wait::WaitStatus::Exited(_, code) => code,
            other => panic!("not an exit: {other:?}"),
        }
    }

    #[test]
    fn a_process_gets_its_arguments_environment_directory_and_pipes() {
        let _turn = turn();
        let p = sh(r#"echo "$0 $GREETING $(pwd) $(cat)"; echo oops >&2; exit 7"#);
        let started = p.spawn(Stdio::Pipes { stdin: true }).unwrap();
        {
            use std::io::Write;
            let mut to = std::fs::File::from(started.stdin.unwrap());
            to.write_all(b"typed").unwrap();
        }
        assert_eq!(read_all(started.stdout), "sh hello /tmp typed\n");
        assert_eq!(read_all(started.stderr), "oops\n");
        assert_eq!(wait(started.pid), 7);
    }

    #[test]
    fn a_passed_descriptor_is_the_processs_and_only_it() {
        use std::io::Write;
        let _turn = turn();
        let (theirs, ours) = crate::sys::pipe().unwrap();
        // Descriptor 3 is the pipe's read end; 4 and up are not open (none leaks).
        let p = sh("cat <&3; ls /proc/$$/fd | sort -n | tr '\\n' ' '");
        let started = p
            .spawn_passing(Stdio::Pipes { stdin: false }, Some((theirs.as_fd(), 3)))
            .unwrap();
        drop(theirs);
        std::fs::File::from(ours)
            .write_all(b"through the gate ")
            .unwrap();
        let out = read_all(started.stdout);
        assert_eq!(wait(started.pid), 0);
        assert!(out.starts_with("through the gate 0 1 2 3 "), "{out:?}");
    }

    #[test]
    fn a_process_leads_a_session_of_its_own_with_default_signals() {
        let _turn = turn();
        let mut p = sh("cut -d' ' -f1,6 /proc/$$/stat; grep SigIgn /proc/$$/status");
        p.program = "/bin/sh".into();
        p.argv0 = Some("named".into());
        let started = p.spawn(Stdio::Pipes { stdin: false }).unwrap();
        let out = read_all(started.stdout);
        assert_eq!(wait(started.pid), 0);
        let mut lines = out.lines();
        let ids: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(ids[0], ids[1], "session id is its own pid: {out}");
        let ignored = lines.next().unwrap().split_whitespace().nth(1).unwrap();
        let ignored = u64::from_str_radix(ignored, 16).unwrap();
        assert_eq!(ignored, 0, "no signal ignored: {out:?}");
    }

    #[test]
    fn a_missing_or_forbidden_program_is_the_callers_error() {
        let _turn = turn();
        let mut p = sh("true");
        p.program = "no-such-program-anywhere".into();
        let e = p.spawn(Stdio::Null).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        p.program = "/etc/passwd".into();
        let e = p.spawn(Stdio::Null).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        p.program = "sh".into();
        p.cwd = Some("/no/such/dir".into());
        let e = p.spawn(Stdio::Null).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn a_name_is_found_in_the_processes_own_path() {
        let _turn = turn();
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("only-here");
        executable(&tool, "#!/bin/sh\necho found\n");
        let p = Process {
            program: "only-here".into(),
            argv0: None,
            args: Vec::new(),
            env: vec![format!("PATH=/nowhere:{}", dir.path().display())],
            cwd: None,
        };
        assert_eq!(p.resolve().unwrap(), tool);
        let started = p.spawn(Stdio::Pipes { stdin: false }).unwrap();
        assert_eq!(read_all(started.stdout), "found\n");
        assert_eq!(wait(started.pid), 0);
    }

    #[test]
    fn a_file_without_a_shebang_line_runs_as_a_shell_script() {
        let _turn = turn();
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("plain");
        executable(&script, "echo \"as a script: $1\"\n");
        let p = Process {
            program: "./plain".into(),
            argv0: None,
            args: vec!["yes".into()],
            env: vec!["PATH=/usr/bin:/bin".into()],
            cwd: Some(dir.path().display().to_string()),
        };
        let started = p.spawn(Stdio::Pipes { stdin: false }).unwrap();
        assert_eq!(read_all(started.stdout), "as a script: yes\n");
        assert_eq!(wait(started.pid), 0);
    }

    #[test]
    fn a_relative_path_entry_is_relative_to_the_processes_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let tool = dir.path().join("bin/tool");
        executable(&tool, "#!/bin/sh\n");
        let p = Process {
            program: "tool".into(),
            argv0: None,
            args: Vec::new(),
            env: vec!["PATH=bin".into()],
            cwd: Some(dir.path().display().to_string()),
        };
        assert_eq!(p.resolve().unwrap(), tool);
    }
}
