//! A request's `resources`: where the container's cgroups go, the limits (also against the
//! host's cpus and memory nodes), device rules, and live updates.

use execdriver_proto::CreateRequest;
use execdriver_shim::cgroups::{self as shim_cgroups, Layout};
use execdriver_spec::config::{self, Cgroups};
use execdriver_spec::protocol;

use super::checks::{absolute, check_list, check_string, validate_id};
use super::daemon::Defaults;
use super::names::request_field;
use crate::error::{Error, Result};

/// The container's `cgroups` section: where its cgroups go and the limits of
/// `req.resources`, every value checked (also against the host's cpus and memory nodes).
pub(super) fn cgroups(req: &CreateRequest, defaults: &Defaults) -> Result<Cgroups> {
    let r = req.resources.clone().unwrap_or_default();
    let parent = if r.cgroup_parent.is_empty() {
        defaults.cgroup_parent.clone()
    } else {
        check_string("resources.cgroup_parent", &r.cgroup_parent)?;
        if r.cgroup_parent.starts_with('/') {
            return Err(Error::invalid(
                "resources.cgroup_parent",
                format!(
                    "{:?} must be relative to the hierarchy roots",
                    r.cgroup_parent
                ),
            ));
        }
        r.cgroup_parent.clone()
    };
    check_list("resources.devices", r.devices.len(), 256)?;
    let devices = r
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| device(i, d))
        .collect::<Result<Vec<_>>>()?;
    check_string("resources.freezer", &r.freezer)?;
    let cg = Cgroups {
        parent,
        name: req.id.clone(),
        device_access: r.allow_all_devices,
        devices,
        freezer: r.freezer.clone(),
        ..limits(&r)?
    };
    cg.validate_resources().map_err(request_field)?;
    Ok(cg)
}

/// The limit fields of `r` (0 where unset), with the cpusets checked against the host.
fn limits(r: &execdriver_proto::Resources) -> Result<Cgroups> {
    check_string("resources.cpuset_cpus", &r.cpuset_cpus)?;
    check_string("resources.cpuset_mems", &r.cpuset_mems)?;
    let cg = Cgroups {
        memory: r.memory,
        memory_reservation: r.memory_reservation,
        memory_swap: r.memory_swap,
        cpu_shares: r.cpu_shares,
        cpu_quota: r.cpu_quota,
        cpu_period: r.cpu_period,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        blkio_weight: r.blkio_weight,
        pids_limit: r.pids_limit,
        ..Default::default()
    };
    if !cg.cpuset_cpus.is_empty() || !cg.cpuset_mems.is_empty() {
        let layout = Layout::detect().unwrap_or_default();
        for (field, value, host, what) in [
            (
                "resources.cpuset_cpus",
                &cg.cpuset_cpus,
                shim_cgroups::host_cpus(&layout),
                "CPU",
            ),
            (
                "resources.cpuset_mems",
                &cg.cpuset_mems,
                shim_cgroups::host_mems(&layout),
                "memory node",
            ),
        ] {
            let wanted = config::parse_cpu_list(value).map_err(|why| Error::invalid(field, why))?;
            if let Some(host) = host {
                if let Some(missing) = wanted.iter().find(|c| !host.contains(c)) {
                    return Err(Error::invalid(
                        field,
                        format!("this host has no {what} {missing} (it has {host:?})"),
                    ));
                }
            }
        }
    }
    Ok(cg)
}

/// A device rule of the request as container.json has it; a host path gives its type and
/// numbers.
fn device(i: usize, d: &execdriver_proto::DeviceRule) -> Result<config::Device> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let field = |f: &str| format!("resources.devices[{i}].{f}");
    check_string(&field("path"), &d.path)?;
    check_string(&field("container_path"), &d.container_path)?;
    let permissions = if d.permissions.is_empty() {
        "rwm".to_owned()
    } else {
        d.permissions.clone()
    };
    let container_path = if d.container_path.is_empty() {
        d.path.clone()
    } else {
        d.container_path.clone()
    };
    if !d.r#type.is_empty() {
        return Ok(config::Device {
            kind: d.r#type.clone(),
            path: container_path,
            major_number: d.major,
            minor_number: d.minor,
            cgroup_permissions: permissions,
            file_mode: 0,
            ..Default::default()
        });
    }
    if d.path.is_empty() {
        return Err(Error::invalid(
            field("type"),
            "missing: give a type (c, b, a) or a host device path",
        ));
    }
    let host = absolute(&field("path"), &d.path)?;
    let md = std::fs::metadata(&host)
        .map_err(|e| Error::invalid(field("path"), format!("{}: {e}", host.display())))?;
    let kind = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return Err(Error::invalid(
            field("path"),
            format!("{} is not a device node", host.display()),
        ));
    };
    let rdev = md.rdev();
    Ok(config::Device {
        kind: kind.into(),
        path: container_path,
        major_number: nix::sys::stat::major(rdev) as i64,
        minor_number: nix::sys::stat::minor(rdev) as i64,
        cgroup_permissions: permissions,
        file_mode: md.mode() & 0o777,
        ..Default::default()
    })
}

/// An Update request's limits, checked; what it does not set stays as it is.
pub fn update_request(req: &execdriver_proto::UpdateRequest) -> Result<protocol::Resources> {
    update_limits(req).map(|cg| protocol::Resources::of(&cg))
}

/// The limits an UpdateRequest asks for, checked (as [`update_request`]).
pub fn update_limits(req: &execdriver_proto::UpdateRequest) -> Result<Cgroups> {
    validate_id(&req.id)?;
    let Some(r) = &req.resources else {
        return Err(Error::invalid("resources", "missing"));
    };
    if !r.devices.is_empty() {
        return Err(Error::invalid(
            "resources.devices",
            "device rules are set at Create only",
        ));
    }
    if r.allow_all_devices {
        return Err(Error::invalid(
            "resources.allow_all_devices",
            "device access is set at Create only",
        ));
    }
    if !r.cgroup_parent.is_empty() {
        return Err(Error::invalid(
            "resources.cgroup_parent",
            "a container cannot move to another cgroup",
        ));
    }
    if !r.freezer.is_empty() {
        return Err(Error::invalid(
            "resources.freezer",
            "the freezer state is set at Create only; use Pause and Resume",
        ));
    }
    let cg = limits(r)?;
    // memory_swap is checked against the memory limit in force by the shim.
    let alone = Cgroups {
        name: req.id.clone(),
        memory_swap: 0,
        ..cg.clone()
    };
    alone.validate_resources().map_err(request_field)?;
    if cg.memory_swap < -1 {
        return Err(Error::invalid(
            "resources.memory_swap",
            format!(
                "{} is out of range: -1 (unlimited) or a size",
                cg.memory_swap
            ),
        ));
    }
    Ok(cg)
}
