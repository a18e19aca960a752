//! What a failed check says: which field of the model ([`Field`]) and why.
//!
//! Checks name the model's field as a typed [`Field`], never as a string: each front end names
//! it in its own vocabulary from that one value. [`Field::json_path`] is container.json's (the
//! seed's names); the driver names the same field as its gRPC request does, and the OCI front
//! end as config.json does, each with an exhaustive `match`, so a field added here cannot be
//! reported under a wrong name without the compiler saying so.

use std::fmt;
use std::path::PathBuf;

/// A field of the model that a check refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Hostname,
    /// The namespace list as a whole.
    Namespaces,
    Namespace(usize),
    Environment(usize),
    CapabilitiesMask(usize),
    /// The capabilities kept.
    Capabilities(usize),
    Mount(usize, MountField),
    Cgroups(CgroupField),
    Device(usize, DeviceField),
    User,
    WorkingDir,
    Rootfs,
    /// The command as a whole.
    Args,
    Arg(usize),
    /// The network list as a whole.
    Networks,
    Network(usize, NetworkField),
    Rlimit(usize, RlimitField),
    OomScoreAdj,
    /// A field of the seccomp profile (named within the profile by each vocabulary).
    Seccomp(crate::seccomp::SeccompField),
    MaskedPath(usize),
    ReadonlyPath(usize),
    /// `uid_mappings` or `gid_mappings` as a whole.
    IdMaps(IdKind),
    IdMap(IdKind, usize, IdMapField),
    ApparmorProfile,
    Domainname,
    AdditionalGid(usize),
    Umask,
    /// A capability of a set (`bounding`, `effective`, `inheritable`, `permitted`, `ambient`).
    CapabilitySet(&'static str, usize),
    Filesystem(usize, FilesystemField),
    NamespacePath(crate::namespaces::Namespace),
    Sysctl(String),
    RootfsPropagation,
    Personality,
    /// A hook: its point (`prestart`, `create_runtime`, ...), its index, which field.
    Hook(&'static str, usize, HookField),
    IoPriority,
    /// A clock of `time_offsets`.
    TimeOffset(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesystemField {
    Destination,
    Type,
    Source,
    Options,
    /// `uid_mappings` or `gid_mappings` of an idmapped mount.
    IdMaps(IdKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookField {
    Path,
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountField {
    Source,
    Destination,
}

/// A field of the `cgroups` section other than `devices` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupField {
    Name,
    Parent,
    Memory,
    MemoryReservation,
    MemorySwap,
    CpuShares,
    CpuQuota,
    CpuPeriod,
    CpusetCpus,
    CpusetMems,
    BlkioWeight,
    PidsLimit,
    /// The device list as a whole.
    Devices,
    Freezer,
    MemorySwappiness,
    CpuRtRuntime,
    CpuRtPeriod,
    BlkioWeightDevices,
    BlkioThrottle,
    HugepageLimits,
    Unified,
    ShareParent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceField {
    Type,
    Major,
    Minor,
    Permissions,
    Path,
    FileMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkField {
    Type,
    Address,
    Gateway,
    Mtu,
    MacAddress,
    /// `context.bridge`, `context.prefix`, `context.nspath`.
    Context(&'static str),
    /// `context` as a whole (a strategy that takes none).
    Contexts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlimitField {
    Type,
    Soft,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Uid,
    Gid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMapField {
    ContainerId,
    HostId,
    Size,
}

impl CgroupField {
    /// The name in container.json's `cgroups` (and in the gRPC `resources`, which took it).
    pub fn name(self) -> &'static str {
        match self {
            CgroupField::Name => "name",
            CgroupField::Parent => "parent",
            CgroupField::Memory => "memory",
            CgroupField::MemoryReservation => "memory_reservation",
            CgroupField::MemorySwap => "memory_swap",
            CgroupField::CpuShares => "cpu_shares",
            CgroupField::CpuQuota => "cpu_quota",
            CgroupField::CpuPeriod => "cpu_period",
            CgroupField::CpusetCpus => "cpuset_cpus",
            CgroupField::CpusetMems => "cpuset_mems",
            CgroupField::BlkioWeight => "blkio_weight",
            CgroupField::PidsLimit => "pids_limit",
            CgroupField::Devices => "devices",
            CgroupField::Freezer => "freezer",
            CgroupField::MemorySwappiness => "memory_swappiness",
            CgroupField::CpuRtRuntime => "cpu_rt_runtime",
            CgroupField::CpuRtPeriod => "cpu_rt_period",
            CgroupField::BlkioWeightDevices => "blkio_weight_devices",
            CgroupField::BlkioThrottle => "blkio_read_bps",
            CgroupField::HugepageLimits => "hugepage_limits",
            CgroupField::Unified => "unified",
            CgroupField::ShareParent => "share_parent",
        }
    }
}

impl IdKind {
    /// `uid_mappings` or `gid_mappings`.
    pub fn name(self) -> &'static str {
        match self {
            IdKind::Uid => "uid_mappings",
            IdKind::Gid => "gid_mappings",
        }
    }
}

impl IdMapField {
    pub fn name(self) -> &'static str {
        match self {
            IdMapField::ContainerId => "container_id",
            IdMapField::HostId => "host_id",
            IdMapField::Size => "size",
        }
    }
}

impl Field {
    /// The field's path in container.json: `mounts[1].destination`, `cgroups.memory`.
    pub fn json_path(&self) -> String {
        match self {
            Field::Hostname => "hostname".into(),
            Field::Namespaces => "namespaces".into(),
            Field::Namespace(i) => format!("namespaces[{i}]"),
            Field::Environment(i) => format!("environment[{i}]"),
            Field::CapabilitiesMask(i) => format!("capabilities_mask[{i}]"),
            Field::Capabilities(i) => format!("capabilities[{i}]"),
            Field::Mount(i, f) => format!(
                "mounts[{i}].{}",
                match f {
                    MountField::Source => "source",
                    MountField::Destination => "destination",
                }
            ),
            Field::Cgroups(f) => format!("cgroups.{}", f.name()),
            Field::Device(i, f) => format!(
                "cgroups.devices[{i}].{}",
                match f {
                    DeviceField::Type => "type",
                    DeviceField::Major => "major_number",
                    DeviceField::Minor => "minor_number",
                    DeviceField::Permissions => "cgroup_permissions",
                    DeviceField::Path => "path",
                    DeviceField::FileMode => "file_mode",
                }
            ),
            Field::User => "user".into(),
            Field::WorkingDir => "working_dir".into(),
            Field::Rootfs => "rootfs".into(),
            Field::Args => "args".into(),
            Field::Arg(i) => format!("args[{i}]"),
            Field::Networks => "networks".into(),
            Field::Network(i, f) => format!("networks[{i}].{}", f.json_name()),
            Field::Rlimit(i, f) => format!(
                "rlimits[{i}].{}",
                match f {
                    RlimitField::Type => "type",
                    RlimitField::Soft => "soft",
                }
            ),
            Field::OomScoreAdj => "oom_score_adj".into(),
            Field::Seccomp(f) => format!("seccomp{}", f.path(true)),
            Field::MaskedPath(i) => format!("masked_paths[{i}]"),
            Field::ReadonlyPath(i) => format!("readonly_paths[{i}]"),
            Field::IdMaps(k) => k.name().into(),
            Field::IdMap(k, i, f) => format!("{}[{i}].{}", k.name(), f.name()),
            Field::ApparmorProfile => "context.apparmor_profile".into(),
            Field::Domainname => "domainname".into(),
            Field::AdditionalGid(i) => format!("additional_gids[{i}]"),
            Field::Umask => "umask".into(),
            Field::CapabilitySet(set, i) => format!("capability_sets.{set}[{i}]"),
            Field::Filesystem(i, f) => format!(
                "filesystems[{i}].{}",
                match f {
                    FilesystemField::Destination => "destination",
                    FilesystemField::Type => "type",
                    FilesystemField::Source => "source",
                    FilesystemField::Options => "options",
                    FilesystemField::IdMaps(k) => k.name(),
                }
            ),
            Field::NamespacePath(ns) => format!("namespace_paths.{}", ns.name()),
            Field::Sysctl(key) => format!("sysctl.{key}"),
            Field::RootfsPropagation => "rootfs_propagation".into(),
            Field::Personality => "personality".into(),
            Field::IoPriority => "io_priority".into(),
            Field::TimeOffset(clock) => format!("time_offsets.{clock}"),
            Field::Hook(point, i, f) => format!(
                "hooks.{point}[{i}].{}",
                match f {
                    HookField::Path => "path",
                    HookField::Timeout => "timeout",
                }
            ),
        }
    }
}

impl NetworkField {
    /// The name in container.json's network entries.
    pub fn json_name(self) -> String {
        match self {
            NetworkField::Type => "type".into(),
            NetworkField::Address => "address".into(),
            NetworkField::Gateway => "gateway".into(),
            NetworkField::Mtu => "mtu".into(),
            NetworkField::MacAddress => "mac_address".into(),
            NetworkField::Context(key) => format!("context.{key}"),
            NetworkField::Contexts => "context".into(),
        }
    }
}

/// A field that failed validation, and why. Displayed with the container.json path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: Field,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: Field, reason: impl Into<String>) -> Self {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field.json_path(), self.reason)
    }
}

impl std::error::Error for ConfigError {}

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
