//! The `cgroups` section of container.json: where the container's cgroups live, the limits
//! the kernel enforces on them, the device rules, and their checks.

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use super::{CgroupField, ConfigError, DeviceField, Field};

fn is_false(b: &bool) -> bool {
    !*b
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

    // What an OCI config.json can say beyond the above (all optional).
    /// The device rules are `devices` alone, in order, with nothing allowed before them (OCI
    /// `linux.resources.devices`); otherwise the default list comes first.
    #[serde(default, skip_serializing_if = "is_false")]
    pub devices_exact: bool,
    /// Memory swappiness, 0 to 100 (v1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<u64>,
    /// Real-time CPU time per period and the period, microseconds (v1 `cpu.rt_*`).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_rt_runtime: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_rt_period: i64,
    /// Per-device block I/O weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blkio_weight_devices: Vec<BlkioDevice>,
    /// Per-device block I/O limits: bytes and operations per second, read and write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blkio_read_bps: Vec<BlkioDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blkio_write_bps: Vec<BlkioDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blkio_read_iops: Vec<BlkioDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blkio_write_iops: Vec<BlkioDevice>,
    /// Huge page limits, bytes per page size (`2MB`, `1GB`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hugepage_limits: Vec<HugepageLimit>,
    /// cgroup v2 files written as they are, after the fields above (`"memory.high": "1G"`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub unified: std::collections::BTreeMap<String, String>,
    /// v1 controllers (`memory`, `cpuset`) in whose hierarchy the container's processes join
    /// `parent` (a cgroup every such container shares) instead of a cgroup of their own, so
    /// no limit of theirs may be set. A memory cgroup costs the kernel shrinker bookkeeping
    /// for every filesystem mounted anywhere (about 1 MiB each among thousands of containers)
    /// and takes per-container memory figures and OOM counts with it; every cpuset made or
    /// removed is checked against all its siblings and rebuilds the scheduler's domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub share_parent: Vec<String>,
}

/// The controllers `share_parent` may name.
pub const SHAREABLE: [&str; 2] = ["memory", "cpuset"];

/// A block device and a value for it: a weight (10 to 1000) or a rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlkioDevice {
    pub major: i64,
    pub minor: i64,
    pub value: u64,
}

/// A huge page size (`2MB`, `1GB`, `64KB`) and its limit in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HugepageLimit {
    pub page_size: String,
    pub limit: u64,
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
    /// A rule that refuses rather than allows (with `Cgroups::devices_exact`, rules apply in
    /// order).
    #[serde(default, skip_serializing_if = "is_false")]
    pub deny: bool,
    /// Owner of the node made at `path`; absent: root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// Smallest memory limit accepted: below it a container cannot even be set up.
pub const MIN_MEMORY: i64 = 4 << 20;
/// Largest pid limit the kernel has (PID_MAX_LIMIT).
pub const MAX_PIDS: i64 = 4 << 20;
/// Largest device numbers Linux has (12 bits of major, 20 of minor).
pub const MAX_MAJOR: i64 = (1 << 12) - 1;
pub const MAX_MINOR: i64 = (1 << 20) - 1;

impl Cgroups {
    /// The first field that asks the kernel for a limit (OCI's `linux.resources` name), if
    /// any: what a container without cgroups of its own (rootless, with no cgroup it may
    /// write) cannot be given. Device rules are not counted: without the privilege to make
    /// device nodes, a rootless container reaches only devices bind-mounted in, with the
    /// user's own permissions.
    pub fn first_limit(&self) -> Option<&'static str> {
        self.limits().into_iter().next()
    }

    /// Every field that asks the kernel for a limit (OCI's `linux.resources` names), in the
    /// order of [`Cgroups::first_limit`].
    pub fn limits(&self) -> Vec<&'static str> {
        let set = |v: i64| v != 0 && v != -1;
        [
            (set(self.memory), "memory.limit"),
            (set(self.memory_reservation), "memory.reservation"),
            (set(self.memory_swap), "memory.swap"),
            (self.memory_swappiness.is_some(), "memory.swappiness"),
            (set(self.cpu_shares), "cpu.shares"),
            (set(self.cpu_quota), "cpu.quota"),
            (set(self.cpu_period), "cpu.period"),
            (!self.cpuset_cpus.is_empty(), "cpu.cpus"),
            (!self.cpuset_mems.is_empty(), "cpu.mems"),
            (set(self.cpu_rt_runtime), "cpu.realtimeRuntime"),
            (set(self.cpu_rt_period), "cpu.realtimePeriod"),
            (set(self.blkio_weight), "blockIO.weight"),
            (
                !self.blkio_weight_devices.is_empty(),
                "blockIO.weightDevice",
            ),
            (
                !self.blkio_read_bps.is_empty(),
                "blockIO.throttleReadBpsDevice",
            ),
            (
                !self.blkio_write_bps.is_empty(),
                "blockIO.throttleWriteBpsDevice",
            ),
            (
                !self.blkio_read_iops.is_empty(),
                "blockIO.throttleReadIOPSDevice",
            ),
            (
                !self.blkio_write_iops.is_empty(),
                "blockIO.throttleWriteIOPSDevice",
            ),
            (set(self.pids_limit), "pids.limit"),
            (!self.hugepage_limits.is_empty(), "hugepageLimits"),
            (!self.unified.is_empty(), "unified"),
            (self.freezer == "FROZEN", "freezer"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// The cgroup v2 controller a field of [`Cgroups::limits`] needs: `Some("")` for the core
    /// files every v2 cgroup has (freezing), None for what only cgroup v1 has (swappiness,
    /// real-time CPU time). `unified` asks for the controllers its keys name.
    pub fn v2_controllers_of(&self, field: &str) -> Option<Vec<String>> {
        let one = |c: &str| Some(vec![c.to_owned()]);
        match field {
            "memory.swappiness" | "cpu.realtimeRuntime" | "cpu.realtimePeriod" => None,
            "cpu.cpus" | "cpu.mems" => one("cpuset"),
            "hugepageLimits" => one("hugetlb"),
            "freezer" => one(""),
            "unified" => Some(
                self.unified
                    .keys()
                    .map(|k| match k.split('.').next().unwrap_or("") {
                        "cgroup" => String::new(),
                        c => c.to_owned(),
                    })
                    .collect(),
            ),
            f if f.starts_with("blockIO.") => one("io"),
            f => one(f.split('.').next().unwrap_or("")),
        }
    }

    /// Whether any field of `controller` is set (what a shared cgroup cannot take): `memory`
    /// or `cpuset` (cpus, mems).
    pub fn limits_controller(&self, controller: &str) -> bool {
        let prefix = format!("{controller}.");
        let field = |f: &&str| match controller {
            "cpuset" => *f == "cpu.cpus" || *f == "cpu.mems",
            c => f.starts_with(&format!("{c}.")),
        };
        self.limits().iter().any(field) || self.unified.keys().any(|k| k.starts_with(&prefix))
    }

    /// Checks the resource fields (not `name` and `parent`).
    pub fn validate_resources(&self) -> Result<(), ConfigError> {
        use CgroupField as F;
        let err = |f: CgroupField, why: String| Err(ConfigError::new(Field::Cgroups(f), why));
        for c in &self.share_parent {
            if !SHAREABLE.contains(&c.as_str()) {
                return err(
                    F::ShareParent,
                    format!("{c:?}: only {} can be shared", SHAREABLE.join(" and ")),
                );
            }
            if self.limits_controller(c) {
                return err(
                    F::ShareParent,
                    format!("a container with a {c} limit needs a {c} cgroup of its own"),
                );
            }
        }
        let unlimited_or = |f: CgroupField, v: i64, min: i64| {
            if v == 0 || v == -1 || v >= min {
                Ok(())
            } else {
                err(
                    f,
                    format!("{v} is out of range: -1 (unlimited) or at least {min}"),
                )
            }
        };
        unlimited_or(F::Memory, self.memory, MIN_MEMORY)?;
        unlimited_or(F::MemoryReservation, self.memory_reservation, 1)?;
        unlimited_or(F::MemorySwap, self.memory_swap, 1)?;
        if self.memory_swap > 0 {
            if self.memory <= 0 {
                return err(
                    F::MemorySwap,
                    "a memory+swap limit needs a memory limit".into(),
                );
            }
            if self.memory_swap < self.memory {
                return err(
                    F::MemorySwap,
                    format!(
                        "{} is below memory ({}): it is memory plus swap",
                        self.memory_swap, self.memory
                    ),
                );
            }
        }
        if self.cpu_shares != 0 && !(2..=262_144).contains(&self.cpu_shares) {
            return err(
                F::CpuShares,
                format!("{} is out of range 2 to 262144", self.cpu_shares),
            );
        }
        if self.cpu_period != 0 && !(1000..=1_000_000).contains(&self.cpu_period) {
            return err(
                F::CpuPeriod,
                format!(
                    "{} is out of range 1000 to 1000000 (microseconds)",
                    self.cpu_period
                ),
            );
        }
        unlimited_or(F::CpuQuota, self.cpu_quota, 1000)?;
        if self.cpu_quota > 1_000_000 * 1024 {
            return err(F::CpuQuota, format!("{} is too large", self.cpu_quota));
        }
        for (f, v) in [
            (F::CpusetCpus, &self.cpuset_cpus),
            (F::CpusetMems, &self.cpuset_mems),
        ] {
            if !v.is_empty() {
                parse_cpu_list(v).map_err(|why| ConfigError::new(Field::Cgroups(f), why))?;
            }
        }
        if self.blkio_weight != 0 && !(10..=1000).contains(&self.blkio_weight) {
            return err(
                F::BlkioWeight,
                format!("{} is out of range 10 to 1000", self.blkio_weight),
            );
        }
        unlimited_or(F::PidsLimit, self.pids_limit, 1)?;
        if self.pids_limit > MAX_PIDS {
            return err(
                F::PidsLimit,
                format!("{} is above the kernel's limit {MAX_PIDS}", self.pids_limit),
            );
        }
        if self.devices.len() > 256 {
            return err(
                F::Devices,
                format!("{} entries; at most 256", self.devices.len()),
            );
        }
        for (i, d) in self.devices.iter().enumerate() {
            d.validate()
                .map_err(|(f, why)| ConfigError::new(Field::Device(i, f), why))?;
        }
        if !matches!(self.freezer.as_str(), "" | "THAWED" | "FROZEN") {
            return err(
                F::Freezer,
                format!("{:?} is not THAWED or FROZEN", self.freezer),
            );
        }
        Ok(())
    }
}

impl Device {
    /// Checks one rule; the error is the sub-field and why.
    fn validate(&self) -> Result<(), (DeviceField, String)> {
        if !matches!(self.kind.as_str(), "a" | "b" | "c") {
            return Err((
                DeviceField::Type,
                format!("{:?} is not c, b or a", self.kind),
            ));
        }
        for (f, n, max) in [
            (DeviceField::Major, self.major_number, MAX_MAJOR),
            (DeviceField::Minor, self.minor_number, MAX_MINOR),
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
                DeviceField::Type,
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
                DeviceField::Permissions,
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
                    DeviceField::Path,
                    format!("{:?} is not a path under /dev/", self.path),
                ));
            }
            if self.kind == "a" || self.major_number < 0 || self.minor_number < 0 {
                return Err((
                    DeviceField::Path,
                    "making a node needs type c or b and both numbers".into(),
                ));
            }
            if self.file_mode > 0o777 {
                return Err((
                    DeviceField::FileMode,
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
