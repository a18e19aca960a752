//! Device nodes in the container's /dev: the standard ones, those `cgroups.devices` asks for
//! (with their owner and mode), and the /dev symlinks (fd, stdin, stdout, stderr, ptmx, core).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{Gid, Uid};

use super::base::{do_mount, Error, Result};
use super::paths::{fd_path, open_in_root, Create};
use crate::config::Config;

/// The character devices every container gets: (name, major, minor).
const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Makes the standard devices in `dev` (the container's /dev).
pub fn make_standard_devices(dev: BorrowedFd<'_>) -> Result<()> {
    for (name, major, minor) in DEVICES {
        let node = Node {
            kind: SFlag::S_IFCHR,
            mode: 0o666,
            number: makedev(major, minor),
            owner: None,
        };
        make_node(dev, Path::new(name), &node, &Path::new("/dev").join(name))?;
    }
    Ok(())
}

/// The symlinks of /dev: fd, stdin, stdout, stderr; `ptmx` -> pts/ptmx; with `core`,
/// core -> /proc/kcore. One that exists already is left as it is.
pub fn make_links(dev: BorrowedFd<'_>, ptmx: bool, core: bool) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if core {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match symlink_at(dev, target, name) {
            Err(Error::Create { source, .. }) if source.raw_os_error() == Some(libc::EEXIST) => {}
            r => r?,
        }
    }
    if ptmx {
        // Whatever the rootfs had there: ptmx is the devpts instance's.
        let _ = nix::unistd::unlinkat(dev, "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir);
        symlink_at(dev, "pts/ptmx", "ptmx")?;
    }
    Ok(())
}

/// Makes (or, if it exists, finds) the directory `name` in `dir`, with exactly `mode`.
pub fn subdir(dir: BorrowedFd<'_>, name: &str, mode: u32) -> Result<OwnedFd> {
    let fd = open_in_root(dir, Path::new(name), Create::Dir)?;
    let err = |source: Errno| Error::Create {
        path: PathBuf::from("/dev").join(name),
        source: source.into(),
    };
    // mkdir applies the umask.
    let opened = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    nix::sys::stat::fchmod(opened, Mode::from_bits_truncate(mode)).map_err(err)?;
    Ok(fd)
}

pub fn symlink_at(dir: BorrowedFd<'_>, target: &str, name: &str) -> Result<()> {
    nix::unistd::symlinkat(target, dir, name).map_err(|source| Error::Create {
        path: PathBuf::from("/dev").join(name),
        source: source.into(),
    })
}

/// A device node to make.
struct Node {
    kind: SFlag,
    mode: u32,
    number: nix::sys::stat::dev_t,
    /// uid and gid; None: the creator's.
    owner: Option<(Option<u32>, Option<u32>)>,
}

/// Makes a device node `rel` (below /dev, whose descriptor `dir` is) with exactly its mode and
/// owner; where mknod is refused (a user namespace), binds the host's node `host` there
/// instead.
fn make_node(dir: BorrowedFd<'_>, rel: &Path, node: &Node, host: &Path) -> Result<()> {
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
    let mode = Mode::from_bits_truncate(node.mode);
    match mknodat(parent, name, node.kind, mode, node.number) {
        Ok(()) => {
            // mknod applies the umask; the mode must be exactly as asked.
            nix::sys::stat::fchmodat(
                parent,
                name,
                mode,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(err)?;
            if let Some((uid, gid)) = node.owner {
                nix::unistd::fchownat(
                    parent,
                    name,
                    uid.map(Uid::from_raw),
                    gid.map(Gid::from_raw),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(err)?;
            }
            Ok(())
        }
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
/// `docker run --device` does, with their mode, uid and gid. The cgroup rules decide what may
/// be done with them.
pub fn make_requested_devices(config: &Config, dev: BorrowedFd<'_>) -> Result<()> {
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
        // Validated: both numbers are set and within Linux's ranges.
        let node = Node {
            kind,
            mode: if d.file_mode == 0 { 0o666 } else { d.file_mode },
            number: makedev(d.major_number as u64, d.minor_number as u64),
            owner: (d.uid.is_some() || d.gid.is_some()).then_some((d.uid, d.gid)),
        };
        make_node(dev, rel, &node, Path::new(&d.path))?;
    }
    Ok(())
}
