//! Work that may never end (a call on a file system whose server is gone: a virtiofs
//! share whose virtiofsd ended answers nothing, and its waits cannot be interrupted), run
//! with a deadline on a thread of its own, so that what waits for it does not wait forever.

use std::time::Duration;

/// `work`'s result, or `None` when it has not ended within `deadline` (it then ends, if
/// ever, on its thread).
pub fn within<T: Send + 'static>(
    deadline: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(deadline).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_that_never_ends_is_given_up_at_its_deadline() {
        assert_eq!(within(Duration::from_secs(5), || 7), Some(7));
        let (_hold, held) = std::sync::mpsc::channel::<()>();
        let start = std::time::Instant::now();
        // A lookup on a share whose server is gone: it never answers.
        let waited = within(Duration::from_millis(100), move || held.recv());
        assert_eq!(
            waited, None,
            "a wait with no answer must end at its deadline"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
