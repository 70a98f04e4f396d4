//! Streams the host opened ahead of the request that will use them (stdio streams before
//! their `Exec`, layer streams before their `PutLayer`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use berth_mux::Stream;
use tokio::sync::Notify;

/// Streams waiting for their request, by key.
pub struct StreamRegistry<K> {
    streams: Mutex<HashMap<K, Stream>>,
    arrived: Notify,
}

impl<K> Default for StreamRegistry<K> {
    fn default() -> Self {
        StreamRegistry {
            streams: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
        }
    }
}

impl<K: Eq + Hash> StreamRegistry<K> {
    pub fn put(&self, key: K, stream: Stream) {
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, stream);
        self.arrived.notify_waiters();
    }

    /// Takes the stream for `key`, waiting up to `deadline` for it to arrive.
    pub async fn take(&self, key: &K, deadline: Duration) -> Option<Stream> {
        let wait = async {
            loop {
                let notified = self.arrived.notified();
                if let Some(s) = self
                    .streams
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(key)
                {
                    return s;
                }
                notified.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.ok()
    }
}
