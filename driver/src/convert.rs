//! Request -> container.json: every request field is checked here, and only here.
//!
//! Errors are INVALID_ARGUMENT naming the request field (`process.args`, `mounts[1].source`),
//! raised before anything is created.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use execdriver_proto::{CreateRequest, Mount as ProtoMount, NetworkConfig, NetworkMode};
use execdriver_shim::capabilities;
use execdriver_shim::config::{
    self, Cgroups, Config, Mount, Network, User, DEFAULT_NAMESPACES, MAX_MTU, MIN_MTU,
};
use execdriver_shim::namespaces::Namespace;
use execdriver_shim::network::{self as shim_net, Cidr};
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
    /// The bridge network (`--bridge`, `--subnet`); None: no bridge mode.
    pub network: Option<BridgeNetwork>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            cgroup_parent: "execdriver".into(),
            network: None,
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

    let Some(process) = &req.process else {
        return Err(Error::invalid("process", "missing"));
    };
    check_list("process.args", process.args.len(), MAX_LIST)?;
    if process.args.is_empty() {
        return Err(Error::invalid(
            "process.args",
            "empty: a command is required",
        ));
    }
    for (i, a) in process.args.iter().enumerate() {
        check_string(&format!("process.args[{i}]"), a)?;
    }
    check_list("process.env", process.env.len(), MAX_LIST)?;
    for (i, e) in process.env.iter().enumerate() {
        check_string(&format!("process.env[{i}]"), e)?;
    }
    if !process.cwd.is_empty() {
        absolute("process.cwd", &process.cwd)?;
    }
    check_string("process.user", &process.user)?;
    User::parse(&process.user).map_err(|r| Error::invalid("process.user", r))?;
    let console_size = match (&process.console_size, process.tty) {
        (Some(_), false) => {
            return Err(Error::invalid("process.console_size", "needs process.tty"))
        }
        (Some(c), true) => {
            if c.rows == 0 || c.cols == 0 || c.rows > u16::MAX as u32 || c.cols > u16::MAX as u32 {
                return Err(Error::invalid(
                    "process.console_size",
                    "rows and cols must be 1 to 65535",
                ));
            }
            (c.rows as u16, c.cols as u16)
        }
        (None, _) => (24, 80),
    };

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
        if capabilities::parse(c).is_none() {
            return Err(Error::invalid(
                format!("capabilities_mask[{i}]"),
                format!("unknown capability {c:?}"),
            ));
        }
    }

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

    let config = Config {
        hostname,
        networks,
        cgroups: Some(Cgroups {
            parent: defaults.cgroup_parent.clone(),
            name: req.id.clone(),
        }),
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
        network: network_meta,
    };
    Ok((config, meta))
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

/// Names a container.json field as the request does.
fn request_field(e: config::ConfigError) -> Error {
    let renames = [
        ("environment", "process.env"),
        ("args", "process.args"),
        ("working_dir", "process.cwd"),
        ("user", "process.user"),
        ("readonly_fs", "readonly_rootfs"),
    ];
    let mut field = e.field;
    for (from, to) in renames {
        if let Some(rest) = field.strip_prefix(from) {
            field = format!("{to}{rest}");
            break;
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
