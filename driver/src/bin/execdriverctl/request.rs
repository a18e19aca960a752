//! Flags to requests: what create/run, exec, exec-sync, update, kill, stop and logs send,
//! built from the parsed arguments without talking to the daemon (sizes, limits, mounts,
//! devices, network, labels, signals, times). The security flags are in `security`.

use std::collections::BTreeMap;

use execdriver_proto as pb;

use crate::args::{CreateArgs, ExecArgs, LimitArgs};
use crate::security::{namespaces, security_config};
use crate::terminal::terminal_size;

pub fn key_values(field: &str, items: &[String]) -> Result<BTreeMap<String, String>, String> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("{field} {s:?}: expected KEY=VALUE"))
        })
        .collect()
}

pub fn parse_mount(s: &str) -> Result<pb::Mount, String> {
    let mut parts = s.split(':');
    let (Some(source), Some(destination)) = (parts.next(), parts.next()) else {
        return Err(format!("--mount {s:?}: expected SRC:DST[:ro][:private]"));
    };
    let mut m = pb::Mount {
        source: source.into(),
        destination: destination.into(),
        writable: true,
        private: false,
    };
    for opt in parts {
        match opt {
            "ro" => m.writable = false,
            "rw" => m.writable = true,
            "private" => m.private = true,
            other => return Err(format!("--mount {s:?}: unknown option {other:?}")),
        }
    }
    Ok(m)
}

/// Parses a size: bytes, or a number (decimals allowed) with a b, k, m, g or t suffix (an
/// optional trailing "b" or "ib" too: 64m, 64MiB, 1.5g); -1 stays -1 (unlimited).
pub fn parse_size(flag: &str, s: &str) -> Result<i64, String> {
    let bad = || format!("{flag} {s:?}: expected a size such as 512k, 64m or 1g");
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some((i, 't')) => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    let bytes = n * mult as f64;
    if bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as i64)
}

/// The Resources of the limit flags (unset flags stay 0: not set).
pub fn resources(l: &LimitArgs) -> Result<pb::Resources, String> {
    let size = |flag: &str, v: &Option<String>| -> Result<i64, String> {
        v.as_deref().map_or(Ok(0), |s| parse_size(flag, s))
    };
    let mut r = pb::Resources {
        memory: size("--memory", &l.memory)?,
        memory_reservation: size("--memory-reservation", &l.memory_reservation)?,
        memory_swap: size("--memory-swap", &l.memory_swap)?,
        cpu_shares: l.cpu_shares.unwrap_or(0),
        cpu_quota: l.cpu_quota.unwrap_or(0),
        cpu_period: l.cpu_period.unwrap_or(0),
        cpuset_cpus: l.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: l.cpuset_mems.clone().unwrap_or_default(),
        blkio_weight: l.blkio_weight.unwrap_or(0),
        pids_limit: l.pids_limit.unwrap_or(0),
        ..Default::default()
    };
    if let Some(cpus) = &l.cpus {
        if l.cpu_quota.is_some() {
            return Err("--cpus and --cpu-quota set the same limit; give one".into());
        }
        let n: f64 = cpus
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n > 0.0)
            .ok_or_else(|| format!("--cpus {cpus:?}: expected a positive number such as 0.5"))?;
        let period = if r.cpu_period > 0 {
            r.cpu_period
        } else {
            100_000
        };
        r.cpu_period = period;
        r.cpu_quota = (n * period as f64).round() as i64;
    }
    Ok(r)
}

/// Parses --device: "c 10:229 rwm" (a rule) or "/dev/fuse[:/dev/fuse][:rwm]" (a host node).
pub fn parse_device(s: &str) -> Result<pb::DeviceRule, String> {
    let bad =
        || format!("--device {s:?}: expected HOST[:CONTAINER][:PERMS] or \"c MAJOR:MINOR PERMS\"");
    let words: Vec<&str> = s.split_whitespace().collect();
    if matches!(words.first(), Some(&("a" | "b" | "c"))) {
        let num = |n: &str| -> Result<i64, String> {
            if n == "*" {
                Ok(-1)
            } else {
                n.parse().map_err(|_| bad())
            }
        };
        let (major, minor) = match words.get(1) {
            Some(mm) => {
                let (a, b) = mm.split_once(':').ok_or_else(bad)?;
                (num(a)?, num(b)?)
            }
            None => (-1, -1),
        };
        if words.len() > 3 {
            return Err(bad());
        }
        return Ok(pb::DeviceRule {
            r#type: words[0].into(),
            major,
            minor,
            permissions: words.get(2).unwrap_or(&"rwm").to_string(),
            ..Default::default()
        });
    }
    let parts: Vec<&str> = s.split(':').collect();
    let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (path, container_path, permissions) = match parts.as_slice() {
        [host] => (*host, "", ""),
        [host, p] if is_perms(p) => (*host, "", *p),
        [host, c] => (*host, *c, ""),
        [host, c, p] => (*host, *c, *p),
        _ => return Err(bad()),
    };
    if !path.starts_with('/') {
        return Err(bad());
    }
    Ok(pb::DeviceRule {
        path: path.into(),
        container_path: container_path.into(),
        permissions: permissions.into(),
        ..Default::default()
    })
}

pub fn random_id() -> String {
    let mut bytes = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `--network` and its companions as the request's network part.
pub fn network_config(a: &CreateArgs) -> Result<Option<pb::NetworkConfig>, String> {
    if a.network.is_none() && a.ip.is_none() && a.mac.is_none() && a.mtu.is_none() {
        return Ok(None);
    }
    let mut n = pb::NetworkConfig {
        address: a.ip.clone().unwrap_or_default(),
        mac_address: a.mac.clone().unwrap_or_default(),
        mtu: a.mtu.unwrap_or(0),
        ..Default::default()
    };
    n.mode = match a.network.as_deref() {
        None => pb::NetworkMode::Unspecified,
        Some("bridge") => pb::NetworkMode::Bridge,
        Some("none") => pb::NetworkMode::None,
        Some("host") => pb::NetworkMode::Host,
        Some(s) if s.starts_with("container:") => {
            n.container_id = s["container:".len()..].to_owned();
            pb::NetworkMode::Container
        }
        Some(s) if s.starts_with('/') => {
            n.netns_path = s.to_owned();
            pb::NetworkMode::Netns
        }
        Some(s) => {
            return Err(format!(
                "--network {s:?}: expected bridge, none, host, container:ID or a /path"
            ))
        }
    } as i32;
    Ok(Some(n))
}

pub fn create_request(a: &CreateArgs) -> Result<pb::CreateRequest, String> {
    Ok(pb::CreateRequest {
        id: a.id.clone().unwrap_or_else(random_id),
        rootfs: a.rootfs.display().to_string(),
        process: Some(pb::Process {
            args: a.command.clone(),
            env: a.env.clone(),
            cwd: a.cwd.clone().unwrap_or_default(),
            user: a.user.clone().unwrap_or_default(),
            tty: a.tty,
            open_stdin: a.interactive,
            console_size: if a.tty { terminal_size() } else { None },
        }),
        hostname: a.hostname.clone().unwrap_or_default(),
        namespaces: namespaces(a),
        mounts: a
            .mounts
            .iter()
            .map(|m| parse_mount(m))
            .collect::<Result<_, _>>()?,
        readonly_rootfs: a.readonly_rootfs,
        capabilities_mask: a.cap_drop.clone(),
        labels: key_values("--label", &a.labels)?.into_iter().collect(),
        init: a.init,
        log: match &a.log_max_size {
            Some(s) => {
                let max_size = parse_size("--log-max-size", s)?;
                if max_size < 0 {
                    return Err("--log-max-size: must not be negative".into());
                }
                Some(pb::LogConfig {
                    max_size: max_size as u64,
                    max_files: a.log_max_files,
                })
            }
            None => None,
        },
        resources: Some(pb::Resources {
            devices: a
                .devices
                .iter()
                .map(|d| parse_device(d))
                .collect::<Result<_, _>>()?,
            allow_all_devices: a.allow_all_devices || a.security.privileged,
            cgroup_parent: a.cgroup_parent.clone().unwrap_or_default(),
            ..resources(&a.limits)?
        }),
        network: network_config(a)?,
        security: security_config(&a.security)?,
    })
}

pub fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| format!("unknown signal {s:?}"))
}

/// The request of `exec` (--detach: started at once); with --tty the terminal is our size.
pub fn exec_request(a: &ExecArgs) -> pb::ExecRequest {
    let process = pb::Process {
        args: a.command.clone(),
        env: a.env.clone(),
        cwd: a.cwd.clone().unwrap_or_default(),
        user: a.user.clone().unwrap_or_default(),
        tty: a.tty,
        open_stdin: a.interactive,
        console_size: if a.tty { terminal_size() } else { None },
    };
    pb::ExecRequest {
        id: a.id.clone(),
        exec_id: a.exec_id.clone().unwrap_or_default(),
        process: Some(process),
        start: a.detach,
    }
}

/// The request of `exec-sync` (no terminal, no stdin).
pub fn exec_sync_request(
    timeout: u32,
    env: Vec<String>,
    user: Option<String>,
    cwd: Option<String>,
    id: String,
    command: Vec<String>,
) -> pb::ExecSyncRequest {
    pb::ExecSyncRequest {
        id,
        process: Some(pb::Process {
            args: command,
            env,
            cwd: cwd.unwrap_or_default(),
            user: user.unwrap_or_default(),
            ..Default::default()
        }),
        timeout_seconds: timeout,
    }
}

/// Parses `logs --since`: RFC 3339 in UTC.
pub fn parse_since(s: &str) -> Result<prost_types::Timestamp, String> {
    let ns = execdriver_shim::logfile::parse_rfc3339(s).ok_or_else(|| {
        format!("--since {s:?}: expected RFC 3339 UTC, e.g. 2026-01-02T03:04:05Z")
    })?;
    Ok(prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sizes() {
        assert_eq!(parse_size("--memory", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("--memory", "64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("--memory", "1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("--memory", "512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("--memory", "4096").unwrap(), 4096);
        assert_eq!(parse_size("--memory-swap", "-1").unwrap(), -1);
        for bad in ["", "m", "12x", "-5m", "1e400"] {
            assert!(parse_size("--memory", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus_become_quota_and_period() {
        let r = resources(&LimitArgs {
            cpus: Some("0.2".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((r.cpu_quota, r.cpu_period), (20_000, 100_000));
        let r = resources(&LimitArgs {
            cpus: Some("1.5".into()),
            cpu_period: Some(50_000),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((r.cpu_quota, r.cpu_period), (75_000, 50_000));
        assert!(resources(&LimitArgs {
            cpus: Some("-1".into()),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn devices() {
        let d = parse_device("c 10:229 rwm").unwrap();
        assert_eq!((d.r#type.as_str(), d.major, d.minor), ("c", 10, 229));
        assert_eq!(d.permissions, "rwm");
        let d = parse_device("b 8:* r").unwrap();
        assert_eq!((d.major, d.minor, d.permissions.as_str()), (8, -1, "r"));
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!(d.path, "/dev/fuse");
        assert!(d.r#type.is_empty());
        let d = parse_device("/dev/fuse:rw").unwrap();
        assert_eq!(
            (d.container_path.as_str(), d.permissions.as_str()),
            ("", "rw")
        );
        let d = parse_device("/dev/sdb:/dev/xvdb:r").unwrap();
        assert_eq!(d.container_path, "/dev/xvdb");
        assert!(parse_device("fuse").is_err());
        assert!(parse_device("c x:1").is_err());
    }
}
