//! Running a parsed Dockerfile: the stages the target needs, in order, each step an
//! image in the host store. Metadata steps change only the config; `RUN` runs in a
//! container on the machine (the same isolation as `berth run`) whose changes become a
//! layer; `COPY`/`ADD` extract a tar into a container that never runs. A step whose
//! cache key (parent, instruction, arguments, file contents) is known is reused.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::cache::Cache;
use super::stage::{platform_args, StageState};
use super::Out;
use crate::build::context::Context;
use crate::build::dockerfile::{Command, Dockerfile, Kind, RunSpec, Stage};
use crate::build::ignore::Ignore;
use crate::daemon::create::image_run_config;
use crate::daemon::engine::Engine;
use crate::daemon::models::create::ContainerConfig;
use crate::image::{Digest, ImageRecord};

/// What the client asked for (`POST /build`'s query).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dockerfile: String,
    pub tags: Vec<crate::image::Reference>,
    pub build_args: HashMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    /// `none`, `host`, `default`/`bridge` or a network's name, for every `RUN`.
    pub network: Option<String>,
    pub extra_hosts: Vec<String>,
    pub shm_size: Option<i64>,
}

/// A failed build: the message the client sees.
pub type Failed = String;

/// Where a stage ended: its image (`None`: `FROM scratch` with no step yet) and config.
#[derive(Clone)]
pub(super) struct Done {
    pub(super) image: Option<ImageRecord>,
    pub(super) state: StageState,
}

pub struct Builder<'a> {
    pub engine: &'a Arc<Engine>,
    pub ctx: &'a Context,
    pub ignore: &'a Ignore,
    pub opts: &'a Options,
    pub out: &'a Out,
    pub cache: Cache,
}

impl Builder<'_> {
    /// Builds the target stage of `df`; returns the final image.
    pub async fn build(&mut self, df: &Dockerfile) -> Result<Digest, Failed> {
        let target = match &self.opts.target {
            Some(t) => {
                df.stage(t)
                    .ok_or_else(|| format!("failed to reach build target {t} in Dockerfile"))?
                    .index
            }
            None => df
                .stages
                .len()
                .checked_sub(1)
                .ok_or("no FROM instruction")?,
        };
        let needed = needed_stages(df, target);
        let total: usize = needed
            .iter()
            .map(|i| 1 + df.stages[*i].instructions.len())
            .sum();
        let mut globals = Vec::new();
        for a in &df.global_args {
            let value = match self.opts.build_args.get(&a.name) {
                Some(v) => Some(v.clone()),
                None => a.default.clone(),
            };
            if let Some(v) = value {
                globals.push((a.name.clone(), v));
            }
        }
        let mut done: HashMap<usize, Done> = HashMap::new();
        let mut step = 0;
        let mut last = None;
        for &i in &needed {
            let stage = &df.stages[i];
            step += 1;
            self.out.step(step, total, &stage.original);
            let mut d = self.from(df, stage, &done, &globals).await?;
            self.out.image(d.image.as_ref());
            d = self.triggers(df, &done, d, &globals).await?;
            for ins in &stage.instructions {
                step += 1;
                self.out.step(step, total, &ins.original);
                self.out.check_cancelled()?;
                d = self
                    .step(df, &done, d, &ins.kind, &ins.original, &globals)
                    .await?;
                self.out.image(d.image.as_ref());
            }
            last = Some(i);
            done.insert(i, d);
        }
        let mut d = done
            .remove(&last.ok_or("no stage to build")?)
            .ok_or("the target stage did not finish")?;
        if !self.opts.labels.is_empty() {
            let labels: Vec<(String, String)> = self
                .opts
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let text = format!(
                "LABEL {}",
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            for (k, v) in labels {
                d.state
                    .config
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(k, v);
            }
            d = self.metadata(d, &text).await?;
        }
        match d.image {
            Some(image) => Ok(image.id().clone()),
            None => {
                // `FROM scratch` and nothing else: an image with no layer.
                let d = self.metadata(d, "FROM scratch").await?;
                Ok(d.image.ok_or("no image")?.id().clone())
            }
        }
    }

    /// A stage's base: an earlier stage, `scratch`, or an image (pulled when missing or
    /// with `--pull`).
    async fn from(
        &self,
        df: &Dockerfile,
        stage: &Stage,
        done: &HashMap<usize, Done>,
        globals: &[(String, String)],
    ) -> Result<Done, Failed> {
        let mut scope = StageState::new(ContainerConfig::default(), df.escape);
        scope.args = globals.to_vec();
        let base = scope.word(&stage.base).map_err(|e| line(stage.line, &e))?;
        if let Some(p) = &stage.platform {
            let p = scope.word(p).map_err(|e| line(stage.line, &e))?;
            if !matches!(
                p.as_str(),
                "linux/amd64" | "linux/x86_64" | "" | "$BUILDPLATFORM"
            ) {
                return Err(format!(
                    "FROM --platform={p}: berth's machines run linux/amd64 images only"
                ));
            }
        }
        let mut state = StageState::new(ContainerConfig::default(), df.escape);
        state.args = platform_args();
        // The proxy variables need no ARG (Docker's predefined build arguments).
        for k in super::stage::PREDEFINED {
            if let Some(v) = self.opts.build_args.get(k) {
                state.args.push((k.to_string(), v.clone()));
            }
        }
        if let Some(earlier) = df
            .stages
            .iter()
            .take(stage.index)
            .find(|s| s.name.as_deref() == Some(base.to_ascii_lowercase().as_str()))
        {
            let d = done
                .get(&earlier.index)
                .ok_or_else(|| format!("stage {base} was not built"))?;
            let mut state = d.state.clone();
            state.args = platform_args();
            return Ok(Done {
                image: d.image.clone(),
                state,
            });
        }
        if base == "scratch" {
            return Ok(Done { image: None, state });
        }
        let image = self.base_image(&base).await?;
        let blob = self
            .engine
            .images
            .blobs()
            .get(&image.config)
            .map_err(|e| e.to_string())?;
        state.config = image_run_config(&blob).map_err(|e| format!("image {base}: {e}"))?;
        state.config.image = None;
        Ok(Done {
            image: Some(image),
            state,
        })
    }

    pub(super) async fn base_image(&self, name: &str) -> Result<ImageRecord, Failed> {
        let have = self.engine.images.find(name).map_err(|e| e.to_string())?;
        if let (Some(image), false) = (&have, self.opts.pull) {
            return Ok(image.clone());
        }
        match self.out.pull(self.engine, name).await {
            Ok(()) => {}
            Err(e) if have.is_some() && !self.opts.pull => return Err(e),
            Err(e) => match have {
                Some(image) if self.opts.pull => {
                    self.out.say(&format!(
                        "pull of {name} failed ({e}); using the local image\n"
                    ));
                    return Ok(image);
                }
                _ => return Err(e),
            },
        }
        self.engine
            .images
            .find(name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("pull access denied for {name}: the image is not in the store"))
    }

    /// The base image's `ONBUILD` triggers, run right after `FROM` as Docker does; the
    /// new image does not inherit them.
    async fn triggers(
        &mut self,
        df: &Dockerfile,
        done: &HashMap<usize, Done>,
        mut d: Done,
        globals: &[(String, String)],
    ) -> Result<Done, Failed> {
        let Some(serde_json::Value::Array(list)) = d.state.config.other.remove("OnBuild") else {
            return Ok(d);
        };
        let triggers: Vec<String> = list
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        if triggers.is_empty() {
            return Ok(d);
        }
        self.out.say(&format!(
            "# Executing {} build trigger(s)\n",
            triggers.len()
        ));
        let text = format!("FROM scratch\n{}\n", triggers.join("\n"));
        let parsed = crate::build::dockerfile::parse(&text)
            .map_err(|e| format!("the base image's ONBUILD triggers: {e}"))?;
        for ins in &parsed.stages[0].instructions {
            self.out
                .say(&format!(" ---> Running trigger {}\n", ins.original));
            d = self
                .step(df, done, d, &ins.kind, &ins.original, globals)
                .await?;
        }
        Ok(d)
    }

    /// One instruction.
    async fn step(
        &mut self,
        df: &Dockerfile,
        done: &HashMap<usize, Done>,
        mut d: Done,
        kind: &Kind,
        original: &str,
        globals: &[(String, String)],
    ) -> Result<Done, Failed> {
        match kind {
            Kind::Arg(decls) => {
                d.state.declare(decls, &self.opts.build_args, globals)?;
                self.metadata(d, original).await
            }
            Kind::Run(run) => self.run(df, done, d, run, original).await,
            Kind::Copy(spec) => self.copy(df, done, d, spec, original, false).await,
            Kind::Add(spec) => self.copy(df, done, d, spec, original, true).await,
            other => {
                d.state.apply(other)?;
                self.metadata(d, original).await
            }
        }
    }

    /// A step that changes only the config: a new image with no new layer.
    pub(super) async fn metadata(&mut self, d: Done, original: &str) -> Result<Done, Failed> {
        let key = self.key(&d, original, "");
        if let Some(image) = self.cached(&key) {
            return Ok(Done {
                image: Some(image),
                state: d.state,
            });
        }
        let config = serde_json::to_value(&d.state.config).map_err(|e| e.to_string())?;
        let store = self.engine.images.clone();
        let base = d.image.clone();
        let created_by = format!("/bin/sh -c #(nop) {original}");
        let id = tokio::task::spawn_blocking(move || {
            crate::image::commit::derive(&store, base.as_ref(), None, &config, &created_by)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| crate::error::chain(&e))?;
        self.remember(key, &id, d.state)
    }

    /// The cache key of a step on `d`'s image.
    pub(super) fn key(&self, d: &Done, original: &str, extra: &str) -> String {
        let mut h = Sha256::new();
        let parent = d
            .image
            .as_ref()
            .map(|i| i.id().to_string())
            .unwrap_or_default();
        h.update(parent.as_bytes());
        h.update([0]);
        h.update(original.as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(&d.state.config).unwrap_or_default());
        h.update([0]);
        for (k, v) in &d.state.args {
            h.update(format!("{k}={v}\0").as_bytes());
        }
        h.update(extra.as_bytes());
        format!("{:x}", h.finalize())
    }

    pub(super) fn cached(&mut self, key: &str) -> Option<ImageRecord> {
        if self.opts.no_cache {
            return None;
        }
        let id = self.cache.get(key)?;
        let image = self.engine.images.find(&id).ok().flatten()?;
        self.out.say(" ---> Using cache\n");
        Some(image)
    }

    /// Records step `key`'s result `id`, the image the next step starts from.
    pub(super) fn remember(
        &mut self,
        key: String,
        id: &Digest,
        state: StageState,
    ) -> Result<Done, Failed> {
        let image = self
            .engine
            .images
            .find(&id.to_string())
            .map_err(|e| e.to_string())?
            .ok_or("the step's image vanished")?;
        self.cache.put(key, id.to_string());
        Ok(Done {
            image: Some(image),
            state,
        })
    }
}

/// The stages `target` needs, in Dockerfile order: itself, the stage it is `FROM`, and
/// every stage a `COPY --from` names, transitively.
pub fn needed_stages(df: &Dockerfile, target: usize) -> Vec<usize> {
    let mut need = vec![false; df.stages.len()];
    let mut stack = vec![target];
    while let Some(i) = stack.pop() {
        if need[i] {
            continue;
        }
        need[i] = true;
        let stage = &df.stages[i];
        let refers = |name: &str| -> Option<usize> {
            let lower = name.to_ascii_lowercase();
            df.stages[..i]
                .iter()
                .find(|s| s.name.as_deref() == Some(lower.as_str()) || s.index.to_string() == lower)
                .map(|s| s.index)
        };
        if let Some(j) = refers(&stage.base) {
            stack.push(j);
        }
        for ins in &stage.instructions {
            if let Kind::Copy(c) | Kind::Add(c) = &ins.kind {
                if let Some(j) = c.from.as_deref().and_then(refers) {
                    stack.push(j);
                }
            }
            if let Kind::Run(r) = &ins.kind {
                for m in &r.mounts {
                    if let Ok(m) = crate::build::dockerfile::parse_mount(m) {
                        if let Some(j) = m.from.as_deref().and_then(refers) {
                            stack.push(j);
                        }
                    }
                }
            }
        }
    }
    (0..df.stages.len()).filter(|i| need[*i]).collect()
}

fn line(n: usize, message: &str) -> String {
    format!("Dockerfile line {n}: {message}")
}

/// The argv of a RUN, with its heredocs: a command that is only `<<EOF` runs the body
/// as the script; otherwise the heredocs follow the command in the shell script, so the
/// shell feeds them as it would.
pub fn run_argv(state: &StageState, run: &RunSpec) -> Result<Vec<String>, Failed> {
    if run.heredocs.is_empty() {
        return Ok(state.argv(&run.command));
    }
    let Command::Shell(cmd) = &run.command else {
        return Err("RUN in exec form cannot take a heredoc".into());
    };
    let only = cmd.trim().trim_start_matches("<<").trim_start_matches('-');
    let only = only.trim_matches(|c| c == '"' || c == '\'');
    if run.heredocs.len() == 1 && only == run.heredocs[0].name {
        let mut argv = state.shell.clone();
        argv.push(run.heredocs[0].body.clone());
        return Ok(argv);
    }
    let mut script = cmd.clone();
    script.push('\n');
    for h in &run.heredocs {
        script.push_str(&h.body);
        if !h.body.ends_with('\n') && !h.body.is_empty() {
            script.push('\n');
        }
        script.push_str(&h.name);
        script.push('\n');
    }
    let mut argv = state.shell.clone();
    argv.push(script);
    Ok(argv)
}
