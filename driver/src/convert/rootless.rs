//! A daemon run by an ordinary user (rootless): every container gets a user namespace of its
//! own, root inside mapped to the user (and, where /etc/subuid and /etc/subgid give the user
//! ranges and `newuidmap`/`newgidmap` exist, those ranges beyond). Cgroups only where a cgroup
//! v2 subtree was delegated to the user (its daemon's own cgroup is the user's to write, as
//! systemd's `Delegate=yes` makes it): then every container gets a cgroup there, and a limit
//! is accepted when the subtree offers its controller. Otherwise no cgroups, and a request
//! asking for a limit is refused, naming it and why.

use std::path::{Path, PathBuf};

use execdriver_shim::cgroups::{Layout, V2_CONTROLLERS};
use execdriver_spec::config::{Cgroups, Config};
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
    /// The cgroup v2 subtree delegated to the user, or why there is none.
    pub cgroups: std::result::Result<Delegated, String>,
}

/// A cgroup v2 subtree the user may write: the daemon's own cgroup, when delegated to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegated {
    /// The delegated cgroup (absolute path in the unified hierarchy's mount).
    pub dir: PathBuf,
    /// Where containers' cgroups go: `<dir>/containers`, relative to the hierarchy's root
    /// (a container.json `cgroups.parent`).
    pub parent: String,
    /// The controllers it offers that containers get ([`V2_CONTROLLERS`] it has).
    pub controllers: Vec<String>,
}

/// The leaf the daemon moves itself (and so its shims) into: a cgroup with processes may not
/// hand controllers to children, so the delegated cgroup keeps none.
pub const DAEMON_LEAF: &str = "execdriverd";
/// Below the delegated cgroup, the parent of containers' cgroups.
pub const CONTAINERS: &str = "containers";

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
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let unified = Layout::detect_host()
            .ok()
            .and_then(|l| l.hierarchies.into_iter().find(|h| h.v2))
            .map(|h| h.mountpoint);
        Some(Rootless {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            subuids: range("/etc/subuid", "newuidmap", uid.as_raw()),
            subgids: range("/etc/subgid", "newgidmap", gid.as_raw()),
            cgroups: delegated(unified.as_deref(), &own, uid.as_raw()),
        })
    }

    /// Settles the daemon in its delegated subtree, before any thread starts: moves itself
    /// into `<dir>/execdriverd` (its shims start there too) and makes `<dir>/containers`.
    /// When that fails the daemon goes on without cgroups, saying why.
    pub fn claim_cgroups(&mut self) {
        let Ok(d) = &self.cgroups else {
            return;
        };
        let leaf = d.dir.join(DAEMON_LEAF);
        let made = mkdir(&leaf)
            .and_then(|()| std::fs::write(leaf.join("cgroup.procs"), "0"))
            .and_then(|()| mkdir(&d.dir.join(CONTAINERS)));
        if let Err(e) = made {
            self.cgroups = Err(format!(
                "settling in the delegated cgroup {}: {e}",
                d.dir.display()
            ));
        }
    }

    /// Refuses the limits of `cg` this daemon cannot enforce (FAILED_PRECONDITION, naming the
    /// field and why): any, without a delegated subtree; those whose controller it does not
    /// offer, with one. For Create and Update alike.
    pub fn check_limits(&self, cg: &Cgroups) -> Result<()> {
        match &self.cgroups {
            Ok(d) => d.check(cg, self.uid),
            Err(why) => match cg.first_limit() {
                Some(field) => Err(Error::FailedPrecondition(format!(
                    "resources ({field}): the daemon runs rootless, as uid {}, with no cgroup it \
                     may write ({why}): limits need a delegated cgroup v2 subtree; remove the \
                     limit or run the daemon as root",
                    self.uid
                ))),
                None => Ok(()),
            },
        }
    }

    /// What `info` says about it.
    pub fn describe(&self) -> String {
        let subuids = self
            .subuids
            .map(|(s, n)| format!(", subordinate uids {s}-{}", s + n - 1))
            .unwrap_or_default();
        let cgroups = match &self.cgroups {
            Ok(d) => format!(
                "cgroups in the delegated {} (controllers: {})",
                d.dir.display(),
                if d.controllers.is_empty() {
                    "none".to_owned()
                } else {
                    d.controllers.join(" ")
                }
            ),
            Err(why) => format!("no cgroups of its own ({why}): resource limits are refused"),
        };
        format!("uid {}{subuids}; {cgroups}", self.uid)
    }

    /// Makes `config` one this user can run: its own user namespace (maps from the request
    /// kept), and no cgroups, refusing a limit.
    pub fn apply(&self, config: &mut Config) -> Result<()> {
        if let Some(cg) = config.cgroups.as_mut() {
            self.check_limits(cg)?;
            match &self.cgroups {
                // Requests name parents relative to the delegated subtree: the rest of the
                // hierarchy is not the user's.
                Ok(d) if cg.parent.trim_matches('/') != d.parent => {
                    cg.parent = format!("{}/{}", d.parent, cg.parent.trim_matches('/'));
                }
                Ok(_) => {}
                Err(_) => config.cgroups = None,
            }
        }
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

impl Delegated {
    /// Refuses a limit whose controller the subtree does not offer, naming it.
    fn check(&self, cg: &Cgroups, uid: u32) -> Result<()> {
        for field in cg.limits() {
            let refuse = |why: String| {
                Err(Error::FailedPrecondition(format!(
                    "resources ({field}): the daemon runs rootless, as uid {uid}, in the \
                     delegated cgroup v2 subtree {}: {why}",
                    self.dir.display()
                )))
            };
            match cg.v2_controllers_of(field) {
                None => return refuse("the limit exists only in cgroup v1".into()),
                Some(needs) => {
                    for c in needs.iter().filter(|c| !c.is_empty()) {
                        if !self.controllers.contains(c) {
                            return refuse(format!(
                                "it offers no {c} controller (it offers: {}); delegate it \
                                 (systemd: Delegate=yes) or remove the limit",
                                if self.controllers.is_empty() {
                                    "none".to_owned()
                                } else {
                                    self.controllers.join(" ")
                                }
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The delegated subtree from the unified hierarchy's mount point and /proc/self/cgroup text:
/// the daemon's own cgroup (the one above, for a daemon restarted in its own leaf), when it,
/// its `cgroup.procs` and `cgroup.subtree_control` are the user's to write.
fn delegated(
    unified: Option<&Path>,
    proc_cgroup: &str,
    uid: u32,
) -> std::result::Result<Delegated, String> {
    let unified = unified.ok_or("the host mounts no cgroup v2 hierarchy")?;
    let own = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("the daemon is in no cgroup v2 cgroup")?;
    let mut rel = Path::new(own.trim().trim_start_matches('/')).to_owned();
    if rel.file_name().is_some_and(|n| n == DAEMON_LEAF) {
        rel.pop();
    }
    let dir = unified.join(&rel);
    let writable = |p: &Path| {
        nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok()
            && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    let file_writable =
        |f: &str| nix::unistd::access(&dir.join(f), nix::unistd::AccessFlags::W_OK).is_ok();
    if rel.as_os_str().is_empty()
        || !writable(&dir)
        || !file_writable("cgroup.procs")
        || !file_writable("cgroup.subtree_control")
    {
        return Err(format!(
            "its cgroup {} is not delegated to uid {uid}",
            dir.display()
        ));
    }
    let offered = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let controllers = V2_CONTROLLERS
        .iter()
        .filter(|c| offered.split_whitespace().any(|o| o == **c))
        .map(|c| (*c).to_owned())
        .collect();
    Ok(Delegated {
        parent: rel.join(CONTAINERS).to_string_lossy().into_owned(),
        dir,
        controllers,
    })
}

fn mkdir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
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
            cgroups: Err("not delegated".into()),
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

    #[test]
    fn a_delegated_subtree_is_the_daemons_own_cgroup_when_the_user_may_write_it() {
        let dir = std::env::temp_dir().join(format!("edt-deleg-{}", std::process::id()));
        let d = dir.join("user.slice/app/execdriverd.service");
        std::fs::create_dir_all(&d).unwrap();
        for f in ["cgroup.procs", "cgroup.subtree_control"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        std::fs::write(d.join("cgroup.controllers"), "cpu memory hugetlb pids\n").unwrap();
        let own = "0::/user.slice/app/execdriverd.service\n";
        let got = delegated(Some(&dir), own, 1001).unwrap();
        assert_eq!(got.dir, d);
        assert_eq!(got.parent, "user.slice/app/execdriverd.service/containers");
        assert_eq!(got.controllers, ["cpu", "memory", "pids"]);
        // A daemon restarted in its own leaf finds the same subtree.
        let leaf = "0::/user.slice/app/execdriverd.service/execdriverd\n";
        assert_eq!(delegated(Some(&dir), leaf, 1001).unwrap(), got);
        // No v2 hierarchy, the root cgroup, or a v1-only /proc/self/cgroup: none.
        assert!(delegated(None, own, 1001).is_err());
        assert!(delegated(Some(&dir), "0::/\n", 1001).is_err());
        assert!(delegated(Some(&dir), "4:memory:/x\n", 1001).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn limits_are_taken_when_the_subtree_offers_their_controller() {
        let r = Rootless {
            uid: 1001,
            gid: 1001,
            subuids: None,
            subgids: None,
            cgroups: Ok(Delegated {
                dir: "/sys/fs/cgroup/u".into(),
                parent: "u/containers".into(),
                controllers: vec!["memory".into(), "pids".into()],
            }),
        };
        let config = |cg: execdriver_spec::config::Cgroups| Config {
            cgroups: Some(execdriver_spec::config::Cgroups {
                name: "c1".into(),
                parent: "u/containers".into(),
                ..cg
            }),
            ..Default::default()
        };
        let mut ok = config(execdriver_spec::config::Cgroups {
            memory: 64 << 20,
            pids_limit: 10,
            freezer: "FROZEN".into(),
            ..Default::default()
        });
        r.apply(&mut ok).unwrap();
        assert_eq!(ok.cgroups.as_ref().unwrap().parent, "u/containers");
        let e = r
            .apply(&mut config(execdriver_spec::config::Cgroups {
                cpu_quota: 20000,
                ..Default::default()
            }))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cpu.quota") && e.contains("no cpu controller"),
            "{e}"
        );
        let e = r
            .apply(&mut config(execdriver_spec::config::Cgroups {
                memory_swappiness: Some(10),
                ..Default::default()
            }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("memory.swappiness") && e.contains("v1"), "{e}");
        // A request's own parent goes below the subtree.
        let mut nested = config(Default::default());
        nested.cgroups.as_mut().unwrap().parent = "pods/p1".into();
        r.apply(&mut nested).unwrap();
        assert_eq!(nested.cgroups.unwrap().parent, "u/containers/pods/p1");
    }
}
