//! `POST /containers/{id}/update`.

use serde::{Deserialize, Serialize};

use super::create::{Other, RestartPolicy};

/// The limits `docker update` changes; a zero or absent field is left as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateBody {
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub restart_policy: Option<RestartPolicy>,
    #[serde(flatten)]
    pub other: Other,
}
