//! The `container.json` model: libcontainer's 2014 format, with the few fields execdriver adds.
//!
//! Field names follow the seed document (`hostname`, `networks`, `cgroups`, `tty`,
//! `environment`, `capabilities_mask`, `context`, `mounts`, `namespaces`) and libcontainer's
//! 2014 `Container` type for the fields the sample does not show (`readonly_fs`, `user`,
//! `working_dir`). execdriver's own additions are all optional, so the seed's sample parses as
//! it is: `rootfs` (otherwise the directory holding container.json, as nsinit does) and `args`
//! (otherwise given on nsinit's command line).
//!
//! [`Config::validate`] is the one place a config is checked; every error names its field.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::capabilities;
use crate::namespaces::Namespace;

/// A field that failed validation, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The JSON path of the field, e.g. `mounts[1].destination`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

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

/// One container's configuration, as in `container.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Network strategies; empty with NEWNET means only loopback, without NEWNET the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Network>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups: Option<Cgroups>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// Capabilities to drop, named as in the seed (`SYS_ADMIN`, not `CAP_SYS_ADMIN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_mask: Vec<String>,
    /// Free-form options such as `apparmor_profile`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// Remount the rootfs read-only after setting it up (libcontainer 2014 `readonly_fs`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub readonly_fs: bool,
    /// `uid[:gid]` the process runs as (libcontainer 2014 `user`); empty means 0:0.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Working directory inside the container (libcontainer 2014 `working_dir`); empty means `/`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// execdriver: the root filesystem on the host. Absent: the directory holding container.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    /// execdriver: the command and its arguments. Absent: given on nsinit's command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One network strategy (`loopback`, `veth`, `netns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Where the container's cgroups live: `<hierarchy>/<parent>/<name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cgroups {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent: String,
    pub name: String,
}

/// A bind mount from the host into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    pub source: PathBuf,
    pub destination: PathBuf,
    #[serde(default)]
    pub writable: bool,
    /// Mount propagation private (no events to or from the host); otherwise slave.
    #[serde(default)]
    pub private: bool,
}

/// The user and groups a process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// Parses `uid[:gid]`; an empty string is root. The gid defaults to the uid.
    pub fn parse(s: &str) -> Result<User, String> {
        if s.is_empty() {
            return Ok(User::default());
        }
        let (u, g) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let uid: u32 = u
            .parse()
            .map_err(|_| format!("{s:?} is not uid[:gid] (numeric ids)"))?;
        let gid: u32 = match g {
            Some(g) => g
                .parse()
                .map_err(|_| format!("{s:?} is not uid[:gid] (numeric ids)"))?,
            None => uid,
        };
        Ok(User { uid, gid })
    }
}

/// The default namespaces of a container, as in the seed's sample.
pub const DEFAULT_NAMESPACES: [Namespace; 5] = [
    Namespace::Mount,
    Namespace::Uts,
    Namespace::Ipc,
    Namespace::Pid,
    Namespace::Net,
];

/// Maximum lengths for strings that end up in kernel calls.
const MAX_HOSTNAME: usize = 64;
const MAX_ARG_BYTES: usize = 128 * 1024;

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let data = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = serde_json::from_slice(&data).map_err(|source| LoadError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.validate().map_err(|source| LoadError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        Ok(config)
    }

    pub fn has_namespace(&self, ns: Namespace) -> bool {
        self.namespaces.contains(&ns)
    }

    pub fn user(&self) -> User {
        // Validated in `validate`; an invalid value cannot reach here through `load`.
        User::parse(&self.user).unwrap_or_default()
    }

    /// The `PATH` the command is looked up in: the container's own, or the usual default.
    pub fn path_env(&self) -> &str {
        self.environment
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    }

    /// Checks every field; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hostname.len() > MAX_HOSTNAME {
            return Err(ConfigError::new(
                "hostname",
                format!("longer than {MAX_HOSTNAME} bytes"),
            ));
        }
        if self.hostname.contains(['\0', '/']) {
            return Err(ConfigError::new("hostname", "contains NUL or '/'"));
        }
        if !self.hostname.is_empty() && !self.has_namespace(Namespace::Uts) {
            return Err(ConfigError::new(
                "hostname",
                "setting a hostname needs the NEWUTS namespace",
            ));
        }
        if !self.has_namespace(Namespace::Mount) {
            return Err(ConfigError::new(
                "namespaces",
                "NEWNS is required (the rootfs is pivoted into)",
            ));
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            if self.namespaces[..i].contains(ns) {
                return Err(ConfigError::new(
                    format!("namespaces[{i}]"),
                    format!("{ns} listed twice"),
                ));
            }
        }
        for (i, e) in self.environment.iter().enumerate() {
            check_no_nul(&format!("environment[{i}]"), e)?;
            match e.split_once('=') {
                Some((k, _)) if !k.is_empty() => {}
                _ => {
                    return Err(ConfigError::new(
                        format!("environment[{i}]"),
                        "must be KEY=VALUE",
                    ))
                }
            }
        }
        for (i, c) in self.capabilities_mask.iter().enumerate() {
            if capabilities::parse(c).is_none() {
                return Err(ConfigError::new(
                    format!("capabilities_mask[{i}]"),
                    format!("unknown capability {c:?}"),
                ));
            }
        }
        for (i, m) in self.mounts.iter().enumerate() {
            let field = format!("mounts[{i}]");
            check_absolute(&format!("{field}.source"), &m.source)?;
            check_absolute(&format!("{field}.destination"), &m.destination)?;
            check_no_dotdot(&format!("{field}.destination"), &m.destination)?;
            if m.destination == Path::new("/") {
                return Err(ConfigError::new(
                    format!("{field}.destination"),
                    "cannot mount over /",
                ));
            }
        }
        if let Some(cg) = &self.cgroups {
            check_cgroup_component("cgroups.name", &cg.name, false)?;
            check_cgroup_component("cgroups.parent", &cg.parent, true)?;
        }
        User::parse(&self.user).map_err(|r| ConfigError::new("user", r))?;
        if !self.working_dir.is_empty() {
            check_absolute("working_dir", Path::new(&self.working_dir))?;
            check_no_dotdot("working_dir", Path::new(&self.working_dir))?;
        }
        if let Some(rootfs) = &self.rootfs {
            check_absolute("rootfs", rootfs)?;
        }
        let mut arg_bytes = 0;
        for (i, a) in self.args.iter().enumerate() {
            check_no_nul(&format!("args[{i}]"), a)?;
            arg_bytes += a.len() + 1;
        }
        if arg_bytes > MAX_ARG_BYTES {
            return Err(ConfigError::new(
                "args",
                format!("longer than {MAX_ARG_BYTES} bytes"),
            ));
        }
        if self.args.first().is_some_and(|a| a.is_empty()) {
            return Err(ConfigError::new("args[0]", "empty command"));
        }
        self.check_networks()?;
        Ok(())
    }

    /// The `networks` strategies: known types, with the fields each needs, well-formed.
    fn check_networks(&self) -> Result<(), ConfigError> {
        use crate::network::{self as net, Cidr};
        let own_netns = self.has_namespace(Namespace::Net);
        let joins = self
            .networks
            .iter()
            .filter(|n| n.kind == net::NETNS)
            .count();
        let veths = self.networks.iter().filter(|n| n.kind == net::VETH).count();
        if veths > net::MAX_VETHS {
            return Err(ConfigError::new(
                "networks",
                format!("{veths} veth networks; at most {}", net::MAX_VETHS),
            ));
        }
        let mut gateways = (false, false); // (IPv4, IPv6): one default route each
        for (i, n) in self.networks.iter().enumerate() {
            let field = |f: &str| format!("networks[{i}].{f}");
            match n.kind.as_str() {
                "" => return Err(ConfigError::new(field("type"), "missing")),
                net::LOOPBACK => {
                    // The seed's era wrote address/gateway/mtu on loopback too; they are ignored.
                    if !own_netns && joins == 0 {
                        return Err(ConfigError::new(
                            field("type"),
                            "loopback needs the NEWNET namespace",
                        ));
                    }
                }
                net::NETNS => {
                    if joins > 1 {
                        return Err(ConfigError::new(
                            field("type"),
                            "only one netns network can be joined",
                        ));
                    }
                    if veths > 0 {
                        return Err(ConfigError::new(
                            field("type"),
                            "netns cannot be combined with veth (the joined namespace is configured by its owner)",
                        ));
                    }
                    let path = n.context.get(net::CONTEXT_NSPATH).map(String::as_str);
                    check_absolute(
                        &field(&format!("context.{}", net::CONTEXT_NSPATH)),
                        Path::new(path.unwrap_or("")),
                    )?;
                }
                net::VETH => {
                    if !own_netns {
                        return Err(ConfigError::new(
                            field("type"),
                            "veth needs the NEWNET namespace",
                        ));
                    }
                    let bridge = n.context.get(net::CONTEXT_BRIDGE).map(String::as_str);
                    net::check_ifname(bridge.unwrap_or(""))
                        .map_err(|r| ConfigError::new(field("context.bridge"), r))?;
                    if let Some(prefix) = n.context.get(net::CONTEXT_PREFIX) {
                        if prefix.len() > net::MAX_PREFIX {
                            return Err(ConfigError::new(
                                field("context.prefix"),
                                format!(
                                    "{prefix:?} is longer than {} bytes (the name gets at least 4 random digits within {})",
                                    net::MAX_PREFIX,
                                    net::IFNAME_MAX
                                ),
                            ));
                        }
                        if !prefix.is_empty() {
                            net::check_ifname(prefix)
                                .map_err(|r| ConfigError::new(field("context.prefix"), r))?;
                        }
                    }
                    if n.address.is_empty() {
                        return Err(ConfigError::new(field("address"), "missing"));
                    }
                    let cidr = Cidr::parse(&n.address)
                        .map_err(|r| ConfigError::new(field("address"), r))?;
                    if cidr.addr.is_unspecified()
                        || cidr.addr.is_multicast()
                        || cidr.addr.is_loopback()
                    {
                        return Err(ConfigError::new(
                            field("address"),
                            format!("{} is not a unicast host address", cidr.addr),
                        ));
                    }
                    if !n.gateway.is_empty() {
                        let gw: std::net::IpAddr = n.gateway.parse().map_err(|_| {
                            ConfigError::new(
                                field("gateway"),
                                format!("{:?} is not an IP address", n.gateway),
                            )
                        })?;
                        if !cidr.contains(gw) {
                            return Err(ConfigError::new(
                                field("gateway"),
                                format!("{gw} is not in {}/{}", cidr.network(), cidr.prefix),
                            ));
                        }
                        if gw == cidr.addr {
                            return Err(ConfigError::new(
                                field("gateway"),
                                "is the container's own address",
                            ));
                        }
                        let seen = if gw.is_ipv4() {
                            &mut gateways.0
                        } else {
                            &mut gateways.1
                        };
                        if std::mem::replace(seen, true) {
                            return Err(ConfigError::new(
                                field("gateway"),
                                "a second default route of the same family",
                            ));
                        }
                    }
                    if n.mtu != 0 && !(MIN_MTU..=MAX_MTU).contains(&n.mtu) {
                        return Err(ConfigError::new(
                            field("mtu"),
                            format!(
                                "{} is not 0 (the bridge's) or {MIN_MTU} to {MAX_MTU}",
                                n.mtu
                            ),
                        ));
                    }
                    if !n.mac_address.is_empty() {
                        net::parse_mac(&n.mac_address)
                            .map_err(|r| ConfigError::new(field("mac_address"), r))?;
                    }
                }
                other => {
                    return Err(ConfigError::new(
                        field("type"),
                        format!("unknown network type {other:?} (loopback, veth, netns)"),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// The MTU range of a veth (bytes): IPv4's minimum to the kernel's maximum for veth.
pub const MIN_MTU: u32 = 68;
pub const MAX_MTU: u32 = 65535;

fn check_no_nul(field: &str, s: &str) -> Result<(), ConfigError> {
    if s.contains('\0') {
        return Err(ConfigError::new(field, "contains a NUL byte"));
    }
    Ok(())
}

fn check_absolute(field: &str, p: &Path) -> Result<(), ConfigError> {
    if p.as_os_str().is_empty() {
        return Err(ConfigError::new(field, "missing"));
    }
    if !p.is_absolute() {
        return Err(ConfigError::new(
            field,
            format!("{} is not an absolute path", p.display()),
        ));
    }
    if p.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(ConfigError::new(field, "contains a NUL byte"));
    }
    Ok(())
}

fn check_no_dotdot(field: &str, p: &Path) -> Result<(), ConfigError> {
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(ConfigError::new(
            field,
            format!("{} contains '..'", p.display()),
        ));
    }
    Ok(())
}

/// A cgroup path piece: plain names separated by '/', no '..', nothing absolute.
fn check_cgroup_component(field: &str, s: &str, allow_slash: bool) -> Result<(), ConfigError> {
    if s.is_empty() {
        return if allow_slash {
            Ok(())
        } else {
            Err(ConfigError::new(field, "missing"))
        };
    }
    let bad = |why: &str| Err(ConfigError::new(field, format!("{s:?} {why}")));
    if s.len() > 200 {
        return bad("is longer than 200 bytes");
    }
    if !allow_slash && s.contains('/') {
        return bad("contains '/'");
    }
    for part in s.trim_matches('/').split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return bad("has an empty, '.' or '..' component");
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:@".contains(&b))
        {
            return bad("has characters outside [A-Za-z0-9_.:@-]");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SAMPLE: &str = include_str!("../testdata/seed-container.json");

    #[test]
    fn seed_sample_parses_and_validates() {
        let c: Config = serde_json::from_str(SEED_SAMPLE).unwrap();
        assert_eq!(c.hostname, "koye");
        assert_eq!(c.networks[0].kind, "veth");
        assert_eq!(c.networks[0].context["bridge"], "docker0");
        assert_eq!(c.networks[0].mtu, 1500);
        assert_eq!(c.cgroups.as_ref().unwrap().parent, "docker");
        assert!(c.tty);
        assert_eq!(c.capabilities_mask.len(), 15);
        assert_eq!(c.context["apparmor_profile"], "docker-default");
        assert_eq!(c.mounts.len(), 3);
        assert!(!c.mounts[0].writable);
        assert!(c.mounts[0].private);
        assert_eq!(c.namespaces, DEFAULT_NAMESPACES.to_vec());
        c.validate().unwrap();
    }

    #[test]
    fn round_trip_keeps_seed_field_names() {
        let c: Config = serde_json::from_str(SEED_SAMPLE).unwrap();
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        for key in [
            "hostname",
            "networks",
            "cgroups",
            "tty",
            "environment",
            "capabilities_mask",
            "context",
            "mounts",
            "namespaces",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from serialized config");
        }
        let back: Config = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    fn valid() -> Config {
        Config {
            namespaces: DEFAULT_NAMESPACES.to_vec(),
            args: vec!["/bin/true".into()],
            ..Default::default()
        }
    }

    #[test]
    fn errors_name_the_field() {
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c.capabilities_mask = vec!["SYS_BOGUS".into()]),
                "capabilities_mask[0]",
            ),
            (
                Box::new(|c| c.namespaces.retain(|n| *n != Namespace::Mount)),
                "namespaces",
            ),
            (
                Box::new(|c| c.namespaces.push(Namespace::Pid)),
                "namespaces[5]",
            ),
            (
                Box::new(|c| {
                    c.mounts = vec![Mount {
                        source: "rel".into(),
                        destination: "/x".into(),
                        ..Default::default()
                    }]
                }),
                "mounts[0].source",
            ),
            (
                Box::new(|c| {
                    c.mounts = vec![Mount {
                        source: "/a".into(),
                        destination: "/x/../../etc".into(),
                        ..Default::default()
                    }]
                }),
                "mounts[0].destination",
            ),
            (
                Box::new(|c| c.environment = vec!["NOEQUALS".into()]),
                "environment[0]",
            ),
            (Box::new(|c| c.user = "root".into()), "user"),
            (Box::new(|c| c.working_dir = "tmp".into()), "working_dir"),
            (Box::new(|c| c.hostname = "x".repeat(65)), "hostname"),
            (
                Box::new(|c| {
                    c.cgroups = Some(Cgroups {
                        parent: "../x".into(),
                        name: "a".into(),
                    })
                }),
                "cgroups.parent",
            ),
            (Box::new(|c| c.args = vec!["a\0b".into()]), "args[0]"),
        ];
        for (mutate, field) in cases {
            let mut c = valid();
            mutate(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        valid().validate().unwrap();
    }

    fn veth() -> Network {
        Network {
            kind: "veth".into(),
            address: "172.17.0.2/16".into(),
            gateway: "172.17.42.1".into(),
            mtu: 1500,
            context: BTreeMap::from([
                ("bridge".to_string(), "docker0".to_string()),
                ("prefix".to_string(), "veth".to_string()),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn network_errors_name_the_field() {
        type Mutation = Box<dyn Fn(&mut Network)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|n| n.kind = "macvlan".into()), "networks[1].type"),
            (Box::new(|n| n.kind.clear()), "networks[1].type"),
            (
                Box::new(|n| n.address = "172.17.0.2".into()),
                "networks[1].address",
            ),
            (
                Box::new(|n| n.address = "172.17.0.300/16".into()),
                "networks[1].address",
            ),
            (Box::new(|n| n.address.clear()), "networks[1].address"),
            (
                Box::new(|n| n.address = "127.0.0.2/8".into()),
                "networks[1].address",
            ),
            (
                Box::new(|n| n.gateway = "10.0.0.1".into()),
                "networks[1].gateway",
            ),
            (
                Box::new(|n| n.gateway = "localhost".into()),
                "networks[1].gateway",
            ),
            (
                Box::new(|n| n.gateway = "172.17.0.2".into()),
                "networks[1].gateway",
            ),
            (Box::new(|n| n.mtu = 20), "networks[1].mtu"),
            (Box::new(|n| n.mtu = 70000), "networks[1].mtu"),
            (
                Box::new(|n| n.mac_address = "01:00:5e:00:00:01".into()),
                "networks[1].mac_address",
            ),
            (
                Box::new(|n| n.mac_address = "nope".into()),
                "networks[1].mac_address",
            ),
            (
                Box::new(|n| {
                    n.context.remove("bridge");
                }),
                "networks[1].context.bridge",
            ),
            (
                Box::new(|n| {
                    n.context.insert("bridge".into(), "x".repeat(16));
                }),
                "networks[1].context.bridge",
            ),
            (
                Box::new(|n| {
                    n.context.insert("prefix".into(), "toolongprefix".into());
                }),
                "networks[1].context.prefix",
            ),
        ];
        let lo = Network {
            kind: "loopback".into(),
            address: "127.0.0.1/0".into(),
            gateway: "localhost".into(),
            mtu: 1500,
            ..Default::default()
        };
        for (mutate, field) in cases {
            let mut c = valid();
            let mut n = veth();
            mutate(&mut n);
            c.networks = vec![lo.clone(), n];
            let err = c.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        // The seed era's loopback entry (address 127.0.0.1/0, gateway "localhost") is fine.
        let mut c = valid();
        c.networks = vec![lo.clone(), veth()];
        c.validate().unwrap();

        // veth and loopback need NEWNET; netns needs a path and stands alone.
        let mut c = valid();
        c.namespaces.retain(|n| *n != Namespace::Net);
        c.networks = vec![veth()];
        assert_eq!(c.validate().unwrap_err().field, "networks[0].type");
        c.networks = vec![lo.clone()];
        assert_eq!(c.validate().unwrap_err().field, "networks[0].type");
        let netns = |p: &str| Network {
            kind: "netns".into(),
            context: BTreeMap::from([("nspath".to_string(), p.to_string())]),
            ..Default::default()
        };
        c.networks = vec![netns("/var/run/netns/x")];
        c.validate().unwrap();
        c.networks = vec![netns("relative")];
        assert_eq!(
            c.validate().unwrap_err().field,
            "networks[0].context.nspath"
        );
        let mut c = valid();
        c.networks = vec![netns("/proc/1/ns/net"), veth()];
        assert_eq!(c.validate().unwrap_err().field, "networks[0].type");
        c.networks = vec![netns("/proc/1/ns/net"), netns("/proc/2/ns/net")];
        assert_eq!(c.validate().unwrap_err().field, "networks[0].type");
        // One default route per family.
        let mut second = veth();
        second.address = "172.17.0.3/16".into();
        c.networks = vec![veth(), second];
        assert_eq!(c.validate().unwrap_err().field, "networks[1].gateway");
    }

    #[test]
    fn unknown_fields_and_namespaces_are_rejected() {
        assert!(serde_json::from_str::<Config>(r#"{"capabilites_mask": []}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"namespaces": ["NEWFOO"]}"#).is_err());
    }

    #[test]
    fn user_parsing() {
        assert_eq!(User::parse("").unwrap(), User { uid: 0, gid: 0 });
        assert_eq!(
            User::parse("1000").unwrap(),
            User {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(User::parse("1000:5").unwrap(), User { uid: 1000, gid: 5 });
        assert!(User::parse("1000:").is_err());
        assert!(User::parse("-1").is_err());
    }
}
