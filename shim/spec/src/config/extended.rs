//! The checks of the fields an OCI config.json adds to container.json: domain name, groups,
//! umask, capability sets, filesystems, joined namespaces, sysctls, root propagation,
//! personality, hooks, and the extra cgroup settings.

use std::path::Path;

use super::validate::check;
use super::{
    CgroupField, Cgroups, Config, ConfigError, Field, FilesystemField, HookField, MAX_HOSTNAME,
};
use crate::namespaces::Namespace;

fn at(field: Field) -> impl FnOnce(String) -> ConfigError {
    move |reason| ConfigError::new(field, reason)
}

/// Propagation values of the root mount.
pub const PROPAGATIONS: [&str; 8] = [
    "private",
    "rprivate",
    "slave",
    "rslave",
    "shared",
    "rshared",
    "unbindable",
    "runbindable",
];

/// Sysctl prefixes and the namespace that makes them the container's own (runc's rules):
/// anything else is the host's and refused.
const NAMESPACED_SYSCTLS: [(&str, Namespace); 9] = [
    ("kernel.msgmax", Namespace::Ipc),
    ("kernel.msgmnb", Namespace::Ipc),
    ("kernel.msgmni", Namespace::Ipc),
    ("kernel.sem", Namespace::Ipc),
    ("kernel.shmall", Namespace::Ipc),
    ("kernel.shmmax", Namespace::Ipc),
    ("kernel.shmmni", Namespace::Ipc),
    ("kernel.shm_rmid_forced", Namespace::Ipc),
    ("fs.mqueue.", Namespace::Ipc),
];

/// The namespace a sysctl belongs to, if it is namespaced.
pub fn sysctl_namespace(key: &str) -> Option<Namespace> {
    if key.starts_with("net.") {
        return Some(Namespace::Net);
    }
    if matches!(key, "kernel.hostname" | "kernel.domainname") {
        return Some(Namespace::Uts);
    }
    NAMESPACED_SYSCTLS
        .iter()
        .find(|(p, _)| key == *p || (p.ends_with('.') && key.starts_with(p)))
        .map(|(_, ns)| *ns)
}

/// Checks what OCI adds; called by `Config::validate`.
pub(super) fn validate(c: &Config) -> Result<(), ConfigError> {
    if !c.domainname.is_empty() {
        if c.domainname.len() > MAX_HOSTNAME || c.domainname.contains(['\0', '/']) {
            return Err(ConfigError::new(
                Field::Domainname,
                format!("{:?} is not a domain name", c.domainname),
            ));
        }
        if !c.has_namespace(Namespace::Uts) {
            return Err(ConfigError::new(
                Field::Domainname,
                "setting a domain name needs the NEWUTS namespace",
            ));
        }
    }
    if c.additional_gids.len() > 65536 {
        return Err(ConfigError::new(
            Field::AdditionalGid(65536),
            "at most 65536 groups",
        ));
    }
    if let Some(i) = c.additional_gids.iter().position(|g| *g == u32::MAX) {
        return Err(ConfigError::new(
            Field::AdditionalGid(i),
            "4294967295 is not a group id",
        ));
    }
    if c.umask.is_some_and(|m| m > 0o777) {
        return Err(ConfigError::new(
            Field::Umask,
            "not a permission mask (0 to 0777)",
        ));
    }
    if let Some(sets) = &c.capability_sets {
        for (name, list) in [
            ("bounding", &sets.bounding),
            ("effective", &sets.effective),
            ("inheritable", &sets.inheritable),
            ("permitted", &sets.permitted),
            ("ambient", &sets.ambient),
        ] {
            for (i, cap) in list.iter().enumerate() {
                if crate::capabilities::parse(cap).is_none() {
                    return Err(ConfigError::new(
                        Field::CapabilitySet(name, i),
                        format!("unknown capability {cap:?}"),
                    ));
                }
            }
        }
    }
    for (i, fs) in c.filesystems.iter().flatten().enumerate() {
        let field = |f| Field::Filesystem(i, f);
        check::absolute(&fs.destination).map_err(at(field(FilesystemField::Destination)))?;
        check::no_dotdot(&fs.destination).map_err(at(field(FilesystemField::Destination)))?;
        if fs.kind.is_empty() || fs.kind.contains(['\0', ',']) {
            return Err(ConfigError::new(
                field(FilesystemField::Type),
                format!("{:?} is not a filesystem type", fs.kind),
            ));
        }
        check::no_nul(&fs.source).map_err(at(field(FilesystemField::Source)))?;
        if fs.kind == "bind" && !Path::new(&fs.source).is_absolute() {
            return Err(ConfigError::new(
                field(FilesystemField::Source),
                format!("{:?}: a bind mount's source is an absolute path", fs.source),
            ));
        }
        if let Some(o) = fs.options.iter().find(|o| o.contains('\0')) {
            return Err(ConfigError::new(
                field(FilesystemField::Options),
                format!("{o:?} contains a NUL byte"),
            ));
        }
    }
    for (ns, path) in &c.namespace_paths {
        let field = Field::NamespacePath(*ns);
        if !c.has_namespace(*ns) {
            return Err(ConfigError::new(
                field,
                format!("{ns} is joined but not listed in namespaces"),
            ));
        }
        check::absolute(path).map_err(at(field))?;
    }
    for (key, value) in &c.sysctl {
        let field = || Field::Sysctl(key.clone());
        if key.is_empty()
            || key.starts_with(['.', '/'])
            || key.contains("..")
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        {
            return Err(ConfigError::new(
                field(),
                format!("{key:?} is not a sysctl name"),
            ));
        }
        check::no_nul(value).map_err(at(field()))?;
        match sysctl_namespace(key) {
            None => {
                return Err(ConfigError::new(
                    field(),
                    "not namespaced: it would change the host",
                ))
            }
            Some(ns) if !c.has_namespace(ns) => {
                return Err(ConfigError::new(
                    field(),
                    format!("belongs to {ns}, which the container does not have of its own"),
                ))
            }
            Some(_) => {}
        }
    }
    if !c.rootfs_propagation.is_empty() && !PROPAGATIONS.contains(&c.rootfs_propagation.as_str()) {
        return Err(ConfigError::new(
            Field::RootfsPropagation,
            format!(
                "{:?} is not one of {}",
                c.rootfs_propagation,
                PROPAGATIONS.join(", ")
            ),
        ));
    }
    if !matches!(c.personality.as_str(), "" | "LINUX" | "LINUX32") {
        return Err(ConfigError::new(
            Field::Personality,
            format!("{:?} is not LINUX or LINUX32", c.personality),
        ));
    }
    for (point, hooks) in [
        ("prestart", &c.hooks.prestart),
        ("create_runtime", &c.hooks.create_runtime),
        ("create_container", &c.hooks.create_container),
        ("start_container", &c.hooks.start_container),
        ("poststart", &c.hooks.poststart),
        ("poststop", &c.hooks.poststop),
    ] {
        for (i, h) in hooks.iter().enumerate() {
            check::absolute(Path::new(&h.path)).map_err(at(Field::Hook(
                point,
                i,
                HookField::Path,
            )))?;
            if h.timeout.is_some_and(|t| t <= 0) {
                return Err(ConfigError::new(
                    Field::Hook(point, i, HookField::Timeout),
                    "must be a positive number of seconds",
                ));
            }
        }
    }
    if let Some(p) = &c.io_priority {
        if !matches!(
            p.class.as_str(),
            "IOPRIO_CLASS_RT" | "IOPRIO_CLASS_BE" | "IOPRIO_CLASS_IDLE"
        ) || !(0..=7).contains(&p.priority)
        {
            return Err(ConfigError::new(
                Field::IoPriority,
                format!(
                    "{} {} is not IOPRIO_CLASS_RT, _BE or _IDLE with a priority 0 to 7",
                    p.class, p.priority
                ),
            ));
        }
    }
    if let Some(cg) = &c.cgroups {
        cgroup_extras(cg)?;
    }
    Ok(())
}

/// The cgroup settings OCI adds.
fn cgroup_extras(cg: &Cgroups) -> Result<(), ConfigError> {
    let err = |f: CgroupField, why: String| Err(ConfigError::new(Field::Cgroups(f), why));
    if cg.memory_swappiness.is_some_and(|s| s > 100) {
        return err(CgroupField::MemorySwappiness, "0 to 100".into());
    }
    if cg.cpu_rt_runtime < -1 || cg.cpu_rt_period < 0 {
        let f = if cg.cpu_rt_period < 0 {
            CgroupField::CpuRtPeriod
        } else {
            CgroupField::CpuRtRuntime
        };
        return err(f, "out of range".into());
    }
    for d in &cg.blkio_weight_devices {
        if !(10..=1000).contains(&d.value) || d.major < 0 || d.minor < 0 {
            return err(
                CgroupField::BlkioWeightDevices,
                format!(
                    "{}:{} weight {}: 10 to 1000 for a device",
                    d.major, d.minor, d.value
                ),
            );
        }
    }
    for d in cg
        .blkio_read_bps
        .iter()
        .chain(&cg.blkio_write_bps)
        .chain(&cg.blkio_read_iops)
        .chain(&cg.blkio_write_iops)
    {
        if d.major < 0 || d.minor < 0 {
            return err(
                CgroupField::BlkioThrottle,
                format!("{}:{} is not a device", d.major, d.minor),
            );
        }
    }
    for h in &cg.hugepage_limits {
        if hugepage_size(&h.page_size).is_none() {
            return err(
                CgroupField::HugepageLimits,
                format!("{:?} is not a page size such as 2MB or 1GB", h.page_size),
            );
        }
    }
    for key in cg.unified.keys() {
        if key.is_empty() || key.contains(['/', '\0']) || key.starts_with('.') || !key.contains('.')
        {
            return err(
                CgroupField::Unified,
                format!("{key:?} is not a cgroup file name (controller.file)"),
            );
        }
    }
    Ok(())
}

/// The bytes of a huge page size written as the kernel names them (`64KB`, `2MB`, `1GB`).
pub fn hugepage_size(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    (n > 0).then(|| n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_belong_to_namespaces() {
        assert_eq!(
            sysctl_namespace("net.ipv4.ip_forward"),
            Some(Namespace::Net)
        );
        assert_eq!(sysctl_namespace("kernel.shmmax"), Some(Namespace::Ipc));
        assert_eq!(sysctl_namespace("fs.mqueue.msg_max"), Some(Namespace::Ipc));
        assert_eq!(sysctl_namespace("kernel.domainname"), Some(Namespace::Uts));
        assert_eq!(sysctl_namespace("vm.swappiness"), None);
        assert_eq!(sysctl_namespace("kernel.shmmaxx"), None);
    }

    #[test]
    fn hugepage_sizes() {
        assert_eq!(hugepage_size("2MB"), Some(2 << 20));
        assert_eq!(hugepage_size("1GB"), Some(1 << 30));
        assert_eq!(hugepage_size("64KB"), Some(64 << 10));
        assert_eq!(hugepage_size("2M"), None);
        assert_eq!(hugepage_size("MB"), None);
    }
}
