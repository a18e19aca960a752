//! Our terminal: its window size (sent with a tty container's process and after each
//! SIGWINCH) and raw mode while attached to a container's terminal.

use execdriver_proto as pb;

/// The size of our terminal, if stdin is one.
pub fn terminal_size() -> Option<pb::ConsoleSize> {
    rustix::termios::tcgetwinsize(std::io::stdin())
        .ok()
        .filter(|w| w.ws_row > 0 && w.ws_col > 0)
        .map(|w| pb::ConsoleSize {
            rows: w.ws_row.into(),
            cols: w.ws_col.into(),
        })
}

/// Puts our terminal in raw mode while alive, so keys (Ctrl-C included) go to the container's
/// terminal as they are; restores it on drop.
pub struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    pub fn enter() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}
