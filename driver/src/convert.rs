//! Request -> container.json: every request field is checked here, and only here.
//!
//! Errors are INVALID_ARGUMENT naming the request field (`process.args`, `mounts[1].source`),
//! raised before anything is created.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use execdriver_proto::{self as pb, CreateRequest, Mount as ProtoMount};
use execdriver_shim::capabilities;
use execdriver_shim::cgroups::{self as shim_cgroups, DeviceMode, Layout};
use execdriver_shim::config::{self, Cgroups, Config, Mount, User, DEFAULT_NAMESPACES};
use execdriver_shim::namespaces::Namespace;
use execdriver_shim::protocol;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest id accepted (Docker's ids are 64 hex digits).
pub const MAX_ID: usize = 64;
const MAX_LIST: usize = 4096;
const MAX_MOUNTS: usize = 256;
const MAX_LABELS: usize = 256;
const MAX_LABEL_KEY: usize = 256;
const MAX_LABEL_VALUE: usize = 4096;
const MAX_STRING: usize = 64 * 1024;

/// What the driver records beside container.json (`meta.json`): what the seed's format does
/// not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub rootfs: PathBuf,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Unix nanoseconds.
    pub created_at: i64,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub tty: bool,
    /// The terminal's initial size (rows, cols).
    #[serde(default)]
    pub console_size: (u16, u16),
    /// Log rotation: bytes per file (0: never) and files kept.
    #[serde(default)]
    pub log_max_size: u64,
    #[serde(default)]
    pub log_max_files: u32,
}

/// Options of the daemon that shape every container.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Cgroup parent for containers, e.g. "execdriver".
    pub cgroup_parent: String,
    /// How the shims enforce device access (`--cgroup-devices`).
    pub cgroup_devices: DeviceMode,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            cgroup_parent: "execdriver".into(),
            cgroup_devices: DeviceMode::Auto,
        }
    }
}

/// Checks a container id: 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid("id", "missing"));
    }
    if id.len() > MAX_ID {
        return Err(Error::invalid(
            "id",
            format!("{} characters; at most {MAX_ID}", id.chars().count()),
        ));
    }
    let first_ok = id.as_bytes()[0].is_ascii_alphanumeric();
    if !first_ok
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(Error::invalid(
            "id",
            format!(
                "{id:?} must be letters, digits, '_', '.', '-', starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

fn check_string(field: &str, s: &str) -> Result<()> {
    if s.len() > MAX_STRING {
        return Err(Error::invalid(
            field,
            format!("longer than {MAX_STRING} bytes"),
        ));
    }
    if s.contains('\0') {
        return Err(Error::invalid(field, "contains a NUL byte"));
    }
    Ok(())
}

fn check_list(field: &str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::invalid(
            field,
            format!("{len} entries; at most {max}"),
        ));
    }
    Ok(())
}

fn absolute(field: &str, s: &str) -> Result<PathBuf> {
    check_string(field, s)?;
    if s.is_empty() {
        return Err(Error::invalid(field, "missing"));
    }
    let p = PathBuf::from(s);
    if !p.is_absolute() {
        return Err(Error::invalid(
            field,
            format!("{s:?} is not an absolute path"),
        ));
    }
    Ok(p)
}

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
    let namespaces = if req.namespaces.is_empty() {
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
            if !ns.available() {
                return Err(Error::invalid(
                    format!("namespaces[{i}]"),
                    format!("{name} is not offered by this kernel"),
                ));
            }
            out.push(ns);
        }
        out
    };

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
        if capabilities::parse(c).is_none() {
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

    let cgroups = cgroups(req, defaults)?;

    let config = Config {
        hostname,
        networks: Vec::new(),
        cgroups: Some(cgroups),
        tty: process.tty,
        environment: process.env.clone(),
        capabilities_mask: req.capabilities_mask.clone(),
        context: BTreeMap::new(),
        mounts,
        namespaces,
        readonly_fs: req.readonly_rootfs,
        user: process.user.clone(),
        working_dir: process.cwd.clone(),
        rootfs: Some(rootfs.clone()),
        args: process.args.clone(),
        init: req.init,
    };
    config.validate().map_err(request_field)?;
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
    };
    Ok((config, meta))
}

/// A request's `Process`, checked.
#[derive(Debug, Clone)]
pub struct ProcessParts {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    /// (rows, cols); 24x80 unless given.
    pub console_size: (u16, u16),
}

/// Checks a `Process` message; `field` is its path in the request (`process`).
pub fn process(field: &str, p: Option<&pb::Process>) -> Result<ProcessParts> {
    let Some(p) = p else {
        return Err(Error::invalid(field, "missing"));
    };
    check_list(&format!("{field}.args"), p.args.len(), MAX_LIST)?;
    if p.args.is_empty() {
        return Err(Error::invalid(
            format!("{field}.args"),
            "empty: a command is required",
        ));
    }
    for (i, a) in p.args.iter().enumerate() {
        check_string(&format!("{field}.args[{i}]"), a)?;
    }
    if p.args[0].is_empty() {
        return Err(Error::invalid(format!("{field}.args[0]"), "empty command"));
    }
    check_list(&format!("{field}.env"), p.env.len(), MAX_LIST)?;
    for (i, e) in p.env.iter().enumerate() {
        let f = format!("{field}.env[{i}]");
        check_string(&f, e)?;
        if e.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
            return Err(Error::invalid(f, "must be KEY=VALUE"));
        }
    }
    if !p.cwd.is_empty() {
        let cwd = absolute(&format!("{field}.cwd"), &p.cwd)?;
        if cwd
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(Error::invalid(format!("{field}.cwd"), "contains '..'"));
        }
    }
    check_string(&format!("{field}.user"), &p.user)?;
    User::parse(&p.user).map_err(|r| Error::invalid(format!("{field}.user"), r))?;
    let console_size = match (&p.console_size, p.tty) {
        (Some(_), false) => {
            return Err(Error::invalid(format!("{field}.console_size"), "needs tty"))
        }
        (Some(c), true) => {
            if c.rows == 0 || c.cols == 0 || c.rows > u16::MAX as u32 || c.cols > u16::MAX as u32 {
                return Err(Error::invalid(
                    format!("{field}.console_size"),
                    "rows and cols must be 1 to 65535",
                ));
            }
            (c.rows as u16, c.cols as u16)
        }
        (None, _) => (24, 80),
    };
    Ok(ProcessParts {
        args: p.args.clone(),
        env: p.env.clone(),
        cwd: p.cwd.clone(),
        user: p.user.clone(),
        tty: p.tty,
        open_stdin: p.open_stdin,
        console_size,
    })
}

/// A random id for an exec'd process the request did not name.
pub fn generate_exec_id() -> String {
    let mut bytes = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("exec-{hex}")
}

/// Checks an Exec request; returns the shim's spec for it (with its exec id).
pub fn exec_request(req: &pb::ExecRequest) -> Result<execdriver_shim::protocol::ExecSpec> {
    validate_id(&req.id)?;
    let exec_id = if req.exec_id.is_empty() {
        generate_exec_id()
    } else {
        req.exec_id.clone()
    };
    validate_id(&exec_id).map_err(|e| match e {
        Error::InvalidArgument { reason, .. } => Error::invalid("exec_id", reason),
        e => e,
    })?;
    let p = process("process", req.process.as_ref())?;
    Ok(execdriver_shim::protocol::ExecSpec {
        exec_id,
        args: p.args,
        env: p.env,
        cwd: p.cwd,
        user: p.user,
        tty: p.tty,
        stdin: p.open_stdin,
        rows: if p.tty { p.console_size.0 as u32 } else { 0 },
        cols: if p.tty { p.console_size.1 as u32 } else { 0 },
    })
}

/// Checks an exec id given with a container id (empty: the init).
pub fn validate_exec_id(exec_id: &str) -> Result<()> {
    if exec_id.is_empty() {
        return Ok(());
    }
    validate_id(exec_id).map_err(|e| match e {
        Error::InvalidArgument { reason, .. } => Error::invalid("exec_id", reason),
        e => e,
    })
}

/// A timeout in seconds from a request: 0 means `default`; above `max` is refused.
pub fn timeout_seconds(
    field: &str,
    value: u32,
    default: u32,
    max: u32,
) -> Result<std::time::Duration> {
    if value > max {
        return Err(Error::invalid(
            field,
            format!("{value} seconds; at most {max}"),
        ));
    }
    let secs = if value == 0 { default } else { value };
    Ok(std::time::Duration::from_secs(secs as u64))
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

/// The container's `cgroups` section: where its cgroups go and the limits of
/// `req.resources`, every value checked (also against the host's cpus and memory nodes).
fn cgroups(req: &CreateRequest, defaults: &Defaults) -> Result<Cgroups> {
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
    let cg = Cgroups {
        parent,
        name: req.id.clone(),
        device_access: r.allow_all_devices,
        devices,
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
    })
}

/// An Update request's limits, checked; what it does not set stays as it is.
pub fn update_request(req: &execdriver_proto::UpdateRequest) -> Result<protocol::Resources> {
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
    Ok(protocol::Resources::of(&cg))
}

/// Names a container.json field as the request does.
fn request_field(e: config::ConfigError) -> Error {
    let renames = [
        ("environment", "process.env"),
        ("args", "process.args"),
        ("working_dir", "process.cwd"),
        ("user", "process.user"),
        ("readonly_fs", "readonly_rootfs"),
        ("cgroups.parent", "resources.cgroup_parent"),
        ("cgroups.name", "id"),
        ("cgroups.device_access", "resources.allow_all_devices"),
        ("cgroups.", "resources."),
    ];
    let mut field = e.field;
    for (from, to) in renames {
        if let Some(rest) = field.strip_prefix(from) {
            field = format!("{to}{rest}");
            break;
        }
    }
    if field.starts_with("resources.devices[") {
        for (from, to) in [
            (".major_number", ".major"),
            (".minor_number", ".minor"),
            (".cgroup_permissions", ".permissions"),
            (".path", ".container_path"),
        ] {
            if let Some(head) = field.strip_suffix(from) {
                field = format!("{head}{to}");
                break;
            }
        }
    }
    Error::InvalidArgument {
        field,
        reason: e.reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use execdriver_proto::Process;

    fn req() -> CreateRequest {
        CreateRequest {
            id: "c1".into(),
            rootfs: "/tmp".into(),
            process: Some(Process {
                args: vec!["/bin/true".into()],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn field_of(r: CreateRequest) -> String {
        match create_request(&r, &Defaults::default(), 0) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn good_request_converts() {
        let (c, m) = create_request(&req(), &Defaults::default(), 5).unwrap();
        assert_eq!(c.namespaces, DEFAULT_NAMESPACES.to_vec());
        assert_eq!(c.hostname, "c1");
        assert_eq!(c.cgroups.unwrap().name, "c1");
        assert_eq!(m.created_at, 5);
    }

    #[test]
    fn bad_ids() {
        for id in ["", "../x", "a/b", ".hidden", &"x".repeat(200), "a b", "ü"] {
            let mut r = req();
            r.id = id.into();
            assert_eq!(field_of(r), "id", "{id:?}");
        }
        for id in ["a", "A-1_2.3", &"x".repeat(64)] {
            validate_id(id).unwrap();
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let mut r = req();
        r.rootfs = "relative".into();
        assert_eq!(field_of(r), "rootfs");
        let mut r = req();
        r.rootfs = "/nonexistent-execdriver-rootfs".into();
        assert_eq!(field_of(r), "rootfs");
        let mut r = req();
        r.process = None;
        assert_eq!(field_of(r), "process");
        let mut r = req();
        r.process.as_mut().unwrap().args.clear();
        assert_eq!(field_of(r), "process.args");
        let mut r = req();
        r.process.as_mut().unwrap().env = vec!["NOEQ".into()];
        assert_eq!(field_of(r), "process.env[0]");
        let mut r = req();
        r.process.as_mut().unwrap().env = vec!["A=1".into(); 10_000];
        assert_eq!(field_of(r), "process.env");
        let mut r = req();
        r.process.as_mut().unwrap().cwd = "rel".into();
        assert_eq!(field_of(r), "process.cwd");
        let mut r = req();
        r.namespaces = vec!["NEWNS".into(), "NEWFOO".into()];
        assert_eq!(field_of(r), "namespaces[1]");
        let mut r = req();
        r.namespaces = vec!["NEWPID".into()];
        assert_eq!(field_of(r), "namespaces");
        let mut r = req();
        r.capabilities_mask = vec!["NET_ADMIN".into(), "BOGUS".into()];
        assert_eq!(field_of(r), "capabilities_mask[1]");
        let mut r = req();
        r.mounts = vec![ProtoMount {
            source: "/nonexistent-src".into(),
            destination: "/x".into(),
            ..Default::default()
        }];
        assert_eq!(field_of(r), "mounts[0].source");
        let mut r = req();
        r.mounts = vec![ProtoMount {
            source: "/tmp".into(),
            destination: "x".into(),
            ..Default::default()
        }];
        assert_eq!(field_of(r), "mounts[0].destination");
        let mut r = req();
        r.labels.insert(String::new(), "v".into());
        assert_eq!(field_of(r), "labels[\"\"]");
        let mut r = req();
        r.process.as_mut().unwrap().args = vec!["a\0b".into()];
        assert_eq!(field_of(r), "process.args[0]");
    }

    fn with_resources(f: impl Fn(&mut execdriver_proto::Resources)) -> CreateRequest {
        let mut r = req();
        let mut res = execdriver_proto::Resources::default();
        f(&mut res);
        r.resources = Some(res);
        r
    }

    #[test]
    fn resources_convert_to_cgroups() {
        let r = with_resources(|r| {
            r.memory = 32 << 20;
            r.memory_swap = -1;
            r.cpu_shares = 512;
            r.cpu_quota = 20_000;
            r.cpu_period = 100_000;
            r.cpuset_cpus = "0".into();
            r.pids_limit = 20;
            r.devices = vec![execdriver_proto::DeviceRule {
                r#type: "c".into(),
                major: 10,
                minor: 229,
                ..Default::default()
            }];
        });
        let (c, _) = create_request(&r, &Defaults::default(), 0).unwrap();
        let cg = c.cgroups.unwrap();
        assert_eq!(cg.parent, "execdriver");
        assert_eq!(cg.name, "c1");
        assert_eq!(
            (cg.memory, cg.memory_swap, cg.cpu_shares),
            (32 << 20, -1, 512)
        );
        assert_eq!(
            (cg.cpu_quota, cg.cpu_period, cg.pids_limit),
            (20_000, 100_000, 20)
        );
        assert_eq!(cg.devices[0].cgroup_permissions, "rwm");
        assert_eq!(cg.devices[0].minor_number, 229);
        // A host node gives its type and numbers.
        let r = with_resources(|r| {
            r.devices = vec![execdriver_proto::DeviceRule {
                path: "/dev/null".into(),
                permissions: "rw".into(),
                ..Default::default()
            }];
            r.cgroup_parent = "engine/pods".into();
        });
        let (c, _) = create_request(&r, &Defaults::default(), 0).unwrap();
        let cg = c.cgroups.unwrap();
        assert_eq!(cg.parent, "engine/pods");
        let d = &cg.devices[0];
        assert_eq!(
            (d.kind.as_str(), d.major_number, d.minor_number),
            ("c", 1, 3)
        );
        assert_eq!(d.path, "/dev/null");
    }

    #[test]
    fn bad_resources_name_the_field() {
        type Mutation = Box<dyn Fn(&mut execdriver_proto::Resources)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|r| r.memory = 100), "resources.memory"),
            (Box::new(|r| r.memory = -7), "resources.memory"),
            (
                Box::new(|r| r.memory_swap = 1 << 30),
                "resources.memory_swap",
            ),
            (Box::new(|r| r.cpu_shares = 1), "resources.cpu_shares"),
            (Box::new(|r| r.cpu_quota = 5), "resources.cpu_quota"),
            (Box::new(|r| r.cpu_period = 10), "resources.cpu_period"),
            (Box::new(|r| r.pids_limit = -9), "resources.pids_limit"),
            (Box::new(|r| r.blkio_weight = 1), "resources.blkio_weight"),
            (
                Box::new(|r| r.cpuset_cpus = "0-x".into()),
                "resources.cpuset_cpus",
            ),
            (
                Box::new(|r| r.cpuset_cpus = "4000".into()),
                "resources.cpuset_cpus",
            ),
            (
                Box::new(|r| r.cpuset_mems = "77".into()),
                "resources.cpuset_mems",
            ),
            (
                Box::new(|r| r.cgroup_parent = "../escape".into()),
                "resources.cgroup_parent",
            ),
            (
                Box::new(|r| r.cgroup_parent = "a/../../b".into()),
                "resources.cgroup_parent",
            ),
            (
                Box::new(|r| r.cgroup_parent = "/abs".into()),
                "resources.cgroup_parent",
            ),
            (
                Box::new(|r| {
                    r.devices = vec![execdriver_proto::DeviceRule {
                        path: "/etc/passwd".into(),
                        ..Default::default()
                    }]
                }),
                "resources.devices[0].path",
            ),
            (
                Box::new(|r| {
                    r.devices = vec![execdriver_proto::DeviceRule {
                        r#type: "c".into(),
                        major: 1,
                        minor: 3,
                        permissions: "rwx".into(),
                        ..Default::default()
                    }]
                }),
                "resources.devices[0].permissions",
            ),
            (
                Box::new(|r| {
                    r.devices = vec![execdriver_proto::DeviceRule {
                        r#type: "c".into(),
                        major: 99999,
                        minor: 3,
                        ..Default::default()
                    }]
                }),
                "resources.devices[0].major",
            ),
            (
                Box::new(|r| {
                    r.devices = vec![execdriver_proto::DeviceRule {
                        r#type: "c".into(),
                        major: 1,
                        minor: 3,
                        container_path: "/etc/x".into(),
                        ..Default::default()
                    }]
                }),
                "resources.devices[0].container_path",
            ),
        ];
        for (mutate, field) in cases {
            assert_eq!(field_of(with_resources(mutate)), field);
        }
    }

    #[test]
    fn update_requests() {
        let up = |f: &dyn Fn(&mut execdriver_proto::Resources)| {
            let mut res = execdriver_proto::Resources::default();
            f(&mut res);
            update_request(&execdriver_proto::UpdateRequest {
                id: "c1".into(),
                resources: Some(res),
            })
        };
        let r = up(&|r| {
            r.memory = 128 << 20;
            r.memory_swap = 256 << 20;
            r.pids_limit = -1;
        })
        .unwrap();
        assert_eq!(
            (r.memory, r.memory_swap, r.pids_limit),
            (128 << 20, 256 << 20, -1)
        );
        // memory_swap alone is fine here (checked against the limit in force by the shim).
        up(&|r| r.memory_swap = 1 << 30).unwrap();
        let field = |e: Error| match e {
            Error::InvalidArgument { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(up(&|r| r.memory = 5).unwrap_err()),
            "resources.memory"
        );
        assert_eq!(
            field(up(&|r| r.cgroup_parent = "x".into()).unwrap_err()),
            "resources.cgroup_parent"
        );
        assert_eq!(
            field(up(&|r| r.allow_all_devices = true).unwrap_err()),
            "resources.allow_all_devices"
        );
        assert_eq!(
            field(
                update_request(&execdriver_proto::UpdateRequest {
                    id: "c1".into(),
                    resources: None
                })
                .unwrap_err()
            ),
            "resources"
        );
    }
}
