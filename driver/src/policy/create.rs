//! The restricted policy's rules for a CreateRequest, field by field, in the request's order.
//!
//! Refused (PERMISSION_DENIED naming the field and the rule):
//! - `rootfs` and `mounts[i].source` not under an allowed prefix once resolved, hard-linked
//!   files, writable paths on a filesystem without nosuid,nodev (`paths.rs`);
//! - `namespaces` that leave out NEWNS, NEWUTS, NEWIPC, NEWPID or NEWNET (a host namespace);
//! - `network`: NETWORK_MODE_HOST, NETWORK_MODE_NETNS (a namespace joined by path, such as
//!   /proc/1/ns/net), NETWORK_MODE_CONTAINER with a container the caller did not create,
//!   NETWORK_MODE_SLIRP4NETNS (it reaches the daemon's 127.0.0.1 as the daemon's user);
//! - `resources.devices`, `resources.allow_all_devices`, `resources.cgroup_parent`;
//! - `security.capabilities` beyond Docker's default set (`ALL` included),
//!   `no_new_privileges: false`, rlimits whose hard limit is above the daemon's own,
//!   `oom_score_adj` below the daemon's own, seccomp `unconfined` or a custom profile,
//!   `unmask_system_paths`, uid or gid mappings onto host id 0.
//!
//! Rewritten: the host paths become the canonical paths checked, and MKNOD joins
//! `capabilities_mask`: the container's root could otherwise make a device node in its /dev,
//! which a process of the caller's uid (the container's root can start one) would expose to
//! the caller on the host through /proc/PID/root.
//!
//! Everything else is the container's own business and passes: the process (any user,
//! terminal, environment), hostname, extra masked or read-only paths, an AppArmor profile,
//! limits, labels, log rotation, bridge addresses. Malformed values are left to the conversion
//! (INVALID_ARGUMENT) where they cannot matter here, and refused as such where they would.

use std::path::PathBuf;

use execdriver_proto::{self as pb, NetworkMode};
use execdriver_spec::capabilities;
use execdriver_spec::namespaces::Namespace;
use execdriver_spec::security::rlimit_name;
use nix::sys::resource::{getrlimit, Resource};

use super::paths::{host_path, FsCheck, Use};
use super::Caller;
use crate::error::{Error, Result};

/// The daemon's own limits, which a restricted container may not exceed.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Hard limits by full rlimit name (`RLIMIT_NOFILE`); absent: not known, not bounded.
    pub rlimits: Vec<(&'static str, u64)>,
    /// The daemon's oom_score_adj.
    pub oom_score_adj: i32,
}

impl Limits {
    /// The running daemon's.
    pub fn of_daemon() -> Limits {
        let rlimits = execdriver_spec::security::RLIMIT_NAMES
            .iter()
            .filter_map(|n| Some((*n, getrlimit(resource(n)?).ok()?.1)))
            .collect();
        let oom_score_adj = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Limits {
            rlimits,
            oom_score_adj,
        }
    }

    fn hard(&self, name: &str) -> Option<u64> {
        self.rlimits.iter().find(|(n, _)| *n == name).map(|r| r.1)
    }
}

fn resource(name: &str) -> Option<Resource> {
    Some(match name {
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        _ => return None,
    })
}

/// The namespaces a restricted container must have, besides NEWNET (settled with the network
/// mode), and what leaving each out would share.
const REQUIRED: [(Namespace, &str); 4] = [
    (Namespace::Mount, "mount table"),
    (Namespace::Uts, "hostname"),
    (Namespace::Ipc, "IPC objects"),
    (Namespace::Pid, "processes"),
];

/// The capability a restricted container never keeps (see the module's comment).
pub const ALWAYS_DROPPED: &str = "MKNOD";

/// One Create's check.
pub(super) struct Rules<'a> {
    pub caller: &'a Caller,
    pub rootfs_prefixes: Vec<PathBuf>,
    pub mount_prefixes: Vec<PathBuf>,
    pub owner_of: &'a dyn Fn(&str) -> Result<Option<u32>>,
    pub limits: &'a Limits,
    pub nosuid_nodev: FsCheck,
}

impl Rules<'_> {
    pub(super) fn check(&self, req: &mut pb::CreateRequest) -> Result<()> {
        let rootfs = host_path(
            &req.rootfs,
            &Use {
                field: "rootfs",
                flag: "restricted-rootfs-prefix",
                prefixes: &self.rootfs_prefixes,
                writable: !req.readonly_rootfs,
                nosuid_nodev: self.nosuid_nodev,
            },
        )?;
        req.rootfs = utf8("rootfs", rootfs)?;
        self.namespaces(req)?;
        for (i, m) in req.mounts.iter_mut().enumerate() {
            let field = format!("mounts[{i}].source");
            let source = host_path(
                &m.source,
                &Use {
                    field: &field,
                    flag: "restricted-mount-prefix",
                    prefixes: &self.mount_prefixes,
                    writable: m.writable,
                    nosuid_nodev: self.nosuid_nodev,
                },
            )?;
            m.source = utf8(&field, source)?;
        }
        if let Some(r) = &req.resources {
            resources(r)?;
        }
        if let Some(s) = &req.security {
            self.security(s)?;
        }
        let masked = |c: &String| {
            c.eq_ignore_ascii_case(capabilities::ALL)
                || capabilities::parse(c) == capabilities::parse(ALWAYS_DROPPED)
        };
        if !req.capabilities_mask.iter().any(masked) {
            req.capabilities_mask.push(ALWAYS_DROPPED.into());
        }
        Ok(())
    }

    /// The namespaces and the network mode together: nothing of the host's is shared.
    fn namespaces(&self, req: &pb::CreateRequest) -> Result<()> {
        let listed = |ns: Namespace| {
            req.namespaces.is_empty() || req.namespaces.iter().any(|n| n == ns.name())
        };
        for (ns, what) in REQUIRED {
            if !listed(ns) {
                return Err(Error::denied(
                    "namespaces",
                    format!(
                        "leaves out {}: the container would share the host's {what}",
                        ns.name()
                    ),
                ));
            }
        }
        let net = req.network.clone().unwrap_or_default();
        match NetworkMode::try_from(net.mode) {
            Ok(NetworkMode::Host) => Err(Error::denied(
                "network.mode",
                "NETWORK_MODE_HOST shares the host's network namespace",
            )),
            Ok(NetworkMode::Netns) => Err(Error::denied(
                if net.netns_path.is_empty() {
                    "network.mode"
                } else {
                    "network.netns_path"
                },
                format!(
                    "joining a network namespace by path ({:?}) may join the host's or another's",
                    net.netns_path
                ),
            )),
            Ok(NetworkMode::Container) => {
                if net.container_id.is_empty() {
                    return Ok(()); // INVALID_ARGUMENT from the conversion
                }
                match (self.owner_of)(&net.container_id) {
                    Ok(owner) if self.caller.sees(owner) => Ok(()),
                    Ok(_) => Err(Error::denied(
                        "network.container_id",
                        format!(
                            "container {} is not this caller's; its network may be the host's",
                            net.container_id
                        ),
                    )),
                    Err(e) => Err(e),
                }
            }
            Ok(NetworkMode::Slirp4netns) => Err(Error::denied(
                "network.mode",
                "NETWORK_MODE_SLIRP4NETNS reaches the daemon's 127.0.0.1 (10.0.2.2) as the daemon's user",
            )),
            Ok(NetworkMode::Unspecified) if !listed(Namespace::Net) => Err(Error::denied(
                "namespaces",
                "leaves out NEWNET: the container would share the host's network",
            )),
            _ => Ok(()),
        }
    }

    fn security(&self, s: &pb::SecurityConfig) -> Result<()> {
        for (i, c) in s.capabilities.iter().enumerate() {
            let field = format!("security.capabilities[{i}]");
            if c.eq_ignore_ascii_case(capabilities::ALL) {
                return Err(Error::denied(field, "ALL: every capability, as privileged"));
            }
            let Some(cap) = capabilities::parse(c) else {
                continue; // INVALID_ARGUMENT from the conversion
            };
            if !capabilities::DOCKER_DEFAULT
                .iter()
                .any(|d| capabilities::parse(d) == Some(cap))
            {
                return Err(Error::denied(
                    field,
                    format!(
                        "{} is not in the default set ({})",
                        capabilities::name(cap),
                        capabilities::DOCKER_DEFAULT.join(" ")
                    ),
                ));
            }
        }
        if s.no_new_privileges == Some(false) {
            return Err(Error::denied(
                "security.no_new_privileges",
                "false lets setuid binaries and file capabilities raise privileges",
            ));
        }
        for (i, r) in s.rlimits.iter().enumerate() {
            let Some(name) = rlimit_name(&r.r#type) else {
                continue; // INVALID_ARGUMENT from the conversion
            };
            if let Some(own) = self.limits.hard(name) {
                if r.hard > own {
                    return Err(Error::denied(
                        format!("security.rlimits[{i}].hard"),
                        format!(
                            "{name} {} is above the daemon's own hard limit {}",
                            limit(r.hard),
                            limit(own)
                        ),
                    ));
                }
            }
        }
        if let Some(adj) = s.oom_score_adj {
            if adj < self.limits.oom_score_adj {
                return Err(Error::denied(
                    "security.oom_score_adj",
                    format!(
                        "{adj} is below the daemon's own {}: the OOM killer would take the \
                         host's processes first",
                        self.limits.oom_score_adj
                    ),
                ));
            }
        }
        if let Some(sc) = &s.seccomp {
            let custom = !sc.default_action.is_empty()
                || sc.default_errno_ret.is_some()
                || !sc.architectures.is_empty()
                || !sc.flags.is_empty()
                || !sc.syscalls.is_empty();
            if sc.profile == "unconfined" {
                return Err(Error::denied(
                    "security.seccomp.profile",
                    "unconfined: no seccomp filter",
                ));
            }
            if sc.profile == "custom" || custom {
                return Err(Error::denied(
                    "security.seccomp.profile",
                    "a custom profile may allow anything; only the default profile",
                ));
            }
        }
        if s.unmask_system_paths {
            return Err(Error::denied(
                "security.unmask_system_paths",
                "the host's /proc/sys, /proc/sysrq-trigger and the like would be writable",
            ));
        }
        for (name, maps) in [
            ("uid_mappings", &s.uid_mappings),
            ("gid_mappings", &s.gid_mappings),
        ] {
            if let Some(i) = maps.iter().position(|m| m.host_id == 0) {
                return Err(Error::denied(
                    format!("security.{name}[{i}].host_id"),
                    "maps onto host id 0: the container's ids would be the host's root",
                ));
            }
        }
        Ok(())
    }
}

fn resources(r: &pb::Resources) -> Result<()> {
    if !r.devices.is_empty() {
        return Err(Error::denied(
            "resources.devices[0]",
            "devices beyond the default list (null, zero, full, random, urandom, tty, console, \
             ptmx, pts)",
        ));
    }
    if r.allow_all_devices {
        return Err(Error::denied(
            "resources.allow_all_devices",
            "every device of the host, as privileged",
        ));
    }
    if !r.cgroup_parent.is_empty() {
        return Err(Error::denied(
            "resources.cgroup_parent",
            "a container stays under the daemon's cgroup parent (and its limits)",
        ));
    }
    Ok(())
}

fn limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

fn utf8(field: &str, p: PathBuf) -> Result<String> {
    p.into_os_string()
        .into_string()
        .map_err(|p| Error::invalid(field, format!("{} is not UTF-8", p.to_string_lossy())))
}
