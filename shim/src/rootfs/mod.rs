//! The container's filesystem: propagation, bind mounts, /proc, /sys, /dev, and `pivot_root`.
//!
//! `setup` makes the root a mount, mounts either the built-in set ([`builtin`]) or the OCI list
//! `filesystems` ([`mounts`], [`cgroupfs`]; options split by [`options`]), with the device
//! nodes of [`dev`] and the bind mounts of [`binds`], all resolved inside the rootfs by
//! [`paths`]; then `pivot_root`, the root's propagation, masked and read-only paths.
//!
//! Runs in the container's init, inside its new mount namespace, before it execs. Nothing done
//! here is visible on the host: the first step makes every mount a slave of the host's, so
//! mounts made inside never propagate out, and they all vanish with the namespace.

mod base;
mod binds;
mod builtin;
mod cgroupfs;
mod dev;
mod idmap;
mod mounts;
pub mod options;
mod paths;
pub mod staging;

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, pivot_root};

pub use base::{remount_readonly, Error, Result};
pub use idmap::Idmapped;
pub use paths::{open_in_root, Create};

use crate::config::Config;
use base::{do_mount, refused};

/// Sets up the container's filesystem under `rootfs` and makes it `/`. The caller is the init,
/// in its new mount namespace.
///
/// Every mount point inside the rootfs is resolved with [`open_in_root`] and mounted on
/// through its descriptor (`/proc/self/fd/N`), so a symlink in the rootfs (say /etc ->
/// /host/etc) leads to a place inside the rootfs, never onto the host. Bind mounts are made
/// with open_tree + move_mount where the kernel has them (5.2), so their read-only remount and
/// propagation apply to the very mount made; elsewhere the destination is resolved again,
/// inside the rootfs. After `pivot_root`, "/" is the rootfs, and the masked and read-only
/// paths, the working directory and everything the process does resolve inside it.
pub fn setup(config: &Config, rootfs: &Path) -> Result<()> {
    setup_with(config, rootfs, &Idmapped::default(), None, &mut || Ok(()))
}

/// [`setup`], with the idmapped mounts made outside ([`Idmapped::prepare`]), running
/// `before_pivot` once the mounts are made, before pivot_root (in the container's mount
/// namespace, the host's tree still visible). With `staging` (a namespace a parked nursery
/// pivoted ahead, [`staging::reach`]) the rootfs is entered without `pivot_root`.
pub fn setup_with(
    config: &Config,
    rootfs: &Path,
    idmapped: &Idmapped,
    staging: Option<OwnedFd>,
    before_pivot: &mut dyn FnMut() -> std::result::Result<(), String>,
) -> Result<()> {
    if !rootfs.is_dir() {
        return Err(Error::NotADirectory(rootfs.to_owned()));
    }
    // No mount event made here may reach the host. Slave first, not private: a bind mount
    // with `private: false` stays a slave of its source below, so what the host mounts there
    // later still appears inside (Docker's rslave); everything else is made private.
    do_mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
        "slave propagation",
    )?;
    // pivot_root needs the new root to be a mount point. With `strict_host_paths` the rootfs
    // is reached without following a symlink, both for the bind and for the descriptor of
    // the bind mount made (a directory swapped since is at worst another one at that path,
    // which is no mount point: pivot_root refuses it).
    let strict = |e: Errno| Error::Field {
        field: "rootfs".into(),
        source: Box::new(Error::Create {
            path: rootfs.to_owned(),
            source: e.into(),
        }),
    };
    let held = match config.strict_host_paths {
        true => Some(paths::open_strict(rootfs).map_err(strict)?),
        false => None,
    };
    let source = held
        .as_ref()
        .map_or_else(|| rootfs.to_owned(), paths::fd_path);
    do_mount(
        Some(&source),
        &source,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        "rootfs bind",
    )?;
    drop(held);
    // The rootfs bind mount just made (the driver gave a canonical host path).
    let root: OwnedFd = match config.strict_host_paths {
        true => paths::open_strict(rootfs).map_err(strict)?,
        false => nix::fcntl::open(
            rootfs,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|source| Error::Create {
            path: rootfs.to_owned(),
            source: source.into(),
        })?,
    };
    // The container's tree is private (`rootfs_propagation` absent or not a slave kind):
    // nothing the host mounts under the rootfs reaches it, and nothing it mounts reaches
    // anyone. With `slave`/`rslave` it stays a slave of the host's.
    let root_propagation = match config.rootfs_propagation.as_str() {
        "" => None,
        name => Some(options::propagation(name).ok_or_else(|| {
            refused(
                "rootfs_propagation",
                format!("{name:?} is not a propagation"),
            )
        })?),
    };
    if !root_propagation.is_some_and(|p| p.contains(MsFlags::MS_SLAVE)) {
        do_mount(
            None,
            &paths::fd_path(&root),
            None,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None,
            "private propagation",
        )?;
    }

    match &config.filesystems {
        Some(_) => mounts::mount_all(config, root.as_fd(), idmapped)?,
        None => builtin::mount_all(config, root.as_fd())?,
    }
    before_pivot().map_err(Error::BeforePivot)?;
    match staging {
        Some(staging) => staging::enter(root.as_fd(), staging, rootfs)?,
        None => enter_root(root.as_fd(), rootfs)?,
    }
    make_working_dir(&config.working_dir)?;
    mask_paths(&config.masked())?;
    readonly_paths(&config.readonly())?;
    if config.readonly_fs {
        remount_readonly(Path::new("/"))?;
    }
    // Last: an unbindable root would refuse the read-only paths' binds.
    if let Some(p) = root_propagation {
        // On the container's root, now "/" (the host's mounts are out of reach: its tree was
        // made a slave of theirs first).
        do_mount(None, Path::new("/"), None, p, None, "rootfs_propagation")
            .map_err(|e| base::in_field("rootfs_propagation", e))?;
    }
    Ok(())
}

/// Makes the init's working directory when the rootfs lacks it (0755, the container's root
/// owning it), as runc and Docker do, before anything is made read-only. After pivot_root:
/// the path resolves inside the container, symlinks included.
fn make_working_dir(cwd: &str) -> Result<()> {
    if cwd.is_empty() || fs::symlink_metadata(cwd).is_ok() {
        return Ok(()); // there (what it is, chdir says)
    }
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(cwd)
        .map_err(|source| Error::Field {
            field: "working_dir".into(),
            source: Box::new(Error::Create {
                path: cwd.into(),
                source,
            }),
        })
}

/// Hides each path that exists: /dev/null bound over a file, an empty read-only tmpfs over a
/// directory (after pivot_root: the paths are the container's). One tmpfs for all the
/// directories, bound over the second and later ones: each filesystem a container makes is
/// a shrinker the kernel sizes every memory cgroup's shrinker map by (`alloc_shrinker_info`,
/// measured 1.25 MiB of kmalloc-1k per new memory cgroup with 10,000 containers of 8
/// filesystems each).
fn mask_paths(paths: &[String]) -> Result<()> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut empty: Option<&Path> = None;
    for p in paths {
        let path = Path::new(p);
        let md = match fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(_) => continue, // this kernel does not have it
        };
        if !md.is_dir() {
            do_mount(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
                "masked path",
            )?;
            continue;
        }
        // The second and later: bound from the first (read-only already, as the tmpfs is;
        // the bind's own flags say so too). Where the first is gone (a later masked directory
        // above it), a tmpfs of its own.
        let bound = empty.is_some_and(|first| {
            do_mount(
                Some(first),
                path,
                None,
                MsFlags::MS_BIND,
                None,
                "masked path",
            )
            .is_ok()
        });
        if bound {
            base::remount_bind(path, flags, MsFlags::empty())?;
        } else {
            do_mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                flags,
                Some("size=0,mode=555"),
                "masked path",
            )?;
            empty.get_or_insert(path);
        }
    }
    Ok(())
}

/// Makes each path that exists read-only: bound onto itself, remounted read-only.
fn readonly_paths(paths: &[String]) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        if fs::symlink_metadata(path).is_err() {
            continue;
        }
        do_mount(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
            "read-only path",
        )?;
        remount_readonly(path)?;
    }
    Ok(())
}

/// Makes the rootfs (`root`, the descriptor of its bind mount) the root: `pivot_root(".", ".")`
/// then detach the old root from under it.
fn enter_root(root: BorrowedFd<'_>, rootfs: &Path) -> Result<()> {
    let pivot = |source| Error::Pivot {
        rootfs: rootfs.to_owned(),
        source,
    };
    nix::unistd::fchdir(root).map_err(pivot)?;
    pivot_root(".", ".").map_err(pivot)?;
    // The old root is now stacked on "."; make it private so the detach does not propagate to
    // the host through a shared peer, then detach it.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(pivot)?;
    umount2(".", MntFlags::MNT_DETACH).map_err(pivot)?;
    chdir("/").map_err(pivot)?;
    Ok(())
}
