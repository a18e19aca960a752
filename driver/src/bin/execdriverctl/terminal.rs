//! Our terminal: whether stdin is one (-it needs it), its window size (sent with a tty
//! container's process and after each SIGWINCH) and raw mode while attached to a container's
//! terminal.

use std::io::IsTerminal;

use execdriver_proto as pb;

/// Docker's refusal of -i with -t when our stdin is not a terminal (a file, a pipe,
/// /dev/null): the container's terminal would wait on input that is never typed. `-t` alone
/// (output through a terminal) and -d need none.
pub fn check_tty_input(interactive: bool, tty: bool) -> Result<(), String> {
    check_tty_input_of(interactive, tty, std::io::stdin().is_terminal())
}

fn check_tty_input_of(interactive: bool, tty: bool, is_terminal: bool) -> Result<(), String> {
    if interactive && tty && !is_terminal {
        return Err("the input device is not a TTY".into());
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_needs_a_terminal_for_input() {
        let err = check_tty_input_of(true, true, false).unwrap_err();
        assert_eq!(err, "the input device is not a TTY");
        assert!(check_tty_input_of(true, true, true).is_ok());
        assert!(check_tty_input_of(false, true, false).is_ok(), "-t alone");
        assert!(check_tty_input_of(true, false, false).is_ok(), "-i alone");
    }
}
