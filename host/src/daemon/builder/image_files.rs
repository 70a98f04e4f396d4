//! Files read out of images while building, each through a container that never runs:
//! `COPY --from` sources (wildcards included), the image's `/etc/passwd` and `/etc/group`
//! for `--chown=NAME`, and a stage's directory for `RUN --mount=type=bind,from=...`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use berth_protocol::{Builtin, PathStat};
use serde_json::json;

use super::owner;
use super::retar::{entries_under, has_wildcards, join, relative_to, retar, Pattern};
use super::steps::{Builder, Done, Failed};
use crate::build::dockerfile::Dockerfile;
use crate::daemon::container::Container;
use crate::image::ImageRecord;

/// The most of a text file (`/etc/passwd`) read for a lookup.
const TEXT_LIMIT: u64 = 4 << 20;

impl Builder<'_> {
    /// A container of `image` that is never started, for reading its files.
    pub(super) fn reader(&self, image: &ImageRecord) -> Result<Arc<Container>, Failed> {
        self.container(json!({
            "Image": image.id().to_string(), "Cmd": ["true"], "Entrypoint": [""],
            "HostConfig": {"NetworkMode": "none"},
        }))
    }

    pub(super) async fn drop_reader(&self, c: &Arc<Container>) {
        if let Err(e) = self.engine.remove(c, true).await {
            tracing::warn!("build: removing {}: {}", c.id, e.message);
        }
    }

    /// `path` in `c` as `ArchiveGet`'s tar in a file, with the path's stat; `None` when
    /// the path does not exist.
    pub(super) async fn spool_path(
        &self,
        c: &Container,
        path: &str,
    ) -> Result<Option<(PathStat, tempfile::NamedTempFile)>, Failed> {
        let stat = match self.engine.archive_stat(c, path).await {
            Ok(stat) => stat,
            Err(e) if e.status == 404 => return Ok(None),
            Err(e) => return Err(format!("{path}: {}", e.message)),
        };
        let spool = self
            .engine
            .spool_builtin(
                c,
                Builtin::ArchiveGet {
                    path: path.to_string(),
                },
            )
            .await
            .map_err(|e| format!("{path}: {}", e.message))?;
        Ok(Some((stat, spool)))
    }

    /// A text file of `c`, `None` when it is missing or not a regular file.
    async fn read_text(&self, c: &Container, path: &str) -> Result<Option<String>, Failed> {
        let Some((_, spool)) = self.spool_path(c, path).await? else {
            return Ok(None);
        };
        let bad = |e: std::io::Error| format!("reading {path}: {e}");
        let mut archive = tar::Archive::new(std::fs::File::open(spool.path()).map_err(bad)?);
        for entry in archive.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            if entry.header().entry_type().is_file() {
                let mut text = String::new();
                entry
                    .take(TEXT_LIMIT)
                    .read_to_string(&mut text)
                    .map_err(bad)?;
                return Ok(Some(text));
            }
        }
        Ok(None)
    }

    /// `--chown=VALUE` for a step on `d`: names are looked up in the stage's image.
    pub(super) async fn owner(&self, d: &Done, raw: &str) -> Result<(u64, u64), Failed> {
        if !owner::needs_lookup(raw) {
            return owner::resolve(raw, None, None);
        }
        let Some(image) = &d.image else {
            return Err(format!(
                "--chown={raw}: this stage is FROM scratch, with no /etc/passwd to look names up in; use numeric ids"
            ));
        };
        let c = self.reader(image)?;
        let files = async {
            let passwd = self.read_text(&c, "/etc/passwd").await?;
            let group = self.read_text(&c, "/etc/group").await?;
            Ok::<_, Failed>((passwd, group))
        }
        .await;
        self.drop_reader(&c).await;
        let (passwd, group) = files?;
        owner::resolve(raw, passwd.as_deref(), group.as_deref())
    }

    /// `COPY --from`: each source path (or wildcard pattern) read from `image`, placed
    /// under `dest` as Docker does.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn copy_from_image(
        &self,
        image: &ImageRecord,
        sources: &[String],
        dest: &str,
        several: bool,
        chown: Option<(u64, u64)>,
        chmod: Option<u32>,
        out: &mut tar::Builder<&mut std::fs::File>,
    ) -> Result<(), Failed> {
        let c = self.reader(image)?;
        let result = async {
            for source in sources {
                let dest_dir = dest
                    .trim_end_matches('/')
                    .trim_start_matches('/')
                    .to_string();
                if has_wildcards(source) {
                    self.copy_pattern(
                        &c,
                        source,
                        &dest_dir,
                        dest.ends_with('/') || several,
                        chown,
                        chmod,
                        out,
                    )
                    .await?;
                    continue;
                }
                let path = match source.starts_with('/') {
                    true => source.clone(),
                    false => format!("/{source}"),
                };
                let (stat, spool) = self
                    .spool_path(&c, &path)
                    .await
                    .map_err(|e| format!("COPY --from: {e}"))?
                    .ok_or_else(|| format!("COPY --from: {path}: not found"))?;
                let is_dir = stat.mode & 0o170000 == 0o040000;
                let base = match path.trim_end_matches('/') {
                    "" => ".".to_string(),
                    _ => stat.name.clone(),
                };
                let into_dir = dest.ends_with('/') || several || is_dir;
                let file = std::fs::File::open(spool.path()).map_err(|e| e.to_string())?;
                retar(
                    file,
                    out,
                    |p| {
                        let rest = relative_to(p, &base)?;
                        match (is_dir, into_dir) {
                            (true, _) if rest.is_empty() => None,
                            (true, _) => Some(join(&dest_dir, &rest)),
                            (false, true) => Some(join(&dest_dir, &join(&base, &rest))),
                            (false, false) => Some(dest_dir.clone()),
                        }
                    },
                    chown,
                    chmod,
                )?;
            }
            Ok(())
        }
        .await;
        self.drop_reader(&c).await;
        result
    }

    /// One `COPY --from` source with wildcards: its directory read once, the matches
    /// placed as sources of their own.
    #[allow(clippy::too_many_arguments)]
    async fn copy_pattern(
        &self,
        c: &Container,
        source: &str,
        dest_dir: &str,
        into_dir: bool,
        chown: Option<(u64, u64)>,
        chmod: Option<u32>,
        out: &mut tar::Builder<&mut std::fs::File>,
    ) -> Result<(), Failed> {
        let pattern = Pattern::new(source);
        let none =
            || format!("COPY --from: {source}: no source files were specified (nothing matches)");
        let Some((stat, spool)) = self
            .spool_path(c, &pattern.dir)
            .await
            .map_err(|e| format!("COPY --from: {e}"))?
        else {
            return Err(none());
        };
        if stat.mode & 0o170000 != 0o040000 {
            return Err(none());
        }
        let base = match pattern.dir.as_str() {
            "/" => ".".to_string(),
            _ => stat.name.clone(),
        };
        let file = std::fs::File::open(spool.path()).map_err(|e| e.to_string())?;
        let found = pattern.matches(&entries_under(file, &base)?)?;
        if found.is_empty() {
            return Err(none());
        }
        let into_dir = into_dir || found.len() > 1;
        let file = std::fs::File::open(spool.path()).map_err(|e| e.to_string())?;
        retar(
            file,
            out,
            |p| pattern.place(&relative_to(p, &base)?, &found, dest_dir, into_dir),
            chown,
            chmod,
        )
    }
}

/// The image an earlier stage ended with, when `name` names one.
pub(super) fn stage_image(
    df: &Dockerfile,
    stages: &HashMap<usize, Done>,
    name: &str,
) -> Option<ImageRecord> {
    let lower = name.to_ascii_lowercase();
    let stage = df
        .stages
        .iter()
        .find(|s| s.name.as_deref() == Some(lower.as_str()) || s.index.to_string() == lower)?;
    stages.get(&stage.index)?.image.clone()
}

/// The directories a COPY to `dest` (absolute) writes through: each of its ancestors and
/// itself, relative (`tmp`, `tmp/x`), the root left out.
pub(super) fn dest_dirs(dest: &str) -> Vec<String> {
    let comps: Vec<&str> = dest
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    (1..=comps.len()).map(|n| comps[..n].join("/")).collect()
}

impl Builder<'_> {
    /// The step's tar with the directories it writes through that already exist in
    /// `image` carried as they are there (mode, owner, mtime), so copying into `/tmp`
    /// keeps it 1777: in a layer, a directory's own entry decides its attributes.
    pub(super) async fn keep_existing_dirs(
        &self,
        image: &ImageRecord,
        dest: &str,
        tar: std::fs::File,
    ) -> Result<std::fs::File, Failed> {
        let wanted = dest_dirs(dest);
        if wanted.is_empty() {
            return Ok(tar);
        }
        let c = self.reader(image)?;
        let stats = async {
            let mut found = Vec::new();
            for rel in &wanted {
                match self.engine.archive_stat(&c, &format!("/{rel}")).await {
                    Ok(s) if s.mode & 0o170000 == 0o040000 => found.push((rel.clone(), s)),
                    Ok(_) => break,
                    Err(e) if e.status == 404 => break,
                    Err(e) => return Err(format!("/{rel}: {}", e.message)),
                }
            }
            Ok(found)
        }
        .await;
        self.drop_reader(&c).await;
        let found = stats?;
        if found.is_empty() {
            return Ok(tar);
        }
        let tmp_dir = self.engine.images.root().join("tmp");
        let out = tempfile::tempfile_in(&tmp_dir).map_err(|e| e.to_string())?;
        super::retar::with_dirs_first(tar, &found, out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_copy_writes_through_each_ancestor_of_its_destination() {
        assert_eq!(super::dest_dirs("/tmp/x/"), ["tmp", "tmp/x"]);
        assert_eq!(super::dest_dirs("/app"), ["app"]);
        assert!(super::dest_dirs("/").is_empty());
    }
}
