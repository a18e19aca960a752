//! The driver <-> shim protocol: length-prefixed protobuf messages on the shim's unix socket.
//!
//! Each frame is a little-endian `u32` length followed by that many bytes of an encoded
//! [`Request`] (driver to shim) or [`Response`] (shim to driver). A connection carries one
//! request and its reply, except `Wait` (the reply comes when the process ends) and `Attach`
//! (after it, the connection is a stream: `Output` frames then one `Exit` from the shim;
//! `Stdin`, `CloseStdin` and `Resize` frames from the driver).
//!
//! Oneof tags 20 to 29 belong to cgroups (Pause, Resume, Stats, Update, Pids); 30 to 39 to
//! events (`Subscribe`: after the `Ok` reply the connection carries `Event` frames from the
//! shim, one per exit of any of the container's processes and per OOM kill, until the shim
//! exits; an init that has already ended is reported at once).
//!
//! The same `Response` (a `State` or an `Error`) is what a new shim writes once on its stdout to
//! tell the driver whether the container was created.

use std::io::{self, Read, Write};

use prost::Message;

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 8 << 20;

#[derive(Clone, PartialEq, Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, Message)]
pub struct Request {
    #[prost(
        oneof = "request::Kind",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 20, 21, 22, 23, 24, 30"
    )]
    pub kind: Option<request::Kind>,
}

pub mod request {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// Let the created init exec its command.
        #[prost(message, tag = "1")]
        Start(Target),
        #[prost(message, tag = "2")]
        State(Target),
        /// Reply with `Exit` once the init has ended (at once if it has).
        #[prost(message, tag = "3")]
        Wait(Target),
        #[prost(message, tag = "4")]
        Kill(Kill),
        /// Turn this connection into a stdio stream.
        #[prost(message, tag = "5")]
        Attach(Attach),
        #[prost(bytes, tag = "6")]
        Stdin(Vec<u8>),
        #[prost(message, tag = "7")]
        CloseStdin(Target),
        #[prost(message, tag = "8")]
        Resize(Resize),
        /// Remove what the shim made (cgroups) and exit. Refused while the init runs.
        #[prost(message, tag = "9")]
        Shutdown(Empty),
        /// Close and reopen the log file (after an external tool moved it).
        #[prost(message, tag = "10")]
        ReopenLog(Empty),
        /// Create a process in the running container (started by a Start naming its exec id).
        #[prost(message, tag = "11")]
        Exec(ExecSpec),
        /// Drop the record of an ended exec'd process.
        #[prost(message, tag = "12")]
        Forget(Target),
        /// Freeze every process of a running container; the status becomes Paused.
        #[prost(message, tag = "20")]
        Pause(Empty),
        /// Thaw a paused container.
        #[prost(message, tag = "21")]
        Resume(Empty),
        /// Reply with `Stats`: one sample of the container's resource use.
        #[prost(message, tag = "22")]
        Stats(Empty),
        /// Change limits (0 fields stay as they are); reply with `Resources`, the limits in
        /// force afterwards.
        #[prost(message, tag = "23")]
        Update(Resources),
        /// Reply with `Pids`: every process of the container.
        #[prost(message, tag = "24")]
        Pids(Empty),
        /// Turn this connection into an event stream: `Ok`, then an `Event` for every exit of a
        /// process of the container and every OOM kill, until the shim exits.
        #[prost(message, tag = "30")]
        Subscribe(Empty),
    }
}

/// Which process of the container: the init (an empty exec id) or an exec'd one. On the wire
/// a Target for the init is the same as `Empty`.
#[derive(Clone, PartialEq, Message)]
pub struct Target {
    #[prost(string, tag = "1")]
    pub exec_id: String,
}

impl Target {
    pub fn init() -> Target {
        Target {
            exec_id: String::new(),
        }
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct Kill {
    #[prost(int32, tag = "1")]
    pub signal: i32,
    /// Signal every process of the container, not only its init.
    #[prost(bool, tag = "2")]
    pub all: bool,
    #[prost(string, tag = "3")]
    pub exec_id: String,
}

/// A process to run in the running container.
#[derive(Clone, PartialEq, Message)]
pub struct ExecSpec {
    #[prost(string, tag = "1")]
    pub exec_id: String,
    #[prost(string, repeated, tag = "2")]
    pub args: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    pub env: Vec<String>,
    #[prost(string, tag = "4")]
    pub cwd: String,
    /// "uid[:gid]"
    #[prost(string, tag = "5")]
    pub user: String,
    #[prost(bool, tag = "6")]
    pub tty: bool,
    /// Give it a stdin pipe that attached clients write to.
    #[prost(bool, tag = "7")]
    pub stdin: bool,
    #[prost(uint32, tag = "8")]
    pub rows: u32,
    #[prost(uint32, tag = "9")]
    pub cols: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct Attach {
    #[prost(bool, tag = "1")]
    pub stdin: bool,
    #[prost(bool, tag = "2")]
    pub stdout: bool,
    #[prost(bool, tag = "3")]
    pub stderr: bool,
    #[prost(string, tag = "4")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Resize {
    #[prost(uint32, tag = "1")]
    pub rows: u32,
    #[prost(uint32, tag = "2")]
    pub cols: u32,
    #[prost(string, tag = "3")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(oneof = "response::Kind", tags = "1, 2, 3, 4, 5, 20, 21, 22, 30")]
    pub kind: Option<response::Kind>,
}

pub mod response {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        Ok(Empty),
        #[prost(message, tag = "2")]
        Error(ErrorReply),
        #[prost(message, tag = "3")]
        State(ShimState),
        #[prost(message, tag = "4")]
        Exit(Exit),
        #[prost(message, tag = "5")]
        Output(Output),
        #[prost(message, tag = "20")]
        Stats(crate::cgroups::stats::Stats),
        #[prost(message, tag = "21")]
        Pids(Pids),
        #[prost(message, tag = "22")]
        Resources(Resources),
        /// On a `Subscribe` connection: something happened.
        #[prost(message, tag = "30")]
        Event(ShimEvent),
    }
}

/// What a subscriber hears of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EventKind {
    Unspecified = 0,
    /// A process ended: the init (empty exec id) or an exec'd one; `exit` says how.
    Exit = 1,
    /// The kernel's OOM killer ended a process of the container.
    Oom = 2,
}

/// One event pushed on a `Subscribe` connection.
#[derive(Clone, PartialEq, Message)]
pub struct ShimEvent {
    #[prost(enumeration = "EventKind", tag = "1")]
    pub kind: i32,
    /// The exec'd process an `Exit` is about; empty for the init.
    #[prost(string, tag = "2")]
    pub exec_id: String,
    /// How it ended (`Exit`).
    #[prost(message, optional, tag = "3")]
    pub exit: Option<Exit>,
    /// Unix nanoseconds when the shim saw it.
    #[prost(int64, tag = "4")]
    pub time: i64,
    /// `Oom`: OOM kills in the container so far.
    #[prost(uint64, tag = "5")]
    pub oom_kills: u64,
}

/// The limits a live update may change, with container.json's names and meanings (0: not set /
/// unchanged; -1: unlimited where allowed).
#[derive(Clone, PartialEq, Message)]
pub struct Resources {
    #[prost(int64, tag = "1")]
    pub memory: i64,
    #[prost(int64, tag = "2")]
    pub memory_reservation: i64,
    #[prost(int64, tag = "3")]
    pub memory_swap: i64,
    #[prost(int64, tag = "4")]
    pub cpu_shares: i64,
    #[prost(int64, tag = "5")]
    pub cpu_quota: i64,
    #[prost(int64, tag = "6")]
    pub cpu_period: i64,
    #[prost(string, tag = "7")]
    pub cpuset_cpus: String,
    #[prost(string, tag = "8")]
    pub cpuset_mems: String,
    #[prost(int64, tag = "9")]
    pub blkio_weight: i64,
    #[prost(int64, tag = "10")]
    pub pids_limit: i64,
}

impl Resources {
    /// The limits of a `cgroups` section.
    pub fn of(cg: &crate::config::Cgroups) -> Resources {
        Resources {
            memory: cg.memory,
            memory_reservation: cg.memory_reservation,
            memory_swap: cg.memory_swap,
            cpu_shares: cg.cpu_shares,
            cpu_quota: cg.cpu_quota,
            cpu_period: cg.cpu_period,
            cpuset_cpus: cg.cpuset_cpus.clone(),
            cpuset_mems: cg.cpuset_mems.clone(),
            blkio_weight: cg.blkio_weight,
            pids_limit: cg.pids_limit,
        }
    }

    /// `cg` with every set (non-zero, non-empty) field of `self` put in.
    pub fn merged_into(&self, cg: &crate::config::Cgroups) -> crate::config::Cgroups {
        let mut out = cg.clone();
        let set = |dst: &mut i64, v: i64| {
            if v != 0 {
                *dst = v;
            }
        };
        set(&mut out.memory, self.memory);
        set(&mut out.memory_reservation, self.memory_reservation);
        set(&mut out.memory_swap, self.memory_swap);
        set(&mut out.cpu_shares, self.cpu_shares);
        set(&mut out.cpu_quota, self.cpu_quota);
        set(&mut out.cpu_period, self.cpu_period);
        set(&mut out.blkio_weight, self.blkio_weight);
        set(&mut out.pids_limit, self.pids_limit);
        if !self.cpuset_cpus.is_empty() {
            out.cpuset_cpus = self.cpuset_cpus.clone();
        }
        if !self.cpuset_mems.is_empty() {
            out.cpuset_mems = self.cpuset_mems.clone();
        }
        out
    }
}

/// Every process of a container.
#[derive(Clone, PartialEq, Message)]
pub struct Pids {
    /// As the host sees them, ascending.
    #[prost(int32, repeated, tag = "1")]
    pub pids: Vec<i32>,
    /// The same processes as the container's pid namespace sees them (same order; 0 unknown).
    #[prost(int32, repeated, tag = "2")]
    pub container_pids: Vec<i32>,
}

/// What kind of failure an error is; the driver maps it to a gRPC code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ErrorCode {
    Unspecified = 0,
    InvalidArgument = 1,
    NotFound = 2,
    FailedPrecondition = 3,
    Internal = 4,
}

#[derive(Clone, PartialEq, Message)]
pub struct ErrorReply {
    #[prost(enumeration = "ErrorCode", tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Status {
    Unspecified = 0,
    Created = 1,
    Running = 2,
    Paused = 3,
    Stopped = 4,
}

#[derive(Clone, PartialEq, Message)]
pub struct ShimState {
    #[prost(enumeration = "Status", tag = "1")]
    pub status: i32,
    /// The init's pid as the host sees it.
    #[prost(int32, tag = "2")]
    pub pid: i32,
    /// Unix nanoseconds; 0 until started.
    #[prost(int64, tag = "3")]
    pub started_at: i64,
    /// Set once stopped.
    #[prost(message, optional, tag = "4")]
    pub exit: Option<Exit>,
    #[prost(int32, tag = "5")]
    pub shim_pid: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct Exit {
    #[prost(int32, optional, tag = "1")]
    pub exit_code: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    pub signal: Option<i32>,
    #[prost(bool, tag = "3")]
    pub oom_killed: bool,
    #[prost(int64, tag = "4")]
    pub started_at: i64,
    #[prost(int64, tag = "5")]
    pub finished_at: i64,
    #[prost(string, tag = "6")]
    pub reason: String,
    #[prost(int32, tag = "7")]
    pub pid: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Stream {
    Unspecified = 0,
    Stdout = 1,
    Stderr = 2,
}

#[derive(Clone, PartialEq, Message)]
pub struct Output {
    #[prost(enumeration = "Stream", tag = "1")]
    pub stream: i32,
    #[prost(bytes = "bytes", tag = "2")]
    pub data: bytes::Bytes,
}

impl From<&crate::state::ExitRecord> for Exit {
    fn from(r: &crate::state::ExitRecord) -> Exit {
        Exit {
            exit_code: r.exit_code,
            signal: r.signal,
            oom_killed: r.oom_killed,
            started_at: r.started_at,
            finished_at: r.finished_at,
            reason: r.reason.clone(),
            pid: r.pid,
        }
    }
}

impl Response {
    pub fn ok() -> Response {
        Response {
            kind: Some(response::Kind::Ok(Empty {})),
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response {
            kind: Some(response::Kind::Error(ErrorReply {
                code: code as i32,
                message: message.into(),
            })),
        }
    }
}

impl Request {
    pub fn new(kind: request::Kind) -> Request {
        Request { kind: Some(kind) }
    }
}

/// Encodes `msg` as one frame.
pub fn encode_frame(msg: &impl Message) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    // Encoding into a Vec cannot run out of room.
    msg.encode(&mut buf).expect("Vec grows as needed");
    buf
}

/// Appends one frame holding `Response { Output { stream, data } }` to `out`, encoded directly:
/// the output hot path, which copies `data` once (into `out`) and builds no message.
pub fn append_output_frame(out: &mut Vec<u8>, stream: Stream, data: &[u8]) {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
    let stream_value = stream as i32 as u64;
    let stream_len = if stream_value != 0 {
        1 + encoded_len_varint(stream_value)
    } else {
        0
    };
    let data_len = if data.is_empty() {
        0
    } else {
        1 + encoded_len_varint(data.len() as u64) + data.len()
    };
    let inner = stream_len + data_len;
    let outer = 1 + encoded_len_varint(inner as u64) + inner;
    out.reserve(4 + outer);
    out.extend_from_slice(&(outer as u32).to_le_bytes());
    encode_key(5, WireType::LengthDelimited, out); // Response.output
    encode_varint(inner as u64, out);
    if stream_value != 0 {
        encode_key(1, WireType::Varint, out); // Output.stream
        encode_varint(stream_value, out);
    }
    if !data.is_empty() {
        encode_key(2, WireType::LengthDelimited, out); // Output.data
        encode_varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }
}

/// Writes one frame to a blocking writer.
pub fn write_frame(w: &mut impl Write, msg: &impl Message) -> io::Result<()> {
    w.write_all(&encode_frame(msg))
}

/// Reads one frame from a blocking reader; `None` at a clean end of stream.
pub fn read_frame<M: Message + Default>(r: &mut impl Read) -> io::Result<Option<M>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    M::decode(buf.as_slice())
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Splits a byte stream read in pieces into frames.
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame<M: Message + Default>(&mut self) -> io::Result<Option<M>> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes"),
            ));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = M::decode(&self.buf[4..4 + len])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.buf.drain(..4 + len);
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let a = Request::new(request::Kind::Kill(Kill {
            signal: 9,
            all: true,
            exec_id: String::new(),
        }));
        let b = Request::new(request::Kind::Stdin(b"hello".to_vec()));
        let mut bytes = encode_frame(&a);
        bytes.extend(encode_frame(&b));
        let mut dec = FrameDecoder::default();
        let mut got = Vec::new();
        for chunk in bytes.chunks(3) {
            dec.push(chunk);
            while let Some(m) = dec.next_frame::<Request>().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![a.clone(), b]);
        let mut cursor = io::Cursor::new(encode_frame(&a));
        assert_eq!(read_frame::<Request>(&mut cursor).unwrap(), Some(a));
        assert_eq!(read_frame::<Request>(&mut cursor).unwrap(), None);
    }

    #[test]
    fn direct_output_frames_match_prost() {
        for (stream, data) in [
            (Stream::Stdout, vec![1u8, 2, 3]),
            (Stream::Stderr, vec![7u8; 300_000]),
            (Stream::Stdout, vec![]),
        ] {
            let mut direct = Vec::new();
            append_output_frame(&mut direct, stream, &data);
            let msg = Response {
                kind: Some(response::Kind::Output(Output {
                    stream: stream as i32,
                    data: data.clone().into(),
                })),
            };
            let mut dec = FrameDecoder::default();
            dec.push(&direct);
            assert_eq!(dec.next_frame::<Response>().unwrap(), Some(msg));
        }
    }

    #[test]
    fn update_merges_only_what_is_set() {
        let cg = crate::config::Cgroups {
            name: "x".into(),
            memory: 64 << 20,
            cpu_shares: 512,
            cpuset_cpus: "0".into(),
            ..Default::default()
        };
        let r = Resources {
            memory: 128 << 20,
            pids_limit: -1,
            ..Default::default()
        };
        let m = r.merged_into(&cg);
        assert_eq!(m.memory, 128 << 20);
        assert_eq!(m.pids_limit, -1);
        assert_eq!(m.cpu_shares, 512);
        assert_eq!(m.cpuset_cpus, "0");
        assert_eq!(Resources::of(&m).memory, 128 << 20);
        // The cgroups tags round-trip.
        let req = Request::new(request::Kind::Update(r.clone()));
        let mut cursor = io::Cursor::new(encode_frame(&req));
        assert_eq!(read_frame::<Request>(&mut cursor).unwrap(), Some(req));
    }

    #[test]
    fn event_tags_round_trip() {
        let req = Request::new(request::Kind::Subscribe(Empty {}));
        let mut cursor = io::Cursor::new(encode_frame(&req));
        assert_eq!(read_frame::<Request>(&mut cursor).unwrap(), Some(req));
        let ev = Response {
            kind: Some(response::Kind::Event(ShimEvent {
                kind: EventKind::Exit as i32,
                exec_id: "e1".into(),
                exit: Some(Exit {
                    exit_code: Some(3),
                    ..Default::default()
                }),
                time: 5,
                oom_kills: 0,
            })),
        };
        let mut cursor = io::Cursor::new(encode_frame(&ev));
        assert_eq!(read_frame::<Response>(&mut cursor).unwrap(), Some(ev));
    }

    #[test]
    fn oversized_frame_is_refused() {
        let mut dec = FrameDecoder::default();
        dec.push(&u32::MAX.to_le_bytes());
        assert!(dec.next_frame::<Request>().is_err());
    }
}
