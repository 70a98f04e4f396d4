//! The local terminal for `-t`: raw mode while a remote terminal is attached, its size,
//! and resize events.

use std::io::IsTerminal;

use berth_protocol::TtySize;

/// Puts the local terminal in raw mode (when stdin is one) until dropped, so keystrokes
/// such as Ctrl-C and Ctrl-D go to the remote terminal.
pub struct RawMode {
    active: bool,
}

impl RawMode {
    pub fn enable() -> RawMode {
        let active =
            std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok();
        RawMode { active }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if self.active {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// The local terminal's size (80x24 when there is none).
pub fn size() -> TtySize {
    match crossterm::terminal::size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => TtySize { rows, cols },
        _ => TtySize { rows: 24, cols: 80 },
    }
}

/// Resize events of the local terminal.
pub struct Resizes {
    #[cfg(unix)]
    winch: Option<tokio::signal::unix::Signal>,
}

impl Resizes {
    pub fn watch() -> Resizes {
        Resizes {
            #[cfg(unix)]
            winch: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                .ok(),
        }
    }

    /// The new size after the next resize (never resolves without a terminal).
    pub async fn next(&mut self) -> TtySize {
        #[cfg(unix)]
        if let Some(winch) = self.winch.as_mut() {
            if winch.recv().await.is_some() {
                return size();
            }
        }
        std::future::pending().await
    }
}
