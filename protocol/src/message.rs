//! The typed messages. Each variant documents when it is valid.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The first frame on every stream the host opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stream", rename_all = "snake_case")]
pub enum StreamOpen {
    /// Control messages follow: [`HostMessage`] from the host, [`GuestMessage`] back.
    Control,
    /// Raw bytes of one standard stream of the process `exec_id`. The host opens these
    /// *before* it sends the [`HostMessage::Exec`] that names them.
    Stdio { exec_id: u64, fd: StdioFd },
    /// The bytes of one image layer blob (tar, usually gzip-compressed), for the
    /// [`HostMessage::PutLayer`] naming `digest`; opened before that message.
    Layer { digest: String },
    /// A published port's flow (`docker run -p`): the agent connects to `addr` (an
    /// `IP:PORT` inside the guest) and copies bytes both ways until either side closes.
    /// For UDP each datagram travels as a 2-byte big-endian length and its bytes.
    Connect { addr: String, proto: PortProto },
    /// Opened by the guest: a container connected to the forward of the host's loopback
    /// port `port` (`berth machine start --forward-host-port`). The host connects to
    /// `127.0.0.1:port`, only when that port is one the machine forwards.
    HostPort { port: u16 },
}

/// The transport protocol of a published or forwarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortProto {
    Tcp,
    Udp,
}

impl PortProto {
    pub fn as_str(self) -> &'static str {
        match self {
            PortProto::Tcp => "tcp",
            PortProto::Udp => "udp",
        }
    }
}

/// Which standard stream a [`StreamOpen::Stdio`] stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdioFd {
    Stdin,
    Stdout,
    Stderr,
}

/// Messages from the host on a control stream.
#[allow(clippy::large_enum_variant)] // short-lived values; boxing would only add noise
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// Must be the first message on a control stream; answered by `HelloAck` or an `Error`
    /// of kind `VersionMismatch` (then the guest closes the stream).
    Hello { version: u32, client: String },
    /// Starts a process directly in the guest. Valid after `Hello`. The stdio streams it
    /// names (stdout and stderr always, stdin when `spec.stdin`) must already be open.
    /// Answered by `Started` then `Exited`, or by one `Error` carrying `exec_id`.
    Exec { exec_id: u64, spec: ExecSpec },
    /// Sends a signal to a process started by `Exec`; ignored once it has exited.
    Signal { exec_id: u64, signal: i32 },
    /// Stores an image layer in the guest's layer cache: the bytes come on the
    /// [`StreamOpen::Layer`] stream of the same digest, are verified against it and
    /// unpacked. Answered by `LayerStored` or `LayerFailed`. Storing a layer the cache
    /// already has succeeds at once.
    PutLayer { digest: String },
    /// Which layers the guest's cache holds; answered by `LayerList`.
    ListLayers,
    /// Resizes the terminal of a process started with a tty; ignored otherwise.
    Resize { exec_id: u64, size: TtySize },
    /// Liveness check; answered by `Pong` with the same nonce.
    Ping { nonce: u64 },
    /// Ends every process, syncs the disks and powers the VM off. Answered by `PoweringOff`.
    PowerOff,
    /// An operation on a running container (started by an `Exec` with a `container`).
    /// Answered by one `ContainerReply` with the same `request_id`.
    Container {
        request_id: u64,
        /// The container id (64 hex digits).
        id: String,
        op: ContainerOp,
    },
    /// Deletes the data of named volume `name` in the guest (`VOLUMES_DIR/<name>`); a
    /// volume without data succeeds too. Answered by one `VolumeRemoved`.
    RemoveVolume { request_id: u64, name: String },
    /// Deletes the files the guest keeps for containers that are not running (their
    /// overlay upper directories: a stopped container keeps its changes until it is
    /// removed). A running container's files are never deleted. Answered by one
    /// `ContainerFilesRemoved`.
    RemoveContainerFiles {
        request_id: u64,
        which: ContainerSet,
    },
    /// How much disk the guest's container files (each container's writable layer) and
    /// volumes use (`docker system df`, what a prune frees). Answered by one `DiskUsage`.
    DiskUsage { request_id: u64 },
    /// Makes a bridge network's bridge, rules and DNS server before any container needs
    /// them (the daemon sends it for the machine's default network as it comes up, so
    /// the first container after a boot does not wait for them); a bridge that exists
    /// already is left as it is. Answered by one `NetworkPrepared`.
    PrepareNetwork {
        request_id: u64,
        network: BridgeNetwork,
    },
    /// The host's server of shared folder `tag` (its virtiofsd) has ended, so requests to
    /// that folder would wait forever: the guest refuses to bind anything in it from now
    /// on, saying `why`. Answered by one `ShareClosed`.
    CloseShare {
        request_id: u64,
        tag: String,
        why: String,
    },
}

/// Which containers a [`HostMessage::RemoveContainerFiles`] means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerSet {
    /// These ids (`docker rm`).
    These(Vec<String>),
    /// Every container but these (the daemon's records, when it comes up: files of
    /// containers it no longer knows are left-overs).
    AllBut(Vec<String>),
}

/// What [`HostMessage::Container`] asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerOp {
    /// Sets the cgroup limits of a running container (`docker update`); `Done` once written.
    Update(Resources),
    /// Freezes every process of the container (cgroup v2 freezer); `Done` once frozen.
    Freeze,
    /// Thaws a frozen container; `Done` once running again.
    Thaw,
    /// Reads the container's cgroup counters; answered with `Stats`.
    Stats,
    /// Lists the container's processes; answered with `Top`.
    Top,
    /// Puts a running container on one more bridge network (`docker network connect`):
    /// a new interface (`eth1`, ...) with the attachment's address; the default route is
    /// its own only when the container had no network. `Done` once it is up.
    Connect(Attachment),
    /// Takes a running container off the network with this id (`docker network
    /// disconnect`): its interface goes, and the default route moves to the next network
    /// it is on. `Done` once it is gone.
    Disconnect { network_id: String },
}

/// The result in a [`GuestMessage::ContainerReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ContainerResult {
    Done,
    Stats(CgroupStats),
    Top {
        processes: Vec<ProcessInfo>,
    },
    /// The operation failed (unknown container, cgroup error, ...).
    Failed {
        message: String,
    },
}

/// A container's cgroup v2 counters, plus the guest-wide figures Docker's stats need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupStats {
    /// `cpu.stat` usage_usec, in nanoseconds.
    pub cpu_total_ns: u64,
    /// `cpu.stat` user_usec, in nanoseconds.
    pub cpu_user_ns: u64,
    /// `cpu.stat` system_usec, in nanoseconds.
    pub cpu_system_ns: u64,
    /// All CPU time of the guest (from `/proc/stat`), in nanoseconds.
    pub system_cpu_ns: u64,
    /// CPUs online in the guest.
    pub online_cpus: u32,
    /// `memory.current`, bytes.
    pub memory_usage: u64,
    /// `memory.max`, bytes; the guest's total memory when unlimited.
    pub memory_limit: u64,
    /// `memory.stat`, `inactive_file` (Docker subtracts it from usage).
    pub memory_inactive_file: u64,
    /// `pids.current`.
    pub pids_current: u64,
    /// `pids.max`; `None` when unlimited.
    pub pids_limit: Option<u64>,
    /// `cpu.stat` nr_periods, nr_throttled and throttled_usec (in nanoseconds).
    #[serde(default)]
    pub cpu_periods: u64,
    #[serde(default)]
    pub cpu_throttled_periods: u64,
    #[serde(default)]
    pub cpu_throttled_ns: u64,
    /// `io.stat`, per device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io: Vec<IoStat>,
    /// The container's network interfaces (`lo` left out), from its namespace's
    /// `/proc/net/dev`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<InterfaceStat>,
}

/// One device's line of `io.stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoStat {
    pub major: u64,
    pub minor: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// One interface's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStat {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// One process of a container, as `ps -ef` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The pid in the guest.
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// Start time, seconds since the guest booted.
    pub start_secs: u64,
    /// CPU time used, seconds.
    pub cpu_secs: u64,
    /// The command line (or `[comm]` when it has none).
    pub cmd: String,
}

/// What to run for [`HostMessage::Exec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// Program and arguments; the program is looked up in `PATH` when it has no `/`.
    pub argv: Vec<String>,
    /// `KEY=VALUE` entries added to the guest's default environment.
    pub env: Vec<String>,
    /// Working directory; `/` when absent.
    pub cwd: Option<String>,
    /// Whether a stdin stream is attached; without one the process reads `/dev/null`.
    pub stdin: bool,
    /// Run the process in a container instead of directly in the guest. Then `env` is
    /// the whole environment (the guest adds only what Docker adds) and `cwd` is inside
    /// the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,
    /// Run on a pseudo-terminal of this size: stdout and stderr are then one stream (the
    /// stdout stream; the stderr stream closes at once), as `docker run -t`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<TtySize>,
    /// Run the process inside the running container with this id (`docker exec`): in its
    /// namespaces and cgroup, with its security settings. Excludes `container`. Then `env`
    /// is added to the container's environment and `cwd` is inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinSpec>,
}

/// For [`ExecSpec::join`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinSpec {
    /// The running container's id.
    pub id: String,
    /// `user`, `uid`, `user:group` or `uid:gid`; the container's user when absent.
    pub user: Option<String>,
    /// Every capability and no seccomp filter (`docker exec --privileged`).
    #[serde(default)]
    pub privileged: bool,
    /// Instead of `argv`, the exec shim does this itself inside the container's mounts,
    /// as root (`docker cp`); `argv` is then only its name for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<Builtin>,
    /// The container as the host would start it (its network aside), for a `builtin` on a
    /// container that is not running: the shim lays out its files from this (its layers
    /// must be in the cache; its upper directory is the one kept from earlier runs, or a
    /// new empty one for a container never started) instead of joining it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Box<ContainerSpec>>,
}

/// File work the exec shim does inside a running container. Exit code 0 on success,
/// [`Builtin::NOT_FOUND`] when the path does not exist, 1 otherwise (the reason on stderr).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Builtin {
    /// Prints the [`PathStat`] of `path` (not following a final symlink) as JSON on stdout.
    Stat { path: String },
    /// Writes a tar of `path` to stdout: a directory as `NAME/...`, anything else as `NAME`.
    ArchiveGet { path: String },
    /// Extracts the tar on stdin into the directory `path`, keeping modes; owners are
    /// the archive's with `copy_uid_gid` (`docker cp -a`), else root's.
    /// `no_overwrite_dir_non_dir`: a directory never replaces a non-directory, or the
    /// other way round (Docker's `noOverwriteDirNonDir`).
    ArchivePut {
        path: String,
        no_overwrite_dir_non_dir: bool,
        #[serde(default)]
        copy_uid_gid: bool,
    },
    /// Writes the container's changes (its overlay upper directory) to stdout as an image
    /// layer tar, whiteouts as `.wh.` files (`docker commit`).
    LayerTar,
    /// Prints the container's changes as a JSON list of [`Change`] (`docker diff`).
    Changes,
    /// Writes a tar of the container's root file system to stdout, without what is
    /// mounted on it (volumes, binds, /proc, /sys, /dev): `docker export`.
    Export,
}

/// One entry of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    /// Docker's kinds: 0 modified, 1 added, 2 deleted.
    pub kind: u8,
}

impl Builtin {
    pub const NOT_FOUND: i32 = 2;
}

/// What [`Builtin::Stat`] prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: u64,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    /// Modification time, Unix seconds and nanoseconds.
    pub mtime_secs: i64,
    pub mtime_nanos: u32,
    /// A symlink's target; empty otherwise.
    pub link_target: String,
    /// The owner's ids (a build's COPY keeps an existing directory's owner).
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

/// A terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

/// A container for [`ExecSpec::container`]: the layers must be in the cache already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The container id (64 hex digits, as Docker).
    pub id: String,
    /// Layer digests, base layer first.
    pub layers: Vec<String>,
    /// The container's hostname.
    pub hostname: String,
    /// `user`, `uid`, `user:group` or `uid:gid`; root when absent.
    pub user: Option<String>,
    /// cgroup v2 limits.
    #[serde(default)]
    pub resources: Resources,
    /// Privileges beyond (or below) Docker's defaults.
    #[serde(default)]
    pub security: Security,
    /// Host folders and named volumes, bind-mounted in this order.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Fresh tmpfs mounts (`--tmpfs`), mounted after `mounts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<Tmpfs>,
    /// `--read-only`: the root file system is read-only (mounts keep their own modes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_rootfs: bool,
    /// The container's network; `None` is Docker's `none` (only `lo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    /// How the container's processes run: limits, groups, init, kernel parameters.
    #[serde(default)]
    pub process: ProcessOptions,
    /// `--pid`, `--ipc`, `--uts`: which of its namespaces are its own.
    #[serde(default, skip_serializing_if = "Namespaces::is_default")]
    pub namespaces: Namespaces,
}

/// A container's PID, IPC and UTS namespaces (Docker's `PidMode`, `IpcMode`, `UTSMode`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    #[serde(default)]
    pub pid: NsMode,
    #[serde(default)]
    pub ipc: NsMode,
    /// `Private` or `Host` only, as Docker's.
    #[serde(default)]
    pub uts: NsMode,
}

impl Namespaces {
    pub fn is_default(&self) -> bool {
        *self == Namespaces::default()
    }
}

/// Whose namespace a container uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsMode {
    /// A new one of its own.
    #[default]
    Private,
    /// The machine's (the guest's own).
    Host,
    /// That of the running container with this id.
    Container(String),
    /// IPC only (`--ipc none`): a private namespace and no /dev/shm.
    None,
}

/// `--ulimit`, `--oom-score-adj`, `--group-add`, `--init`, `--shm-size`, `--sysctl` and
/// `--dns*`: options applied in the container as it is set up (and to `docker exec`
/// processes, as Docker applies them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessOptions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// Extra groups, by name (from the container's /etc/group) or number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// A small init is the container's PID 1: it reaps orphans and forwards signals.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// The size of /dev/shm in bytes; 64 MiB when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    /// Namespaced kernel parameters (`net.core.somaxconn`), written in the container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// resolv.conf: name servers (replacing the network's, or after berth's resolver on a
    /// user network), search domains and options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// `--device`: device nodes of the machine made in the container at setup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
}

/// One `--device PATH_ON_MACHINE[:PATH_IN_CONTAINER]`, with every access (`rwm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub path_on_host: String,
    pub path_in_container: String,
}

/// One `--ulimit NAME=SOFT[:HARD]`; -1 is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// How a container is networked (`docker run --network`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum NetworkSpec {
    /// The guest's own network stack.
    Host,
    /// The network namespace of the running container with this id.
    Container { id: String },
    /// A veth pair on each of one or more bridge networks: the first is `eth0` and
    /// carries the default route, the next `eth1`, and so on.
    Bridge { networks: Vec<Attachment> },
}

/// A container's place on a bridge network, decided by the host (which owns the
/// networks and their address allocation); the agent creates the bridge on first use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The network's id (64 hex digits) and name.
    pub network_id: String,
    pub network_name: String,
    /// The bridge's interface name in the guest (at most 15 bytes).
    pub bridge: String,
    /// The subnet's address and prefix length, e.g. `172.18.0.0` and 16.
    pub subnet: String,
    pub prefix: u8,
    /// The bridge's own address: the containers' default route and DNS server.
    pub gateway: String,
    /// The container's address in the subnet.
    pub address: String,
    /// Names other containers on the network resolve to `address` (name, aliases, short
    /// id); empty on Docker's default `bridge`, which has no name resolution.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// Extra `/etc/hosts` lines (`--add-host`): (name, address).
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `docker network create --internal`: the bridge reaches nothing beyond itself (no
    /// NAT to the uplink, nothing forwarded in or out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// The machine's default bridge: the guest keeps it (with its rules) when its last
    /// container leaves, as Docker keeps `docker0`, so a lone `run` does not make and
    /// delete it each time. Other bridges go with their last container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_bridge: bool,
}

/// A bridge network as the guest makes it: what every [`Attachment`] to it repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeNetwork {
    pub network_name: String,
    /// The bridge's interface name in the guest (at most 15 bytes).
    pub bridge: String,
    /// The subnet's prefix length, e.g. 16.
    pub prefix: u8,
    /// The bridge's own address.
    pub gateway: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_bridge: bool,
}

impl Attachment {
    /// The network this attachment is to.
    pub fn network(&self) -> BridgeNetwork {
        BridgeNetwork {
            network_name: self.network_name.clone(),
            bridge: self.bridge.clone(),
            prefix: self.prefix,
            gateway: self.gateway.clone(),
            internal: self.internal,
            keep_bridge: self.keep_bridge,
        }
    }
}

/// The MAC address of a container's interface on a bridge network, from its IPv4
/// address as Docker makes it (`02:42` and the four address bytes): the guest sets it, the
/// daemon shows it in inspect.
pub fn mac_for(address: std::net::Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x02, 0x42, a, b, c, d]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Where named volumes keep their data in the guest: `<VOLUMES_DIR>/<name>/_data`.
pub const VOLUMES_DIR: &str = "/var/lib/berth/volumes";

/// A tmpfs mount in a container (`--tmpfs /run:size=64m,mode=1777`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tmpfs {
    /// Absolute path inside the container.
    pub target: String,
    /// tmpfs's own options, checked by the host: `size=`, `mode=`, `uid=`, `gid=`,
    /// `nr_inodes=`, comma-separated.
    #[serde(default)]
    pub data: String,
    pub read_only: bool,
    /// Docker's defaults are noexec, nosuid and nodev; `exec`, `suid` and `dev` lift them.
    pub noexec: bool,
    pub nosuid: bool,
    pub nodev: bool,
}

/// A bind mount into a container (`-v`, `--mount`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: MountSource,
    /// Absolute path inside the container.
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    /// `nocopy`: an empty volume is not filled from the image's files at its target.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_copy: bool,
}

/// What a [`Mount`] mounts; the guest finds the path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountSource {
    /// A file or folder of the host, by its absolute (canonical) host path; it must lie in
    /// a folder the machine shares.
    Host { path: String },
    /// A named volume on the machine's disk (created when missing).
    Volume { name: String },
}

/// `--privileged`, `--cap-add`, `--cap-drop`, `--security-opt seccomp=unconfined`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// Every capability, no seccomp filter, no masked or read-only paths.
    pub privileged: bool,
    /// Capability names (`NET_ADMIN` or `CAP_NET_ADMIN`, `ALL`) added to the defaults.
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Capability names (or `ALL`) removed from the defaults.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// No seccomp filter (`--security-opt seccomp=unconfined`).
    #[serde(default)]
    pub seccomp_unconfined: bool,
    /// `--userns=private`: root in the container is an unprivileged id range on the host.
    #[serde(default)]
    pub userns_private: bool,
}

/// Container limits, as `docker run` takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// `--memory`: bytes.
    pub memory: Option<u64>,
    /// `--cpus` in millicpus (1500 = 1.5 CPUs).
    pub millicpus: Option<u64>,
    /// `--cpu-shares` (relative weight, Docker's scale: 1024 is the default).
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`, e.g. `0-1` or `0,2`.
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit`; zero or negative means unlimited, as Docker.
    pub pids_limit: Option<i64>,
    /// `--device-read-bps`: (device path in the guest, bytes per second).
    #[serde(default)]
    pub device_read_bps: Vec<(String, u64)>,
    /// `--device-write-bps`: (device path in the guest, bytes per second).
    #[serde(default)]
    pub device_write_bps: Vec<(String, u64)>,
}

/// Messages from the guest on a control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GuestMessage {
    /// Answer to `Hello`: the protocol version spoken and what the guest is.
    HelloAck {
        version: u32,
        agent: String,
        kernel_release: String,
    },
    /// The process of `exec_id` is running as `pid`.
    Started { exec_id: u64, pid: u32 },
    /// The process of `exec_id` has ended; every byte of its output has been sent.
    Exited {
        exec_id: u64,
        status: ExitStatus,
        /// The process's container was killed for exceeding its memory limit.
        #[serde(default)]
        oom_killed: bool,
    },
    /// A request failed. `exec_id` is set when the failed request was about a process.
    Error {
        exec_id: Option<u64>,
        kind: ErrorKind,
        message: String,
    },
    /// Answer to `PutLayer`: the layer is in the cache.
    LayerStored { digest: String },
    /// Answer to `PutLayer`: the layer could not be stored; nothing of it is in the cache.
    LayerFailed { digest: String, message: String },
    /// Answer to `ListLayers`: the digests of every cached layer.
    LayerList { digests: Vec<String> },
    /// Answer to `Ping`.
    Pong { nonce: u64 },
    /// Answer to `PowerOff`: the VM is going down.
    PoweringOff,
    /// Answer to `Container`.
    ContainerReply {
        request_id: u64,
        result: ContainerResult,
    },
    /// Answer to `RemoveVolume`: `error` says why the data could not be deleted.
    VolumeRemoved {
        request_id: u64,
        error: Option<String>,
    },
    /// Answer to `RemoveContainerFiles`: `error` says what could not be deleted.
    ContainerFilesRemoved {
        request_id: u64,
        error: Option<String>,
    },
    /// Answer to `DiskUsage`: bytes per container id (its writable layer) and per volume
    /// name, each file counted once (hard links included).
    DiskUsage {
        request_id: u64,
        containers: Vec<(String, u64)>,
        volumes: Vec<(String, u64)>,
    },
    /// Answer to `PrepareNetwork`: `error` says why the bridge could not be made.
    NetworkPrepared {
        request_id: u64,
        error: Option<String>,
    },
    /// Answer to `CloseShare`: `error` says why the share could not be closed.
    ShareClosed {
        request_id: u64,
        error: Option<String>,
    },
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// The exit code a shell (and Docker) reports: the code, or 128 + signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

/// Classes of failure, so the host can map them to Docker's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The command was not found (exit code 127).
    NotFound,
    /// The command exists but cannot be invoked (exit code 126).
    CannotInvoke,
    /// The request was malformed or not valid now.
    BadRequest,
    /// The peer speaks another protocol version.
    VersionMismatch,
    /// Anything else that went wrong in the guest.
    Internal,
    /// A layer the container names is not in the guest's layer cache: the host sends it
    /// and asks again.
    LayerMissing,
}

impl ErrorKind {
    /// Docker's exit code for a failure of this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::NotFound => 127,
            ErrorKind::CannotInvoke => 126,
            _ => 125,
        }
    }
}
