//! Running external commands: every command is echoed before it runs, and a failure names the
//! command that failed.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

use anyhow::{bail, Context, Result};

/// A command line plus the environment and directory it runs with, printable as a shell line.
pub struct Cmd {
    program: OsString,
    /// How `program` is shown when it differs from the path that runs.
    shown_as: Option<String>,
    args: Vec<OsString>,
    envs: Vec<(String, OsString)>,
    env_removes: Vec<String>,
    dir: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            shown_as: None,
            args: Vec::new(),
            envs: Vec::new(),
            env_removes: Vec::new(),
            dir: None,
        }
    }

    /// The cargo that runs xtask (cargo exports `CARGO` to the programs it runs), shown as
    /// plain `cargo`.
    pub fn cargo() -> Self {
        let mut cmd = Self::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.shown_as = Some("cargo".to_owned());
        cmd
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.env_removes.push(key.to_owned());
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for key in &self.env_removes {
            command.env_remove(key);
        }
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    fn echo(&self) {
        println!("$ {self}");
    }

    /// Runs with inherited stdio; fails unless the command exits successfully.
    pub fn run(&self) -> Result<()> {
        let status = self.status()?;
        self.check(status)
    }

    /// Runs with inherited stdio and returns the exit status, whatever it is.
    pub fn status(&self) -> Result<ExitStatus> {
        self.echo();
        self.command()
            .status()
            .with_context(|| format!("could not start `{self}`"))
    }

    /// Runs with stdout captured (stderr inherited); fails unless the command succeeds.
    pub fn read(&self) -> Result<String> {
        let stdout = self.read_bytes()?;
        String::from_utf8(stdout).with_context(|| format!("`{self}` printed non-UTF-8 output"))
    }

    /// Like [`Cmd::read`], for binary output.
    pub fn read_bytes(&self) -> Result<Vec<u8>> {
        self.echo();
        let output = self
            .command()
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("could not start `{self}`"))?;
        self.check(output.status)?;
        Ok(output.stdout)
    }

    /// Runs with stdout captured and stderr discarded, for queries where failure is an answer:
    /// returns `None` when the command exits unsuccessfully.
    pub fn read_optional(&self) -> Result<Option<String>> {
        let output = self.output_quietly()?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned()))
    }

    /// Runs with stdout captured and stderr discarded, and returns stdout whatever the exit
    /// status (for queries that report partial answers with a failing status).
    pub fn read_any_status(&self) -> Result<String> {
        let output = self.output_quietly()?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn output_quietly(&self) -> Result<Output> {
        self.echo();
        self.command()
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("could not start `{self}`"))
    }

    /// Runs with stdout and stderr appended to `log`. On failure prints the last `tail` lines of
    /// the log before returning the error.
    pub fn run_logged(&self, log: &Path, tail: usize) -> Result<()> {
        println!("$ {self} > {} 2>&1", log.display());
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let stderr = file.try_clone()?;
        let status = self
            .command()
            .stdout(file)
            .stderr(stderr)
            .status()
            .with_context(|| format!("could not start `{self}`"))?;
        let mut file = OpenOptions::new().append(true).open(log)?;
        writeln!(file, "rc {}", code(status))?;
        if !status.success() {
            let text = String::from_utf8_lossy(&std::fs::read(log)?).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- last {tail} lines of {} ---", log.display());
            for line in &lines[lines.len().saturating_sub(tail)..] {
                eprintln!("{line}");
            }
            eprintln!("---");
            bail!(
                "command failed ({}): {self}\nfull output in {}",
                describe(status),
                log.display()
            );
        }
        Ok(())
    }

    fn check(&self, status: ExitStatus) -> Result<()> {
        if status.success() {
            Ok(())
        } else {
            bail!("command failed ({}): {self}", describe(status))
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dir) = &self.dir {
            write!(f, "(cd {} && ", quote(&dir.to_string_lossy()))?;
        }
        for (key, value) in &self.envs {
            write!(f, "{key}={} ", quote(&value.to_string_lossy()))?;
        }
        match &self.shown_as {
            Some(shown) => write!(f, "{}", quote(shown))?,
            None => write!(f, "{}", quote(&self.program.to_string_lossy()))?,
        }
        for arg in &self.args {
            write!(f, " {}", quote(&arg.to_string_lossy()))?;
        }
        if self.dir.is_some() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Quotes `s` for display as one shell word.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn code(status: ExitStatus) -> String {
    status
        .code()
        .map_or_else(|| "signal".to_owned(), |c| c.to_string())
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_owned(),
    }
}

/// Finds `name` in the directories of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_when_needed() {
        let cmd = Cmd::new("sh")
            .args(["-c", "echo out; exit 3"])
            .env("RUSTFLAGS", "-C target-feature=+crt-static");
        assert_eq!(
            cmd.to_string(),
            "RUSTFLAGS='-C target-feature=+crt-static' sh -c 'echo out; exit 3'"
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[cfg(unix)]
    #[test]
    fn failure_names_the_command() {
        let err = Cmd::new("sh").args(["-c", "exit 7"]).run().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exit code 7"), "{msg}");
        assert!(msg.contains("sh -c 'exit 7'"), "{msg}");
    }
}
