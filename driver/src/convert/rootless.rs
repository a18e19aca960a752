//! A daemon run by an ordinary user (rootless): every container gets a user namespace of its
//! own, root inside mapped to the user (and, where /etc/subuid and /etc/subgid give the user
//! ranges and `newuidmap`/`newgidmap` exist, those ranges beyond), and no cgroups of its own
//! (the user may write none on this kind of host): a request asking for a limit is refused,
//! naming it.

use execdriver_spec::config::Config;
use execdriver_spec::namespaces::Namespace;
use execdriver_spec::security::IdMap;

use crate::error::{Error, Result};

/// Who the rootless daemon runs as, and the subordinate ids it may map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootless {
    pub uid: u32,
    pub gid: u32,
    /// The first subordinate uid and how many (`/etc/subuid`), with `newuidmap` present.
    pub subuids: Option<(u32, u32)>,
    /// The same for gids (`/etc/subgid`, `newgidmap`).
    pub subgids: Option<(u32, u32)>,
}

impl Rootless {
    /// The daemon's own, when it does not run as root; None as root.
    pub fn detect() -> Option<Rootless> {
        let uid = nix::unistd::geteuid();
        if uid.is_root() {
            return None;
        }
        let gid = nix::unistd::getegid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        let range = |file: &str, helper: &str, id: u32| -> Option<(u32, u32)> {
            let present = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
                .iter()
                .any(|d| std::path::Path::new(d).join(helper).exists());
            if !present {
                return None;
            }
            let text = std::fs::read_to_string(file).ok()?;
            sub_range(&text, &name, id)
        };
        Some(Rootless {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            subuids: range("/etc/subuid", "newuidmap", uid.as_raw()),
            subgids: range("/etc/subgid", "newgidmap", gid.as_raw()),
        })
    }

    /// Makes `config` one this user can run: its own user namespace (maps from the request
    /// kept), and no cgroups, refusing a limit.
    pub fn apply(&self, config: &mut Config) -> Result<()> {
        if let Some(field) = config.cgroups.as_ref().and_then(|c| c.first_limit()) {
            return Err(Error::FailedPrecondition(format!(
                "resources ({field}): the daemon runs rootless, as uid {}, with no cgroup it may \
                 write: limits need a delegated cgroup v2 subtree; remove the limit or run the \
                 daemon as root",
                self.uid
            )));
        }
        config.cgroups = None;
        if !config.has_namespace(Namespace::User) {
            config.namespaces.push(Namespace::User);
        }
        if config.uid_mappings.is_empty() {
            config.uid_mappings = maps(self.uid, self.subuids);
        }
        if config.gid_mappings.is_empty() {
            config.gid_mappings = maps(self.gid, self.subgids);
        }
        Ok(())
    }
}

/// Root inside as `own`, then the subordinate range from 1.
fn maps(own: u32, sub: Option<(u32, u32)>) -> Vec<IdMap> {
    let mut out = vec![IdMap {
        container_id: 0,
        host_id: own,
        size: 1,
    }];
    if let Some((start, count)) = sub {
        out.push(IdMap {
            container_id: 1,
            host_id: start,
            size: count,
        });
    }
    out
}

/// The user's range in an /etc/subuid-format text (`name:start:count`, or the uid for the
/// name).
fn sub_range(text: &str, name: &str, id: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.trim().splitn(3, ':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != name && who != id.to_string() {
            return None;
        }
        Some((start.parse().ok()?, count.parse().ok()?)).filter(|(_, c)| *c > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_range_is_found_by_name_or_uid() {
        let text = "alice:100000:65536\n# x\n1002:200000:1000\nbob:300000:0\n";
        assert_eq!(sub_range(text, "alice", 1001), Some((100000, 65536)));
        assert_eq!(sub_range(text, "carol", 1002), Some((200000, 1000)));
        assert_eq!(sub_range(text, "bob", 1003), None);
        assert_eq!(sub_range(text, "dave", 1004), None);
    }

    #[test]
    fn a_container_gets_a_user_namespace_and_no_cgroups_and_limits_are_refused() {
        let r = Rootless {
            uid: 1001,
            gid: 1001,
            subuids: Some((100000, 65536)),
            subgids: None,
        };
        let mut c = Config {
            cgroups: Some(Default::default()),
            ..Default::default()
        };
        r.apply(&mut c).unwrap();
        assert!(c.cgroups.is_none());
        assert!(c.has_namespace(Namespace::User));
        assert_eq!(c.uid_mappings.len(), 2);
        assert_eq!(c.uid_mappings[1].host_id, 100000);
        assert_eq!(c.gid_mappings.len(), 1);
        assert_eq!(c.gid_mappings[0].host_id, 1001);
        let mut limited = Config {
            cgroups: Some(execdriver_spec::config::Cgroups {
                memory: 64 << 20,
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = r.apply(&mut limited).unwrap_err().to_string();
        assert!(e.contains("memory.limit") && e.contains("rootless"), "{e}");
    }
}
