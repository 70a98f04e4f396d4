//! The kernel command line's `berth.*` keys: what the host tells the agent before any
//! message can flow (how to reach the host, which disk holds the layer cache, the uplink,
//! the shared folders, the default network's bridge).
//!
//! The host writes them with [`BootParams::to_args`]; the agent reads them back with
//! [`BootParams::parse`]. Parsing never fails: an unknown key or a malformed value is
//! skipped, since a bad value must never keep the agent from starting.

/// The keys, one constant each.
pub mod key {
    pub const TRANSPORT: &str = "berth.transport";
    pub const PORT: &str = "berth.port";
    pub const SERIAL: &str = "berth.serial";
    pub const DEBUG: &str = "berth.debug";
    pub const HOSTNAME: &str = "berth.hostname";
    pub const DISK: &str = "berth.disk";
    pub const UPLINK: &str = "berth.uplink";
    pub const HOSTFWD: &str = "berth.hostfwd";
    pub const SHARE: &str = "berth.share";
    pub const SHAREFS: &str = "berth.sharefs";
    pub const BRIDGE: &str = "berth.bridge";
}

/// The prefix every key shares; other `module.param` tokens belong to kernel modules.
pub const KEY_PREFIX: &str = "berth.";

/// How the agent reaches the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentTransport {
    /// The agent dials the host (context id 2) on this AF_VSOCK port (vhost-vsock and
    /// vhost-user-vsock look the same from inside).
    Vsock { port: u32 },
    /// The agent serves on the virtio-serial port of this name.
    Serial { name: String },
}

impl Default for AgentTransport {
    fn default() -> Self {
        AgentTransport::Vsock {
            port: crate::VSOCK_PORT,
        }
    }
}

/// The machine's way out to the host's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Uplink {
    /// No network device at all.
    #[default]
    None,
    /// QEMU user networking with `restrict=on`: the guest reaches nothing outside the VM
    /// (host ports come through the agent's transport instead).
    Restricted,
    /// QEMU user networking: the guest reaches whatever the host reaches.
    Open,
}

impl Uplink {
    pub fn parse(s: &str) -> Option<Uplink> {
        match s {
            "none" => Some(Uplink::None),
            "restricted" => Some(Uplink::Restricted),
            "open" => Some(Uplink::Open),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Uplink::None => "none",
            Uplink::Restricted => "restricted",
            Uplink::Open => "open",
        }
    }
}

/// One host folder shared with the guest: the mount tag of its device and the host path
/// (travels percent-encoded, so any path is one token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootShare {
    pub tag: String,
    pub path: String,
}

/// The machine's default network (Docker's `bridge`): a machine's agent makes its bridge
/// as it boots, before the host can ask, since nearly every first container joins it.
/// Travels as `berth.bridge=IFNAME:GATEWAY/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootBridge {
    /// The bridge's interface name in the guest (1 to 15 bytes, no `:`).
    pub bridge: String,
    pub gateway: std::net::Ipv4Addr,
    pub prefix: u8,
}

impl BootBridge {
    /// The network the host's `PrepareNetwork` would name: Docker's default `bridge`,
    /// kept while the machine runs.
    pub fn network(&self) -> crate::BridgeNetwork {
        crate::BridgeNetwork {
            network_name: DEFAULT_NETWORK.to_string(),
            bridge: self.bridge.clone(),
            prefix: self.prefix,
            gateway: self.gateway.to_string(),
            internal: false,
            keep_bridge: true,
        }
    }

    fn parse(value: &str) -> Option<BootBridge> {
        let (bridge, cidr) = value.split_once(':')?;
        let (gateway, prefix) = cidr.split_once('/')?;
        let prefix: u8 = prefix.parse().ok()?;
        (!bridge.is_empty() && bridge.len() <= 15 && prefix <= 32).then_some(())?;
        Some(BootBridge {
            bridge: bridge.to_string(),
            gateway: gateway.parse().ok()?,
            prefix,
        })
    }
}

/// The name of Docker's default network.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Everything the `berth.*` keys say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootParams {
    pub transport: AgentTransport,
    /// The agent logs at debug level.
    pub debug: bool,
    /// The guest's hostname; the agent picks one when absent.
    pub hostname: Option<String>,
    /// The persistent layer-cache disk (a `/dev/` path).
    pub disk: Option<String>,
    pub uplink: Uplink,
    /// Host loopback ports the agent serves inside the guest.
    pub host_ports: Vec<u16>,
    pub shares: Vec<BootShare>,
    /// The shares are virtiofs devices, not 9p.
    pub shares_virtiofs: bool,
    /// The default network's bridge, made at boot (machines only).
    pub bridge: Option<BootBridge>,
}

impl BootParams {
    /// The kernel parameters that say all of this (defaults are left out).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        match &self.transport {
            AgentTransport::Vsock { port } => {
                args.push(format!("{}=vsock", key::TRANSPORT));
                args.push(format!("{}={port}", key::PORT));
            }
            AgentTransport::Serial { name } => {
                args.push(format!("{}=serial", key::TRANSPORT));
                if name != crate::SERIAL_PORT_NAME {
                    args.push(format!("{}={name}", key::SERIAL));
                }
            }
        }
        if self.debug {
            args.push(format!("{}=1", key::DEBUG));
        }
        if let Some(name) = &self.hostname {
            args.push(format!("{}={name}", key::HOSTNAME));
        }
        if let Some(disk) = &self.disk {
            args.push(format!("{}={disk}", key::DISK));
        }
        if self.uplink != Uplink::None {
            args.push(format!("{}={}", key::UPLINK, self.uplink.as_str()));
        }
        if !self.host_ports.is_empty() {
            let ports: Vec<String> = self.host_ports.iter().map(u16::to_string).collect();
            args.push(format!("{}={}", key::HOSTFWD, ports.join(",")));
        }
        for share in &self.shares {
            let path = percent_encode(&share.path);
            args.push(format!("{}={}:{path}", key::SHARE, share.tag));
        }
        if self.shares_virtiofs && !self.shares.is_empty() {
            args.push(format!("{}=virtiofs", key::SHAREFS));
        }
        if let Some(b) = &self.bridge {
            args.push(format!(
                "{}={}:{}/{}",
                key::BRIDGE,
                b.bridge,
                b.gateway,
                b.prefix
            ));
        }
        args
    }

    /// Reads the `berth.*` keys of a kernel command line; every other token is left for
    /// the caller, and a bad value leaves its default.
    pub fn parse(cmdline: &str) -> BootParams {
        let mut p = BootParams::default();
        let mut serial_name = None;
        let mut port = None;
        for token in cmdline.split_whitespace() {
            let (k, value) = token.split_once('=').unwrap_or((token, ""));
            match k {
                key::TRANSPORT => match value {
                    "serial" => {
                        p.transport = AgentTransport::Serial {
                            name: crate::SERIAL_PORT_NAME.to_string(),
                        }
                    }
                    "vsock" => p.transport = AgentTransport::default(),
                    _ => {}
                },
                key::PORT => port = value.parse().ok().or(port),
                key::SERIAL if !value.is_empty() => serial_name = Some(value.to_string()),
                key::HOSTNAME if !value.is_empty() => p.hostname = Some(value.to_string()),
                key::DISK if value.starts_with("/dev/") => p.disk = Some(value.to_string()),
                key::DEBUG => p.debug = value != "0",
                key::UPLINK => p.uplink = Uplink::parse(value).unwrap_or(p.uplink),
                key::HOSTFWD => {
                    p.host_ports = value.split(',').filter_map(|s| s.parse().ok()).collect()
                }
                key::SHAREFS => p.shares_virtiofs = value == "virtiofs",
                key::BRIDGE => p.bridge = BootBridge::parse(value).or(p.bridge),
                key::SHARE => p
                    .shares
                    .extend(value.split_once(':').and_then(|(tag, path)| {
                        let path = percent_decode(path)?;
                        (!tag.is_empty() && path.starts_with('/')).then(|| BootShare {
                            tag: tag.to_string(),
                            path,
                        })
                    })),
                _ => {}
            }
        }
        match &mut p.transport {
            AgentTransport::Vsock { port: p } => *p = port.unwrap_or(*p),
            AgentTransport::Serial { name } => {
                if let Some(given) = serial_name {
                    *name = given;
                }
            }
        }
        p
    }
}

/// Escapes everything but unreserved URL characters and `/` as `%XX`, so a path with
/// spaces, `=` or non-ASCII bytes stays one kernel parameter.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/._~+-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes [`percent_encode`]; `None` for a malformed escape or a non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
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
    use proptest::prelude::*;

    fn roundtrip(p: &BootParams) -> BootParams {
        BootParams::parse(&format!("console=ttyS0 {} quiet", p.to_args().join(" ")))
    }

    #[test]
    fn defaults_say_vsock_on_the_protocol_port() {
        assert_eq!(BootParams::parse("console=ttyS0"), BootParams::default());
        assert_eq!(
            BootParams::default().to_args(),
            ["berth.transport=vsock", "berth.port=1024"]
        );
    }

    #[test]
    fn bad_values_fall_back_to_defaults() {
        let p = BootParams::parse(
            "berth.transport=carrier-pigeon berth.port=x berth.serial= berth.share=x \
             berth.share=t:rel berth.share=t:/a%2 berth.share=:/a berth.share=t:/%FF \
             berth.uplink=moon berth.disk=sda berth.hostname= berth.bridge=b0 \
             berth.bridge=:10.0.0.1/8 berth.bridge=b0:10.0.0/8 berth.bridge=b0:10.0.0.1/33 \
             berth.bridge=sixteen-bytes-xx:10.0.0.1/8",
        );
        assert_eq!(p, BootParams::default());
    }

    #[test]
    fn the_port_and_serial_name_apply_whatever_their_order() {
        let p = BootParams::parse("berth.port=77 berth.transport=vsock");
        assert_eq!(p.transport, AgentTransport::Vsock { port: 77 });
        let p = BootParams::parse("berth.serial=other berth.transport=serial");
        assert_eq!(
            p.transport,
            AgentTransport::Serial {
                name: "other".into()
            }
        );
    }

    #[test]
    fn shares_are_encoded_as_one_token() {
        assert_eq!(percent_encode("/a b/%c:d"), "/a%20b/%25c%3Ad");
        assert_eq!(percent_encode("/é"), "/%C3%A9");
        assert_eq!(percent_decode("/a%20b/%C3%A9").as_deref(), Some("/a b/é"));
    }

    fn transport() -> impl Strategy<Value = AgentTransport> {
        prop_oneof![
            any::<u32>().prop_map(|port| AgentTransport::Vsock { port }),
            "[a-z][a-z0-9.]{0,12}".prop_map(|name| AgentTransport::Serial { name }),
        ]
    }

    fn uplink() -> impl Strategy<Value = Uplink> {
        prop_oneof![
            Just(Uplink::None),
            Just(Uplink::Restricted),
            Just(Uplink::Open)
        ]
    }

    #[test]
    fn the_boot_bridge_is_the_kept_default_network() {
        let p = BootParams::parse("berth.bridge=berth0:172.17.0.1/16");
        let b = p.bridge.expect("a bridge");
        assert_eq!(
            b.network(),
            crate::BridgeNetwork {
                network_name: "bridge".into(),
                bridge: "berth0".into(),
                prefix: 16,
                gateway: "172.17.0.1".into(),
                internal: false,
                keep_bridge: true,
            }
        );
    }

    fn bridge() -> impl Strategy<Value = BootBridge> {
        ("[a-z][a-z0-9-]{0,14}", any::<[u8; 4]>(), 0u8..=32).prop_map(|(bridge, ip, prefix)| {
            BootBridge {
                bridge,
                gateway: ip.into(),
                prefix,
            }
        })
    }

    prop_compose! {
        fn params()(
            transport in transport(),
            debug in any::<bool>(),
            hostname in proptest::option::of("[a-z][a-z0-9-]{0,20}"),
            disk in proptest::option::of("/dev/[a-z]{2,4}"),
            uplink in uplink(),
            host_ports in proptest::collection::vec(any::<u16>(), 0..4),
            shares in proptest::collection::vec(("[a-z][a-z0-9]{0,8}", "/\\PC{0,24}"), 0..3),
            shares_virtiofs in any::<bool>(),
            bridge in proptest::option::of(bridge()),
        ) -> BootParams {
            let shares: Vec<BootShare> =
                shares.into_iter().map(|(tag, path)| BootShare { tag, path }).collect();
            let shares_virtiofs = shares_virtiofs && !shares.is_empty();
            BootParams { transport, debug, hostname, disk, uplink, host_ports, shares, shares_virtiofs, bridge }
        }
    }

    proptest! {
        #[test]
        fn every_setting_survives_the_command_line(p in params()) {
            let args = p.to_args();
            prop_assert!(args.iter().all(|a| !a.contains(char::is_whitespace)), "{args:?}");
            prop_assert_eq!(roundtrip(&p), p);
        }
    }
}
