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

use std::fs::File;
use std::io;
use std::net::IpAddr;
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

use crate::config::Config;
use crate::namespaces::Namespace;
use crate::protocol::ErrorCode;
pub use execdriver_spec::network::*;

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
    #[error("reading random bytes: {0}")]
    Random(#[source] io::Error),
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
    for (n, (i, net)) in config.veths().enumerate() {
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
            random_mac().map_err(Error::Random)?
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
        let name = host_link_name(&v.prefix).map_err(Error::Random)?;
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
    let Some((i, path)) = config.netns_path() else {
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
    if !config.has_namespace(Namespace::Net) || config.netns_path().is_some() {
        return Ok(());
    }
    let mut nl = Netlink::open()?;
    nl.set_up(1, true)?;
    for (n, (i, net)) in config.veths().enumerate() {
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
            match nl.create_bridge(name, mtu, random_mac().map_err(Error::Random)?) {
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
