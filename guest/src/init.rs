//! PID 1 duties: mount the system, load modules, start the agent, power off at the end.

use std::path::Path;
use std::time::Duration;

use crate::agent::Agent;
use crate::config::Config;
use crate::process::Reaper;
use crate::sys::{self, MountFlags};

/// Set in the environment of the re-executed init once the root is a tmpfs.
const ROOT_MOVED: &str = "BERTH_ROOT_MOVED";
/// Where the agent keeps layers and containers.
const STATE_DIR: &str = "/var/lib/berth";

/// Entry point of `berth-init`; returns only when not running as PID 1.
pub fn main() -> i32 {
    let is_init = sys::is_pid1();
    if is_init && std::env::var_os(ROOT_MOVED).is_none() {
        // Returns only on failure; then containers cannot pivot_root, the rest still works.
        let e = leave_initramfs();
        eprintln!("berth-init: staying on the initramfs: {e}");
    }
    let mount_errors = if is_init { mount_system() } else { Vec::new() };
    let cfg = Config::from_file(Path::new("/proc/cmdline")).unwrap_or_default();
    init_logging(cfg.debug);
    for e in mount_errors {
        tracing::error!("{e}");
    }
    std::panic::set_hook(Box::new(|info| tracing::error!("panic: {info}")));
    if is_init {
        if let Err(e) = sys::set_hostname(&cfg.hostname) {
            tracing::warn!("sethostname: {e}");
        }
        let cgroups = Path::new("/sys/fs/cgroup");
        let parent = Path::new(crate::container::CGROUP_PARENT);
        if let Err(e) = crate::container::cgroup::enable_controllers(cgroups, parent) {
            tracing::warn!("cgroup controllers for containers: {e}");
        }
        for e in crate::modules::load_all(
            Path::new(crate::modules::LIST),
            Path::new(crate::modules::DIR),
            &cfg,
        ) {
            tracing::error!("{e}");
        }
        // After the modules: on distro kernels virtio_blk is one.
        if let Some(disk) = &cfg.disk {
            match crate::disk::mount_state_disk(Path::new(disk), Path::new(STATE_DIR)) {
                Ok(()) => tracing::info!("layer cache on {disk}"),
                Err(e) => tracing::error!("layer cache disk {disk}: {e}; using memory"),
            }
        }
        crate::disk::clean_state(Path::new(STATE_DIR));
    }
    let shares = match is_init {
        true => crate::shares::Shares::mount_all(&cfg.shares, cfg.shares_virtiofs),
        false => crate::shares::Shares::default(),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(async {
            let reaper = Reaper::start()?;
            let net = match is_init {
                true => crate::net::Net::start(cfg.uplink).await,
                false => crate::net::Net::disabled(),
            };
            let agent = Agent {
                net,
                host_ports: cfg.host_ports.clone(),
                reaper,
                is_init,
                layers_dir: Path::new(STATE_DIR).join("layers"),
                containers_dir: Path::new(STATE_DIR).join("containers"),
                volumes_dir: Path::new(berth_protocol::VOLUMES_DIR).to_path_buf(),
                shares: std::sync::Arc::new(shares),
            };
            crate::transport::serve(&cfg, agent).await
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

/// The kernel unpacks the initramfs into "rootfs", which can never be pivoted away from, so
/// pivot_root(2) fails for every container. Like switch_root, copy the initramfs into a
/// tmpfs, delete the originals, make the tmpfs the root and re-exec ourselves from it.
/// Returns only on failure.
fn leave_initramfs() -> std::io::Error {
    const NEW_ROOT: &str = "/newroot";
    let step = || -> std::io::Result<()> {
        sys::mount_fs(
            "tmpfs",
            NEW_ROOT,
            "tmpfs",
            MountFlags::empty(),
            Some("mode=0755"),
        )?;
        for entry in std::fs::read_dir("/")? {
            let entry = entry?;
            if entry.file_name() == NEW_ROOT.trim_start_matches('/') {
                continue;
            }
            let from = entry.path();
            crate::copy::tree(&from, &Path::new(NEW_ROOT).join(entry.file_name()))?;
            if from.is_dir() && !from.is_symlink() {
                std::fs::remove_dir_all(&from)?;
            } else {
                std::fs::remove_file(&from)?;
            }
        }
        sys::move_root(NEW_ROOT)
    };
    if let Err(e) = step() {
        return e;
    }
    let argv = [c"/init".to_owned()];
    let env = [std::ffi::CString::new(format!("{ROOT_MOVED}=1")).unwrap_or_default()];
    sys::exec(c"/init", &argv, &env)
}

/// Ends every process, flushes the disks and powers off. Never returns.
pub fn power_off() -> ! {
    tracing::info!("powering off");
    // Let the multiplexer put the last replies on the wire.
    std::thread::sleep(Duration::from_millis(10));
    sys::kill_all(nix::sys::signal::Signal::SIGKILL);
    sys::sync();
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

fn init_logging(debug: bool) {
    let level = if debug { "debug" } else { "info" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "berth_guest={level},berth_mux={level}"
        )))
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}
