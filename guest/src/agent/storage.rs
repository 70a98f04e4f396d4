//! The state disk and the host's shared folders, made ready beside the agent's first
//! exchanges with the host: a machine answers the daemon's hello, and starts making its
//! default bridge, while its disk and shares mount on another thread. Every request that
//! may touch them waits until they are mounted (see `control::needs_storage`).

use std::sync::OnceLock;

use tokio::sync::watch;

use crate::shares::Shares;

pub struct Storage {
    shares: OnceLock<Shares>,
    ready: watch::Sender<bool>,
}

impl Storage {
    /// Storage still being mounted: [`Storage::wait`] waits for [`Storage::mounted`].
    pub fn mounting() -> Storage {
        Storage {
            shares: OnceLock::new(),
            ready: watch::Sender::new(false),
        }
    }

    /// Storage ready from the start, with these shares.
    pub fn ready(shares: Shares) -> Storage {
        let storage = Storage::mounting();
        storage.mounted(shares);
        storage
    }

    /// The disk is mounted (or its failure logged, the cache then in memory) and the
    /// shares are mounted, each failed one with its reason.
    pub fn mounted(&self, shares: Shares) {
        let _ = self.shares.set(shares);
        self.ready.send_replace(true);
    }

    /// Resolves once [`Storage::mounted`] has been called.
    pub async fn wait(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
    }

    /// The shares, once mounted.
    pub fn shares(&self) -> Result<&Shares, String> {
        self.shares
            .get()
            .ok_or_else(|| "the host's shared folders are not mounted yet".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiting_ends_when_the_storage_is_mounted() {
        let storage = Arc::new(Storage::mounting());
        assert!(storage.shares().is_err(), "no shares before the mount");
        let waiting = tokio::spawn({
            let storage = storage.clone();
            async move { storage.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the wait ended before the mount");
        storage.mounted(Shares::default());
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the wait ends once mounted")
            .unwrap();
        assert_eq!(storage.shares().unwrap(), &Shares::default());
        // Later waiters do not wait.
        tokio::time::timeout(Duration::from_secs(5), storage.wait())
            .await
            .expect("a wait after the mount ends at once");
    }
}
