//! `POST /containers/create`: Docker's `ContainerConfig` with `HostConfig` and
//! `NetworkingConfig`. The image config's `config` object has the `ContainerConfig` shape
//! too, so it parses into the same struct.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fields a client sent that no struct member names: checked by `fields`, echoed by inspect.
pub type Other = BTreeMap<String, Value>;

/// `{}`: the value of an `ExposedPorts` or `Volumes` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `Cmd`, `Entrypoint` and a healthcheck's `Test`: Docker takes a list or one string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StrOrList {
    One(String),
    List(Vec<String>),
}

impl StrOrList {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StrOrList::One(s) => vec![s.clone()],
            StrOrList::List(l) => l.clone(),
        }
    }
}

/// The whole create body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateBody {
    #[serde(flatten)]
    pub config: ContainerConfig,
    pub host_config: Option<HostConfig>,
    pub networking_config: Option<NetworkingConfig>,
}

impl CreateBody {
    pub fn host(&self) -> std::borrow::Cow<'_, HostConfig> {
        match &self.host_config {
            Some(h) => std::borrow::Cow::Borrowed(h),
            None => std::borrow::Cow::Owned(HostConfig::default()),
        }
    }

    /// `NetworkingConfig.EndpointsConfig`, empty when absent.
    pub fn endpoints(&self) -> BTreeMap<String, EndpointSettings> {
        self.networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.clone())
            .unwrap_or_default()
    }
}

/// Docker's `Config` (create body top level, inspect's `Config`, an image's `config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub user: Option<String>,
    pub attach_stdin: Option<bool>,
    pub attach_stdout: Option<bool>,
    pub attach_stderr: Option<bool>,
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    pub tty: Option<bool>,
    pub open_stdin: Option<bool>,
    pub stdin_once: Option<bool>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<StrOrList>,
    pub healthcheck: Option<HealthConfig>,
    pub image: Option<String>,
    pub volumes: Option<BTreeMap<String, Empty>>,
    pub working_dir: Option<String>,
    pub entrypoint: Option<StrOrList>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    #[serde(flatten)]
    pub other: Other,
}

/// `Healthcheck`: durations in nanoseconds; `Test` is `["NONE"]`, `["CMD", ...]`,
/// `["CMD-SHELL", "..."]`, or empty to inherit the image's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    pub test: Option<Vec<String>>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub retries: Option<i64>,
    pub start_period: Option<i64>,
    pub start_interval: Option<i64>,
}

/// `HostConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    pub mounts: Option<Vec<MountRequest>>,
    pub network_mode: Option<String>,
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    pub publish_all_ports: Option<bool>,
    pub auto_remove: Option<bool>,
    pub restart_policy: Option<RestartPolicy>,
    pub log_config: Option<LogConfig>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_device_read_bps: Option<Vec<DeviceRate>>,
    pub blkio_device_write_bps: Option<Vec<DeviceRate>>,
    pub privileged: Option<bool>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub security_opt: Option<Vec<String>>,
    pub userns_mode: Option<String>,
    pub extra_hosts: Option<Vec<String>>,
    pub console_size: Option<Vec<u64>>,
    pub readonly_rootfs: Option<bool>,
    pub tmpfs: Option<BTreeMap<String, String>>,
    pub ipc_mode: Option<String>,
    /// `--link NAME[:ALIAS]`.
    pub links: Option<Vec<String>>,
    pub pid_mode: Option<String>,
    #[serde(rename = "UTSMode")]
    pub uts_mode: Option<String>,
    pub cgroupns_mode: Option<String>,
    pub isolation: Option<String>,
    pub memory_swappiness: Option<i64>,
    pub ulimits: Option<Vec<UlimitRequest>>,
    /// `--device`: the machine's device nodes (the guest's, not the host computer's).
    pub devices: Option<Vec<DeviceMapping>>,
    pub oom_score_adj: Option<i64>,
    pub group_add: Option<Vec<String>>,
    pub init: Option<bool>,
    pub shm_size: Option<i64>,
    pub sysctls: Option<BTreeMap<String, String>>,
    pub dns: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    #[serde(flatten)]
    pub other: Other,
}

/// One `HostConfig.Devices` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    pub path_on_host: Option<String>,
    pub path_in_container: Option<String>,
    pub cgroup_permissions: Option<String>,
}

/// One `HostConfig.Ulimits` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UlimitRequest {
    pub name: Option<String>,
    pub soft: Option<i64>,
    pub hard: Option<i64>,
}

/// `RestartPolicy`: `Name` is `""`/`no`, `always`, `unless-stopped` or `on-failure`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    pub name: Option<String>,
    pub maximum_retry_count: Option<i64>,
}

/// `LogConfig`: berth keeps Docker's default `json-file` log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub config: Option<BTreeMap<String, String>>,
}

/// One `PortBindings` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    pub host_ip: Option<String>,
    pub host_port: Option<String>,
}

/// `BlkioDeviceReadBps` / `BlkioDeviceWriteBps` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceRate {
    pub path: Option<String>,
    pub rate: Option<u64>,
}

/// One `HostConfig.Mounts` entry (`--mount`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountRequest {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: Option<bool>,
    /// macOS's consistency hint: nothing to do on berth's shares.
    pub consistency: Option<String>,
    pub volume_options: Option<VolumeOptions>,
    #[serde(flatten)]
    pub other: Other,
}

/// `Mounts[].VolumeOptions`: `NoCopy` is honoured; labels, driver options and `Subpath`
/// must be zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    pub no_copy: Option<bool>,
    #[serde(flatten)]
    pub other: Other,
}

/// `NetworkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkingConfig {
    pub endpoints_config: Option<BTreeMap<String, EndpointSettings>>,
    #[serde(flatten)]
    pub other: Other,
}

/// One network's endpoint settings (create body and `POST /networks/{id}/connect`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    pub aliases: Option<Vec<String>>,
    /// Legacy links on this network (`NAME[:ALIAS]`), as `HostConfig.Links`.
    pub links: Option<Vec<String>>,
    #[serde(flatten)]
    pub other: Other,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::models::parse;

    #[test]
    fn nulls_and_both_command_forms_parse() {
        let body = parse::<CreateBody>(
            br#"{"Image": "busybox", "Cmd": "true", "Entrypoint": null, "Env": null,
                 "HostConfig": {"Binds": null, "Memory": 0, "CpusetMems": ""},
                 "NetworkingConfig": {"EndpointsConfig": {"app": {"Aliases": ["web"]}}}}"#,
        )
        .unwrap();
        assert_eq!(body.config.cmd.unwrap().to_vec(), ["true"]);
        assert_eq!(body.config.entrypoint, None);
        let host = body.host_config.unwrap();
        assert_eq!(host.memory, Some(0));
        assert_eq!(host.other["CpusetMems"], serde_json::json!(""));
        assert_eq!(
            body.networking_config.unwrap().endpoints_config.unwrap()["app"].aliases,
            Some(vec!["web".to_string()])
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let err = parse::<CreateBody>(br#"{"HostConfig": {"Memory": "lots"}}"#).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("HostConfig.Memory"), "{}", err.message);
    }
}
