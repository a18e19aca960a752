//! The `container.json` model: libcontainer's 2014 format, with the few fields execdriver adds.
//!
//! Field names follow the seed document (`hostname`, `networks`, `cgroups`, `tty`,
//! `environment`, `capabilities_mask`, `context`, `mounts`, `namespaces`) and libcontainer's
//! 2014 `Container` type for the fields the sample does not show (`readonly_fs`, `user`,
//! `working_dir`). execdriver's own additions are all optional, so the seed's sample parses as
//! it is: `rootfs` (otherwise the directory holding container.json, as nsinit does) and `args`
//! (otherwise given on nsinit's command line).
//!
//! [`Config::validate`] is the one place a config is checked; every error names its field.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::capabilities;
use crate::namespaces::Namespace;

/// A field that failed validation, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The JSON path of the field, e.g. `mounts[1].destination`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Errors loading a container.json.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
}

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
}

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

/// Where the container's cgroups live (`<hierarchy>/<parent>/<name>`) and the limits the
/// kernel enforces on them: libcontainer 2014's flat `cgroups` fields.
///
/// Numbers are 0 when not set (the kernel's default: no limit). `-1` means "unlimited" where
/// the field allows it (`memory`, `memory_reservation`, `memory_swap`, `cpu_quota`,
/// `pids_limit`), which matters when a live update lifts a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cgroups {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent: String,
    pub name: String,
    /// Allow access to every device (libcontainer 2014 `device_access`); otherwise the default
    /// list ([`crate::cgroups::devices::DEFAULT_RULES`]) plus `devices`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub device_access: bool,
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub memory: i64,
    /// Soft memory limit in bytes (v1 `memory.soft_limit_in_bytes`, v2 `memory.low`).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub memory_reservation: i64,
    /// Memory plus swap, in bytes (Docker's `--memory-swap`); needs `memory`.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub memory_swap: i64,
    /// Relative CPU weight, 2 to 262144 (v1 `cpu.shares`; v2 `cpu.weight` is derived).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_shares: i64,
    /// CPU time per period in microseconds.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_quota: i64,
    /// The period of `cpu_quota` in microseconds (1000 to 1000000; kernel default 100000).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_period: i64,
    /// CPUs, in the kernel's list format (`0-2,4`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpuset_cpus: String,
    /// Memory nodes, in the kernel's list format.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpuset_mems: String,
    /// Block I/O weight, 10 to 1000.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub blkio_weight: i64,
    /// Most processes (and threads) the container may have.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub pids_limit: i64,
    /// Devices allowed besides the default list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// `FROZEN` starts the container paused (frozen right after Start); `THAWED` or empty: not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub freezer: String,
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// A device rule, with libcontainer 2014's field names (`type` is a string here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// `c` (character), `b` (block) or `a` (every device).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where the node is made inside the container (under /dev); empty: only allowed, not made.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// -1 matches every major number.
    pub major_number: i64,
    /// -1 matches every minor number.
    pub minor_number: i64,
    /// Any of `r`, `w`, `m` (mknod).
    pub cgroup_permissions: String,
    /// Permission bits of the node made at `path`; 0 means 0666.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub file_mode: u32,
}

/// Smallest memory limit accepted: below it a container cannot even be set up.
pub const MIN_MEMORY: i64 = 4 << 20;
/// Largest pid limit the kernel has (PID_MAX_LIMIT).
pub const MAX_PIDS: i64 = 4 << 20;
/// Largest device numbers Linux has (12 bits of major, 20 of minor).
pub const MAX_MAJOR: i64 = (1 << 12) - 1;
pub const MAX_MINOR: i64 = (1 << 20) - 1;

impl Cgroups {
    /// Checks the resource fields; errors name `cgroups.<field>`.
    pub fn validate_resources(&self) -> Result<(), ConfigError> {
        let err = |f: &str, why: String| Err(ConfigError::new(format!("cgroups.{f}"), why));
        let unlimited_or = |f: &str, v: i64, min: i64| {
            if v == 0 || v == -1 || v >= min {
                Ok(())
            } else {
                err(
                    f,
                    format!("{v} is out of range: -1 (unlimited) or at least {min}"),
                )
            }
        };
        unlimited_or("memory", self.memory, MIN_MEMORY)?;
        unlimited_or("memory_reservation", self.memory_reservation, 1)?;
        unlimited_or("memory_swap", self.memory_swap, 1)?;
        if self.memory_swap > 0 {
            if self.memory <= 0 {
                return err(
                    "memory_swap",
                    "a memory+swap limit needs a memory limit".into(),
                );
            }
            if self.memory_swap < self.memory {
                return err(
                    "memory_swap",
                    format!(
                        "{} is below memory ({}): it is memory plus swap",
                        self.memory_swap, self.memory
                    ),
                );
            }
        }
        if self.cpu_shares != 0 && !(2..=262_144).contains(&self.cpu_shares) {
            return err(
                "cpu_shares",
                format!("{} is out of range 2 to 262144", self.cpu_shares),
            );
        }
        if self.cpu_period != 0 && !(1000..=1_000_000).contains(&self.cpu_period) {
            return err(
                "cpu_period",
                format!(
                    "{} is out of range 1000 to 1000000 (microseconds)",
                    self.cpu_period
                ),
            );
        }
        unlimited_or("cpu_quota", self.cpu_quota, 1000)?;
        if self.cpu_quota > 1_000_000 * 1024 {
            return err("cpu_quota", format!("{} is too large", self.cpu_quota));
        }
        for (f, v) in [
            ("cpuset_cpus", &self.cpuset_cpus),
            ("cpuset_mems", &self.cpuset_mems),
        ] {
            if !v.is_empty() {
                parse_cpu_list(v).map_err(|why| ConfigError::new(format!("cgroups.{f}"), why))?;
            }
        }
        if self.blkio_weight != 0 && !(10..=1000).contains(&self.blkio_weight) {
            return err(
                "blkio_weight",
                format!("{} is out of range 10 to 1000", self.blkio_weight),
            );
        }
        unlimited_or("pids_limit", self.pids_limit, 1)?;
        if self.pids_limit > MAX_PIDS {
            return err(
                "pids_limit",
                format!("{} is above the kernel's limit {MAX_PIDS}", self.pids_limit),
            );
        }
        if self.devices.len() > 256 {
            return err(
                "devices",
                format!("{} entries; at most 256", self.devices.len()),
            );
        }
        for (i, d) in self.devices.iter().enumerate() {
            d.validate()
                .map_err(|(f, why)| ConfigError::new(format!("cgroups.devices[{i}]{f}"), why))?;
        }
        if !matches!(self.freezer.as_str(), "" | "THAWED" | "FROZEN") {
            return err(
                "freezer",
                format!("{:?} is not THAWED or FROZEN", self.freezer),
            );
        }
        Ok(())
    }
}

impl Device {
    /// Checks one rule; the error is (the sub-field, e.g. `.type`, and why).
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !matches!(self.kind.as_str(), "a" | "b" | "c") {
            return Err((".type", format!("{:?} is not c, b or a", self.kind)));
        }
        for (f, n, max) in [
            (".major_number", self.major_number, MAX_MAJOR),
            (".minor_number", self.minor_number, MAX_MINOR),
        ] {
            if !(-1..=max).contains(&n) {
                return Err((
                    f,
                    format!("{n} is not a device number (0 to {max}) or -1 (any)"),
                ));
            }
        }
        if self.kind == "a" && (self.major_number != -1 || self.minor_number != -1) {
            return Err((
                ".type",
                "\"a\" (every device) takes no numbers; use -1".into(),
            ));
        }
        let p = &self.cgroup_permissions;
        if p.is_empty()
            || p.len() > 3
            || !p.chars().all(|c| "rwm".contains(c))
            || p.chars().enumerate().any(|(i, c)| p[..i].contains(c))
        {
            return Err((
                ".cgroup_permissions",
                format!("{p:?} is not a combination of r, w and m"),
            ));
        }
        if !self.path.is_empty() {
            let path = Path::new(&self.path);
            if !path.starts_with("/dev/")
                || path.components().any(|c| c == Component::ParentDir)
                || self.path.contains('\0')
            {
                return Err((
                    ".path",
                    format!("{:?} is not a path under /dev/", self.path),
                ));
            }
            if self.kind == "a" || self.major_number < 0 || self.minor_number < 0 {
                return Err((
                    ".path",
                    "making a node needs type c or b and both numbers".into(),
                ));
            }
            if self.file_mode > 0o777 {
                return Err((
                    ".file_mode",
                    format!("{:o} is not a permission mode", self.file_mode),
                ));
            }
        }
        Ok(())
    }
}

/// Parses the kernel's cpu/node list format (`0-3,5,7-8`) into the numbers it names.
pub fn parse_cpu_list(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    let s = s.trim();
    if s.is_empty() {
        return Ok(out);
    }
    for part in s.split(',') {
        let bad = || format!("{s:?} is not a list like 0-3,5");
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a.trim().parse().map_err(|_| bad())?;
        let b: u32 = b.trim().parse().map_err(|_| bad())?;
        if a > b || b >= 8192 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
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

/// Maximum lengths for strings that end up in kernel calls.
const MAX_HOSTNAME: usize = 64;
const MAX_ARG_BYTES: usize = 128 * 1024;

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

    /// Checks every field; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hostname.len() > MAX_HOSTNAME {
            return Err(ConfigError::new(
                "hostname",
                format!("longer than {MAX_HOSTNAME} bytes"),
            ));
        }
        if self.hostname.contains(['\0', '/']) {
            return Err(ConfigError::new("hostname", "contains NUL or '/'"));
        }
        if !self.hostname.is_empty() && !self.has_namespace(Namespace::Uts) {
            return Err(ConfigError::new(
                "hostname",
                "setting a hostname needs the NEWUTS namespace",
            ));
        }
        if !self.has_namespace(Namespace::Mount) {
            return Err(ConfigError::new(
                "namespaces",
                "NEWNS is required (the rootfs is pivoted into)",
            ));
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            if self.namespaces[..i].contains(ns) {
                return Err(ConfigError::new(
                    format!("namespaces[{i}]"),
                    format!("{ns} listed twice"),
                ));
            }
        }
        for (i, e) in self.environment.iter().enumerate() {
            check_no_nul(&format!("environment[{i}]"), e)?;
            match e.split_once('=') {
                Some((k, _)) if !k.is_empty() => {}
                _ => {
                    return Err(ConfigError::new(
                        format!("environment[{i}]"),
                        "must be KEY=VALUE",
                    ))
                }
            }
        }
        for (i, c) in self.capabilities_mask.iter().enumerate() {
            if !capabilities::is_valid(c) {
                return Err(ConfigError::new(
                    format!("capabilities_mask[{i}]"),
                    format!("unknown capability {c:?}"),
                ));
            }
        }
        for (i, m) in self.mounts.iter().enumerate() {
            let field = format!("mounts[{i}]");
            check_absolute(&format!("{field}.source"), &m.source)?;
            check_absolute(&format!("{field}.destination"), &m.destination)?;
            check_no_dotdot(&format!("{field}.destination"), &m.destination)?;
            if m.destination == Path::new("/") {
                return Err(ConfigError::new(
                    format!("{field}.destination"),
                    "cannot mount over /",
                ));
            }
        }
        if let Some(cg) = &self.cgroups {
            check_cgroup_component("cgroups.name", &cg.name, false)?;
            check_cgroup_component("cgroups.parent", &cg.parent, true)?;
            cg.validate_resources()?;
        }
        User::parse(&self.user).map_err(|r| ConfigError::new("user", r))?;
        if !self.working_dir.is_empty() {
            check_absolute("working_dir", Path::new(&self.working_dir))?;
            check_no_dotdot("working_dir", Path::new(&self.working_dir))?;
        }
        if let Some(rootfs) = &self.rootfs {
            check_absolute("rootfs", rootfs)?;
        }
        let mut arg_bytes = 0;
        for (i, a) in self.args.iter().enumerate() {
            check_no_nul(&format!("args[{i}]"), a)?;
            arg_bytes += a.len() + 1;
        }
        if arg_bytes > MAX_ARG_BYTES {
            return Err(ConfigError::new(
                "args",
                format!("longer than {MAX_ARG_BYTES} bytes"),
            ));
        }
        if self.args.first().is_some_and(|a| a.is_empty()) {
            return Err(ConfigError::new("args[0]", "empty command"));
        }
        self.check_networks()?;
        Ok(())
    }

    /// The `networks` strategies: known types, with the fields each needs, well-formed.
    fn check_networks(&self) -> Result<(), ConfigError> {
        use crate::network::{self as net, Cidr};
        let own_netns = self.has_namespace(Namespace::Net);
        let joins = self
            .networks
            .iter()
            .filter(|n| n.kind == net::NETNS)
            .count();
        let veths = self.networks.iter().filter(|n| n.kind == net::VETH).count();
        if veths > net::MAX_VETHS {
            return Err(ConfigError::new(
                "networks",
                format!("{veths} veth networks; at most {}", net::MAX_VETHS),
            ));
        }
        let mut gateways = (false, false); // (IPv4, IPv6): one default route each
        for (i, n) in self.networks.iter().enumerate() {
            let field = |f: &str| format!("networks[{i}].{f}");
            match n.kind.as_str() {
                "" => return Err(ConfigError::new(field("type"), "missing")),
                net::LOOPBACK => {
                    // The seed's era wrote address/gateway/mtu on loopback too; they are ignored.
                    if !own_netns && joins == 0 {
                        return Err(ConfigError::new(
                            field("type"),
                            "loopback needs the NEWNET namespace",
                        ));
                    }
                }
                net::NETNS => {
                    if joins > 1 {
                        return Err(ConfigError::new(
                            field("type"),
                            "only one netns network can be joined",
                        ));
                    }
                    if veths > 0 {
                        return Err(ConfigError::new(
                            field("type"),
                            "netns cannot be combined with veth (the joined namespace is configured by its owner)",
                        ));
                    }
                    let path = n.context.get(net::CONTEXT_NSPATH).map(String::as_str);
                    check_absolute(
                        &field(&format!("context.{}", net::CONTEXT_NSPATH)),
                        Path::new(path.unwrap_or("")),
                    )?;
                }
                net::VETH => {
                    if !own_netns {
                        return Err(ConfigError::new(
                            field("type"),
                            "veth needs the NEWNET namespace",
                        ));
                    }
                    let bridge = n.context.get(net::CONTEXT_BRIDGE).map(String::as_str);
                    net::check_ifname(bridge.unwrap_or(""))
                        .map_err(|r| ConfigError::new(field("context.bridge"), r))?;
                    if let Some(prefix) = n.context.get(net::CONTEXT_PREFIX) {
                        if prefix.len() > net::MAX_PREFIX {
                            return Err(ConfigError::new(
                                field("context.prefix"),
                                format!(
                                    "{prefix:?} is longer than {} bytes (the name gets at least 4 random digits within {})",
                                    net::MAX_PREFIX,
                                    net::IFNAME_MAX
                                ),
                            ));
                        }
                        if !prefix.is_empty() {
                            net::check_ifname(prefix)
                                .map_err(|r| ConfigError::new(field("context.prefix"), r))?;
                        }
                    }
                    if n.address.is_empty() {
                        return Err(ConfigError::new(field("address"), "missing"));
                    }
                    let cidr = Cidr::parse(&n.address)
                        .map_err(|r| ConfigError::new(field("address"), r))?;
                    if cidr.addr.is_unspecified()
                        || cidr.addr.is_multicast()
                        || cidr.addr.is_loopback()
                    {
                        return Err(ConfigError::new(
                            field("address"),
                            format!("{} is not a unicast host address", cidr.addr),
                        ));
                    }
                    if !n.gateway.is_empty() {
                        let gw: std::net::IpAddr = n.gateway.parse().map_err(|_| {
                            ConfigError::new(
                                field("gateway"),
                                format!("{:?} is not an IP address", n.gateway),
                            )
                        })?;
                        if !cidr.contains(gw) {
                            return Err(ConfigError::new(
                                field("gateway"),
                                format!("{gw} is not in {}/{}", cidr.network(), cidr.prefix),
                            ));
                        }
                        if gw == cidr.addr {
                            return Err(ConfigError::new(
                                field("gateway"),
                                "is the container's own address",
                            ));
                        }
                        let seen = if gw.is_ipv4() {
                            &mut gateways.0
                        } else {
                            &mut gateways.1
                        };
                        if std::mem::replace(seen, true) {
                            return Err(ConfigError::new(
                                field("gateway"),
                                "a second default route of the same family",
                            ));
                        }
                    }
                    if n.mtu != 0 && !(MIN_MTU..=MAX_MTU).contains(&n.mtu) {
                        return Err(ConfigError::new(
                            field("mtu"),
                            format!(
                                "{} is not 0 (the bridge's) or {MIN_MTU} to {MAX_MTU}",
                                n.mtu
                            ),
                        ));
                    }
                    if !n.mac_address.is_empty() {
                        net::parse_mac(&n.mac_address)
                            .map_err(|r| ConfigError::new(field("mac_address"), r))?;
                    }
                }
                other => {
                    return Err(ConfigError::new(
                        field("type"),
                        format!("unknown network type {other:?} (loopback, veth, netns)"),
                    ))
                }
            }
        }
        crate::security::validate(self)
    }

    /// Whether no_new_privs is set (the default).
    pub fn no_new_privs(&self) -> bool {
        self.no_new_privileges.unwrap_or(true)
    }

    /// The capabilities the container's processes hold.
    pub fn kept_capabilities(&self) -> caps::CapsHashSet {
        capabilities::resolve(self.capabilities.as_deref(), &self.capabilities_mask)
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

fn check_no_nul(field: &str, s: &str) -> Result<(), ConfigError> {
    if s.contains('\0') {
        return Err(ConfigError::new(field, "contains a NUL byte"));
    }
    Ok(())
}

fn check_absolute(field: &str, p: &Path) -> Result<(), ConfigError> {
    if p.as_os_str().is_empty() {
        return Err(ConfigError::new(field, "missing"));
    }
    if !p.is_absolute() {
        return Err(ConfigError::new(
            field,
            format!("{} is not an absolute path", p.display()),
        ));
    }
    if p.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(ConfigError::new(field, "contains a NUL byte"));
    }
    Ok(())
}

fn check_no_dotdot(field: &str, p: &Path) -> Result<(), ConfigError> {
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(ConfigError::new(
            field,
            format!("{} contains '..'", p.display()),
        ));
    }
    Ok(())
}

/// A cgroup path piece: plain names separated by '/', no '..', nothing absolute.
fn check_cgroup_component(field: &str, s: &str, allow_slash: bool) -> Result<(), ConfigError> {
    if s.is_empty() {
        return if allow_slash {
            Ok(())
        } else {
            Err(ConfigError::new(field, "missing"))
        };
    }
    let bad = |why: &str| Err(ConfigError::new(field, format!("{s:?} {why}")));
    if s.len() > 200 {
        return bad("is longer than 200 bytes");
    }
    if !allow_slash && s.contains('/') {
        return bad("contains '/'");
    }
    for part in s.trim_matches('/').split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return bad("has an empty, '.' or '..' component");
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:@".contains(&b))
        {
            return bad("has characters outside [A-Za-z0-9_.:@-]");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SAMPLE: &str = include_str!("../testdata/seed-container.json");

    #[test]
    fn seed_sample_parses_and_validates() {
        let c: Config = serde_json::from_str(SEED_SAMPLE).unwrap();
        assert_eq!(c.hostname, "koye");
        assert_eq!(c.networks[0].kind, "veth");
        assert_eq!(c.networks[0].context["bridge"], "docker0");
        assert_eq!(c.networks[0].mtu, 1500);
        assert_eq!(c.cgroups.as_ref().unwrap().parent, "docker");
        assert!(c.tty);
        assert_eq!(c.capabilities_mask.len(), 15);
        assert_eq!(c.context["apparmor_profile"], "docker-default");
        assert_eq!(c.mounts.len(), 3);
        assert!(!c.mounts[0].writable);
        assert!(c.mounts[0].private);
        assert_eq!(c.namespaces, DEFAULT_NAMESPACES.to_vec());
        c.validate().unwrap();
    }

    #[test]
    fn round_trip_keeps_seed_field_names() {
        let c: Config = serde_json::from_str(SEED_SAMPLE).unwrap();
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        for key in [
            "hostname",
            "networks",
            "cgroups",
            "tty",
            "environment",
            "capabilities_mask",
            "context",
            "mounts",
            "namespaces",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from serialized config");
        }
        let back: Config = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    fn valid() -> Config {
        Config {
            namespaces: DEFAULT_NAMESPACES.to_vec(),
            args: vec!["/bin/true".into()],
            ..Default::default()
        }
    }

    #[test]
    fn errors_name_the_field() {
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c.capabilities_mask = vec!["SYS_BOGUS".into()]),
                "capabilities_mask[0]",
            ),
            (
                Box::new(|c| c.namespaces.retain(|n| *n != Namespace::Mount)),
                "namespaces",
            ),
            (
                Box::new(|c| c.namespaces.push(Namespace::Pid)),
                "namespaces[5]",
            ),
            (
                Box::new(|c| {
                    c.mounts = vec![Mount {
                        source: "rel".into(),
                        destination: "/x".into(),
                        ..Default::default()
                    }]
                }),
                "mounts[0].source",
            ),
            (
                Box::new(|c| {
                    c.mounts = vec![Mount {
                        source: "/a".into(),
                        destination: "/x/../../etc".into(),
                        ..Default::default()
                    }]
                }),
                "mounts[0].destination",
            ),
            (
                Box::new(|c| c.environment = vec!["NOEQUALS".into()]),
                "environment[0]",
            ),
            (Box::new(|c| c.user = "root".into()), "user"),
            (Box::new(|c| c.working_dir = "tmp".into()), "working_dir"),
            (Box::new(|c| c.hostname = "x".repeat(65)), "hostname"),
            (
                Box::new(|c| {
                    c.cgroups = Some(Cgroups {
                        parent: "../x".into(),
                        name: "a".into(),
                        ..Default::default()
                    })
                }),
                "cgroups.parent",
            ),
            (Box::new(|c| c.args = vec!["a\0b".into()]), "args[0]"),
        ];
        for (mutate, field) in cases {
            let mut c = valid();
            mutate(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        valid().validate().unwrap();
    }

    fn veth() -> Network {
        Network {
            kind: "veth".into(),
            address: "172.17.0.2/16".into(),
            gateway: "172.17.42.1".into(),
            mtu: 1500,
            context: BTreeMap::from([
                ("bridge".to_string(), "docker0".to_string()),
                ("prefix".to_string(), "veth".to_string()),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn network_errors_name_the_field() {
        type Mutation = Box<dyn Fn(&mut Network)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|n| n.kind = "macvlan".into()), "networks[1].type"),
            (Box::new(|n| n.kind.clear()), "networks[1].type"),
            (
                Box::new(|n| n.address = "172.17.0.2".into()),
                "networks[1].address",
            ),
            (
                Box::new(|n| n.address = "172.17.0.300/16".into()),
                "networks[1].address",
            ),
            (Box::new(|n| n.address.clear()), "networks[1].address"),
            (
                Box::new(|n| n.address = "127.0.0.2/8".into()),
                "networks[1].address",
            ),
            (
                Box::new(|n| n.gateway = "10.0.0.1".into()),
                "networks[1].gateway",
            ),
            (
                Box::new(|n| n.gateway = "localhost".into()),
                "networks[1].gateway",
            ),
            (
                Box::new(|n| n.gateway = "172.17.0.2".into()),
                "networks[1].gateway",
            ),
            (Box::new(|n| n.mtu = 20), "networks[1].mtu"),
            (Box::new(|n| n.mtu = 70000), "networks[1].mtu"),
            (
                Box::new(|n| n.mac_address = "01:00:5e:00:00:01".into()),
                "networks[1].mac_address",
            ),
            (
                Box::new(|n| n.mac_address = "nope".into()),
                "networks[1].mac_address",
            ),
            (
                Box::new(|n| {
                    n.context.remove("bridge");
                }),
                "networks[1].context.bridge",
            ),
            (
                Box::new(|n| {
                    n.context.insert("bridge".into(), "x".repeat(16));
                }),
                "networks[1].context.bridge",
            ),
            (
                Box::new(|n| {
                    n.context.insert("prefix".into(), "toolongprefix".into());
                }),
                "networks[1].context.prefix",
            ),
        ];
        let lo = Network {
            kind: "loopback".into(),
            address: "127.0.0.1/0".into(),
            gateway: "localhost".into(),
            mtu: 1500,
            ..Default::default()
        };
        for (mutate, field) in cases {
            let mut c = valid();
            let mut n = veth();
            mutate(&mut n);
            c.networks = vec![lo.clone(), n];
            let err = c.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        // The seed era's loopback entry (address 127.0.0.1/0, gateway "localhost") is fine.
        let mut c = valid();
        c.networks = vec![lo.clone(), veth()];
        c.validate().unwrap();

        // veth and loopback need NEWNET; netns needs a path and stands alone.
        let mut c = valid();
        c.namespaces.retain(|n| *n != Namespace::Net);
        c.networks = vec![veth()];
        assert_eq!(c.validate().unwrap_err().field, "networks[0].type");
        c.networks = vec![lo.clone()];
        assert_eq!(c.validate().unwrap_err().field, "networks[0].type");
        let netns = |p: &str| Network {
            kind: "netns".into(),
            context: BTreeMap::from([("nspath".to_string(), p.to_string())]),
            ..Default::default()
        };
        c.networks = vec![netns("/var/run/netns/x")];
        c.validate().unwrap();
        c.networks = vec![netns("relative")];
        assert_eq!(
            c.validate().unwrap_err().field,
            "networks[0].context.nspath"
        );
        let mut c = valid();
        c.networks = vec![netns("/proc/1/ns/net"), veth()];
        assert_eq!(c.validate().unwrap_err().field, "networks[0].type");
        c.networks = vec![netns("/proc/1/ns/net"), netns("/proc/2/ns/net")];
        assert_eq!(c.validate().unwrap_err().field, "networks[0].type");
        // One default route per family.
        let mut second = veth();
        second.address = "172.17.0.3/16".into();
        c.networks = vec![veth(), second];
        assert_eq!(c.validate().unwrap_err().field, "networks[1].gateway");
    }

    #[test]
    fn unknown_fields_and_namespaces_are_rejected() {
        assert!(serde_json::from_str::<Config>(r#"{"capabilites_mask": []}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"namespaces": ["NEWFOO"]}"#).is_err());
    }

    #[test]
    fn user_parsing() {
        assert_eq!(User::parse("").unwrap(), User { uid: 0, gid: 0 });
        assert_eq!(
            User::parse("1000").unwrap(),
            User {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(User::parse("1000:5").unwrap(), User { uid: 1000, gid: 5 });
        assert!(User::parse("1000:").is_err());
        assert!(User::parse("-1").is_err());
    }

    fn with_cgroups(f: impl Fn(&mut Cgroups)) -> Config {
        let mut cg = Cgroups {
            parent: "p".into(),
            name: "n".into(),
            ..Default::default()
        };
        f(&mut cg);
        Config {
            cgroups: Some(cg),
            ..valid()
        }
    }

    #[test]
    fn cgroup_resources_are_checked_and_errors_name_the_field() {
        type Mutation = Box<dyn Fn(&mut Cgroups)>;
        let bad: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.memory = 1000), "cgroups.memory"),
            (Box::new(|c| c.memory = -2), "cgroups.memory"),
            (
                Box::new(|c| c.memory_swap = 64 << 20),
                "cgroups.memory_swap",
            ),
            (
                Box::new(|c| {
                    c.memory = 64 << 20;
                    c.memory_swap = 32 << 20
                }),
                "cgroups.memory_swap",
            ),
            (
                Box::new(|c| c.memory_reservation = -5),
                "cgroups.memory_reservation",
            ),
            (Box::new(|c| c.cpu_shares = 1), "cgroups.cpu_shares"),
            (Box::new(|c| c.cpu_shares = 300_000), "cgroups.cpu_shares"),
            (Box::new(|c| c.cpu_period = 999), "cgroups.cpu_period"),
            (Box::new(|c| c.cpu_quota = 10), "cgroups.cpu_quota"),
            (
                Box::new(|c| c.cpuset_cpus = "0-".into()),
                "cgroups.cpuset_cpus",
            ),
            (
                Box::new(|c| c.cpuset_mems = "3-1".into()),
                "cgroups.cpuset_mems",
            ),
            (Box::new(|c| c.blkio_weight = 5), "cgroups.blkio_weight"),
            (Box::new(|c| c.pids_limit = -3), "cgroups.pids_limit"),
            (
                Box::new(|c| c.pids_limit = MAX_PIDS + 1),
                "cgroups.pids_limit",
            ),
            (Box::new(|c| c.freezer = "frozen".into()), "cgroups.freezer"),
            (
                Box::new(|c| {
                    c.devices = vec![Device {
                        kind: "x".into(),
                        cgroup_permissions: "rwm".into(),
                        ..Default::default()
                    }]
                }),
                "cgroups.devices[0].type",
            ),
            (
                Box::new(|c| {
                    c.devices = vec![Device {
                        kind: "c".into(),
                        major_number: 1,
                        minor_number: 3,
                        cgroup_permissions: "rwx".into(),
                        ..Default::default()
                    }]
                }),
                "cgroups.devices[0].cgroup_permissions",
            ),
            (
                Box::new(|c| {
                    c.devices = vec![Device {
                        kind: "c".into(),
                        path: "/etc/passwd".into(),
                        major_number: 1,
                        minor_number: 3,
                        cgroup_permissions: "rw".into(),
                        ..Default::default()
                    }]
                }),
                "cgroups.devices[0].path",
            ),
            (
                Box::new(|c| {
                    c.devices = vec![Device {
                        kind: "c".into(),
                        major_number: -7,
                        minor_number: 3,
                        cgroup_permissions: "rw".into(),
                        ..Default::default()
                    }]
                }),
                "cgroups.devices[0].major_number",
            ),
        ];
        for (mutate, field) in bad {
            let err = with_cgroups(mutate).validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        with_cgroups(|c| {
            c.memory = 32 << 20;
            c.memory_swap = -1;
            c.memory_reservation = 16 << 20;
            c.cpu_shares = 512;
            c.cpu_quota = 20_000;
            c.cpu_period = 100_000;
            c.cpuset_cpus = "0".into();
            c.cpuset_mems = "0".into();
            c.blkio_weight = 500;
            c.pids_limit = 20;
            c.freezer = "FROZEN".into();
            c.devices = vec![Device {
                kind: "c".into(),
                path: "/dev/fuse".into(),
                major_number: 10,
                minor_number: 229,
                cgroup_permissions: "rwm".into(),
                file_mode: 0o600,
            }];
        })
        .validate()
        .unwrap();
    }

    #[test]
    fn cgroup_fields_keep_libcontainer_names() {
        let json = r#"{"parent": "docker", "name": "x", "memory": 33554432, "memory_swap": -1,
            "cpu_shares": 512, "cpu_quota": 20000, "cpu_period": 100000, "cpuset_cpus": "0",
            "memory_reservation": 1048576, "cpuset_mems": "0", "blkio_weight": 300,
            "pids_limit": 20, "device_access": false, "freezer": "THAWED",
            "devices": [{"type": "c", "major_number": 10, "minor_number": 229,
                         "cgroup_permissions": "rwm", "path": "/dev/fuse"}]}"#;
        let cg: Cgroups = serde_json::from_str(json).unwrap();
        assert_eq!(cg.memory, 32 << 20);
        assert_eq!(cg.devices[0].minor_number, 229);
        let back = serde_json::to_value(&cg).unwrap();
        for key in [
            "memory",
            "memory_swap",
            "cpu_shares",
            "cpu_quota",
            "pids_limit",
            "devices",
        ] {
            assert!(back.get(key).is_some(), "{key}");
        }
        assert!(serde_json::from_str::<Cgroups>(r#"{"name": "x", "memory_limit": 1}"#).is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("1,1").unwrap(), vec![1]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        for bad in ["a", "1-", "-1", "3-1", "0,,1", "99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }
}
