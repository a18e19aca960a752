//! A request's `network`: the mode settled against the namespaces asked for, and the
//! container.json strategies (loopback, a veth on the daemon's bridge, a netns to join, the
//! user-mode network of slirp4netns).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use execdriver_proto::{NetworkConfig, NetworkMode};
use execdriver_spec::config::{Network, MAX_MTU, MIN_MTU};
use execdriver_spec::namespaces::Namespace;
use execdriver_spec::network as spec_net;

use super::checks::{absolute, check_string, validate_id};
use super::daemon::{
    BridgeNetwork, Defaults, NetworkMeta, MODE_BRIDGE, MODE_CONTAINER, MODE_HOST, MODE_NETNS,
    MODE_NONE, MODE_SLIRP4NETNS, VETH_PREFIX,
};
use crate::error::{Error, Result};

/// The request's network part: checks it, settles the mode (NEWNET is dropped for host,
/// container and netns modes) and returns the networks known now (bridge and container modes
/// are completed by the driver) and what to record.
pub(super) fn network(
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
    if n.mtu != 0 && !matches!(mode, NetworkMode::Bridge | NetworkMode::Slirp4netns) {
        return Err(Error::invalid(
            "network.mtu",
            "only with NETWORK_MODE_BRIDGE or NETWORK_MODE_SLIRP4NETNS",
        ));
    }
    let loopback = || Network {
        kind: spec_net::LOOPBACK.into(),
        ..Default::default()
    };
    let mut meta = NetworkMeta::default();
    let networks = match mode {
        NetworkMode::None | NetworkMode::Bridge | NetworkMode::Slirp4netns if !has_net => {
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
                let mac = spec_net::parse_mac(&n.mac_address)
                    .map_err(|r| Error::invalid("network.mac_address", r))?;
                meta.mac_address = spec_net::format_mac(&mac);
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
        NetworkMode::Slirp4netns => {
            if n.mtu != 0 && !(MIN_MTU..=spec_net::SLIRP_MAX_MTU).contains(&n.mtu) {
                return Err(Error::invalid(
                    "network.mtu",
                    format!("{} is not {MIN_MTU} to {}", n.mtu, spec_net::SLIRP_MAX_MTU),
                ));
            }
            meta.mode = MODE_SLIRP4NETNS.into();
            meta.address = spec_net::SLIRP_ADDRESS.into();
            meta.gateway = spec_net::SLIRP_GATEWAY.into();
            meta.mtu = if n.mtu != 0 {
                n.mtu
            } else {
                spec_net::SLIRP_DEFAULT_MTU
            };
            vec![
                loopback(),
                Network {
                    kind: spec_net::SLIRP4NETNS.into(),
                    mtu: n.mtu,
                    ..Default::default()
                },
            ]
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
            check_netns("network.netns_path", &path)?;
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

/// Whether `path` is a network namespace the daemon can join (a `/proc/PID/ns/net` or a
/// bind mount of one, such as `/run/netns/NAME`); the error says why not.
fn check_netns(field: &str, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
            std::io::ErrorKind::PermissionDenied => format!(
                "{} cannot be joined: permission denied (the daemon may not enter that \
                 process's namespaces: it is not allowed to trace it, or it belongs to another \
                 user namespace)",
                path.display()
            ),
            _ => format!("{} cannot be opened: {e}", path.display()),
        };
        Error::invalid(field, why)
    })?;
    // A namespace file is on nsfs; opened through /proc/PID/ns it reads as "KIND:[INODE]"
    // (a bind mount of one reads as its own path: the shim's setns checks its kind).
    let on_nsfs = nix::sys::statfs::fstatfs(&file)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false);
    let what = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = what.split_once(":[").map(|(k, _)| k);
    if !on_nsfs || kind.is_some_and(|k| k != "net") {
        let it = if on_nsfs {
            what
        } else {
            "no namespace file".into()
        };
        return Err(Error::invalid(
            field,
            format!(
                "{} is not a network namespace (it is {it}); give /proc/PID/ns/net or a bind \
                 mount of one",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// A `netns` strategy joining `path`.
pub fn netns_network(path: &str) -> Network {
    Network {
        kind: spec_net::NETNS.into(),
        context: BTreeMap::from([(spec_net::CONTEXT_NSPATH.to_owned(), path.to_owned())]),
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
        kind: spec_net::VETH.into(),
        address: format!("{address}/{}", net.subnet.prefix),
        gateway: net.gateway.to_string(),
        mtu: if meta.mtu != 0 { meta.mtu } else { net.mtu },
        mac_address: meta.mac_address.clone(),
        context: BTreeMap::from([
            (spec_net::CONTEXT_BRIDGE.to_owned(), net.bridge.clone()),
            (spec_net::CONTEXT_PREFIX.to_owned(), VETH_PREFIX.to_owned()),
        ]),
    }
}
