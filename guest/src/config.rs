//! The agent's configuration, read from the kernel command line.

use std::path::Path;

/// How the host reaches the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// An AF_VSOCK listener (vhost-vsock and vhost-user-vsock look the same from inside).
    Vsock,
    /// A named virtio-serial port.
    Serial,
}

/// Settings passed by the host as `berth.*` kernel parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub transport: Transport,
    pub vsock_port: u32,
    pub serial_name: String,
    pub debug: bool,
    pub hostname: String,
    /// The persistent layer-cache disk (`berth.disk=/dev/vda`), when the host gave one.
    pub disk: Option<String>,
    /// `module.param=value` tokens, handed to modules as they load (the kernel only does
    /// that itself for built-in code).
    pub module_params: Vec<(String, String)>,
    /// The uplink the host attached (`berth.uplink=open|restricted`); none when absent.
    pub uplink: crate::net::Uplink,
    /// Host loopback ports to serve inside the guest (`berth.hostfwd=8000,9000`).
    pub host_ports: Vec<u16>,
    /// Host folders shared over virtio-9p (`berth.share=TAG:PATH`, the path
    /// percent-encoded): (mount tag, host path).
    pub shares: Vec<(String, String)>,
    /// The shares are virtiofs devices, not 9p (`berth.sharefs=virtiofs`).
    pub shares_virtiofs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            transport: Transport::Vsock,
            vsock_port: berth_protocol::VSOCK_PORT,
            serial_name: berth_protocol::SERIAL_PORT_NAME.to_string(),
            debug: false,
            hostname: "berth".to_string(),
            disk: None,
            module_params: Vec::new(),
            uplink: crate::net::Uplink::None,
            host_ports: Vec::new(),
            shares: Vec::new(),
            shares_virtiofs: false,
        }
    }
}

impl Config {
    /// Reads the command line from `path` (normally `/proc/cmdline`).
    pub fn from_file(path: &Path) -> std::io::Result<Config> {
        Ok(Config::parse(&std::fs::read_to_string(path)?))
    }

    /// Parses a kernel command line. Unknown or malformed tokens are ignored: a bad value
    /// must never keep the agent from starting.
    pub fn parse(cmdline: &str) -> Config {
        let mut cfg = Config::default();
        for token in cmdline.split_whitespace() {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            match key {
                "berth.transport" => match value {
                    "serial" => cfg.transport = Transport::Serial,
                    "vsock" => cfg.transport = Transport::Vsock,
                    _ => {}
                },
                "berth.port" => {
                    if let Ok(port) = value.parse() {
                        cfg.vsock_port = port;
                    }
                }
                "berth.serial" if !value.is_empty() => cfg.serial_name = value.to_string(),
                "berth.hostname" if !value.is_empty() => cfg.hostname = value.to_string(),
                "berth.disk" if value.starts_with("/dev/") => cfg.disk = Some(value.to_string()),
                "berth.debug" => cfg.debug = value != "0",
                "berth.uplink" => match value {
                    "open" => cfg.uplink = crate::net::Uplink::Open,
                    "restricted" => cfg.uplink = crate::net::Uplink::Restricted,
                    _ => {}
                },
                "berth.hostfwd" => {
                    cfg.host_ports = value.split(',').filter_map(|p| p.parse().ok()).collect()
                }
                "berth.sharefs" => cfg.shares_virtiofs = value == "virtiofs",
                "berth.share" => {
                    let share = value.split_once(':').and_then(|(tag, path)| {
                        let path = percent_decode(path)?;
                        (!tag.is_empty() && path.starts_with('/')).then(|| (tag.into(), path))
                    });
                    cfg.shares.extend(share);
                }
                _ => {
                    if let Some((module, param)) = key.split_once('.') {
                        if !module.is_empty() && !param.is_empty() && !module.starts_with("berth") {
                            cfg.module_params.push((
                                module.replace('-', "_"),
                                token[module.len() + 1..].to_string(),
                            ));
                        }
                    }
                }
            }
        }
        cfg
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

/// Undoes the host's `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
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
        assert_eq!(cfg.transport, Transport::Serial);
        assert_eq!(cfg.vsock_port, 77);
        assert!(cfg.debug);
        assert_eq!(
            cfg.params_for("virtio_mmio"),
            "device=512@0xfeb00e00:12 device=4K@0x1:5"
        );
        assert_eq!(cfg.params_for("vsock"), "");
        let cfg = Config::parse("berth.uplink=restricted berth.hostfwd=8000,x,9000");
        assert_eq!(cfg.uplink, crate::net::Uplink::Restricted);
        assert_eq!(cfg.host_ports, [8000, 9000]);
    }

    #[test]
    fn bad_values_fall_back_to_defaults() {
        let cfg = Config::parse(
            "berth.transport=carrier-pigeon berth.port=x berth.serial= berth.share=x \
             berth.share=t:rel berth.share=t:/a%2 berth.share=:/a berth.share=t:/%FF",
        );
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn shares_are_decoded() {
        let cfg = Config::parse("berth.share=berth0:/home/ann berth.share=berth1:/a%20b/%C3%A9");
        assert_eq!(
            cfg.shares,
            [
                ("berth0".to_string(), "/home/ann".to_string()),
                ("berth1".to_string(), "/a b/é".to_string())
            ]
        );
    }

    #[test]
    fn reads_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cmdline");
        std::fs::write(&path, "berth.hostname=box\n").unwrap();
        assert_eq!(Config::from_file(&path).unwrap().hostname, "box");
    }
}
