//! Our terminal: its window size (sent with a tty container's process and after each
//! SIGWINCH) and raw mode while attached to a container's terminal.

use execdriver_proto as pb;

/// The size of our terminal, if stdin is one.
pub fn terminal_size() -> Option<pb::ConsoleSize> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    execdriver_shim::sys::get_winsize(stdin.as_fd())
        .ok()
        .filter(|(r, c)| *r > 0 && *c > 0)
        .map(|(rows, cols)| pb::ConsoleSize {
            rows: rows as u32,
            cols: cols as u32,
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
