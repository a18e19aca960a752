//! Namespaces a new container joins rather than makes (`namespace_paths`, OCI's
//! `linux.namespaces[].path`): their files are opened and checked before the clone, the clone
//! leaves their flags out, and the init enters them first thing, its user namespace first. The
//! PID namespace is entered by the shim around the clone (it applies to children only), so the
//! init is born in it. With a joined user namespace the namespaces the container makes are
//! made by the init after it entered it (so that user namespace owns them), by `unshare`.

use std::fs::File;

use nix::sched::CloneFlags;

use crate::config::{Config, Field};
use crate::namespaces::{self, Namespace};

use super::sync::Error;

/// The joined namespaces of a container being created.
#[derive(Debug)]
pub struct Joined {
    /// Entered by the init, in order: user first, mount last. Not the PID namespace.
    files: Vec<(Namespace, File)>,
    /// Entered by the shim for the clone.
    pid: Option<File>,
    /// With a joined user namespace: the namespaces the init makes after entering it.
    unshare: CloneFlags,
}

fn refuse(ns: Namespace, reason: impl Into<String>) -> Error {
    Error::Namespace {
        field: Field::NamespacePath(ns).json_path(),
        reason: reason.into(),
    }
}

impl Joined {
    /// Opens and checks the config's namespace files; refuses what cannot be joined.
    pub fn open(config: &Config) -> Result<Joined, Error> {
        let paths = &config.namespace_paths;
        if paths.contains_key(&Namespace::Net) {
            if let Some((i, _)) = config.netns_path() {
                return Err(refuse(
                    Namespace::Net,
                    format!("the network namespace is also joined by networks[{i}] (netns)"),
                ));
            }
            if let Some((i, _)) = config.slirp4netns() {
                return Err(refuse(
                    Namespace::Net,
                    format!("a joined network namespace is not configured: networks[{i}] (slirp4netns) cannot be made in it"),
                ));
            }
            if let Some((i, _)) = config.veths().next() {
                return Err(refuse(
                    Namespace::Net,
                    format!("a joined network namespace is not configured: networks[{i}] (veth) cannot be made in it"),
                ));
            }
        }
        let joins_user = paths.contains_key(&Namespace::User);
        if config.has_namespace(Namespace::User) && !joins_user {
            // The init is born in its new user namespace, where it holds no capability over
            // namespaces that user namespace does not own: setns would fail.
            if let Some(ns) = paths.keys().next() {
                return Err(refuse(
                    *ns,
                    "joining a namespace from a new user namespace is not supported; join the user namespace that owns it too",
                ));
            }
        }
        if joins_user
            && config.has_namespace(Namespace::Pid)
            && !paths.contains_key(&Namespace::Pid)
        {
            return Err(refuse(
                Namespace::User,
                "a new PID namespace inside a joined user namespace is not supported; join a PID namespace too, or make the user namespace",
            ));
        }
        let mut joined = Joined {
            files: Vec::new(),
            pid: None,
            unshare: CloneFlags::empty(),
        };
        let order = namespaces::ALL
            .into_iter()
            .filter(|ns| *ns != Namespace::Mount)
            .chain([Namespace::Mount]);
        for ns in order {
            let Some(path) = paths.get(&ns) else {
                continue;
            };
            let file =
                File::open(path).map_err(|e| refuse(ns, format!("{}: {e}", path.display())))?;
            let want = namespaces::clone_flag(ns).bits();
            match crate::sys::namespace_type(&file) {
                Ok(t) if t == want => {}
                Ok(_) => {
                    return Err(refuse(
                        ns,
                        format!("{} is a namespace of another kind", path.display()),
                    ))
                }
                Err(e) => {
                    return Err(refuse(
                        ns,
                        format!("{} is not a namespace file: {e}", path.display()),
                    ))
                }
            }
            if ns == Namespace::Pid {
                joined.pid = Some(file);
            } else {
                joined.files.push((ns, file));
            }
        }
        if joins_user {
            // Made after the init entered the user namespace; the cgroup namespace is made
            // later still, once the init is in its cgroups.
            joined.unshare = namespaces::clone_flags(&config.namespaces)
                - namespaces::clone_flags(&paths.keys().copied().collect::<Vec<_>>())
                - CloneFlags::CLONE_NEWCGROUP
                - CloneFlags::CLONE_NEWPID
                // Made by the creating process around the clone (`timens`).
                - namespaces::clone_flag(Namespace::Time);
        }
        Ok(joined)
    }

    /// The clone flags: the config's namespaces minus the joined ones (and, with a joined
    /// user namespace, none: the init makes them).
    pub fn clone_flags(&self, config: &Config) -> CloneFlags {
        if self.joins(Namespace::User) {
            return CloneFlags::empty();
        }
        let joined: Vec<Namespace> = config.namespace_paths.keys().copied().collect();
        namespaces::clone_flags(&config.namespaces) - namespaces::clone_flags(&joined)
    }

    pub fn joins(&self, ns: Namespace) -> bool {
        self.files.iter().any(|(n, _)| *n == ns) || (ns == Namespace::Pid && self.pid.is_some())
    }

    /// The descriptors the init keeps until it has entered them.
    pub fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.files.iter().map(|(_, f)| f.as_raw_fd()).collect()
    }

    /// The PID namespace to enter around the clone.
    pub fn pid(&self) -> Option<&File> {
        self.pid.as_ref()
    }

    /// In the init: enters the joined namespaces (user first), then makes the ones a joined
    /// user namespace owns.
    pub fn enter(&self) -> Result<(), String> {
        for (ns, file) in &self.files {
            nix::sched::setns(file, namespaces::clone_flag(*ns))
                .map_err(|e| format!("{}: setns: {e}", Field::NamespacePath(*ns).json_path()))?;
        }
        if !self.unshare.is_empty() {
            nix::sched::unshare(self.unshare).map_err(|e| {
                format!("making the namespaces inside the joined user namespace: {e}")
            })?;
        }
        Ok(())
    }
}

/// Runs `clone` with the PID namespace for children set to `pid` (when given), and sets it
/// back to ours for the caller afterwards.
pub fn in_pid_ns<T>(
    pid: Option<&File>,
    clone: impl FnOnce() -> nix::Result<T>,
    is_parent: impl Fn(&T) -> bool,
) -> Result<nix::Result<T>, Error> {
    let Some(theirs) = pid else {
        return Ok(clone());
    };
    let ours = File::open("/proc/self/ns/pid").map_err(Error::Join)?;
    nix::sched::setns(theirs, CloneFlags::CLONE_NEWPID).map_err(|e| Error::Join(e.into()))?;
    let forked = clone();
    if forked.as_ref().map_or(true, &is_parent) {
        // Only the parent goes back; failing to would put every later child in the container.
        nix::sched::setns(&ours, CloneFlags::CLONE_NEWPID).map_err(|e| Error::Join(e.into()))?;
    }
    Ok(forked)
}
