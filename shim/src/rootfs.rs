//! The container's filesystem: propagation, bind mounts, /proc, /sys, /dev, and `pivot_root`.
//!
//! Runs in the container's init, inside its new mount namespace, before it execs. Nothing done
//! here is visible on the host: the first step makes every mount a slave of the host's, so
//! mounts made inside never propagate out, and they all vanish with the namespace.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
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

fn mkdir_p(path: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| Error::Create {
            path: path.to_owned(),
            source,
        })
}

/// Resolves `unsafe_path` inside `root` the way the container will see it: symlinks are
/// followed, but an absolute link or a `..` never leads above `root`. The result is under
/// `root`. Missing components are kept as they are (the caller may create them).
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    let mut resolved = PathBuf::new(); // relative to root
    let mut pending: Vec<std::ffi::OsString> = Vec::new();
    push_components(&mut pending, unsafe_path);
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match fs::symlink_metadata(&full) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(Error::SymlinkLoop {
                        path: unsafe_path.to_owned(),
                    });
                }
                let target = fs::read_link(&full).map_err(|source| Error::Create {
                    path: full.clone(),
                    source,
                })?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                push_components(&mut pending, &target);
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
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

/// Sets up the container's filesystem under `rootfs` and makes it `/`. The caller is the init,
/// in its new mount namespace.
pub fn setup(config: &Config, rootfs: &Path) -> Result<()> {
    if !rootfs.is_dir() {
        return Err(Error::NotADirectory(rootfs.to_owned()));
    }
    // No mount event made here may reach the host; host events still reach us (as in 2014).
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

    mount_proc_sys(config, rootfs)?;
    mount_dev(config, rootfs)?;
    for (i, m) in config.mounts.iter().enumerate() {
        bind_mount(rootfs, m, &format!("mounts[{i}]"))?;
    }
    enter_root(rootfs)?;
    if config.readonly_fs {
        remount_readonly(Path::new("/"))?;
    }
    Ok(())
}

fn mount_proc_sys(config: &Config, rootfs: &Path) -> Result<()> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = secure_join(rootfs, Path::new("/proc"))?;
    mkdir_p(&proc_dir, 0o555)?;
    do_mount(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        nosuid_nodev_noexec,
        None,
        "proc",
    )?;

    let sys_dir = secure_join(rootfs, Path::new("/sys"))?;
    mkdir_p(&sys_dir, 0o555)?;
    let ro = nosuid_nodev_noexec | MsFlags::MS_RDONLY;
    if config.has_namespace(Namespace::Net) {
        do_mount(
            Some(Path::new("sysfs")),
            &sys_dir,
            Some("sysfs"),
            ro,
            None,
            "sysfs",
        )?;
    } else {
        // A new sysfs instance is tied to a network namespace; share the host's, read-only.
        do_mount(
            Some(Path::new("/sys")),
            &sys_dir,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
            "sysfs bind",
        )?;
        remount_readonly(&sys_dir)?;
    }
    Ok(())
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

fn mount_dev(config: &Config, rootfs: &Path) -> Result<()> {
    let dev = secure_join(rootfs, Path::new("/dev"))?;
    mkdir_p(&dev, 0o755)?;
    do_mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
        "/dev tmpfs",
    )?;
    for (name, major, minor) in DEVICES {
        let path = dev.join(name);
        let mode = Mode::from_bits_truncate(0o666);
        match mknod(&path, SFlag::S_IFCHR, mode, makedev(major, minor)) {
            Ok(()) => {
                // mknod applies the umask; the devices must be usable by every user.
                fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).map_err(
                    |source| Error::Create {
                        path: path.clone(),
                        source,
                    },
                )?;
            }
            // In a user namespace mknod is refused: bind the host's node instead.
            Err(Errno::EPERM) => {
                fs::File::create(&path).map_err(|source| Error::Create {
                    path: path.clone(),
                    source,
                })?;
                let host = Path::new("/dev").join(name);
                do_mount(
                    Some(&host),
                    &path,
                    None,
                    MsFlags::MS_BIND,
                    None,
                    "device bind",
                )?;
            }
            Err(source) => {
                return Err(Error::Create {
                    path,
                    source: source.into(),
                });
            }
        }
    }
    make_requested_devices(config, rootfs)?;
    let pts = dev.join("pts");
    mkdir_p(&pts, 0o755)?;
    let gid_opt = if config.has_namespace(Namespace::User) {
        ""
    } else {
        ",gid=5"
    };
    do_mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&format!("newinstance,ptmxmode=0666,mode=0620{gid_opt}")),
        "devpts",
    )?;
    symlink("pts/ptmx", &dev.join("ptmx"))?;
    let shm = dev.join("shm");
    mkdir_p(&shm, 0o1777)?;
    do_mount(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
        "/dev/shm",
    )?;
    if config.has_namespace(Namespace::Ipc) {
        let mq = dev.join("mqueue");
        mkdir_p(&mq, 0o755)?;
        do_mount(
            Some(Path::new("mqueue")),
            &mq,
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
        symlink(target, &dev.join(link))?;
    }
    if config.tty {
        // The pty slave is bound here by the caller; make the mount point now.
        let console = dev.join("console");
        fs::File::create(&console).map_err(|source| Error::Create {
            path: console,
            source,
        })?;
    }
    Ok(())
}

/// Makes the nodes of the devices `cgroups.devices` asks for with a path (e.g. /dev/fuse), as
/// `docker run --device` does. The cgroup rules decide what may be done with them.
fn make_requested_devices(config: &Config, rootfs: &Path) -> Result<()> {
    let Some(cg) = &config.cgroups else {
        return Ok(());
    };
    for d in cg.devices.iter().filter(|d| !d.path.is_empty()) {
        let path = secure_join(rootfs, Path::new(&d.path))?;
        if let Some(parent) = path.parent() {
            mkdir_p(parent, 0o755)?;
        }
        let kind = if d.kind == "b" {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFCHR
        };
        let mode = if d.file_mode == 0 { 0o666 } else { d.file_mode };
        // Validated: both numbers are set and within Linux's ranges.
        let dev = makedev(d.major_number as u64, d.minor_number as u64);
        let _ = fs::remove_file(&path);
        match mknod(&path, kind, Mode::from_bits_truncate(mode), dev) {
            Ok(()) => {}
            // In a user namespace mknod is refused: bind the host's node instead.
            Err(Errno::EPERM) => {
                fs::File::create(&path).map_err(|source| Error::Create {
                    path: path.clone(),
                    source,
                })?;
                do_mount(
                    Some(Path::new(&d.path)),
                    &path,
                    None,
                    MsFlags::MS_BIND,
                    None,
                    "device bind",
                )?;
                continue;
            }
            Err(source) => {
                return Err(Error::Create {
                    path,
                    source: source.into(),
                })
            }
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|source| {
            Error::Create {
                path: path.clone(),
                source,
            }
        })?;
    }
    Ok(())
}

fn symlink(target: &str, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).map_err(|source| Error::Create {
        path: link.to_owned(),
        source,
    })
}

/// Bind-mounts `m.source` at `m.destination` inside `rootfs`, read-only unless writable.
fn bind_mount(rootfs: &Path, m: &Mount, field: &str) -> Result<()> {
    let src_meta = fs::metadata(&m.source).map_err(|_| Error::MissingSource {
        field: format!("{field}.source"),
        path: m.source.clone(),
    })?;
    let dest = secure_join(rootfs, &m.destination)?;
    if fs::symlink_metadata(&dest).is_err() {
        if src_meta.is_dir() {
            mkdir_p(&dest, 0o755)?;
        } else {
            if let Some(parent) = dest.parent() {
                mkdir_p(parent, 0o755)?;
            }
            fs::File::create(&dest).map_err(|source| Error::Create {
                path: dest.clone(),
                source,
            })?;
        }
    }
    do_mount(
        Some(&m.source),
        &dest,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        &format!("{field} bind"),
    )?;
    if !m.writable {
        remount_readonly(&dest)?;
    }
    let propagation = if m.private {
        MsFlags::MS_PRIVATE
    } else {
        MsFlags::MS_SLAVE
    };
    do_mount(
        None,
        &dest,
        None,
        propagation | MsFlags::MS_REC,
        None,
        &format!("{field} propagation"),
    )?;
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

/// Makes `rootfs` the root: `pivot_root(".", ".")` then detach the old root from under it.
fn enter_root(rootfs: &Path) -> Result<()> {
    let pivot = |source| Error::Pivot {
        rootfs: rootfs.to_owned(),
        source,
    };
    chdir(rootfs).map_err(pivot)?;
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

    #[test]
    fn secure_join_stays_inside() {
        let root = std::env::temp_dir().join(format!("execdriver-sj-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("real/dir")).unwrap();
        std::os::unix::fs::symlink("/host/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("real/dir", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            secure_join(&root, Path::new("/etc/passwd")).unwrap(),
            root.join("host/etc/passwd")
        );
        assert_eq!(
            secure_join(&root, Path::new("/up/x")).unwrap(),
            root.join("x")
        );
        assert_eq!(
            secure_join(&root, Path::new("/rel/f")).unwrap(),
            root.join("real/dir/f")
        );
        assert_eq!(
            secure_join(&root, Path::new("/../../a")).unwrap(),
            root.join("a")
        );
        assert!(secure_join(&root, Path::new("/loop")).is_err());
        fs::remove_dir_all(&root).unwrap();
    }
}
