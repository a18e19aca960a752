//! The daemon's gRPC client as the commands hold it, how an RPC's error becomes the message we
//! print, and the exit codes of failures (Docker's): 125 when execdriverctl or the daemon
//! failed, 126 when the command cannot be run, 127 when it is not found, 124 when exec-sync's
//! timeout killed it.

use execdriver_driver::error::{EXEC_CANNOT_RUN, EXEC_FAILURE_KEY, EXEC_NOT_FOUND};
use execdriver_proto::exec_driver_client::ExecDriverClient;
use tonic::transport::Channel;

pub type Client = ExecDriverClient<Channel>;

/// execdriverctl or the daemon failed (Docker's 125).
pub const FAILED: u8 = 125;
/// The command is there but cannot be run: a directory, no execute permission (126).
pub const CANNOT_RUN: u8 = 126;
/// The command is not there (127).
pub const NOT_FOUND: u8 = 127;
/// exec-sync's --timeout expired and the command was killed (124, as timeout(1)).
pub const TIMED_OUT: u8 = 124;

/// Why a command failed and the exit code that says so. An empty message was said already.
#[derive(Debug, PartialEq)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    /// A failure of execdriverctl or the daemon (125).
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: FAILED,
        }
    }

    /// A failure whose reasons were printed already (one per container, say).
    pub fn said(code: u8) -> Failure {
        Failure {
            message: String::new(),
            code,
        }
    }

    /// The same failure, its message after `what: `.
    pub fn context(self, what: impl std::fmt::Display) -> Failure {
        Failure {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::new(message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An RPC's error: its message, and 127 or 126 when the daemon says the process's command is
/// not found or cannot be run (the `execdriver-exec-failure` metadata), else 125.
pub fn status(s: tonic::Status) -> Failure {
    let code = match s
        .metadata()
        .get(EXEC_FAILURE_KEY)
        .and_then(|v| v.to_str().ok())
    {
        Some(EXEC_NOT_FOUND) => NOT_FOUND,
        Some(EXEC_CANNOT_RUN) => CANNOT_RUN,
        _ => FAILED,
    };
    Failure {
        message: s.message().to_owned(),
        code,
    }
}

/// An RPC's reply, or its error as a [`Failure`].
pub fn st<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, Failure> {
    r.map(|r| r.into_inner()).map_err(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_failures_are_126_and_127() {
        let with = |value: Option<&'static str>| {
            let mut s = tonic::Status::failed_precondition("exec: \"x\": ...");
            if let Some(v) = value {
                s.metadata_mut()
                    .insert(EXEC_FAILURE_KEY, v.parse().unwrap());
            }
            status(s)
        };
        assert_eq!(with(Some(EXEC_NOT_FOUND)).code, 127);
        assert_eq!(with(Some(EXEC_CANNOT_RUN)).code, 126);
        assert_eq!(with(None).code, 125);
        assert_eq!(with(Some("something-new")).code, 125);
        assert_eq!(with(None).message, "exec: \"x\": ...");
        let f = Failure::new("m").context("--rm: deleting c1");
        assert_eq!((f.message.as_str(), f.code), ("--rm: deleting c1: m", 125));
    }
}
