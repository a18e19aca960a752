//! A config.json as the model the shim runs (`crate::config::Config`), with OCI's meanings:
//! nothing is added that the config does not say (no default capabilities, seccomp profile,
//! masked paths or mounts), and its mounts replace the built-in set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::validate::{from_model, validate, OciError, Origins};
use super::{Linux, Spec};
use crate::config::{
    BlkioDevice, CapabilitySets, Cgroups, Config, Device, Filesystem, Hook, Hooks, HugepageLimit,
    IoPriority, TimeOffset,
};
use crate::namespaces::Namespace;
use crate::seccomp::{Arg, Profile, Seccomp, Syscall};
use crate::security::{IdMap, Rlimit};

/// A config.json converted: the model, the terminal's initial size, and where each device came
/// from (for error paths).
#[derive(Debug, Clone)]
pub struct Converted {
    pub config: Config,
    /// (rows, cols) from `process.consoleSize`.
    pub console_size: Option<(u16, u16)>,
    pub origins: Origins,
}

/// The model's namespace for an OCI namespace type.
pub fn namespace(kind: &str) -> Option<Namespace> {
    Some(match kind {
        "pid" => Namespace::Pid,
        "network" => Namespace::Net,
        "mount" => Namespace::Mount,
        "ipc" => Namespace::Ipc,
        "uts" => Namespace::Uts,
        "user" => Namespace::User,
        "cgroup" => Namespace::Cgroup,
        "time" => Namespace::Time,
        _ => return None,
    })
}

/// The OCI type of a namespace.
pub fn oci_namespace_name(ns: Namespace) -> &'static str {
    match ns {
        Namespace::Pid => "pid",
        Namespace::Net => "network",
        Namespace::Mount => "mount",
        Namespace::Ipc => "ipc",
        Namespace::Uts => "uts",
        Namespace::User => "user",
        Namespace::Cgroup => "cgroup",
        Namespace::Time => "time",
    }
}

/// Converts and checks `spec` of container `id` in `bundle` (absolute). `systemd` says whether
/// the host runs systemd (for a `slice:prefix:name` cgroups path).
pub fn to_config(
    spec: &Spec,
    id: &str,
    bundle: &Path,
    systemd: bool,
) -> Result<Converted, OciError> {
    validate(spec)?;
    let process = spec.process.clone().unwrap_or_default();
    let root = spec.root.clone().unwrap_or_default();
    let linux = spec.linux.clone().unwrap_or_default();

    let rootfs = if Path::new(&root.path).is_absolute() {
        PathBuf::from(&root.path)
    } else {
        bundle.join(&root.path)
    };

    let mut namespaces = Vec::new();
    let mut namespace_paths = BTreeMap::new();
    for n in &linux.namespaces {
        // Checked by `validate`.
        let Some(ns) = namespace(&n.kind) else {
            continue;
        };
        namespaces.push(ns);
        if !n.path.is_empty() {
            namespace_paths.insert(ns, PathBuf::from(&n.path));
        }
    }

    let caps = process.capabilities.clone().unwrap_or_default();
    let capability_sets = CapabilitySets {
        bounding: caps.bounding,
        effective: caps.effective,
        inheritable: caps.inheritable,
        permitted: caps.permitted,
        ambient: caps.ambient,
    };

    let mut context = BTreeMap::new();
    if !process.apparmor_profile.is_empty() {
        context.insert(
            crate::security::APPARMOR_KEY.to_owned(),
            process.apparmor_profile.clone(),
        );
    }

    let (cgroups, origins) = cgroups(&linux, id, systemd)?;

    let config = Config {
        hostname: spec.hostname.clone(),
        networks: Vec::new(),
        cgroups: Some(cgroups),
        tty: process.terminal,
        environment: process.env.clone(),
        capabilities_mask: Vec::new(),
        context,
        mounts: Vec::new(),
        namespaces,
        readonly_fs: root.readonly,
        user: format!("{}:{}", process.user.uid, process.user.gid),
        working_dir: process.cwd.clone(),
        rootfs: Some(rootfs),
        args: process.args.clone(),
        init: false,
        capabilities: None,
        no_new_privileges: Some(process.no_new_privileges),
        rlimits: process
            .rlimits
            .iter()
            .map(|r| Rlimit {
                kind: r.kind.clone(),
                hard: r.hard,
                soft: r.soft,
            })
            .collect(),
        oom_score_adj: process.oom_score_adj,
        seccomp: seccomp(&linux)?,
        masked_paths: Some(linux.masked_paths.clone().unwrap_or_default()),
        readonly_paths: Some(linux.readonly_paths.clone().unwrap_or_default()),
        uid_mappings: id_maps(&linux.uid_mappings),
        gid_mappings: id_maps(&linux.gid_mappings),
        strict_host_paths: false,
        domainname: spec.domainname.clone(),
        additional_gids: process.user.additional_gids.clone(),
        umask: process.user.umask,
        capability_sets: Some(capability_sets),
        filesystems: Some(
            spec.mounts
                .iter()
                .map(|m| {
                    let bind =
                        m.kind == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind");
                    Filesystem {
                        destination: PathBuf::from(&m.destination),
                        kind: if m.kind.is_empty() && bind {
                            "bind".into()
                        } else {
                            m.kind.clone()
                        },
                        // A bind's relative source is the bundle's (runtime-spec).
                        source: if bind && !m.source.is_empty() && !m.source.starts_with('/') {
                            bundle.join(&m.source).display().to_string()
                        } else {
                            m.source.clone()
                        },
                        options: m.options.clone(),
                        uid_mappings: id_maps(&m.uid_mappings),
                        gid_mappings: id_maps(&m.gid_mappings),
                    }
                })
                .collect(),
        ),
        namespace_paths,
        sysctl: linux.sysctl.clone(),
        rootfs_propagation: linux.rootfs_propagation.clone(),
        personality: linux
            .personality
            .as_ref()
            .map(|p| p.domain.clone())
            .unwrap_or_default(),
        hooks: hooks(spec),
        io_priority: process.io_priority.as_ref().map(|p| IoPriority {
            class: p.class.clone(),
            priority: p.priority,
        }),
        time_offsets: linux
            .time_offsets
            .iter()
            .map(|(clock, o)| {
                let offset = TimeOffset {
                    secs: o.secs,
                    nanos: o.nanosecs,
                };
                (clock.clone(), offset)
            })
            .collect(),
    };
    config
        .validate()
        .map_err(|e| from_model(e, spec, &origins))?;
    let console_size = process.console_size.map(|c| {
        (
            c.height.min(u16::MAX as u32) as u16,
            c.width.min(u16::MAX as u32) as u16,
        )
    });
    Ok(Converted {
        config,
        console_size,
        origins,
    })
}

fn id_maps(maps: &[super::IdMapping]) -> Vec<IdMap> {
    maps.iter()
        .map(|m| IdMap {
            container_id: m.container_id,
            host_id: m.host_id,
            size: m.size,
        })
        .collect()
}

fn hooks(spec: &Spec) -> Hooks {
    let h = spec.hooks.clone().unwrap_or_default();
    let conv = |list: Vec<super::Hook>| {
        list.into_iter()
            .map(|h| Hook {
                path: h.path,
                args: h.args,
                env: h.env,
                timeout: h.timeout,
            })
            .collect()
    };
    Hooks {
        prestart: conv(h.prestart),
        create_runtime: conv(h.create_runtime),
        create_container: conv(h.create_container),
        start_container: conv(h.start_container),
        poststart: conv(h.poststart),
        poststop: conv(h.poststop),
    }
}

/// Device rules allowed after the config's own (type, major, minor, access; -1 is any): mknod
/// of any node; /dev/null, zero, full, random, urandom, tty; the pty devices.
pub const DEFAULT_ALLOWED_DEVICES: [(&str, i64, i64, &str); 10] = [
    ("c", -1, -1, "m"),
    ("b", -1, -1, "m"),
    ("c", 1, 3, "rwm"),
    ("c", 1, 5, "rwm"),
    ("c", 1, 7, "rwm"),
    ("c", 1, 8, "rwm"),
    ("c", 1, 9, "rwm"),
    ("c", 5, 0, "rwm"),
    ("c", 5, 2, "rwm"),
    ("c", 136, -1, "rwm"),
];

/// `linux.cgroupsPath` and `linux.resources` as the `cgroups` section. An empty path is
/// `/execdriver-runc/<id>`; a relative one is taken from the cgroup root as well; the systemd form
/// `slice:prefix:name` is `<slice>/<prefix>-<name>.scope` where systemd runs.
fn cgroups(linux: &Linux, id: &str, systemd: bool) -> Result<(Cgroups, Origins), OciError> {
    let path = linux.cgroups_path.as_str();
    let (parent, name) = if path.is_empty() {
        ("execdriver-runc".to_owned(), id.to_owned())
    } else if !path.starts_with('/') && path.matches(':').count() == 2 {
        if !systemd {
            return Err(OciError::new(
                "linux.cgroupsPath",
                format!(
                    "{path:?} is systemd's slice:prefix:name form, and this host does not run \
                     systemd; give a cgroupfs path (/parent/name)"
                ),
            ));
        }
        let mut parts = path.splitn(3, ':');
        let (slice, prefix, name) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        (slice.to_owned(), format!("{prefix}-{name}.scope"))
    } else {
        let trimmed = path.trim_matches('/');
        match trimmed.rsplit_once('/') {
            Some((p, n)) => (p.to_owned(), n.to_owned()),
            None => (String::new(), trimmed.to_owned()),
        }
    };
    let mut cg = Cgroups {
        parent,
        name,
        devices_exact: true,
        ..Default::default()
    };
    let mut origins = Origins::default();
    let r = linux.resources.clone().unwrap_or_default();
    if let Some(m) = &r.memory {
        cg.memory = m.limit.unwrap_or(0);
        cg.memory_reservation = m.reservation.unwrap_or(0);
        cg.memory_swap = m.swap.unwrap_or(0);
        cg.memory_swappiness = m.swappiness;
    }
    if let Some(c) = &r.cpu {
        cg.cpu_shares = c.shares.unwrap_or(0) as i64;
        cg.cpu_quota = c.quota.unwrap_or(0);
        cg.cpu_period = c.period.unwrap_or(0) as i64;
        cg.cpu_rt_runtime = c.realtime_runtime.unwrap_or(0);
        cg.cpu_rt_period = c.realtime_period.unwrap_or(0) as i64;
        cg.cpuset_cpus = c.cpus.clone();
        cg.cpuset_mems = c.mems.clone();
    }
    if let Some(p) = &r.pids {
        cg.pids_limit = if p.limit > 0 { p.limit } else { 0 };
    }
    if let Some(b) = &r.block_io {
        cg.blkio_weight = b.weight.unwrap_or(0) as i64;
        cg.blkio_weight_devices = b
            .weight_device
            .iter()
            .filter_map(|d| {
                d.weight.map(|w| BlkioDevice {
                    major: d.major,
                    minor: d.minor,
                    value: w as u64,
                })
            })
            .collect();
        let throttle = |list: &[super::ThrottleDevice]| {
            list.iter()
                .map(|d| BlkioDevice {
                    major: d.major,
                    minor: d.minor,
                    value: d.rate,
                })
                .collect::<Vec<_>>()
        };
        cg.blkio_read_bps = throttle(&b.throttle_read_bps_device);
        cg.blkio_write_bps = throttle(&b.throttle_write_bps_device);
        cg.blkio_read_iops = throttle(&b.throttle_read_iops_device);
        cg.blkio_write_iops = throttle(&b.throttle_write_iops_device);
    }
    cg.hugepage_limits = r
        .hugepage_limits
        .iter()
        .map(|h| HugepageLimit {
            page_size: h.page_size.clone(),
            limit: h.limit,
        })
        .collect();
    cg.unified = r.unified.clone();
    // Device rules apply in order after an implicit "deny all"; a leading deny-all says that
    // again and is dropped, an allow-all allows every device.
    for (i, rule) in r.devices.iter().enumerate() {
        let kind = rule.kind.clone().unwrap_or_else(|| "a".into());
        let access = rule.access.clone().unwrap_or_else(|| "rwm".into());
        let every = kind == "a" && rule.major.unwrap_or(-1) == -1 && rule.minor.unwrap_or(-1) == -1;
        if every && !rule.allow && cg.devices.is_empty() && access.len() == 3 {
            continue;
        }
        origins
            .devices
            .push(format!("linux.resources.devices[{i}]"));
        cg.devices.push(Device {
            kind,
            path: String::new(),
            major_number: rule.major.unwrap_or(-1),
            minor_number: rule.minor.unwrap_or(-1),
            cgroup_permissions: access,
            file_mode: 0,
            deny: !rule.allow,
            uid: None,
            gid: None,
        });
    }
    // What every OCI runtime allows after the config's rules (runc does the same): mknod of
    // any node, and the standard devices and terminals a process needs.
    for (kind, major, minor, access) in DEFAULT_ALLOWED_DEVICES {
        origins.devices.push("linux.resources.devices".into());
        cg.devices.push(Device {
            kind: kind.into(),
            major_number: major,
            minor_number: minor,
            cgroup_permissions: access.into(),
            ..Default::default()
        });
    }
    // Device nodes are made, and allowed.
    for (i, d) in linux.devices.iter().enumerate() {
        origins.devices.push(format!("linux.devices[{i}]"));
        cg.devices.push(Device {
            kind: d.kind.clone(),
            path: d.path.clone(),
            major_number: d.major,
            minor_number: d.minor,
            cgroup_permissions: "rwm".into(),
            file_mode: d.file_mode.unwrap_or(0o666) & 0o7777,
            deny: false,
            uid: d.uid,
            gid: d.gid,
        });
    }
    Ok((cg, origins))
}

/// `linux.seccomp` as the model's setting: absent is no filter (OCI: nothing is added).
fn seccomp(linux: &Linux) -> Result<Seccomp, OciError> {
    let Some(s) = &linux.seccomp else {
        return Ok(Seccomp::Unconfined);
    };
    if !s.listener_path.is_empty() {
        return Err(OciError::new(
            "linux.seccomp.listenerPath",
            "seccomp notify listeners are not supported by this runtime",
        ));
    }
    Ok(Seccomp::Profile(Profile {
        default_action: s.default_action.clone(),
        default_errno_ret: s.default_errno_ret,
        architectures: s.architectures.clone(),
        flags: s.flags.clone(),
        syscalls: s
            .syscalls
            .iter()
            .map(|r| Syscall {
                names: r.names.clone(),
                action: r.action.clone(),
                errno_ret: r.errno_ret,
                args: r
                    .args
                    .iter()
                    .map(|a| Arg {
                        index: a.index,
                        value: a.value,
                        value_two: a.value_two,
                        op: a.op.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }))
}
