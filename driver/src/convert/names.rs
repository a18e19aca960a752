//! The model's fields named as the gRPC request names them.
//!
//! A rule of the model (`Config::validate`, `Cgroups::validate_resources` in the spec crate)
//! reports a typed [`Field`]; this `match` is where the request's vocabulary lives. It is
//! exhaustive: a field added to the model does not compile here until it has a request name.

use execdriver_spec::config::{
    CgroupField, ConfigError, DeviceField, Field, IdMapField, MountField, NetworkField, RlimitField,
};

use crate::error::Error;

/// The error for a model rule, naming the request field.
pub fn request_field(e: ConfigError) -> Error {
    Error::InvalidArgument {
        field: request_name(&e.field),
        reason: e.reason,
    }
}

/// The request's name of a model field.
pub fn request_name(field: &Field) -> String {
    match field {
        Field::Hostname => "hostname".into(),
        Field::Namespaces => "namespaces".into(),
        Field::Namespace(i) => format!("namespaces[{i}]"),
        Field::Environment(i) => format!("process.env[{i}]"),
        Field::CapabilitiesMask(i) => format!("capabilities_mask[{i}]"),
        Field::Capabilities(i) => format!("security.capabilities[{i}]"),
        Field::Mount(i, f) => format!(
            "mounts[{i}].{}",
            match f {
                MountField::Source => "source",
                MountField::Destination => "destination",
            }
        ),
        Field::Cgroups(CgroupField::Name) => "id".into(),
        Field::Cgroups(CgroupField::Parent) => "resources.cgroup_parent".into(),
        Field::Cgroups(f) => format!("resources.{}", f.name()),
        Field::Device(i, f) => match f {
            DeviceField::Type => format!("resources.devices[{i}].type"),
            DeviceField::Major => format!("resources.devices[{i}].major"),
            DeviceField::Minor => format!("resources.devices[{i}].minor"),
            DeviceField::Permissions => format!("resources.devices[{i}].permissions"),
            DeviceField::Path => format!("resources.devices[{i}].container_path"),
            // The request has no mode: the node's mode comes from the rule as a whole.
            DeviceField::FileMode => format!("resources.devices[{i}]"),
        },
        Field::User => "process.user".into(),
        Field::WorkingDir => "process.cwd".into(),
        Field::Rootfs => "rootfs".into(),
        Field::Args => "process.args".into(),
        Field::Arg(i) => format!("process.args[{i}]"),
        Field::Networks => "network".into(),
        Field::Network(_, f) => match f {
            NetworkField::Type => "network.mode".into(),
            NetworkField::Address => "network.address".into(),
            NetworkField::Gateway => "network.address".into(),
            NetworkField::Mtu => "network.mtu".into(),
            NetworkField::MacAddress => "network.mac_address".into(),
            NetworkField::Context(execdriver_spec::network::CONTEXT_NSPATH) => {
                "network.netns_path".into()
            }
            // The bridge and the veth prefix are the daemon's (--bridge), not the request's.
            NetworkField::Context(_) | NetworkField::Contexts => "network".into(),
        },
        Field::Rlimit(i, f) => format!(
            "security.rlimits[{i}].{}",
            match f {
                RlimitField::Type => "type",
                RlimitField::Soft => "soft",
            }
        ),
        Field::OomScoreAdj => "security.oom_score_adj".into(),
        Field::Seccomp(f) => format!("security.seccomp{}", f.path(false)),
        Field::MaskedPath(i) => format!("security.masked_paths[{i}]"),
        Field::ReadonlyPath(i) => format!("security.readonly_paths[{i}]"),
        Field::IdMaps(k) => format!("security.{}", k.name()),
        Field::IdMap(k, i, f) => format!("security.{}[{i}].{}", k.name(), id_map_field(*f)),
        Field::ApparmorProfile => "security.apparmor_profile".into(),
        // What only an OCI config.json sets; a request cannot reach these, so a rule naming
        // one is about what the driver wrote itself.
        f @ (Field::Domainname
        | Field::AdditionalGid(_)
        | Field::Umask
        | Field::CapabilitySet(..)
        | Field::Filesystem(..)
        | Field::NamespacePath(_)
        | Field::Sysctl(_)
        | Field::RootfsPropagation
        | Field::Personality
        | Field::Hook(..)
        | Field::IoPriority
        | Field::TimeOffset(_)) => format!("container.json {}", f.json_path()),
    }
}

fn id_map_field(f: IdMapField) -> &'static str {
    f.name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use execdriver_spec::config::IdKind;

    /// Every field group, named as the request names it.
    #[test]
    fn every_group_has_its_request_name() {
        for (field, want) in [
            (Field::Environment(2), "process.env[2]"),
            (Field::Arg(0), "process.args[0]"),
            (Field::WorkingDir, "process.cwd"),
            (Field::User, "process.user"),
            (
                Field::Mount(1, MountField::Destination),
                "mounts[1].destination",
            ),
            (Field::Cgroups(CgroupField::Memory), "resources.memory"),
            (
                Field::Cgroups(CgroupField::Parent),
                "resources.cgroup_parent",
            ),
            (Field::Cgroups(CgroupField::Name), "id"),
            (
                Field::Device(0, DeviceField::Major),
                "resources.devices[0].major",
            ),
            (
                Field::Device(3, DeviceField::Path),
                "resources.devices[3].container_path",
            ),
            (Field::Capabilities(1), "security.capabilities[1]"),
            (
                Field::Rlimit(0, RlimitField::Soft),
                "security.rlimits[0].soft",
            ),
            (
                Field::Seccomp(execdriver_spec::seccomp::SeccompField::Action(0)),
                "security.seccomp.syscalls[0].action",
            ),
            (Field::MaskedPath(0), "security.masked_paths[0]"),
            (
                Field::IdMap(IdKind::Gid, 2, IdMapField::HostId),
                "security.gid_mappings[2].host_id",
            ),
            (Field::ApparmorProfile, "security.apparmor_profile"),
            (
                Field::Network(0, NetworkField::MacAddress),
                "network.mac_address",
            ),
        ] {
            assert_eq!(request_name(&field), want, "{field:?}");
        }
    }
}
