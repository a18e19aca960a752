//! Idmapped bind mounts (`filesystems[].uid_mappings`/`gid_mappings`, the `idmap` and `ridmap`
//! options), prepared by the process that creates the container, before the clone: for each,
//! a user namespace holding the mount's maps (a short-lived child cloned into a new one,
//! mapped from outside, its /proc/PID/ns/user kept, the child killed and reaped), then a
//! detached copy of the source (`open_tree`) made idmapped through it (`mount_setattr`). The
//! init attaches the copy where it belongs (`move_mount`, in [`super::mounts`]); doing the
//! idmapping outside keeps it possible when the init has a user namespace of its own, which
//! holds no right over the host's filesystems.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;

use super::base::{refused, Result};
use crate::config::{Config, Filesystem};
use crate::security::IdMap;
use crate::sys::{self, Forked};

/// The idmapped trees of a container, by their index in `filesystems`.
#[derive(Debug, Default)]
pub struct Idmapped {
    trees: Vec<(usize, OwnedFd)>,
}

impl Idmapped {
    /// Makes the idmapped copy of every idmapped filesystem of `config`. The caller is
    /// single-threaded (it clones).
    pub fn prepare(config: &Config) -> Result<Idmapped> {
        let mut trees = Vec::new();
        for (i, fs) in config.filesystems.iter().flatten().enumerate() {
            if fs.idmapped() {
                let field = format!("filesystems[{i}] (config.json mounts[{i}])");
                trees.push((i, tree(config, fs, &field)?));
            }
        }
        Ok(Idmapped { trees })
    }

    /// The prepared tree of `filesystems[i]`.
    pub fn tree(&self, i: usize) -> Option<BorrowedFd<'_>> {
        self.trees
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, fd)| fd.as_fd())
    }

    /// The descriptors the init keeps.
    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.trees.iter().map(|(_, fd)| fd.as_raw_fd()).collect()
    }
}

fn tree(config: &Config, fs: &Filesystem, field: &str) -> Result<OwnedFd> {
    let has = |o: &str| fs.options.iter().any(|x| x == o);
    let (uids, gids) = if fs.uid_mappings.is_empty() {
        (&config.uid_mappings, &config.gid_mappings)
    } else {
        (&fs.uid_mappings, &fs.gid_mappings)
    };
    let source = Path::new(&fs.source);
    if !source.exists() {
        return Err(super::Error::MissingSource {
            field: format!("{field}.source"),
            path: source.to_owned(),
        });
    }
    let userns = user_namespace(uids, gids).map_err(|e| {
        refused(
            field,
            format!("making the user namespace of its mappings: {e}"),
        )
    })?;
    let tree = sys::open_tree_clone(source, has("rbind") || has("ridmap"))
        .map_err(|e| refused(field, format!("open_tree of {}: {e}", fs.source)))?;
    match sys::mount_setattr_idmap(tree.as_fd(), userns.as_fd(), has("ridmap")) {
        Ok(()) => Ok(tree),
        Err(Errno::EINVAL) => Err(refused(
            field,
            format!(
                "the filesystem of {} cannot be idmapped (or a mount under it, with ridmap)",
                fs.source
            ),
        )),
        Err(Errno::ENOSYS) => Err(refused(
            field,
            "this kernel has no idmapped mounts (Linux 5.12)",
        )),
        Err(e) => Err(refused(field, format!("idmapping {}: {e}", fs.source))),
    }
}

fn map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// A user namespace with these maps, held by its descriptor only.
fn user_namespace(uids: &[IdMap], gids: &[IdMap]) -> std::io::Result<File> {
    // SAFETY: the shim and execdriver-runc are single-threaded (no code of theirs starts a
    // thread); the child only waits to be killed.
    #[allow(unsafe_code)]
    let forked = unsafe { sys::clone_process(CloneFlags::CLONE_NEWUSER) }?;
    let pid = match forked {
        Forked::Child => {
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            loop {
                nix::unistd::pause();
            }
        }
        Forked::Parent(pid) => pid,
    };
    let made = (|| {
        let write = |name: &str, text: String| {
            File::options()
                .write(true)
                .open(format!("/proc/{pid}/{name}"))?
                .write_all(text.as_bytes())
        };
        write("uid_map", map_text(uids))?;
        write("gid_map", map_text(gids))?;
        File::open(format!("/proc/{pid}/ns/user"))
    })();
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_kernel_lines() {
        let m = IdMap {
            container_id: 1000,
            host_id: 0,
            size: 1,
        };
        assert_eq!(map_text(&[m]), "1000 0 1\n");
    }
}
