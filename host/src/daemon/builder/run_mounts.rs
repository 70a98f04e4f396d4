//! `RUN --mount`: what each mount type becomes in the step's container, every option
//! honoured or refused by name. `type=cache` is a named volume kept between builds,
//! `type=tmpfs` a tmpfs, and `type=bind` (the context, a stage or an image) a volume
//! filled with the source's files before the step runs and removed after it: read-only
//! unless `rw`, and, as BuildKit's, what a step writes there is discarded.

use std::collections::{BTreeMap, HashMap};
use std::io::Seek;

use serde_json::{json, Value};

use super::image_files::stage_image;
use super::retar::{hex, relative_to, retar};
use super::steps::{Builder, Done, Failed};
use crate::build::context;
use crate::build::dockerfile::Dockerfile;
use crate::build::dockerfile::{MountKind, RunMount};
use crate::image::ImageRecord;

/// Where a bind mount's files come from.
pub(super) enum BindSource {
    /// A directory of the build context, as the mount's `source` names it.
    Context(String),
    /// A directory of an image (a stage's result, or an image by name).
    Image(ImageRecord, String),
}

/// A bind mount to fill before the step runs.
pub(super) struct Bind {
    pub source: BindSource,
    pub target: String,
    pub read_only: bool,
}

/// The step's mounts: `HostConfig.Mounts` entries, `HostConfig.Tmpfs`, the binds still
/// to fill, and the text they add to the step's cache key.
#[derive(Default)]
pub(super) struct StepMounts {
    pub mounts: Vec<Value>,
    pub tmpfs: BTreeMap<String, String>,
    pub binds: Vec<Bind>,
    pub key: String,
}

/// Refuses an option that `kind` does not take or berth does not honour.
fn refuse_unused(raw: &str, m: &RunMount) -> Result<(), Failed> {
    let bad = |opt: &str, why: &str| Err(format!("RUN --mount={raw}: {opt} {why}"));
    match m.kind {
        MountKind::Cache => {
            if matches!(m.sharing.as_deref(), Some("private" | "locked")) {
                return bad(
                    "sharing=private|locked",
                    "is not supported by berth: cache mounts are shared",
                );
            }
            if m.mode.is_some() || m.uid.is_some() || m.gid.is_some() {
                return bad(
                    "mode, uid and gid",
                    "are not supported by berth for cache mounts yet",
                );
            }
            if m.from.is_some() || m.source.is_some() {
                return bad(
                    "from and source",
                    "are not supported by berth for cache mounts yet",
                );
            }
            if m.size.is_some() {
                return bad("size", "is for tmpfs mounts");
            }
        }
        MountKind::Tmpfs => {
            if m.from.is_some() || m.source.is_some() || m.id.is_some() || m.sharing.is_some() {
                return bad("from, source, id and sharing", "are not tmpfs options");
            }
            if m.mode.is_some() || m.uid.is_some() || m.gid.is_some() {
                return bad("mode, uid and gid", "are not tmpfs options");
            }
        }
        MountKind::Bind => {
            if m.id.is_some() || m.sharing.is_some() || m.size.is_some() {
                return bad("id, sharing and size", "are not bind options");
            }
            if m.mode.is_some() || m.uid.is_some() || m.gid.is_some() {
                return bad("mode, uid and gid", "are not bind options");
            }
        }
    }
    Ok(())
}

impl Builder<'_> {
    /// Reads the step's `--mount` flags (already parsed) into mounts; binds are only
    /// described here, and filled by [`Builder::fill_binds`] when the step runs.
    pub(super) async fn step_mounts(
        &self,
        df: &Dockerfile,
        stages: &HashMap<usize, Done>,
        d: &Done,
        parsed: &[(String, RunMount)],
    ) -> Result<StepMounts, Failed> {
        let mut out = StepMounts::default();
        for (raw, m) in parsed {
            refuse_unused(raw, m)?;
            let target = super::stage::join_workdir(
                d.state
                    .config
                    .working_dir
                    .as_deref()
                    .filter(|w| !w.is_empty())
                    .unwrap_or("/"),
                &m.target,
            );
            match m.kind {
                MountKind::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| m.target.clone());
                    let name = format!("berth-build-cache-{}", &hex(id.as_bytes())[..16]);
                    out.mounts.push(json!({"Type": "volume", "Source": name, "Target": target, "ReadOnly": m.read_only}));
                }
                MountKind::Tmpfs => {
                    let mut opts = Vec::new();
                    if let Some(size) = &m.size {
                        opts.push(format!("size={size}"));
                    }
                    if m.read_only {
                        opts.push("ro".into());
                    }
                    out.tmpfs.insert(target.clone(), opts.join(","));
                }
                MountKind::Bind => {
                    let path = m.source.clone().unwrap_or_default();
                    let source = match &m.from {
                        None => {
                            let selected = self
                                .ctx
                                .select(std::slice::from_ref(&path), self.ignore)
                                .map_err(|e| format!("RUN --mount={raw}: {e}"))?;
                            let items = context::destinations(&selected, "/", "/", true)
                                .map_err(|e| format!("RUN --mount={raw}: {e}"))?;
                            if selected.len() == 1 && selected[0].single_file {
                                return Err(format!(
                                    "RUN --mount={raw}: berth binds directories only; bind the file's directory"
                                ));
                            }
                            out.key.push_str(
                                &context::content_key(self.ctx, &items, None, None)
                                    .map_err(|e| e.to_string())?,
                            );
                            BindSource::Context(path)
                        }
                        Some(from) => {
                            let from = d.state.word(from)?;
                            let image = match stage_image(df, stages, &from) {
                                Some(image) => image,
                                None => self.base_image(&from).await?,
                            };
                            let path = format!("/{}", path.trim_start_matches('/'));
                            out.key.push_str(&format!("{}:{path}", image.id()));
                            BindSource::Image(image, path)
                        }
                    };
                    out.key.push_str(&format!("\0{target}\0{}\0", m.read_only));
                    out.binds.push(Bind {
                        source,
                        target,
                        read_only: m.read_only,
                    });
                }
            }
        }
        let listed = serde_json::to_string(&(&out.mounts, &out.tmpfs)).unwrap_or_default();
        out.key.push_str(&listed);
        Ok(out)
    }

    /// Fills a fresh volume for each bind with its source's files, through a container
    /// of `parent` that never runs; returns the mounts for the step and the volumes to
    /// remove after it (also when this fails part-way).
    pub(super) async fn fill_binds(
        &self,
        parent: &ImageRecord,
        binds: &[Bind],
        volumes: &mut Vec<String>,
    ) -> Result<Vec<Value>, Failed> {
        let mut mounts = Vec::new();
        for bind in binds {
            let name = format!("berth-build-bind-{}", crate::daemon::random_hex(12));
            self.engine
                .ensure_volume(
                    &name,
                    BTreeMap::from([("berth.build".to_string(), "bind".to_string())]),
                )
                .map_err(|e| e.message)?;
            volumes.push(name.clone());
            let tar = self.bind_tar(&bind.source).await?;
            let helper = self.container(json!({
                "Image": parent.id().to_string(), "Cmd": ["true"], "Entrypoint": [""],
                "HostConfig": {"NetworkMode": "none", "Mounts": [
                    {"Type": "volume", "Source": name, "Target": "/.berth-bind", "VolumeOptions": {"NoCopy": true}}
                ]},
            }))?;
            let put = self
                .engine
                .archive_put_from(
                    &helper,
                    "/.berth-bind",
                    false,
                    true,
                    tokio::fs::File::from_std(tar),
                )
                .await;
            self.drop_reader(&helper).await;
            put.map_err(|e| format!("filling the bind mount at {}: {}", bind.target, e.message))?;
            mounts.push(json!({
                "Type": "volume", "Source": name, "Target": bind.target,
                "ReadOnly": bind.read_only, "VolumeOptions": {"NoCopy": true},
            }));
        }
        Ok(mounts)
    }

    /// Removes the binds' volumes after the step.
    pub(super) async fn drop_binds(&self, volumes: &[String]) {
        for name in volumes {
            if let Err(e) = self.engine.remove_volume(name, true).await {
                tracing::warn!("build: removing the bind volume {name}: {}", e.message);
            }
        }
    }

    /// A tar of a bind's source directory, its paths relative to that directory.
    async fn bind_tar(&self, source: &BindSource) -> Result<std::fs::File, Failed> {
        let tmp_dir = self.engine.images.root().join("tmp");
        std::fs::create_dir_all(&tmp_dir).map_err(|e| e.to_string())?;
        let mut file = tempfile::tempfile_in(&tmp_dir).map_err(|e| e.to_string())?;
        match source {
            BindSource::Context(path) => {
                let selected = self
                    .ctx
                    .select(std::slice::from_ref(path), self.ignore)
                    .map_err(|e| e.to_string())?;
                let items =
                    context::destinations(&selected, "/", "/", true).map_err(|e| e.to_string())?;
                context::write_tar(self.ctx, &items, None, None, &mut file)
                    .map_err(|e| e.to_string())?;
            }
            BindSource::Image(image, path) => {
                let c = self.reader(image)?;
                let spooled = self.spool_path(&c, path).await;
                self.drop_reader(&c).await;
                let (stat, spool) = spooled?
                    .ok_or_else(|| format!("RUN --mount from an image: {path}: not found"))?;
                if stat.mode & 0o170000 != 0o040000 {
                    return Err(format!(
                        "RUN --mount from an image: {path}: berth binds directories only"
                    ));
                }
                let base = match path.as_str() {
                    "/" => ".".to_string(),
                    _ => stat.name,
                };
                let input = std::fs::File::open(spool.path()).map_err(|e| e.to_string())?;
                let mut out = tar::Builder::new(&mut file);
                retar(input, &mut out, |p| relative_to(p, &base), None, None)?;
                out.finish().map_err(|e| e.to_string())?;
            }
        }
        file.rewind().map_err(|e| e.to_string())?;
        Ok(file)
    }
}
