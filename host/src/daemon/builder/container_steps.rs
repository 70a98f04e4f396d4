//! The steps that need a container on the machine: `RUN` (started, its output streamed,
//! its changes committed as a layer) and `COPY`/`ADD` (a tar extracted into a container
//! that never runs, then committed). Each container is removed when its step ends, the
//! step failed or was cancelled included.

use std::io::Seek;
use std::sync::Arc;

use serde_json::json;

use super::download::is_url;
use super::image_files::stage_image;
use super::owner::parse_chmod;
use super::retar::{decompress, hex, join, local_archive, retar};
use super::run_mounts::StepMounts;
use super::steps::{run_argv, Builder, Done, Failed};
use crate::build::context;
use crate::build::dockerfile::{parse_mount, CopySpec, Dockerfile, RunSpec};
use crate::daemon::container::{Chunk, Container};
use crate::daemon::models::CreateBody;
use crate::image::ImageRecord;

impl Builder<'_> {
    /// `RUN`: the command in a container from the current image.
    pub(super) async fn run(
        &mut self,
        df: &Dockerfile,
        stages: &std::collections::HashMap<usize, Done>,
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
        let parsed = run
            .mounts
            .iter()
            .map(|raw| Ok((raw.clone(), parse_mount(&d.state.word(raw)?)?)))
            .collect::<Result<Vec<_>, Failed>>()?;
        let step_mounts = self.step_mounts(df, stages, &d, &parsed).await?;
        let network = match run.network.as_deref().or(self.opts.network.as_deref()) {
            None | Some("default") => "bridge".to_string(),
            Some(n) => n.to_string(),
        };
        let key = self.key(&d, original, &format!("{network}\0{}", step_mounts.key));
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
        let mut bind_volumes = Vec::new();
        let ran = self
            .run_with_binds(&d, parent, &argv, network, step_mounts, &mut bind_volumes)
            .await;
        self.drop_binds(&bind_volumes).await;
        let id = ran?;
        self.remember(key, &id, d.state)
    }

    /// The RUN's container, its binds filled first; returns the committed image.
    async fn run_with_binds(
        &self,
        d: &Done,
        parent: &ImageRecord,
        argv: &[String],
        network: String,
        step_mounts: StepMounts,
        bind_volumes: &mut Vec<String>,
    ) -> Result<crate::image::Digest, Failed> {
        let mut mounts = step_mounts.mounts;
        mounts.extend(
            self.fill_binds(parent, &step_mounts.binds, bind_volumes)
                .await?,
        );
        let mut host = json!({"NetworkMode": network, "Mounts": mounts});
        if !step_mounts.tmpfs.is_empty() {
            host["Tmpfs"] = json!(step_mounts.tmpfs);
        }
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
            Ok(0) => self.commit(&c, parent, d, &argv.join(" ")).await,
            Ok(code) => Err(format!(
                "The command '{}' returned a non-zero code: {code}",
                argv.join(" ")
            )),
            Err(e) => Err(e),
        };
        self.discard(&c).await;
        committed
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
    pub(super) fn container(&self, body: serde_json::Value) -> Result<Arc<Container>, Failed> {
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
            Some(c) => Some(self.owner(&d, &d.state.word(c)?).await?),
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
        let (urls, sources): (Vec<String>, Vec<String>) =
            sources.into_iter().partition(|s| is_url(s));
        if let Some(url) = urls.first() {
            if !add {
                return Err(format!(
                    "COPY {url}: source can't be a URL for COPY (ADD downloads)"
                ));
            }
            if spec.from.is_some() {
                return Err(format!(
                    "ADD --from with {url}: a URL is not read from an image"
                ));
            }
        } else if spec.checksum.is_some() {
            return Err("ADD --checksum can't be specified for non-HTTP(S) sources".into());
        }
        if spec.keep_git_dir {
            return Err("ADD --keep-git-dir: berth builds do not clone git repositories".into());
        }
        let several = urls.len() + sources.len() + spec.heredocs.len() > 1;
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
            for url in &urls {
                let checksum = spec
                    .checksum
                    .as_deref()
                    .map(|c| d.state.word(c))
                    .transpose()?;
                let got = self.download(url, checksum.as_deref()).await?;
                let path = match dest_abs.ends_with('/') {
                    true if got.name.is_empty() => {
                        return Err(format!(
                            "ADD {url}: the URL names no file; give the destination's file name"
                        ))
                    }
                    true => format!("{dest_abs}{}", got.name),
                    false => dest_abs.clone(),
                };
                key_extra.push_str(&format!("{path}\0{}\0", got.sha256));
                let mut header = tar::Header::new_gnu();
                header.set_size(got.size);
                header.set_mode(chmod.unwrap_or(0o600));
                let (u, g) = chown.unwrap_or((0, 0));
                header.set_uid(u);
                header.set_gid(g);
                header.set_mtime(got.mtime);
                header.set_entry_type(tar::EntryType::Regular);
                out.append_data(&mut header, path.trim_start_matches('/'), got.file)
                    .map_err(|e| e.to_string())?;
            }
            for h in &spec.heredocs {
                let path = match dest_abs.ends_with('/') {
                    true => format!("{dest_abs}{}", h.name),
                    false => dest_abs.clone(),
                };
                let body = match h.expand {
                    true => d.state.heredoc(&h.body)?,
                    false => h.body.clone(),
                };
                key_extra.push_str(&hex(format!("{path}\0{body}").as_bytes()));
                let mut header = tar::Header::new_gnu();
                header.set_size(body.len() as u64);
                header.set_mode(chmod.unwrap_or(0o644));
                let (u, g) = chown.unwrap_or((0, 0));
                header.set_uid(u);
                header.set_gid(g);
                header.set_entry_type(tar::EntryType::Regular);
                out.append_data(&mut header, path.trim_start_matches('/'), body.as_bytes())
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
        // `--link` layers stand alone: their directories are not taken from the parent.
        if let (Some(image), false) = (&d.image, spec.link) {
            tar_file = self.keep_existing_dirs(image, &dest_abs, tar_file).await?;
        }
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
}
