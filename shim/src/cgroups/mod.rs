//! Cgroups: where a container's cgroups are, creating them, limits, stats, freezing, OOM and
//! removal — one [`Manager`] interface with a cgroup v1 ([`v1::V1`]) and a v2 ([`v2::V2`])
//! implementation.
//!
//! The host may have cgroup v1 hierarchies, the unified v2 hierarchy, or both (hybrid: v1
//! controllers plus a v2 mount at /sys/fs/cgroup/unified, whose `cgroup.controllers` is often
//! nearly empty). A container gets `<parent>/<name>` in every mounted hierarchy, so it is
//! tracked wherever the host tracks processes. Limits go where the controllers are: with any
//! v1 hierarchy mounted (v1 or hybrid) the v1 implementation writes them to the v1 controllers;
//! on a pure v2 host the v2 implementation writes them to the unified directory, after enabling
//! the controllers in `cgroup.subtree_control` of every level above it.
//!
//! Devices: a default allow list like Docker's ([`devices::DEFAULT_RULES`]) plus the requested
//! ones, everything else denied (with `devices_exact`, OCI's ordered allow and deny rules
//! alone, the last match deciding); v1 writes `devices.deny`/`devices.allow`, v2 attaches an eBPF
//! program ([`bpf`]) to the cgroup. [`DeviceMode::Bpf`] forces the eBPF filter on a hybrid
//! host too (the program applies to the processes of the v2 directory, which every container
//! has there).

pub mod bpf;
pub mod devices;
mod extras;
mod layout;
pub mod stats;
pub mod v1;
pub mod v2;

use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::EpollFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::Cgroups;
pub use layout::{Hierarchy, Layout};
pub use stats::Stats;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the cgroup mounts: {0}")]
    Mounts(#[source] io::Error),
    #[error("no cgroup hierarchy is mounted")]
    NoHierarchy,
    #[error("creating cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("removing cgroup {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Several cgroup directories could not be removed (each with its error).
    #[error("removing cgroups: {0}")]
    RemoveMany(String),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A value this host's kernel does not take; `field` names the container.json field.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The host lacks what a field needs (a controller, swap accounting, cgroup v2).
    #[error("{0}")]
    Unsupported(String),
    #[error("freezing the container: {0}")]
    Freeze(String),
    #[error(
        "the cgroup {0} exists already (another daemon's container, or a leftover): it is not \
         adopted; remove it, or give this daemon a --cgroup-parent of its own"
    )]
    Exists(PathBuf),
    #[error("the eBPF device filter: {0}")]
    Bpf(String),
    #[error("watching for OOM kills: {0}")]
    Oom(String),
}

impl Error {
    /// Whether the system is not in the state the request needs (FAILED_PRECONDITION).
    pub fn is_precondition(&self) -> bool {
        matches!(self, Error::Exists(_))
    }

    /// Whether the request is at fault (INVALID_ARGUMENT) rather than the system.
    pub fn is_invalid(&self) -> bool {
        match self {
            Error::Invalid { .. } | Error::Unsupported(_) => true,
            // The kernel refuses a value it does not take (e.g. a cpuset outside the parent's).
            Error::Write { source, .. } => {
                matches!(
                    source.raw_os_error(),
                    Some(libc::EINVAL) | Some(libc::ERANGE)
                )
            }
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

pub(crate) const UNLIMITED_TEXT: &str = "max";

/// Controllers enabled for the container on the v2 hierarchy, when the host offers them.
pub const V2_CONTROLLERS: [&str; 5] = ["cpu", "cpuset", "io", "memory", "pids"];

/// A container's cgroups: one directory per hierarchy.
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// `parent/name`, relative to each hierarchy's root.
    pub relative: PathBuf,
    pub dirs: Vec<(Hierarchy, PathBuf)>,
    /// Cgroups the container's processes join but does not own (the parent's, see
    /// [`Cgroup::sharing`]): made if missing, never emptied, frozen or removed.
    pub joined: Vec<(Hierarchy, PathBuf)>,
}

impl Cgroup {
    pub fn new(layout: &Layout, parent: &str, name: &str) -> Result<Cgroup> {
        if layout.hierarchies.is_empty() {
            return Err(Error::NoHierarchy);
        }
        let relative = Path::new(parent.trim_matches('/')).join(name);
        let dirs = layout
            .hierarchies
            .iter()
            .map(|h| (h.clone(), h.mountpoint.join(&relative)))
            .collect();
        Ok(Cgroup {
            relative,
            dirs,
            joined: Vec::new(),
        })
    }

    /// This cgroup with the directories of the v1 hierarchies holding `controllers` replaced
    /// by the parent's, joined and shared (container.json `share_parent`). Nothing changes for
    /// a controller not on a v1 hierarchy (v2 has one tree for all).
    pub fn sharing(mut self, controllers: &[String]) -> Cgroup {
        let parent = self
            .relative
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let (shared, rest): (Vec<_>, Vec<_>) = self
            .dirs
            .into_iter()
            .partition(|(h, _)| !h.v2 && h.controllers.iter().any(|c| controllers.contains(c)));
        self.dirs = rest;
        self.joined = shared
            .into_iter()
            .map(|(h, _)| {
                let dir = h.mountpoint.join(&parent);
                (h, dir)
            })
            .collect();
        self
    }

    /// Whether `controller`'s hierarchy is shared with the parent ([`Cgroup::sharing`]).
    pub fn shares(&self, controller: &str) -> bool {
        self.joined
            .iter()
            .any(|(h, _)| h.controllers.iter().any(|c| c == controller))
    }

    /// Creates the directories (and their parents). cpuset parents get the cpus and mems of
    /// theirs, without which v1 refuses tasks. On v2, every level above the container enables
    /// the controllers of [`V2_CONTROLLERS`] it has in `cgroup.subtree_control`, so the
    /// container's directory gets their files.
    pub fn create(&self) -> Result<()> {
        for (h, dir) in &self.dirs {
            self.create_in(h, dir)?;
        }
        self.create_joined()
    }

    fn create_in(&self, h: &Hierarchy, dir: &Path) -> Result<()> {
        make_dirs(h, &self.relative, dir)
    }

    /// Makes the joined (shared) directories where missing, initialised as [`make_dirs`]
    /// does; one that exists is fine.
    fn create_joined(&self) -> Result<()> {
        let parent = self.relative.parent().unwrap_or(Path::new(""));
        for (h, _) in &self.joined {
            make_dirs(h, parent, Path::new(""))?;
        }
        Ok(())
    }

    /// The v1 part of this cgroup only (a pool's: v2 has no rename, see [`Cgroup::adopt`]).
    pub fn v1_only(mut self) -> Cgroup {
        self.dirs.retain(|(h, _)| !h.v2);
        self
    }

    /// Makes this cgroup out of `pool` (a set made ahead by a parked shim, see
    /// [`crate::process::Nursery`], in the same parent): its v1 directories are renamed to
    /// this cgroup's, which must not exist, and the v2 directory is made new (v2 has no
    /// rename; the init is born into it). Then the counters the pool's own process ran up
    /// are reset ([`Cgroup::reset_counters`]).
    pub fn adopt(&self, pool: &Cgroup) -> Result<()> {
        self.create_joined()?;
        for (h, dir) in &self.dirs {
            if h.v2 {
                self.create_in(h, dir)?;
                continue;
            }
            let from = pool
                .dirs
                .iter()
                .find(|(p, _)| p.mountpoint == h.mountpoint)
                .map(|(_, d)| d)
                .ok_or_else(|| Error::Create {
                    path: dir.clone(),
                    source: io::Error::other("the pool has no directory in this hierarchy"),
                })?;
            match fs::rename(from, dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(Error::Exists(dir.clone()))
                }
                // kernfs says EEXIST; a plain directory rename would say ENOTEMPTY.
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                    return Err(Error::Exists(dir.clone()))
                }
                Err(source) => {
                    return Err(Error::Create {
                        path: dir.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Zeroes the v1 counters that can be: CPU time and the memory high-water marks and
    /// failure counts (what a pool's process, gone before the container runs, left in them).
    pub fn reset_counters(&self) {
        for (h, dir) in &self.dirs {
            if h.v2 {
                continue;
            }
            for file in [
                "cpuacct.usage",
                "memory.max_usage_in_bytes",
                "memory.memsw.max_usage_in_bytes",
                "memory.kmem.max_usage_in_bytes",
                "memory.failcnt",
                "memory.memsw.failcnt",
                "memory.kmem.failcnt",
            ] {
                let path = dir.join(file);
                if path.exists() {
                    let _ = fs::write(path, "0");
                }
            }
        }
    }

    /// Moves `pid` into every one of the container's cgroups.
    pub fn add(&self, pid: Pid) -> Result<()> {
        for (_, dir) in self.dirs.iter().chain(&self.joined) {
            add_to(dir, pid)?;
        }
        Ok(())
    }

    /// The directory of a v1 controller, or the v2 directory.
    pub fn dir_for(&self, controller: &str) -> Option<&Path> {
        self.v1_dir(controller).or_else(|| self.v2_dir())
    }

    /// The directory of a v1 controller's hierarchy, if one is mounted.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| !h.v2 && h.controllers.iter().any(|c| c == controller))
            .map(|(_, d)| d.as_path())
    }

    /// The directory in the unified (v2) hierarchy, if one is mounted.
    pub fn v2_dir(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| h.v2)
            .map(|(_, d)| d.as_path())
    }

    /// Every process in the container's cgroup (from every hierarchy), ascending.
    pub fn procs(&self) -> Vec<Pid> {
        let mut out: Vec<Pid> = Vec::new();
        for (_, dir) in &self.dirs {
            read_procs(dir, &mut out);
        }
        out.sort_by_key(|p| p.as_raw());
        out
    }

    /// Sends `sig` to every process in the cgroup; returns how many were signalled.
    pub fn signal_all(&self, sig: Signal) -> usize {
        self.procs()
            .into_iter()
            .filter(|p| kill(*p, sig).is_ok())
            .count()
    }

    /// Kills what is left, in the container's cgroups and in any cgroup made below them (a
    /// container with a writable cgroupfs may nest its own), and removes the directories,
    /// deepest first. Waits a little for killed processes to leave. Missing directories are
    /// fine. Every directory is tried; the error names each one that could not be removed.
    /// A frozen cgroup must be thawed first ([`Manager::destroy`] does; nested ones are
    /// thawed here).
    pub fn destroy(&self) -> Result<()> {
        // The usual case, a container whose processes are all gone and which made no cgroup
        // of its own: one rmdir each. Any directory the kernel refuses (EBUSY: a process
        // still in it, or a nested cgroup) takes the full way below.
        let removed = |d: &PathBuf| match fs::remove_dir(d) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        };
        if self.dirs.iter().fold(true, |all, (_, d)| removed(d) && all) {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut pids = Vec::new();
            for (_, top) in &self.dirs {
                for dir in tree(top) {
                    thaw_dir(&dir);
                    read_procs(&dir, &mut pids);
                }
            }
            let signalled = pids
                .into_iter()
                .filter(|p| kill(*p, Signal::SIGKILL).is_ok())
                .count();
            if signalled == 0 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // EBUSY while a killed task is still leaving: retried for a second in all.
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut left: Vec<(PathBuf, io::Error)> = Vec::new();
        loop {
            left.clear();
            for (_, top) in &self.dirs {
                for dir in tree(top) {
                    match fs::remove_dir(&dir) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => left.push((dir, e)),
                    }
                }
            }
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match left.len() {
            0 => Ok(()),
            1 => {
                let (path, source) = left.remove(0);
                Err(Error::Remove { path, source })
            }
            _ => Err(Error::RemoveMany(
                left.iter()
                    .map(|(p, e)| format!("{}: {e}", p.display()))
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }
}

/// Makes `relative` (and the levels above it) in hierarchy `h`, walking down from its root
/// so each new level is initialised: a v1 cpuset level gets its parent's cpus and mems
/// (without which v1 refuses tasks), a v2 level above enables [`V2_CONTROLLERS`] for the one
/// below. `leaf`, when it is the last level, must be new (a container never adopts a cgroup);
/// pass an empty path to accept an existing one.
fn make_dirs(h: &Hierarchy, relative: &Path, leaf: &Path) -> Result<()> {
    let is_cpuset = !h.v2 && h.controllers.iter().any(|c| c == "cpuset");
    let mut cur = h.mountpoint.clone();
    for part in relative.components() {
        if h.v2 {
            enable_controllers(&cur)?;
        }
        cur.push(part);
        match fs::create_dir(&cur) {
            Ok(()) => {}
            // The container's own directory must be new: never adopt one.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && cur == *leaf => {
                return Err(Error::Exists(cur));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Create {
                    path: cur.clone(),
                    source,
                })
            }
        }
        if is_cpuset {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let own = fs::read_to_string(cur.join(file)).unwrap_or_default();
                if own.trim().is_empty() {
                    let parent = cur.parent().map(|p| p.join(file)).unwrap_or_default();
                    let value = fs::read_to_string(&parent).unwrap_or_default();
                    write(&cur.join(file), value.trim())?;
                }
            }
        }
    }
    debug_assert!(leaf.as_os_str().is_empty() || cur == leaf);
    Ok(())
}

/// Moves `pid` into the cgroup `dir`.
pub fn add_to(dir: &Path, pid: Pid) -> Result<()> {
    write(&dir.join("cgroup.procs"), &pid.to_string())
}

/// Adds the pids in `dir/cgroup.procs` to `out` (once each).
fn read_procs(dir: &Path, out: &mut Vec<Pid>) {
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        for p in text
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .map(Pid::from_raw)
        {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
}

/// `top` and every cgroup below it, deepest first; nothing when `top` is missing.
fn tree(top: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
        // Cgroupfs directories are cgroups; files are its interface. Bounded depth: a
        // container cannot make the walk run away.
        if depth < 64 {
            if let Ok(entries) = fs::read_dir(dir) {
                for e in entries.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        walk(&e.path(), out, depth + 1);
                    }
                }
            }
        }
        out.push(dir.to_owned());
    }
    let mut out = Vec::new();
    if top.is_dir() {
        walk(top, &mut out, 0);
    }
    out
}

/// Thaws a cgroup that was frozen on its own (v1 `freezer.state`, v2 `cgroup.freeze`), so
/// the SIGKILL that follows takes effect. Best effort: the files exist only where the
/// freezer is.
fn thaw_dir(dir: &Path) {
    let v1 = dir.join("freezer.state");
    if fs::read_to_string(&v1).is_ok_and(|s| s.trim() != "THAWED") {
        let _ = fs::write(&v1, "THAWED");
    }
    let v2 = dir.join("cgroup.freeze");
    if fs::read_to_string(&v2).is_ok_and(|s| s.trim() == "1") {
        let _ = fs::write(&v2, "0");
    }
}

/// Enables, in `dir/cgroup.subtree_control`, the controllers of [`V2_CONTROLLERS`] that
/// `dir/cgroup.controllers` offers and that are not enabled yet (all in one write).
fn enable_controllers(dir: &Path) -> Result<()> {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let has = |text: &str, c: &str| text.split_whitespace().any(|w| w == c);
    let want: Vec<String> = V2_CONTROLLERS
        .iter()
        .filter(|c| has(&available, c) && !has(&enabled, c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    match write(&dir.join("cgroup.subtree_control"), &want.join(" ")) {
        // Above a subtree delegated to a user: not the user's to change. What is missing
        // there is missing below, and a limit that needs it says so when it is written.
        Err(Error::Write { source, .. })
            if crate::sys::rootless()
                && matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM)) =>
        {
            Ok(())
        }
        r => r,
    }
}

/// How device access is enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceMode {
    /// v1 `devices.allow`/`devices.deny` where the v1 devices controller is mounted; the eBPF
    /// filter on a pure v2 host.
    #[default]
    Auto,
    /// The eBPF filter on the v2 directory, also on a hybrid host (the v1 devices cgroup is
    /// then left open). Needs the unified hierarchy.
    Bpf,
}

impl DeviceMode {
    pub fn parse(s: &str) -> Option<DeviceMode> {
        match s {
            "auto" => Some(DeviceMode::Auto),
            "bpf" => Some(DeviceMode::Bpf),
            _ => None,
        }
    }
}

/// A container's cgroups, whichever version the host has: one interface over v1 and v2.
pub trait Manager {
    /// The container's directories, one per mounted hierarchy.
    fn cgroup(&self) -> &Cgroup;
    /// "v1" or "v2": which implementation applies the limits.
    fn version(&self) -> &'static str;

    /// Creates the directories.
    fn create(&self) -> Result<()> {
        self.cgroup().create()
    }
    /// Puts `pid` in every directory (the init does this before it execs).
    fn apply(&self, pid: Pid) -> Result<()> {
        self.cgroup().add(pid)
    }
    /// Writes the limits of `r` (every non-zero field; 0 leaves a limit as it is). Used at
    /// create and, with the merged values, by live updates.
    fn set(&self, r: &Cgroups) -> Result<()>;
    /// Writes the pids limit alone (0 leaves it; negative: unlimited).
    fn set_pids_limit(&self, limit: i64) -> Result<()> {
        if limit == 0 {
            return Ok(());
        }
        let value = if limit < 0 {
            UNLIMITED_TEXT.to_owned()
        } else {
            limit.to_string()
        };
        match self.cgroup().dir_for("pids") {
            Some(dir) => write(&dir.join("pids.max"), &value),
            None => Ok(()),
        }
    }
    /// Installs the device rules: the default list plus `r.devices` (`r.devices` alone, in
    /// order, with `r.devices_exact`), or everything with `r.device_access`. Once, at create.
    fn set_devices(&self, r: &Cgroups) -> Result<()>;
    /// Reads cpu, memory, pids and block I/O figures.
    fn stats(&self) -> Result<Stats>;
    /// Freezes every process; returns once the kernel reports them frozen.
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    /// Every process in the container, ascending.
    fn pids(&self) -> Vec<Pid> {
        self.cgroup().procs()
    }
    /// Signals every process; returns how many were signalled.
    fn kill_all(&self, sig: Signal) -> usize {
        self.cgroup().signal_all(sig)
    }
    /// How many processes the kernel's OOM killer ended in the cgroup (None: not counted here).
    fn oom_kills(&self) -> Option<u64>;
    /// A descriptor that becomes ready when the cgroup hits its memory limit.
    fn watch_oom(&self) -> Result<Option<OomWatch>>;
    /// Thaws, kills what is left and removes the directories.
    fn destroy(&self) -> Result<()> {
        let _ = self.thaw();
        self.cgroup().destroy()
    }
}

/// Opens the manager for a container's `cgroups` section on this host: v1 when any v1
/// hierarchy is mounted (v1 or hybrid), v2 on a pure v2 host.
pub fn open(layout: &Layout, cg: &Cgroups, devices: DeviceMode) -> Result<Box<dyn Manager>> {
    let mut cgroup = Cgroup::new(layout, &cg.parent, &cg.name)?;
    if !cg.share_parent.is_empty() {
        cgroup = cgroup.sharing(&cg.share_parent);
    }
    if devices == DeviceMode::Bpf && cgroup.v2_dir().is_none() {
        return Err(Error::Unsupported(
            "the eBPF device filter needs the cgroup v2 hierarchy, which is not mounted".into(),
        ));
    }
    if layout.hierarchies.iter().any(|h| !h.v2) {
        Ok(Box::new(v1::V1::new(cgroup, devices == DeviceMode::Bpf)))
    } else {
        Ok(Box::new(v2::V2::new(cgroup)?))
    }
}

/// A descriptor the shim's epoll loop watches for OOM notifications.
pub struct OomWatch {
    fd: OwnedFd,
    kind: OomKind,
}

enum OomKind {
    /// v1: an eventfd registered through `cgroup.event_control` for `memory.oom_control`
    /// (kept open while registered).
    EventFd { _control: File },
    /// v2: `memory.events`, which signals EPOLLPRI when it changes.
    Kernfs,
}

impl OomWatch {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// What to ask epoll for.
    pub fn epoll_flags(&self) -> EpollFlags {
        match self.kind {
            OomKind::EventFd { .. } => EpollFlags::EPOLLIN,
            OomKind::Kernfs => EpollFlags::EPOLLPRI,
        }
    }

    /// Consumes a notification so it is not reported again.
    pub fn drain(&self) {
        match self.kind {
            OomKind::EventFd { .. } => {
                let mut buf = [0u8; 8];
                let _ = nix::unistd::read(&self.fd, &mut buf);
            }
            OomKind::Kernfs => {
                // kernfs re-arms the notification when the file is read again.
                if let Ok(mut f) = self.fd.try_clone().map(File::from) {
                    let mut s = String::new();
                    let _ = f.rewind();
                    let _ = f.read_to_string(&mut s);
                }
            }
        }
    }
}

/// Registers an eventfd for `memory.oom_control` of the v1 memory cgroup `dir`.
fn oom_eventfd(dir: &Path) -> Result<OomWatch> {
    use nix::sys::eventfd::{EfdFlags, EventFd};
    use std::os::fd::AsRawFd;
    let control_path = dir.join("memory.oom_control");
    let control = File::open(&control_path).map_err(|source| Error::Read {
        path: control_path,
        source,
    })?;
    let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|e: Errno| Error::Oom(format!("eventfd: {e}")))?;
    let fd: OwnedFd = efd.into();
    write(
        &dir.join("cgroup.event_control"),
        &format!("{} {}", fd.as_raw_fd(), control.as_raw_fd()),
    )?;
    Ok(OomWatch {
        fd,
        kind: OomKind::EventFd { _control: control },
    })
}

/// Opens a v2 events file (`memory.events`, `cgroup.events`) for EPOLLPRI notifications:
/// kernfs signals them when the file's contents change.
pub(crate) fn kernfs_watch(path: &Path) -> Result<OomWatch> {
    let mut f = File::open(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut s = String::new();
    let _ = f.read_to_string(&mut s); // arms the notification
    Ok(OomWatch {
        fd: f.into(),
        kind: OomKind::Kernfs,
    })
}

/// The CPUs a container may be given: online, and in the root cpuset. None when unknown.
pub fn host_cpus(layout: &Layout) -> Option<Vec<u32>> {
    host_set(
        layout,
        "/sys/devices/system/cpu/online",
        "cpuset.cpus",
        "cpuset.cpus.effective",
    )
}

/// The memory nodes a container may be given: online, and in the root cpuset.
pub fn host_mems(layout: &Layout) -> Option<Vec<u32>> {
    host_set(
        layout,
        "/sys/devices/system/node/online",
        "cpuset.mems",
        "cpuset.mems.effective",
    )
}

fn host_set(layout: &Layout, online: &str, v1_file: &str, v2_file: &str) -> Option<Vec<u32>> {
    let parse = |p: &Path| {
        fs::read_to_string(p)
            .ok()
            .and_then(|t| crate::config::parse_cpu_list(&t).ok())
    };
    let root = layout
        .hierarchies
        .iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "cpuset"))
        .map(|h| h.mountpoint.join(v1_file))
        .or_else(|| {
            layout
                .hierarchies
                .iter()
                .find(|h| h.v2)
                .map(|h| h.mountpoint.join(v2_file))
        });
    match (parse(Path::new(online)), root.as_deref().and_then(parse)) {
        (Some(a), Some(b)) => Some(a.into_iter().filter(|x| b.contains(x)).collect()),
        (a, b) => a.or(b),
    }
}

/// Reads a cgroup file.
pub(crate) fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a cgroup file holding one number ("max" and v1's "unlimited" read as None).
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    stats::parse_limit(&fs::read_to_string(path).ok()?)
}

/// Polls `done` until it holds or `timeout` passes, sleeping a little longer each time.
pub(crate) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Writes one value to a cgroup file.
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|source| Error::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// Takes the kernel's cgroup migration lock once, by moving the calling process into the
/// cgroup it is already in (a no-op move), in the first mounted hierarchy.
///
/// Every write to `cgroup.procs` takes `cgroup_threadgroup_rwsem` for writing; the first such
/// write after a quiet spell waits a whole RCU grace period (10 to 20 ms on a small VM) for the
/// lock to switch modes, and writes in the following grace period are cheap. A driver calls
/// this, off the request's path, as a create begins: the grace period then passes while the
/// shim starts, and the shim's move of the container's init does not wait for it.
pub fn prime_migration_lock() -> std::io::Result<()> {
    let layout = Layout::detect().map_err(|e| std::io::Error::other(e.to_string()))?;
    let own = fs::read_to_string("/proc/self/cgroup")?;
    for h in &layout.hierarchies {
        // /proc/self/cgroup: "ID:controllers:/path" ("0::/path" for v2).
        let path = own.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let matches = if h.v2 {
                controllers.is_empty()
            } else {
                let names: Vec<&str> = controllers.split(',').collect();
                !h.controllers.is_empty()
                    && h.controllers.iter().all(|c| names.contains(&c.as_str()))
            };
            matches.then(|| path.to_owned())
        });
        if let Some(path) = path {
            let procs = h
                .mountpoint
                .join(path.trim_start_matches('/'))
                .join("cgroup.procs");
            return fs::write(procs, std::process::id().to_string());
        }
    }
    Err(std::io::ErrorKind::NotFound.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The v2 notification the OOM watch relies on, for real: a change of a kernfs events file
    /// (here `cgroup.events` turning `populated 1`) wakes epoll with EPOLLPRI. Needs root and
    /// a mounted v2 hierarchy (also on a hybrid host); skipped otherwise.
    #[test]
    fn kernfs_events_wake_epoll() {
        use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollTimeout};
        let Some(v2) = Layout::detect()
            .ok()
            .and_then(|l| l.hierarchies.into_iter().find(|h| h.v2))
        else {
            eprintln!("skipped: no cgroup v2 hierarchy");
            return;
        };
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = v2
            .mountpoint
            .join(format!("edtest-unit-kernfs-{}", std::process::id()));
        fs::create_dir(&dir).unwrap();
        struct Cleanup(PathBuf, Option<std::process::Child>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                if let Some(c) = &mut self.1 {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                let _ = wait_until(Duration::from_secs(5), || fs::remove_dir(&self.0).is_ok());
            }
        }
        let mut cleanup = Cleanup(dir.clone(), None);
        let watch = kernfs_watch(&dir.join("cgroup.events")).unwrap();
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        epoll
            .add(watch.fd(), EpollEvent::new(watch.epoll_flags(), 7))
            .unwrap();
        let mut events = [EpollEvent::empty(); 4];
        assert_eq!(epoll.wait(&mut events, EpollTimeout::ZERO).unwrap(), 0);
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        cleanup.1 = Some(child);
        fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
        let n = epoll
            .wait(&mut events, EpollTimeout::from(2000u16))
            .unwrap();
        assert_eq!(n, 1, "no EPOLLPRI after cgroup.events changed");
        assert_eq!(events[0].data(), 7);
        watch.drain();
        assert_eq!(
            epoll.wait(&mut events, EpollTimeout::ZERO).unwrap(),
            0,
            "drained"
        );
    }
}
