//! The steps that need a container on the machine: `RUN` (started, its output streamed,
//! its changes committed as a layer) and `COPY`/`ADD` (a tar extracted into a container
//! that never runs, then committed). Each container is removed when its step ends, the
//! step failed or was cancelled included.

use std::io::{Read, Seek, Write};
use std::sync::Arc;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::steps::{parse_chmod, parse_chown, run_argv, Builder, Done, Failed};
use crate::build::context;
use crate::build::dockerfile::{parse_mount, CopySpec, Dockerfile, MountKind, RunSpec};
use crate::daemon::container::{Chunk, Container};
use crate::daemon::models::CreateBody;
use crate::image::ImageRecord;

impl Builder<'_> {
    /// `RUN`: the command in a container from the current image.
    pub(super) async fn run(
        &mut self,
        d: Done,
        run: &RunSpec,
        original: &str,
    ) -> Result<Done, Failed> {
        let argv = run_argv(&d.state, run)?;
        if let Some(s) = &run.security {
            if s != "sandbox" {
                return Err(format!(
                    "RUN --security={s}: berth runs build steps sandboxed only"
                ));
            }
        }
        let mut mounts = Vec::new();
        for raw in &run.mounts {
            let m = parse_mount(raw)?;
            match m.kind {
                MountKind::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| m.target.clone());
                    let name = format!("berth-build-cache-{}", &hex(id.as_bytes())[..16]);
                    mounts.push(json!({"Type": "volume", "Source": name, "Target": m.target, "ReadOnly": m.read_only}));
                }
                MountKind::Tmpfs => {
                    mounts.push(json!({"Type": "tmpfs", "Target": m.target}));
                }
                MountKind::Bind => {
                    return Err(format!(
                        "RUN --mount={raw}: bind mounts of the build context or a stage are not supported by berth yet; COPY the files instead"
                    ))
                }
            }
        }
        let network = match run.network.as_deref().or(self.opts.network.as_deref()) {
            None | Some("default") => "bridge".to_string(),
            Some(n) => n.to_string(),
        };
        let key = self.key(
            &d,
            original,
            &format!(
                "{network}\0{}",
                serde_json::to_string(&mounts).unwrap_or_default()
            ),
        );
        if let Some(image) = self.cached(&key) {
            return Ok(Done {
                image: Some(image),
                state: d.state,
            });
        }
        let parent = d
            .image
            .as_ref()
            .ok_or("RUN needs a base image with a shell: this stage is FROM scratch")?;
        let mut host = json!({"NetworkMode": network, "Mounts": mounts});
        if !self.opts.extra_hosts.is_empty() {
            host["ExtraHosts"] = json!(self.opts.extra_hosts);
        }
        if let Some(shm) = self.opts.shm_size {
            host["ShmSize"] = json!(shm);
        }
        let body = json!({
            "Image": parent.id().to_string(),
            "Cmd": argv,
            "Entrypoint": [""],
            "Env": d.state.run_env(),
            "WorkingDir": d.state.config.working_dir.clone().unwrap_or_default(),
            "User": d.state.config.user.clone().unwrap_or_default(),
            "HostConfig": host,
        });
        let c = self.container(body)?;
        self.out.say(&format!(" ---> Running in {}\n", &c.id[..12]));
        let ran = self.run_to_exit(&c).await;
        let committed = match ran {
            Ok(0) => self.commit(&c, parent, &d, &argv.join(" ")).await,
            Ok(code) => Err(format!(
                "The command '{}' returned a non-zero code: {code}",
                argv.join(" ")
            )),
            Err(e) => Err(e),
        };
        self.discard(&c).await;
        let id = committed?;
        self.remember(key, &id, d.state)
    }

    /// Starts `c`, streams its output, and returns its exit code; a client that went
    /// away kills it.
    async fn run_to_exit(&self, c: &Arc<Container>) -> Result<i32, Failed> {
        let mut output = c.out_tx.subscribe();
        let wait = self
            .engine
            .wait(c, "next-exit")
            .map_err(|e| e.message.clone())?;
        self.engine
            .start(c)
            .await
            .map_err(|e| format!("starting the step's container: {}", e.message))?;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            tokio::select! {
                chunk = output.recv() => match chunk {
                    Ok(Chunk::Data(_, bytes)) => self.out.say(&String::from_utf8_lossy(&bytes)),
                    Ok(Chunk::End) | Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                },
                _ = tick.tick() => {
                    if self.out.cancelled() {
                        let _ = self.engine.kill(c, 9).await;
                        return Err("the build was cancelled".into());
                    }
                }
            }
        }
        let (code, _) = wait.await;
        Ok(code)
    }

    /// A container (never started by this) from a create body.
    fn container(&self, body: serde_json::Value) -> Result<Arc<Container>, Failed> {
        let body: CreateBody = serde_json::from_value(body).map_err(|e| e.to_string())?;
        let id = self
            .engine
            .create(&body, None)
            .map_err(|e| format!("creating the step's container: {}", e.message))?;
        self.engine.find(&id).map_err(|e| e.message.clone())
    }

    async fn discard(&self, c: &Arc<Container>) {
        match self.engine.remove(c, true).await {
            Ok(()) => self.out.say(&format!(
                "Removing intermediate container {}\n",
                &c.id[..12]
            )),
            Err(e) => tracing::warn!("build: removing {}: {}", c.id, e.message),
        }
    }

    /// `c`'s changes as a layer on `parent`, with the stage's config.
    async fn commit(
        &self,
        c: &Arc<Container>,
        parent: &ImageRecord,
        d: &Done,
        created_by: &str,
    ) -> Result<crate::image::Digest, Failed> {
        let spool = self
            .engine
            .spool_layer(c)
            .await
            .map_err(|e| format!("reading the step's changes: {}", e.message))?;
        let config = serde_json::to_value(&d.state.config).map_err(|e| e.to_string())?;
        let store = self.engine.images.clone();
        let parent = parent.clone();
        let created_by = created_by.to_string();
        tokio::task::spawn_blocking(move || {
            let mut file = std::io::BufReader::new(std::fs::File::open(spool.path())?);
            let id = crate::image::commit::derive(
                &store,
                Some(&parent),
                Some(&mut file),
                &config,
                &created_by,
            );
            drop(spool);
            Ok::<_, std::io::Error>(id)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
        .map_err(|e| crate::error::chain(&e))
    }

    /// `COPY`/`ADD`: files from the context, a heredoc, an earlier stage or an image,
    /// as one tar that becomes the step's layer.
    pub(super) async fn copy(
        &mut self,
        df: &Dockerfile,
        stages: &std::collections::HashMap<usize, Done>,
        d: Done,
        spec: &CopySpec,
        original: &str,
        add: bool,
    ) -> Result<Done, Failed> {
        let what = if add { "ADD" } else { "COPY" };
        let workdir = d
            .state
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        let dest = d.state.word(&spec.dest)?;
        let chown = match &spec.chown {
            Some(c) => Some(parse_chown(&d.state.word(c)?)?),
            None => None,
        };
        let chmod = spec.chmod.as_deref().map(parse_chmod).transpose()?;
        let heredoc = |s: &str| spec.heredocs.iter().any(|h| s == format!("<<{}", h.name));
        let sources: Vec<String> = spec
            .sources
            .iter()
            .filter(|s| !heredoc(s))
            .map(|s| d.state.word(s))
            .collect::<Result<_, _>>()?;
        if let Some(url) = sources.iter().find(|s| s.contains("://")) {
            return Err(format!(
                "{what} {url}: berth builds do not download; fetch the file into the context"
            ));
        }
        let several = sources.len() + spec.heredocs.len() > 1;
        let mut dest_abs = super::stage::join_workdir(&workdir, &dest);
        if dest.ends_with('/') || dest.ends_with("/.") || dest == "." {
            dest_abs = format!("{}/", dest_abs.trim_end_matches('/'));
        }
        let tmp_dir = self.engine.images.root().join("tmp");
        std::fs::create_dir_all(&tmp_dir).map_err(|e| e.to_string())?;
        let mut tar_file = tempfile::tempfile_in(&tmp_dir).map_err(|e| e.to_string())?;
        let mut key_extra = String::new();
        {
            let mut out = tar::Builder::new(&mut tar_file);
            if let Some(from) = &spec.from {
                let from = d.state.word(from)?;
                let image = match stage_image(df, stages, &from) {
                    Some(image) => image,
                    None => self.base_image(&from).await?,
                };
                key_extra.push_str(&image.id().to_string());
                self.copy_from_image(&image, &sources, &dest_abs, several, chown, chmod, &mut out)
                    .await?;
            } else if !sources.is_empty() {
                let selected = self
                    .ctx
                    .select(&sources, self.ignore)
                    .map_err(|e| format!("{what} failed: {e}"))?;
                let items = context::destinations(&selected, &dest, &workdir, several)
                    .map_err(|e| e.to_string())?;
                key_extra.push_str(
                    &context::content_key(self.ctx, &items, chown, chmod)
                        .map_err(|e| e.to_string())?,
                );
                match local_archive(add, self.ctx, &items) {
                    Some(archive) => {
                        let dir = dest_abs
                            .trim_end_matches('/')
                            .trim_start_matches('/')
                            .to_string();
                        let input = std::fs::File::open(self.ctx.root().join(&archive))
                            .map_err(|e| e.to_string())?;
                        retar(
                            decompress(input)?,
                            &mut out,
                            |p| Some(join(&dir, p)),
                            chown,
                            chmod,
                        )?;
                    }
                    None => {
                        let mut part =
                            tempfile::tempfile_in(&tmp_dir).map_err(|e| e.to_string())?;
                        context::write_tar(self.ctx, &items, chown, chmod, &mut part)
                            .map_err(|e| e.to_string())?;
                        part.rewind().map_err(|e| e.to_string())?;
                        retar(part, &mut out, |p| Some(p.to_string()), None, None)?;
                    }
                }
            }
            for h in &spec.heredocs {
                let path = match dest_abs.ends_with('/') {
                    true => format!("{dest_abs}{}", h.name),
                    false => dest_abs.clone(),
                };
                key_extra.push_str(&hex(format!("{path}\0{}", h.body).as_bytes()));
                let mut header = tar::Header::new_gnu();
                header.set_size(h.body.len() as u64);
                header.set_mode(chmod.unwrap_or(0o644));
                let (u, g) = chown.unwrap_or((0, 0));
                header.set_uid(u);
                header.set_gid(g);
                header.set_entry_type(tar::EntryType::Regular);
                out.append_data(&mut header, path.trim_start_matches('/'), h.body.as_bytes())
                    .map_err(|e| e.to_string())?;
            }
            out.finish().map_err(|e| e.to_string())?;
        }
        let key = self.key(&d, original, &key_extra);
        if let Some(image) = self.cached(&key) {
            return Ok(Done {
                image: Some(image),
                state: d.state,
            });
        }
        tar_file.rewind().map_err(|e| e.to_string())?;
        let config = serde_json::to_value(&d.state.config).map_err(|e| e.to_string())?;
        let store = self.engine.images.clone();
        let base = d.image.clone();
        let created_by = format!("/bin/sh -c #(nop) {original}");
        let id = tokio::task::spawn_blocking(move || {
            let mut reader = std::io::BufReader::new(tar_file);
            crate::image::commit::derive(
                &store,
                base.as_ref(),
                Some(&mut reader),
                &config,
                &created_by,
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| crate::error::chain(&e))?;
        self.remember(key, &id, d.state)
    }

    /// `COPY --from`: each source path read from `image` (through a container that never
    /// runs), placed under `dest` as Docker does.
    #[allow(clippy::too_many_arguments)]
    async fn copy_from_image(
        &self,
        image: &ImageRecord,
        sources: &[String],
        dest: &str,
        several: bool,
        chown: Option<(u64, u64)>,
        chmod: Option<u32>,
        out: &mut tar::Builder<&mut std::fs::File>,
    ) -> Result<(), Failed> {
        let c = self.container(json!({
            "Image": image.id().to_string(), "Cmd": ["true"], "Entrypoint": [""],
            "HostConfig": {"NetworkMode": "none"},
        }))?;
        let result = async {
            for source in sources {
                if source.contains(['*', '?', '[']) {
                    return Err(format!(
                        "COPY --from {source}: berth does not expand wildcards in another image yet; name the path"
                    ));
                }
                let path = match source.starts_with('/') {
                    true => source.clone(),
                    false => format!("/{source}"),
                };
                let stat = self
                    .engine
                    .archive_stat(&c, &path)
                    .await
                    .map_err(|e| format!("COPY --from: {path}: {}", e.message))?;
                let is_dir = stat.mode & 0o170000 == 0o040000;
                let spool = self
                    .engine
                    .spool_builtin(&c, berth_protocol::Builtin::ArchiveGet { path: path.clone() })
                    .await
                    .map_err(|e| format!("COPY --from: {path}: {}", e.message))?;
                let base = stat.name.clone();
                let dest_dir = dest.trim_end_matches('/').trim_start_matches('/').to_string();
                let into_dir = dest.ends_with('/') || several || is_dir;
                let file = std::fs::File::open(spool.path()).map_err(|e| e.to_string())?;
                retar(
                    file,
                    out,
                    |p| {
                        let p = p.trim_end_matches('/');
                        let rest = p.strip_prefix(base.as_str())?;
                        let rest = rest.trim_start_matches('/');
                        match (is_dir, into_dir) {
                            (true, _) if rest.is_empty() => None,
                            (true, _) => Some(join(&dest_dir, rest)),
                            (false, true) => Some(join(&dest_dir, &join(&base, rest))),
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
        if let Err(e) = self.engine.remove(&c, true).await {
            tracing::warn!("build: removing {}: {}", c.id, e.message);
        }
        result
    }
}

/// `a/b` from a directory (possibly empty: the root) and a relative path.
fn join(dir: &str, rel: &str) -> String {
    match (dir.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => dir.to_string(),
        _ => format!("{dir}/{rel}"),
    }
}

/// `ADD` of one local tar archive (plain or gzip): its name in the context.
fn local_archive(
    add: bool,
    ctx: &context::Context,
    items: &[(String, context::Selected)],
) -> Option<String> {
    if !add || items.len() != 1 || !items[0].1.single_file {
        return None;
    }
    let path = items[0].1.entry.path.clone();
    let mut head = [0u8; 512];
    let mut f = std::fs::File::open(ctx.root().join(&path)).ok()?;
    let n = f.read(&mut head).ok()?;
    let gzip = n >= 2 && head[..2] == [0x1f, 0x8b];
    let tar = n >= 262 && &head[257..262] == b"ustar";
    (gzip || tar).then_some(path)
}

/// A tar reader over a plain or gzip file.
fn decompress(mut f: std::fs::File) -> Result<Box<dyn Read>, Failed> {
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| e.to_string())?;
    f.rewind().map_err(|e| e.to_string())?;
    Ok(match n == 2 && magic == [0x1f, 0x8b] {
        true => Box::new(flate2::read::GzDecoder::new(f)),
        false => Box::new(f),
    })
}

/// Copies the entries of the tar `input` into `out`, renamed by `map` (`None` skips one),
/// with the owner and file mode given.
fn retar<W: Write>(
    input: impl Read,
    out: &mut tar::Builder<W>,
    map: impl Fn(&str) -> Option<String>,
    chown: Option<(u64, u64)>,
    chmod: Option<u32>,
) -> Result<(), Failed> {
    let mut archive = tar::Archive::new(input);
    let bad = |e: std::io::Error| format!("reading an archive: {e}");
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let name = name.trim_start_matches("./").to_string();
        let Some(new) = map(&name) else { continue };
        if new.is_empty() {
            continue;
        }
        let mut header = entry.header().clone();
        if let Some((u, g)) = chown {
            header.set_uid(u);
            header.set_gid(g);
        }
        let kind = header.entry_type();
        if let (Some(m), true) = (chmod, kind.is_file() || kind.is_dir()) {
            header.set_mode(m);
        }
        if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(bad)?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = map(target.trim_start_matches("./")).unwrap_or(target);
            out.append_link(&mut header, &new, &target).map_err(bad)?;
            continue;
        }
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(bad)?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.append_link(&mut header, &new, &target).map_err(bad)?;
            continue;
        }
        out.append_data(&mut header, &new, &mut entry)
            .map_err(bad)?;
    }
    Ok(())
}

/// The image an earlier stage ended with, when `name` names one.
fn stage_image(
    df: &Dockerfile,
    stages: &std::collections::HashMap<usize, Done>,
    name: &str,
) -> Option<ImageRecord> {
    let lower = name.to_ascii_lowercase();
    let stage = df
        .stages
        .iter()
        .find(|s| s.name.as_deref() == Some(lower.as_str()) || s.index.to_string() == lower)?;
    stages.get(&stage.index)?.image.clone()
}

fn hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}
