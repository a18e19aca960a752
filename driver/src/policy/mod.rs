//! Who may ask for what: the policy for the callers the daemon admits besides root and its own
//! uid (`--allow-uid`, `--allow-gid`).
//!
//! `admitted-policy = "full"` (the default) lets them ask for anything root may: they are
//! root-equivalent. `"restricted"` confines them: they get only containers they cannot break
//! out of (no privileges, capabilities or devices beyond the defaults, no host namespace, host
//! paths only from the directories the operator named), and they see and touch only their own
//! containers. Root and the daemon's own uid are never restricted.
//!
//! This module owns every decision. The peer check (`server.rs`) puts the caller's [`Caller`]
//! into each request's extensions; the service then asks here, once per call, before the
//! driver does anything: [`Policy::create`] for Create and Run (the request's fields in
//! `create.rs`, host paths in `paths.rs`), [`Policy::container`] for every call that names a
//! container, [`Caller::sees`] for List and Events.

mod create;
mod paths;

use std::path::{Component, Path, PathBuf};

use execdriver_proto as pb;

use crate::error::{Error, Result};
pub use create::Limits;

/// What admitted callers (other than root and the daemon's uid) may ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Admitted {
    /// Anything root may: root-equivalent.
    #[default]
    Full,
    /// Only what [`create`] lets through, on their own containers.
    Restricted,
}

impl Admitted {
    /// `full` or `restricted` (the flag's and the config file's words).
    pub fn parse(s: &str) -> Option<Admitted> {
        match s {
            "full" => Some(Admitted::Full),
            "restricted" => Some(Admitted::Restricted),
            _ => None,
        }
    }
}

/// The placeholder a prefix may hold for the caller's uid: `/srv/data/{uid}`.
pub const UID_PLACEHOLDER: &str = "{uid}";

/// The daemon's policy: `--admitted-policy`, `--restricted-rootfs-prefix`,
/// `--restricted-mount-prefix`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub admitted: Admitted,
    /// Where a restricted caller's rootfs may be (absolute; `{uid}` is the caller's uid).
    pub rootfs_prefixes: Vec<String>,
    /// Where a restricted caller's bind mount sources may be.
    pub mount_prefixes: Vec<String>,
}

/// Who is calling, as the peer check found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    /// Under the restricted policy.
    pub restricted: bool,
}

impl Caller {
    /// The owner recorded for a container this caller creates: its uid when restricted.
    pub fn owner(&self) -> Option<u32> {
        self.restricted.then_some(self.uid)
    }

    /// Whether this caller may see and use a container with `owner`: an unrestricted caller
    /// every one, a restricted caller those it created.
    pub fn sees(&self, owner: Option<u32>) -> bool {
        !self.restricted || owner == Some(self.uid)
    }
}

impl Policy {
    /// Checks the prefixes (absolute, no `..`, not `/`); errors name the flag.
    pub fn new(
        admitted: Admitted,
        rootfs_prefixes: Vec<String>,
        mount_prefixes: Vec<String>,
    ) -> Result<Policy> {
        for (flag, list) in [
            ("--restricted-rootfs-prefix", &rootfs_prefixes),
            ("--restricted-mount-prefix", &mount_prefixes),
        ] {
            for p in list {
                let path = Path::new(p);
                if !path.is_absolute()
                    || path.components().any(|c| c == Component::ParentDir)
                    || path.components().count() < 2
                    || p.contains('\0')
                {
                    return Err(Error::invalid(
                        flag,
                        format!("{p:?}: an absolute directory below / without '..'"),
                    ));
                }
                if p.replace(UID_PLACEHOLDER, "").contains(['{', '}']) {
                    return Err(Error::invalid(
                        flag,
                        format!("{p:?}: {UID_PLACEHOLDER} is the only placeholder"),
                    ));
                }
            }
        }
        Ok(Policy {
            admitted,
            rootfs_prefixes,
            mount_prefixes,
        })
    }

    /// What an operator should hear at start: `admits_others` when --allow-uid or --allow-gid
    /// admits anyone besides root and the daemon's uid.
    pub fn warnings(&self, admits_others: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.admitted == Admitted::Full {
            if admits_others {
                out.push(
                    "--admitted-policy full: the users --allow-uid/--allow-gid admit are \
                     root-equivalent (see --admitted-policy restricted)"
                        .to_owned(),
                );
            }
            return out;
        }
        if !admits_others {
            out.push(
                "--admitted-policy restricted: no --allow-uid or --allow-gid admits anyone it \
                 would apply to"
                    .to_owned(),
            );
        }
        if self.rootfs_prefixes.is_empty() {
            out.push(
                "--admitted-policy restricted without --restricted-rootfs-prefix: restricted \
                 callers cannot create containers"
                    .to_owned(),
            );
        }
        for (flag, list) in [
            ("--restricted-rootfs-prefix", &self.rootfs_prefixes),
            ("--restricted-mount-prefix", &self.mount_prefixes),
        ] {
            for p in list.iter().filter(|p| !p.contains(UID_PLACEHOLDER)) {
                match paths::nosuid_nodev(Path::new(p)) {
                    Err(e) => out.push(format!("{flag} {p}: {e}")),
                    Ok(false) => out.push(format!(
                        "{flag} {p}: its filesystem is not mounted nosuid,nodev, so only \
                         read-only use of it is allowed"
                    )),
                    Ok(true) => {}
                }
            }
        }
        let hardlinks = std::fs::read_to_string("/proc/sys/fs/protected_hardlinks");
        if hardlinks.is_ok_and(|v| v.trim() != "1") {
            out.push(
                "fs.protected_hardlinks is not 1: a user may hard-link files it cannot read into \
                 a directory a restricted container mounts"
                    .to_owned(),
            );
        }
        out
    }

    /// The caller with uid `uid`, for a daemon running as `own_uid`.
    pub fn caller(&self, uid: u32, own_uid: u32) -> Caller {
        Caller {
            uid,
            restricted: self.admitted == Admitted::Restricted && uid != 0 && uid != own_uid,
        }
    }

    /// Create and Run: refuses (PERMISSION_DENIED naming the field) what a restricted caller
    /// may not ask for, and rewrites the request's host paths to the canonical paths it
    /// checked and its capability mask to drop MKNOD (see `create.rs`). `owner_of` gives the
    /// owner of an existing container (for NETWORK_MODE_CONTAINER). Unrestricted callers pass
    /// untouched.
    pub fn create(
        &self,
        caller: &Caller,
        req: &mut pb::CreateRequest,
        owner_of: &dyn Fn(&str) -> Result<Option<u32>>,
        limits: &Limits,
    ) -> Result<()> {
        if !caller.restricted {
            return Ok(());
        }
        let prefixes = |list: &[String]| -> Vec<PathBuf> {
            list.iter()
                .map(|p| PathBuf::from(p.replace(UID_PLACEHOLDER, &caller.uid.to_string())))
                .collect()
        };
        let rules = create::Rules {
            caller,
            rootfs_prefixes: prefixes(&self.rootfs_prefixes),
            mount_prefixes: prefixes(&self.mount_prefixes),
            owner_of,
            limits,
            nosuid_nodev: paths::nosuid_nodev,
        };
        rules.check(req)
    }

    /// Any call naming container `id`, whose recorded owner is `owner`: a restricted caller
    /// may use only the containers it created.
    pub fn container(&self, caller: &Caller, id: &str, owner: Option<u32>) -> Result<()> {
        if caller.sees(owner) {
            return Ok(());
        }
        Err(Error::denied(
            "id",
            format!(
                "container {id} was not created by uid {} under this policy; a restricted caller \
                 may use only its own containers",
                caller.uid
            ),
        ))
    }
}

#[cfg(test)]
mod tests;
