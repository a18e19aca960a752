//! Resource figures of a container, and the parsers for the cgroup (v1 and v2) and /proc files
//! they come from.
//!
//! The types are the shim protocol's messages (shim.proto's `Stats`): the shim sends them to the
//! driver as they are. Every figure is 0 when the host does not provide it.
//! Limits read 0 when there is none.

use std::collections::HashMap;

pub use crate::protocol::{
    BlkioDevice, BlkioStats, CpuStats, MemoryStats, NetworkStats, PidsStats, Stats,
};

/// v1 reads "no limit" as PAGE_COUNTER_MAX pages (about 2^63); anything this large is none.
const UNLIMITED_V1: u64 = 1 << 62;

/// Parses a limit file: a number, `max` (v2) or v1's huge "unlimited" value. None for no limit
/// or an unreadable value.
pub fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    let v: i64 = t.parse().ok()?;
    if v < 0 || v as u64 >= UNLIMITED_V1 {
        return None;
    }
    Some(v as u64)
}

/// Parses `key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
pub fn parse_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k, v))
        })
        .collect()
}

/// Parses v1 `blkio.*io_service_bytes*` files: `MAJ:MIN Read|Write|Sync|Async|Discard|Total N`
/// lines and a last `Total N`.
pub fn parse_v1_blkio(text: &str) -> BlkioStats {
    let mut devices: Vec<BlkioDevice> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let Some((major, minor)) = parse_devno(f[0]) else {
            continue;
        };
        let Ok(n) = f[2].parse::<u64>() else { continue };
        let d = device_entry(&mut devices, major, minor);
        match f[1] {
            "Read" => d.read_bytes += n,
            "Write" => d.write_bytes += n,
            _ => {}
        }
    }
    totals(devices)
}

/// Parses v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N` lines.
pub fn parse_io_stat(text: &str) -> BlkioStats {
    let mut devices: Vec<BlkioDevice> = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(parse_devno) else {
            continue;
        };
        let d = device_entry(&mut devices, major, minor);
        for kv in it {
            match kv.split_once('=') {
                Some(("rbytes", v)) => d.read_bytes += v.parse().unwrap_or(0),
                Some(("wbytes", v)) => d.write_bytes += v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    totals(devices)
}

fn parse_devno(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn device_entry(devices: &mut Vec<BlkioDevice>, major: u32, minor: u32) -> &mut BlkioDevice {
    let i = match devices
        .iter()
        .position(|d| d.major == major && d.minor == minor)
    {
        Some(i) => i,
        None => {
            devices.push(BlkioDevice {
                major,
                minor,
                ..Default::default()
            });
            devices.len() - 1
        }
    };
    &mut devices[i]
}

fn totals(devices: Vec<BlkioDevice>) -> BlkioStats {
    BlkioStats {
        read_bytes: devices.iter().map(|d| d.read_bytes).sum(),
        write_bytes: devices.iter().map(|d| d.write_bytes).sum(),
        devices,
    }
}

/// Parses /proc/PID/net/dev (which shows the network namespace of PID).
pub fn parse_net_dev(text: &str) -> Vec<NetworkStats> {
    let mut out = Vec::new();
    // Two header lines, then `name: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed
    // multicast tx_bytes tx_packets tx_errs tx_drop ...`.
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let n: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if n.len() < 12 {
            continue;
        }
        out.push(NetworkStats {
            name: name.trim().to_owned(),
            rx_bytes: n[0],
            rx_packets: n[1],
            rx_errors: n[2],
            rx_dropped: n[3],
            tx_bytes: n[8],
            tx_packets: n[9],
            tx_errors: n[10],
            tx_dropped: n[11],
        });
    }
    out
}

/// The network figures of the namespace `pid` is in.
pub fn read_networks(pid: i32) -> Vec<NetworkStats> {
    std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .map(|t| parse_net_dev(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("-1"), None);
        assert_eq!(parse_limit("33554432\n"), Some(32 << 20));
        assert_eq!(parse_limit("garbage"), None);
    }

    #[test]
    fn v1_blkio_and_v2_io_stat() {
        let v1 = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n\
                  8:0 Total 12288\n8:16 Read 1\n8:16 Write 2\nTotal 12291\n";
        let s = parse_v1_blkio(v1);
        assert_eq!((s.read_bytes, s.write_bytes), (4097, 8194));
        assert_eq!(s.devices.len(), 2);
        assert_eq!(s.devices[0].major, 8);
        let v2 = "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n\
                  253:1 rbytes=5 wbytes=7 rios=1 wios=1 dbytes=0 dios=0\n";
        let s = parse_io_stat(v2);
        assert_eq!((s.read_bytes, s.write_bytes), (105, 207));
        assert_eq!(s.devices[1].major, 253);
        assert_eq!(s.devices[1].write_bytes, 7);
    }

    #[test]
    fn net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     168       2    0    0    0     0          0         0      168       2    0    0    0     0       0          0
  eth0: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0
";
        let n = parse_net_dev(text);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].name, "lo");
        assert_eq!((n[0].rx_bytes, n[0].tx_packets), (168, 2));
        assert_eq!(
            (
                n[1].rx_errors,
                n[1].rx_dropped,
                n[1].tx_bytes,
                n[1].tx_errors,
                n[1].tx_dropped
            ),
            (1, 2, 2000, 3, 4)
        );
    }

    #[test]
    fn keyed() {
        let m = parse_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
        assert_eq!(m["oom_kill"], 3);
        assert_eq!(m.get("nope"), None);
    }
}
