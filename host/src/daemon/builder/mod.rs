//! `POST /build`: Docker's legacy builder API. The context (a tar, maybe gzip) is
//! unpacked on the host, the Dockerfile parsed (`crate::build`), and the steps run on the
//! machine (`steps`, `container_steps`), streaming the docker CLI's legacy messages
//! (`{"stream": "Step 1/5 : ..."}`, the `aux` image ID, `Successfully built/tagged`,
//! errors in-stream). Nothing is tagged unless every step succeeded.

mod cache;
mod container_steps;
mod download;
mod image_files;
mod owner;
mod retar;
mod run_mounts;
mod stage;
mod steps;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::json;

use super::engine::Engine;
use super::error::ApiError;
use super::http::Body;
use super::registry::Stream;
use crate::build::context::Context;
use crate::build::ignore::Ignore;
use crate::image::{ImageRecord, Reference};
pub use steps::Options;

/// The build's output to the client.
pub struct Out {
    stream: Stream,
    quiet: bool,
}

impl Out {
    /// A line (or part of one) of the build's output.
    pub fn say(&self, text: &str) {
        if !self.quiet && !text.is_empty() {
            self.stream.send(&json!({ "stream": text }));
        }
    }

    fn step(&self, n: usize, total: usize, original: &str) {
        self.say(&format!("Step {n}/{total} : {original}\n"));
    }

    fn image(&self, image: Option<&ImageRecord>) {
        if let Some(i) = image {
            self.say(&format!(" ---> {}\n", short(&i.id().to_string())));
        }
    }

    /// Whether the client went away (Ctrl-C, a closed connection).
    pub fn cancelled(&self) -> bool {
        self.stream.closed()
    }

    fn check_cancelled(&self) -> Result<(), String> {
        match self.cancelled() {
            true => Err("the build was cancelled".into()),
            false => Ok(()),
        }
    }

    /// Pulls `name` into the store, its progress in the build's output.
    async fn pull(&self, engine: &Engine, name: &str) -> Result<(), String> {
        let reference = Reference::parse(name).map_err(|e| e.to_string())?;
        let settings = super::registry::settings(engine).map_err(|e| e.message)?;
        let opts = crate::image::registry::PullOptions {
            platform: Default::default(),
            credentials: None,
        };
        crate::image::registry::pull(&engine.images, &settings, &reference, &opts, &self.stream)
            .await
            .map(drop)
            .map_err(|e| crate::error::chain(&e))
    }
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// `POST /build`.
pub async fn route(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let opts = options(&req, q)?;
    let quiet = super::http::flag_or(q, "q", false);
    let spool = super::images::spool_body(&engine, req.into_body()).await?;
    let tmp_root = engine.images.root().join("tmp");
    std::fs::create_dir_all(&tmp_root)?;
    let dir = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&tmp_root)?;
    let limit = engine.config.disk_bytes.max(1 << 30);
    let unpack_dir = dir.path().to_path_buf();
    let ctx = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(spool.path())?;
        let ctx = Context::unpack(std::io::BufReader::new(file), &unpack_dir, limit);
        drop(spool);
        Ok::<_, std::io::Error>(ctx)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (stream, resp) = Stream::new("application/json");
    let out = Out { stream, quiet };
    tokio::spawn(async move {
        let result = build(&engine, &ctx, &opts, &out).await;
        match result {
            Ok(id) => {
                out.stream.send(&json!({"aux": {"ID": id.to_string()}}));
                if quiet {
                    // What `docker build -q` prints.
                    out.stream.send(&json!({"stream": format!("{id}\n")}));
                }
                out.say(&format!("Successfully built {}\n", short(&id.to_string())));
                for tag in &opts.tags {
                    out.say(&format!("Successfully tagged {}\n", tag.familiar()));
                }
            }
            Err(message) => out.stream.error(&message),
        }
        drop(dir);
    });
    Ok(resp)
}

/// Runs the build and tags its image; the message of a failure is what the client sees.
async fn build(
    engine: &Arc<Engine>,
    ctx: &Context,
    opts: &Options,
    out: &Out,
) -> Result<crate::image::Digest, String> {
    let text = ctx
        .read_file(&opts.dockerfile)
        .ok_or_else(|| format!("Cannot locate specified Dockerfile: {}", opts.dockerfile))?;
    let df = crate::build::dockerfile::parse(&text).map_err(|e| e.to_string())?;
    let ignore_text = ctx
        .read_file(&format!("{}.dockerignore", opts.dockerfile))
        .or_else(|| ctx.read_file(".dockerignore"))
        .unwrap_or_default();
    let ignore = Ignore::parse(&ignore_text).map_err(|e| format!(".dockerignore: {e}"))?;
    let mut builder = steps::Builder {
        engine,
        ctx,
        ignore: &ignore,
        opts,
        out,
        cache: cache::Cache::load(engine.images.root()),
    };
    let built = builder.build(&df).await;
    builder.cache.save();
    let id = built?;
    crate::image::commit::set_intermediate(&engine.images, &id, false)
        .map_err(|e| e.to_string())?;
    for tag in &opts.tags {
        crate::image::manage::tag(&engine.images, &id.to_string(), &tag.to_string())
            .map_err(|e| e.to_string())?;
        engine
            .events
            .image(&id.to_string(), &tag.to_string(), "tag");
    }
    Ok(id)
}

/// `POST /build`'s query: what berth honours, and a clear refusal of the rest.
fn options(req: &Request<Incoming>, q: &HashMap<String, String>) -> Result<Options, ApiError> {
    let refuse = |what: &str| {
        Err(ApiError::bad_request(format!(
            "{what} is not supported by berth's builder: it is refused rather than ignored"
        )))
    };
    let set = |k: &str| {
        q.get(k)
            .is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
    };
    if set("remote") {
        return refuse("remote (a build context from a URL)");
    }
    if set("squash") {
        return refuse("squash");
    }
    if q.get("outputs").is_some_and(|v| !v.is_empty() && v != "[]") {
        return refuse("outputs");
    }
    if q.get("cachefrom")
        .is_some_and(|v| !v.is_empty() && v != "[]" && v != "null")
    {
        return refuse("cachefrom");
    }
    if q.get("version").is_some_and(|v| v == "2") {
        return Err(ApiError::bad_request(
            "BuildKit (version=2) is not supported by berth: use the legacy builder (DOCKER_BUILDKIT=0)",
        ));
    }
    for k in ["memory", "memswap", "cpushares", "cpuperiod", "cpuquota"] {
        if q.get(k)
            .is_some_and(|v| !v.is_empty() && v != "0" && v != "-1")
        {
            return refuse(&format!("{k} for build steps"));
        }
    }
    for k in [
        "cpusetcpus",
        "cpusetmems",
        "cgroupparent",
        "isolation",
        "ulimits",
    ] {
        if q.get(k)
            .is_some_and(|v| !v.is_empty() && v != "[]" && v != "null" && v != "default")
        {
            return refuse(&format!("{k} for build steps"));
        }
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        if !matches!(p.as_str(), "linux/amd64" | "linux/x86_64" | "linux") {
            return Err(ApiError::bad_request(format!(
                "platform {p}: berth's machines run linux/amd64 images only"
            )));
        }
    }
    let json_map = |k: &str| -> Result<BTreeMap<String, Option<String>>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(BTreeMap::new()),
            Some(v) => serde_json::from_str(v).map_err(|e| {
                ApiError::bad_request(format!("{k}: expected a JSON object of strings: {e}"))
            }),
        }
    };
    let build_args = json_map("buildargs")?
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let labels = json_map("labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    let mut tags = Vec::new();
    for t in super::registry::query_all(req, "t") {
        let mut r = Reference::parse(&t)?;
        if r.tag().is_none() && r.digest().is_none() {
            r = Reference::parse(&format!("{t}:latest"))?;
        }
        tags.push(r);
    }
    let extra_hosts: Vec<String> = super::registry::query_all(req, "extrahosts")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(str::trim)
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|h| !h.is_empty())
        .collect();
    let shm_size = match q.get("shmsize").filter(|v| !v.is_empty() && *v != "0") {
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("shmsize {v:?}: expected bytes")))?,
        ),
        None => None,
    };
    let network = q.get("networkmode").filter(|v| !v.is_empty()).cloned();
    Ok(Options {
        dockerfile: q
            .get("dockerfile")
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| "Dockerfile".into()),
        tags,
        build_args,
        labels,
        target: q.get("target").filter(|t| !t.is_empty()).cloned(),
        no_cache: set("nocache"),
        pull: set("pull"),
        network,
        extra_hosts,
        shm_size,
    })
}
