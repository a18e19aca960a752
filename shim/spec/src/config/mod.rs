//! The `container.json` model: libcontainer's 2014 format, with the few fields execdriver adds.
//!
//! Field names follow the seed document (`hostname`, `networks`, `cgroups`, `tty`,
//! `environment`, `capabilities_mask`, `context`, `mounts`, `namespaces`) and libcontainer's
//! 2014 `Container` type for the fields the sample does not show (`readonly_fs`, `user`,
//! `working_dir`). execdriver's own additions are all optional, so the seed's sample parses as
//! it is: `rootfs` (otherwise the directory holding container.json, as nsinit does) and `args`
//! (otherwise given on nsinit's command line).
//!
//! [`Config::validate`] (in `validate.rs`) checks a config; every error names its field as a
//! typed [`Field`]. `cgroups.rs` holds the `cgroups` section and its checks.

mod cgroups;
mod error;
mod extended;
mod mapped;
mod security;
mod validate;

pub use crate::hooks::{Hook, Hooks};
pub use cgroups::{
    parse_cpu_list, BlkioDevice, Cgroups, Device, HugepageLimit, MAX_MAJOR, MAX_MINOR, MAX_PIDS,
    MIN_MEMORY, SHAREABLE,
};
pub use error::{
    CgroupField, ConfigError, DeviceField, Field, FilesystemField, HookField, IdKind, IdMapField,
    LoadError, MountField, NetworkField, RlimitField,
};
pub use extended::{hugepage_size, sysctl_namespace, PROPAGATIONS};
pub use validate::{
    check, MAX_ARG_BYTES, MAX_EXEC_BYTES, MAX_EXEC_STRING, MAX_HOSTNAME, PROC_FILES_ALLOWED,
    RESERVED_DESTINATIONS,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::namespaces::Namespace;

/// One container's configuration, as in `container.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Network strategies; empty with NEWNET means only loopback, without NEWNET the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Network>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups: Option<Cgroups>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// Capabilities to drop, named as in the seed (`SYS_ADMIN`, not `CAP_SYS_ADMIN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_mask: Vec<String>,
    /// Free-form options such as `apparmor_profile`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// Remount the rootfs read-only after setting it up (libcontainer 2014 `readonly_fs`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub readonly_fs: bool,
    /// `uid[:gid]` the process runs as (libcontainer 2014 `user`); empty means 0:0.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Working directory inside the container (libcontainer 2014 `working_dir`); empty means `/`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// execdriver: the root filesystem on the host. Absent: the directory holding container.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    /// execdriver: the command and its arguments. Absent: given on nsinit's command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// execdriver: run a minimal init as PID 1 that starts the command, forwards signals and
    /// reaps orphans.
    #[serde(default, skip_serializing_if = "is_false")]
    pub init: bool,
    /// Capabilities the processes keep (named as in `capabilities_mask`; `ALL` for every one);
    /// absent: Docker's default set. `capabilities_mask` is dropped from them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// Set no_new_privs (setuid bits and file capabilities give nothing); absent: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_new_privileges: Option<bool>,
    /// Resource limits of every process (`{"type": "RLIMIT_NOFILE", "hard": N, "soft": N}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<crate::security::Rlimit>,
    /// The processes' /proc/PID/oom_score_adj (-1000 to 1000); absent: inherited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The seccomp filter: absent or `"default"` (Docker's profile), `"unconfined"`, or a
    /// profile in the OCI JSON shape.
    #[serde(default, skip_serializing_if = "crate::seccomp::Seccomp::is_default")]
    pub seccomp: crate::seccomp::Seccomp,
    /// Paths hidden from the container; absent: Docker's list
    /// ([`crate::security::DEFAULT_MASKED_PATHS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    /// Paths made read-only; absent: Docker's list
    /// ([`crate::security::DEFAULT_READONLY_PATHS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
    /// With NEWUSER: the uids of the container's user namespace (libcontainer's later field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<crate::security::IdMap>,
    /// With NEWUSER: its gids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<crate::security::IdMap>,
    /// execdriver: open the rootfs and every `mounts` source without following a symlink
    /// anywhere in their paths (one component at a time, `O_NOFOLLOW`; a symlink, `.` or `..`
    /// fails the create), and refuse a source that is not a directory and has a second link.
    /// The driver sets it for a restricted caller's container, whose paths it resolved and
    /// checked: a directory swapped for a symlink since then is refused, not followed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict_host_paths: bool,

    // What an OCI config.json can say beyond the above (all optional; see `crate::oci`).
    /// The NIS domain name (`setdomainname`); needs NEWUTS.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    /// Supplementary groups of the process besides its gid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
    /// The process's umask; absent: 0022.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    /// The five capability sets, named as `capabilities`. When present they replace
    /// `capabilities` and `capabilities_mask` (and ambient capabilities are raised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability_sets: Option<CapabilitySets>,
    /// The container's filesystems, mounted in order with OCI semantics. When present they
    /// replace the built-in set (/proc, /sys, /dev, /dev/pts, /dev/shm, /dev/mqueue) and
    /// `mounts`; the container's /dev then holds only the standard devices, `cgroups.devices`
    /// nodes and what these mounts put there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystems: Option<Vec<Filesystem>>,
    /// Namespaces joined rather than made, by their file: `{"NEWNET": "/proc/7/ns/net"}`. Each
    /// must also be listed in `namespaces`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_paths: BTreeMap<Namespace, PathBuf>,
    /// Kernel parameters written under /proc/sys in the container (`net.ipv4.ip_forward`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    /// The propagation of the container's root mount: `private`, `rprivate` (the default),
    /// `slave`, `rslave`, `shared`, `rshared`, `unbindable`, `runbindable`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rootfs_propagation: String,
    /// The execution domain (`personality(2)`): `LINUX` or `LINUX32`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub personality: String,
    /// Programs run at points of the container's life (OCI hooks).
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
    /// The process's I/O scheduling (`ioprio_set(2)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<IoPriority>,
    /// With NEWTIME: the offsets of the `monotonic` and `boottime` clocks in the new time
    /// namespace (`{"boottime": {"secs": 86400, "nanos": 0}}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub time_offsets: BTreeMap<String, TimeOffset>,
}

/// An I/O scheduling class (`IOPRIO_CLASS_RT`, `IOPRIO_CLASS_BE`, `IOPRIO_CLASS_IDLE`) and a
/// priority within it, 0 (highest) to 7.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoPriority {
    pub class: String,
    #[serde(default)]
    pub priority: i32,
}

/// The capability sets of a process, each a list of names as `capabilities` takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitySets {
    #[serde(default)]
    pub bounding: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
    #[serde(default)]
    pub inheritable: Vec<String>,
    #[serde(default)]
    pub permitted: Vec<String>,
    #[serde(default)]
    pub ambient: Vec<String>,
}

/// A filesystem of the container: `kind` is the filesystem type (`proc`, `tmpfs`, `sysfs`,
/// `devpts`, `mqueue`, `cgroup`, `cgroup2`, ...) or `bind`; `options` are mount(8)'s (`ro`,
/// `nosuid`, `rbind`, `rprivate`, `mode=755`, ...): flags are applied as flags, the rest passed
/// to the filesystem as data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    pub destination: PathBuf,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// An idmapped bind mount (Linux 5.12): the file owners of the source as seen through the
    /// mount. A range maps source ids `container_id..` to the ids shown, `host_id..` (the
    /// kernel's user namespace map, `mount_setattr(2)` `MOUNT_ATTR_IDMAP`). With the `idmap`
    /// or `ridmap` option and no ranges, the container's own `uid_mappings`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<crate::security::IdMap>,
    /// The group ranges of an idmapped mount; given together with `uid_mappings`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<crate::security::IdMap>,
}

impl Filesystem {
    /// Whether the mount is idmapped: ranges given, or the `idmap`/`ridmap` option.
    pub fn idmapped(&self) -> bool {
        !self.uid_mappings.is_empty()
            || !self.gid_mappings.is_empty()
            || self.options.iter().any(|o| o == "idmap" || o == "ridmap")
    }
}

/// An offset of a clock in a time namespace: seconds and nanoseconds (below 1e9) added to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeOffset {
    #[serde(default)]
    pub secs: i64,
    #[serde(default)]
    pub nanos: u32,
}

/// The clocks a time namespace offsets, as /proc/PID/timens_offsets names them.
pub const TIME_CLOCKS: [&str; 2] = ["monotonic", "boottime"];

fn is_false(b: &bool) -> bool {
    !*b
}

/// One network strategy (`loopback`, `veth`, `netns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A bind mount from the host into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    pub source: PathBuf,
    pub destination: PathBuf,
    #[serde(default)]
    pub writable: bool,
    /// Mount propagation private (no events to or from the host); otherwise slave.
    #[serde(default)]
    pub private: bool,
}

/// The user and groups a process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// Parses `uid[:gid]`; an empty string is root. The gid defaults to the uid.
    pub fn parse(s: &str) -> Result<User, String> {
        if s.is_empty() {
            return Ok(User::default());
        }
        let (u, g) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let uid: u32 = u
            .parse()
            .map_err(|_| format!("{s:?} is not uid[:gid] (numeric ids)"))?;
        let gid: u32 = match g {
            Some(g) => g
                .parse()
                .map_err(|_| format!("{s:?} is not uid[:gid] (numeric ids)"))?,
            None => uid,
        };
        if uid == u32::MAX || gid == u32::MAX {
            // (uid_t)-1 means "leave unchanged" to setresuid and setgroups.
            return Err(format!("{s:?}: 4294967295 is not a user or group id"));
        }
        Ok(User { uid, gid })
    }
}

/// The default namespaces of a container, as in the seed's sample.
pub const DEFAULT_NAMESPACES: [Namespace; 5] = [
    Namespace::Mount,
    Namespace::Uts,
    Namespace::Ipc,
    Namespace::Pid,
    Namespace::Net,
];

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let data = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = serde_json::from_slice(&data).map_err(|source| LoadError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.validate().map_err(|source| LoadError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        Ok(config)
    }

    pub fn has_namespace(&self, ns: Namespace) -> bool {
        self.namespaces.contains(&ns)
    }

    pub fn user(&self) -> User {
        // Validated in `validate`; an invalid value cannot reach here through `load`.
        User::parse(&self.user).unwrap_or_default()
    }

    /// The `PATH` the command is looked up in: the container's own, or the usual default.
    pub fn path_env(&self) -> &str {
        self.environment
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    }

    /// The veth strategies, with their index in `networks`.
    pub fn veths(&self) -> impl Iterator<Item = (usize, &Network)> {
        self.networks
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kind == crate::network::VETH)
    }

    /// The `slirp4netns` strategy and its index, if the config has one.
    pub fn slirp4netns(&self) -> Option<(usize, &Network)> {
        self.networks
            .iter()
            .enumerate()
            .find(|(_, n)| n.kind == crate::network::SLIRP4NETNS)
    }

    /// The `netns` strategy's path and its index, if the config has one.
    pub fn netns_path(&self) -> Option<(usize, &str)> {
        self.networks
            .iter()
            .enumerate()
            .find(|(_, n)| n.kind == crate::network::NETNS)
            .map(|(i, n)| {
                let path = n.context.get(crate::network::CONTEXT_NSPATH);
                (i, path.map(String::as_str).unwrap_or(""))
            })
    }

    /// Whether no_new_privs is set (the default).
    pub fn no_new_privs(&self) -> bool {
        self.no_new_privileges.unwrap_or(true)
    }

    /// The paths masked in the container.
    pub fn masked(&self) -> Vec<String> {
        match &self.masked_paths {
            Some(p) => p.clone(),
            None => crate::security::DEFAULT_MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    /// The paths made read-only in the container.
    pub fn readonly(&self) -> Vec<String> {
        match &self.readonly_paths {
            Some(p) => p.clone(),
            None => crate::security::DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    /// The AppArmor profile asked for (`context.apparmor_profile`).
    pub fn apparmor_profile(&self) -> Option<&str> {
        self.context
            .get(crate::security::APPARMOR_KEY)
            .map(String::as_str)
    }
}

/// The MTU range of a veth (bytes): IPv4's minimum to the kernel's maximum for veth.
pub const MIN_MTU: u32 = 68;
pub const MAX_MTU: u32 = 65535;

#[cfg(test)]
mod tests;
