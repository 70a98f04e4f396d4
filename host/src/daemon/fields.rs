//! Nothing silently ignored: every field of a create body (its top level, `HostConfig` and
//! `NetworkingConfig`'s endpoints) is either one berth honours, or it must hold its zero
//! value (null, false, 0, "", [] or {}, or an object of zero values), or the create is
//! refused with a 400 naming the field. Clients send most fields with zero values, so
//! those pass; `--read-only` (`ReadonlyRootfs: true`) and friends are refused until they
//! are honoured, never accepted and dropped.

use serde_json::Value;

use super::error::ApiError;

/// Top-level fields berth honours (`HostConfig` and `NetworkingConfig` are checked below).
const TOP: &[&str] = &[
    "Hostname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Entrypoint",
    "Image",
    "WorkingDir",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "HostConfig",
    "NetworkingConfig",
];

/// `HostConfig` fields berth honours.
const HOST: &[&str] = &[
    "Binds",
    "Mounts",
    "NetworkMode",
    "PortBindings",
    "PublishAllPorts",
    "AutoRemove",
    "Memory",
    "NanoCpus",
    "CpuShares",
    "CpuQuota",
    "CpuPeriod",
    "CpusetCpus",
    "PidsLimit",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "Privileged",
    "CapAdd",
    "CapDrop",
    "SecurityOpt",
    "UsernsMode",
    "ExtraHosts",
    "ConsoleSize",
    "ReadonlyRootfs",
    "Tmpfs",
];

/// Endpoint fields berth honours.
const ENDPOINT: &[&str] = &["Aliases"];

/// Refuses a create body with a field berth would otherwise ignore.
pub fn check_create(body: &Value) -> Result<(), ApiError> {
    let Some(top) = body.as_object() else {
        return Err(ApiError::bad_request(
            "the create body must be a JSON object",
        ));
    };
    for (key, value) in top {
        if !TOP.contains(&key.as_str()) {
            refuse_unless_zero(key, value)?;
        }
    }
    if let Some(host) = body["HostConfig"].as_object() {
        for (key, value) in host {
            let path = format!("HostConfig.{key}");
            match key.as_str() {
                k if HOST.contains(&k) => {}
                // What berth does anyway: Docker's defaults, spelled out.
                "LogConfig" => {
                    let kind = value["Type"].as_str().unwrap_or("");
                    if !matches!(kind, "" | "json-file") {
                        refuse(&format!("{path}.Type"), &value["Type"])?;
                    }
                    refuse_unless_zero(&format!("{path}.Config"), &value["Config"])?;
                }
                "RestartPolicy" => {
                    if !matches!(value["Name"].as_str().unwrap_or(""), "" | "no") {
                        refuse(&format!("{path}.Name"), &value["Name"])?;
                    }
                    refuse_unless_zero(
                        &format!("{path}.MaximumRetryCount"),
                        &value["MaximumRetryCount"],
                    )?;
                }
                // Containers get private IPC and cgroup namespaces.
                "IpcMode" | "CgroupnsMode" if value.as_str() == Some("private") => {}
                "Isolation" if value.as_str() == Some("default") => {}
                // -1 is "the kernel's default".
                "MemorySwappiness" if value.as_i64() == Some(-1) => {}
                _ => refuse_unless_zero(&path, value)?,
            }
        }
    }
    if let Some(endpoints) = body["NetworkingConfig"]["EndpointsConfig"].as_object() {
        for (network, endpoint) in endpoints {
            for (key, value) in endpoint.as_object().into_iter().flatten() {
                if !ENDPOINT.contains(&key.as_str()) {
                    refuse_unless_zero(
                        &format!("NetworkingConfig.EndpointsConfig.{network}.{key}"),
                        value,
                    )?;
                }
            }
        }
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

    #[test]
    fn what_the_docker_cli_sends_by_default_passes() {
        check_create(&docker_cli_default()).unwrap();
    }

    #[test]
    fn a_field_berth_would_drop_is_refused_by_name() {
        for (path, value) in [
            ("HostConfig.Sysctls", json!({"net.core.somaxconn": "1024"})),
            (
                "HostConfig.Ulimits",
                json!([{"Name": "nofile", "Soft": 10, "Hard": 10}]),
            ),
            ("HostConfig.Dns", json!(["1.1.1.1"])),
            ("HostConfig.ShmSize", json!(1 << 20)),
            ("HostConfig.Init", json!(true)),
            ("HostConfig.IpcMode", json!("host")),
            ("Healthcheck", json!({"Test": ["CMD", "true"]})),
            ("StopSignal", json!("SIGINT")),
        ] {
            let mut body = docker_cli_default();
            match path.strip_prefix("HostConfig.") {
                Some(k) => body["HostConfig"][k] = value.clone(),
                None => body[path] = value.clone(),
            }
            let err = check_create(&body)
                .err()
                .unwrap_or_else(|| panic!("{path} = {value} must be refused"));
            assert_eq!(err.status, 400);
            assert!(err.message.starts_with(path), "{path}: {}", err.message);
        }
        let mut restart = docker_cli_default();
        restart["HostConfig"]["RestartPolicy"]["Name"] = json!("always");
        let err = check_create(&restart).unwrap_err();
        assert!(
            err.message.contains("RestartPolicy.Name"),
            "{}",
            err.message
        );
        let mut log = docker_cli_default();
        log["HostConfig"]["LogConfig"]["Type"] = json!("syslog");
        assert!(check_create(&log).is_err());
        let mut endpoint = docker_cli_default();
        endpoint["NetworkingConfig"]["EndpointsConfig"]["app"]["IPAMConfig"] =
            json!({"IPv4Address": "10.0.0.9"});
        let err = check_create(&endpoint).unwrap_err();
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
        check_create(&body).unwrap();
    }
}
