//! The shim's diagnostics: one line per call on stderr (the state directory's `shim.log` once
//! the shim has prepared its process), `TIME LEVEL message`, the time in RFC 3339 UTC with
//! nanoseconds:
//!
//! ```text
//! 2026-12-07T05:01:02.123456789Z WARN shim c1: disconnecting a client that read nothing for 10s
//! ```
//!
//! Cheap on purpose: no thread and no buffering; each line is formatted into one `String` and
//! written at once (one write(2) on the unbuffered stderr), so lines do not interleave in the
//! appended file. Used as `log::warn!("shim {}: {e}", id)`, arguments as `format!`'s.

use std::fmt::{self, Write as _};
use std::io::Write as _;

/// How much a line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something the shim tried failed.
    Error,
    /// Something is off, and the shim carries on.
    Warn,
    /// Worth knowing, nothing wrong.
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
        }
    }
}

/// The line for a message at `time_ns` (nanoseconds since the epoch), newline included.
pub fn format_line(time_ns: i64, level: Level, args: fmt::Arguments<'_>) -> String {
    let mut line = crate::logfile::rfc3339_nanos(time_ns);
    line.reserve(96);
    // Writing into a String cannot fail.
    let _ = writeln!(line, " {} {args}", level.as_str());
    line
}

/// Writes one line to stderr, stamped now. What the macros call.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let line = format_line(crate::state::now_ns(), level, args);
    // A line that cannot be written is lost: the shim must not die of a full disk.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

#[doc(hidden)]
#[macro_export]
macro_rules! __shim_log_error {
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Error, ::std::format_args!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __shim_log_warn {
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Warn, ::std::format_args!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __shim_log_info {
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Info, ::std::format_args!($($arg)+))
    };
}

/// Logs a line at ERROR: `log::error!("shim {}: waitpid: {e}", id)`.
pub use crate::__shim_log_error as error;
/// Logs a line at INFO.
pub use crate::__shim_log_info as info;
/// Logs a line at WARN.
pub use crate::__shim_log_warn as warn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_time_level_message() {
        let ns = 1_796_619_662_123_456_789; // 2026-12-07T05:01:02.123456789Z
        let line = format_line(ns, Level::Warn, format_args!("gc: {} left", 3));
        assert_eq!(line, "2026-12-07T05:01:02.123456789Z WARN gc: 3 left\n");
        let line = format_line(0, Level::Error, format_args!("x"));
        assert_eq!(line, "1970-01-01T00:00:00.000000000Z ERROR x\n");
    }

    #[test]
    fn the_macros_take_format_arguments() {
        let e = "boom";
        // Type-checked, not run: the lines would land in the test's output.
        if e.is_empty() {
            error!("shim {}: {e}", "c1");
            warn!("{e:?}");
            info!("plain");
        }
    }
}
