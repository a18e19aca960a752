//! What the daemon brings to every conversion and keeps of each container: its options
//! ([`Defaults`], [`BridgeNetwork`]) and its record beside container.json ([`Meta`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use execdriver_shim::cgroups::DeviceMode;
use execdriver_spec::config::{MAX_MTU, MIN_MTU};
use execdriver_spec::network::{self as spec_net, Cidr};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
    /// The uid of the restricted caller that created it (`crate::policy`): only that caller
    /// (and unrestricted ones) may see and use it. None: made by an unrestricted caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<u32>,
}

/// What the driver records of a container's network (in `meta.json`). [`create_request`] fills
/// in what the request says; `Driver::create` completes it (the allocated address, the shared
/// container's details).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkMeta {
    /// "none", "bridge", "host", "container", "netns" or "slirp4netns".
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
pub const MODE_SLIRP4NETNS: &str = "slirp4netns";

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
        spec_net::check_ifname(bridge).map_err(|r| Error::invalid("--bridge", r))?;
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
    /// The daemon runs as an ordinary user: containers get a user namespace and no cgroups.
    pub rootless: Option<super::Rootless>,
    /// v1 controllers (memory, cpuset) whose cgroup a container gets only with a limit of
    /// theirs; without one it shares the cgroup parent's (`--cgroups-when-limited`).
    pub when_limited: Vec<String>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            cgroup_parent: "execdriver".into(),
            cgroup_devices: DeviceMode::Auto,
            network: None,
            allow_missing_apparmor: false,
            rootless: None,
            when_limited: Vec::new(),
        }
    }
}

/// The root the daemon uses unless `--root` says otherwise.
pub const DEFAULT_ROOT: &str = "/run/execdriver";

/// The root's path hashed (FNV-1a: stable across builds): what tells apart the cgroups of
/// daemons on different roots.
pub fn root_hash(root: &std::path::Path) -> u32 {
    root.as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ *b as u32).wrapping_mul(0x0100_0193)
        })
}

/// The cgroup parent of a daemon on `root` that names none: `execdriver` on the default root,
/// `execdriver-` and 8 hex digits of the root's path elsewhere (FNV-1a: stable across builds),
/// so two daemons on different roots never share, list, kill or clean up each other's cgroups.
pub fn default_cgroup_parent(root: &std::path::Path) -> String {
    if root == std::path::Path::new(DEFAULT_ROOT) {
        return "execdriver".into();
    }
    format!("execdriver-{:08x}", root_hash(root))
}
