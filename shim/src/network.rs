//! Container networking: the strategies of container.json's `networks`, over rtnetlink.
//!
//! * `loopback`: `lo` up inside. Every container with its own network namespace gets it,
//!   listed or not.
//! * `veth`: before clone the shim resolves `context.bridge` (it must exist and be a bridge).
//!   After clone, in the shim's own namespace (the host side), it creates a veth pair whose
//!   host end is `context.prefix` (default `veth`) plus random hex digits, within IFNAMSIZ,
//!   and whose peer is created directly in the init's namespace (`IFLA_NET_NS_PID`) as `eth0`
//!   (`eth1`, ... for further veths) with the MAC (`mac_address`, or a generated locally
//!   administered one) and the MTU (`mtu`, or the bridge's). The host end is attached to the
//!   bridge with `IFLA_MASTER`, read back, and attached with the `SIOCBRADDIF` ioctl when the
//!   kernel acknowledged the request but did not set the master (the seed's RHEL 6 case; the
//!   environment variable [`FORCE_IOCTL_ENV`] forces that path), then brought up. The init
//!   then gives `eth0` its `address`, brings it up and adds the default route via `gateway`.
//! * `netns`: the init joins the network namespace at `context.nspath` (a file such as
//!   `/var/run/netns/NAME` or `/proc/PID/ns/net`) instead of getting a new one: the clone is
//!   made without `CLONE_NEWNET` even when NEWNET is listed, and the namespace is the joined
//!   one's to configure.
//!
//! The shim is single-threaded with no runtime, so this is a small synchronous client on
//! netlink-packet-route. The driver uses [`ensure_bridge`] from here too.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Network};
use crate::namespaces::Namespace;
use crate::protocol::ErrorCode;

/// `type` of the loopback strategy.
pub const LOOPBACK: &str = "loopback";
/// `type` of the veth-on-a-bridge strategy.
pub const VETH: &str = "veth";
/// `type` of the join-a-network-namespace strategy.
pub const NETNS: &str = "netns";
/// The veth strategy's `context` keys.
pub const CONTEXT_BRIDGE: &str = "bridge";
pub const CONTEXT_PREFIX: &str = "prefix";
/// The netns strategy's `context` key (libcontainer 2014's name).
pub const CONTEXT_NSPATH: &str = "nspath";
/// The host end's name prefix when `context.prefix` is not given.
pub const DEFAULT_PREFIX: &str = "veth";
/// The longest interface name the kernel takes (IFNAMSIZ less the NUL).
pub const IFNAME_MAX: usize = 15;
/// The longest veth prefix: it leaves at least 4 random hex digits within [`IFNAME_MAX`].
pub const MAX_PREFIX: usize = IFNAME_MAX - 4;
/// At most this many veth strategies per container.
pub const MAX_VETHS: usize = 16;
/// Set to `1` in the shim's environment to attach veths to their bridge with the
/// `SIOCBRADDIF` ioctl, as on a kernel that ignores `IFLA_MASTER` (for tests).
pub const FORCE_IOCTL_ENV: &str = "EXECDRIVER_FORCE_BRADDIF_IOCTL";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("netlink {op}: {source}")]
    Request {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("netlink {op}: malformed reply: {detail}")]
    Decode { op: &'static str, detail: String },
    /// A field of container.json is unusable (validation should have caught it).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{field}: bridge {name:?} does not exist")]
    NoBridge { field: String, name: String },
    #[error("{field}: {name:?} is not a bridge")]
    NotABridge { field: String, name: String },
    #[error("{field}: network namespace {path}: {reason}")]
    Netns {
        field: String,
        path: PathBuf,
        reason: String,
    },
    #[error("interface {0:?} is missing")]
    NoLink(String),
    #[error("no free interface name with prefix {0:?}")]
    NoFreeName(String),
    #[error("attaching {link} to bridge {bridge}: {reason}")]
    Attach {
        link: String,
        bridge: String,
        reason: String,
    },
}

impl Error {
    /// FAILED_PRECONDITION for what the config names but the host lacks; INTERNAL otherwise.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NoBridge { .. } | Error::NotABridge { .. } | Error::Netns { .. } => {
                ErrorCode::FailedPrecondition
            }
            Error::Invalid { .. } => ErrorCode::InvalidArgument,
            _ => ErrorCode::Internal,
        }
    }

    fn errno(&self) -> Option<i32> {
        match self {
            Error::Request { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Addresses and names

/// An address with its prefix length, `10.88.0.2/16`; also a network, `10.88.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX` (IPv4 or IPv6).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let Some((a, p)) = s.split_once('/') else {
            return Err(format!("{s:?} is not ADDRESS/PREFIX (CIDR)"));
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} in {s:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{p:?} in {s:?} is not a prefix length 0 to {max}"))?;
        Ok(Cidr { addr, prefix })
    }

    fn mask(&self) -> u128 {
        let bits = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == 0 {
            0
        } else {
            (u128::MAX << (128 - self.prefix as u32)) >> (128 - bits)
        }
    }

    fn bits(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(v) => u32::from(v) as u128,
            IpAddr::V6(v) => u128::from(v),
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        let n = Self::bits(self.addr) & self.mask();
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
        }
    }

    /// Whether `ip` is in this network (same family, same network bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && Self::bits(ip) & self.mask() == Self::bits(self.addr) & self.mask()
    }

    /// The IPv4 broadcast address (all host bits set); None for IPv6.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(v) => Some(Ipv4Addr::from(u32::from(v) | !(self.mask() as u32))),
            IpAddr::V6(_) => None,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff`; it must be unicast and not all zeros.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    for (b, p) in mac.iter_mut().zip(&parts) {
        *b = (p.len() == 2)
            .then(|| u8::from_str_radix(p, 16).ok())
            .flatten()
            .ok_or_else(|| format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
    }
    if mac[0] & 1 != 0 {
        return Err(format!("{s:?} is a multicast address"));
    }
    if mac == [0; 6] {
        return Err(format!("{s:?} is all zeros"));
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A random unicast MAC with the locally administered bit set (`x2:`, `x6:`, `xa:`, `xe:`).
pub fn random_mac() -> [u8; 6] {
    let mut mac = random_bytes::<6>();
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    let read = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if read.is_err() {
        // No /dev/urandom: mix the time and the pid; names are still checked for collisions.
        let seed = crate::state::now_ns() as u64 ^ ((std::process::id() as u64) << 32);
        let mut x = seed | 1;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    buf
}

/// Checks an interface name: 1 to 15 bytes, no '/', ':', whitespace or NUL, not "." or "..".
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("missing".into());
    }
    if name.len() > IFNAME_MAX {
        return Err(format!("{name:?} is longer than {IFNAME_MAX} bytes"));
    }
    if name == "." || name == ".." || name.bytes().any(|b| b <= b' ' || b"/:\x7f".contains(&b)) {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    Ok(())
}

/// The host end's name: `prefix` and random hex digits, `IFNAME_MAX` bytes at most (8 digits
/// at most).
pub fn host_link_name(prefix: &str) -> String {
    let digits = (IFNAME_MAX - prefix.len().min(IFNAME_MAX)).min(8);
    let hex: String = random_bytes::<4>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{prefix}{}", &hex[..digits])
}

/// The name of the `n`th veth inside the container: eth0, eth1, ...
pub fn peer_name(n: usize) -> String {
    format!("eth{n}")
}

/// The veth strategies of a config, with their index in `networks`.
pub fn veths(config: &Config) -> impl Iterator<Item = (usize, &Network)> {
    config
        .networks
        .iter()
        .enumerate()
        .filter(|(_, n)| n.kind == VETH)
}

/// The `netns` strategy's path and its index, if the config has one.
pub fn netns_path(config: &Config) -> Option<(usize, &str)> {
    config
        .networks
        .iter()
        .enumerate()
        .find(|(_, n)| n.kind == NETNS)
        .map(|(i, n)| {
            (
                i,
                n.context
                    .get(CONTEXT_NSPATH)
                    .map(String::as_str)
                    .unwrap_or(""),
            )
        })
}

// ---------------------------------------------------------------------------------------------
// The rtnetlink client

/// A blocking rtnetlink socket in the network namespace of the thread that opened it.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

/// What a request expects back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A change: the kernel answers with an ack (or an error).
    Change { create: bool },
    /// A dump: many replies, then Done.
    Dump,
    /// One object: its reply, then an ack.
    Get,
}

/// A link as read back from the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The index of the bridge (or other controller) it is attached to (IFLA_MASTER).
    pub master: Option<u32>,
    pub mtu: u32,
    pub mac: Vec<u8>,
    pub up: bool,
    pub is_bridge: bool,
    pub is_veth: bool,
}

impl Link {
    fn from_message(m: &LinkMessage) -> Link {
        let mut link = Link {
            index: m.header.index,
            up: m.header.flags.contains(LinkFlags::Up),
            ..Default::default()
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Controller(i) => link.master = Some(*i).filter(|i| *i != 0),
                LinkAttribute::Mtu(v) => link.mtu = *v,
                LinkAttribute::Address(mac) => link.mac = mac.clone(),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            link.is_bridge = *k == InfoKind::Bridge;
                            link.is_veth = *k == InfoKind::Veth;
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

impl Netlink {
    pub fn open() -> Result<Netlink, Error> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(Error::Socket)?;
        socket.bind_auto().map_err(Error::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(Error::Socket)?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends one request and collects the replies (none for an acked change).
    pub fn request(
        &mut self,
        op: &'static str,
        msg: RouteNetlinkMessage,
        kind: Kind,
    ) -> Result<Vec<RouteNetlinkMessage>, Error> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = NLM_F_REQUEST
            | match kind {
                Kind::Change { create: true } => NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                Kind::Change { create: false } | Kind::Get => NLM_F_ACK,
                Kind::Dump => NLM_F_DUMP,
            };
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|source| Error::Request { op, source })?;

        let mut out = Vec::new();
        let mut rx = vec![0u8; 64 * 1024];
        loop {
            let n = self
                .socket
                .recv(&mut &mut rx[..], 0)
                .map_err(|source| Error::Request { op, source })?;
            let mut offset = 0;
            while offset < n {
                let reply: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&rx[offset..n]).map_err(|e| Error::Decode {
                        op,
                        detail: e.to_string(),
                    })?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number != self.seq {
                    offset += len.max(1);
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out), // an ack
                            Some(code) => Err(Error::Request {
                                op,
                                source: io::Error::from_raw_os_error(-code.get()),
                            }),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// Sets a link up (or down) by index.
    pub fn set_up(&mut self, index: u32, up: bool) -> Result<(), Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
        msg.header.change_mask = LinkFlags::Up;
        self.request(
            "set link up",
            RouteNetlinkMessage::SetLink(msg),
            Kind::Change { create: false },
        )?;
        Ok(())
    }

    fn get_link(&mut self, msg: LinkMessage) -> Result<Option<Link>, Error> {
        match self.request("get link", RouteNetlinkMessage::GetLink(msg), Kind::Get) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a link by name; None when there is none.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, Error> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        self.get_link(msg)
    }

    /// Reads a link by index; None when there is none.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(msg)
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, Error> {
        let replies = self.request(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            Kind::Dump,
        )?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
                _ => None,
            })
            .collect())
    }

    /// Creates a veth pair: `host` here, `peer` in the network namespace of `peer_pid`.
    /// An MTU of 0 leaves the kernel's default.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        mtu: u32,
        peer_mac: [u8; 6],
        peer_pid: u32,
    ) -> Result<(), Error> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        peer_msg
            .attributes
            .push(LinkAttribute::Address(peer_mac.to_vec()));
        peer_msg.attributes.push(LinkAttribute::NetNsPid(peer_pid));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_owned()));
        if mtu > 0 {
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(
            "create veth",
            RouteNetlinkMessage::NewLink(msg),
            Kind::Change { create: true },
        )?;
        Ok(())
    }

    /// Creates a bridge with a fixed MAC (so it does not follow its ports' addresses).
    pub fn create_bridge(&mut self, name: &str, mtu: u32, mac: [u8; 6]) -> Result<(), Error> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        if mtu > 0 {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            "create bridge",
            RouteNetlinkMessage::NewLink(msg),
            Kind::Change { create: true },
        )?;
        Ok(())
    }

    /// Asks the kernel to make `master` the controller of `index` (RTM_SETLINK, IFLA_MASTER).
    /// Old kernels acknowledge this and do nothing; read the link back to know.
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<(), Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Controller(master));
        self.request(
            "set master",
            RouteNetlinkMessage::SetLink(msg),
            Kind::Change { create: false },
        )?;
        Ok(())
    }

    /// Deletes a link by index.
    pub fn delete_link(&mut self, index: u32) -> Result<(), Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(
            "delete link",
            RouteNetlinkMessage::DelLink(msg),
            Kind::Change { create: false },
        )?;
        Ok(())
    }

    /// Adds `cidr` to link `index` (with the IPv4 broadcast address; IPv6 without DAD).
    pub fn add_address(&mut self, index: u32, cidr: Cidr) -> Result<(), Error> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(cidr.addr);
        msg.header.prefix_len = cidr.prefix;
        msg.header.scope = AddressScope::Universe;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(cidr.addr));
        msg.attributes.push(AddressAttribute::Address(cidr.addr));
        match cidr.broadcast() {
            Some(b) if cidr.prefix < 31 => msg.attributes.push(AddressAttribute::Broadcast(b)),
            Some(_) => {}
            None => {
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        self.request(
            "add address",
            RouteNetlinkMessage::NewAddress(msg),
            Kind::Change { create: true },
        )?;
        Ok(())
    }

    /// Adds the default route via `gateway` on link `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: IpAddr) -> Result<(), Error> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(gateway);
        msg.header.destination_prefix_length = 0;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request(
            "add default route",
            RouteNetlinkMessage::NewRoute(msg),
            Kind::Change { create: true },
        )?;
        Ok(())
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Brings up `lo` in the current network namespace (index 1 in every namespace).
pub fn loopback_up() -> Result<(), Error> {
    Netlink::open()?.set_up(1, true)
}

// ---------------------------------------------------------------------------------------------
// The shim's side: before and after clone

/// One veth to make, resolved before clone.
#[derive(Debug, Clone)]
struct VethPlan {
    bridge: String,
    bridge_index: u32,
    prefix: String,
    /// The peer's name inside the container.
    peer: String,
    mtu: u32,
    mac: [u8; 6],
    address: Cidr,
    gateway: Option<IpAddr>,
}

/// What the shim makes on the host side, worked out before the init exists.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    veths: Vec<VethPlan>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.veths.is_empty()
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Resolves each veth's bridge (it must exist and be a bridge), the MTU (the bridge's when the
/// config gives none) and the MAC (generated when none is given). Runs in the shim before the
/// clone, so a missing bridge fails the create before anything is made.
pub fn plan(config: &Config) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    let mut nl: Option<Netlink> = None;
    for (n, (i, net)) in veths(config).enumerate() {
        let field = format!("networks[{i}]");
        let bridge = net.context.get(CONTEXT_BRIDGE).cloned().unwrap_or_default();
        check_ifname(&bridge).map_err(|r| invalid(&format!("{field}.context.bridge"), r))?;
        let nl = match &mut nl {
            Some(nl) => nl,
            None => nl.insert(Netlink::open()?),
        };
        let link = nl.link_by_name(&bridge)?.ok_or_else(|| Error::NoBridge {
            field: format!("{field}.context.bridge"),
            name: bridge.clone(),
        })?;
        if !link.is_bridge {
            return Err(Error::NotABridge {
                field: format!("{field}.context.bridge"),
                name: bridge,
            });
        }
        let prefix = net
            .context
            .get(CONTEXT_PREFIX)
            .cloned()
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        let mac = if net.mac_address.is_empty() {
            random_mac()
        } else {
            parse_mac(&net.mac_address).map_err(|r| invalid(&format!("{field}.mac_address"), r))?
        };
        let address =
            Cidr::parse(&net.address).map_err(|r| invalid(&format!("{field}.address"), r))?;
        let gateway = if net.gateway.is_empty() {
            None
        } else {
            Some(
                net.gateway
                    .parse()
                    .map_err(|_| invalid(&format!("{field}.gateway"), "not an IP address"))?,
            )
        };
        plan.veths.push(VethPlan {
            bridge,
            bridge_index: link.index,
            prefix,
            peer: peer_name(n),
            mtu: if net.mtu > 0 { net.mtu } else { link.mtu },
            mac,
            address,
            gateway,
        });
    }
    Ok(plan)
}

/// A host end the shim made: what `network.json` in the state directory records, and what
/// is removed when the container ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLink {
    /// The host end's name, `<prefix><hex>`.
    pub name: String,
    /// Its interface index in the shim's namespace.
    pub index: u32,
    /// The peer's name inside the container (eth0, ...).
    pub peer: String,
    pub bridge: String,
    pub mac_address: String,
    /// CIDR.
    pub address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    pub mtu: u32,
    /// How it was attached to the bridge: "netlink" or "ioctl".
    pub attach: String,
}

/// Whether the environment asks for the ioctl attach path.
pub fn force_ioctl_from_env() -> bool {
    std::env::var(FORCE_IOCTL_ENV).is_ok_and(|v| v == "1" || v == "true")
}

/// Runs in the shim (the host side) once the init exists: creates each veth pair with its peer
/// in the init's network namespace, attaches the host end to its bridge (verified; ioctl
/// fallback) and brings it up. On error, removes what it made.
pub fn setup_host(plan: &Plan, pid: i32, force_ioctl: bool) -> Result<Vec<HostLink>, Error> {
    if plan.veths.is_empty() {
        return Ok(Vec::new());
    }
    let mut nl = Netlink::open()?;
    let mut made = Vec::new();
    for v in &plan.veths {
        match setup_veth(&mut nl, v, pid, force_ioctl, &mut made) {
            Ok(()) => {}
            Err(e) => {
                remove_host_links_with(&mut nl, &made);
                return Err(e);
            }
        }
    }
    Ok(made)
}

fn setup_veth(
    nl: &mut Netlink,
    v: &VethPlan,
    pid: i32,
    force_ioctl: bool,
    made: &mut Vec<HostLink>,
) -> Result<(), Error> {
    let mut attempts = 0;
    let name = loop {
        let name = host_link_name(&v.prefix);
        match nl.create_veth(&name, &v.peer, v.mtu, v.mac, pid as u32) {
            Ok(()) => break name,
            Err(e) if e.errno() == Some(libc::EEXIST) && attempts < 16 => attempts += 1,
            Err(e) if e.errno() == Some(libc::EEXIST) => {
                return Err(Error::NoFreeName(v.prefix.clone()))
            }
            Err(e) => return Err(e),
        }
    };
    let link = nl
        .link_by_name(&name)?
        .ok_or_else(|| Error::NoLink(name.clone()))?;
    made.push(HostLink {
        name: name.clone(),
        index: link.index,
        peer: v.peer.clone(),
        bridge: v.bridge.clone(),
        mac_address: format_mac(&v.mac),
        address: v.address.to_string(),
        gateway: v.gateway.map(|g| g.to_string()).unwrap_or_default(),
        mtu: v.mtu,
        attach: String::new(),
    });
    let how = attach_to_bridge(nl, &link, &v.bridge, v.bridge_index, force_ioctl)?;
    if let Some(last) = made.last_mut() {
        last.attach = how.to_owned();
    }
    nl.set_up(link.index, true)?;
    Ok(())
}

/// Attaches `link` to the bridge: IFLA_MASTER over netlink, then reads the link back; where
/// the kernel acknowledged the request without setting the master (RHEL 6) it falls back to
/// the SIOCBRADDIF ioctl and checks again. With `force_ioctl` the netlink request is not sent,
/// as if the kernel had ignored it, so the same check leads to the fallback. Returns the way
/// that worked: "netlink" or "ioctl".
pub fn attach_to_bridge(
    nl: &mut Netlink,
    link: &Link,
    bridge: &str,
    bridge_index: u32,
    force_ioctl: bool,
) -> Result<&'static str, Error> {
    let master_of = |nl: &mut Netlink| -> Result<Option<u32>, Error> {
        Ok(nl
            .link_by_index(link.index)?
            .ok_or_else(|| Error::NoLink(link.name.clone()))?
            .master)
    };
    if !force_ioctl {
        nl.set_master(link.index, bridge_index)?;
    }
    if master_of(nl)? == Some(bridge_index) {
        return Ok("netlink");
    }
    crate::sys::bridge_add_interface(bridge, link.index).map_err(|e| Error::Attach {
        link: link.name.clone(),
        bridge: bridge.to_owned(),
        reason: format!("SIOCBRADDIF: {e}"),
    })?;
    match master_of(nl)? {
        Some(m) if m == bridge_index => Ok("ioctl"),
        other => Err(Error::Attach {
            link: link.name.clone(),
            bridge: bridge.to_owned(),
            reason: format!(
                "the kernel accepted the request but the link's master is {other:?}, not {bridge_index}"
            ),
        }),
    }
}

/// Deletes the host ends that still exist (checked by index and name, so a reused index is
/// never touched). Best effort: a link the kernel already removed with its namespace is fine.
pub fn remove_host_links(links: &[HostLink]) {
    if links.is_empty() {
        return;
    }
    if let Ok(mut nl) = Netlink::open() {
        remove_host_links_with(&mut nl, links);
    }
}

fn remove_host_links_with(nl: &mut Netlink, links: &[HostLink]) {
    for l in links {
        if let Ok(Some(link)) = nl.link_by_index(l.index) {
            if link.name == l.name {
                let _ = nl.delete_link(l.index);
            }
        }
    }
}

/// Reads `network.json` (a list of [`HostLink`]) from a state directory; empty without one.
pub fn load_host_links(dir: &Path) -> Vec<HostLink> {
    std::fs::read(dir.join(crate::state::NETWORK))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

/// Writes `network.json` to a state directory.
pub fn save_host_links(dir: &Path, links: &[HostLink]) -> io::Result<()> {
    let data = serde_json::to_vec_pretty(links).map_err(io::Error::other)?;
    crate::state::write_atomic(dir, crate::state::NETWORK, &data, false)
}

/// For the `netns` strategy: opens the namespace file (before clone, so a wrong path fails the
/// create cleanly) and checks that it is a network namespace.
pub fn open_netns(config: &Config) -> Result<Option<File>, Error> {
    let Some((i, path)) = netns_path(config) else {
        return Ok(None);
    };
    let field = format!("networks[{i}].context.{CONTEXT_NSPATH}");
    let err = |reason: String| Error::Netns {
        field: field.clone(),
        path: PathBuf::from(path),
        reason,
    };
    let file = File::open(path).map_err(|e| err(e.to_string()))?;
    match crate::sys::namespace_type(&file) {
        Ok(t) if t == libc::CLONE_NEWNET => Ok(Some(file)),
        Ok(_) => Err(err("is a namespace, but not a network namespace".into())),
        Err(_) => Err(err("is not a network namespace".into())),
    }
}

/// Joins the network namespace opened by [`open_netns`] (in the init).
pub fn join_netns(file: &File) -> Result<(), Error> {
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| Error::Request {
        op: "setns",
        source: io::Error::from(e),
    })
}

/// Runs in the container's init after the shim made the host side: `lo` up and each veth's
/// peer configured (address, up, default route). Nothing for a joined or the host's namespace.
pub fn setup_container(config: &Config) -> Result<(), Error> {
    if !config.has_namespace(Namespace::Net) || netns_path(config).is_some() {
        return Ok(());
    }
    let mut nl = Netlink::open()?;
    nl.set_up(1, true)?;
    for (n, (i, net)) in veths(config).enumerate() {
        let name = peer_name(n);
        let link = nl
            .link_by_name(&name)?
            .ok_or_else(|| Error::NoLink(name.clone()))?;
        let address =
            Cidr::parse(&net.address).map_err(|r| invalid(&format!("networks[{i}].address"), r))?;
        nl.add_address(link.index, address)?;
        nl.set_up(link.index, true)?;
        if !net.gateway.is_empty() {
            let gw: IpAddr = net
                .gateway
                .parse()
                .map_err(|_| invalid(&format!("networks[{i}].gateway"), "not an IP address"))?;
            nl.add_default_route(link.index, gw)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The driver's bridge

/// Makes sure bridge `name` exists (created with a fixed locally administered MAC and `mtu`,
/// 0 for the kernel's default, when missing), has the address `gateway` (its prefix is the
/// containers' subnet) and is up. Returns its index. A link of that name that is not a bridge
/// is an error.
pub fn ensure_bridge(name: &str, gateway: Cidr, mtu: u32) -> Result<u32, Error> {
    check_ifname(name).map_err(|r| invalid("bridge", r))?;
    let mut nl = Netlink::open()?;
    let link = match nl.link_by_name(name)? {
        Some(l) => l,
        None => {
            match nl.create_bridge(name, mtu, random_mac()) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::EEXIST) => {} // made meanwhile
                Err(e) => return Err(e),
            }
            nl.link_by_name(name)?
                .ok_or_else(|| Error::NoLink(name.to_owned()))?
        }
    };
    if !link.is_bridge {
        return Err(Error::NotABridge {
            field: "bridge".into(),
            name: name.to_owned(),
        });
    }
    match nl.add_address(link.index, gateway) {
        Ok(()) => {}
        Err(e) if e.errno() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e),
    }
    nl.set_up(link.index, true)?;
    Ok(link.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_and_arithmetic() {
        let c = Cidr::parse("10.88.3.7/16").unwrap();
        assert_eq!(c.to_string(), "10.88.3.7/16");
        assert_eq!(c.network(), "10.88.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(c.broadcast(), Some("10.88.255.255".parse().unwrap()));
        assert!(c.contains("10.88.200.1".parse().unwrap()));
        assert!(!c.contains("10.89.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let z = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(z.contains("1.2.3.4".parse().unwrap()));
        let v6 = Cidr::parse("fd00:1::5/64").unwrap();
        assert!(v6.contains("fd00:1::ffff".parse().unwrap()));
        assert!(!v6.contains("fd00:2::1".parse().unwrap()));
        assert_eq!(v6.broadcast(), None);
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0/8",
            "x/8",
            "10.0.0.1/",
            "::/129",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert_eq!(
            format_mac(&[2, 0x42, 0xac, 0x11, 0, 2]),
            "02:42:ac:11:00:02"
        );
        for bad in [
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "02:42:ac:11:00",
            "02:42:ac:11:00:2",
            "zz:42:ac:11:00:02",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        for _ in 0..32 {
            let m = random_mac();
            assert_eq!(m[0] & 0x01, 0, "unicast");
            assert_eq!(m[0] & 0x02, 0x02, "locally administered");
        }
    }

    #[test]
    fn host_names_fit_ifnamsiz() {
        for prefix in ["veth", "", "x", "abcdefghijk"] {
            let n = host_link_name(prefix);
            assert!(n.len() <= IFNAME_MAX, "{n}");
            assert!(n.starts_with(prefix));
            assert!(n.len() >= prefix.len() + 4, "{n}");
            check_ifname(&n).unwrap();
        }
        assert_ne!(host_link_name("veth"), host_link_name("veth"));
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a b").is_err());
        assert!(check_ifname(&"x".repeat(16)).is_err());
        assert!(check_ifname("").is_err());
    }
}
