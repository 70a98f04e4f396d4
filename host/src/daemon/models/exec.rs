//! `POST /containers/{id}/exec` and `POST /exec/{id}/start`.

use serde::{Deserialize, Serialize};

use super::create::Other;

/// `POST /containers/{id}/exec`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecBody {
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub tty: Option<bool>,
    pub attach_stdin: Option<bool>,
    /// Without it (as Docker's default), the stream's output is dropped.
    pub attach_stdout: Option<bool>,
    pub attach_stderr: Option<bool>,
    pub privileged: Option<bool>,
    pub console_size: Option<Vec<u64>>,
    /// Watched for in a terminal's input (`detach`); Docker's `ctrl-p,ctrl-q` when empty.
    pub detach_keys: Option<String>,
    /// docker-py repeats the container of the path here.
    pub container: Option<String>,
    #[serde(flatten)]
    pub other: Other,
}

/// `POST /exec/{id}/start`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecStartBody {
    pub detach: Option<bool>,
    pub tty: Option<bool>,
    pub console_size: Option<Vec<u64>>,
    #[serde(flatten)]
    pub other: Other,
}
