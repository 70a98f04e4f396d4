//! Stdio streams waiting for the `Exec` that will use them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use berth_mux::Stream;
use berth_protocol::StdioFd;
use tokio::sync::Notify;

/// Streams the host opened for processes not started yet, by (exec id, fd).
#[derive(Default)]
pub struct StdioRegistry {
    streams: Mutex<HashMap<(u64, StdioFd), Stream>>,
    arrived: Notify,
}

impl StdioRegistry {
    pub fn put(&self, exec_id: u64, fd: StdioFd, stream: Stream) {
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((exec_id, fd), stream);
        self.arrived.notify_waiters();
    }

    /// Takes the stream for (exec id, fd), waiting up to `deadline` for it to arrive.
    pub async fn take(&self, exec_id: u64, fd: StdioFd, deadline: Duration) -> Option<Stream> {
        let wait = async {
            loop {
                let notified = self.arrived.notified();
                if let Some(s) = self
                    .streams
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&(exec_id, fd))
                {
                    return s;
                }
                notified.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.ok()
    }
}
