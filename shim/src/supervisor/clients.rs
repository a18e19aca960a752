//! Control connections: accepting them, reading and decoding their requests, and writing what
//! is queued for them; a client whose queue stays above [`HIGH_WATER`] for [`STALL_LIMIT`] is
//! disconnected.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use nix::sys::epoll::{EpollEvent, EpollFlags};

use crate::log;
use crate::protocol::{self, FrameDecoder, Request, Response};

use super::{Shim, HIGH_WATER, STALL_LIMIT};

/// Bytes queued for a client: appended at the end, written from `pos`.
#[derive(Default)]
pub(super) struct OutBuf {
    pub(super) buf: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Marks `n` bytes written; reclaims the front only when that is cheap relative to it.
    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 20) && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

pub(super) struct Client {
    pub(super) stream: UnixStream,
    pub(super) decoder: FrameDecoder,
    pub(super) out: OutBuf,
    pub(super) mode: Mode,
    /// When its queue went above HIGH_WATER.
    pub(super) over_since: Option<Instant>,
    /// Close once `out` is written.
    pub(super) closing: bool,
    /// Registered for EPOLLIN (false while stdin is backed up).
    pub(super) reading: bool,
}

/// What a client connection is for; `slot` names the process.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Idle,
    Waiting {
        slot: usize,
    },
    Attached {
        slot: usize,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Hears of every exit and OOM kill (`Subscribe`).
    Subscribed,
}

impl Mode {
    pub(super) fn slot(self) -> Option<usize> {
        match self {
            Mode::Idle | Mode::Subscribed => None,
            Mode::Waiting { slot } | Mode::Attached { slot, .. } => Some(slot),
        }
    }
}

impl Shim {
    pub(super) fn on_accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let token = self.next_token;
                    self.next_token += 1;
                    let ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, token);
                    if self.epoll.add(stream.as_fd(), ev).is_err() {
                        continue;
                    }
                    self.clients.insert(
                        token,
                        Client {
                            stream,
                            decoder: FrameDecoder::default(),
                            out: OutBuf::default(),
                            mode: Mode::Idle,
                            over_since: None,
                            closing: false,
                            reading: true,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("shim {}: accept: {e}", self.id);
                    break;
                }
            }
        }
    }

    pub(super) fn on_client(&mut self, token: u64, flags: EpollFlags) {
        if flags.contains(EpollFlags::EPOLLOUT) {
            self.flush_client(token);
        }
        if flags.intersects(
            EpollFlags::EPOLLIN
                | EpollFlags::EPOLLHUP
                | EpollFlags::EPOLLRDHUP
                | EpollFlags::EPOLLERR,
        ) {
            self.read_client(token);
        }
    }

    pub(super) fn read_client(&mut self, token: u64) {
        // Requests are small frames (stdin data comes in pieces of this size): a small
        // buffer keeps an idle shim's stack from being dirtied by every call.
        let mut buf = [0u8; 8 * 1024];
        let mut closed = false;
        {
            let Some(c) = self.clients.get_mut(&token) else {
                return;
            };
            if !c.reading {
                return;
            }
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        c.decoder.push(&buf[..n]);
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        loop {
            let next = match self.clients.get_mut(&token) {
                Some(c) => c.decoder.next_frame::<Request>(),
                None => return,
            };
            match next {
                Ok(Some(req)) => self.handle(token, req),
                Ok(None) => break,
                Err(e) => {
                    log::warn!("shim {}: bad frame from a client: {e}", self.id);
                    self.drop_client(token);
                    return;
                }
            }
        }
        if closed {
            self.drop_client(token);
        }
    }

    pub(super) fn reply(&mut self, token: u64, resp: Response) {
        if let Some(c) = self.clients.get_mut(&token) {
            c.out.extend_from_slice(&protocol::encode_frame(&resp));
        }
        self.flush_client(token);
    }

    /// Writes as much of a client's queue as it takes; drops it on error or once it is done.
    pub(super) fn flush_client(&mut self, token: u64) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        let mut written = 0;
        let mut failed = false;
        while written < c.out.len() {
            match c.stream.write(&c.out.pending()[written..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        c.out.consume(written);
        if failed || (c.closing && c.out.is_empty()) {
            self.drop_client(token);
            return;
        }
        if c.out.len() > HIGH_WATER {
            c.over_since.get_or_insert_with(Instant::now);
        } else {
            c.over_since = None;
        }
        let mut flags = EpollFlags::EPOLLRDHUP;
        if c.reading {
            flags |= EpollFlags::EPOLLIN;
        }
        if !c.out.is_empty() {
            flags |= EpollFlags::EPOLLOUT;
        }
        let _ = self
            .epoll
            .modify(c.stream.as_fd(), &mut EpollEvent::new(flags, token));
    }

    fn drop_client(&mut self, token: u64) {
        if let Some(c) = self.clients.remove(&token) {
            let _ = self.epoll.delete(c.stream.as_fd());
        }
    }

    pub(super) fn check_stalled(&mut self) {
        let now = Instant::now();
        let stalled: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                c.over_since
                    .is_some_and(|t| now.duration_since(t) > STALL_LIMIT)
            })
            .map(|(t, _)| *t)
            .collect();
        for t in stalled {
            log::warn!(
                "shim {}: disconnecting a client that read nothing for {STALL_LIMIT:?}",
                self.id
            );
            self.drop_client(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_buffer_consumes_without_quadratic_copies() {
        let mut b = OutBuf::default();
        b.extend_from_slice(&[1, 2, 3, 4]);
        b.consume(1);
        assert_eq!(b.pending(), &[2, 3, 4]);
        b.extend_from_slice(&[5]);
        b.consume(4);
        assert!(b.is_empty());
        assert_eq!(b.buf.len(), 0, "fully written buffers are reset");
    }
}
