//! Bind mounts of host paths into the rootfs: open_tree + move_mount where the kernel has them,
//! so the read-only remount, the other flags and the propagation apply to the very mount made;
//! and propagation changes of a mount found by its path inside the rootfs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;

use super::base::{do_mount, remount_bind, Error, Result};
use super::paths::{fd_path, open_in_root, Create};

/// How to bind a host path.
#[derive(Debug, Clone, Copy)]
pub struct Bind<'a> {
    pub source: &'a Path,
    /// The whole tree under `source` (rbind), not only its top mount.
    pub recursive: bool,
    /// Read-only; with `recursive`, every mount of the tree (5.12+; before, its top).
    pub readonly: bool,
    /// Per-mount flags set by a remount (`MS_NOSUID`, `MS_NODEV`, `MS_NOEXEC`, atime flags).
    pub flags: MsFlags,
    /// Per-mount flags explicitly cleared (`suid`, `dev`, `exec`, ...): not kept from the source.
    pub clear: MsFlags,
    /// Propagation changes applied in order, each a full flag set (`MS_SLAVE | MS_REC`).
    pub propagation: &'a [MsFlags],
    /// A detached copy of `source` made already (an idmapped one), attached instead.
    pub prepared: Option<BorrowedFd<'a>>,
}

/// Binds `b.source` on `dest` (a descriptor from [`open_in_root`] for `dest_path`), then
/// remounts it with its flags and sets its propagation.
pub fn bind_at(
    root: BorrowedFd<'_>,
    b: &Bind<'_>,
    dest: &OwnedFd,
    dest_path: &Path,
    what: &str,
) -> Result<()> {
    let mount_err = |source: Errno| Error::Mount {
        what: what.to_owned(),
        target: dest_path.to_owned(),
        source,
    };
    // The new mount, as a descriptor (open_tree) or, on old kernels, found again by path.
    let opened = match b.prepared {
        Some(tree) => tree
            .try_clone_to_owned()
            .map_err(|e| e.raw_os_error().map_or(Errno::EBADF, Errno::from_raw)),
        None => crate::sys::open_tree_clone(b.source, b.recursive),
    };
    let top: OwnedFd = match opened {
        Ok(tree) => {
            if b.readonly && b.recursive {
                // Every mount of the tree read-only, not only its top (5.12+; before, the
                // remount below makes the top read-only).
                match crate::sys::mount_setattr_readonly_recursive(tree.as_fd()) {
                    Ok(()) | Err(Errno::ENOSYS) => {}
                    Err(e) => return Err(mount_err(e)),
                }
            }
            crate::sys::move_mount(tree.as_fd(), dest.as_fd()).map_err(mount_err)?;
            tree
        }
        Err(Errno::ENOSYS) => {
            let mut flags = MsFlags::MS_BIND;
            if b.recursive {
                flags |= MsFlags::MS_REC;
            }
            do_mount(Some(b.source), &fd_path(dest), None, flags, None, what)?;
            // Resolved inside the rootfs again: at worst (a concurrent rename in a shared
            // rootfs) another place inside it, never the host.
            open_in_root(root, dest_path, Create::Nothing)?
        }
        Err(e) => return Err(mount_err(e)),
    };
    let mut flags = b.flags;
    if b.readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    if !flags.is_empty() {
        remount_bind(&fd_path(&top), flags, b.clear)?;
    }
    for p in b.propagation {
        do_mount(
            None,
            &fd_path(&top),
            None,
            *p,
            None,
            &format!("{what} propagation"),
        )?;
    }
    Ok(())
}

/// Applies propagation changes to the mount now at `dest` (found again inside the rootfs).
pub fn set_propagation(
    root: BorrowedFd<'_>,
    dest: &Path,
    propagation: &[MsFlags],
    what: &str,
) -> Result<()> {
    if propagation.is_empty() {
        return Ok(());
    }
    let top: OwnedFd = open_in_root(root, dest, Create::Nothing)?;
    for p in propagation {
        do_mount(
            None,
            &fd_path(&top),
            None,
            *p,
            None,
            &format!("{what} propagation"),
        )?;
    }
    Ok(())
}
