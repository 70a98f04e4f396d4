//! A create request's mounts: `HostConfig.Binds` (`-v`), `HostConfig.Mounts` (`--mount`)
//! and `Config.Volumes` (anonymous volumes), checked against the machine's shared folders
//! and turned into the [`Mount`]s the guest bind-mounts; and Docker's `Mounts` view.

use std::path::{Component, Path, PathBuf};

use berth_protocol::{Mount, MountSource, VOLUMES_DIR};
use serde_json::{json, Value};

use super::error::ApiError;
use super::models::create::{CreateBody, MountRequest};
use crate::shares::Share;

/// One mount as requested, before its source is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub source: Source,
    pub target: String,
    pub read_only: bool,
    /// `nocopy`: a new volume is not filled from the image.
    pub no_copy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path; `create` when a missing one is made (`-v`, as Docker), else it must exist.
    Host { path: PathBuf, create: bool },
    /// A named volume, created when missing.
    Volume(String),
    /// A fresh anonymous volume.
    Anonymous,
}

/// Docker's message for a bad volume name, which is also what a relative host path gets.
pub fn bad_volume_name(name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    ))
}

/// The mounts of a create request (`body` is Docker's create body), in the order Docker
/// applies them: binds, then `Mounts`, then anonymous volumes for `Config.Volumes` paths
/// that nothing else mounts.
pub fn parse(body: &CreateBody) -> Result<Vec<Requested>, ApiError> {
    let host = body.host();
    let mut out = Vec::new();
    for bind in host.binds.iter().flatten() {
        out.push(parse_bind(bind)?);
    }
    for m in host.mounts.iter().flatten() {
        out.push(parse_mount(m)?);
    }
    if let Some(volumes) = &body.config.volumes {
        for target in volumes.keys() {
            if !out.iter().any(|m| m.target == clean_target(target)) {
                out.push(Requested {
                    source: Source::Anonymous,
                    target: check_target(target)?,
                    read_only: false,
                    no_copy: false,
                });
            }
        }
    }
    for (i, m) in out.iter().enumerate() {
        if out[..i].iter().any(|o| o.target == m.target) {
            return Err(ApiError::bad_request(format!(
                "Duplicate mount point: {}",
                m.target
            )));
        }
    }
    Ok(out)
}

/// `SOURCE:TARGET[:OPTIONS]` or `TARGET` (an anonymous volume).
fn parse_bind(spec: &str) -> Result<Requested, ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts[..] {
        [target] => (None, target, ""),
        [source, target] => (Some(source), target, ""),
        [source, target, options] => (Some(source), target, options),
        _ => return Err(invalid()),
    };
    if target.is_empty() || source == Some("") {
        return Err(invalid());
    }
    let mut read_only = false;
    let mut no_copy = false;
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "nocopy" => no_copy = true,
            // SELinux relabelling, macOS consistency hints, the default propagation:
            // nothing to do here.
            "z" | "Z" | "consistent" | "cached" | "delegated" | "rprivate" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid mode: {other} (in '{spec}'; berth supports ro and rw)"
                )))
            }
        }
    }
    let source = match source {
        None => Source::Anonymous,
        Some(s) if s.starts_with('/') => Source::Host {
            path: PathBuf::from(s),
            create: true,
        },
        Some(s) => Source::Volume(volume_name(s)?),
    };
    if no_copy && !matches!(source, Source::Volume(_) | Source::Anonymous) {
        return Err(ApiError::bad_request(format!(
            "invalid mode: nocopy (in '{spec}'): only a volume is filled from the image"
        )));
    }
    Ok(Requested {
        source,
        target: check_target(target)?,
        read_only,
        no_copy,
    })
}

/// One entry of `HostConfig.Mounts`: `{Type, Source, Target, ReadOnly}`.
fn parse_mount(m: &MountRequest) -> Result<Requested, ApiError> {
    let kind = m.kind.as_deref().unwrap_or("volume");
    let source = m.source.as_deref().unwrap_or("");
    let target = m.target.as_deref().unwrap_or("");
    let invalid = |why: String| {
        ApiError::bad_request(format!("invalid mount config for type \"{kind}\": {why}"))
    };
    if target.is_empty() {
        return Err(invalid("field Target must not be empty".into()));
    }
    if let Some(v) = &m.volume_options {
        if kind != "volume" {
            return Err(invalid("VolumeOptions are for volume mounts".into()));
        }
        super::fields::check_other("HostConfig.Mounts.VolumeOptions.", &v.other)?;
    }
    let source = match kind {
        "bind" if source.is_empty() => {
            return Err(invalid("field Source must not be empty".into()))
        }
        "bind" if !source.starts_with('/') => {
            return Err(invalid(format!(
                "invalid mount path: '{source}' mount path must be absolute"
            )))
        }
        "bind" => Source::Host {
            path: PathBuf::from(source),
            create: false,
        },
        "volume" if source.is_empty() => Source::Anonymous,
        "volume" => Source::Volume(volume_name(source)?),
        other => {
            return Err(ApiError::bad_request(format!(
                "mount type {other:?} is not supported (berth mounts bind and volume)"
            )))
        }
    };
    Ok(Requested {
        source,
        target: check_target(target).map_err(|e| invalid(e.message))?,
        read_only: m.read_only.unwrap_or(false),
        no_copy: m
            .volume_options
            .as_ref()
            .and_then(|v| v.no_copy)
            .unwrap_or(false),
    })
}

fn volume_name(name: &str) -> Result<String, ApiError> {
    match super::create::valid_name(name) {
        true => Ok(name.to_string()),
        false => Err(bad_volume_name(name)),
    }
}

/// Target paths are absolute and never `/`; written without `.`, `..` or doubled slashes.
fn check_target(target: &str) -> Result<String, ApiError> {
    if !target.starts_with('/') {
        return Err(ApiError::bad_request(format!(
            "invalid mount path: '{target}' mount path must be absolute"
        )));
    }
    let clean = clean_target(target);
    if clean == "/" {
        return Err(ApiError::bad_request(
            "invalid specification: destination can't be '/'",
        ));
    }
    Ok(clean)
}

/// `target` with `.` and `..` resolved lexically (never above `/`).
fn clean_target(target: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A host source made real: missing `-v` folders are created (only inside a share),
/// the path is made canonical and must lie in one of `shares`.
pub fn host_source(
    path: &Path,
    create: bool,
    shares: &[Share],
    machine: &str,
) -> Result<PathBuf, ApiError> {
    let not_shared = |p: &Path| {
        let list: Vec<String> = shares
            .iter()
            .map(|s| s.path.display().to_string())
            .collect();
        ApiError::bad_request(format!(
            "bind source path {} is not shared with machine {machine} (it shares {}): stop the machine and start it with `berth machine start {machine} --share DIR`",
            p.display(),
            if list.is_empty() { "nothing".to_string() } else { list.join(", ") }
        ))
    };
    if !path.exists() {
        if !create {
            return Err(ApiError::bad_request(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                path.display()
            )));
        }
        let planned = planned_path(path).ok_or_else(|| not_shared(path))?;
        if crate::shares::containing(shares, &planned).is_none() {
            return Err(not_shared(path));
        }
        std::fs::create_dir_all(path).map_err(|e| {
            ApiError::internal(format!("cannot create bind source {}: {e}", path.display()))
        })?;
    }
    let canon = std::fs::canonicalize(path)
        .map_err(|e| ApiError::bad_request(format!("bind source {}: {e}", path.display())))?;
    match crate::shares::containing(shares, &canon) {
        Some(_) => Ok(canon),
        None => Err(not_shared(path)),
    }
}

/// Where a path that does not exist yet will be once created: its deepest existing
/// ancestor made canonical, plus the rest (`None` when the rest climbs with `..`).
fn planned_path(path: &Path) -> Option<PathBuf> {
    let mut base = path;
    let mut rest = Vec::new();
    while !base.exists() {
        rest.push(base.file_name()?);
        base = base.parent()?;
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return None;
    }
    let mut planned = std::fs::canonicalize(base).ok()?;
    planned.extend(rest.iter().rev());
    Some(planned)
}

/// The guest path of a volume's data.
pub fn volume_data(name: &str) -> String {
    format!("{VOLUMES_DIR}/{name}/_data")
}

/// Docker's `Mounts` entries for inspect and list.
pub fn view(mounts: &[Mount]) -> Value {
    let entries: Vec<Value> = mounts
        .iter()
        .map(|m| match &m.source {
            MountSource::Host { path } => json!({
                "Type": "bind",
                "Source": path,
                "Destination": m.target,
                "Mode": if m.read_only { "ro" } else { "" },
                "RW": !m.read_only,
                "Propagation": "rprivate",
            }),
            MountSource::Volume { name } => json!({
                "Type": "volume",
                "Name": name,
                "Source": volume_data(name),
                "Destination": m.target,
                "Driver": "local",
                "Mode": if m.read_only { "ro" } else { "z" },
                "RW": !m.read_only,
                "Propagation": "",
            }),
        })
        .collect();
    Value::Array(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested(body: Value) -> Result<Vec<Requested>, ApiError> {
        parse(&serde_json::from_value(body).unwrap())
    }

    #[test]
    fn binds_mounts_and_anonymous_volumes() {
        let got = requested(json!({
            "Volumes": {"/anon": {}, "/data": {}},
            "HostConfig": {
                "Binds": ["/srv/a:/data:ro", "vol1:/v", "/only"],
                "Mounts": [
                    {"Type": "bind", "Source": "/srv/b", "Target": "/b/./c/", "ReadOnly": true},
                    {"Type": "volume", "Source": "", "Target": "/scratch"}
                ]
            }
        }))
        .unwrap();
        let host = |p: &str, create| Source::Host {
            path: p.into(),
            create,
        };
        assert_eq!(
            got,
            [
                Requested {
                    source: host("/srv/a", true),
                    target: "/data".into(),
                    read_only: true,
                    no_copy: false,
                },
                Requested {
                    source: Source::Volume("vol1".into()),
                    target: "/v".into(),
                    read_only: false,
                    no_copy: false,
                },
                Requested {
                    source: Source::Anonymous,
                    target: "/only".into(),
                    read_only: false,
                    no_copy: false,
                },
                Requested {
                    source: host("/srv/b", false),
                    target: "/b/c".into(),
                    read_only: true,
                    no_copy: false,
                },
                Requested {
                    source: Source::Anonymous,
                    target: "/scratch".into(),
                    read_only: false,
                    no_copy: false,
                },
                Requested {
                    source: Source::Anonymous,
                    target: "/anon".into(),
                    read_only: false,
                    no_copy: false,
                },
            ]
        );
    }

    #[test]
    fn nocopy_is_honoured_for_volumes_and_refused_elsewhere() {
        let r = requested(json!({"HostConfig": {"Binds": ["data:/d:nocopy"]}})).unwrap();
        assert!(r[0].no_copy);
        let r = requested(json!({"HostConfig": {"Mounts": [
            {"Type": "volume", "Source": "vol", "Target": "/v", "VolumeOptions": {"NoCopy": true}}
        ]}}))
        .unwrap();
        assert!(r[0].no_copy);
        assert!(requested(json!({"HostConfig": {"Binds": ["/h:/d:nocopy"]}})).is_err());
        let err = requested(json!({"HostConfig": {"Mounts": [
            {"Type": "volume", "Source": "vol", "Target": "/v", "VolumeOptions": {"Subpath": "x"}}
        ]}}))
        .unwrap_err();
        assert!(err.message.contains("Subpath"), "{}", err.message);
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        let err = |binds: Value| {
            requested(json!({"HostConfig": {"Binds": binds}}))
                .unwrap_err()
                .message
        };
        assert!(err(json!(["relative/path:/x"]))
            .contains("includes invalid characters for a local volume name"));
        assert!(err(json!(["relative/path:/x"])).contains("use absolute path"));
        assert!(err(json!(["/a:x"])).contains("must be absolute"));
        assert!(err(json!(["/a:/"])).contains("destination can't be '/'"));
        assert!(err(json!(["/a:/x:rw:extra"])).contains("invalid volume specification"));
        assert!(err(json!(["/a:/x:shared"])).contains("invalid mode: shared"));
        assert!(err(json!(["/a:/x", "v1:/x/"])).contains("Duplicate mount point: /x"));
        let mount = |m: Value| {
            requested(json!({"HostConfig": {"Mounts": [m]}}))
                .unwrap_err()
                .message
        };
        assert!(
            mount(json!({"Type": "bind", "Source": "rel", "Target": "/x"}))
                .contains("must be absolute")
        );
        assert!(mount(json!({"Type": "tmpfs", "Target": "/x"})).contains("not supported"));
        assert!(mount(json!({"Type": "bind", "Source": "/a"})).contains("Target"));
    }

    #[test]
    fn host_sources_must_be_shared() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let shared = root.join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        let shares = crate::shares::resolve(std::slice::from_ref(&shared));
        // -v creates a missing folder inside a share ...
        let made = host_source(&shared.join("new/deeper"), true, &shares, "m").unwrap();
        assert!(made.is_dir() && made.starts_with(&shared));
        // ... but never outside one, and --mount wants it to exist.
        let e = host_source(&root.join("other/new"), true, &shares, "m").unwrap_err();
        assert!(e.message.contains("is not shared with machine m"), "{e}");
        assert!(!root.join("other/new").exists());
        let e = host_source(&shared.join("missing"), false, &shares, "m").unwrap_err();
        assert!(e.message.contains("bind source path does not exist"));
        // A symlink out of the share is judged by where it leads.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("other"), shared.join("link")).unwrap();
            let e = host_source(&shared.join("link"), false, &shares, "m").unwrap_err();
            assert!(e.message.contains("not shared"));
        }
        let e = host_source(&shared.join("../other/x"), true, &shares, "m").unwrap_err();
        assert!(e.message.contains("not shared"));
    }

    #[test]
    fn inspect_view() {
        let v = view(&[
            Mount {
                source: MountSource::Host {
                    path: "/home/a".into(),
                },
                target: "/data".into(),
                read_only: true,
                no_copy: false,
            },
            Mount {
                source: MountSource::Volume {
                    name: "vol1".into(),
                },
                target: "/v".into(),
                read_only: false,
                no_copy: false,
            },
        ]);
        assert_eq!(v[0]["Type"], "bind");
        assert_eq!(v[0]["RW"], false);
        assert_eq!(v[1]["Source"], "/var/lib/berth/volumes/vol1/_data");
        assert_eq!(v[1]["Name"], "vol1");
    }
}
