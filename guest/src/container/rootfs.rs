//! Inside the new namespaces: build the root filesystem, pivot into it, then become the
//! container's user and exec its command (`launch`).

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use super::ShimSpec;
use crate::sys::{self, MountFlags, NodeKind};

/// How long a container's command waits for its network (the agent's side of the gate
/// ends sooner: it opens it or closes it once the network is made or failed).
const GATE_DEADLINE: Duration = Duration::from_secs(60);

/// Device nodes of a container's /dev, as Docker: (name, major, minor).
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];
/// Docker's masked paths.
const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Docker's read-only paths.
const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Sets everything up and execs; returns (exit code, message) only on failure. With a
/// network `gate` ([`ShimSpec::network_gate`]) the command waits, once the root is in
/// place, until the agent says the container's network is ready.
pub fn enter_and_exec(
    spec: &ShimSpec,
    userns: Option<super::userns::ChildSide>,
    gate: Option<OwnedFd>,
) -> (i32, String) {
    if let Err(e) = build_and_pivot(spec) {
        return (125, format!("container setup failed: {e}"));
    }
    if let Some(gate) = gate {
        match sys::read_one_byte(&gate, GATE_DEADLINE) {
            Ok(true) => {}
            Ok(false) => return (125, "the container's network was not set up".into()),
            Err(e) => return (125, format!("waiting for the container's network: {e}")),
        }
    }
    if let Some(side) = userns {
        if let Err(e) = side.enter() {
            return (125, format!("user namespace: {e}"));
        }
    }
    let cwd = spec.cwd.as_deref().unwrap_or("/");
    let argv = match spec.process.init {
        true => super::reaper::init_argv(&spec.argv),
        false => spec.argv.clone(),
    };
    super::launch::become_and_exec(&super::launch::Process {
        argv: &argv,
        env: &spec.env,
        hostname: &spec.hostname,
        user: spec.user.as_deref(),
        cwd,
        create_cwd: true,
        security: &spec.security,
        options: &spec.process,
    })
}

fn build_and_pivot(spec: &ShimSpec) -> io::Result<()> {
    sys::unshare_mount_namespace()?;
    sys::make_mounts_private()?;
    if spec.security.userns_private {
        // The container's root owns its root directory (new files in /); image files
        // stay owned by host root and so read as nobody inside.
        let (base, upper) = (super::userns::HOST_BASE, spec.upper());
        std::os::unix::fs::chown(&upper, Some(base), Some(base))?;
    }
    let root = spec.rootfs();
    mount_overlay(spec)?;
    let at = |p: &str| root.join(p).display().to_string();
    let nosuid_nodev_noexec = MountFlags::MS_NOSUID | MountFlags::MS_NODEV | MountFlags::MS_NOEXEC;
    // sysfs and the cgroup are read-only, except in a privileged container (as Docker).
    let sys_flags = match spec.security.privileged {
        true => nosuid_nodev_noexec,
        false => nosuid_nodev_noexec | MountFlags::MS_RDONLY,
    };
    sys::mount_fs("proc", &at("proc"), "proc", nosuid_nodev_noexec, None)?;
    sys::mount_fs("sysfs", &at("sys"), "sysfs", sys_flags, None)?;
    // The container's own cgroup (the cgroup namespace makes it the root).
    sys::mount_fs("cgroup", &at("sys/fs/cgroup"), "cgroup2", sys_flags, None)?;
    sys::mount_fs(
        "tmpfs",
        &at("dev"),
        "tmpfs",
        MountFlags::MS_NOSUID,
        Some("mode=755,size=65536k"),
    )?;
    for (name, major, minor) in DEVICES {
        let node = root.join("dev").join(name);
        sys::make_node(&node, NodeKind::Char, 0o666, *major, *minor)?;
        // mknod's mode is cut by the umask; Docker's device nodes are 0666.
        std::fs::set_permissions(&node, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
    }
    match spec.devpts {
        true => {
            let pts = root.join("dev/pts");
            std::fs::create_dir_all(&pts)?;
            sys::bind_mount(&spec.pts(), &pts, false)?;
        }
        false => sys::mount_fs(
            "devpts",
            &at("dev/pts"),
            "devpts",
            MountFlags::MS_NOSUID | MountFlags::MS_NOEXEC,
            Some(super::DEVPTS_OPTIONS),
        )?,
    }
    let shm = match spec.process.shm_size {
        Some(bytes) => format!("mode=1777,size={bytes}"),
        None => "mode=1777,size=65536k".to_string(),
    };
    if let Some(shm) = &spec.sharing.shm_from {
        let target = root.join("dev/shm");
        std::fs::create_dir_all(&target)?;
        sys::bind_mount(shm, &target, false)?;
    } else if !spec.sharing.no_shm {
        sys::mount_fs(
            "shm",
            &at("dev/shm"),
            "tmpfs",
            nosuid_nodev_noexec,
            Some(&shm),
        )?;
    }
    sys::mount_fs(
        "mqueue",
        &at("dev/mqueue"),
        "mqueue",
        nosuid_nodev_noexec,
        None,
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, root.join("dev").join(link))?;
    }
    if spec.process.init {
        // berth-init itself, as the container's small init (`--init`).
        let init = root.join("dev/init");
        std::fs::write(&init, b"")?;
        // By its path: /proc/self/exe itself names the binary in the mount namespace it
        // was started in, which this one is a copy of (a bind from there is EINVAL).
        let exe = std::fs::read_link("/proc/self/exe")?;
        sys::bind_mount(&exe, &init, true)?;
    }
    if spec.security.privileged {
        // Docker gives a privileged container every device of its host.
        super::devices::add_machine_devices(Path::new("/dev"), &root.join("dev"))?;
    }
    for d in &spec.process.devices {
        super::devices::add_device(&root, d)?;
    }
    write_sysctls(&root, &spec.process.sysctls)?;
    write_etc(&root, spec)?;
    super::mounts::bind_all(&root, &spec.mounts)?;
    super::mounts::tmpfs_all(&root, &spec.tmpfs)?;
    if spec.read_only_rootfs {
        // The root's own mount only: /proc, /dev, binds and tmpfs mounts keep their modes.
        sys::remount_mount_read_only(&root)?;
    }
    std::env::set_current_dir(&root)?;
    sys::pivot_to_cwd()?;
    if !spec.security.privileged {
        for p in MASKED {
            sys::mask(p)?;
        }
        for p in READ_ONLY {
            if Path::new(p).exists() {
                sys::remount_read_only(p)?;
            }
        }
    }
    match spec.sharing.uts {
        // `--uts host`: the guest's hostname is the container's.
        super::NsEntry::Host => Ok(()),
        _ => sys::set_hostname(&spec.hostname).map_err(io::Error::from),
    }
}

/// The container's root (its layers under its upper directory) at `spec.rootfs()`.
fn mount_overlay(spec: &ShimSpec) -> io::Result<()> {
    let lower = spec
        .lowerdirs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let options = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        spec.upper().display(),
        spec.work().display()
    );
    sys::mount_fs(
        "overlay",
        &spec.rootfs().display().to_string(),
        "overlay",
        MountFlags::empty(),
        Some(&options),
    )
}

/// For file work on a container that is not running: a private mount namespace whose
/// root is the container's root with its volumes and binds, as a run would see them
/// (no /proc, /dev or tmpfs mounts: those hold nothing of the container's).
pub fn enter_files(spec: &ShimSpec) -> io::Result<()> {
    sys::unshare_mount_namespace()?;
    sys::make_mounts_private()?;
    mount_overlay(spec)?;
    let root = spec.rootfs();
    super::mounts::bind_all(&root, &spec.mounts)?;
    if spec.read_only_rootfs {
        sys::remount_mount_read_only(&root)?;
    }
    std::env::set_current_dir(&root)?;
    sys::pivot_to_cwd()
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf, as Docker provides them: the hosts
/// and resolver of the container's network when it has one.
/// `--sysctl`: written through the container's /proc (its namespaces' own values).
fn write_sysctls(
    root: &Path,
    sysctls: &std::collections::BTreeMap<String, String>,
) -> io::Result<()> {
    for (key, value) in sysctls {
        let path = root.join("proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value)
            .map_err(|e| io::Error::new(e.kind(), format!("sysctl {key}={value}: {e}")))?;
    }
    Ok(())
}

fn write_etc(root: &Path, spec: &ShimSpec) -> io::Result<()> {
    let etc = root.join("etc");
    std::fs::create_dir_all(&etc)?;
    let hostname = &spec.hostname;
    std::fs::write(etc.join("hostname"), format!("{hostname}\n"))?;
    let hosts = match &spec.hosts {
        Some(h) => h.clone(),
        None => crate::net::hosts_file(hostname, None, &[]),
    };
    std::fs::write(etc.join("hosts"), hosts)?;
    let resolv = etc.join("resolv.conf");
    match &spec.resolv_conf {
        Some(r) => std::fs::write(resolv, r)?,
        None if !resolv.exists() => std::fs::write(resolv, "")?,
        None => {}
    }
    Ok(())
}

/// Docker's environment: the image's and the user's, plus HOSTNAME, a default PATH and
/// HOME when they are missing.
pub fn final_env(env: &[String], hostname: &str, home: &str) -> Vec<String> {
    let has = |k: &str| {
        env.iter()
            .any(|e| e.split_once('=').map(|(n, _)| n) == Some(k))
    };
    let mut out = Vec::new();
    if !has("PATH") {
        out.push(DEFAULT_PATH.to_string());
    }
    out.push(format!("HOSTNAME={hostname}"));
    out.extend(env.iter().filter(|e| !e.starts_with("HOSTNAME=")).cloned());
    if !has("HOME") {
        out.push(format!("HOME={home}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_gets_docker_defaults() {
        let env = final_env(&["A=1".into()], "abc", "/root");
        assert_eq!(env, [DEFAULT_PATH, "HOSTNAME=abc", "A=1", "HOME=/root"]);
        let env = final_env(&["PATH=/x".into(), "HOME=/h".into()], "h", "/root");
        assert_eq!(env, ["HOSTNAME=h", "PATH=/x", "HOME=/h"]);
    }
}
