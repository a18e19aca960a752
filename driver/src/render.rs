//! The shim's records as API messages, for the driver, its event bus, the log reader and the
//! service alike: timestamps, exit statuses, process states, status names and stats.

use execdriver_proto as pb;
use execdriver_spec::protocol::Stats;
use execdriver_spec::protocol::{self, ShimState, Status};
use execdriver_spec::state::ExitRecord;

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

/// The shim's stats as the API has them.
pub fn container_stats(id: &str, s: Stats) -> pb::ContainerStats {
    pb::ContainerStats {
        id: id.to_owned(),
        read_at: timestamp(s.read_at),
        cpu: s.cpu.map(|c| pb::CpuStats {
            usage_ns: c.usage_ns,
            user_ns: c.user_ns,
            system_ns: c.system_ns,
            periods: c.periods,
            throttled_periods: c.throttled_periods,
            throttled_ns: c.throttled_ns,
        }),
        memory: s.memory.map(|m| pb::MemoryStats {
            usage: m.usage,
            limit: m.limit,
            max_usage: m.max_usage,
            cache: m.cache,
            rss: m.rss,
            swap_usage: m.swap_usage,
            failcnt: m.failcnt,
            oom_kills: m.oom_kills,
        }),
        pids: s.pids.map(|p| pb::PidsStats {
            current: p.current,
            limit: p.limit,
        }),
        blkio: s.blkio.map(|b| pb::BlkioStats {
            read_bytes: b.read_bytes,
            write_bytes: b.write_bytes,
            devices: b
                .devices
                .into_iter()
                .map(|d| pb::BlkioDeviceStats {
                    major: d.major,
                    minor: d.minor,
                    read_bytes: d.read_bytes,
                    write_bytes: d.write_bytes,
                })
                .collect(),
        }),
        networks: s
            .networks
            .into_iter()
            .map(|n| pb::NetworkStats {
                name: n.name,
                rx_bytes: n.rx_bytes,
                rx_packets: n.rx_packets,
                rx_errors: n.rx_errors,
                rx_dropped: n.rx_dropped,
                tx_bytes: n.tx_bytes,
                tx_packets: n.tx_packets,
                tx_errors: n.tx_errors,
                tx_dropped: n.tx_dropped,
            })
            .collect(),
    }
}

/// An exec'd process's state from the shim's answer.
pub(crate) fn process_state(exec_id: &str, st: &ShimState) -> pb::ProcessState {
    pb::ProcessState {
        exec_id: exec_id.to_owned(),
        status: proto_status(Status::try_from(st.status).unwrap_or(Status::Unspecified)) as i32,
        pid: st.pid,
        exit: st.exit.as_ref().map(exit_status),
        started_at: timestamp(st.started_at),
    }
}

pub fn status_name(s: i32) -> String {
    match pb::Status::try_from(s).unwrap_or(pb::Status::Unspecified) {
        pb::Status::Unspecified => "unknown".into(),
        s => protocol::enum_word(s.as_str_name(), "STATUS_"),
    }
}

/// The API's status for the shim's: both protos name them `STATUS_*`.
pub(crate) fn proto_status(s: Status) -> pb::Status {
    pb::Status::from_str_name(s.as_str_name()).unwrap_or(pb::Status::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shim_status_has_its_api_status() {
        for (shim, api) in [
            (Status::Unspecified, pb::Status::Unspecified),
            (Status::Created, pb::Status::Created),
            (Status::Running, pb::Status::Running),
            (Status::Paused, pb::Status::Paused),
            (Status::Stopped, pb::Status::Stopped),
        ] {
            assert_eq!(proto_status(shim), api);
            assert_eq!(status_name(api as i32), shim.name());
        }
    }
}
