//! A container's own network namespace (a bridge network's, or `none`'s), with `lo` up
//! and a netlink handle inside it, and the spare one made ahead of the next container.
//!
//! A namespace costs the kernel every protocol's per-namespace set-up: 7 ms on an idle
//! machine, measured with the guest's clock, beside the container's directories. So when
//! a container's namespace is deleted, the next one is made in the background, in the
//! idle time after an exit; the next container takes it. It belongs to no container until
//! taken, and nothing in it depends on which container takes it.
//!
//! Measured, and not done: making one at a machine's boot, beside the boot's own work (a
//! cold `berth run` 20 ms slower in one paired A/B of 30 rounds, 4 ms faster in the
//! other), and also making the next one as soon as one is taken, beside that container's
//! set-up (7 and 18 ms slower).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{links, NETNS_DIR};

/// A network namespace made for a container: where it is mounted, and a netlink handle
/// inside it.
pub(super) type Own = (PathBuf, rtnetlink::Handle);

/// The namespace kept ready for the next container.
#[derive(Default)]
pub(super) struct Spare {
    /// Held while the next one is made, so that a container that comes meanwhile waits
    /// for it rather than making another beside it.
    ready: tokio::sync::Mutex<Option<Own>>,
}

impl Spare {
    /// A namespace for container `id`: the spare when there is one (or once the one being
    /// made is done), else a new one. The next spare is then made in the background.
    pub(super) async fn take(&self, id: &str) -> Result<Own, String> {
        let spare = self.ready.lock().await.take();
        match spare {
            Some(own) => Ok(own),
            None => make(id).await,
        }
    }

    /// Makes the spare in the background, unless there is one. A failure is only logged:
    /// the next container makes its own, and says why if it cannot.
    pub(super) fn replenish(self: &Arc<Self>) {
        let spare = self.clone();
        tokio::spawn(async move {
            let mut ready = spare.ready.lock().await;
            if ready.is_none() {
                match make("spare").await {
                    Ok(own) => *ready = Some(own),
                    Err(e) => tracing::debug!("the spare network namespace: {e}"),
                }
            }
        });
    }
}

/// A new network namespace (kept at `NETNS_DIR/<name>-<n>`) with `lo` up, and a netlink
/// handle inside it. As Docker, any user may bind any port there
/// (`ip_unprivileged_port_start=0`): the namespace is one container's alone. A thread of
/// its own makes it, sets it up and opens the netlink socket there, off the runtime's
/// workers. Each has a path of its own: a restarting container takes its new one (before
/// the lock) while its last one may still be deleted (under the lock, after its exit was
/// reported).
async fn make(name: &str) -> Result<Own, String> {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let n = MADE.fetch_add(1, Ordering::Relaxed);
    let path = PathBuf::from(NETNS_DIR).join(format!("{name}-{n}"));
    let rt = tokio::runtime::Handle::current();
    let at = path.clone();
    let inside = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(NETNS_DIR).map_err(|e| format!("{NETNS_DIR}: {e}"))?;
        crate::sys::create_netns(&at, move || {
            std::fs::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0")
                .map_err(|e| std::io::Error::other(format!("ip_unprivileged_port_start: {e}")))?;
            let _entered = rt.enter();
            links::connect()
        })
        .map_err(|e| format!("network namespace: {e}"))
    })
    .await
    .map_err(|e| format!("network namespace: {e}"))??;
    if let Err(e) = links::loopback_up(&inside).await {
        let _ = crate::sys::remove_netns(&path);
        return Err(format!("lo in the network namespace: {e}"));
    }
    Ok((path, inside))
}
