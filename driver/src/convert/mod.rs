//! Request -> container.json: every request field is checked on the way, raised as
//! INVALID_ARGUMENT naming the request field (`process.args`, `mounts[1].source`) before
//! anything is created.
//!
//! One vocabulary: a check in this module names the request field it checks; a rule of the
//! model itself (`Config::validate` in the spec crate) names a typed `Field`, which
//! [`names::request_field`] names as the request does, with an exhaustive `match`.
//!
//! `create_request` reads like the request: [`process`], [`network`], mounts, [`resources`],
//! [`security`]; [`checks`] holds the shared checks and [`daemon`] the daemon's options and
//! records.

mod checks;
mod daemon;
mod names;
mod network;
mod process;
mod resources;
mod rootless;
mod security;

use std::path::Path;

use execdriver_proto::{CreateRequest, Mount as ProtoMount};
use execdriver_spec::capabilities;
use execdriver_spec::config::{Config, Mount, DEFAULT_NAMESPACES};
use execdriver_spec::namespaces::Namespace;

use crate::error::{Error, Result};
use checks::{
    absolute, check_list, check_string, MAX_LABELS, MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_MOUNTS,
};
pub use checks::{validate_id, MAX_ID};
pub use daemon::{
    default_cgroup_parent, root_hash, BridgeNetwork, Defaults, Meta, NetworkMeta, DEFAULT_ROOT,
    MODE_BRIDGE, MODE_CONTAINER, MODE_HOST, MODE_NETNS, MODE_NONE, MODE_SLIRP4NETNS, VETH_PREFIX,
};
pub use names::request_field;
pub use network::{bridge_network, netns_network};
pub use process::{
    exec_request, generate_exec_id, process, timeout_seconds, validate_exec_id, ProcessParts,
};
pub use resources::{update_limits, update_request};
pub use rootless::{Delegated, Rootless};

/// Turns a Create request into the container's config and the driver's record of it.
pub fn create_request(
    req: &CreateRequest,
    defaults: &Defaults,
    now_ns: i64,
) -> Result<(Config, Meta)> {
    validate_id(&req.id)?;

    let rootfs = absolute("rootfs", &req.rootfs)?;
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| Error::invalid("rootfs", format!("{}: {e}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(Error::invalid(
            "rootfs",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    if rootfs == Path::new("/") {
        return Err(Error::invalid(
            "rootfs",
            "the host's / cannot be a container's rootfs",
        ));
    }

    let process = process("process", req.process.as_ref())?;
    let console_size = process.console_size;

    check_list("namespaces", req.namespaces.len(), 16)?;
    let mut namespaces = if req.namespaces.is_empty() {
        DEFAULT_NAMESPACES.to_vec()
    } else {
        let mut out = Vec::new();
        for (i, name) in req.namespaces.iter().enumerate() {
            let ns = Namespace::from_name(name).ok_or_else(|| {
                Error::invalid(
                    format!("namespaces[{i}]"),
                    format!("unknown namespace {name:?}"),
                )
            })?;
            if !execdriver_shim::namespaces::available(ns) {
                return Err(Error::invalid(
                    format!("namespaces[{i}]"),
                    format!("{name} is not offered by this kernel"),
                ));
            }
            out.push(ns);
        }
        out
    };

    let (networks, network_meta) = network::network(
        req.network.as_ref(),
        !req.namespaces.is_empty(),
        &mut namespaces,
        defaults,
    )?;

    check_string("hostname", &req.hostname)?;
    let hostname = if !req.hostname.is_empty() {
        req.hostname.clone()
    } else if namespaces.contains(&Namespace::Uts) {
        req.id.chars().take(63).collect()
    } else {
        String::new()
    };

    check_list("mounts", req.mounts.len(), MAX_MOUNTS)?;
    let mounts = req
        .mounts
        .iter()
        .enumerate()
        .map(|(i, m)| mount(i, m))
        .collect::<Result<Vec<_>>>()?;

    check_list("capabilities_mask", req.capabilities_mask.len(), 64)?;
    for (i, c) in req.capabilities_mask.iter().enumerate() {
        check_string(&format!("capabilities_mask[{i}]"), c)?;
        if !capabilities::is_valid(c) {
            return Err(Error::invalid(
                format!("capabilities_mask[{i}]"),
                format!("unknown capability {c:?}"),
            ));
        }
    }

    let (log_max_size, log_max_files) = match &req.log {
        None => (0, 1),
        Some(l) => {
            if l.max_files > 100 {
                return Err(Error::invalid(
                    "log.max_files",
                    format!("{}; at most 100", l.max_files),
                ));
            }
            if l.max_size > 0 && l.max_size < 4096 {
                return Err(Error::invalid(
                    "log.max_size",
                    "at least 4096 bytes (or 0: never rotate)",
                ));
            }
            if l.max_size == 0 && l.max_files > 1 {
                return Err(Error::invalid("log.max_files", "needs log.max_size"));
            }
            (l.max_size, l.max_files.max(1))
        }
    };

    check_list("labels", req.labels.len(), MAX_LABELS)?;
    for (k, v) in &req.labels {
        let field = format!("labels[{k:?}]");
        if k.is_empty() || k.len() > MAX_LABEL_KEY || k.contains('\0') {
            return Err(Error::invalid(
                field,
                format!("keys are 1 to {MAX_LABEL_KEY} bytes without NUL"),
            ));
        }
        if v.len() > MAX_LABEL_VALUE || v.contains('\0') {
            return Err(Error::invalid(
                field,
                format!("values are at most {MAX_LABEL_VALUE} bytes without NUL"),
            ));
        }
    }

    let cgroups = resources::cgroups(req, defaults)?;
    let sec = security::security(req, defaults)?;

    let config = Config {
        hostname,
        networks,
        cgroups: Some(cgroups),
        tty: process.tty,
        environment: process.env.clone(),
        capabilities_mask: req.capabilities_mask.clone(),
        context: sec.context,
        mounts,
        namespaces,
        readonly_fs: req.readonly_rootfs,
        user: process.user.clone(),
        working_dir: process.cwd.clone(),
        rootfs: Some(rootfs.clone()),
        args: process.args.clone(),
        init: req.init,
        capabilities: sec.capabilities,
        no_new_privileges: sec.no_new_privileges,
        rlimits: sec.rlimits,
        oom_score_adj: sec.oom_score_adj,
        seccomp: sec.seccomp,
        masked_paths: sec.masked_paths,
        readonly_paths: sec.readonly_paths,
        uid_mappings: sec.uid_mappings,
        gid_mappings: sec.gid_mappings,
        ..Default::default()
    };
    let mut config = config;
    if let Some(cg) = config.cgroups.as_mut() {
        cg.share_parent = defaults
            .when_limited
            .iter()
            .filter(|c| !cg.limits_controller(c))
            .cloned()
            .collect();
    }
    if let Some(r) = &defaults.rootless {
        r.apply(&mut config)?;
    }
    config.validate().map_err(names::request_field)?;
    let meta = Meta {
        id: req.id.clone(),
        rootfs,
        labels: req.labels.clone().into_iter().collect(),
        created_at: now_ns,
        open_stdin: process.open_stdin,
        tty: process.tty,
        console_size,
        log_max_size,
        log_max_files,
        network: network_meta,
        owner: None,
    };
    Ok((config, meta))
}

fn mount(i: usize, m: &ProtoMount) -> Result<Mount> {
    let source = absolute(&format!("mounts[{i}].source"), &m.source)?;
    let destination = absolute(&format!("mounts[{i}].destination"), &m.destination)?;
    if !source.exists() {
        return Err(Error::invalid(
            format!("mounts[{i}].source"),
            format!("{} does not exist", source.display()),
        ));
    }
    Ok(Mount {
        source,
        destination,
        writable: m.writable,
        private: m.private,
    })
}

#[cfg(test)]
mod tests;
