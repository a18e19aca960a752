//! The driver <-> shim protocol: the messages generated from
//! `proto/execdriver/shim/v1/shim.proto` (its comments say what each one means), the helpers
//! built on them, and the one framing codec ([`codec`]) both sides use.

pub mod codec;

pub use codec::{
    append_output_frame, append_output_header, decode_body, encode_frame, frame_len, read_frame,
    write_frame, FrameDecoder, MAX_FRAME, OUTPUT_HEADER_MAX,
};

#[allow(clippy::all, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/execdriver.shim.v1.rs"));
}

pub use generated::*;

impl Target {
    /// The container's init.
    pub fn init() -> Target {
        Target {
            exec_id: String::new(),
        }
    }
}

impl Request {
    pub fn new(kind: request::Kind) -> Request {
        Request { kind: Some(kind) }
    }
}

impl Response {
    pub fn ok() -> Response {
        Response {
            kind: Some(response::Kind::Ok(Empty {})),
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response::exec_error(code, ExecFailure::Unspecified, message)
    }

    /// An error that may be a process's command not found or not runnable (`exec_failure`).
    pub fn exec_error(
        code: ErrorCode,
        exec_failure: ExecFailure,
        message: impl Into<String>,
    ) -> Response {
        Response {
            kind: Some(response::Kind::Error(ErrorReply {
                code: code as i32,
                message: message.into(),
                exec_failure: exec_failure as i32,
            })),
        }
    }
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

impl Status {
    /// The name users see, from the generated one: "created", "running", "paused", "stopped"
    /// ("unknown" for Unspecified).
    pub fn name(self) -> String {
        match self {
            Status::Unspecified => "unknown".into(),
            s => enum_word(s.as_str_name(), "STATUS_"),
        }
    }
}

/// A generated enum value's name without its prefix, in lower case: `STATUS_RUNNING` ->
/// `running`.
pub fn enum_word(proto_name: &str, prefix: &str) -> String {
    proto_name
        .strip_prefix(prefix)
        .unwrap_or(proto_name)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

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
}
