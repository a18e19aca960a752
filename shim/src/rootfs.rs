//! The container's filesystem: propagation, bind mounts, /proc, /sys, /dev, and `pivot_root`.
//!
//! Runs in the container's init, inside its new mount namespace, before it execs. Nothing done
//! here is visible on the host: the first step makes every mount a slave of the host's, so
//! mounts made inside never propagate out, and they all vanish with the namespace.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, makedev, mkdirat, mknodat, Mode, SFlag};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{chdir, pivot_root};

use crate::config::{Config, Mount};
use crate::namespaces::Namespace;

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
    /// A requested mount could not be made where it asked: the request's field is named.
    #[error("{field}: {source}")]
    Field {
        field: String,
        #[source]
        source: Box<Error>,
    },
    /// What the caller runs between the mounts and pivot_root (OCI createContainer hooks).
    #[error("{0}")]
    BeforePivot(String),
}

type Result<T> = std::result::Result<T, Error>;

fn do_mount(
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

/// Pushes the normal and `..` components of `p` on a stack, first component on top.
fn push_components(stack: &mut Vec<std::ffi::OsString>, p: &Path) {
    let parts: Vec<_> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    stack.extend(parts.into_iter().rev());
}

/// What to create when the last component of a path is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Nothing,
    Dir,
    /// An empty file (a mount point for a file bind mount).
    File,
}

/// The path through which the kernel reaches what `fd` refers to (for mount(2)).
fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` inside the directory `root` refers to, as the container will see it, and
/// returns an `O_PATH` descriptor of what it names. Every component is opened relative to
/// the one before with `O_NOFOLLOW`; a symlink is read and resolved here, an absolute one
/// from `root`, and `..` never climbs above `root` (the walk keeps the descriptors of the
/// directories it went through). So nothing outside `root` is reached, also when the
/// rootfs changes meanwhile. With `create`, missing directories on the way are made (0755)
/// and the last component as asked.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, create: Create) -> Result<OwnedFd> {
    let err = |source: Errno| Error::Create {
        path: path.to_owned(),
        source: source.into(),
    };
    let mut dirs: Vec<OwnedFd> = vec![root.try_clone_to_owned().map_err(|e| Error::Create {
        path: path.to_owned(),
        source: e,
    })?];
    let mut pending: Vec<std::ffi::OsString> = Vec::new();
    push_components(&mut pending, path);
    let (mut links, mut retries) = (0, 0);
    while let Some(part) = pending.pop() {
        if part == ".." {
            if dirs.len() > 1 {
                dirs.pop();
            }
            continue;
        }
        let last = pending.is_empty();
        let cur = dirs.last().ok_or(Errno::EBADF).map_err(err)?;
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(cur, part.as_os_str(), flags, Mode::empty()) {
            Ok(fd) => {
                let st = fstat(&fd).map_err(err)?;
                match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                    SFlag::S_IFLNK => {
                        links += 1;
                        if links > 40 {
                            return Err(Error::SymlinkLoop {
                                path: path.to_owned(),
                            });
                        }
                        let target = readlinkat(&fd, "").map_err(err)?;
                        let target = Path::new(&target);
                        if target.is_absolute() {
                            dirs.truncate(1);
                        }
                        push_components(&mut pending, target);
                    }
                    SFlag::S_IFDIR => dirs.push(fd),
                    _ if last => dirs.push(fd),
                    _ => return Err(err(Errno::ENOTDIR)),
                }
            }
            Err(Errno::ENOENT) if create != Create::Nothing && retries < 16 => {
                retries += 1;
                let made = if !last || create == Create::Dir {
                    mkdirat(cur, part.as_os_str(), Mode::from_bits_truncate(0o755))
                } else {
                    let f = OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_WRONLY
                        | OFlag::O_CLOEXEC;
                    openat(cur, part.as_os_str(), f, Mode::from_bits_truncate(0o644)).map(drop)
                };
                match made {
                    // EEXIST: a dangling symlink (resolved on the retry) or a race.
                    Ok(()) | Err(Errno::EEXIST) => pending.push(part),
                    Err(e) => return Err(err(e)),
                }
            }
            Err(e) => return Err(err(e)),
        }
    }
    dirs.pop().ok_or(Errno::EBADF).map_err(err)
}

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
    setup_with(config, rootfs, &mut || Ok(()))
}

/// [`setup`], running `before_pivot` once the mounts are made, before pivot_root (in the
/// container's mount namespace, the host's tree still visible).
pub fn setup_with(
    config: &Config,
    rootfs: &Path,
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
    // pivot_root needs the new root to be a mount point.
    do_mount(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        "rootfs bind",
    )?;
    // The container's tree is private: nothing the host mounts under the rootfs reaches it,
    // and nothing it mounts reaches anyone.
    do_mount(
        None,
        rootfs,
        None,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None,
        "private propagation",
    )?;
    // The rootfs bind mount just made (the driver gave a canonical host path).
    let root: OwnedFd = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| Error::Create {
        path: rootfs.to_owned(),
        source: source.into(),
    })?;

    mount_proc_sys(config, root.as_fd())?;
    mount_dev(config, root.as_fd())?;
    for (i, m) in config.mounts.iter().enumerate() {
        bind_mount(root.as_fd(), m, &format!("mounts[{i}]"))?;
    }
    before_pivot().map_err(Error::BeforePivot)?;
    enter_root(root.as_fd(), rootfs)?;
    mask_paths(&config.masked())?;
    readonly_paths(&config.readonly())?;
    if config.readonly_fs {
        remount_readonly(Path::new("/"))?;
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
            // In a user namespace without a network namespace of its own the kernel refuses a
            // new sysfs: bind the host's, read-only. Recursively: the kernel refuses to reveal
            // what the host's submounts (locked, in a user namespace) cover; they are made
            // read-only too, and their files belong to unmapped host ids.
            bind_at(
                root,
                Path::new("/sys"),
                &sys_dir,
                Path::new("/sys"),
                true,
                true,
                MsFlags::MS_SLAVE,
                "sysfs bind",
            )
        }
        Err(source) => Err(Error::Mount {
            what: "sysfs".into(),
            target: "/sys".into(),
            source,
        }),
    }
}

/// The character devices every container gets: (name, major, minor).
const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

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
    for (name, major, minor) in DEVICES {
        make_node(
            dev.as_fd(),
            Path::new(name),
            SFlag::S_IFCHR,
            0o666,
            makedev(major, minor),
            &dev_path.join(name),
        )?;
    }
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
    symlink_at(dev.as_fd(), "pts/ptmx", "ptmx")?;
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
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink_at(dev.as_fd(), target, link)?;
    }
    if config.tty {
        // The pty slave is bound here by the caller; make the mount point now.
        open_in_root(dev.as_fd(), Path::new("console"), Create::File)?;
    }
    Ok(())
}

/// Makes (or, if it exists, finds) the directory `name` in `dir`, with exactly `mode`.
fn subdir(dir: BorrowedFd<'_>, name: &str, mode: u32) -> Result<OwnedFd> {
    let fd = open_in_root(dir, Path::new(name), Create::Dir)?;
    // mkdir applies the umask.
    nix::sys::stat::fchmod(
        nix::fcntl::openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|source| Error::Create {
            path: PathBuf::from("/dev").join(name),
            source: source.into(),
        })?,
        Mode::from_bits_truncate(mode),
    )
    .map_err(|source| Error::Create {
        path: PathBuf::from("/dev").join(name),
        source: source.into(),
    })?;
    Ok(fd)
}

fn symlink_at(dir: BorrowedFd<'_>, target: &str, name: &str) -> Result<()> {
    nix::unistd::symlinkat(target, dir, name).map_err(|source| Error::Create {
        path: PathBuf::from("/dev").join(name),
        source: source.into(),
    })
}

/// Makes a device node `rel` (below the /dev tmpfs `dir`) with exactly `mode`; where mknod is
/// refused (a user namespace), binds the host's node `host` there instead.
fn make_node(
    dir: BorrowedFd<'_>,
    rel: &Path,
    kind: SFlag,
    mode: u32,
    dev: nix::sys::stat::dev_t,
    host: &Path,
) -> Result<()> {
    let shown = Path::new("/dev").join(rel);
    let err = |source: Errno| Error::Create {
        path: shown.clone(),
        source: source.into(),
    };
    let (parent, name) = match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) if !p.as_os_str().is_empty() => {
            (Some(open_in_root(dir, p, Create::Dir)?), n)
        }
        (_, Some(n)) => (None, n),
        _ => return Err(err(Errno::EINVAL)),
    };
    let parent = parent.as_ref().map(|p| p.as_fd()).unwrap_or(dir);
    let _ = nix::unistd::unlinkat(parent, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    match mknodat(parent, name, kind, Mode::from_bits_truncate(mode), dev) {
        // mknod applies the umask; the mode must be exactly as asked.
        Ok(()) => nix::sys::stat::fchmodat(
            parent,
            name,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(err),
        Err(Errno::EPERM) => {
            let target = open_in_root(parent, Path::new(name), Create::File)?;
            do_mount(
                Some(host),
                &fd_path(&target),
                None,
                MsFlags::MS_BIND,
                None,
                "device bind",
            )
        }
        Err(e) => Err(err(e)),
    }
}

/// Makes the nodes of the devices `cgroups.devices` asks for with a path (e.g. /dev/fuse), as
/// `docker run --device` does. The cgroup rules decide what may be done with them.
fn make_requested_devices(config: &Config, dev: BorrowedFd<'_>) -> Result<()> {
    let Some(cg) = &config.cgroups else {
        return Ok(());
    };
    for d in cg.devices.iter().filter(|d| !d.path.is_empty()) {
        // Validated: below /dev/, without '..'.
        let rel = Path::new(&d.path)
            .strip_prefix("/dev")
            .unwrap_or(Path::new(&d.path));
        let kind = if d.kind == "b" {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFCHR
        };
        let mode = if d.file_mode == 0 { 0o666 } else { d.file_mode };
        // Validated: both numbers are set and within Linux's ranges.
        let number = makedev(d.major_number as u64, d.minor_number as u64);
        make_node(dev, rel, kind, mode, number, Path::new(&d.path))?;
    }
    Ok(())
}

/// Bind-mounts `m.source` at `m.destination` inside the rootfs, read-only unless writable.
fn bind_mount(root: BorrowedFd<'_>, m: &Mount, field: &str) -> Result<()> {
    let src_meta = fs::metadata(&m.source).map_err(|_| Error::MissingSource {
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
    bind_at(
        root,
        &m.source,
        &dest,
        &m.destination,
        true,
        !m.writable,
        propagation,
        &format!("{field} bind"),
    )
}

/// Binds `source` (a host path) on `dest` (a descriptor from [`open_in_root`] for `dest_path`),
/// then makes the new mount read-only and sets its propagation.
#[allow(clippy::too_many_arguments)]
fn bind_at(
    root: BorrowedFd<'_>,
    source: &Path,
    dest: &OwnedFd,
    dest_path: &Path,
    recursive: bool,
    readonly: bool,
    propagation: MsFlags,
    what: &str,
) -> Result<()> {
    let mount_err = |source: Errno| Error::Mount {
        what: what.to_owned(),
        target: dest_path.to_owned(),
        source,
    };
    // The new mount, as a descriptor (open_tree) or, on old kernels, found again by path.
    let top: OwnedFd = match crate::sys::open_tree_clone(source, recursive) {
        Ok(tree) => {
            if readonly {
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
            if recursive {
                flags |= MsFlags::MS_REC;
            }
            do_mount(Some(source), &fd_path(dest), None, flags, None, what)?;
            // Resolved inside the rootfs again: at worst (a concurrent rename in a shared
            // rootfs) another place inside it, never the host.
            open_in_root(root, dest_path, Create::Nothing)?
        }
        Err(e) => return Err(mount_err(e)),
    };
    if readonly {
        remount_readonly(&fd_path(&top))?;
    }
    do_mount(
        None,
        &fd_path(&top),
        None,
        propagation | MsFlags::MS_REC,
        None,
        &format!("{what} propagation"),
    )
}

/// Hides each path that exists: /dev/null bound over a file, an empty read-only tmpfs over a
/// directory (after pivot_root: the paths are the container's).
fn mask_paths(paths: &[String]) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        let md = match fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(_) => continue, // this kernel does not have it
        };
        if md.is_dir() {
            do_mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0,mode=555"),
                "masked path",
            )?;
        } else {
            do_mount(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
                "masked path",
            )?;
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

/// Remounts a bind mount read-only, keeping the flags the kernel will not let us clear.
pub fn remount_readonly(target: &Path) -> Result<()> {
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
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
            if f.contains(fs_flag) {
                flags |= ms_flag;
            }
        }
    }
    do_mount(None, target, None, flags, None, "read-only remount")
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn ino(fd: &OwnedFd) -> (u64, u64) {
        let st = fstat(fd).unwrap();
        (st.st_dev, st.st_ino)
    }

    fn ino_of(p: &Path) -> (u64, u64) {
        let md = fs::symlink_metadata(p).unwrap();
        (md.dev(), md.ino())
    }

    #[test]
    fn open_in_root_stays_inside() {
        let base = std::env::temp_dir().join(format!("execdriver-oir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let root = base.join("root");
        let outside = base.join("outside");
        fs::create_dir_all(root.join("real/dir")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink("/host/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("real/dir", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        // An absolute symlink to a real host directory, and a dangling one to a host file.
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink(outside.join("file"), root.join("real/f")).unwrap();
        let rootfd: OwnedFd = nix::fcntl::open(
            &root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let r = rootfd.as_fd();

        // /etc -> /host/etc is followed inside the root, and created there.
        let fd = open_in_root(r, Path::new("/etc/passwd"), Create::File).unwrap();
        assert_eq!(ino(&fd), ino_of(&root.join("host/etc/passwd")));
        // `..` and relative links never climb above the root.
        let fd = open_in_root(r, Path::new("/up/x"), Create::Dir).unwrap();
        assert_eq!(ino(&fd), ino_of(&root.join("x")));
        let fd = open_in_root(r, Path::new("/../../a"), Create::Dir).unwrap();
        assert_eq!(ino(&fd), ino_of(&root.join("a")));
        let fd = open_in_root(r, Path::new("/rel/f2"), Create::File).unwrap();
        assert_eq!(ino(&fd), ino_of(&root.join("real/dir/f2")));
        // An absolute link to a host path names that path inside the root.
        let fd = open_in_root(r, Path::new("/abs/m"), Create::Dir).unwrap();
        let inside = root.join(outside.strip_prefix("/").unwrap()).join("m");
        assert_eq!(ino(&fd), ino_of(&inside));
        assert!(!outside.join("m").exists(), "created on the host");
        // A dangling link as the last component: created inside, not at its host target.
        let fd = open_in_root(r, Path::new("/real/f"), Create::File).unwrap();
        let inside = root.join(outside.strip_prefix("/").unwrap()).join("file");
        assert_eq!(ino(&fd), ino_of(&inside));
        assert!(!outside.join("file").exists(), "created on the host");
        // Missing without create, loops, and a file used as a directory are errors.
        assert!(open_in_root(r, Path::new("/nothing"), Create::Nothing).is_err());
        assert!(matches!(
            open_in_root(r, Path::new("/loop"), Create::Nothing),
            Err(Error::SymlinkLoop { .. })
        ));
        assert!(open_in_root(r, Path::new("/etc/passwd/x"), Create::Dir).is_err());
        // The root itself.
        let fd = open_in_root(r, Path::new("/"), Create::Nothing).unwrap();
        assert_eq!(ino(&fd), ino_of(&root));
        fs::remove_dir_all(&base).unwrap();
    }
}
