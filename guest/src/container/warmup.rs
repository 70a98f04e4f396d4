//! A throwaway container at a machine's boot. Under emulation (TCG) code is slow the
//! first time it runs, while QEMU translates it, and a container's path runs code that
//! nothing else at boot does: the shim, namespaces, overlayfs, pivot_root, seccomp, an
//! exec in a new PID namespace. Measured with the guest's clock, the first container
//! after a boot spent about 150 ms from its shim's start to its exit, a later one about
//! 60 ms. So while the agent starts and the host sends its first requests, one
//! container runs `/bin/true` from the guest's own root and is cleaned up; the first
//! real container then finds its path translated (QEMU's translations are shared by
//! every vCPU).
//!
//! It runs at the lowest priority (nice 19), so the boot's own work and a first container
//! that comes while it runs go first.
//!
//! It is best effort: a failure is logged at debug level and changes nothing else.

use std::path::{Path, PathBuf};

use super::{state, ShimSpec};
use crate::process::Reaper;
use crate::spawn::Stdio;

/// Its id: not 64 hex digits, so no container's id can ever be it (`valid_id`).
pub const ID: &str = "berth-warmup";

/// Where it keeps its overlay under the state directory.
fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join(ID)
}

/// The warm-up container's spec: the guest's root as its only layer, in the guest's own
/// network namespace. A new one's set-up, and its deletion after the exit, ran beside the
/// first container's and held it up: a cold `berth run --rm busybox true` took 7 and 6.5
/// ms less in the guest's (paired medians of 50 rounds, both orders, won 30 of 50 each).
pub fn spec(state_dir: &Path) -> ShimSpec {
    ShimSpec {
        id: ID.into(),
        lowerdirs: vec![PathBuf::from("/")],
        dir: dir(state_dir),
        argv: vec!["/bin/true".into()],
        env: vec!["PATH=/bin".into()],
        cwd: None,
        hostname: ID.into(),
        user: None,
        resources: Default::default(),
        security: Default::default(),
        netns: super::NsEntry::Host,
        hosts: None,
        resolv_conf: None,
        mounts: Vec::new(),
        tmpfs: Vec::new(),
        read_only_rootfs: false,
        process: Default::default(),
        devpts: false,
        sharing: Default::default(),
        network_gate: false,
    }
}

/// Runs the warm-up container to its end and removes what it made.
pub async fn run(reaper: Reaper, state_dir: PathBuf) {
    let mut spec = spec(&state_dir);
    let _ = std::fs::remove_dir_all(&spec.dir);
    let ran = async {
        spec.create_dirs()?;
        spec.mount_devpts()?;
        spec.mount_shm()?;
        state::save_spec(&spec)?;
        let process = spec.process().map_err(std::io::Error::other)?;
        let (started, status) = reaper.launch(&process, Stdio::Null)?;
        // It runs beside the boot's own work and the first container, on every vCPU:
        // it takes what they leave. Its code is translated all the same. Measured: a
        // cold `berth run --rm busybox true` 8 to 13 ms sooner (paired medians of 40
        // rounds, alternating guest assets, both orders).
        if let Err(e) = crate::sys::lowest_priority(started.pid) {
            tracing::debug!("warm-up container's priority: {e}");
        }
        status
            .await
            .map_err(|_| std::io::Error::other("lost track of the warm-up container"))
    }
    .await;
    match ran {
        Ok(status) => tracing::debug!("warm-up container: {status:?}"),
        Err(e) => tracing::debug!("warm-up container: {e}"),
    }
    super::finish(&spec);
    let _ = std::fs::remove_dir_all(&spec.dir);
}
