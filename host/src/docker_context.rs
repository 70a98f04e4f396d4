//! The docker CLI's contexts, so the docker CLI finds a machine without `DOCKER_HOST`:
//! `berth machine start` writes one per machine (`berth` for `default`, `berth-NAME` for the
//! others, as Colima and Podman do) and `machine rm` removes it.
//!
//! The docker CLI keeps them under `$DOCKER_CONFIG` (default `~/.docker`): each context is
//! `contexts/meta/<sha256 of its name>/meta.json`, and `config.json`'s `currentContext`
//! names the one in use. berth only touches contexts it wrote (their description starts
//! with [`MARK`]) and keeps every other field of `config.json` as it was.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::machine::{write_atomic, DEFAULT};

/// How every context berth writes is described; what marks it as berth's.
pub const MARK: &str = "berth machine ";

/// The context name of machine `machine`.
pub fn context_name(machine: &str) -> String {
    match machine {
        DEFAULT => "berth".to_string(),
        other => format!("berth-{other}"),
    }
}

/// `meta.json` of a context, as the docker CLI writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Metadata", default)]
    metadata: Metadata,
    #[serde(rename = "Endpoints", default)]
    endpoints: BTreeMap<String, Endpoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Metadata {
    #[serde(rename = "Description", default)]
    description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Endpoint {
    #[serde(rename = "Host")]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// What [`DockerConfig::write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The context is new.
    Created,
    /// Our context pointed elsewhere; it now names this machine's socket.
    Updated,
    /// It was already as it should be.
    Unchanged,
    /// A context of that name exists and is not berth's: left alone.
    Foreign,
}

/// The docker CLI's configuration directory.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    dir: PathBuf,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG`, else `~/.docker`; `None` without a home directory.
    pub fn from_env() -> Option<DockerConfig> {
        match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
            Some(dir) => Some(DockerConfig::at(dir)),
            None => dirs::home_dir().map(|h| DockerConfig::at(h.join(".docker"))),
        }
    }

    pub fn at(dir: impl Into<PathBuf>) -> DockerConfig {
        DockerConfig { dir: dir.into() }
    }

    fn meta_file(&self, name: &str) -> PathBuf {
        let hash = crate::image::Digest::of(name.as_bytes());
        self.dir
            .join("contexts/meta")
            .join(hash.hex())
            .join("meta.json")
    }

    fn read_meta(&self, name: &str) -> Option<Meta> {
        serde_json::from_slice(&std::fs::read(self.meta_file(name)).ok()?).ok()
    }

    /// Writes context `name` pointing at the API socket `socket`.
    pub fn write(&self, name: &str, machine: &str, socket: &Path) -> io::Result<Written> {
        let want = Meta {
            name: name.to_string(),
            metadata: Metadata {
                description: format!("{MARK}{machine}"),
            },
            endpoints: BTreeMap::from([(
                "docker".to_string(),
                Endpoint {
                    host: format!("unix://{}", socket.display()),
                    skip_tls_verify: false,
                },
            )]),
        };
        let file = self.meta_file(name);
        let outcome = match self.read_meta(name) {
            Some(have) if have == want => return Ok(Written::Unchanged),
            Some(have) if !have.metadata.description.starts_with(MARK) => {
                return Ok(Written::Foreign)
            }
            Some(_) => Written::Updated,
            None if file.exists() => return Ok(Written::Foreign),
            None => Written::Created,
        };
        let bytes = serde_json::to_vec(&want).map_err(io::Error::other)?;
        write_atomic(&file, &bytes)?;
        Ok(outcome)
    }

    /// Removes context `name` when it is berth's; when it was the current context, the
    /// docker CLI goes back to its default. False when there was none of ours.
    pub fn remove(&self, name: &str) -> io::Result<bool> {
        match self.read_meta(name) {
            Some(m) if m.metadata.description.starts_with(MARK) => {}
            _ => return Ok(false),
        }
        let file = self.meta_file(name);
        if let Some(dir) = file.parent() {
            std::fs::remove_dir_all(dir)?;
        }
        if self.current().as_deref() == Some(name) {
            self.set_current(None)?;
        }
        Ok(true)
    }

    /// `config.json`'s `currentContext`.
    pub fn current(&self) -> Option<String> {
        let cfg = self.read_config().ok()?;
        cfg.get("currentContext")?.as_str().map(String::from)
    }

    /// Sets (or, with `None`, clears) `currentContext`, keeping the rest of `config.json`.
    pub fn set_current(&self, name: Option<&str>) -> io::Result<()> {
        let mut cfg = self.read_config()?;
        match name {
            Some(n) => {
                cfg.insert("currentContext".into(), n.into());
            }
            None => {
                cfg.remove("currentContext");
            }
        }
        let bytes = serde_json::to_vec_pretty(&cfg).map_err(io::Error::other)?;
        write_atomic(&self.dir.join("config.json"), &bytes)
    }

    /// `config.json` as an object: empty when it does not exist; an error when it is not
    /// JSON, so a file of the user's is never replaced by a guess.
    fn read_config(&self) -> io::Result<serde_json::Map<String, serde_json::Value>> {
        let path = self.dir.join("config.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a JSON object: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(serde_json::Map::new()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_colima_and_podman() {
        assert_eq!(context_name("default"), "berth");
        assert_eq!(context_name("dev"), "berth-dev");
    }

    #[test]
    fn the_context_is_where_the_docker_cli_looks_for_it() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = DockerConfig::at(tmp.path());
        let sock = Path::new("/x/machines/default/docker.sock");
        assert_eq!(
            cfg.write("berth", "default", sock).unwrap(),
            Written::Created
        );
        // sha256("berth"), as `docker context create berth` names its directory.
        let file = tmp.path().join(
            "contexts/meta/5c2f64c7f21efd5fb5e3d6a499abe5eacb248ae6f6f0085387c9a056d10ef5fd/meta.json",
        );
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        assert_eq!(meta["Name"], "berth");
        assert_eq!(
            meta["Endpoints"]["docker"]["Host"],
            "unix:///x/machines/default/docker.sock"
        );
        assert_eq!(meta["Metadata"]["Description"], "berth machine default");
        assert_eq!(
            cfg.write("berth", "default", sock).unwrap(),
            Written::Unchanged
        );
        let moved = Path::new("/y/docker.sock");
        assert_eq!(
            cfg.write("berth", "default", moved).unwrap(),
            Written::Updated
        );
    }

    #[test]
    fn a_context_of_someone_else_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = DockerConfig::at(tmp.path());
        let theirs = r#"{"Name":"berth","Metadata":{"Description":"mine"},"Endpoints":{"docker":{"Host":"tcp://1.2.3.4:2375","SkipTLSVerify":false}}}"#;
        let file = cfg.meta_file("berth");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, theirs).unwrap();
        let sock = Path::new("/s");
        assert_eq!(
            cfg.write("berth", "default", sock).unwrap(),
            Written::Foreign
        );
        assert!(!cfg.remove("berth").unwrap());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), theirs);
    }

    #[test]
    fn current_context_is_set_and_cleared_keeping_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = DockerConfig::at(tmp.path());
        std::fs::write(
            tmp.path().join("config.json"),
            r#"{"auths":{"r.example":{"auth":"eDp5"}},"credsStore":"pass"}"#,
        )
        .unwrap();
        cfg.write("berth-dev", "dev", Path::new("/s")).unwrap();
        cfg.set_current(Some("berth-dev")).unwrap();
        assert_eq!(cfg.current().as_deref(), Some("berth-dev"));
        assert!(cfg.remove("berth-dev").unwrap());
        assert_eq!(cfg.current(), None);
        assert!(!cfg.meta_file("berth-dev").exists());
        let kept: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(kept["auths"]["r.example"]["auth"], "eDp5");
        assert_eq!(kept["credsStore"], "pass");
    }

    #[test]
    fn a_config_that_is_not_json_is_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = DockerConfig::at(tmp.path());
        std::fs::write(tmp.path().join("config.json"), "not json").unwrap();
        assert!(cfg.set_current(Some("berth")).is_err());
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("config.json")).unwrap(),
            "not json"
        );
    }
}
