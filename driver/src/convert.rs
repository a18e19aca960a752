//! Request -> container.json: every request field is checked here, and only here.
//!
//! Errors are INVALID_ARGUMENT naming the request field (`process.args`, `mounts[1].source`),
//! raised before anything is created.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use execdriver_proto::{
    self as pb, CreateRequest, Mount as ProtoMount, NetworkConfig, NetworkMode,
};
use execdriver_shim::capabilities;
use execdriver_shim::cgroups::{self as shim_cgroups, DeviceMode, Layout};
use execdriver_shim::config::{
    self, Cgroups, Config, Mount, Network, User, DEFAULT_NAMESPACES, MAX_MTU, MIN_MTU,
};
use execdriver_shim::namespaces::Namespace;
use execdriver_shim::network::{self as shim_net, Cidr};
use execdriver_shim::protocol;
use execdriver_shim::seccomp::{self, Seccomp};
use execdriver_shim::security::{self as shim_security, IdMap, Rlimit};
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
    /// The container's network as created.
    #[serde(default)]
    pub network: NetworkMeta,
}

/// What the driver records of a container's network (in `meta.json`). [`create_request`] fills
/// in what the request says; `Driver::create` completes it (the allocated address, the shared
/// container's details).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkMeta {
    /// "none", "bridge", "host", "container" or "netns".
    #[serde(default)]
    pub mode: String,
    /// BRIDGE: before allocation the requested address (dotted, or empty for any); after it,
    /// the address with the subnet's prefix ("10.88.0.7/16").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bridge: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    #[serde(default)]
    pub mtu: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns_path: String,
}

pub const MODE_NONE: &str = "none";
pub const MODE_BRIDGE: &str = "bridge";
pub const MODE_HOST: &str = "host";
pub const MODE_CONTAINER: &str = "container";
pub const MODE_NETNS: &str = "netns";

/// The prefix of the host ends of bridge-mode veths.
pub const VETH_PREFIX: &str = "veth";

/// The daemon's bridge network (`--bridge`, `--subnet`, `--gateway`, `--mtu`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNetwork {
    pub bridge: String,
    /// The subnet addresses are handed out from, as its network address and prefix.
    pub subnet: Cidr,
    /// The bridge's own address and every container's default gateway.
    pub gateway: Ipv4Addr,
    /// The containers' MTU; 0: the bridge's.
    pub mtu: u32,
}

impl BridgeNetwork {
    /// Checks the daemon's flags; errors name the flag.
    pub fn new(bridge: &str, subnet: &str, gateway: Option<&str>, mtu: u32) -> Result<Self> {
        shim_net::check_ifname(bridge).map_err(|r| Error::invalid("--bridge", r))?;
        let cidr = Cidr::parse(subnet).map_err(|r| Error::invalid("--subnet", r))?;
        if !cidr.addr.is_ipv4() {
            return Err(Error::invalid(
                "--subnet",
                "only IPv4 subnets are supported",
            ));
        }
        if cidr.prefix > 30 {
            return Err(Error::invalid(
                "--subnet",
                format!(
                    "/{} leaves no room for a gateway and a container; at most /30",
                    cidr.prefix
                ),
            ));
        }
        let subnet = Cidr {
            addr: cidr.network(),
            prefix: cidr.prefix,
        };
        let net = BridgeNetwork {
            bridge: bridge.to_owned(),
            subnet,
            gateway: Ipv4Addr::UNSPECIFIED,
            mtu,
        };
        let gateway = match gateway {
            Some(g) => {
                let ip: Ipv4Addr = g.parse().map_err(|_| {
                    Error::invalid("--gateway", format!("{g:?} is not an IPv4 address"))
                })?;
                if !net.is_host_address(ip) {
                    return Err(Error::invalid(
                        "--gateway",
                        format!("{ip} is not a host address of {subnet}"),
                    ));
                }
                ip
            }
            None => net.first_host(),
        };
        if mtu != 0 && !(MIN_MTU..=MAX_MTU).contains(&mtu) {
            return Err(Error::invalid(
                "--mtu",
                format!("{mtu} is not {MIN_MTU} to {MAX_MTU}"),
            ));
        }
        Ok(BridgeNetwork { gateway, ..net })
    }

    fn bits(&self) -> (u32, u32) {
        let IpAddr::V4(n) = self.subnet.addr else {
            return (0, 0);
        };
        let n = u32::from(n);
        let size = 1u32
            .checked_shl(32 - self.subnet.prefix as u32)
            .unwrap_or(0);
        (n, n.wrapping_add(size).wrapping_sub(1))
    }

    /// The first address after the network address.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.bits().0 + 1)
    }

    /// The last address before the broadcast address.
    pub fn last_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.bits().1 - 1)
    }

    /// In the subnet, and neither its network nor its broadcast address.
    pub fn is_host_address(&self, ip: Ipv4Addr) -> bool {
        let (first, last) = self.bits();
        let v = u32::from(ip);
        v > first && v < last
    }

    /// The gateway with the subnet's prefix, as the bridge carries it.
    pub fn gateway_cidr(&self) -> Cidr {
        Cidr {
            addr: IpAddr::V4(self.gateway),
            prefix: self.subnet.prefix,
        }
    }
}

/// Options of the daemon that shape every container.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Cgroup parent for containers, e.g. "execdriver".
    pub cgroup_parent: String,
    /// How the shims enforce device access (`--cgroup-devices`).
    pub cgroup_devices: DeviceMode,
    /// The bridge network (`--bridge`, `--subnet`); None: no bridge mode.
    pub network: Option<BridgeNetwork>,
    /// Run containers that ask for an AppArmor profile unconfined when the kernel has no
    /// AppArmor (`--allow-missing-apparmor`); otherwise they are refused.
    pub allow_missing_apparmor: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            cgroup_parent: "execdriver".into(),
            cgroup_devices: DeviceMode::Auto,
            network: None,
            allow_missing_apparmor: false,
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

    let (networks, network_meta) = network(
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

    let cgroups = cgroups(req, defaults)?;
    let sec = security(req, defaults)?;

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
        network: network_meta,
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

/// The request's network part: checks it, settles the mode (NEWNET is dropped for host,
/// container and netns modes) and returns the networks known now (bridge and container modes
/// are completed by the driver) and what to record.
fn network(
    req: Option<&NetworkConfig>,
    explicit_namespaces: bool,
    namespaces: &mut Vec<Namespace>,
    defaults: &Defaults,
) -> Result<(Vec<Network>, NetworkMeta)> {
    let empty = NetworkConfig::default();
    let n = req.unwrap_or(&empty);
    let has_net = namespaces.contains(&Namespace::Net);
    let mode = NetworkMode::try_from(n.mode)
        .map_err(|_| Error::invalid("network.mode", format!("{} is not a NetworkMode", n.mode)))?;
    let mode = match mode {
        NetworkMode::Unspecified if !has_net => NetworkMode::Host,
        NetworkMode::Unspecified if defaults.network.is_some() => NetworkMode::Bridge,
        NetworkMode::Unspecified => NetworkMode::None,
        m => m,
    };
    let only = |field: &str, set: bool, with: NetworkMode| -> Result<()> {
        if set && mode != with {
            return Err(Error::invalid(
                format!("network.{field}"),
                format!("only with {}", with.as_str_name()),
            ));
        }
        Ok(())
    };
    only(
        "container_id",
        !n.container_id.is_empty(),
        NetworkMode::Container,
    )?;
    only("netns_path", !n.netns_path.is_empty(), NetworkMode::Netns)?;
    only("address", !n.address.is_empty(), NetworkMode::Bridge)?;
    only(
        "mac_address",
        !n.mac_address.is_empty(),
        NetworkMode::Bridge,
    )?;
    only("mtu", n.mtu != 0, NetworkMode::Bridge)?;
    let loopback = || Network {
        kind: shim_net::LOOPBACK.into(),
        ..Default::default()
    };
    let mut meta = NetworkMeta::default();
    let networks = match mode {
        NetworkMode::None | NetworkMode::Bridge if !has_net => {
            return Err(Error::invalid(
                "network.mode",
                format!("{} needs NEWNET in namespaces", mode.as_str_name()),
            ))
        }
        NetworkMode::None => {
            meta.mode = MODE_NONE.into();
            vec![loopback()]
        }
        NetworkMode::Bridge => {
            let Some(net) = &defaults.network else {
                return Err(Error::FailedPrecondition(
                    "network.mode: NETWORK_MODE_BRIDGE needs a daemon started with --bridge and --subnet"
                        .into(),
                ));
            };
            meta.mode = MODE_BRIDGE.into();
            if !n.address.is_empty() {
                meta.address = bridge_address(&n.address, net)?.to_string();
            }
            check_string("network.mac_address", &n.mac_address)?;
            if !n.mac_address.is_empty() {
                let mac = shim_net::parse_mac(&n.mac_address)
                    .map_err(|r| Error::invalid("network.mac_address", r))?;
                meta.mac_address = shim_net::format_mac(&mac);
            }
            if n.mtu != 0 && !(MIN_MTU..=MAX_MTU).contains(&n.mtu) {
                return Err(Error::invalid(
                    "network.mtu",
                    format!("{} is not {MIN_MTU} to {MAX_MTU}", n.mtu),
                ));
            }
            meta.mtu = n.mtu;
            vec![loopback()]
        }
        NetworkMode::Host => {
            if explicit_namespaces && has_net {
                return Err(Error::invalid(
                    "network.mode",
                    "NETWORK_MODE_HOST conflicts with NEWNET in namespaces",
                ));
            }
            namespaces.retain(|ns| *ns != Namespace::Net);
            meta.mode = MODE_HOST.into();
            Vec::new()
        }
        NetworkMode::Container => {
            if n.container_id.is_empty() {
                return Err(Error::invalid("network.container_id", "missing"));
            }
            validate_id(&n.container_id).map_err(|e| match e {
                Error::InvalidArgument { reason, .. } => {
                    Error::invalid("network.container_id", reason)
                }
                e => e,
            })?;
            namespaces.retain(|ns| *ns != Namespace::Net);
            meta.mode = MODE_CONTAINER.into();
            meta.container_id = n.container_id.clone();
            Vec::new()
        }
        NetworkMode::Netns => {
            let path = absolute("network.netns_path", &n.netns_path)?;
            if !path.exists() {
                return Err(Error::invalid(
                    "network.netns_path",
                    format!("{} does not exist", path.display()),
                ));
            }
            namespaces.retain(|ns| *ns != Namespace::Net);
            meta.mode = MODE_NETNS.into();
            meta.netns_path = n.netns_path.clone();
            vec![netns_network(&n.netns_path)]
        }
        NetworkMode::Unspecified => {
            return Err(Error::Internal("network mode left unresolved".into()))
        }
    };
    Ok((networks, meta))
}

/// A `netns` strategy joining `path`.
pub fn netns_network(path: &str) -> Network {
    Network {
        kind: shim_net::NETNS.into(),
        context: BTreeMap::from([(shim_net::CONTEXT_NSPATH.to_owned(), path.to_owned())]),
        ..Default::default()
    }
}

/// A requested bridge-mode address: "A" or "A/PREFIX" with the subnet's prefix, a host
/// address of the subnet other than the gateway.
fn bridge_address(s: &str, net: &BridgeNetwork) -> Result<Ipv4Addr> {
    let field = "network.address";
    check_string(field, s)?;
    let (a, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: Ipv4Addr = a.parse().map_err(|_| {
        Error::invalid(field, format!("{s:?} is not an IPv4 address (or A/PREFIX)"))
    })?;
    if let Some(p) = prefix {
        if p.parse::<u8>().ok() != Some(net.subnet.prefix) {
            return Err(Error::invalid(
                field,
                format!(
                    "{s:?}: the prefix must be the subnet's, /{}",
                    net.subnet.prefix
                ),
            ));
        }
    }
    if !net.subnet.contains(IpAddr::V4(ip)) {
        return Err(Error::invalid(
            field,
            format!("{ip} is outside the subnet {}", net.subnet),
        ));
    }
    if !net.is_host_address(ip) {
        return Err(Error::invalid(
            field,
            format!("{ip} is the network or broadcast address of {}", net.subnet),
        ));
    }
    if ip == net.gateway {
        return Err(Error::invalid(
            field,
            format!("{ip} is the gateway (the bridge's address)"),
        ));
    }
    Ok(ip)
}

/// The veth strategy of a bridge-mode container with address `address`.
pub fn bridge_network(net: &BridgeNetwork, address: Ipv4Addr, meta: &NetworkMeta) -> Network {
    Network {
        kind: shim_net::VETH.into(),
        address: format!("{address}/{}", net.subnet.prefix),
        gateway: net.gateway.to_string(),
        mtu: if meta.mtu != 0 { meta.mtu } else { net.mtu },
        mac_address: meta.mac_address.clone(),
        context: BTreeMap::from([
            (shim_net::CONTEXT_BRIDGE.to_owned(), net.bridge.clone()),
            (shim_net::CONTEXT_PREFIX.to_owned(), VETH_PREFIX.to_owned()),
        ]),
    }
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
    Ok(protocol::Resources::of(&cg))
}

/// The container.json fields of a request's `security`.
#[derive(Debug, Default)]
struct SecurityParts {
    capabilities: Option<Vec<String>>,
    no_new_privileges: Option<bool>,
    rlimits: Vec<Rlimit>,
    oom_score_adj: Option<i32>,
    seccomp: Seccomp,
    masked_paths: Option<Vec<String>>,
    readonly_paths: Option<Vec<String>>,
    uid_mappings: Vec<IdMap>,
    gid_mappings: Vec<IdMap>,
    /// `apparmor_profile`, when one is asked.
    context: BTreeMap<String, String>,
}

/// Checks `req.security` and turns it into container.json's fields. A profile the kernel cannot
/// apply (AppArmor missing) is FAILED_PRECONDITION unless the daemon allows running without.
fn security(req: &CreateRequest, defaults: &Defaults) -> Result<SecurityParts> {
    let Some(s) = &req.security else {
        return Ok(SecurityParts::default());
    };
    let mut out = SecurityParts {
        no_new_privileges: s.no_new_privileges,
        ..Default::default()
    };

    check_list("security.capabilities", s.capabilities.len(), 64)?;
    for (i, c) in s.capabilities.iter().enumerate() {
        let f = format!("security.capabilities[{i}]");
        check_string(&f, c)?;
        if !capabilities::is_valid(c) {
            return Err(Error::invalid(f, format!("unknown capability {c:?}")));
        }
    }
    if !s.capabilities.is_empty() {
        out.capabilities = Some(s.capabilities.clone());
    }

    check_list("security.rlimits", s.rlimits.len(), 16)?;
    for (i, r) in s.rlimits.iter().enumerate() {
        let f = |sub: &str| format!("security.rlimits[{i}].{sub}");
        check_string(&f("type"), &r.r#type)?;
        let Some(res) = shim_security::rlimit_resource(&r.r#type) else {
            return Err(Error::invalid(
                f("type"),
                format!(
                    "unknown rlimit {:?} (RLIMIT_NOFILE, RLIMIT_NPROC, ...)",
                    r.r#type
                ),
            ));
        };
        let name = shim_security::RLIMITS
            .iter()
            .find(|(_, v)| *v == res)
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        if out.rlimits.iter().any(|o: &Rlimit| o.kind == name) {
            return Err(Error::invalid(f("type"), format!("{name} given twice")));
        }
        if r.soft > r.hard {
            return Err(Error::invalid(
                f("soft"),
                format!("{} is above the hard limit {}", r.soft, r.hard),
            ));
        }
        out.rlimits.push(Rlimit {
            kind: name,
            hard: r.hard,
            soft: r.soft,
        });
    }

    if let Some(adj) = s.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(Error::invalid(
                "security.oom_score_adj",
                format!("{adj} is out of range -1000 to 1000"),
            ));
        }
        out.oom_score_adj = Some(adj);
    }

    out.seccomp = seccomp_setting(s.seccomp.as_ref())?;
    if let Seccomp::Profile(p) = &out.seccomp {
        // Too large a filter is the request's fault: find out now, not in the container.
        if let Some(arch) = seccomp::Arch::native() {
            seccomp::compile(p, arch)
                .map_err(|why| Error::invalid("security.seccomp.syscalls", why))?;
        }
    }
    if out.seccomp != Seccomp::Unconfined && seccomp::Arch::native().is_none() {
        return Err(Error::FailedPrecondition(
            "security.seccomp: execdriver has no seccomp filters for this architecture; ask \
             for \"unconfined\""
                .into(),
        ));
    }

    check_string("security.apparmor_profile", &s.apparmor_profile)?;
    match shim_security::apparmor_decision(
        Some(s.apparmor_profile.as_str()),
        shim_security::apparmor_enabled(),
        defaults.allow_missing_apparmor,
    ) {
        shim_security::AppArmor::Refuse(p) => {
            return Err(Error::FailedPrecondition(shim_security::apparmor_refusal(
                "security.apparmor_profile",
                &p,
            )))
        }
        shim_security::AppArmor::Skip(p) => {
            tracing::warn!(
                id = %req.id,
                profile = %p,
                "AppArmor profile asked but the kernel has no AppArmor: running unconfined \
                 (--allow-missing-apparmor)"
            );
        }
        _ => {}
    }
    if !s.apparmor_profile.is_empty() {
        out.context.insert(
            shim_security::APPARMOR_KEY.into(),
            s.apparmor_profile.clone(),
        );
    }

    for (field, extra, defaults_list) in [
        (
            "security.masked_paths",
            &s.masked_paths,
            &shim_security::DEFAULT_MASKED_PATHS[..],
        ),
        (
            "security.readonly_paths",
            &s.readonly_paths,
            &shim_security::DEFAULT_READONLY_PATHS[..],
        ),
    ] {
        check_list(field, extra.len(), 256)?;
        for (i, p) in extra.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let path = absolute(&f, p)?;
            if path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
                || path == Path::new("/")
            {
                return Err(Error::invalid(f, format!("{p:?} is not a path below /")));
            }
        }
        let list = if s.unmask_system_paths {
            Some(extra.clone())
        } else if extra.is_empty() {
            None
        } else {
            let mut all: Vec<String> = defaults_list.iter().map(|p| p.to_string()).collect();
            all.extend(extra.iter().cloned());
            Some(all)
        };
        if field == "security.masked_paths" {
            out.masked_paths = list;
        } else {
            out.readonly_paths = list;
        }
    }

    for (field, maps, dest) in [
        (
            "security.uid_mappings",
            &s.uid_mappings,
            &mut out.uid_mappings,
        ),
        (
            "security.gid_mappings",
            &s.gid_mappings,
            &mut out.gid_mappings,
        ),
    ] {
        check_list(field, maps.len(), shim_security::MAX_ID_MAPS)?;
        *dest = maps
            .iter()
            .map(|m| IdMap {
                container_id: m.container_id,
                host_id: m.host_id,
                size: m.size,
            })
            .collect();
    }
    Ok(out)
}

/// The request's seccomp choice as container.json's.
fn seccomp_setting(s: Option<&pb::SeccompConfig>) -> Result<Seccomp> {
    let Some(s) = s else {
        return Ok(Seccomp::Default);
    };
    check_string("security.seccomp.profile", &s.profile)?;
    let has_profile = !s.default_action.is_empty()
        || s.default_errno_ret.is_some()
        || !s.architectures.is_empty()
        || !s.flags.is_empty()
        || !s.syscalls.is_empty();
    let named = |name: &str| -> Result<()> {
        if has_profile {
            return Err(Error::invalid(
                "security.seccomp.profile",
                format!("{name:?} takes no rules; use \"custom\" for a profile of your own"),
            ));
        }
        Ok(())
    };
    let setting = match s.profile.as_str() {
        "default" => named("default").map(|_| Seccomp::Default)?,
        "unconfined" => named("unconfined").map(|_| Seccomp::Unconfined)?,
        "" if !has_profile => Seccomp::Default,
        "" | "custom" => {
            check_list("security.seccomp.syscalls", s.syscalls.len(), 4096)?;
            let profile = seccomp::Profile {
                default_action: s.default_action.clone(),
                default_errno_ret: s.default_errno_ret,
                architectures: s.architectures.clone(),
                flags: s.flags.clone(),
                syscalls: s
                    .syscalls
                    .iter()
                    .map(|r| seccomp::Syscall {
                        names: r.names.clone(),
                        action: r.action.clone(),
                        errno_ret: r.errno_ret,
                        args: r
                            .args
                            .iter()
                            .map(|a| seccomp::Arg {
                                index: a.index,
                                value: a.value,
                                value_two: a.value_two,
                                op: a.op.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            };
            profile
                .validate()
                .map_err(|(f, why)| Error::invalid(format!("security.seccomp{f}"), why))?;
            Seccomp::Profile(profile)
        }
        other => {
            return Err(Error::invalid(
                "security.seccomp.profile",
                format!("{other:?} is not \"default\", \"unconfined\" or \"custom\""),
            ))
        }
    };
    Ok(setting)
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
        ("capabilities[", "security.capabilities["),
        ("rlimits", "security.rlimits"),
        ("oom_score_adj", "security.oom_score_adj"),
        ("seccomp", "security.seccomp"),
        ("masked_paths", "security.masked_paths"),
        ("readonly_paths", "security.readonly_paths"),
        ("uid_mappings", "security.uid_mappings"),
        ("gid_mappings", "security.gid_mappings"),
        ("context.apparmor_profile", "security.apparmor_profile"),
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
                Box::new(|r| r.freezer = "frozen".into()),
                "resources.freezer",
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

    fn bridged() -> Defaults {
        Defaults {
            network: Some(BridgeNetwork::new("edbr0", "10.88.0.0/16", None, 0).unwrap()),
            ..Default::default()
        }
    }

    fn with_network(n: NetworkConfig) -> CreateRequest {
        CreateRequest {
            network: Some(n),
            ..req()
        }
    }

    fn bridge(f: impl FnOnce(&mut NetworkConfig)) -> CreateRequest {
        let mut n = NetworkConfig {
            mode: NetworkMode::Bridge as i32,
            ..Default::default()
        };
        f(&mut n);
        with_network(n)
    }

    fn net_error(r: CreateRequest, d: &Defaults) -> (String, String) {
        match create_request(&r, d, 0) {
            Err(Error::InvalidArgument { field, reason }) => (field, reason),
            Err(Error::FailedPrecondition(m)) => ("precondition".into(), m),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn security_converts_with_defaults_and_extras() {
        // Nothing asked: every default (Docker's capabilities, the default seccomp profile,
        // no_new_privs, Docker's masked paths) is container.json's "absent".
        let (c, _) = create_request(&req(), &Defaults::default(), 0).unwrap();
        assert_eq!(c.capabilities, None);
        assert!(c.seccomp.is_default());
        assert!(c.no_new_privs());
        assert_eq!(c.masked_paths, None);
        assert!(c.masked().contains(&"/proc/kcore".to_string()));
        assert!(c.context.is_empty());

        let mut r = req();
        r.namespaces = ["NEWNS", "NEWPID", "NEWUSER"].map(String::from).to_vec();
        let map = pb::IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        };
        r.security = Some(pb::SecurityConfig {
            capabilities: vec!["CHOWN".into(), "CAP_KILL".into()],
            no_new_privileges: Some(false),
            rlimits: vec![pb::Rlimit {
                r#type: "nofile".into(),
                soft: 10,
                hard: 20,
            }],
            oom_score_adj: Some(-100),
            seccomp: Some(pb::SeccompConfig {
                profile: "unconfined".into(),
                ..Default::default()
            }),
            apparmor_profile: "unconfined".into(),
            uid_mappings: vec![map],
            gid_mappings: vec![map],
            masked_paths: vec!["/proc/extra".into()],
            readonly_paths: vec![],
            unmask_system_paths: false,
        });
        let (c, _) = create_request(&r, &Defaults::default(), 0).unwrap();
        assert_eq!(c.capabilities.as_deref().unwrap(), ["CHOWN", "CAP_KILL"]);
        assert_eq!(c.no_new_privileges, Some(false));
        assert_eq!(c.rlimits[0].kind, "RLIMIT_NOFILE");
        assert_eq!((c.rlimits[0].soft, c.rlimits[0].hard), (10, 20));
        assert_eq!(c.oom_score_adj, Some(-100));
        assert_eq!(c.seccomp, Seccomp::Unconfined);
        assert_eq!(c.context["apparmor_profile"], "unconfined");
        assert_eq!(c.uid_mappings[0].host_id, 100_000);
        let masked = c.masked_paths.clone().unwrap();
        assert!(
            masked.contains(&"/proc/kcore".to_string()) && masked.contains(&"/proc/extra".into())
        );
        assert_eq!(c.readonly_paths, None);
        // systempaths=unconfined: only what is asked.
        let mut r2 = req();
        r2.security = Some(pb::SecurityConfig {
            unmask_system_paths: true,
            ..Default::default()
        });
        let (c, _) = create_request(&r2, &Defaults::default(), 0).unwrap();
        assert_eq!(c.masked_paths, Some(vec![]));
        assert_eq!(c.readonly_paths, Some(vec![]));
    }

    #[test]
    fn seccomp_profiles_are_checked() {
        let with = |s: pb::SeccompConfig| {
            let mut r = req();
            r.security = Some(pb::SecurityConfig {
                seccomp: Some(s),
                ..Default::default()
            });
            r
        };
        let rule = |name: &str| pb::SeccompSyscall {
            names: vec![name.into()],
            action: "SCMP_ACT_ERRNO".into(),
            ..Default::default()
        };
        // A profile without `profile: custom` is custom too.
        let (c, _) = create_request(
            &with(pb::SeccompConfig {
                default_action: "SCMP_ACT_ALLOW".into(),
                syscalls: vec![rule("keyctl")],
                ..Default::default()
            }),
            &Defaults::default(),
            0,
        )
        .unwrap();
        assert!(matches!(c.seccomp, Seccomp::Profile(ref p) if p.syscalls.len() == 1));
        assert_eq!(
            field_of(with(pb::SeccompConfig {
                profile: "unconfined".into(),
                syscalls: vec![rule("keyctl")],
                ..Default::default()
            })),
            "security.seccomp.profile"
        );
        assert_eq!(
            field_of(with(pb::SeccompConfig {
                default_action: "SCMP_ACT_ALLOW".into(),
                syscalls: vec![rule("read"), rule("")],
                ..Default::default()
            })),
            "security.seccomp.syscalls[1].names[0]"
        );
        // Too large a filter is refused before anything is made.
        let huge: Vec<pb::SeccompSyscall> = execdriver_shim::seccomp::tables::X86_64
            .iter()
            .enumerate()
            .map(|(i, (n, _))| pb::SeccompSyscall {
                names: vec![n.to_string()],
                action: "SCMP_ACT_ALLOW".into(),
                args: (0..6)
                    .map(|a| pb::SeccompArg {
                        index: a,
                        value: i as u64,
                        op: "SCMP_CMP_GE".into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        assert_eq!(
            field_of(with(pb::SeccompConfig {
                default_action: "SCMP_ACT_ERRNO".into(),
                syscalls: huge,
                ..Default::default()
            })),
            "security.seccomp.syscalls"
        );
    }

    #[test]
    fn apparmor_without_apparmor_is_a_precondition_unless_allowed() {
        if shim_security::apparmor_enabled() {
            return; // this host can apply profiles
        }
        let mut r = req();
        r.security = Some(pb::SecurityConfig {
            apparmor_profile: "docker-default".into(),
            ..Default::default()
        });
        match create_request(&r, &Defaults::default(), 0) {
            Err(Error::FailedPrecondition(m)) => {
                assert!(m.starts_with("security.apparmor_profile: "), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let allowed = Defaults {
            allow_missing_apparmor: true,
            ..Defaults::default()
        };
        let (c, _) = create_request(&r, &allowed, 0).unwrap();
        assert_eq!(c.apparmor_profile(), Some("docker-default"));
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

    #[test]
    fn network_modes_convert() {
        // Default: bridge when the daemon has one, else none; host without NEWNET.
        let (c, m) = create_request(&req(), &bridged(), 0).unwrap();
        assert_eq!(m.network.mode, MODE_BRIDGE);
        assert_eq!(c.networks.len(), 1, "loopback now, the veth once addressed");
        assert!(c.has_namespace(Namespace::Net));
        let (_, m) = create_request(&req(), &Defaults::default(), 0).unwrap();
        assert_eq!(m.network.mode, MODE_NONE);
        let mut r = req();
        r.namespaces = vec!["NEWNS".into(), "NEWPID".into()];
        let (c, m) = create_request(&r, &bridged(), 0).unwrap();
        assert_eq!(m.network.mode, MODE_HOST);
        assert!(c.networks.is_empty());

        let host = NetworkConfig {
            mode: NetworkMode::Host as i32,
            ..Default::default()
        };
        let (c, m) = create_request(&with_network(host), &bridged(), 0).unwrap();
        assert_eq!(m.network.mode, MODE_HOST);
        assert!(!c.has_namespace(Namespace::Net));

        let netns = NetworkConfig {
            mode: NetworkMode::Netns as i32,
            netns_path: "/proc/self/ns/net".into(),
            ..Default::default()
        };
        let (c, m) = create_request(&with_network(netns), &Defaults::default(), 0).unwrap();
        assert_eq!(m.network.netns_path, "/proc/self/ns/net");
        assert!(!c.has_namespace(Namespace::Net));
        assert_eq!(c.networks[0].kind, "netns");
        assert_eq!(c.networks[0].context["nspath"], "/proc/self/ns/net");

        let r = bridge(|n| {
            n.address = "10.88.3.4/16".into();
            n.mac_address = "02:AA:bb:cc:dd:ee".into();
            n.mtu = 1400;
        });
        let (_, m) = create_request(&r, &bridged(), 0).unwrap();
        assert_eq!(m.network.address, "10.88.3.4");
        assert_eq!(m.network.mac_address, "02:aa:bb:cc:dd:ee");
        assert_eq!(m.network.mtu, 1400);
        let v = bridge_network(
            bridged().network.as_ref().unwrap(),
            "10.88.3.4".parse().unwrap(),
            &m.network,
        );
        assert_eq!(v.address, "10.88.3.4/16");
        assert_eq!(v.gateway, "10.88.0.1");
        assert_eq!(v.context["bridge"], "edbr0");
    }

    #[test]
    fn network_errors_name_the_field() {
        let d = bridged();
        let cases: Vec<(CreateRequest, &str)> = vec![
            (
                bridge(|n| n.address = "10.89.0.5".into()),
                "network.address",
            ),
            (
                bridge(|n| n.address = "10.88.0.5/8".into()),
                "network.address",
            ),
            (
                bridge(|n| n.address = "10.88.0.300".into()),
                "network.address",
            ),
            (bridge(|n| n.address = "fd00::5".into()), "network.address"),
            (
                bridge(|n| n.address = "10.88.0.1".into()),
                "network.address",
            ),
            (
                bridge(|n| n.address = "10.88.255.255".into()),
                "network.address",
            ),
            (
                bridge(|n| n.address = "10.88.0.0".into()),
                "network.address",
            ),
            (
                bridge(|n| n.mac_address = "ff:ff:ff:ff:ff:ff".into()),
                "network.mac_address",
            ),
            (
                bridge(|n| n.mac_address = "02:00:00".into()),
                "network.mac_address",
            ),
            (bridge(|n| n.mtu = 10), "network.mtu"),
            (bridge(|n| n.mtu = 100_000), "network.mtu"),
            (
                bridge(|n| n.container_id = "x".into()),
                "network.container_id",
            ),
            (
                bridge(|n| n.netns_path = "/proc/self/ns/net".into()),
                "network.netns_path",
            ),
            (bridge(|n| n.mode = 42), "network.mode"),
            (
                with_network(NetworkConfig {
                    mode: NetworkMode::None as i32,
                    address: "10.88.0.9".into(),
                    ..Default::default()
                }),
                "network.address",
            ),
            (
                with_network(NetworkConfig {
                    mode: NetworkMode::Netns as i32,
                    netns_path: "/var/run/netns/no-such-execdriver-netns".into(),
                    ..Default::default()
                }),
                "network.netns_path",
            ),
            (
                with_network(NetworkConfig {
                    mode: NetworkMode::Netns as i32,
                    netns_path: "relative/net".into(),
                    ..Default::default()
                }),
                "network.netns_path",
            ),
            (
                with_network(NetworkConfig {
                    mode: NetworkMode::Container as i32,
                    ..Default::default()
                }),
                "network.container_id",
            ),
            (
                with_network(NetworkConfig {
                    mode: NetworkMode::Container as i32,
                    container_id: "../etc".into(),
                    ..Default::default()
                }),
                "network.container_id",
            ),
            (
                CreateRequest {
                    namespaces: vec!["NEWNS".into(), "NEWNET".into()],
                    ..with_network(NetworkConfig {
                        mode: NetworkMode::Host as i32,
                        ..Default::default()
                    })
                },
                "network.mode",
            ),
            (
                CreateRequest {
                    namespaces: vec!["NEWNS".into()],
                    ..bridge(|_| {})
                },
                "network.mode",
            ),
        ];
        for (r, field) in cases {
            let (got, reason) = net_error(r, &d);
            assert_eq!(got, field, "{reason}");
        }
        // Bridge mode on a daemon without a bridge is the daemon's state, not the request's.
        let (got, reason) = net_error(bridge(|_| {}), &Defaults::default());
        assert_eq!(got, "precondition");
        assert!(reason.starts_with("network.mode"), "{reason}");
    }

    #[test]
    fn daemon_network_flags() {
        let n = BridgeNetwork::new("edbr0", "10.88.7.9/16", None, 0).unwrap();
        assert_eq!(n.subnet.to_string(), "10.88.0.0/16");
        assert_eq!(n.gateway, Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(n.first_host(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(n.last_host(), Ipv4Addr::new(10, 88, 255, 254));
        assert_eq!(n.gateway_cidr().to_string(), "10.88.0.1/16");
        let n = BridgeNetwork::new("edbr0", "10.88.0.0/24", Some("10.88.0.254"), 1400).unwrap();
        assert_eq!(n.gateway, Ipv4Addr::new(10, 88, 0, 254));
        let flag = |r: Result<BridgeNetwork>| match r {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            flag(BridgeNetwork::new("edbr0", "10.88.0.0", None, 0)),
            "--subnet"
        );
        assert_eq!(
            flag(BridgeNetwork::new("edbr0", "10.88.0.0/31", None, 0)),
            "--subnet"
        );
        assert_eq!(
            flag(BridgeNetwork::new("edbr0", "fd00::/64", None, 0)),
            "--subnet"
        );
        assert_eq!(
            flag(BridgeNetwork::new(
                "edbr0",
                "10.88.0.0/24",
                Some("10.88.1.1"),
                0
            )),
            "--gateway"
        );
        assert_eq!(
            flag(BridgeNetwork::new(
                "edbr0",
                "10.88.0.0/24",
                Some("10.88.0.255"),
                0
            )),
            "--gateway"
        );
        assert_eq!(
            flag(BridgeNetwork::new("a/b", "10.88.0.0/24", None, 0)),
            "--bridge"
        );
        assert_eq!(
            flag(BridgeNetwork::new("edbr0", "10.88.0.0/24", None, 9)),
            "--mtu"
        );
    }
}
