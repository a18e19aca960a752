//! Container networking over rtnetlink (a small synchronous client: the shim has no runtime).

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

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
}

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
                Kind::Change { create: false } => NLM_F_ACK,
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
            if kind != Kind::Dump && out.is_empty() {
                continue;
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
}

/// Brings up `lo` in the current network namespace (index 1 in every namespace).
pub fn loopback_up() -> Result<(), Error> {
    Netlink::open()?.set_up(1, true)
}
