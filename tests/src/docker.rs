//! The stock docker CLI, pointed at a berth machine's socket, with the deadline.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{Berth, COMMAND_DEADLINE};

pub struct Docker {
    /// `DOCKER_HOST`; `None` leaves the docker CLI to its contexts.
    pub host: Option<String>,
    /// The installation's docker config, where `machine start` writes its context.
    pub config: PathBuf,
}

impl Docker {
    /// The docker CLI with `DOCKER_HOST` set to the default machine's socket.
    pub fn new(b: &Berth) -> Docker {
        let out = b.run(&["machine", "start"], b"");
        assert_eq!(out.code, 0, "{}", out.stderr);
        let socket = b.run(&["machine", "socket"], b"");
        Docker {
            host: Some(format!("unix://{}", socket.stdout_text().trim())),
            config: b.docker_config(),
        }
    }

    /// The docker CLI with neither `DOCKER_HOST` nor `DOCKER_CONTEXT`: only its config.
    pub fn without_host(b: &Berth) -> Docker {
        Docker {
            host: None,
            config: b.docker_config(),
        }
    }

    /// Runs `docker ARGS` with the deadline; (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_program(Command::new(docker_bin()), args)
    }

    /// Runs `docker-compose ARGS` in the project folder `dir`, with the same daemon.
    pub fn compose(&self, dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new(
            std::env::var_os("BERTH_TEST_COMPOSE").unwrap_or_else(|| "docker-compose".into()),
        );
        cmd.current_dir(dir);
        self.run_program(cmd, args)
    }

    /// Runs any program (a Python client) with the docker CLI's environment.
    pub fn program(&self, program: &std::path::Path, args: &[&str]) -> (i32, String, String) {
        self.run_program(Command::new(program), args)
    }

    /// `docker-compose ARGS` that must succeed; its stdout and stderr together (compose
    /// reports progress on stderr).
    pub fn compose_ok(&self, dir: &std::path::Path, args: &[&str]) -> String {
        let (code, out, err) = self.compose(dir, args);
        assert_eq!(code, 0, "docker-compose {args:?}: {out}{err}");
        format!("{out}{err}")
    }

    fn run_program(&self, mut cmd: Command, args: &[&str]) -> (i32, String, String) {
        match &self.host {
            Some(h) => cmd.env("DOCKER_HOST", h),
            None => cmd.env_remove("DOCKER_HOST"),
        };
        let mut child = cmd
            .args(args)
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e} (cargo xtask deps installs it)"));
        // Read while it runs: a large output would otherwise fill the pipe and block it.
        let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > COMMAND_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {COMMAND_DEADLINE:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let text = |t: std::thread::JoinHandle<Vec<u8>>| {
            String::from_utf8_lossy(&t.join().unwrap_or_default()).into_owned()
        };
        (status.code().unwrap_or(-1), text(out), text(err))
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "docker {args:?}: {err}");
        out
    }
}

pub fn docker_bin() -> PathBuf {
    std::env::var_os("BERTH_TEST_DOCKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docker"))
}
