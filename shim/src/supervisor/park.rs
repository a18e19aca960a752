//! A parked shim: started ahead of any request (`execdriver-shim --park`), with a set of
//! cgroups of its own in every v1 hierarchy (`<parent>/.pool-TOKEN`) and a nursery parked in
//! them ([`Nursery`]). A create then adopts it: the daemon writes the shim's usual arguments
//! on its stdin, the cgroups are renamed to the container's, and the init is born in them.
//! What it saves on the create's path: starting a process, making the cgroups, the first
//! cgroup migration after a quiet spell (an RCU grace period) and a network namespace.
//!
//! The daemon keeps a few (`execdriverd --shim-pool N`); one it does not use ends when the
//! daemon goes away (its stdin closes): the nursery and the cgroups are removed, then the
//! shim exits.

use std::fs;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

use crate::cgroups::{self, Cgroup, Layout};
use crate::config::Cgroups;
use crate::process::Nursery;

use super::Error;

/// The cgroup name of the pool set `token` (never a container's: ids start with a letter or
/// digit).
pub fn pool_cgroup_name(token: &str) -> String {
    format!(".pool-{token}")
}

/// A parked shim's cgroups and nursery.
pub struct Parked {
    pub(super) nursery: Nursery,
    /// The pool's v1 directories (renamed to the container's when adopted).
    pub(super) pool: Cgroup,
    parent: String,
    /// Its set has no memory cgroup of its own (made for containers sharing the parent's).
    share: Vec<String>,
}

impl Parked {
    /// Makes the pool cgroups under `parent` (named after `token`) and parks a nursery in them.
    /// The set has no cgroup of the controllers in `share`: the nursery joins the parent's
    /// there, as the containers that adopt it do (`share_parent`).
    /// Its nursery pivots ahead (a staging root: `dir`'s empty `staging` directory, `dir`
    /// the parked shim's state directory, bound in the nursery's own mount namespace) unless
    /// the shim is rootless.
    pub fn park(
        parent: &str,
        token: &str,
        mut share: Vec<String>,
        dir: &Path,
    ) -> Result<Parked, Error> {
        share.sort();
        let layout = Layout::detect()?;
        let mut pool = Cgroup::new(&layout, parent, &pool_cgroup_name(token))?.v1_only();
        if !share.is_empty() {
            pool = pool.sharing(&share);
        }
        if let Err(e) = pool.create() {
            // What it made in the hierarchies before the one that failed.
            let _ = pool.destroy();
            return Err(e.into());
        }
        let procs: Vec<PathBuf> = pool
            .dirs
            .iter()
            .chain(&pool.joined)
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect();
        let staging = (!crate::sys::rootless()).then_some(dir);
        match Nursery::start(&procs, staging) {
            Ok(nursery) => Ok(Parked {
                nursery,
                parent: parent.trim_matches('/').to_owned(),
                share,
                pool,
            }),
            Err(e) => {
                let _ = pool.destroy();
                Err(e.into())
            }
        }
    }

    /// Whether a container with these cgroups can be made from this pool set (same parent, and
    /// a memory cgroup of its own or the parent's as the set has) and its nursery is still
    /// there (one killed meanwhile: the container is made as without a pool).
    pub(super) fn fits(&self, cg: &Cgroups) -> bool {
        !cg.name.is_empty()
            && cg.parent.trim_matches('/') == self.parent
            && {
                let mut want = cg.share_parent.clone();
                want.sort();
                want == self.share
            }
            && self.nursery.alive()
    }

    /// Ends the nursery and removes the pool's cgroups (what is left of them).
    pub fn discard(self) {
        self.nursery.dismiss();
        if let Err(e) = self.pool.destroy() {
            crate::log::warn!("parked shim: removing its cgroups: {e}");
        }
    }
}

/// Whether the daemon's end of the adoption pipe `from` is closed (the daemon is gone).
pub fn daemon_gone(from: &fs::File) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(1) => fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP)),
        _ => false,
    }
}

/// What a parked shim's wait ended with.
pub enum Adoption {
    /// The shim's arguments: a create.
    Adopted(Vec<String>),
    /// The daemon closed the pipe (or sent nothing readable): the shim is not wanted.
    NotWanted,
    /// The nursery died first (killed): the shim is of no use and goes, with
    /// [`execdriver_spec::state::PARK_ABANDONED`], so that a create written to it meanwhile
    /// (unread) is handed to another shim, and the daemon sees this one gone.
    NurseryGone,
}

/// Waits for the daemon's adoption: one line on `from`, a JSON array of the shim's arguments,
/// while the nursery lives.
pub fn wait_for_adoption(from: fs::File, parked: &Parked) -> Adoption {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [
            PollFd::new(from.as_fd(), PollFlags::POLLIN),
            PollFd::new(parked.nursery.gone_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Adoption::NotWanted,
            Ok(_) => {}
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            break;
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            crate::log::warn!("parked shim: its nursery is gone; not parked any more");
            return Adoption::NurseryGone;
        }
    }
    let mut line = String::new();
    match io::BufReader::new(from).read_line(&mut line) {
        Ok(n) if n > 0 => serde_json::from_str(&line)
            .map(Adoption::Adopted)
            .unwrap_or(Adoption::NotWanted),
        _ => Adoption::NotWanted,
    }
}

/// Moves the shim from its pool directory to the container's state directory `dir`: working
/// directory, diagnostics (`shim.log`), the nursery's staging root (renamed: the host's tree
/// is mounted on its `old` in the nursery's namespace, and the container's rootfs will be on
/// it; removing that directory would unmount them), and the pool directory removed. Returns
/// whether the parked set can be used: a staging root that could not be moved must not be
/// (the pool directory, where it stays, is removed by the daemon's sweeps).
pub fn move_in(pool_dir: &Path, dir: &Path) -> io::Result<bool> {
    std::env::set_current_dir(dir)?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(crate::state::SHIM_LOG))?;
    nix::unistd::dup2_stderr(&log).map_err(io::Error::from)?;
    let staging = pool_dir.join(crate::rootfs::staging::DIR);
    if staging.exists() {
        if let Err(e) = fs::rename(&staging, dir.join(crate::rootfs::staging::DIR)) {
            crate::log::warn!("parked shim: moving its staging root: {e}; made without it");
            return Ok(false);
        }
    }
    let _ = fs::remove_dir_all(pool_dir);
    Ok(true)
}

/// The pool sets under `parent` in every hierarchy (for the daemon's sweep of those a killed
/// parked shim left).
pub fn pool_cgroups(parent: &str) -> Vec<Cgroup> {
    let Ok(layout) = Layout::detect() else {
        return Vec::new();
    };
    let mut names = std::collections::BTreeSet::new();
    for h in &layout.hierarchies {
        if let Ok(entries) = fs::read_dir(h.mountpoint.join(parent.trim_matches('/'))) {
            for e in entries.flatten() {
                if let Some(n) = e.file_name().to_str() {
                    if n.starts_with(".pool-") {
                        names.insert(n.to_owned());
                    }
                }
            }
        }
    }
    names
        .into_iter()
        .filter_map(|n| cgroups::Cgroup::new(&layout, parent, &n).ok())
        .collect()
}
