//! The QEMU command line, built by small pure functions (unit-tested, no IO).

use std::path::PathBuf;

use crate::accel::Accel;
use crate::shares::{Share, ShareFs};

mod cmdline;
pub use cmdline::{cmdline, GuestClock, Probing};

/// The virtual machine model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `-M microvm`: no firmware, no PCI, virtio-mmio devices; boots a PVH vmlinux directly.
    Microvm,
    /// `-M pc`: a classic PCI machine with SeaBIOS; boots a bzImage; virtio-pci devices.
    Pc,
}

impl Machine {
    pub fn parse(s: &str) -> Option<Machine> {
        match s {
            "microvm" => Some(Machine::Microvm),
            "pc" => Some(Machine::Pc),
            _ => None,
        }
    }

    /// The device name for a virtio device on this machine (`-device` for mmio, `-pci`).
    fn virtio(self, base: &str) -> String {
        match self {
            Machine::Microvm => format!("{base}-device"),
            Machine::Pc => format!("{base}-pci"),
        }
    }
}

/// How the host reaches the guest agent, as QEMU devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportDevice {
    /// The host kernel's vhost-vsock: the guest gets context id `cid`.
    VhostVsock { cid: u32 },
    /// A vhost-user-vsock backend listening on `socket` (needs shared guest memory).
    VhostUser { socket: PathBuf },
    /// A virtio-serial port named `name`, with QEMU listening on `chardev`.
    Serial { chardev: Chardev, name: String },
}

/// Where a QEMU socket chardev listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chardev {
    Unix(PathBuf),
    Tcp(u16),
}

/// The guest's uplink: QEMU's user-mode network (slirp), which works unprivileged on every
/// host OS and turns guest connections into connections of the QEMU process. The agent
/// hears which one as `berth.uplink`.
pub use berth_protocol::boot::Uplink;

/// Everything that decides the command line.
#[derive(Debug, Clone)]
pub struct Spec {
    pub machine: Machine,
    pub accel: Accel,
    pub cpus: u32,
    pub memory_mib: u64,
    /// What backs guest RAM (vhost-user devices need a shared memfd whatever this says).
    pub ram: Ram,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub cmdline: String,
    pub console_log: PathBuf,
    pub transport: TransportDevice,
    /// Raw disk images, attached as virtio-blk in order (`/dev/vda`, `/dev/vdb`, ...).
    pub disks: Vec<PathBuf>,
    /// The network device, if any.
    pub uplink: Uplink,
    /// QEMU's own forwards, (host loopback port, guest port), TCP.
    pub hostfwd: Vec<(u16, u16)>,
    /// Host folders shared over virtio-9p.
    pub shares: Vec<Share>,
    /// How the shares are served: virtio-9p by QEMU, or virtiofs by a virtiofsd per share
    /// listening on `<virtiofs_dir>/<tag>.sock`.
    pub share_fs: ShareFs,
    pub virtiofs_dir: PathBuf,
    /// QEMU's control socket (QMP), where berth asks where the vCPUs are when a guest
    /// never answers ([`crate::qmp`]).
    pub qmp: Option<PathBuf>,
    /// Under TCG, every vCPU on one host thread (`thread=single`) instead of a thread
    /// each: for a kernel that patches its own code as it runs ([`one_tcg_thread`]).
    pub one_tcg_thread: bool,
    /// Whether a microvm has its i8254 PIT ([`needs_pit`]).
    pub pit: bool,
}

/// Whether the guest needs a PIT: not a microvm's kernel under TCG that is told both its
/// TSC's frequency (`tsc_early_khz=`) and its APIC timer's rate (`lapic_timer_period=`,
/// [`cmdline`]), as it then keeps time with the APIC timer and the TSC alone and reads the
/// PIT only to measure the CPU's frequency, which under TCG took up to 50 ms of port reads
/// at every boot (`quick_pit_calibrate`); without a PIT that measurement gives up at once
/// and the TSC's given frequency stands. A kernel not told one of them measures it against
/// the PIT (a microvm has no HPET), and the pc machine's PIT is part of it.
pub fn needs_pit(machine: Machine, accel: Accel, clock: GuestClock) -> bool {
    !(cmdline::told_tsc_frequency(machine, accel, clock)
        && cmdline::told_apic_timer_rate(accel, clock))
}

/// Whether a VM must run its vCPUs on one TCG thread. A kernel with static keys
/// (`CONFIG_JUMP_LABEL`) rewrites its code while it runs, and under QEMU 7.2's
/// multi-threaded TCG another vCPU sometimes still ran the rewrite's temporary `int3`
/// after the kernel had finished it: `Oops: int3` in an allocation path and a panic, as
/// berth-init's first memory cgroup turned a key on (4 of 60 machine starts of Debian's
/// cloud 6.12 kernel; 0 of 60 with one thread). One vCPU has nobody to race, and KVM runs
/// the guest's code itself.
pub fn one_tcg_thread(accel: Accel, cpus: u32, kernel_patches_its_code: bool) -> bool {
    accel == Accel::Tcg && cpus > 1 && kernel_patches_its_code
}

/// What backs a VM's RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ram {
    /// QEMU's own anonymous memory: hosts without memfd (macOS, Windows).
    Anonymous,
    /// A shared memfd. vhost-user backends (vsock, virtiofsd) map guest memory through
    /// it; and on Linux it is the steadier choice for any VM: anonymous RAM, which QEMU
    /// asks to back with transparent huge pages, left one boot in four or five about
    /// twice as slow under TCG on this project's machines (medians of 25 floor boots:
    /// 562 ms anonymous, p75 683; 537 ms memfd, p75 544).
    SharedMemfd,
}

impl Ram {
    /// This host's choice: a shared memfd on Linux, anonymous memory elsewhere.
    pub fn for_host() -> Ram {
        match cfg!(target_os = "linux") {
            true => Ram::SharedMemfd,
            false => Ram::Anonymous,
        }
    }
}

/// The whole argument list (without the program name).
pub fn args(spec: &Spec) -> Vec<String> {
    let mut a = base_args();
    a.extend(machine_args(spec));
    a.extend(accel_args(spec.accel, spec.one_tcg_thread));
    a.extend(size_args(spec));
    a.extend(kernel_args(spec));
    a.extend(console_args(spec));
    a.extend(qmp_args(spec));
    a.extend(entropy_args(spec.machine));
    a.extend(disk_args(spec.machine, &spec.disks));
    a.extend(transport_args(spec.machine, &spec.transport));
    a.extend(uplink_args(spec.machine, spec.uplink, &spec.hostfwd));
    a.extend(match spec.share_fs {
        ShareFs::NineP => share_args(spec.machine, &spec.shares),
        ShareFs::Virtiofs => virtiofs_args(spec.machine, &spec.shares, &spec.virtiofs_dir),
    });
    a
}

/// The bare floor's argument list: `spec`'s machine, accelerator, CPUs, memory, kernel,
/// initramfs and command line, and no device at all (no console, entropy, transport,
/// disk, network or share). What a VM of that size costs before any device.
pub fn bare_args(spec: &Spec) -> Vec<String> {
    let mut a = base_args();
    a.extend(memory_args(
        &machine_with_options(spec),
        spec.ram,
        spec.memory_mib,
    ));
    a.extend(accel_args(spec.accel, spec.one_tcg_thread));
    a.extend(size_args(spec));
    a.extend(kernel_args(spec));
    a
}

fn size_args(spec: &Spec) -> [String; 4] {
    [
        "-smp".into(),
        spec.cpus.to_string(),
        "-m".into(),
        format!("{}M", spec.memory_mib),
    ]
}

fn machine_name(machine: Machine) -> &'static str {
    match machine {
        Machine::Microvm => "microvm",
        Machine::Pc => "pc",
    }
}

fn uplink_args(machine: Machine, uplink: Uplink, hostfwd: &[(u16, u16)]) -> Vec<String> {
    let restrict = match uplink {
        Uplink::None => return Vec::new(),
        Uplink::Restricted => "on",
        Uplink::Open => "off",
    };
    let forwards: String = hostfwd
        .iter()
        .map(|(h, g)| format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"))
        .collect();
    vec![
        "-netdev".into(),
        format!("user,id=uplink,restrict={restrict}{forwards}"),
        "-device".into(),
        format!("{},netdev=uplink", machine.virtio("virtio-net")),
    ]
}

/// One vhost-user-fs device per shared folder, its virtiofsd at `<dir>/<tag>.sock`.
fn virtiofs_args(machine: Machine, shares: &[Share], dir: &std::path::Path) -> Vec<String> {
    shares
        .iter()
        .flat_map(|s| {
            [
                "-chardev".to_string(),
                format!(
                    "socket,id=vfs-{0},path={1}",
                    s.tag,
                    qemu_option_value(&virtiofs_socket(dir, &s.tag).to_string_lossy())
                ),
                "-device".to_string(),
                format!(
                    "{},chardev=vfs-{1},tag={1}",
                    machine.virtio("vhost-user-fs"),
                    s.tag
                ),
            ]
        })
        .collect()
}

/// Where the virtiofsd of the share tagged `tag` listens.
pub fn virtiofs_socket(dir: &std::path::Path, tag: &str) -> PathBuf {
    dir.join(format!("{tag}.sock"))
}

/// One virtio-9p device per shared folder. `security_model=none`: files are created as
/// the user running QEMU, and ownership changes the host refuses are ignored.
fn share_args(machine: Machine, shares: &[Share]) -> Vec<String> {
    shares
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            [
                "-fsdev".to_string(),
                format!(
                    "local,id=fs{i},path={},security_model=none",
                    qemu_option_value(&s.path.to_string_lossy())
                ),
                "-device".to_string(),
                format!(
                    "{},fsdev=fs{i},mount_tag={}",
                    machine.virtio("virtio-9p"),
                    s.tag
                ),
            ]
        })
        .collect()
}

/// QEMU's option syntax: a comma inside a value is written twice.
fn qemu_option_value(v: &str) -> String {
    v.replace(',', ",,")
}

fn base_args() -> Vec<String> {
    // -no-reboot: a guest reboot (how berth-init powers off) ends QEMU.
    [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]
    .map(String::from)
    .to_vec()
}

/// vhost-user backends (the vsock device, virtiofsd) map guest memory.
fn needs_shared_memory(spec: &Spec) -> bool {
    matches!(spec.transport, TransportDevice::VhostUser { .. })
        || (spec.share_fs == ShareFs::Virtiofs && !spec.shares.is_empty())
}

fn machine_args(spec: &Spec) -> Vec<String> {
    // vhost-user backends map guest memory: it must be a shareable memfd.
    let ram = match needs_shared_memory(spec) {
        true => Ram::SharedMemfd,
        false => spec.ram,
    };
    memory_args(&machine_with_options(spec), ram, spec.memory_mib)
}

/// The `-M` machine type, with `pit=off` for a microvm that needs no PIT.
fn machine_with_options(spec: &Spec) -> String {
    match (spec.machine, spec.pit) {
        (Machine::Microvm, false) => format!("{},pit=off", machine_name(spec.machine)),
        _ => machine_name(spec.machine).to_string(),
    }
}

/// `-M` with the machine (and its options) and RAM backend, and the backend's object when
/// it has one.
fn memory_args(name: &str, ram: Ram, memory_mib: u64) -> Vec<String> {
    match ram {
        Ram::Anonymous => vec!["-M".into(), name.into()],
        Ram::SharedMemfd => vec![
            "-M".into(),
            format!("{name},memory-backend=mem0"),
            "-object".into(),
            format!("memory-backend-memfd,id=mem0,size={memory_mib}M,share=on"),
        ],
    }
}

fn accel_args(accel: Accel, one_tcg_thread: bool) -> Vec<String> {
    let name = match (accel, one_tcg_thread) {
        (Accel::Tcg, true) => "tcg,thread=single".to_string(),
        _ => accel.qemu_name().to_string(),
    };
    let mut a = vec!["-accel".to_string(), name];
    match accel {
        Accel::Kvm => a.extend(["-cpu".to_string(), "host".to_string()]),
        // TCG's default model with ARAT, the local APIC timer that keeps running in idle.
        // Without it the kernel needs a broadcast timer (microvm has none) before it
        // leaves the periodic tick: every idle vCPU woke 250 times a second, and timers
        // stayed at the tick's 4 ms resolution.
        Accel::Tcg => a.extend(["-cpu".to_string(), "qemu64,+arat".to_string()]),
        Accel::Hvf | Accel::Whpx => {}
    }
    a
}

fn disk_args(machine: Machine, disks: &[PathBuf]) -> Vec<String> {
    disks
        .iter()
        .enumerate()
        .flat_map(|(i, path)| {
            [
                "-drive".to_string(),
                format!("file={},if=none,id=disk{i},format=raw", path.display()),
                "-device".to_string(),
                format!("{},drive=disk{i}", machine.virtio("virtio-blk")),
            ]
        })
        .collect()
}

fn kernel_args(spec: &Spec) -> Vec<String> {
    vec![
        "-kernel".into(),
        spec.kernel.display().to_string(),
        "-initrd".into(),
        spec.initramfs.display().to_string(),
        "-append".into(),
        spec.cmdline.clone(),
    ]
}

/// A virtio RNG seeds the guest's CRNG at once: without it, `getrandom(2)` in the agent
/// (hash maps, the multiplexer) can block for a long time in a freshly booted TCG guest.
fn entropy_args(machine: Machine) -> Vec<String> {
    vec!["-device".into(), machine.virtio("virtio-rng")]
}

fn console_args(spec: &Spec) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!("file,id=console,path={}", spec.console_log.display()),
        "-serial".into(),
        "chardev:console".into(),
    ]
}

/// A listening QMP socket that QEMU does not wait on: nothing connects unless a guest
/// fails to answer.
fn qmp_args(spec: &Spec) -> Vec<String> {
    match &spec.qmp {
        Some(path) => vec![
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", path.display()),
        ],
        None => Vec::new(),
    }
}

fn transport_args(machine: Machine, t: &TransportDevice) -> Vec<String> {
    match t {
        TransportDevice::VhostVsock { cid } => {
            vec![
                "-device".into(),
                format!("{},guest-cid={cid}", machine.virtio("vhost-vsock")),
            ]
        }
        TransportDevice::VhostUser { socket } => vec![
            "-chardev".into(),
            format!("socket,id=vsock,path={}", socket.display()),
            "-device".into(),
            format!("{},chardev=vsock", machine.virtio("vhost-user-vsock")),
        ],
        TransportDevice::Serial { chardev, name } => {
            let listen = match chardev {
                Chardev::Unix(path) => format!("path={}", path.display()),
                Chardev::Tcp(port) => format!("host=127.0.0.1,port={port}"),
            };
            vec![
                "-device".into(),
                machine.virtio("virtio-serial"),
                "-chardev".into(),
                format!("socket,id=agent,{listen},server=on,wait=off"),
                "-device".into(),
                format!("virtserialport,chardev=agent,name={name}"),
            ]
        }
    }
}

/// Quotes a command line for logging, so it can be pasted into a shell.
pub fn shell_line(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@".contains(c))
            {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(machine: Machine, transport: TransportDevice) -> Spec {
        Spec {
            machine,
            accel: Accel::Tcg,
            cpus: 2,
            memory_mib: 512,
            ram: Ram::Anonymous,
            kernel: "/k/vmlinux".into(),
            initramfs: "/k/initramfs.cpio".into(),
            cmdline: "console=ttyS0".into(),
            console_log: "/run/x/console.log".into(),
            transport,
            disks: vec!["/d/layers.img".into()],
            uplink: Uplink::None,
            hostfwd: Vec::new(),
            shares: vec![],
            share_fs: ShareFs::NineP,
            virtiofs_dir: "/run/x".into(),
            qmp: None,
            one_tcg_thread: false,
            pit: true,
        }
    }

    fn joined(s: &Spec) -> String {
        args(s).join(" ")
    }

    #[test]
    fn microvm_with_vhost_user_shares_memory() {
        let s = spec(
            Machine::Microvm,
            TransportDevice::VhostUser {
                socket: "/run/x/vhu.sock".into(),
            },
        );
        let line = joined(&s);
        assert!(line.contains("-M microvm,memory-backend=mem0"), "{line}");
        assert!(line.contains("-object memory-backend-memfd,id=mem0,size=512M,share=on"));
        assert!(line.contains("-device vhost-user-vsock-device,chardev=vsock"));
        assert!(line.contains("-smp 2 -m 512M"));
        assert!(line.contains("-no-reboot"));
        assert!(line.contains("-device virtio-rng-device"));
        assert!(line.contains("-drive file=/d/layers.img,if=none,id=disk0,format=raw -device virtio-blk-device,drive=disk0"));
    }

    #[test]
    fn the_bare_floor_has_no_device_at_all() {
        let mut s = spec(
            Machine::Microvm,
            TransportDevice::VhostUser {
                socket: "/run/x/vhu.sock".into(),
            },
        );
        s.uplink = Uplink::Restricted;
        let bare = bare_args(&s);
        let line = bare.join(" ");
        assert!(
            line.contains("-M microvm -accel tcg -cpu qemu64,+arat -smp 2 -m 512M"),
            "{line}"
        );
        assert!(
            line.contains("-kernel /k/vmlinux -initrd /k/initramfs.cpio"),
            "{line}"
        );
        for device in [
            "-device", "-chardev", "-serial", "-drive", "-netdev", "-object",
        ] {
            assert!(!bare.iter().any(|a| a == device), "{device} in {line}");
        }
        // The same base flags as a full VM: only the devices differ.
        assert!(args(&s).starts_with(&bare[..5]), "{line}");
    }

    #[test]
    fn a_kernel_that_patches_its_code_gets_one_tcg_thread_for_several_vcpus() {
        assert!(one_tcg_thread(Accel::Tcg, 2, true));
        assert!(!one_tcg_thread(Accel::Tcg, 1, true));
        assert!(!one_tcg_thread(Accel::Tcg, 2, false));
        assert!(!one_tcg_thread(Accel::Kvm, 2, true));
        let mut s = spec(Machine::Microvm, TransportDevice::VhostVsock { cid: 3 });
        assert!(joined(&s).contains("-accel tcg -cpu"), "{}", joined(&s));
        s.one_tcg_thread = true;
        assert!(
            joined(&s).contains("-accel tcg,thread=single -cpu"),
            "{}",
            joined(&s)
        );
        assert!(bare_args(&s).join(" ").contains("-accel tcg,thread=single"));
    }

    #[test]
    fn a_qmp_socket_listens_without_holding_qemu_up() {
        let mut s = spec(Machine::Microvm, TransportDevice::VhostVsock { cid: 3 });
        assert!(!joined(&s).contains("-qmp"));
        s.qmp = Some("/run/x/qmp.sock".into());
        assert!(
            joined(&s).contains("-qmp unix:/run/x/qmp.sock,server=on,wait=off"),
            "{}",
            joined(&s)
        );
        assert!(!bare_args(&s).iter().any(|a| a == "-qmp"));
    }

    #[test]
    fn pc_machine_uses_pci_devices() {
        let s = spec(
            Machine::Pc,
            TransportDevice::Serial {
                chardev: Chardev::Unix("/r/a.sock".into()),
                name: "berth.0".into(),
            },
        );
        let line = joined(&s);
        assert!(line.starts_with("-nodefaults"));
        assert!(line.contains("-M pc "));
        assert!(line.contains("-device virtio-serial-pci"));
        assert!(line.contains("socket,id=agent,path=/r/a.sock,server=on,wait=off"));
        assert!(line.contains("virtserialport,chardev=agent,name=berth.0"));
        assert!(!line.contains("memory-backend"));
        assert!(!line.contains("-netdev"));
    }

    #[test]
    fn uplinks_are_user_networks_restricted_or_not() {
        let mut s = spec(Machine::Microvm, TransportDevice::VhostVsock { cid: 3 });
        s.uplink = Uplink::Restricted;
        let line = joined(&s);
        assert!(
            line.contains(
                "-netdev user,id=uplink,restrict=on -device virtio-net-device,netdev=uplink"
            ),
            "{line}"
        );
        s.hostfwd = vec![(18080, 80)];
        assert!(joined(&s).contains("restrict=on,hostfwd=tcp:127.0.0.1:18080-:80 "));
        s.hostfwd.clear();
        s.uplink = Uplink::Open;
        s.machine = Machine::Pc;
        assert!(joined(&s)
            .contains("-netdev user,id=uplink,restrict=off -device virtio-net-pci,netdev=uplink"));
        assert_eq!(Uplink::parse("restricted"), Some(Uplink::Restricted));
        assert_eq!(Uplink::parse("wide"), None);
    }

    #[test]
    fn vhost_vsock_and_kvm() {
        let mut s = spec(Machine::Microvm, TransportDevice::VhostVsock { cid: 42 });
        s.accel = Accel::Kvm;
        let line = joined(&s);
        assert!(line.contains("-device vhost-vsock-device,guest-cid=42"));
        assert!(line.contains("-accel kvm -cpu host"));
    }

    #[test]
    fn a_microvm_whose_kernel_is_told_its_apic_timer_rate_has_no_pit() {
        let told = GuestClock {
            tsc_khz: Some(2_600_000),
            tick_hz: Some(250),
            takes_lapic_timer_period: true,
        };
        assert!(!needs_pit(Machine::Microvm, Accel::Tcg, told));
        // A kernel that measures its APIC timer or its TSC against the PIT (not told the
        // rate, no tick rate to give it, no TSC frequency known on this host), one under
        // KVM, and the pc machine have one.
        for (machine, accel, clock) in [
            (
                Machine::Microvm,
                Accel::Tcg,
                GuestClock {
                    takes_lapic_timer_period: false,
                    ..told
                },
            ),
            (
                Machine::Microvm,
                Accel::Tcg,
                GuestClock {
                    tick_hz: None,
                    ..told
                },
            ),
            (
                Machine::Microvm,
                Accel::Tcg,
                GuestClock {
                    tsc_khz: None,
                    ..told
                },
            ),
            (Machine::Microvm, Accel::Kvm, told),
            (Machine::Pc, Accel::Tcg, told),
        ] {
            assert!(
                needs_pit(machine, accel, clock),
                "{machine:?} {accel:?} {clock:?}"
            );
        }
        let mut s = spec(Machine::Microvm, TransportDevice::VhostVsock { cid: 3 });
        s.pit = false;
        assert!(
            joined(&s).contains("-M microvm,pit=off -accel"),
            "{}",
            joined(&s)
        );
        assert!(bare_args(&s)
            .join(" ")
            .contains("-M microvm,pit=off -accel"));
        s.ram = Ram::SharedMemfd;
        assert!(joined(&s).contains("-M microvm,pit=off,memory-backend=mem0"));
        // The pc machine's PIT is part of it.
        s.machine = Machine::Pc;
        assert!(!joined(&s).contains("pit=off"), "{}", joined(&s));
        s.machine = Machine::Microvm;
        s.pit = true;
        assert!(!joined(&s).contains("pit=off"), "{}", joined(&s));
    }

    #[test]
    fn shares_are_9p_devices() {
        let mut s = spec(Machine::Microvm, TransportDevice::VhostVsock { cid: 3 });
        s.shares = vec![
            Share {
                tag: "berth0".into(),
                path: "/home/ann".into(),
            },
            Share {
                tag: "berth1".into(),
                path: "/tmp/a,b".into(),
            },
        ];
        let line = joined(&s);
        assert!(line.contains(
            "-fsdev local,id=fs0,path=/home/ann,security_model=none -device virtio-9p-device,fsdev=fs0,mount_tag=berth0"
        ), "{line}");
        assert!(line.contains("-fsdev local,id=fs1,path=/tmp/a,,b,security_model=none"));
        s.machine = Machine::Pc;
        assert!(joined(&s).contains("-device virtio-9p-pci,fsdev=fs1,mount_tag=berth1"));
        assert!(!joined(&s).contains("memory-backend"));
        s.machine = Machine::Microvm;
        s.share_fs = ShareFs::Virtiofs;
        let line = joined(&s);
        assert!(line.contains(
            "-chardev socket,id=vfs-berth0,path=/run/x/berth0.sock -device vhost-user-fs-device,chardev=vfs-berth0,tag=berth0"
        ), "{line}");
        assert!(!line.contains("-fsdev"));
        assert!(
            line.contains("-M microvm,memory-backend=mem0"),
            "virtiofsd maps guest memory"
        );
    }

    #[test]
    fn ram_is_a_shared_memfd_when_asked_even_without_vhost_user() {
        let serial = TransportDevice::Serial {
            chardev: Chardev::Unix("/r/a.sock".into()),
            name: "berth.0".into(),
        };
        let mut s = spec(Machine::Microvm, serial);
        assert!(!joined(&s).contains("memory-backend"));
        s.ram = Ram::SharedMemfd;
        let memfd = "-M microvm,memory-backend=mem0 -object memory-backend-memfd,id=mem0,size=512M,share=on";
        assert!(joined(&s).contains(memfd), "{}", joined(&s));
        // The bare floor's RAM is the same as the VMs it is compared with.
        assert!(bare_args(&s).join(" ").contains(memfd));
        s.ram = Ram::Anonymous;
        assert!(bare_args(&s).join(" ").contains("-M microvm -accel"));
    }

    #[test]
    fn under_tcg_the_guest_keeps_its_tsc_and_a_tickless_idle() {
        let p = Vec::new();
        for machine in [Machine::Microvm, Machine::Pc] {
            assert!(cmdline(
                machine,
                Accel::Tcg,
                GuestClock::default(),
                Probing::AsBuilt,
                &p
            )
            .contains(" tsc=reliable"));
            let line = joined(&spec(machine, TransportDevice::VhostVsock { cid: 3 }));
            assert!(line.contains("-accel tcg -cpu qemu64,+arat "), "{line}");
        }
        assert!(!cmdline(
            Machine::Microvm,
            Accel::Kvm,
            GuestClock::default(),
            Probing::AsBuilt,
            &p
        )
        .contains("tsc=reliable"));
    }

    #[test]
    fn shell_line_quotes_what_needs_it() {
        let line = shell_line("qemu", &["-append".into(), "a b".into(), "it's".into()]);
        assert_eq!(line, r"qemu -append 'a b' 'it'\''s'");
    }
}
