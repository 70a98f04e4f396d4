//! Named volumes: metadata on the host (`machines/NAME/volumes/<name>.json`, written
//! atomically), data in the guest on the machine's disk (`VOLUMES_DIR/<name>/_data`,
//! made by the agent when a container first mounts it). The `/volumes` routes, the
//! mounts of a new container, and removing anonymous volumes with their container.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use berth_protocol::{Mount, MountSource};
use hyper::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::models::network::VolumeCreateBody;

use super::engine::Engine;
use super::error::ApiError;
use super::http::{self, Body};
use super::mounts::{self, Requested, Source};
use super::state::Record;
use crate::image::time::rfc3339_nanos;
use crate::machine::write_atomic;

/// Docker's label on anonymous volumes.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// What is kept of one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Volume {
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }

    /// Docker's volume JSON.
    pub fn view(&self) -> Value {
        json!({
            "Name": self.name,
            "Driver": "local",
            "Mountpoint": mounts::volume_data(&self.name),
            "CreatedAt": self.created_at,
            "Labels": self.labels,
            "Scope": "local",
            "Options": {},
        })
    }
}

/// The volume metadata of one machine.
pub struct VolumeStore {
    dir: PathBuf,
    /// Serializes removals (in-use check, guest delete, metadata delete).
    removing: tokio::sync::Mutex<()>,
}

impl VolumeStore {
    pub fn new(dir: PathBuf) -> VolumeStore {
        VolumeStore {
            dir,
            removing: tokio::sync::Mutex::new(()),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub fn get(&self, name: &str) -> Option<Volume> {
        if !super::create::valid_name(name) {
            return None;
        }
        let bytes = std::fs::read(self.path(name)).ok()?;
        serde_json::from_slice(&bytes)
            .map_err(|e| tracing::warn!("volume {name}: damaged metadata: {e}"))
            .ok()
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<Volume> {
        let mut out: Vec<Volume> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                self.get(name.strip_suffix(".json")?)
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The volume `name`, created with `labels` when missing (an existing one is kept
    /// as it is, as Docker).
    pub fn ensure(&self, name: &str, labels: BTreeMap<String, String>) -> Result<Volume, ApiError> {
        if !super::create::valid_name(name) {
            return Err(mounts::bad_volume_name(name));
        }
        if let Some(v) = self.get(name) {
            return Ok(v);
        }
        let v = Volume {
            name: name.to_string(),
            created_at: rfc3339_nanos(SystemTime::now()),
            labels,
        };
        let bytes = serde_json::to_vec_pretty(&v).map_err(std::io::Error::other)?;
        write_atomic(&self.path(name), &bytes)?;
        tracing::info!("created volume {name}");
        Ok(v)
    }
}

/// The containers (ids) whose mounts use volume `name`.
fn users(engine: &Engine, name: &str) -> Vec<String> {
    engine
        .all()
        .iter()
        .filter(|c| uses(&c.record().spec.mounts, name))
        .map(|c| c.id.clone())
        .collect()
}

fn uses(mounts: &[Mount], name: &str) -> bool {
    mounts
        .iter()
        .any(|m| matches!(&m.source, MountSource::Volume { name: n } if n == name))
}

fn no_such_volume(name: &str) -> ApiError {
    ApiError::not_found(format!("get {name}: no such volume"))
}

impl Engine {
    /// The mounts of a create request, ready for the guest: host paths checked against
    /// the machine's shares (missing `-v` folders made), volumes created when missing.
    pub fn prepare_mounts(&self, body: &super::models::CreateBody) -> Result<Vec<Mount>, ApiError> {
        let requested = mounts::parse(body)?;
        let shares = crate::shares::resolve(&self.config.shares);
        let mut out = Vec::with_capacity(requested.len());
        for Requested {
            source,
            target,
            read_only,
            no_copy,
        } in requested
        {
            let source = match source {
                Source::Host { path, create } => {
                    let path = mounts::host_source(&path, create, &shares, &self.machine.name)?;
                    MountSource::Host {
                        path: path.to_string_lossy().into_owned(),
                    }
                }
                Source::Volume(name) => {
                    self.ensure_volume(&name, BTreeMap::new())?;
                    MountSource::Volume { name }
                }
                Source::Anonymous => {
                    let name = super::random_hex(64);
                    let labels = BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]);
                    self.ensure_volume(&name, labels)?;
                    MountSource::Volume { name }
                }
            };
            out.push(Mount {
                source,
                target,
                read_only,
                no_copy,
            });
        }
        Ok(out)
    }

    /// Before a start: the container's volumes exist (a `volume rm` may have raced its
    /// create).
    pub fn ensure_volumes(&self, mounts: &[Mount]) -> Result<(), ApiError> {
        for m in mounts {
            if let MountSource::Volume { name } = &m.source {
                self.ensure_volume(name, BTreeMap::new())?;
            }
        }
        Ok(())
    }

    /// The volume `name`, created (with a `create` event) when missing.
    pub fn ensure_volume(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume, ApiError> {
        let existed = self.volumes.get(name).is_some();
        let v = self.volumes.ensure(name, labels)?;
        if !existed {
            self.events.volume(name, "create", None);
        }
        Ok(v)
    }

    /// Removes a volume and its data; refused while a container uses it.
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<(), ApiError> {
        let _one_at_a_time = self.volumes.removing.lock().await;
        if self.volumes.get(name).is_none() {
            return match force {
                true => Ok(()),
                false => Err(no_such_volume(name)),
            };
        }
        let users = users(self, name);
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.guest
            .remove_volume(name)
            .await?
            .map_err(|e| ApiError::internal(format!("remove {name}: {e}")))?;
        match std::fs::remove_file(self.volumes.path(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!("removed volume {name}");
        self.events.volume(name, "destroy", None);
        Ok(())
    }

    /// After `rm -v` or an auto-removal: the container's anonymous volumes that no other
    /// container uses are removed (failures are logged, as Docker).
    pub async fn remove_anonymous_volumes(&self, record: &Record) {
        for m in &record.spec.mounts {
            let MountSource::Volume { name } = &m.source else {
                continue;
            };
            if self.volumes.get(name).is_some_and(|v| v.anonymous()) {
                if let Err(e) = self.remove_volume(name, true).await {
                    tracing::warn!("anonymous volume {name}: {e}");
                }
            }
        }
    }
}

/// `/volumes/...`: `rest` is the path after `volumes`.
pub async fn route(
    engine: &Arc<Engine>,
    method: &Method,
    rest: &[&str],
    q: &HashMap<String, String>,
    body: impl std::future::Future<Output = Result<VolumeCreateBody, ApiError>>,
) -> Result<hyper::Response<Body>, ApiError> {
    let get = *method == Method::GET || *method == Method::HEAD;
    match (rest, method) {
        ([], _) if get => Ok(http::json(200, &list(engine, q)?)),
        (["create"], &Method::POST) => {
            let body = body.await?;
            Ok(http::json(201, &create(engine, &body)?.view()))
        }
        (["prune"], &Method::POST) => Ok(http::json(200, &prune(engine, q).await?)),
        ([name], _) if get => match engine.volumes.get(name) {
            Some(v) => Ok(http::json(200, &v.view())),
            None => Err(no_such_volume(name)),
        },
        ([name], &Method::DELETE) => {
            engine.remove_volume(name, http::flag(q, "force")).await?;
            Ok(http::no_content())
        }
        _ => Err(ApiError::not_found(format!(
            "page not found: {method} /volumes/{}",
            rest.join("/")
        ))),
    }
}

/// `POST /volumes/create`: `{Name, Driver, DriverOpts, Labels}`; a missing name gets a
/// random one; anything else is refused by name.
fn create(engine: &Engine, body: &VolumeCreateBody) -> Result<Volume, ApiError> {
    super::fields::check_other("", &body.other)?;
    match body.driver.as_deref().unwrap_or("") {
        "" | "local" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "volume driver {other:?} is not supported (berth has the local driver)"
            )))
        }
    }
    if let Some(opts) = body.driver_opts.as_ref().filter(|o| !o.is_empty()) {
        let keys: Vec<&str> = opts.keys().map(String::as_str).collect();
        return Err(ApiError::bad_request(format!(
            "volume driver options are not supported: {}",
            keys.join(", ")
        )));
    }
    let name = body
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| super::random_hex(64));
    engine.ensure_volume(&name, body.labels.clone().unwrap_or_default())
}

/// Docker's `filters` query parameter, with only the `known` keys.
fn filter_values(
    q: &HashMap<String, String>,
    known: &[&str],
) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let keys = super::filters::parse(q.get("filters").map(String::as_str))?;
    super::filters::only(&keys, known)?;
    Ok(keys)
}

/// `GET /volumes`: filters `name` (substring), `dangling` and `label`.
fn list(engine: &Engine, q: &HashMap<String, String>) -> Result<Value, ApiError> {
    let filters = filter_values(q, &["name", "dangling", "label", "driver"])?;
    let in_use: Vec<Vec<Mount>> = engine
        .all()
        .iter()
        .map(|c| c.record().spec.mounts)
        .collect();
    let used = |name: &str| in_use.iter().any(|m| uses(m, name));
    let volumes: Vec<Value> = engine
        .volumes
        .list()
        .into_iter()
        .filter(|v| {
            filters.iter().all(|(key, vals)| match key.as_str() {
                "name" => vals.iter().any(|n| v.name.contains(n.as_str())),
                "dangling" => vals
                    .iter()
                    .any(|d| matches!(d.as_str(), "true" | "1") != used(&v.name)),
                "label" => vals
                    .iter()
                    .all(|l| super::filters::label_matches(l, &v.labels)),
                "driver" => vals.iter().any(|d| d == "local"),
                _ => false,
            })
        })
        .map(|v| v.view())
        .collect();
    Ok(json!({"Volumes": volumes, "Warnings": []}))
}

/// `POST /volumes/prune`: unused anonymous volumes; every unused one with the filter
/// `all=true` (Docker 23's rule).
async fn prune(engine: &Engine, q: &HashMap<String, String>) -> Result<Value, ApiError> {
    let filters = filter_values(q, &["all", "label"])?;
    let all = filters
        .get("all")
        .is_some_and(|v| v.iter().any(|a| matches!(a.as_str(), "true" | "1")));
    let labelled = |v: &Volume| {
        filters
            .get("label")
            .into_iter()
            .flatten()
            .all(|l| match l.split_once("!=") {
                Some((k, val)) => v.labels.get(k).is_none_or(|x| x != val),
                None => super::filters::label_matches(l, &v.labels),
            })
    };
    let usage = engine.guest_usage().await.unwrap_or_default();
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for v in engine.volumes.list() {
        if (all || v.anonymous()) && labelled(&v) && users(engine, &v.name).is_empty() {
            engine.remove_volume(&v.name, true).await?;
            reclaimed += usage.volumes.get(&v.name).copied().unwrap_or(0);
            deleted.push(v.name);
        }
    }
    Ok(json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_creates_once_and_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(tmp.path().join("volumes"));
        assert!(store.list().is_empty());
        let a = store.ensure("vol1", BTreeMap::new()).unwrap();
        let again = store
            .ensure("vol1", BTreeMap::from([("x".into(), "y".into())]))
            .unwrap();
        assert_eq!(a, again);
        let anon = store
            .ensure(
                "abcdef",
                BTreeMap::from([(ANONYMOUS_LABEL.into(), String::new())]),
            )
            .unwrap();
        assert!(anon.anonymous() && !a.anonymous());
        let names: Vec<_> = store.list().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["abcdef", "vol1"]);
        assert!(store.ensure("../x", BTreeMap::new()).is_err());
        assert!(store.get("../volumes/vol1").is_none());
        assert_eq!(a.view()["Mountpoint"], "/var/lib/berth/volumes/vol1/_data");
        std::fs::write(store.path("bad"), "{").unwrap();
        assert_eq!(store.list().len(), 2);
    }

    #[test]
    fn filters_in_both_shapes() {
        let q = |f: &str| HashMap::from([("filters".to_string(), f.to_string())]);
        let known = ["dangling", "name"];
        let f = filter_values(&q(r#"{"dangling":["true"],"name":{"vol":true}}"#), &known).unwrap();
        assert_eq!(f["dangling"], ["true"]);
        assert_eq!(f["name"], ["vol"]);
        assert!(filter_values(&q("{"), &known).is_err());
        assert!(filter_values(&HashMap::new(), &known).unwrap().is_empty());
        let err = filter_values(&q(r#"{"colour":["red"]}"#), &known).unwrap_err();
        assert!(err.message.contains("colour"), "{}", err.message);
    }
}
