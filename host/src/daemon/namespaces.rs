//! `--pid`, `--ipc` and `--uts` (`HostConfig.PidMode`, `IpcMode`, `UTSMode`): a container's
//! PID, IPC and UTS namespaces are its own, the machine's (`host`), or another running
//! container's (`container:NAME`; PID and IPC only, as Docker's).

use berth_protocol::{Namespaces, NsMode};

use super::engine::Engine;
use super::error::ApiError;
use super::models::HostConfig;

/// The modes a create body asks for; `container:NAME` keeps the name (see
/// [`Engine::resolve_namespaces`]). `hostname_given`: a `--hostname` conflicts with
/// `--uts host`, as in Docker.
pub fn requested(host: &HostConfig, hostname_given: bool) -> Result<Namespaces, ApiError> {
    let refuse = |field: &str, value: &str, allowed: &str| {
        ApiError::bad_request(format!(
            "HostConfig.{field} {value:?} is not supported by berth (use {allowed})"
        ))
    };
    let pid = match host.pid_mode.as_deref().unwrap_or("") {
        "" => NsMode::Private,
        "host" => NsMode::Host,
        m if m.starts_with("container:") && m.len() > "container:".len() => {
            NsMode::Container(m["container:".len()..].to_string())
        }
        other => return Err(refuse("PidMode", other, "\"\", host or container:NAME")),
    };
    let ipc = match host.ipc_mode.as_deref().unwrap_or("") {
        // Every berth container's IPC namespace can be joined: private is shareable.
        "" | "private" | "shareable" => NsMode::Private,
        "host" => NsMode::Host,
        "none" => NsMode::None,
        m if m.starts_with("container:") && m.len() > "container:".len() => {
            NsMode::Container(m["container:".len()..].to_string())
        }
        other => {
            return Err(refuse(
                "IpcMode",
                other,
                "private, shareable, none, host or container:NAME",
            ))
        }
    };
    let uts = match host.uts_mode.as_deref().unwrap_or("") {
        "" => NsMode::Private,
        "host" if hostname_given => {
            return Err(ApiError::bad_request(
                "conflicting options: hostname and the UTS mode",
            ))
        }
        "host" => NsMode::Host,
        other => return Err(refuse("UTSMode", other, "\"\" or host")),
    };
    Ok(Namespaces { pid, ipc, uts })
}

impl Engine {
    /// `container:NAME` modes name a container by id from here on (it must exist).
    pub(super) fn resolve_namespaces(&self, ns: &mut Namespaces) -> Result<(), ApiError> {
        for mode in [&mut ns.pid, &mut ns.ipc] {
            if let NsMode::Container(name) = mode {
                *name = self.find(name)?.id.clone();
            }
        }
        Ok(())
    }

    /// At a start: each container whose namespace is joined runs, as Docker requires.
    pub(super) fn check_namespace_targets(&self, ns: &Namespaces) -> Result<(), ApiError> {
        for (mode, kind) in [(&ns.pid, "PID"), (&ns.ipc, "IPC")] {
            if let NsMode::Container(id) = mode {
                let other = self.find(id)?;
                if !other.state().running {
                    return Err(ApiError::conflict(format!(
                        "cannot join {kind} of a non running container: {}",
                        other.name()
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn host(v: Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn modes_follow_docker() {
        let ns = requested(
            &host(json!({"PidMode": "host", "IpcMode": "container:db", "UTSMode": "host"})),
            false,
        )
        .unwrap();
        assert_eq!(ns.pid, NsMode::Host);
        assert_eq!(ns.ipc, NsMode::Container("db".into()));
        assert_eq!(ns.uts, NsMode::Host);
        let ns = requested(&host(json!({"IpcMode": "shareable"})), false).unwrap();
        assert!(ns.is_default(), "shareable is berth's private");
        assert_eq!(
            requested(&host(json!({"IpcMode": "none"})), false)
                .unwrap()
                .ipc,
            NsMode::None
        );
        for (bad, field) in [
            (json!({"PidMode": "container:"}), "PidMode"),
            (json!({"PidMode": "private"}), "PidMode"),
            (json!({"IpcMode": "weird"}), "IpcMode"),
            (json!({"UTSMode": "container:x"}), "UTSMode"),
        ] {
            let e = requested(&host(bad), false).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
        let e = requested(&host(json!({"UTSMode": "host"})), true).unwrap_err();
        assert!(e.to_string().contains("hostname and the UTS mode"), "{e}");
    }
}
