//! What execdriverctl prints: containers, processes, exits, stats, events and Info as text
//! (tables and labelled lines) or JSON (pretty objects, or one object per line for streams),
//! timestamps as RFC 3339, our exit code from a container's, and raw stdout/stderr writers for
//! container output.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::process::ExitCode;

use execdriver_driver::driver::status_name;
use execdriver_driver::events;
use execdriver_proto as pb;
use serde::Serialize;

#[derive(Serialize)]
pub struct StateJson {
    pub id: String,
    pub status: String,
    pub pid: i32,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub exit_reason: String,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub rootfs: String,
    pub bundle: String,
    pub shim_pid: i32,
    pub network: Option<NetworkJson>,
}

#[derive(Serialize)]
pub struct NetworkJson {
    pub mode: String,
    pub address: String,
    pub gateway: String,
    pub mac_address: String,
    pub host_interface: String,
    pub bridge: String,
    pub mtu: u32,
    pub container_id: String,
    pub netns_path: String,
}

impl From<&pb::NetworkStatus> for NetworkJson {
    fn from(n: &pb::NetworkStatus) -> NetworkJson {
        let mode = pb::NetworkMode::try_from(n.mode)
            .unwrap_or(pb::NetworkMode::Unspecified)
            .as_str_name()
            .trim_start_matches("NETWORK_MODE_")
            .to_ascii_lowercase();
        NetworkJson {
            mode,
            address: n.address.clone(),
            gateway: n.gateway.clone(),
            mac_address: n.mac_address.clone(),
            host_interface: n.host_interface.clone(),
            bridge: n.bridge.clone(),
            mtu: n.mtu,
            container_id: n.container_id.clone(),
            netns_path: n.netns_path.clone(),
        }
    }
}

impl From<&pb::ContainerState> for StateJson {
    fn from(s: &pb::ContainerState) -> StateJson {
        let exit = s.exit.clone().unwrap_or_default();
        StateJson {
            id: s.id.clone(),
            status: status_name(s.status),
            pid: s.pid,
            exit_code: exit.exit_code,
            signal: exit.signal,
            oom_killed: exit.oom_killed,
            exit_reason: exit.reason,
            created_at: rfc3339(&s.created_at),
            started_at: rfc3339(&s.started_at),
            finished_at: rfc3339(&s.finished_at),
            labels: s.labels.clone().into_iter().collect(),
            rootfs: s.rootfs.clone(),
            bundle: s.bundle.clone(),
            shim_pid: s.shim_pid,
            network: s.network.as_ref().map(NetworkJson::from),
        }
    }
}

#[derive(Serialize)]
pub struct ProcessJson {
    pub exec_id: String,
    pub status: String,
    pub pid: i32,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub started_at: Option<String>,
}

impl From<&pb::ProcessState> for ProcessJson {
    fn from(p: &pb::ProcessState) -> ProcessJson {
        let exit = p.exit.clone().unwrap_or_default();
        ProcessJson {
            exec_id: p.exec_id.clone(),
            status: status_name(p.status),
            pid: p.pid,
            exit_code: exit.exit_code,
            signal: exit.signal,
            started_at: rfc3339(&p.started_at),
        }
    }
}

pub fn print_json(v: &impl Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub fn describe_exit(e: &pb::ExitStatus) -> String {
    match (e.exit_code, e.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("unknown ({})", e.reason),
    }
}

pub fn print_state(s: &pb::ContainerState) {
    let j = StateJson::from(s);
    println!("ID:       {}", j.id);
    println!("Status:   {}", j.status);
    println!("Pid:      {}", j.pid);
    if let Some(e) = &s.exit {
        println!(
            "Exit:     {}{}",
            describe_exit(e),
            if e.oom_killed { " (OOM killed)" } else { "" }
        );
    }
    println!("Created:  {}", j.created_at.unwrap_or_default());
    if let Some(t) = j.started_at {
        println!("Started:  {t}");
    }
    if let Some(t) = j.finished_at {
        println!("Finished: {t}");
    }
    println!("Rootfs:   {}", j.rootfs);
    println!("Bundle:   {}", j.bundle);
    if let Some(n) = &j.network {
        let mut line = n.mode.clone();
        if !n.container_id.is_empty() {
            line += &format!(" {}", n.container_id);
        }
        if !n.address.is_empty() {
            line += &format!(" {}", n.address);
        }
        if !n.gateway.is_empty() {
            line += &format!(" via {}", n.gateway);
        }
        if !n.host_interface.is_empty() {
            line += &format!(" ({} on {}, mtu {})", n.host_interface, n.bridge, n.mtu);
        }
        if !n.mac_address.is_empty() {
            line += &format!(" mac {}", n.mac_address);
        }
        if n.container_id.is_empty() && !n.netns_path.is_empty() {
            line += &format!(" {}", n.netns_path);
        }
        println!("Network:  {line}");
    }
    for (k, v) in &j.labels {
        println!("Label:    {k}={v}");
    }
}

pub fn rfc3339(ts: &Option<prost_types::Timestamp>) -> Option<String> {
    ts.as_ref().map(|t| {
        execdriver_spec::logline::rfc3339_nanos(t.seconds * 1_000_000_000 + t.nanos as i64)
    })
}

pub fn stats_json(s: &pb::ContainerStats) -> serde_json::Value {
    let cpu = s.cpu.unwrap_or_default();
    let mem = s.memory.unwrap_or_default();
    let pids = s.pids.unwrap_or_default();
    let io = s.blkio.clone().unwrap_or_default();
    serde_json::json!({
        "id": s.id,
        "read_at": rfc3339(&s.read_at),
        "cpu": {"usage_ns": cpu.usage_ns, "user_ns": cpu.user_ns, "system_ns": cpu.system_ns,
                "periods": cpu.periods, "throttled_periods": cpu.throttled_periods,
                "throttled_ns": cpu.throttled_ns},
        "memory": {"usage": mem.usage, "limit": mem.limit, "max_usage": mem.max_usage,
                   "cache": mem.cache, "rss": mem.rss, "swap_usage": mem.swap_usage,
                   "failcnt": mem.failcnt, "oom_kills": mem.oom_kills},
        "pids": {"current": pids.current, "limit": pids.limit},
        "blkio": {"read_bytes": io.read_bytes, "write_bytes": io.write_bytes,
                  "devices": io.devices.iter().map(|d| serde_json::json!({
                      "major": d.major, "minor": d.minor,
                      "read_bytes": d.read_bytes, "write_bytes": d.write_bytes})).collect::<Vec<_>>()},
        "networks": s.networks.iter().map(|n| serde_json::json!({
            "name": n.name, "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
            "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped, "tx_bytes": n.tx_bytes,
            "tx_packets": n.tx_packets, "tx_errors": n.tx_errors,
            "tx_dropped": n.tx_dropped})).collect::<Vec<_>>(),
    })
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

pub fn print_stats(s: &pb::ContainerStats) {
    let cpu = s.cpu.unwrap_or_default();
    let mem = s.memory.unwrap_or_default();
    let pids = s.pids.unwrap_or_default();
    let io = s.blkio.clone().unwrap_or_default();
    let limit = |n: u64, f: fn(u64) -> String| {
        if n == 0 {
            "none".to_owned()
        } else {
            f(n)
        }
    };
    println!(
        "CPU:     {:.3}s used ({:.3}s user, {:.3}s system); throttled {} of {} periods ({:.3}s)",
        cpu.usage_ns as f64 / 1e9,
        cpu.user_ns as f64 / 1e9,
        cpu.system_ns as f64 / 1e9,
        cpu.throttled_periods,
        cpu.periods,
        cpu.throttled_ns as f64 / 1e9
    );
    println!(
        "Memory:  {} of {} (max {}, cache {}, swap {}); OOM kills {}",
        human_bytes(mem.usage),
        limit(mem.limit, human_bytes),
        human_bytes(mem.max_usage),
        human_bytes(mem.cache),
        human_bytes(mem.swap_usage),
        mem.oom_kills
    );
    println!(
        "Pids:    {} of {}",
        pids.current,
        limit(pids.limit, |n| n.to_string())
    );
    println!(
        "Block:   {} read, {} written",
        human_bytes(io.read_bytes),
        human_bytes(io.write_bytes)
    );
    for n in &s.networks {
        println!(
            "Net {:<4} {} received, {} sent",
            n.name,
            human_bytes(n.rx_bytes),
            human_bytes(n.tx_bytes)
        );
    }
}

pub fn resources_json(r: &pb::Resources) -> serde_json::Value {
    serde_json::json!({
        "memory": r.memory, "memory_reservation": r.memory_reservation,
        "memory_swap": r.memory_swap, "cpu_shares": r.cpu_shares, "cpu_quota": r.cpu_quota,
        "cpu_period": r.cpu_period, "cpuset_cpus": r.cpuset_cpus, "cpuset_mems": r.cpuset_mems,
        "blkio_weight": r.blkio_weight, "pids_limit": r.pids_limit,
    })
}

pub fn network_mode_name(m: i32) -> String {
    pb::NetworkMode::try_from(m)
        .unwrap_or(pb::NetworkMode::Unspecified)
        .as_str_name()
        .trim_start_matches("NETWORK_MODE_")
        .to_ascii_lowercase()
}

pub fn exit_json(e: &pb::ExitStatus) -> serde_json::Value {
    serde_json::json!({"exit_code": e.exit_code, "signal": e.signal, "oom_killed": e.oom_killed,
        "status_code": e.status_code, "reason": e.reason, "finished_at": rfc3339(&e.finished_at)})
}

pub fn event_json(e: &pb::Event) -> serde_json::Value {
    serde_json::json!({
        "sequence": e.sequence,
        "type": events::event_type_name(e.r#type),
        "id": e.id,
        "exec_id": e.exec_id,
        "time": rfc3339(&e.time),
        "pid": e.pid,
        "exit": e.exit.as_ref().map(exit_json),
        "labels": e.labels.iter().collect::<BTreeMap<_, _>>(),
    })
}

pub fn describe_event(e: &pb::Event) -> String {
    let mut line = format!(
        "{:>6} {} {:<12} {}",
        e.sequence,
        rfc3339(&e.time).unwrap_or_default(),
        events::event_type_name(e.r#type),
        e.id
    );
    if !e.exec_id.is_empty() {
        line += &format!(" exec {}", e.exec_id);
    }
    if e.pid > 0 {
        line += &format!(" pid {}", e.pid);
    }
    if let Some(x) = &e.exit {
        line += &format!(
            " {}{}",
            describe_exit(x),
            if x.oom_killed { " (OOM killed)" } else { "" }
        );
    }
    line
}

/// Our stdout or stderr without std's line buffering: container output is passed on as it
/// comes, in whole chunks, without scanning it for newlines. A File on a duplicate of the
/// descriptor, so dropping it never closes our stdout.
pub struct RawOut(std::fs::File);

impl RawOut {
    pub fn stdout() -> RawOut {
        Self::of(std::io::stdout().as_fd())
    }

    pub fn stderr() -> RawOut {
        Self::of(std::io::stderr().as_fd())
    }

    fn of(fd: std::os::fd::BorrowedFd<'_>) -> RawOut {
        let owned = fd.try_clone_to_owned().unwrap_or_else(|_| {
            std::fs::File::options()
                .write(true)
                .open("/dev/null")
                .expect("/dev/null")
                .into()
        });
        RawOut(std::fs::File::from(owned))
    }

    pub fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all(data)
    }
}

pub fn exit_code(e: &pb::ExitStatus) -> ExitCode {
    ExitCode::from(e.status_code.clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_and_exits() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(1536), "1.5KiB");
        assert_eq!(human_bytes(64 << 20), "64.0MiB");
        let exit = |code, signal| pb::ExitStatus {
            exit_code: code,
            signal,
            reason: "lost".into(),
            ..Default::default()
        };
        assert_eq!(describe_exit(&exit(Some(3), None)), "exit code 3");
        assert_eq!(describe_exit(&exit(None, Some(9))), "killed by signal 9");
        assert_eq!(describe_exit(&exit(None, None)), "unknown (lost)");
        let code = |status_code| {
            exit_code(&pb::ExitStatus {
                status_code,
                ..Default::default()
            })
        };
        assert_eq!(code(137), ExitCode::from(137));
        assert_eq!(code(300), ExitCode::from(255));
        assert_eq!(code(-1), ExitCode::from(0));
    }

    #[test]
    fn times_modes_and_events() {
        let t = Some(prost_types::Timestamp {
            seconds: 1_767_323_045,
            nanos: 5,
        });
        let text = rfc3339(&t).unwrap();
        assert!(text.starts_with("2026-01-02T03:04:05"), "{text}");
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(rfc3339(&None), None);
        assert_eq!(network_mode_name(pb::NetworkMode::Bridge as i32), "bridge");
        assert_eq!(network_mode_name(-7), "unspecified");
        let e = pb::Event {
            sequence: 42,
            r#type: pb::EventType::Exited as i32,
            id: "c1".into(),
            exec_id: "e1".into(),
            pid: 7,
            exit: Some(pb::ExitStatus {
                exit_code: Some(1),
                oom_killed: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let line = describe_event(&e);
        assert!(line.starts_with("    42 "), "{line}");
        assert!(
            line.ends_with("c1 exec e1 pid 7 exit code 1 (OOM killed)"),
            "{line}"
        );
        let j = event_json(&e);
        assert_eq!(j["sequence"], 42);
        assert_eq!(j["exit"]["exit_code"], 1);
        assert_eq!(j["time"], serde_json::Value::Null);
    }
}
