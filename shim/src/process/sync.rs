//! The channel between the shim and a process it is creating: a `SOCK_SEQPACKET` socketpair
//! carrying typed [`SyncMsg`]s (and a descriptor with some), and the errors of that exchange.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::protocol::{ErrorCode, ExecFailure};
use crate::sys;

/// Messages between the shim and the init it is creating.
#[derive(Debug, Serialize, Deserialize)]
pub enum SyncMsg {
    /// Parent to child: cgroups and network are in place; set up and report.
    Configured,
    /// Child to parent: everything is set up; waiting for Start.
    Ready,
    /// Parent to child: exec the command now.
    Start,
    /// Child to parent: a step failed.
    Error {
        code: ChildErrorCode,
        message: String,
    },
}

/// Whether a child failure is the request's fault (FAILED_PRECONDITION) or the system's, and
/// of the request's faults, a command that is not there or cannot be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildErrorCode {
    /// Something the request names is not there: the cwd, a mount source.
    Precondition,
    Internal,
    /// The command is not there (no such file, not in $PATH): a shell's 127.
    NotFound,
    /// The command is there but cannot be run (a directory, no execute permission, not an
    /// executable format): a shell's 126.
    CannotRun,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("socketpair: {0}")]
    Socketpair(#[source] Errno),
    #[error("clone into namespaces: {0}")]
    Clone(#[source] Errno),
    #[error("joining the container: {0}")]
    Join(#[source] std::io::Error),
    #[error("{0}")]
    ParentSetup(String),
    #[error("talking to the container's init: {0}")]
    Sync(#[source] Errno),
    #[error("the container's init exited during setup")]
    ChildVanished,
    #[error("{message}")]
    Child {
        code: ChildErrorCode,
        message: String,
    },
    #[error("unexpected message from the container's init: {0}")]
    Protocol(String),
    #[error("{0}")]
    Network(#[source] crate::network::Error),
    /// A namespace to join (`namespace_paths`) that cannot be: the field, and why.
    #[error("{field}: {reason}")]
    Namespace { field: String, reason: String },
    /// An idmapped mount that cannot be made (it names its field).
    #[error("{0}")]
    Idmap(#[source] crate::rootfs::Error),
    /// The nursery could not clone the init (`precondition`: the request is at fault).
    #[error("{message}")]
    Nursery { precondition: bool, message: String },
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Child {
                code:
                    ChildErrorCode::Precondition | ChildErrorCode::NotFound | ChildErrorCode::CannotRun,
                ..
            } => ErrorCode::FailedPrecondition,
            Error::Network(e) => e.code(),
            Error::Namespace { .. } | Error::Idmap(_) => ErrorCode::FailedPrecondition,
            Error::Nursery {
                precondition: true, ..
            } => ErrorCode::FailedPrecondition,
            _ => ErrorCode::Internal,
        }
    }

    /// Whether this is the command not found or not runnable (`Unspecified`: neither).
    pub fn exec_failure(&self) -> ExecFailure {
        match self {
            Error::Child {
                code: ChildErrorCode::NotFound,
                ..
            } => ExecFailure::NotFound,
            Error::Child {
                code: ChildErrorCode::CannotRun,
                ..
            } => ExecFailure::CannotRun,
            _ => ExecFailure::Unspecified,
        }
    }
}

pub(super) fn send(fd: &OwnedFd, msg: &SyncMsg) -> Result<(), Errno> {
    send_fd(fd, msg, None)
}

pub(super) fn send_fd(
    fd: &OwnedFd,
    msg: &SyncMsg,
    attached: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<(), Errno> {
    // Serializing a plain enum to a Vec cannot fail.
    let data = serde_json::to_vec(msg).map_err(|_| Errno::EINVAL)?;
    sys::send_with_fd(fd.as_fd(), &data, attached)
}

/// Receives one message; `None` when the other side closed its end.
pub(super) fn recv(fd: &OwnedFd) -> Result<Option<SyncMsg>, Error> {
    recv_fd(fd).map(|m| m.map(|(msg, _)| msg))
}

/// Receives one message and the descriptor sent with it.
pub(super) fn recv_fd(fd: &OwnedFd) -> Result<Option<(SyncMsg, Option<OwnedFd>)>, Error> {
    let mut buf = [0u8; 8192];
    let (n, attached) = loop {
        match sys::recv_with_fd(fd.as_fd(), &mut buf) {
            Err(Errno::EINTR) => continue,
            r => break r.map_err(Error::Sync)?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[..n]).map_err(|e| Error::Protocol(e.to_string()))?;
    Ok(Some((msg, attached)))
}

pub(super) fn sync_pair() -> Result<(OwnedFd, OwnedFd), Error> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(Error::Socketpair)
}
