//! What an OCI config must be, each error naming its JSON path in config.json.
//!
//! Two kinds of checks: those of the OCI shape itself (here: `ociVersion`, `process`, `root`,
//! namespace types, what this runtime does not do), and the model's rules, which name a typed
//! `Field` that [`json_path`] names as config.json does (an exhaustive `match`: a field added
//! to the model does not compile here until it has its config.json path).

use std::fmt;

use super::Spec;
use crate::config::{
    CgroupField, ConfigError, DeviceField, Field, FilesystemField, HookField, IdKind, IdMapField,
    MountField, RlimitField,
};

/// A config.json that cannot be run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciError {
    /// The JSON path: `linux.resources.memory.limit`, `mounts[2].destination`.
    pub path: String,
    pub reason: String,
}

impl OciError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> OciError {
        OciError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for OciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config.json: {}: {}", self.path, self.reason)
    }
}

impl std::error::Error for OciError {}

/// Where the model's device list came from: for each device, its config.json path
/// (`linux.devices[0]` or `linux.resources.devices[3]`). Filled in by the conversion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    pub devices: Vec<String>,
}

/// The checks of the OCI shape (before conversion).
pub fn validate(spec: &Spec) -> Result<(), OciError> {
    let major = spec.oci_version.split('.').next().unwrap_or("");
    if major != "1" {
        return Err(OciError::new(
            "ociVersion",
            format!(
                "{:?} is not a 1.x runtime-spec version (this runtime implements {})",
                spec.oci_version,
                super::OCI_VERSION
            ),
        ));
    }
    let Some(root) = &spec.root else {
        return Err(OciError::new("root", "missing"));
    };
    if root.path.is_empty() {
        return Err(OciError::new("root.path", "missing"));
    }
    let Some(process) = &spec.process else {
        return Err(OciError::new("process", "missing"));
    };
    if process.args.is_empty() {
        return Err(OciError::new("process.args", "missing"));
    }
    if !process.command_line.is_empty() {
        return Err(OciError::new(
            "process.commandLine",
            "Windows only; use process.args",
        ));
    }
    if !process.cwd.starts_with('/') {
        return Err(OciError::new(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd),
        ));
    }
    if !process.selinux_label.is_empty() {
        return Err(OciError::new(
            "process.selinuxLabel",
            "SELinux is not supported by this runtime (this host has no SELinux)",
        ));
    }
    let linux = spec.linux.clone().unwrap_or_default();
    let mut seen = Vec::new();
    for (i, ns) in linux.namespaces.iter().enumerate() {
        if super::convert::namespace(&ns.kind).is_none() {
            return Err(OciError::new(
                format!("linux.namespaces[{i}].type"),
                format!("unknown namespace type {:?}", ns.kind),
            ));
        }
        if seen.contains(&ns.kind) {
            return Err(OciError::new(
                format!("linux.namespaces[{i}].type"),
                format!("{} listed twice", ns.kind),
            ));
        }
        seen.push(ns.kind.clone());
        if !ns.path.is_empty() && !ns.path.starts_with('/') {
            return Err(OciError::new(
                format!("linux.namespaces[{i}].path"),
                format!("{:?} is not an absolute path", ns.path),
            ));
        }
    }
    if !linux.mount_label.is_empty() {
        return Err(OciError::new(
            "linux.mountLabel",
            "SELinux is not supported by this runtime (this host has no SELinux)",
        ));
    }
    if let Some(p) = &linux.personality {
        if !p.flags.is_empty() {
            return Err(OciError::new(
                "linux.personality.flags",
                "no personality flags are defined",
            ));
        }
    }
    Ok(())
}

/// The OCI error for a model rule.
pub fn from_model(e: ConfigError, spec: &Spec, origins: &Origins) -> OciError {
    OciError::new(json_path(&e.field, spec, origins), e.reason)
}

/// config.json's path of a model field.
pub fn json_path(field: &Field, spec: &Spec, origins: &Origins) -> String {
    let namespace_index = |kind: &str| {
        spec.linux
            .iter()
            .flat_map(|l| l.namespaces.iter())
            .position(|n| n.kind == kind)
            .map(|i| format!("linux.namespaces[{i}]"))
            .unwrap_or_else(|| "linux.namespaces".into())
    };
    match field {
        Field::Hostname => "hostname".into(),
        Field::Domainname => "domainname".into(),
        Field::Namespaces | Field::Networks | Field::Network(..) => "linux.namespaces".into(),
        Field::Namespace(i) => format!("linux.namespaces[{i}]"),
        Field::NamespacePath(ns) => {
            let kind = super::convert::oci_namespace_name(*ns);
            format!("{}.path", namespace_index(kind))
        }
        Field::Environment(i) => format!("process.env[{i}]"),
        Field::Args => "process.args".into(),
        Field::Arg(i) => format!("process.args[{i}]"),
        Field::WorkingDir => "process.cwd".into(),
        Field::User => "process.user".into(),
        Field::AdditionalGid(i) => format!("process.user.additionalGids[{i}]"),
        Field::Umask => "process.user.umask".into(),
        Field::CapabilitiesMask(_) | Field::Capabilities(_) => "process.capabilities".into(),
        Field::CapabilitySet(set, i) => format!("process.capabilities.{set}[{i}]"),
        Field::Rlimit(i, f) => format!(
            "process.rlimits[{i}].{}",
            match f {
                RlimitField::Type => "type",
                RlimitField::Soft => "soft",
            }
        ),
        Field::OomScoreAdj => "process.oomScoreAdj".into(),
        Field::ApparmorProfile => "process.apparmorProfile".into(),
        Field::IoPriority => "process.ioPriority".into(),
        Field::TimeOffset(clock) => format!("linux.timeOffsets.{clock}"),
        Field::Rootfs => "root.path".into(),
        Field::Mount(i, f) => format!(
            "mounts[{i}].{}",
            match f {
                MountField::Source => "source",
                MountField::Destination => "destination",
            }
        ),
        Field::Filesystem(i, f) => format!(
            "mounts[{i}].{}",
            match f {
                FilesystemField::Destination => "destination",
                FilesystemField::Type => "type",
                FilesystemField::Source => "source",
                FilesystemField::Options => "options",
                FilesystemField::IdMaps(k) => id_maps(*k),
            }
        ),
        Field::Cgroups(f) => cgroup_path(*f).into(),
        Field::Device(i, f) => {
            let base = origins
                .devices
                .get(*i)
                .cloned()
                .unwrap_or_else(|| "linux.devices".into());
            let node = base.starts_with("linux.devices");
            let sub = match (f, node) {
                (DeviceField::Type, _) => "type",
                (DeviceField::Major, _) => "major",
                (DeviceField::Minor, _) => "minor",
                (DeviceField::Permissions, _) => "access",
                (DeviceField::Path, _) => "path",
                (DeviceField::FileMode, _) => "fileMode",
            };
            format!("{base}.{sub}")
        }
        Field::Seccomp(f) => format!("linux.seccomp{}", f.path(true)),
        Field::MaskedPath(i) => format!("linux.maskedPaths[{i}]"),
        Field::ReadonlyPath(i) => format!("linux.readonlyPaths[{i}]"),
        Field::IdMaps(k) => format!("linux.{}", id_maps(*k)),
        Field::IdMap(k, i, f) => format!(
            "linux.{}[{i}].{}",
            id_maps(*k),
            match f {
                IdMapField::ContainerId => "containerID",
                IdMapField::HostId => "hostID",
                IdMapField::Size => "size",
            }
        ),
        Field::Sysctl(key) => format!("linux.sysctl.{key}"),
        Field::RootfsPropagation => "linux.rootfsPropagation".into(),
        Field::Personality => "linux.personality.domain".into(),
        Field::Hook(point, i, f) => format!(
            "hooks.{}[{i}].{}",
            hook_point(point),
            match f {
                HookField::Path => "path",
                HookField::Timeout => "timeout",
            }
        ),
    }
}

fn id_maps(k: IdKind) -> &'static str {
    match k {
        IdKind::Uid => "uidMappings",
        IdKind::Gid => "gidMappings",
    }
}

fn hook_point(point: &str) -> &str {
    match point {
        "create_runtime" => "createRuntime",
        "create_container" => "createContainer",
        "start_container" => "startContainer",
        other => other,
    }
}

fn cgroup_path(f: CgroupField) -> &'static str {
    match f {
        CgroupField::Name | CgroupField::Parent => "linux.cgroupsPath",
        CgroupField::Memory => "linux.resources.memory.limit",
        CgroupField::MemoryReservation => "linux.resources.memory.reservation",
        CgroupField::MemorySwap => "linux.resources.memory.swap",
        CgroupField::MemorySwappiness => "linux.resources.memory.swappiness",
        CgroupField::CpuShares => "linux.resources.cpu.shares",
        CgroupField::CpuQuota => "linux.resources.cpu.quota",
        CgroupField::CpuPeriod => "linux.resources.cpu.period",
        CgroupField::CpuRtRuntime => "linux.resources.cpu.realtimeRuntime",
        CgroupField::CpuRtPeriod => "linux.resources.cpu.realtimePeriod",
        CgroupField::CpusetCpus => "linux.resources.cpu.cpus",
        CgroupField::CpusetMems => "linux.resources.cpu.mems",
        CgroupField::BlkioWeight => "linux.resources.blockIO.weight",
        CgroupField::BlkioWeightDevices => "linux.resources.blockIO.weightDevice",
        CgroupField::BlkioThrottle => "linux.resources.blockIO",
        CgroupField::PidsLimit => "linux.resources.pids.limit",
        CgroupField::HugepageLimits => "linux.resources.hugepageLimits",
        CgroupField::Unified => "linux.resources.unified",
        CgroupField::Devices => "linux.resources.devices",
        CgroupField::Freezer | CgroupField::ShareParent => "linux.resources",
    }
}
