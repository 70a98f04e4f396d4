//! `POST /networks/create` and `POST /volumes/create`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::create::Other;

/// `POST /networks/create`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateBody {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub internal: Option<bool>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    /// berth always refuses a name in use, as Docker does with this set.
    pub check_duplicate: Option<bool>,
    /// Shown by inspect; every berth network takes containers started by hand.
    pub attachable: Option<bool>,
    /// Driver options (`com.docker.network.bridge.name`, ...): refused when given.
    pub options: Option<BTreeMap<String, String>>,
    /// `local` or empty: berth's networks are the machine's.
    pub scope: Option<String>,
    #[serde(flatten)]
    pub other: Other,
}

/// `IPAM`: the default driver with at most one pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: Option<String>,
    pub config: Option<Vec<IpamConfig>>,
    pub options: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub other: Other,
}

/// One `IPAM.Config` pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    #[serde(flatten)]
    pub other: Other,
}

/// `POST /volumes/create`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeCreateBody {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub other: Other,
}
