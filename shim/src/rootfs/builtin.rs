//! The built-in filesystems of a container.json without `filesystems`: /proc, a read-only
//! /sys, a tmpfs /dev with the standard devices, devpts, /dev/shm, /dev/mqueue, and the bind
//! mounts of `mounts`.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use super::base::{do_mount, Error, Result};
use super::binds::{bind_at, Bind};
use super::dev::{make_links, make_requested_devices, make_standard_devices, subdir};
use super::paths::{fd_path, open_in_root, open_strict, Create};
use crate::config::{Config, Mount};
use crate::namespaces::Namespace;

/// Mounts the built-in set and `config.mounts` under `root`.
pub fn mount_all(config: &Config, root: BorrowedFd<'_>) -> Result<()> {
    mount_proc_sys(config, root)?;
    mount_dev(config, root)?;
    for (i, m) in config.mounts.iter().enumerate() {
        bind_mount(root, m, &format!("mounts[{i}]"), config.strict_host_paths)?;
    }
    Ok(())
}

fn mount_proc_sys(config: &Config, root: BorrowedFd<'_>) -> Result<()> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = open_in_root(root, Path::new("/proc"), Create::Dir)?;
    do_mount(
        Some(Path::new("proc")),
        &fd_path(&proc_dir),
        Some("proc"),
        nosuid_nodev_noexec,
        None,
        "proc",
    )?;

    let sys_dir = open_in_root(root, Path::new("/sys"), Create::Dir)?;
    let ro = nosuid_nodev_noexec | MsFlags::MS_RDONLY;
    // A new sysfs instance (of the container's network namespace, or the host's): read-only,
    // without the host's submounts (cgroups, debugfs, ...).
    match mount(
        Some("sysfs"),
        &fd_path(&sys_dir),
        Some("sysfs"),
        ro,
        None::<&str>,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) if !config.has_namespace(Namespace::Net) => {
            sysfs_bind(root, &sys_dir, Path::new("/sys"))
        }
        Err(source) => Err(Error::Mount {
            what: "sysfs".into(),
            target: "/sys".into(),
            source,
        }),
    }
}

fn mount_dev(config: &Config, root: BorrowedFd<'_>) -> Result<()> {
    let dev_path = Path::new("/dev");
    let dev = open_in_root(root, dev_path, Create::Dir)?;
    do_mount(
        Some(Path::new("tmpfs")),
        &fd_path(&dev),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
        "/dev tmpfs",
    )?;
    // From here on, work through a descriptor of the new tmpfs: nothing but this process can
    // add to it (it is in our mount namespace only).
    let dev = open_in_root(root, dev_path, Create::Nothing)?;
    let is_tmpfs = nix::sys::statfs::fstatfs(&dev)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    if !is_tmpfs {
        return Err(Error::Create {
            path: dev_path.to_owned(),
            source: std::io::Error::other("/dev changed in the rootfs while it was mounted"),
        });
    }
    make_standard_devices(dev.as_fd())?;
    make_requested_devices(config, dev.as_fd())?;
    let gid_opt = if config.has_namespace(Namespace::User) {
        ""
    } else {
        ",gid=5"
    };
    let pts = subdir(dev.as_fd(), "pts", 0o755)?;
    do_mount(
        Some(Path::new("devpts")),
        &fd_path(&pts),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&format!("newinstance,ptmxmode=0666,mode=0620{gid_opt}")),
        "devpts",
    )?;
    let shm = subdir(dev.as_fd(), "shm", 0o1777)?;
    do_mount(
        Some(Path::new("shm")),
        &fd_path(&shm),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
        "/dev/shm",
    )?;
    if config.has_namespace(Namespace::Ipc) {
        let mq = subdir(dev.as_fd(), "mqueue", 0o755)?;
        do_mount(
            Some(Path::new("mqueue")),
            &fd_path(&mq),
            Some("mqueue"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None,
            "/dev/mqueue",
        )?;
    }
    make_links(dev.as_fd(), true, false)?;
    if config.tty {
        // The pty slave is bound here by the caller; make the mount point now.
        open_in_root(dev.as_fd(), Path::new("console"), Create::File)?;
    }
    Ok(())
}

/// Bind-mounts `m.source` at `m.destination` inside the rootfs, read-only unless writable.
/// With `strict`, the source is reached without following a symlink and bound through its
/// descriptor (see [`open_strict`]).
fn bind_mount(root: BorrowedFd<'_>, m: &Mount, field: &str, strict: bool) -> Result<()> {
    let held = match strict {
        true => Some(open_strict(&m.source).map_err(|e| Error::Field {
            field: format!("{field}.source"),
            source: Box::new(Error::Create {
                path: m.source.clone(),
                source: e.into(),
            }),
        })?),
        false => None,
    };
    let source = held.as_ref().map_or_else(|| m.source.clone(), fd_path);
    let src_meta = fs::metadata(&source).map_err(|_| Error::MissingSource {
        field: format!("{field}.source"),
        path: m.source.clone(),
    })?;
    let create = if src_meta.is_dir() {
        Create::Dir
    } else {
        Create::File
    };
    let dest = open_in_root(root, &m.destination, create).map_err(|e| Error::Field {
        field: format!("{field}.destination"),
        source: Box::new(e),
    })?;
    let propagation = if m.private {
        MsFlags::MS_PRIVATE
    } else {
        MsFlags::MS_SLAVE
    };
    let bind = Bind {
        source: &source,
        recursive: true,
        readonly: !m.writable,
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: &[propagation | MsFlags::MS_REC],
        prepared: None,
    };
    bind_at(root, &bind, &dest, &m.destination, &format!("{field} bind"))
}

/// Where the kernel refuses a new sysfs (a user namespace without a network namespace of its
/// own): the host's /sys bound read-only at `dest`. Recursively: the kernel refuses to reveal
/// what the host's submounts (locked, in a user namespace) cover; they are made read-only
/// too, and their files belong to unmapped host ids.
pub fn sysfs_bind(
    root: BorrowedFd<'_>,
    dest: &std::os::fd::OwnedFd,
    dest_path: &Path,
) -> Result<()> {
    let bind = Bind {
        source: Path::new("/sys"),
        recursive: true,
        readonly: true,
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: &[MsFlags::MS_SLAVE | MsFlags::MS_REC],
        prepared: None,
    };
    bind_at(root, &bind, dest, dest_path, "sysfs bind")
}
