//! `docker cp`: `GET`, `PUT` and `HEAD /containers/{id}/archive?path=`. The exec shim
//! does the file work inside the running container's mounts ([`Builtin`]); the daemon
//! streams the tar and answers Docker's path-stat header.

use std::sync::Arc;

use base64::Engine as _;
use berth_protocol::{Builtin, ExecSpec, GuestMessage, JoinSpec, PathStat};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Response;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::engine::{Container, Engine};
use super::error::ApiError;
use super::http::{self, Body};

/// The header in which Docker returns the path's stat, base64 JSON.
pub const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// Docker's `ContainerPathStat`, with Go's `FileMode` bits.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPathStat {
    pub name: String,
    pub size: u64,
    pub mode: u32,
    pub mtime: String,
    pub link_target: String,
}

impl ContainerPathStat {
    pub fn from_guest(s: &PathStat) -> ContainerPathStat {
        let mtime = std::time::UNIX_EPOCH
            + std::time::Duration::new(s.mtime_secs.max(0) as u64, s.mtime_nanos);
        ContainerPathStat {
            name: s.name.clone(),
            size: s.size,
            mode: go_file_mode(s.mode),
            mtime: crate::image::time::rfc3339_nanos(mtime),
            link_target: s.link_target.clone(),
        }
    }

    fn header(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }
}

/// A Unix `st_mode` as Go's `os.FileMode` (what the docker CLI decodes).
pub fn go_file_mode(mode: u32) -> u32 {
    let mut m = mode & 0o777;
    if mode & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if mode & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if mode & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m |= match mode & 0o170000 {
        0o040000 => 1 << 31,
        0o120000 => 1 << 27,
        0o060000 => 1 << 26,
        0o020000 => (1 << 26) | (1 << 21),
        0o010000 => 1 << 25,
        0o140000 => 1 << 24,
        _ => 0,
    };
    m
}

impl Engine {
    fn cp_spec(&self, c: &Container, op: Builtin, stdin: bool) -> Result<ExecSpec, ApiError> {
        let state = c.state();
        if !state.running {
            return Err(ApiError::conflict(format!(
                "berth reads and writes the files of running containers only (a stopped container's changes are not kept): container {} is {}; start it first",
                c.name(),
                state.status.as_str()
            )));
        }
        Ok(ExecSpec {
            argv: vec!["berth-cp".into()],
            env: Vec::new(),
            cwd: None,
            stdin,
            tty: None,
            container: None,
            join: Some(JoinSpec {
                id: c.id.clone(),
                user: None,
                privileged: true,
                builtin: Some(op),
            }),
        })
    }

    /// `HEAD /containers/{id}/archive`: the path's stat.
    pub async fn archive_stat(&self, c: &Container, path: &str) -> Result<PathStat, ApiError> {
        let path = check_path(path)?;
        let spec = self.cp_spec(c, Builtin::Stat { path: path.clone() }, false)?;
        let (code, output) = self.run_to_end(spec).await.map_err(ApiError::internal)?;
        match code {
            0 => serde_json::from_str(output.trim()).map_err(|e| {
                ApiError::internal(format!("the guest's stat of {path}: {e}: {output}"))
            }),
            Builtin::NOT_FOUND => Err(ApiError::not_found(format!(
                "Could not find the file {path} in container {}",
                c.name()
            ))),
            _ => Err(ApiError::internal(clean(&output))),
        }
    }

    /// `GET /containers/{id}/archive`: a tar of the path, with the stat header.
    pub async fn archive_get(&self, c: &Container, path: &str) -> Result<Response<Body>, ApiError> {
        let stat = self.archive_stat(c, path).await?;
        let spec = self.cp_spec(
            c,
            Builtin::ArchiveGet {
                path: check_path(path)?,
            },
            false,
        )?;
        let mut exec = self.guest.exec(spec).await?;
        started(&mut exec.events).await?;
        let (tx, mut resp) = http::streaming("application/x-tar");
        resp.headers_mut().insert(
            STAT_HEADER,
            ContainerPathStat::from_guest(&stat)
                .header()
                .parse()
                .map_err(|_| ApiError::internal("bad stat header"))?,
        );
        let guest = self.guest.clone();
        let name = c.name();
        let path = path.to_string();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match exec.stdout.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let mut err = String::new();
            let _ = exec.stderr.read_to_string(&mut err).await;
            if let Some(code) = exit_code(&mut exec.events).await.filter(|c| *c != 0) {
                tracing::warn!("docker cp {name}:{path}: the archive ended early ({code}): {err}");
            }
            guest.exec_done(exec.id);
        });
        Ok(resp)
    }

    /// `PUT /containers/{id}/archive`: extracts the body (a tar) into the directory.
    pub async fn archive_put(
        &self,
        c: &Arc<Container>,
        path: &str,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
        mut body: Incoming,
    ) -> Result<(), ApiError> {
        let op = Builtin::ArchivePut {
            path: check_path(path)?,
            no_overwrite_dir_non_dir,
            copy_uid_gid,
        };
        let mut exec = self.guest.exec(self.cp_spec(c, op, true)?).await?;
        let result = async {
            started(&mut exec.events).await?;
            let mut stdin = exec
                .stdin
                .take()
                .ok_or_else(|| ApiError::internal("no stdin for the copy"))?;
            let mut stderr = exec.stderr;
            let err_task = tokio::spawn(async move {
                let mut s = String::new();
                let _ = stderr.read_to_string(&mut s).await;
                s
            });
            let out_task = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut exec.stdout, &mut tokio::io::sink()).await;
            });
            while let Some(frame) = body.frame().await {
                let frame = frame
                    .map_err(|e| ApiError::bad_request(format!("reading the archive: {e}")))?;
                if let Some(data) = frame.data_ref() {
                    if stdin.write_all(data).await.is_err() {
                        break; // the extraction failed: its exit says why
                    }
                }
            }
            let _ = stdin.shutdown().await;
            drop(stdin);
            let code = exit_code(&mut exec.events).await;
            let _ = out_task.await;
            let err = err_task.await.unwrap_or_default();
            match code {
                Some(0) => Ok(()),
                Some(Builtin::NOT_FOUND) => Err(ApiError::not_found(format!(
                    "Could not find the file {path} in container {}",
                    c.name()
                ))),
                Some(_) => Err(ApiError::bad_request(clean(&err))),
                None => Err(ApiError::internal("the machine stopped during the copy")),
            }
        }
        .await;
        self.guest.exec_done(exec.id);
        result
    }
}

/// Docker's paths are absolute inside the container.
fn check_path(path: &str) -> Result<String, ApiError> {
    match path {
        "" => Err(ApiError::bad_request("path is required")),
        p if !p.starts_with('/') => Err(ApiError::bad_request(format!(
            "path {p:?} must be absolute in the container"
        ))),
        p => Ok(p.to_string()),
    }
}

fn clean(stderr: &str) -> String {
    stderr.trim().trim_start_matches("berth: ").to_string()
}

async fn started(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<GuestMessage>,
) -> Result<(), ApiError> {
    match events.recv().await {
        Some(GuestMessage::Started { .. }) => Ok(()),
        Some(GuestMessage::Error { message, .. }) => Err(ApiError::conflict(message)),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

async fn exit_code(events: &mut tokio::sync::mpsc::UnboundedReceiver<GuestMessage>) -> Option<i32> {
    loop {
        match events.recv().await? {
            GuestMessage::Exited { status, .. } => return Some(status.shell_code()),
            GuestMessage::Error { .. } => return Some(1),
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_become_gos_file_mode() {
        assert_eq!(go_file_mode(0o040755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(0o100644), 0o644);
        assert_eq!(go_file_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(0o104755), (1 << 23) | 0o755);
        assert!(check_path("etc").is_err() && check_path("/etc").is_ok());
    }
}

/// `POST /commit`'s query.
pub struct CommitRequest {
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub comment: String,
    pub author: String,
    pub pause: bool,
    pub changes: Vec<String>,
    /// The body: config fields that replace the container's.
    pub config: Option<super::models::ContainerConfig>,
}

impl Engine {
    /// Runs a builtin that prints to stdout; its whole output.
    async fn builtin_output(&self, c: &Container, op: Builtin) -> Result<Vec<u8>, ApiError> {
        let mut exec = self.guest.exec(self.cp_spec(c, op, false)?).await?;
        let result = async {
            started(&mut exec.events).await?;
            let mut out = Vec::new();
            let mut err = String::new();
            let (a, b) = tokio::join!(
                exec.stdout.read_to_end(&mut out),
                exec.stderr.read_to_string(&mut err)
            );
            a?;
            let _ = b;
            match exit_code(&mut exec.events).await {
                Some(0) => Ok(out),
                Some(_) => Err(ApiError::internal(clean(&err))),
                None => Err(ApiError::internal("the machine stopped")),
            }
        }
        .await;
        self.guest.exec_done(exec.id);
        result
    }

    /// `GET /containers/{id}/changes`: Docker's `[{Path, Kind}]`.
    pub async fn changes(&self, c: &Container) -> Result<serde_json::Value, ApiError> {
        let out = self.builtin_output(c, Builtin::Changes).await?;
        let list: Vec<berth_protocol::Change> = serde_json::from_slice(&out)
            .map_err(|e| ApiError::internal(format!("the guest's change list: {e}")))?;
        Ok(list
            .into_iter()
            .map(|c| serde_json::json!({"Path": c.path, "Kind": c.kind}))
            .collect())
    }

    /// `POST /commit`: the container's changes as a new image on top of its image.
    pub async fn commit(&self, c: &Container, req: CommitRequest) -> Result<String, ApiError> {
        let r = c.record();
        let base = self
            .images
            .find(&r.image_id)?
            .ok_or_else(|| ApiError::conflict(format!("the image of {} is gone", r.name)))?;
        let tag = match (&req.repo, &req.tag) {
            (None, _) => None,
            (Some(repo), Some(t)) if !t.is_empty() => {
                Some(crate::image::Reference::parse(&format!("{repo}:{t}"))?)
            }
            (Some(repo), _) => Some(crate::image::Reference::parse(repo)?),
        };
        let mut config = r.config.clone();
        if let Some(overrides) = &req.config {
            super::fields::check_other("", &overrides.other)?;
            let o = overrides.clone();
            macro_rules! take {
                ($($f:ident),*) => { $( if o.$f.is_some() { config.$f = o.$f.clone(); } )* };
            }
            take!(
                hostname,
                user,
                exposed_ports,
                tty,
                open_stdin,
                env,
                cmd,
                healthcheck,
                volumes,
                working_dir,
                entrypoint,
                labels,
                stop_signal,
                stop_timeout
            );
        }
        config.image = Some(r.image.clone());
        let config =
            serde_json::to_value(&config).map_err(|e| ApiError::internal(e.to_string()))?;
        let paused = req.pause && !c.state().paused;
        if paused {
            self.set_paused(c, true).await?;
        }
        let spooled = self.spool_layer(c).await;
        if paused {
            let _ = self.set_paused(c, false).await;
        }
        let spool = spooled?;
        let opts = crate::image::commit::CommitOptions {
            config,
            changes: req.changes,
            comment: req.comment,
            author: req.author,
            created_by: r.spec.argv.join(" "),
            container: r.id.clone(),
            tag,
        };
        let store = self.images.clone();
        let id = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(spool.path())?;
            let id =
                crate::image::commit::commit(&store, &base, std::io::BufReader::new(file), &opts);
            drop(spool);
            Ok::<_, std::io::Error>(id)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??
        .map_err(|e| ApiError::bad_request(crate::error::chain(&e)))?;
        self.events.container(c, "commit");
        Ok(id.to_string())
    }

    /// The container's layer tar, in a file under the image store.
    async fn spool_layer(&self, c: &Container) -> Result<tempfile::NamedTempFile, ApiError> {
        let tmp_dir = self.images.root().join("tmp");
        std::fs::create_dir_all(&tmp_dir)?;
        let spool = tempfile::Builder::new()
            .prefix("commit-")
            .tempfile_in(&tmp_dir)?;
        let mut file = tokio::fs::File::from_std(spool.reopen()?);
        let mut exec = self
            .guest
            .exec(self.cp_spec(c, Builtin::LayerTar, false)?)
            .await?;
        let result = async {
            started(&mut exec.events).await?;
            let mut err = String::new();
            let (copied, _) = tokio::join!(
                tokio::io::copy(&mut exec.stdout, &mut file),
                exec.stderr.read_to_string(&mut err)
            );
            copied?;
            file.flush().await?;
            match exit_code(&mut exec.events).await {
                Some(0) => Ok(()),
                Some(_) => Err(ApiError::internal(format!(
                    "reading the container's changes: {}",
                    clean(&err)
                ))),
                None => Err(ApiError::internal("the machine stopped")),
            }
        }
        .await;
        self.guest.exec_done(exec.id);
        result.map(|()| spool)
    }
}
