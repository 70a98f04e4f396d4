//! `POST /commit` and `GET /containers/{id}/changes`: a container's changes,
//! read by the exec shim from its overlay upper directory ([`Builtin::LayerTar`],
//! [`Builtin::Changes`]), become an image in the host store or Docker's change list.

use berth_protocol::Builtin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::archive::{clean, exit_code, started};
use super::engine::{Container, Engine};
use super::error::ApiError;

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

/// One entry of `GET /containers/{id}/changes`, in Docker's shape.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChangeView {
    pub path: String,
    /// 0 modified, 1 added, 2 deleted.
    pub kind: u8,
}

impl Engine {
    /// Runs a builtin that prints to stdout; its whole output.
    async fn builtin_output(&self, c: &Container, op: Builtin) -> Result<Vec<u8>, ApiError> {
        let mut exec = self.guest.exec(self.cp_spec(c, op, false).await?).await?;
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
    pub async fn changes(&self, c: &Container) -> Result<Vec<ChangeView>, ApiError> {
        let out = self.builtin_output(c, Builtin::Changes).await?;
        let list: Vec<berth_protocol::Change> = serde_json::from_slice(&out)
            .map_err(|e| ApiError::internal(format!("the guest's change list: {e}")))?;
        Ok(list
            .into_iter()
            .map(|c| ChangeView {
                path: c.path,
                kind: c.kind,
            })
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
        let state = c.state();
        let paused = req.pause && state.running && !state.paused;
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
    pub(super) async fn spool_layer(
        &self,
        c: &Container,
    ) -> Result<tempfile::NamedTempFile, ApiError> {
        self.spool_builtin(c, Builtin::LayerTar).await
    }

    /// What a builtin writes (a tar) on the container's files, in a file under the image
    /// store.
    pub(super) async fn spool_builtin(
        &self,
        c: &Container,
        op: Builtin,
    ) -> Result<tempfile::NamedTempFile, ApiError> {
        let tmp_dir = self.images.root().join("tmp");
        std::fs::create_dir_all(&tmp_dir)?;
        let spool = tempfile::Builder::new()
            .prefix("commit-")
            .tempfile_in(&tmp_dir)?;
        let mut file = tokio::fs::File::from_std(spool.reopen()?);
        let mut exec = self.guest.exec(self.cp_spec(c, op, false).await?).await?;
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
