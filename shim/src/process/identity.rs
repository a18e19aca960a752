//! Who a process of the container is beyond its uid and gid, as its config (or an exec's own
//! settings) says: supplementary groups, umask, capability plan, I/O priority and execution
//! domain (personality). The child's setup calls these at the points `child.rs` marks.

use nix::sys::stat::Mode;
use nix::unistd::Gid;

use crate::capabilities::Plan;
use crate::config::{Config, IoPriority};

use super::spec::ProcessSpec;

/// The umask a process gets when nothing says otherwise.
pub const DEFAULT_UMASK: u32 = 0o022;

/// `PER_LINUX32` (linux/personality.h): `uname -m` reports the 32-bit machine.
const PER_LINUX32: libc::c_ulong = 0x0008;
/// `PER_LINUX`: the default domain.
const PER_LINUX: libc::c_ulong = 0x0000;

/// What a process is given besides its uid and gid, resolved from its spec and config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// setgroups(2)'s list: the gid, then the additional gids (duplicates left out).
    pub groups: Vec<u32>,
    pub umask: u32,
    pub caps: Plan,
    pub io_priority: Option<IoPriority>,
    /// The personality(2) value, when the config names one.
    pub personality: Option<libc::c_ulong>,
}

impl Identity {
    pub fn new(config: &Config, spec: &ProcessSpec) -> Identity {
        let own = &spec.own;
        let extra = own
            .additional_gids
            .as_deref()
            .unwrap_or(&config.additional_gids);
        let mut groups = vec![spec.user.gid];
        for g in extra {
            if !groups.contains(g) {
                groups.push(*g);
            }
        }
        Identity {
            groups,
            umask: own.umask.or(config.umask).unwrap_or(DEFAULT_UMASK),
            caps: Plan::new(config, own.capability_sets.as_ref()),
            io_priority: own
                .io_priority
                .clone()
                .or_else(|| config.io_priority.clone()),
            personality: match config.personality.as_str() {
                "LINUX32" => Some(PER_LINUX32),
                "LINUX" => Some(PER_LINUX),
                _ => None,
            },
        }
    }

    /// The supplementary groups, before the gid changes.
    /// In a user namespace whose `setgroups` is denied (a rootless runtime mapped only the
    /// user's own gid), the groups cannot change: fine when no group beyond the primary one
    /// is asked for.
    pub fn set_groups(&self) -> nix::Result<()> {
        let groups: Vec<Gid> = self.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        match nix::unistd::setgroups(&groups) {
            Err(nix::errno::Errno::EPERM) if self.groups.len() <= 1 && setgroups_denied() => Ok(()),
            r => r,
        }
    }

    /// The I/O priority and the execution domain, while the process still has its privileges
    /// (the real-time class needs CAP_SYS_ADMIN or CAP_SYS_NICE).
    pub fn set_scheduling(&self) -> Result<(), String> {
        if let Some(p) = &self.io_priority {
            let class = io_class(&p.class)
                .ok_or_else(|| format!("ioPriority: unknown class {:?}", p.class))?;
            crate::sys::set_io_priority(class, p.priority)
                .map_err(|e| format!("ioprio_set {} {}: {e}", p.class, p.priority))?;
        }
        if let Some(p) = self.personality {
            crate::sys::set_personality(p).map_err(|e| format!("personality {p:#x}: {e}"))?;
        }
        Ok(())
    }

    /// The umask, last before exec (nothing the setup creates is subject to it).
    pub fn set_umask(&self) {
        // Validated to be at most 0777.
        nix::sys::stat::umask(Mode::from_bits_truncate(self.umask as libc::mode_t));
    }
}

/// The kernel's number of an I/O scheduling class (linux/ioprio.h).
pub fn io_class(name: &str) -> Option<i32> {
    match name {
        "IOPRIO_CLASS_RT" => Some(1),
        "IOPRIO_CLASS_BE" => Some(2),
        "IOPRIO_CLASS_IDLE" => Some(3),
        _ => None,
    }
}

/// Whether this process's user namespace denies setgroups (`/proc/self/setgroups`).
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::User;

    #[test]
    fn identity_takes_the_config_unless_the_process_says() {
        let config = Config {
            additional_gids: vec![10, 20, 10],
            umask: Some(0o077),
            personality: "LINUX32".into(),
            io_priority: Some(IoPriority {
                class: "IOPRIO_CLASS_IDLE".into(),
                priority: 0,
            }),
            ..Default::default()
        };
        let mut spec = ProcessSpec {
            user: User { uid: 5, gid: 10 },
            ..Default::default()
        };
        let id = Identity::new(&config, &spec);
        assert_eq!(id.groups, vec![10, 20]);
        assert_eq!(id.umask, 0o077);
        assert_eq!(id.personality, Some(PER_LINUX32));
        assert_eq!(
            id.io_priority.as_ref().map(|p| p.class.as_str()),
            Some("IOPRIO_CLASS_IDLE")
        );

        spec.own.additional_gids = Some(vec![]);
        spec.own.umask = Some(0o002);
        let id = Identity::new(&config, &spec);
        assert_eq!(id.groups, vec![10]);
        assert_eq!(id.umask, 0o002);

        let plain = Identity::new(&Config::default(), &ProcessSpec::default());
        assert_eq!(plain.groups, vec![0]);
        assert_eq!(plain.umask, DEFAULT_UMASK);
        assert_eq!(plain.personality, None);
    }

    #[test]
    fn io_classes() {
        assert_eq!(io_class("IOPRIO_CLASS_RT"), Some(1));
        assert_eq!(io_class("IOPRIO_CLASS_BE"), Some(2));
        assert_eq!(io_class("IOPRIO_CLASS_IDLE"), Some(3));
        assert_eq!(io_class("BE"), None);
    }
}
