//! What the host and the guest agree on about a kernel: `assets/kernels/<name>/kernel.json`
//! (written by `cargo xtask kernel` and `berth kernel add`, read by every command that
//! boots), the kernel options berth-init needs, and the modules it loads when they are not
//! built in (`/lib/modules/berth/`, in the order of `/etc/berth/modules`).

use serde::{Deserialize, Serialize};

/// The manifest's file name in a kernel's directory.
pub const MANIFEST: &str = "kernel.json";
/// Where a kernel's own modules go in the guest's root, and the list berth-init reads.
pub const GUEST_MODULE_DIR: &str = "lib/modules/berth";
pub const GUEST_MODULE_LIST: &str = "etc/berth/modules";

/// How a kernel was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelKind {
    /// Built by `cargo xtask kernel` from berth's Kconfig fragments: everything built in.
    Tuned,
    /// A distribution's kernel (`berth kernel add`): drivers as modules in its initramfs.
    Distro,
    /// A file named with `--kernel PATH`.
    Custom,
}

/// `assets/kernels/<name>/kernel.json`. Paths are relative to the kernel's directory;
/// `initramfs: None` means the base initramfs (`assets/initramfs.cpio`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelManifest {
    pub name: String,
    pub release: String,
    pub kind: KernelKind,
    pub vmlinux: Option<String>,
    pub bzimage: Option<String>,
    pub initramfs: Option<String>,
    /// Where it came from: a package and version, a file, a config hash.
    #[serde(default)]
    pub source: String,
    /// The kernel's config (`CONFIG_...` lines) when known, relative like the images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Its `System.map` (function names and addresses), for a kernel whose image has no
    /// symbol table (a distribution's bzImage), relative like the images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_map: Option<String>,
}

/// One thing berth needs from a kernel: any one of `any_of` set to `y` or `m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub any_of: &'static [&'static str],
    pub why: &'static str,
}

const fn need(any_of: &'static [&'static str], why: &'static str) -> Requirement {
    Requirement { any_of, why }
}

/// The kernel options without which berth cannot work: checked against a kernel's config
/// before it is added, so a kernel is refused up front rather than by a boot that times out.
pub const REQUIRED: &[Requirement] = &[
    need(
        &["CONFIG_BLK_DEV_INITRD"],
        "berth-init starts from an initramfs",
    ),
    need(&["CONFIG_DEVTMPFS"], "the guest's /dev"),
    need(&["CONFIG_TMPFS"], "the guest's root is copied into a tmpfs"),
    need(&["CONFIG_PROC_FS"], "/proc"),
    need(&["CONFIG_SYSFS"], "/sys"),
    need(&["CONFIG_UNIX98_PTYS"], "terminals (-t)"),
    need(
        &["CONFIG_VIRTIO"],
        "every device berth gives the VM is virtio",
    ),
    need(
        &["CONFIG_VIRTIO_MMIO", "CONFIG_VIRTIO_PCI"],
        "virtio devices (microvm uses MMIO, pc uses PCI)",
    ),
    need(&["CONFIG_VIRTIO_BLK"], "the machine's disk"),
    need(&["CONFIG_VIRTIO_NET"], "the uplink"),
    need(
        &["CONFIG_VIRTIO_VSOCKETS", "CONFIG_VIRTIO_CONSOLE"],
        "the agent's connection (vsock or virtio-serial)",
    ),
    need(&["CONFIG_EXT4_FS"], "the machine's disk is ext4"),
    need(&["CONFIG_OVERLAY_FS"], "container root file systems"),
    need(&["CONFIG_NAMESPACES"], "containers"),
    need(&["CONFIG_PID_NS"], "a container's PID namespace"),
    need(&["CONFIG_NET_NS"], "a container's network namespace"),
    need(&["CONFIG_UTS_NS"], "a container's hostname"),
    need(&["CONFIG_IPC_NS"], "a container's IPC namespace"),
    need(&["CONFIG_CGROUPS"], "container limits"),
    need(&["CONFIG_MEMCG"], "--memory"),
    need(&["CONFIG_CGROUP_PIDS"], "--pids-limit"),
    need(&["CONFIG_CGROUP_SCHED"], "--cpus and --cpu-shares"),
    need(&["CONFIG_CGROUP_FREEZER"], "pause"),
    need(&["CONFIG_SECCOMP_FILTER"], "the default seccomp profile"),
    need(&["CONFIG_BRIDGE"], "container networks"),
    need(&["CONFIG_VETH"], "a container's network interface"),
    need(&["CONFIG_NF_TABLES"], "NAT and network isolation"),
    need(&["CONFIG_NF_NAT"], "NAT"),
    need(&["CONFIG_NF_CONNTRACK"], "NAT"),
    need(&["CONFIG_NFT_NAT"], "published ports"),
    need(&["CONFIG_NFT_MASQ"], "containers reaching the uplink"),
    need(&["CONFIG_NFT_CT"], "network isolation"),
];

/// What host folders need (one of them), reported but not required: volumes and
/// everything else work without.
pub const SHARES: Requirement = need(
    &["CONFIG_NET_9P_VIRTIO", "CONFIG_VIRTIO_FS"],
    "host folders (-v /path) over 9p or virtiofs",
);

/// The modules berth-init loads when a kernel builds these as modules (dependencies are
/// added by whoever packs them).
pub const GUEST_MODULES: &[&str] = &[
    // ext4 (the machine's disk) checksums its metadata with crc32c; on kernels that build
    // them as modules, both must load before the disk is mounted.
    "crc32c_generic",
    "ext4",
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio_pci",
    "virtio_blk",
    "virtio_console",
    "virtio_rng",
    "virtio_net",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport",
    "overlay",
    "bridge",
    "veth",
    "fuse",
    "virtiofs",
    "9pnet",
    "9pnet_virtio",
    "9p",
    "nf_tables",
    "nft_nat",
    "nft_masq",
    "nft_ct",
    "nft_chain_nat",
    "nf_nat",
    "nf_conntrack",
    "tun",
];

/// A kernel config's `CONFIG_...=value` lines, in order, values unquoted.
fn config_entries(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter(|(k, _)| k.starts_with("CONFIG_"))
        .map(|(k, v)| (k, v.trim_matches('"')))
}

/// A kernel config's options that are set (`y` or `m`), by name.
pub fn config_values(text: &str) -> std::collections::BTreeMap<String, String> {
    config_entries(text)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The option of berth's kernel patch (`kernel-config/patches/`) that makes a kernel take
/// [`LAPIC_TIMER_PERIOD_KEY`] from its command line: the local APIC timer's clocks per tick,
/// which the kernel otherwise measures for 100 ms at boot.
pub const LAPIC_TIMER_PERIOD_OPTION: &str = "CONFIG_BERTH_LAPIC_TIMER_PERIOD";

/// The command-line key a kernel with [`LAPIC_TIMER_PERIOD_OPTION`] reads.
pub const LAPIC_TIMER_PERIOD_KEY: &str = "lapic_timer_period";

/// The kernel's timer frequency (`CONFIG_HZ`), from its config's text (read at every VM's
/// start: the lines are scanned, no map is built).
pub fn tick_hz(config: &str) -> Option<u64> {
    config_entries(config)
        .find_map(|(k, v)| (k == "CONFIG_HZ").then(|| v.trim().parse().ok()))
        .flatten()
        .filter(|hz| *hz > 0)
}

/// Whether the config builds `option` (`CONFIG_...`) into the kernel (`=y`), scanned as
/// `tick_hz` scans.
pub fn built_in(config: &str, option: &str) -> bool {
    config_entries(config).any(|(k, v)| k == option && v == "y")
}

/// The requirements a config does not meet, each with the options that would.
pub fn unmet(config: &str) -> Vec<Requirement> {
    let values = config_values(config);
    let set = |o: &str| matches!(values.get(o).map(String::as_str), Some("y" | "m"));
    REQUIRED
        .iter()
        .filter(|r| !r.any_of.iter().any(|o| set(o)))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_older_ones_read() {
        let m = KernelManifest {
            name: "cloud-6.12".into(),
            release: "6.12.118+deb12-cloud-amd64".into(),
            kind: KernelKind::Distro,
            vmlinux: None,
            bzimage: Some("bzImage".into()),
            initramfs: Some("initramfs.cpio".into()),
            source: "linux-image-6.12.118+deb12-cloud-amd64-unsigned 6.12.118-1~deb12u1".into(),
            config: Some("config".into()),
            system_map: Some("System.map".into()),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""kind":"distro""#), "{json}");
        assert_eq!(serde_json::from_str::<KernelManifest>(&json).unwrap(), m);
        let old = r#"{"name":"6.1","release":"6.1.192-berth","kind":"tuned","vmlinux":"vmlinux","bzimage":"bzImage","initramfs":null}"#;
        let m: KernelManifest = serde_json::from_str(old).unwrap();
        assert_eq!(
            (m.kind, m.config, m.source, m.system_map),
            (KernelKind::Tuned, None, String::new(), None)
        );
    }

    #[test]
    fn the_tick_rate_is_read_from_the_config() {
        let config =
            "# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\nCONFIG_HZ_PERIODIC=n\n";
        assert_eq!(tick_hz(config), Some(250));
        assert_eq!(tick_hz("CONFIG_HZ_1000=y\nCONFIG_HZ=1000\n"), Some(1000));
        assert_eq!(tick_hz("CONFIG_HZ_250=y\n"), None);
        assert_eq!(tick_hz("CONFIG_HZ=0\n"), None);
    }

    #[test]
    fn an_option_is_built_in_only_as_y() {
        assert!(built_in(
            "CONFIG_HZ=250\nCONFIG_JUMP_LABEL=y\n",
            "CONFIG_JUMP_LABEL"
        ));
        assert!(!built_in(
            "# CONFIG_JUMP_LABEL is not set\n",
            "CONFIG_JUMP_LABEL"
        ));
        assert!(!built_in("CONFIG_VIRTIO=m\n", "CONFIG_VIRTIO"));
    }

    #[test]
    fn unmet_requirements_name_their_options() {
        let mut config = String::new();
        for r in REQUIRED {
            config.push_str(&format!("{}=m\n", r.any_of[0]));
        }
        assert!(unmet(&config).is_empty());
        let without = config
            .replace("CONFIG_OVERLAY_FS=m\n", "# CONFIG_OVERLAY_FS is not set\n")
            .replace("CONFIG_VIRTIO_VSOCKETS=m\n", "");
        let missing = unmet(&without);
        let names: Vec<_> = missing.iter().map(|r| r.any_of[0]).collect();
        assert_eq!(names, ["CONFIG_VIRTIO_VSOCKETS", "CONFIG_OVERLAY_FS"]);
        // Either transport will do.
        assert!(unmet(&format!(
            "{without}CONFIG_OVERLAY_FS=y\nCONFIG_VIRTIO_CONSOLE=y\n"
        ))
        .is_empty());
    }
}
