//! The agent's configuration, read from the kernel command line.

use std::path::Path;

pub use berth_protocol::boot::{AgentTransport, BootParams};

/// The agent's settings: the host's `berth.*` keys (defined in `berth_protocol::boot`)
/// and the `module.param=value` tokens meant for kernel modules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub boot: BootParams,
    /// `module.param=value` tokens, handed to modules as they load (the kernel only does
    /// that itself for built-in code).
    pub module_params: Vec<(String, String)>,
}

/// The hostname when the host names none.
pub const DEFAULT_HOSTNAME: &str = "berth";

impl Config {
    /// Reads the command line from `path` (normally `/proc/cmdline`).
    pub fn from_file(path: &Path) -> std::io::Result<Config> {
        Ok(Config::parse(&std::fs::read_to_string(path)?))
    }

    /// Parses a kernel command line. Unknown or malformed tokens are ignored: a bad value
    /// must never keep the agent from starting.
    pub fn parse(cmdline: &str) -> Config {
        let mut module_params = Vec::new();
        for token in cmdline.split_whitespace() {
            let key = token.split_once('=').map_or(token, |(k, _)| k);
            if key.starts_with(berth_protocol::boot::KEY_PREFIX) {
                continue;
            }
            if let Some((module, param)) = key.split_once('.') {
                if !module.is_empty() && !param.is_empty() {
                    module_params.push((
                        module.replace('-', "_"),
                        token[module.len() + 1..].to_string(),
                    ));
                }
            }
        }
        Config {
            boot: BootParams::parse(cmdline),
            module_params,
        }
    }

    /// The guest's hostname.
    pub fn hostname(&self) -> &str {
        self.boot.hostname.as_deref().unwrap_or(DEFAULT_HOSTNAME)
    }

    /// The parameter string for module `name` (space-separated `param=value`).
    pub fn params_for(&self, name: &str) -> String {
        let name = name.replace('-', "_");
        self.module_params
            .iter()
            .filter(|(m, _)| *m == name)
            .map(|(_, p)| p.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_berth_settings_and_module_params() {
        let cfg = Config::parse(
            "console=ttyS0 berth.transport=serial berth.port=77 berth.debug=1 \
             virtio_mmio.device=512@0xfeb00e00:12 virtio-mmio.device=4K@0x1:5 quiet",
        );
        assert_eq!(
            cfg.boot.transport,
            AgentTransport::Serial {
                name: berth_protocol::SERIAL_PORT_NAME.into()
            }
        );
        assert!(cfg.boot.debug);
        assert_eq!(
            cfg.params_for("virtio_mmio"),
            "device=512@0xfeb00e00:12 device=4K@0x1:5"
        );
        assert_eq!(cfg.params_for("vsock"), "");
        assert_eq!(
            cfg.params_for("berth"),
            "",
            "berth.* keys are not module parameters"
        );
        assert_eq!(cfg.hostname(), DEFAULT_HOSTNAME);
    }

    #[test]
    fn reads_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cmdline");
        std::fs::write(&path, "berth.hostname=box\n").unwrap();
        assert_eq!(Config::from_file(&path).unwrap().hostname(), "box");
    }
}
