//! The restricted policy's host paths (a rootfs, bind mount sources): resolved on the host
//! (symlinks and `..` followed, as the kernel would), then judged by what they resolve to.
//!
//! A path passes when its canonical form lies under one of the allowed prefixes (themselves
//! resolved, `{uid}` filled in), it is not a file with a second hard link (which could be any
//! file of that filesystem), and, when the container may write to it, its filesystem is
//! mounted nosuid and nodev (otherwise the container's root could leave a setuid-root binary
//! or a device node there for the caller to use on the host). The caller gets the canonical
//! path back: that is what the container is given, and the shim opens it without following
//! symlinks, so swapping a directory for a symlink after this check fails the create.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::statvfs::{statvfs, FsFlags};

use crate::error::{Error, Result};

/// What a host path is for.
pub(super) struct Use<'a> {
    /// The request field: `rootfs`, `mounts[2].source`.
    pub field: &'a str,
    /// The flag naming the prefixes, for the message.
    pub flag: &'a str,
    pub prefixes: &'a [PathBuf],
    /// The container may write to it.
    pub writable: bool,
    /// Whether a path's filesystem is mounted nosuid and nodev ([`nosuid_nodev`]).
    pub nosuid_nodev: FsCheck,
}

/// Says whether the filesystem of a path is mounted nosuid and nodev.
pub(super) type FsCheck = fn(&Path) -> nix::Result<bool>;

/// The host's answer, from statvfs(2).
pub(super) fn nosuid_nodev(path: &Path) -> nix::Result<bool> {
    Ok(statvfs(path)?
        .flags()
        .contains(FsFlags::ST_NOSUID | FsFlags::ST_NODEV))
}

/// Checks `value` for `u`; returns its canonical path.
pub(super) fn host_path(value: &str, u: &Use<'_>) -> Result<PathBuf> {
    let path = Path::new(value);
    if value.is_empty() || value.contains('\0') || !path.is_absolute() {
        return Err(Error::invalid(
            u.field,
            format!("{value:?} is not an absolute path"),
        ));
    }
    let canonical = path
        .canonicalize()
        .map_err(|e| Error::invalid(u.field, format!("{value}: {e}")))?;
    let allowed: Vec<PathBuf> = u
        .prefixes
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    if !allowed.iter().any(|p| canonical.starts_with(p)) {
        let named: Vec<String> = u.prefixes.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::denied(
            u.field,
            format!(
                "{} is not under an allowed directory ({} = [{}])",
                shown(value, &canonical),
                u.flag,
                named.join(", ")
            ),
        ));
    }
    let md = std::fs::metadata(&canonical)
        .map_err(|e| Error::invalid(u.field, format!("{}: {e}", canonical.display())))?;
    if !md.is_dir() && md.nlink() > 1 {
        return Err(Error::denied(
            u.field,
            format!(
                "{} has {} hard links; another link may be any file of its filesystem",
                shown(value, &canonical),
                md.nlink()
            ),
        ));
    }
    if u.writable {
        let safe = (u.nosuid_nodev)(&canonical)
            .map_err(|e| Error::invalid(u.field, format!("{}: {e}", canonical.display())))?;
        if !safe {
            return Err(Error::denied(
                u.field,
                format!(
                    "{} is writable in the container but its filesystem is not mounted nosuid \
                     and nodev: a setuid binary or device node made there would work on the host \
                     (make it read-only, or mount the directory nosuid,nodev)",
                    shown(value, &canonical)
                ),
            ));
        }
    }
    Ok(canonical)
}

/// The path as asked, and what it resolves to when that differs.
fn shown(value: &str, canonical: &Path) -> String {
    if Path::new(value) == canonical {
        value.to_owned()
    } else {
        format!("{value} (resolved: {})", canonical.display())
    }
}
