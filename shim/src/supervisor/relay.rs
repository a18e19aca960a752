//! The processes' stdio: reading their output into their logs and the attached clients,
//! pausing that while a client is backed up past [`HIGH_WATER`], and writing the stdin clients
//! send, with the same back-pressure towards them.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use nix::sys::epoll::{EpollEvent, EpollFlags};

use crate::log;
use crate::protocol::{self, Stream};

use super::clients::Mode;
use super::{proc_token, sys_err, Error, Shim, HIGH_WATER};

/// Bytes read from a process's output at once.
pub(super) const READ_SIZE: usize = 256 * 1024;

/// Queued stdin bytes above which the shim stops reading stdin from clients.
const STDIN_HIGH_WATER: usize = 4 << 20;

impl Shim {
    /// Watches a process's stdout and stderr (a terminal's master is its stdout).
    pub(super) fn register_proc(&mut self, slot: usize) -> Result<(), Error> {
        let Some(p) = self.procs.get(slot).and_then(|p| p.as_ref()) else {
            return Ok(());
        };
        for (f, which) in [(p.stdout.as_ref(), 0), (p.stderr.as_ref(), 1)] {
            if let Some(f) = f {
                self.epoll
                    .add(
                        f.as_fd(),
                        EpollEvent::new(EpollFlags::EPOLLIN, proc_token(slot, which)),
                    )
                    .map_err(sys_err("epoll_ctl"))?;
            }
        }
        Ok(())
    }

    pub(super) fn flush_logs(&mut self) {
        for p in self.procs.iter_mut().flatten() {
            if p.log_dirty {
                p.log_dirty = false;
                if let Err(e) = p.log.flush() {
                    log::error!("shim {}: writing the log: {e}", self.id);
                }
            }
        }
    }

    pub(super) fn on_output(&mut self, slot: usize, stream: Stream) {
        if !self.output_paused {
            self.read_output(slot, stream, 16);
        }
    }

    pub(super) fn read_output(&mut self, slot: usize, stream: Stream, max_reads: usize) {
        let mut buf = std::mem::take(&mut self.read_buf);
        self.read_output_into(slot, stream, max_reads, &mut buf);
        self.read_buf = buf;
    }

    fn read_output_into(&mut self, slot: usize, stream: Stream, max_reads: usize, buf: &mut [u8]) {
        for _ in 0..max_reads {
            let Some(p) = self.procs.get_mut(slot).and_then(|p| p.as_mut()) else {
                return;
            };
            let file = match stream {
                Stream::Stderr => p.stderr.as_mut(),
                _ => p.stdout.as_mut(),
            };
            let Some(file) = file else { return };
            match file.read(buf) {
                Ok(n) if n > 0 => {
                    self.forward(slot, stream, &buf[..n]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A terminal's master reads EIO once every slave is closed: the end, as EOF is.
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
                Err(_) => return, // EAGAIN: empty for now
            }
            let _ = p.log.flush_partial(stream);
            let f = match stream {
                Stream::Stderr => p.stderr.take(),
                _ => p.stdout.take(),
            };
            if let Some(f) = f {
                let _ = self.epoll.delete(f.as_fd());
            }
            return;
        }
    }

    fn forward(&mut self, slot: usize, stream: Stream, data: &[u8]) {
        let Some(p) = self.procs.get_mut(slot).and_then(|p| p.as_mut()) else {
            return;
        };
        if let Err(e) = p.log.write(stream, data) {
            log::error!("shim {}: writing the log: {e}", self.id);
        }
        p.log_dirty = true;
        let tokens: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| match c.mode {
                Mode::Attached {
                    slot: s,
                    stdout,
                    stderr,
                    ..
                } if s == slot => {
                    if stream == Stream::Stderr {
                        stderr
                    } else {
                        stdout
                    }
                }
                _ => false,
            })
            .map(|(t, _)| *t)
            .collect();
        let mut header = Vec::with_capacity(protocol::OUTPUT_HEADER_MAX);
        for t in tokens {
            if let Some(c) = self.clients.get_mut(&t) {
                if c.out.is_empty() {
                    // Nothing queued: the frame goes out from where the output is (one writev,
                    // no copy); only what the socket does not take now is queued.
                    header.clear();
                    protocol::append_output_header(&mut header, stream, data.len());
                    let sent = write_now(&c.stream, &header, data);
                    let (h, d) = (sent.min(header.len()), sent.saturating_sub(header.len()));
                    c.out.buf.extend_from_slice(&header[h..]);
                    c.out.buf.extend_from_slice(&data[d..]);
                } else {
                    protocol::append_output_frame(&mut c.out.buf, stream, data);
                }
            }
            self.flush_client(t);
        }
    }

    /// Stops reading output while a client is backed up; resumes after.
    pub(super) fn update_output_interest(&mut self) {
        let backed_up = self.clients.values().any(|c| c.out.len() > HIGH_WATER);
        if backed_up == self.output_paused {
            return;
        }
        self.output_paused = backed_up;
        let flags = if backed_up {
            EpollFlags::empty()
        } else {
            EpollFlags::EPOLLIN
        };
        for (slot, p) in self.procs.iter().enumerate() {
            let Some(p) = p else { continue };
            for (f, which) in [(p.stdout.as_ref(), 0), (p.stderr.as_ref(), 1)] {
                if let Some(f) = f {
                    let _ = self.epoll.modify(
                        f.as_fd(),
                        &mut EpollEvent::new(flags, proc_token(slot, which)),
                    );
                }
            }
        }
    }

    /// Writes a process's queued stdin; closes its stdin when asked and drained.
    pub(super) fn flush_stdin(&mut self, slot: usize) {
        let Some(p) = self.procs.get_mut(slot).and_then(|p| p.as_mut()) else {
            return;
        };
        let Some(file) = p.stdin.as_mut() else {
            p.stdin_buf.clear();
            return;
        };
        let mut written = 0;
        let mut broken = false;
        while written < p.stdin_buf.len() {
            match file.write(&p.stdin_buf[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    broken = true; // EPIPE: nobody reads stdin any more
                    break;
                }
            }
        }
        p.stdin_buf.drain(..written);
        let want_out = !broken && !p.stdin_buf.is_empty();
        if want_out != p.stdin_registered {
            let r = if want_out {
                self.epoll.add(
                    file.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLOUT, proc_token(slot, 2)),
                )
            } else {
                self.epoll.delete(file.as_fd())
            };
            if r.is_ok() {
                p.stdin_registered = want_out;
            }
        }
        if broken || (p.stdin_close && p.stdin_buf.is_empty()) {
            if p.stdin_registered {
                if let Some(f) = &p.stdin {
                    let _ = self.epoll.delete(f.as_fd());
                }
                p.stdin_registered = false;
            }
            p.stdin = None;
            p.stdin_buf.clear();
        }
        // Back-pressure: stop reading stdin frames while the pipe is backed up.
        let reading = p.stdin_buf.len() < STDIN_HIGH_WATER;
        let tokens: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                matches!(c.mode, Mode::Attached { slot: s, stdin: true, .. } if s == slot)
                    && c.reading != reading
            })
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            if let Some(c) = self.clients.get_mut(&t) {
                c.reading = reading;
            }
            self.flush_client(t);
            if reading {
                self.read_client(t);
            }
        }
    }
}

/// Writes `header` then `data` to a non-blocking socket with one writev, as much as it takes
/// now; returns how many bytes went (0 when it would block or failed: the caller queues the
/// rest, and the next flush sees the failure).
fn write_now(stream: &std::os::unix::net::UnixStream, header: &[u8], data: &[u8]) -> usize {
    use std::io::{IoSlice, Write};
    let mut s = stream;
    loop {
        match s.write_vectored(&[IoSlice::new(header), IoSlice::new(data)]) {
            Ok(n) => return n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return 0,
        }
    }
}
