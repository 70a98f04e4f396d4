//! One build stage's state between steps: the image config the Dockerfile's metadata
//! instructions change (ENV, WORKDIR, USER, CMD, ...), the build arguments in scope,
//! and the shell. Pure: the steps that need a container are in `steps.rs`.

use std::collections::{BTreeMap, HashMap};

use crate::build::dockerfile::{ArgDecl, Command, HealthSpec, Kind};
use crate::build::words::{self, Vars};
use crate::daemon::models::create::{ContainerConfig, Empty, HealthConfig, StrOrList};

/// The build arguments Docker predefines (usable without an `ARG`, never in the image).
pub const PREDEFINED: [&str; 8] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "no_proxy",
];

/// The platform arguments BuildKit defines in every stage.
pub fn platform_args() -> Vec<(String, String)> {
    [
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
        ("TARGETVARIANT", ""),
        ("BUILDPLATFORM", "linux/amd64"),
        ("BUILDOS", "linux"),
        ("BUILDARCH", "amd64"),
        ("BUILDVARIANT", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A stage's config and variables.
#[derive(Debug, Clone)]
pub struct StageState {
    pub config: ContainerConfig,
    /// ARGs declared in this stage, with their values (a `--build-arg` wins).
    pub args: Vec<(String, String)>,
    pub shell: Vec<String>,
    pub escape: char,
}

/// The variables a word sees: ENV of the config, then the stage's ARGs (ENV wins).
struct Scope<'a>(&'a StageState);

impl Vars for Scope<'_> {
    fn get(&self, name: &str) -> Option<String> {
        let env = self.0.config.env.iter().flatten().rev().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k == name).then(|| v.to_string())
        });
        env.or_else(|| {
            self.0
                .args
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }
}

impl StageState {
    pub fn new(config: ContainerConfig, escape: char) -> StageState {
        StageState {
            config,
            args: Vec::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            escape,
        }
    }

    /// Expands `raw` with the variables in scope.
    pub fn word(&self, raw: &str) -> Result<String, String> {
        words::process_word(raw, &Scope(self), self.escape)
    }

    /// A `COPY <<EOF` body with the variables in scope expanded (quotes kept).
    pub fn heredoc(&self, raw: &str) -> Result<String, String> {
        words::process_heredoc(raw, &Scope(self), self.escape)
    }

    pub fn words(&self, raw: &str) -> Result<Vec<String>, String> {
        words::process_words(raw, &Scope(self), self.escape)
    }

    /// The argv of a RUN/CMD/ENTRYPOINT command: exec form as written, shell form under
    /// the stage's shell.
    pub fn argv(&self, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = self.shell.clone();
                v.push(s.clone());
                v
            }
        }
    }

    /// The environment a RUN sees: the config's ENV, then the ARGs in scope that ENV does
    /// not set (as Docker, build args reach RUN as environment variables).
    pub fn run_env(&self) -> Vec<String> {
        let mut env = self.config.env.clone().unwrap_or_default();
        for (k, v) in &self.args {
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|p| p.0) == Some(k))
            {
                env.push(format!("{k}={v}"));
            }
        }
        env
    }

    /// Declares `ARG`s: the value from `--build-arg` if given, else the default (expanded),
    /// else a global ARG's value redeclared without a default; an undeclared build arg
    /// never gets in.
    pub fn declare(
        &mut self,
        decls: &[ArgDecl],
        build_args: &HashMap<String, String>,
        globals: &[(String, String)],
    ) -> Result<(), String> {
        for d in decls {
            let value = match build_args.get(&d.name) {
                Some(v) => Some(v.clone()),
                None => match &d.default {
                    Some(raw) => Some(self.word(raw)?),
                    None => globals
                        .iter()
                        .find(|(k, _)| *k == d.name)
                        .map(|(_, v)| v.clone()),
                },
            };
            self.args.retain(|(k, _)| *k != d.name);
            if let Some(v) = value {
                self.args.push((d.name.clone(), v));
            }
        }
        Ok(())
    }

    /// Applies a metadata instruction (one that changes only the config). Returns false
    /// for the instructions that need a container (RUN, COPY, ADD).
    pub fn apply(&mut self, kind: &Kind) -> Result<bool, String> {
        let c = &mut self.config;
        match kind {
            Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) | Kind::Arg(_) => return Ok(false),
            Kind::Env(pairs) => {
                for (k, raw) in pairs {
                    let key = self.word(k)?;
                    let value = self.word(raw)?;
                    let env = self.config.env.get_or_insert_with(Vec::new);
                    env.retain(|e| e.split_once('=').map(|p| p.0).unwrap_or(e) != key);
                    env.push(format!("{key}={value}"));
                }
            }
            Kind::Label(pairs) => {
                for (k, raw) in pairs {
                    let key = self.word(k)?;
                    let value = self.word(raw)?;
                    self.config
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key, value);
                }
            }
            Kind::Maintainer(m) => {
                // Docker keeps it as the image's author; berth records it as a label.
                c.labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert("maintainer".into(), m.clone());
            }
            Kind::Workdir(raw) => {
                let dir = self.word(raw)?;
                let base = self.config.working_dir.clone().unwrap_or_default();
                self.config.working_dir = Some(join_workdir(&base, &dir));
            }
            Kind::User(raw) => self.config.user = Some(self.word(raw)?),
            Kind::Expose(raw) => {
                for p in self.words(raw)? {
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    let (n, proto) = p.split_once('/').unwrap_or_default();
                    if n.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                        return Err(format!("invalid port {p:?} in EXPOSE"));
                    }
                    self.config
                        .exposed_ports
                        .get_or_insert_with(BTreeMap::new)
                        .insert(p, Empty {});
                }
            }
            Kind::Volume(cmd) => {
                let list = match cmd {
                    Command::Exec(v) => v.iter().map(|w| self.word(w)).collect::<Result<_, _>>()?,
                    Command::Shell(s) => self.words(s)?,
                };
                for v in list {
                    self.config
                        .volumes
                        .get_or_insert_with(BTreeMap::new)
                        .insert(v, Empty {});
                }
            }
            Kind::StopSignal(raw) => self.config.stop_signal = Some(self.word(raw)?),
            Kind::Cmd(cmd) => {
                let argv = self.argv(cmd);
                self.config.cmd = Some(StrOrList::List(argv));
            }
            Kind::Entrypoint(cmd) => {
                let argv = self.argv(cmd);
                self.config.entrypoint = Some(StrOrList::List(argv));
                // As Docker: a new ENTRYPOINT resets a CMD inherited from the base.
                self.config.cmd = None;
            }
            Kind::Shell(v) => self.shell = v.clone(),
            Kind::Healthcheck(h) => self.config.healthcheck = Some(health(h, &self.shell)?),
            Kind::OnBuild(trigger) => {
                let list = self
                    .config
                    .other
                    .entry("OnBuild".into())
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                if let serde_json::Value::Array(a) = list {
                    a.push(serde_json::Value::String(trigger.clone()));
                }
            }
        }
        Ok(true)
    }
}

/// WORKDIR relative to the previous one, cleaned as a path.
pub fn join_workdir(base: &str, dir: &str) -> String {
    let joined = match dir.starts_with('/') {
        true => dir.to_string(),
        false => format!("{}/{dir}", if base.is_empty() { "" } else { base }),
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn health(h: &HealthSpec, shell: &[String]) -> Result<HealthConfig, String> {
    let nanos = |d: &Option<String>| -> Result<Option<i64>, String> {
        match d {
            None => Ok(None),
            Some(s) => {
                crate::build::dockerfile::parse_duration(s).map(|d| Some(d.as_nanos() as i64))
            }
        }
    };
    let test = match &h.test {
        None => vec!["NONE".to_string()],
        Some(Command::Exec(v)) => std::iter::once("CMD".to_string())
            .chain(v.clone())
            .collect(),
        Some(Command::Shell(s)) => {
            let _ = shell;
            vec!["CMD-SHELL".to_string(), s.clone()]
        }
    };
    let retries = match &h.retries {
        None => None,
        Some(r) => Some(
            r.parse::<i64>()
                .map_err(|_| format!("HEALTHCHECK --retries={r}: expected a number"))?,
        ),
    };
    Ok(HealthConfig {
        test: Some(test),
        interval: nanos(&h.interval)?,
        timeout: nanos(&h.timeout)?,
        retries,
        start_period: nanos(&h.start_period)?,
        start_interval: nanos(&h.start_interval)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> StageState {
        StageState::new(
            ContainerConfig {
                env: Some(vec!["PATH=/bin".into()]),
                cmd: Some(StrOrList::List(vec!["sh".into()])),
                ..Default::default()
            },
            '\\',
        )
    }

    #[test]
    fn env_and_args_expand_and_env_wins() {
        let mut s = state();
        s.declare(
            &[ArgDecl {
                name: "V".into(),
                default: Some("1".into()),
            }],
            &HashMap::new(),
            &[],
        )
        .unwrap();
        assert_eq!(s.word("${V}-$PATH").unwrap(), "1-/bin");
        s.apply(&Kind::Env(vec![("V".into(), "2".into())])).unwrap();
        assert_eq!(s.word("$V").unwrap(), "2");
        assert!(s.run_env().contains(&"V=2".to_string()));
        let args = HashMap::from([("V".to_string(), "cli".to_string())]);
        let mut t = state();
        t.declare(
            &[ArgDecl {
                name: "V".into(),
                default: Some("1".into()),
            }],
            &args,
            &[],
        )
        .unwrap();
        assert_eq!(t.run_env().last().unwrap(), "V=cli");
    }

    #[test]
    fn workdir_entrypoint_and_expose() {
        let mut s = state();
        s.apply(&Kind::Workdir("/app".into())).unwrap();
        s.apply(&Kind::Workdir("src/../lib".into())).unwrap();
        assert_eq!(s.config.working_dir.as_deref(), Some("/app/lib"));
        s.apply(&Kind::Entrypoint(Command::Shell("run me".into())))
            .unwrap();
        assert_eq!(s.config.cmd, None, "ENTRYPOINT resets the inherited CMD");
        s.apply(&Kind::Expose("80 53/udp".into())).unwrap();
        let ports: Vec<&String> = s.config.exposed_ports.as_ref().unwrap().keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert!(s.apply(&Kind::Expose("http".into())).is_err());
    }
}
