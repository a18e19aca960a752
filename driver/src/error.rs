//! The driver's errors and the one place they become gRPC statuses.

use execdriver_spec::protocol::{ErrorCode, ExecFailure};
use tonic::{Code, Status};

/// The gRPC status metadata key that says a process's command could not be run (with
/// FAILED_PRECONDITION): [`EXEC_NOT_FOUND`] or [`EXEC_CANNOT_RUN`].
pub const EXEC_FAILURE_KEY: &str = "execdriver-exec-failure";
/// The command is not there: no such file, or not in $PATH (a shell's 127).
pub const EXEC_NOT_FOUND: &str = "not-found";
/// The command is there but cannot be run: a directory, no execute permission, not an
/// executable format (a shell's 126).
pub const EXEC_CANNOT_RUN: &str = "cannot-run";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is wrong; `field` names it.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("container {0:?} not found")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    /// The container is in the wrong state, or the rootfs lacks what the request names.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The restricted policy refuses what a request field asks; `field` names it, `rule` says
    /// which rule (see `crate::policy`).
    #[error("{field}: refused by the restricted policy: {rule}")]
    Denied { field: String, rule: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The shim reported an error of its own.
    #[error("{message}")]
    Shim { code: ErrorCode, message: String },
    /// A process's command could not be run (FAILED_PRECONDITION, with the status metadata
    /// [`EXEC_FAILURE_KEY`] saying why).
    #[error("{message}")]
    Exec {
        failure: ExecFailure,
        message: String,
    },
    #[error("{0}")]
    Internal(String),
    /// A shim runs but cannot be reached (try again).
    #[error("{0}")]
    Unavailable(String),
    /// A shim did not answer in time.
    #[error("{0}")]
    DeadlineExceeded(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn denied(field: impl Into<String>, rule: impl Into<String>) -> Error {
        Error::Denied {
            field: field.into(),
            rule: rule.into(),
        }
    }

    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let code = match &e {
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::PermissionDenied(_) | Error::Denied { .. } => Code::PermissionDenied,
            Error::Io { .. } | Error::Internal(_) => Code::Internal,
            Error::Unavailable(_) => Code::Unavailable,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Exec { .. } => Code::FailedPrecondition,
            Error::Shim { code, .. } => match code {
                ErrorCode::InvalidArgument => Code::InvalidArgument,
                ErrorCode::NotFound => Code::NotFound,
                ErrorCode::FailedPrecondition => Code::FailedPrecondition,
                ErrorCode::Internal | ErrorCode::Unspecified => Code::Internal,
            },
        };
        let mut status = Status::new(code, e.to_string());
        if let Error::Exec { failure, .. } = &e {
            let value = match failure {
                ExecFailure::NotFound => Some(EXEC_NOT_FOUND),
                ExecFailure::CannotRun => Some(EXEC_CANNOT_RUN),
                ExecFailure::Unspecified => None,
            };
            if let Some(v) = value {
                status.metadata_mut().insert(
                    EXEC_FAILURE_KEY,
                    tonic::metadata::MetadataValue::from_static(v),
                );
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map() {
        let s: Status = Error::invalid("id", "empty").into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "id: empty");
        let s: Status = Error::NotFound("x".into()).into();
        assert_eq!(s.code(), Code::NotFound);
        let s: Status = Error::Shim {
            code: ErrorCode::FailedPrecondition,
            message: "m".into(),
        }
        .into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        let s: Status = Error::denied("security.capabilities[0]", "SYS_ADMIN is added").into();
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(
            s.message(),
            "security.capabilities[0]: refused by the restricted policy: SYS_ADMIN is added"
        );
        assert!(s.metadata().get(EXEC_FAILURE_KEY).is_none());
        for (failure, says) in [
            (ExecFailure::NotFound, EXEC_NOT_FOUND),
            (ExecFailure::CannotRun, EXEC_CANNOT_RUN),
        ] {
            let s: Status = Error::Exec {
                failure,
                message: "exec: \"x\": ...".into(),
            }
            .into();
            assert_eq!(s.code(), Code::FailedPrecondition);
            assert_eq!(s.metadata().get(EXEC_FAILURE_KEY).unwrap(), says);
        }
    }
}
