//! Signals sent to `berth` are forwarded to the process in the guest, as `docker run` does.

use tokio::sync::mpsc;

/// Receives the numbers of signals `berth` got.
pub struct Forwarder {
    rx: mpsc::UnboundedReceiver<i32>,
}

impl Forwarder {
    pub fn start() -> Forwarder {
        let (tx, rx) = mpsc::unbounded_channel();
        spawn_listeners(tx);
        Forwarder { rx }
    }

    pub async fn recv(&mut self) -> i32 {
        match self.rx.recv().await {
            Some(sig) => sig,
            None => std::future::pending().await,
        }
    }
}

#[cfg(unix)]
fn spawn_listeners(tx: mpsc::UnboundedSender<i32>) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, number) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
        (SignalKind::quit(), libc::SIGQUIT),
        (SignalKind::user_defined1(), libc::SIGUSR1),
        (SignalKind::user_defined2(), libc::SIGUSR2),
    ] {
        let tx = tx.clone();
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(number).is_err() {
                        break;
                    }
                }
            });
        }
    }
}

#[cfg(not(unix))]
fn spawn_listeners(tx: mpsc::UnboundedSender<i32>) {
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            // SIGINT's number on Linux, which is what the guest understands.
            if tx.send(2).is_err() {
                break;
            }
        }
    });
}
