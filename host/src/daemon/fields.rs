//! Nothing silently ignored: every field of a create body (its top level, `HostConfig` and
//! `NetworkingConfig`'s endpoints) is either one berth honours, or it must hold its zero
//! value (null, false, 0, "", [] or {}, or an object of zero values), or the create is
//! refused with a 400 naming the field. Clients send most fields with zero values, so
//! those pass; `--read-only` (`ReadonlyRootfs: true`) and friends are refused until they
//! are honoured, never accepted and dropped.

use serde_json::Value;

use super::error::ApiError;
use super::models::create::{CreateBody, Other};

/// Refuses a create body with a field berth would otherwise ignore.
pub fn check_create(body: &CreateBody) -> Result<(), ApiError> {
    let c = &body.config;
    check_other("", &c.other)?;
    if let Some(d) = c.domainname.as_ref().filter(|d| !d.is_empty()) {
        refuse("Domainname", &Value::from(d.as_str()))?;
    }
    if let Some(host) = &body.host_config {
        for (key, value) in &host.other {
            let path = format!("HostConfig.{key}");
            refuse_unless_zero(&path, value)?;
        }
        if let Some(log) = &host.log_config {
            if !matches!(log.kind.as_deref().unwrap_or(""), "" | "json-file") {
                refuse("HostConfig.LogConfig.Type", &Value::from(log.kind.clone()))?;
            }
            if log.config.as_ref().is_some_and(|c| !c.is_empty()) {
                refuse(
                    "HostConfig.LogConfig.Config",
                    &serde_json::to_value(&log.config).unwrap_or_default(),
                )?;
            }
        }
        if let Some(policy) = &host.restart_policy {
            super::restart::Policy::from_request(policy)?;
        }
        // Containers get private cgroup namespaces (PID, IPC and UTS: `namespaces`).
        match host.cgroupns_mode.as_deref().unwrap_or("") {
            "" | "private" => {}
            other => refuse("HostConfig.CgroupnsMode", &Value::from(other))?,
        }
        if !matches!(host.isolation.as_deref().unwrap_or(""), "" | "default") {
            refuse("HostConfig.Isolation", &Value::from(host.isolation.clone()))?;
        }
        // -1 is "the kernel's default".
        if !matches!(host.memory_swappiness, None | Some(-1)) {
            refuse(
                "HostConfig.MemorySwappiness",
                &Value::from(host.memory_swappiness),
            )?;
        }
        for (i, m) in host.mounts.iter().flatten().enumerate() {
            check_other(&format!("HostConfig.Mounts.{i}."), &m.other)?;
        }
    }
    if let Some(net) = &body.networking_config {
        check_other("NetworkingConfig.", &net.other)?;
    }
    for (network, endpoint) in body.endpoints() {
        check_other(
            &format!("NetworkingConfig.EndpointsConfig.{network}."),
            &endpoint.other,
        )?;
    }
    Ok(())
}

/// Every field no struct member honours must hold its zero value.
pub fn check_other(prefix: &str, other: &Other) -> Result<(), ApiError> {
    for (key, value) in other {
        refuse_unless_zero(&format!("{prefix}{key}"), value)?;
    }
    Ok(())
}

/// Whether a value is what a client sends for "not asked for".
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        // A struct of zero fields (`{"IPv4Address": ""}`) is zero; a map with entries
        // (`Tmpfs: {"/run": ""}`, `Sysctls`) is a request, whatever its values.
        Value::Object(o) => o
            .iter()
            .all(|(k, v)| k.starts_with(|c: char| c.is_ascii_uppercase()) && is_zero(v)),
    }
}

fn refuse_unless_zero(path: &str, value: &Value) -> Result<(), ApiError> {
    if is_zero(value) {
        Ok(())
    } else {
        refuse(path, value)
    }
}

fn refuse(path: &str, value: &Value) -> Result<(), ApiError> {
    let mut shown = value.to_string();
    if shown.len() > 80 {
        shown.truncate(77);
        shown.push_str("...");
    }
    Err(ApiError::bad_request(format!(
        "{path} ({shown}) is not supported by berth yet: it is refused rather than ignored"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the docker CLI 28 sends for `docker run busybox true`, trimmed to its shape.
    fn docker_cli_default() -> Value {
        serde_json::from_str(
            r#"{
            "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
            "AttachStdout": true, "AttachStderr": true, "Tty": false, "OpenStdin": false,
            "StdinOnce": false, "Env": null, "Cmd": ["true"], "Image": "busybox",
            "Volumes": {}, "WorkingDir": "", "Entrypoint": null, "OnBuild": null,
            "Labels": {},
            "HostConfig": {
                "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
                "NetworkMode": "default", "PortBindings": {},
                "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null,
                "ConsoleSize": [24, 80], "CapAdd": null, "CapDrop": null, "CgroupnsMode": "",
                "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null,
                "GroupAdd": null, "IpcMode": "", "Cgroup": "", "Links": null,
                "OomScoreAdj": 0, "PidMode": "", "Privileged": false, "PublishAllPorts": false,
                "ReadonlyRootfs": false, "SecurityOpt": null, "UTSMode": "", "UsernsMode": "",
                "ShmSize": 0, "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
                "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
                "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
                "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
                "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "",
                "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null,
                "DeviceRequests": null, "MemoryReservation": 0, "MemorySwap": 0,
                "MemorySwappiness": null, "OomKillDisable": null, "PidsLimit": null,
                "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
                "IOMaximumBandwidth": 0, "MaskedPaths": null, "ReadonlyPaths": null
            },
            "NetworkingConfig": {"EndpointsConfig": {"app": {"Aliases": ["web"], "IPAMConfig": {}, "Links": null}}}
        }"#,
        )
        .unwrap()
    }

    fn check(v: &Value) -> Result<(), ApiError> {
        check_create(&serde_json::from_value(v.clone()).unwrap())
    }

    #[test]
    fn what_the_docker_cli_sends_by_default_passes() {
        check(&docker_cli_default()).unwrap();
    }

    #[test]
    fn a_field_berth_would_drop_is_refused_by_name() {
        for (path, value) in [
            ("HostConfig.CgroupnsMode", json!("host")),
            ("HostConfig.CpusetMems", json!("0")),
            ("Domainname", json!("example.com")),
        ] {
            let mut body = docker_cli_default();
            match path.strip_prefix("HostConfig.") {
                Some(k) => body["HostConfig"][k] = value.clone(),
                None => body[path] = value.clone(),
            }
            let err = check(&body)
                .err()
                .unwrap_or_else(|| panic!("{path} = {value} must be refused"));
            assert_eq!(err.status, 400);
            assert!(err.message.starts_with(path), "{path}: {}", err.message);
        }
        let mut restart = docker_cli_default();
        restart["HostConfig"]["RestartPolicy"]["Name"] = json!("sometimes");
        let err = check(&restart).unwrap_err();
        assert!(err.message.contains("sometimes"), "{}", err.message);
        let mut log = docker_cli_default();
        log["HostConfig"]["LogConfig"]["Type"] = json!("syslog");
        assert!(check(&log).is_err());
        let mut endpoint = docker_cli_default();
        endpoint["NetworkingConfig"]["EndpointsConfig"]["app"]["IPAMConfig"] =
            json!({"IPv4Address": "10.0.0.9"});
        let err = check(&endpoint).unwrap_err();
        assert!(
            err.message.contains("EndpointsConfig.app.IPAMConfig"),
            "{}",
            err.message
        );
    }

    #[test]
    fn private_namespaces_and_defaults_spelled_out_pass() {
        let mut body = docker_cli_default();
        body["HostConfig"]["IpcMode"] = json!("private");
        body["HostConfig"]["CgroupnsMode"] = json!("private");
        body["HostConfig"]["LogConfig"]["Type"] = json!("json-file");
        body["HostConfig"]["MemorySwappiness"] = json!(-1);
        check(&body).unwrap();
    }
}
