//! PID 1 duties: mount the system, load modules, start the agent, power off at the end.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::agent::{Agent, Ready};
use crate::config::Config;
use crate::process::Reaper;
use crate::sys::{self, MountFlags};

/// Where the agent keeps layers and containers.
const STATE_DIR: &str = "/var/lib/berth";
/// Where the boot's warm-up container keeps its overlay (a tmpfs).
const WARMUP_DIR: &str = "/run/berth";
/// How long the power-off waits for the killed processes to end.
const REAP_DEADLINE: Duration = Duration::from_millis(500);
/// How long the power-off's sync may take.
const SYNC_DEADLINE: Duration = Duration::from_secs(2);

/// Entry point of `berth-init`; returns only when not running as PID 1.
pub fn main() -> i32 {
    let is_init = sys::is_pid1();
    if is_init {
        if let Err(e) = leave_initramfs() {
            // Containers cannot pivot_root then; the rest still works.
            eprintln!("berth-init: staying on the initramfs: {e}");
        }
    }
    let mount_errors = if is_init { mount_system() } else { Vec::new() };
    let cfg = Config::from_file(Path::new("/proc/cmdline")).unwrap_or_default();
    init_logging(cfg.boot.debug);
    for e in mount_errors {
        tracing::error!("{e}");
    }
    std::panic::set_hook(Box::new(|info| tracing::error!("panic: {info}")));
    let (ready, shares) = match is_init {
        true => {
            // The modules first: on distro kernels virtio_blk and virtiofs are some. Then
            // a machine's state disk and the host's folders start to mount, beside the
            // rest of the set-up, the agent's start and the host's connection: on a cold
            // machine the first container waits for them.
            for e in crate::modules::load_all(
                Path::new(crate::modules::LIST),
                Path::new(crate::modules::DIR),
                &cfg,
            ) {
                tracing::error!("{e}");
            }
            mount_state(&cfg)
        }
        false => (Ready::now(), Default::default()),
    };
    if is_init {
        if let Err(e) = sys::set_hostname(cfg.hostname()) {
            tracing::warn!("sethostname: {e}");
        }
        // Only a machine (it has a state disk) runs containers; `vm run` leaves the
        // cgroup tree as the kernel made it.
        if cfg.boot.disk.is_some() {
            expedite_rcu();
            let cgroups = Path::new("/sys/fs/cgroup");
            let parent = Path::new(crate::container::CGROUP_PARENT);
            if let Err(e) = crate::container::cgroup::enable_controllers(cgroups, parent) {
                tracing::warn!("cgroup controllers for containers: {e}");
            }
        }
    }
    let runtime = runtime(cfg.boot.disk.is_some());
    let result = match runtime {
        Ok(rt) => rt.block_on(async {
            // The host's connection first: it comes up while the rest is set up.
            let dialing = crate::transport::Dialing::start(&cfg.boot.transport);
            tokio::task::yield_now().await;
            // Then the network, whose default bridge a cold machine's first container
            // waits for: its task takes a worker before the warm-up does.
            let net = match is_init {
                true => crate::net::Net::start(
                    cfg.boot.uplink,
                    cfg.boot.disk.is_some(),
                    cfg.boot.bridge.as_ref().map(|b| b.network()),
                ),
                false => crate::net::Net::disabled(),
            };
            let reaper = Reaper::start()?;
            // A machine (it has a state disk) runs containers: their path warms up on
            // the runtime's threads while the disk and the shares mount.
            if is_init && cfg.boot.disk.is_some() {
                let dir = Path::new(WARMUP_DIR).to_path_buf();
                tokio::spawn(crate::container::warmup::run(reaper.clone(), dir));
            }
            let agent = Agent {
                net,
                host_ports: cfg.boot.host_ports.clone(),
                reaper,
                is_init,
                layers_dir: Path::new(STATE_DIR).join("layers"),
                containers_dir: Path::new(STATE_DIR).join("containers"),
                volumes_dir: Path::new(berth_protocol::VOLUMES_DIR).to_path_buf(),
                shares,
                ready,
            };
            crate::transport::serve(dialing, agent).await
        }),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::error!("berth-init cannot serve the host: {e}");
    }
    if is_init {
        power_off();
    }
    1
}

/// Mounts the state disk (after the modules: on distro kernels virtio_blk is one) and
/// clears what the last boot left, and mounts the host's folders, each on a thread of its
/// own: the agent starts and answers the host's hello meanwhile, and the requests that
/// need them wait for the returned [`Ready`]. A disk that does not mount leaves the state
/// in memory; a share that does not mount is an error for the containers that bind it.
/// Without a disk or shares (`vm run`) all is in place at once.
fn mount_state(cfg: &Config) -> (Ready, Arc<OnceLock<crate::shares::Shares>>) {
    let shares = Arc::new(OnceLock::new());
    let (disk, boot_shares) = (cfg.boot.disk.clone(), cfg.boot.shares.clone());
    if disk.is_none() && boot_shares.is_empty() {
        crate::disk::clean_state(Path::new(STATE_DIR));
        let _ = shares.set(crate::shares::Shares::default());
        return (Ready::now(), shares);
    }
    let (disk_done, disk_ready) = Ready::later();
    std::thread::spawn(move || {
        if let Some(disk) = disk {
            match crate::disk::mount_state_disk(Path::new(&disk), Path::new(STATE_DIR)) {
                Ok(()) => tracing::debug!("layer cache on {disk}"),
                Err(e) => tracing::error!("layer cache disk {disk}: {e}; using memory"),
            }
        }
        crate::disk::clean_state(Path::new(STATE_DIR));
        let _ = disk_done.send(true);
    });
    let (shares_done, shares_ready) = Ready::later();
    let mounting = shares.clone();
    let virtiofs = cfg.boot.shares_virtiofs;
    std::thread::spawn(move || {
        let _ = mounting.set(crate::shares::Shares::mount_all(&boot_shares, virtiofs));
        let _ = shares_done.send(true);
    });
    (disk_ready.and(shares_ready), shares)
}

/// Makes the kernel's RCU grace periods expedited on a machine: every container start
/// and end waits for some (unmounting the old root after pivot_root, network namespaces
/// and their interfaces), and a normal grace period lasts several scheduler ticks. The
/// kernel expedites them itself while it boots and stops before it runs init. Measured:
/// a warm `berth run --rm busybox true` took 71 instead of 84 ms (medians of 24,
/// alternating). The cost, an IPI to each vCPU per grace period, is nothing on a VM of a
/// few vCPUs. A `vm run` guest is left as the kernel under test made it.
fn expedite_rcu() {
    const KNOB: &str = "/sys/kernel/rcu_expedited";
    if let Err(e) = std::fs::write(KNOB, "1") {
        tracing::debug!("{KNOB}: {e}");
    }
}

/// The agent's runtime. A machine (it has a state disk) runs containers: two worker
/// threads, so that one container's set-up, a layer's unpacking or the boot's warm-up
/// never holds up the host's other requests. A VM that runs one command (`vm run`, the
/// matrix) does nothing but relay that command's streams: one thread. Under TCG every
/// wake-up of another thread is a context switch of slow guest code, and on the usual one
/// vCPU the threads cannot run at once anyway: `vm run --transport serial -- true` took
/// 615 instead of 634 ms (medians of 21, alternating guest assets, the floor at 519).
fn runtime(machine: bool) -> std::io::Result<tokio::runtime::Runtime> {
    match machine {
        true => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        false => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
}

/// The kernel unpacks the initramfs into "rootfs", the one mount with no parent, and
/// pivot_root(2) cannot leave a root like that: every container's pivot would fail. Bind
/// the root onto a directory of itself and move that bind over `/`: the root is then an
/// ordinary mount with a parent, which containers pivot away from. Nothing is copied and
/// PID 1 keeps running (copying the initramfs into a tmpfs and re-executing, as
/// switch_root does, cost about 65 ms of every boot under emulation).
fn leave_initramfs() -> std::io::Result<()> {
    const BIND: &str = "/.root";
    std::fs::create_dir_all(BIND)?;
    sys::bind_mount(Path::new("/"), Path::new(BIND), false)?;
    sys::move_root(BIND)?;
    // In the moved root's view, the old mount point is an empty directory again.
    std::fs::remove_dir(BIND)
}

/// Ends every process, flushes the disks and powers off. Never returns.
pub fn power_off() -> ! {
    tracing::info!("powering off");
    // Let the multiplexer put the last replies on the wire.
    std::thread::sleep(Duration::from_millis(10));
    sys::kill_all(nix::sys::signal::Signal::SIGKILL);
    sys::reap_all(REAP_DEADLINE);
    crate::disk::settle(Path::new(STATE_DIR));
    // The state disk is settled (read-only, so written out); the sync is for the shared
    // folders, and one whose host server ended never answers it (virtiofs syncs on the
    // host): the power-off does not wait for that.
    if crate::deadline::within(SYNC_DEADLINE, sys::sync).is_none() {
        tracing::warn!("the sync did not end within {SYNC_DEADLINE:?} (a shared folder whose host server ended?): powering off all the same");
    }
    let e = sys::power_off();
    tracing::error!("power off failed: {e}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The filesystems every guest needs. Returns the failures (logged once logging is up).
fn mount_system() -> Vec<String> {
    let nosuid_nodev = MountFlags::MS_NOSUID | MountFlags::MS_NODEV;
    let mounts: &[(&str, &str, &str, MountFlags, Option<&str>)] = &[
        (
            "proc",
            "/proc",
            "proc",
            nosuid_nodev | MountFlags::MS_NOEXEC,
            None,
        ),
        (
            "sysfs",
            "/sys",
            "sysfs",
            nosuid_nodev | MountFlags::MS_NOEXEC,
            None,
        ),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MountFlags::MS_NOSUID,
            Some("mode=0755"),
        ),
        (
            "devpts",
            "/dev/pts",
            "devpts",
            MountFlags::MS_NOSUID | MountFlags::MS_NOEXEC,
            Some("mode=0620,ptmxmode=0666,gid=5"),
        ),
        ("shm", "/dev/shm", "tmpfs", nosuid_nodev, Some("mode=1777")),
        ("run", "/run", "tmpfs", nosuid_nodev, Some("mode=0755")),
        ("tmp", "/tmp", "tmpfs", nosuid_nodev, Some("mode=1777")),
        (
            "cgroup2",
            "/sys/fs/cgroup",
            "cgroup2",
            nosuid_nodev | MountFlags::MS_NOEXEC,
            Some("nsdelegate"),
        ),
    ];
    let mut errors = Vec::new();
    for (source, target, fstype, flags, data) in mounts {
        if let Err(e) = sys::mount_fs(source, target, fstype, *flags, *data) {
            errors.push(e.to_string());
        }
    }
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, link);
    }
    errors
}

/// Logs to the console. A plain target filter, not `EnvFilter`: its parser is code that
/// every boot would pay to translate under emulation, for two fixed directives.
///
/// The console is an emulated UART, written a byte at a time with a trap into QEMU for
/// each: a line of 60 characters took about 3.5 ms of a `vm run`'s boot (guest clock,
/// marks in the kernel log). So, as with the kernel's own messages (`loglevel=4`), what
/// only says that all went well (the host's connection, the state disk, the shared
/// folders, the default bridge) is logged at debug level, printed with `berth.debug`;
/// warnings and errors are always printed.
fn init_logging(debug: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match debug {
        true => tracing::Level::DEBUG,
        false => tracing::Level::INFO,
    };
    let targets = tracing_subscriber::filter::Targets::new()
        .with_target("berth_guest", level)
        .with_target("berth_mux", level);
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(false);
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(targets)
        .try_init();
}
