//! What every part of the rootfs setup shares: its error type and the mount(2) calls (a mount
//! naming what it is for, a bind remount that keeps the flags the kernel locks).

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mounting {what} on {target}: {source}")]
    Mount {
        what: String,
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("{field}: source {path} does not exist")]
    MissingSource { field: String, path: PathBuf },
    #[error("creating {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} resolves through too many symlinks")]
    SymlinkLoop { path: PathBuf },
    #[error("pivot_root into {rootfs}: {source}")]
    Pivot {
        rootfs: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("rootfs {0} is not a directory")]
    NotADirectory(PathBuf),
    /// The staging root a parked nursery made (see `staging`) could not be used.
    #[error("staging root: {what}: {source}")]
    Staging {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A requested mount could not be made where it asked: the request's field is named.
    #[error("{field}: {source}")]
    Field {
        field: String,
        #[source]
        source: Box<Error>,
    },
    /// What container.json asks that this runtime or host cannot do (inside [`Error::Field`]).
    #[error("{0}")]
    Refused(String),
    /// What the caller runs between the mounts and pivot_root (OCI createContainer hooks).
    #[error("{0}")]
    BeforePivot(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn do_mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: &str,
) -> Result<()> {
    mount(source, target, fstype, flags, data).map_err(|source| Error::Mount {
        what: what.to_owned(),
        target: target.to_owned(),
        source,
    })
}

/// Remounts the bind mount `target` with the per-mount `flags`, keeping those it has (which
/// the kernel may have locked, e.g. in a user namespace) unless listed in `clear`.
pub fn remount_bind(target: &Path, flags: MsFlags, clear: MsFlags) -> Result<()> {
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    if let Ok(st) = statvfs(target) {
        let f = st.flags();
        for (fs_flag, ms_flag) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs_flag) && !clear.contains(ms_flag) {
                flags |= ms_flag;
            }
        }
    }
    do_mount(None, target, None, flags, None, "bind remount")
}

/// Remounts a bind mount read-only, keeping its other flags.
pub fn remount_readonly(target: &Path) -> Result<()> {
    remount_bind(target, MsFlags::MS_RDONLY, MsFlags::empty())
}

/// `e` as the error of the container.json field `field` (unless it names a field already).
pub fn in_field(field: &str, e: Error) -> Error {
    match e {
        Error::Field { .. } | Error::MissingSource { .. } => e,
        e => Error::Field {
            field: field.to_owned(),
            source: Box::new(e),
        },
    }
}

/// A refusal of the field `field`, saying why.
pub fn refused(field: &str, reason: impl Into<String>) -> Error {
    in_field(field, Error::Refused(reason.into()))
}
