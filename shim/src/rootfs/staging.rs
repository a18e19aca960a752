//! A mount namespace pivoted ahead of time, so that a container's start pays no `pivot_root`.
//!
//! `pivot_root` visits every thread on the host (`chroot_fs_refs`: 0.09 ms with a few hundred,
//! 9 to 17 ms with 20,000, measured). A parked shim's nursery pays it while it waits: it makes
//! a mount namespace whose root is an empty directory of the parked shim's, bound read-only
//! (the staging root), with the host's tree, a slave of the host's, below it at `/old`, and
//! chroots into that tree, so everything
//! it and the init do by host path works as before. At the end of the init's setup the
//! container's rootfs is moved onto the staging root's `/`, the host's tree is detached, and
//! the init chroots into the rootfs, which is then the topmost mount on the namespace's root:
//! the kernel does not count it chrooted (a user namespace can be made inside), `/proc/self/
//! mountinfo` shows nothing outside it, and a chroot escape stops at it as after `pivot_root`
//! (it is mounted on the staging root's own root, which has no parent; beneath it there is
//! only that directory, empty and read-only).
//!
//! A bind mount, not a tmpfs: each filesystem a container keeps is a shrinker, and the kernel
//! sizes every memory cgroup's shrinker map by their number (`alloc_shrinker_info`) and
//! visits each filesystem's caches when a memory cgroup goes (`memcg_reparent_list_lrus`).
//!
//! ```text
//! nursery (parked)                 init (cloned with CLONE_NEWNS: a copy)
//! staging bind   "/"               reach(): fd on its copy of the staging root
//!   `-- /old  the host's tree      ... rootfs bind, /proc, /dev, ... inside /old (as always)
//! chroot /old                      enter(): rootfs onto "/", /old detached, chroot rootfs
//! ```

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use super::base::{Error, Result};

/// Where the host's tree is, below the staging root.
const OLD: &str = "old";

/// The staging root's directory, in the parked shim's (and then in the container's, moved
/// with the shim at adoption; removed with it).
pub const DIR: &str = "staging";

/// Which directory the staging root is (device and inode): the init checks that what it
/// reached is it, never the host's tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Staged {
    dev: u64,
    ino: u64,
}

impl Staged {
    // Not the same types on every target (32-bit ino_t).
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &nix::sys::stat::FileStat) -> Staged {
        Staged {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// A directory of the host's filesystem, not a capped tmpfs: a container that could remount
/// it (CAP_SYS_ADMIN, and a chroot escape to reach it) could write into it, as such a
/// container could anywhere it reaches.
///
/// In the nursery: makes a mount namespace of its own whose root is the empty directory
/// `staging` of `parked` (the parked shim's directory) bound read-only, with the host's tree
/// at `/old`, and chroots into that tree. Nothing of it reaches the host: the tree is made a
/// slave of the host's first. On error the caller goes back to the host's mount namespace.
pub fn prepare(parked: &Path) -> nix::Result<Staged> {
    let cwd = std::env::current_dir().ok();
    let dir = parked.join(DIR);
    let old = dir.join(OLD);
    let private = Mode::from_bits_truncate(0o700);
    nix::unistd::mkdir(&dir, private)?;
    nix::unistd::mkdir(&old, private)?;
    let staged = Staged::of(&nix::sys::stat::stat(&dir)?);
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )?;
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some(&dir),
        &dir,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    // Private: nothing the host mounts below the directory reaches the containers' roots.
    mount(
        None::<&str>,
        &dir,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    // Paid here, while parked: the walk over every thread on the host.
    pivot_root(&dir, &old)?;
    chdir("/")?;
    // Read-only, and empty but for the mount point: nothing is ever made in it.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | nodev,
        None::<&str>,
    )?;
    chroot(OLD)?;
    chdir("/")?;
    // Where it was (the parked shim's directory), seen from the host's tree as before; the
    // init starts from "/" of the tree ([`reach`] needs it there).
    if let Some(dir) = cwd {
        let _ = chdir(&dir);
    }
    Ok(staged)
}

/// In the init, first (its root is its copy of the host's tree, as the nursery left it): a
/// descriptor of its namespace's staging root. The
/// staging root is above the process's root, so it is reached as the kernel resolves `..`
/// once the root is elsewhere: chroot into a directory below, `..` from the tree's top is the
/// staging root; then back into the tree.
pub fn reach(expected: Staged) -> Result<OwnedFd> {
    let err = |what: &'static str| {
        move |e: nix::Error| Error::Staging {
            what,
            source: e.into(),
        }
    };
    chdir("/").map_err(err("chdir /"))?;
    chroot("/proc").map_err(err("chroot /proc"))?;
    chdir("..").map_err(err("chdir .."))?;
    let staging = nix::fcntl::open(
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("opening the staging root"))?;
    chdir(OLD).map_err(err("chdir old"))?;
    chroot(".").map_err(err("chroot old"))?;
    chdir("/").map_err(err("chdir /"))?;
    // The staging root is the directory the nursery bound, never the host's tree.
    let st = nix::sys::stat::fstat(&staging).map_err(err("stat of the staging root"))?;
    if Staged::of(&st) != expected {
        return Err(Error::Staging {
            what: "the staging root",
            source: std::io::Error::other("it is not the nursery's"),
        });
    }
    Ok(staging)
}

/// At the end of the init's setup, instead of `pivot_root`: the rootfs (`root`, its bind
/// mount's root) is moved onto the staging root, the host's tree (the init's root until now)
/// is detached, and the init's root becomes the rootfs.
pub fn enter(root: BorrowedFd<'_>, staging: OwnedFd, rootfs: &Path) -> Result<()> {
    let pivot = |source| Error::Pivot {
        rootfs: rootfs.to_owned(),
        source,
    };
    crate::sys::move_mount(root, staging.as_fd()).map_err(pivot)?;
    drop(staging);
    // "/" is the host's tree (a slave of the host's: the detach goes nowhere else).
    umount2("/", MntFlags::MNT_DETACH).map_err(pivot)?;
    fchdir(root).map_err(pivot)?;
    chroot(".").map_err(pivot)?;
    chdir("/").map_err(pivot)?;
    Ok(())
}
