//! `docker cp`: `GET`, `PUT` and `HEAD /containers/{id}/archive?path=`. The exec shim
//! does the file work inside the running container's mounts ([`Builtin`]); the daemon
//! streams the tar and answers Docker's path-stat header.

use std::sync::Arc;

use base64::Engine as _;
use berth_protocol::{Builtin, ExecSpec, GuestMessage, JoinSpec, PathStat};
use bytes::Bytes;
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
    /// The exec that does `op` on the container's files: joined to it while it runs,
    /// else on its files as they were left (a container never started has its image's).
    pub(super) async fn cp_spec(
        &self,
        c: &Container,
        op: Builtin,
        stdin: bool,
    ) -> Result<ExecSpec, ApiError> {
        let record = c.record();
        let stopped = match record.state.running {
            true => None,
            false => {
                self.ensure_container_layers(&record).await?;
                Some(Box::new(record.guest_spec(None)))
            }
        };
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
                stopped,
            }),
        })
    }

    /// `HEAD /containers/{id}/archive`: the path's stat.
    pub async fn archive_stat(&self, c: &Container, path: &str) -> Result<PathStat, ApiError> {
        let path = check_path(path)?;
        let spec = self
            .cp_spec(c, Builtin::Stat { path: path.clone() }, false)
            .await?;
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
        let op = Builtin::ArchiveGet {
            path: check_path(path)?,
        };
        let mut resp = self.tar_stream(c, op, path).await?;
        resp.headers_mut().insert(
            STAT_HEADER,
            ContainerPathStat::from_guest(&stat)
                .header()
                .parse()
                .map_err(|_| ApiError::internal("bad stat header"))?,
        );
        Ok(resp)
    }

    /// `GET /containers/{id}/export`: the container's root file system as a tar.
    pub async fn export(&self, c: &Container) -> Result<Response<Body>, ApiError> {
        self.tar_stream(c, Builtin::Export, "/").await
    }

    /// A response streaming the tar a builtin writes.
    async fn tar_stream(
        &self,
        c: &Container,
        op: Builtin,
        path: &str,
    ) -> Result<Response<Body>, ApiError> {
        let mut exec = self.guest.exec(self.cp_spec(c, op, false).await?).await?;
        started(&mut exec.events).await?;
        let (tx, resp) = http::streaming("application/x-tar");
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
        body: Incoming,
    ) -> Result<(), ApiError> {
        use futures::TryStreamExt;
        let frames = http_body_util::BodyStream::new(body)
            .try_filter_map(|f| std::future::ready(Ok(f.into_data().ok())))
            .map_err(|e| std::io::Error::other(format!("reading the archive: {e}")));
        let reader = tokio_util::io::StreamReader::new(frames);
        self.archive_put_from(c, path, no_overwrite_dir_non_dir, copy_uid_gid, reader)
            .await
    }

    /// Extracts the tar `body` into the directory `path` of the container.
    ///
    /// The body is always read to its end before the answer, whatever the
    /// outcome: a client still sending (the docker CLI streams its tar) would
    /// otherwise see its connection closed mid-write ("broken pipe") instead
    /// of the answer, success or error.
    pub async fn archive_put_from(
        &self,
        c: &Arc<Container>,
        path: &str,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
        mut body: impl tokio::io::AsyncRead + Unpin,
    ) -> Result<(), ApiError> {
        let result = self
            .extract_into(c, path, no_overwrite_dir_non_dir, copy_uid_gid, &mut body)
            .await;
        // What the extraction did not take (tar padding after the end
        // marker, or all of it after a refusal) is read and dropped.
        let _ = tokio::io::copy(&mut body, &mut tokio::io::sink()).await;
        result
    }

    async fn extract_into(
        &self,
        c: &Arc<Container>,
        path: &str,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
        body: &mut (impl tokio::io::AsyncRead + Unpin),
    ) -> Result<(), ApiError> {
        let op = Builtin::ArchivePut {
            path: check_path(path)?,
            no_overwrite_dir_non_dir,
            copy_uid_gid,
        };
        let mut exec = self.guest.exec(self.cp_spec(c, op, true).await?).await?;
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
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = body
                    .read(&mut buf)
                    .await
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                if n == 0 || stdin.write_all(&buf[..n]).await.is_err() {
                    break; // at the end, or the extraction failed: its exit says why
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

pub(super) fn clean(stderr: &str) -> String {
    stderr.trim().trim_start_matches("berth: ").to_string()
}

pub(super) async fn started(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<GuestMessage>,
) -> Result<(), ApiError> {
    match events.recv().await {
        Some(GuestMessage::Started { .. }) => Ok(()),
        Some(GuestMessage::Error { message, .. }) => Err(ApiError::conflict(message)),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

pub(super) async fn exit_code(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<GuestMessage>,
) -> Option<i32> {
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
