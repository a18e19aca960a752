//! The shim's records as API messages, for the driver, its event bus, the log reader and the
//! service alike: timestamps and exit statuses.

use execdriver_proto as pb;
use execdriver_shim::protocol;
use execdriver_shim::state::ExitRecord;

/// A timestamp as Unix nanoseconds (0 when unset).
pub fn timestamp_ns(ts: &Option<prost_types::Timestamp>) -> i64 {
    ts.as_ref()
        .map(|t| t.seconds.saturating_mul(1_000_000_000) + t.nanos as i64)
        .unwrap_or(0)
}

pub fn timestamp(ns: i64) -> Option<prost_types::Timestamp> {
    (ns > 0).then_some(prost_types::Timestamp {
        seconds: ns / 1_000_000_000,
        nanos: (ns % 1_000_000_000) as i32,
    })
}

pub fn exit_status(e: &protocol::Exit) -> pb::ExitStatus {
    let record = ExitRecord {
        pid: e.pid,
        exit_code: e.exit_code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        started_at: e.started_at,
        finished_at: e.finished_at,
        reason: e.reason.clone(),
    };
    pb::ExitStatus {
        exited: true,
        exit_code: e.exit_code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        finished_at: timestamp(e.finished_at),
        reason: e.reason.clone(),
        status_code: record.status_code(),
    }
}
