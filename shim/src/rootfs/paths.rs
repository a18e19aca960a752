//! Paths inside the rootfs: [`open_in_root`] resolves a path as the container will see it,
//! through descriptors, so no symlink in the rootfs leads a mount or a node onto the host.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};

use super::base::{Error, Result};

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
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
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

/// Opens the host path `path` (absolute) one component at a time without following any
/// symlink (`O_PATH | O_NOFOLLOW`), so what it returns is exactly at that path: a symlink, `.`
/// or `..` in it is refused (ELOOP, EINVAL), and so is a last component that is not a
/// directory and has more than one link (EMLINK: another link may be any file of its
/// filesystem). For `strict_host_paths`, whose paths the driver made canonical.
pub fn open_strict(path: &Path) -> std::result::Result<OwnedFd, Errno> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if !path.is_absolute() {
        return Err(Errno::EINVAL);
    }
    let mut fd = nix::fcntl::open("/", flags | OFlag::O_DIRECTORY, Mode::empty())?;
    for c in path.components() {
        match c {
            Component::RootDir => continue,
            Component::Normal(name) => {
                let next = openat(&fd, name, flags, Mode::empty())?;
                let kind = SFlag::from_bits_truncate(fstat(&next)?.st_mode) & SFlag::S_IFMT;
                if kind == SFlag::S_IFLNK {
                    return Err(Errno::ELOOP);
                }
                fd = next;
            }
            _ => return Err(Errno::EINVAL),
        }
    }
    let st = fstat(&fd)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR && st.st_nlink > 1 {
        return Err(Errno::EMLINK);
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsFd;
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

    #[test]
    fn open_strict_follows_no_symlink_anywhere() {
        let made = std::env::temp_dir().join(format!("execdriver-strict-{}", std::process::id()));
        let _ = fs::remove_dir_all(&made);
        fs::create_dir_all(made.join("dir/sub")).unwrap();
        let base = made.canonicalize().unwrap();
        fs::write(base.join("dir/file"), "x").unwrap();
        fs::hard_link(base.join("dir/file"), base.join("linked")).unwrap();
        fs::write(base.join("single"), "y").unwrap();
        std::os::unix::fs::symlink(base.join("dir"), base.join("link")).unwrap();
        let fd = open_strict(&base.join("dir/sub")).unwrap();
        assert_eq!(ino(&fd), ino_of(&base.join("dir/sub")));
        let fd = open_strict(&base.join("single")).unwrap();
        assert_eq!(ino(&fd), ino_of(&base.join("single")));
        assert_eq!(open_strict(&base.join("link")).unwrap_err(), Errno::ELOOP);
        assert_eq!(
            open_strict(&base.join("link/sub")).unwrap_err(),
            Errno::ELOOP
        );
        assert_eq!(
            open_strict(&base.join("dir/../dir")).unwrap_err(),
            Errno::EINVAL
        );
        assert_eq!(open_strict(Path::new("dir")).unwrap_err(), Errno::EINVAL);
        assert_eq!(
            open_strict(&base.join("linked")).unwrap_err(),
            Errno::EMLINK
        );
        assert_eq!(
            open_strict(&base.join("nothing")).unwrap_err(),
            Errno::ENOENT
        );
        fs::remove_dir_all(&base).unwrap();
    }
}
