//! `berth build`: sends the context (the directory, less what `.dockerignore` excludes,
//! as the docker CLI does) to the machine's daemon and shows the build's steps, cache
//! hits and output as they come.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::StreamExt;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;
use std::io::Seek;

use super::api::{enc, Api};
use crate::build::context::pack_dir_with;
use crate::build::ignore::Ignore;
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); may be given several times.
    #[arg(short, long = "tag", value_name = "NAME")]
    tags: Vec<String>,
    /// The Dockerfile (default: PATH/Dockerfile); it may lie outside the context.
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// A build-time variable, `KEY=VALUE` (or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// A label for the image, `KEY=VALUE`.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    target: Option<String>,
    /// Run every step, using no cached result.
    #[arg(long)]
    no_cache: bool,
    /// Pull the base images even when the store has them.
    #[arg(long)]
    pull: bool,
    /// The network of every RUN: default, none, host or a network's name.
    #[arg(long)]
    network: Option<String>,
    /// A host-to-IP mapping for RUN steps, `host:ip`.
    #[arg(long = "add-host", value_name = "HOST:IP")]
    add_hosts: Vec<String>,
    /// Size of /dev/shm for RUN steps, e.g. 64m.
    #[arg(long = "shm-size", value_name = "SIZE")]
    shm_size: Option<String>,
    /// The image's platform: linux/amd64 only.
    #[arg(long)]
    platform: Option<String>,
    /// Print only the image ID.
    #[arg(short, long)]
    quiet: bool,
    /// Write the image ID to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// The build context: a directory.
    #[arg(value_name = "PATH")]
    context: PathBuf,
}

/// The name the docker CLI gives a Dockerfile from outside the context.
const OUTSIDE_NAME: &str = ".berth-dockerfile";

pub async fn build(api: &Api, a: BuildArgs) -> Result<i32, Error> {
    if !a.context.is_dir() {
        return Err(Error::Usage(format!(
            "unable to prepare context: path {:?} is not a directory",
            a.context.display().to_string()
        )));
    }
    let dockerfile_path = a
        .file
        .clone()
        .unwrap_or_else(|| a.context.join("Dockerfile"));
    let dockerfile_text = std::fs::read(&dockerfile_path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the Dockerfile {}: {e}",
            dockerfile_path.display()
        ))
    })?;
    let root = a.context.canonicalize()?;
    let inside = dockerfile_path.canonicalize().ok().and_then(|p| {
        p.strip_prefix(&root)
            .ok()
            .map(|r| r.to_string_lossy().replace('\\', "/"))
    });
    let (name, outside) = match inside {
        Some(rel) => (rel, false),
        None => (OUTSIDE_NAME.to_string(), true),
    };
    let ignore_text = std::fs::read_to_string(PathBuf::from(format!(
        "{}.dockerignore",
        dockerfile_path.display()
    )))
    .or_else(|_| std::fs::read_to_string(root.join(".dockerignore")))
    .unwrap_or_default();
    let ignore =
        Ignore::parse(&ignore_text).map_err(|e| Error::Usage(format!(".dockerignore: {e}")))?;
    let always = [name.as_str(), ".dockerignore"];
    let always: &[&str] = if outside { &always[1..] } else { &always };
    let extra = outside.then_some((OUTSIDE_NAME, dockerfile_text.as_slice()));
    // The context goes to a temporary file, then streams from it: it is never held in
    // memory whole.
    let mut tar = tempfile::tempfile()?;
    pack_dir_with(&root, &ignore, always, extra, &mut tar)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let size = tar.seek(std::io::SeekFrom::End(0))?;
    tar.rewind()?;
    if !a.quiet {
        println!(
            "Sending build context to daemon  {}",
            crate::size::human_size(size)
        );
    }
    let mut q: Vec<(String, String)> = vec![("dockerfile".into(), name)];
    for t in &a.tags {
        q.push(("t".into(), t.clone()));
    }
    let pairs = |list: &[String], env: bool| -> BTreeMap<String, String> {
        list.iter()
            .filter_map(|kv| match kv.split_once('=') {
                Some((k, v)) => Some((k.to_string(), v.to_string())),
                None if env => std::env::var(kv).ok().map(|v| (kv.clone(), v)),
                None => Some((kv.clone(), String::new())),
            })
            .collect()
    };
    q.push((
        "buildargs".into(),
        serde_json::to_string(&pairs(&a.build_args, true)).unwrap_or_default(),
    ));
    q.push((
        "labels".into(),
        serde_json::to_string(&pairs(&a.labels, false)).unwrap_or_default(),
    ));
    if let Some(t) = &a.target {
        q.push(("target".into(), t.clone()));
    }
    for (flag, key) in [(a.no_cache, "nocache"), (a.pull, "pull"), (a.quiet, "q")] {
        if flag {
            q.push((key.into(), "1".into()));
        }
    }
    if let Some(n) = &a.network {
        q.push(("networkmode".into(), n.clone()));
    }
    for h in &a.add_hosts {
        q.push(("extrahosts".into(), h.clone()));
    }
    if let Some(s) = &a.shm_size {
        let bytes = crate::size::parse_bytes(s).map_err(Error::Usage)?;
        q.push(("shmsize".into(), bytes.to_string()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform".into(), p.clone()));
    }
    let query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    let path = format!("/build?{}", query.join("&"));
    let frames =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(tar), 256 * 1024)
            .map(|chunk| chunk.map(hyper::body::Frame::data));
    let body = BodyExt::boxed(http_body_util::StreamBody::new(frames));
    let resp = api.send(Method::POST, &path, body).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        eprintln!("berth: {message}");
        return Ok(1);
    }
    let mut pending = Vec::new();
    let mut id = None;
    let mut failed = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Daemon(format!("the build's output: {e}")))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Ok(msg) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            show(&msg, &mut id, &mut failed);
        }
    }
    if let Some(message) = failed {
        eprintln!("berth: {message}");
        return Ok(1);
    }
    let Some(id) = id else {
        eprintln!("berth: the build ended without an image");
        return Ok(1);
    };
    // With -q the daemon's only output line is the image ID, as Docker's.
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &id)?;
    }
    Ok(0)
}

/// Prints one message of the build's stream.
fn show(msg: &Value, id: &mut Option<String>, failed: &mut Option<String>) {
    use std::io::Write;
    if let Some(text) = msg["stream"].as_str() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    } else if let Some(i) = msg["aux"]["ID"].as_str() {
        *id = Some(i.to_string());
    } else if let Some(e) = msg["error"].as_str() {
        *failed = Some(e.to_string());
    } else if let Some(status) = msg["status"].as_str() {
        // A base image's pull.
        let progress = msg["progress"].as_str().unwrap_or("");
        match msg["id"].as_str() {
            Some(layer) if progress.is_empty() => eprintln!("{layer}: {status}"),
            Some(_) => {}
            None => eprintln!("{status}"),
        }
    }
}
