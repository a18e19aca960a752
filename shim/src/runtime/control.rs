//! The verbs on an existing container: `state`, `kill`, `delete` (with the poststop hooks),
//! `pause`/`resume` (the cgroup freezer), `ps`, `list`, `events` (cgroup statistics) and
//! `update` (new resources, converted and checked as config.json's are, then written to the
//! cgroups).

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::hooks;
use execdriver_spec::oci::{self, Status};

use super::cli::{Format, UpdateArgs};
use super::store::{self, Container};
use super::{print_json, Error, Logger};

fn status_name(s: Status) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// `state ID`: the OCI state JSON.
pub fn state(root: &Path, id: &str) -> Result<(), Error> {
    let c = store::load(root, id)?;
    print_json(&c.state())
}

/// A signal as runc takes it: `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(s: &str) -> Result<Signal, Error> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::msg(format!("unknown signal {s:?}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| Error::msg(format!("unknown signal {s:?}")))
}

/// `kill ID [SIGNAL]` (default SIGTERM); `--all` signals every process of its cgroup.
pub fn kill(root: &Path, id: &str, signal: Option<&str>, all: bool) -> Result<(), Error> {
    let sig = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let c = store::load(root, id)?;
    if c.status() == Status::Stopped {
        return Err(Error::msg("container not running"));
    }
    c.signal(sig, all)
}

/// `delete ID`: a stopped or created container goes; a running or paused one only with
/// `--force` (killed first). Its cgroups and state directory are removed, then the poststop
/// hooks run.
pub fn delete(root: &Path, id: &str, force: bool, log: &Logger) -> Result<(), Error> {
    let c = match store::load(root, id) {
        Ok(c) => c,
        // runc: `delete --force` of a container that is not there succeeds.
        Err(Error::Msg(m)) if force && m == "container does not exist" => return Ok(()),
        Err(e) => return Err(e),
    };
    let status = c.status();
    match status {
        Status::Stopped | Status::Created => {}
        Status::Running | Status::Paused | Status::Creating if !force => {
            return Err(Error::msg(format!(
                "cannot delete container {id} that is not stopped: {}",
                status_name(status)
            )))
        }
        _ => {}
    }
    let cgroup = c.cgroup()?;
    if status != Status::Stopped {
        let _ = nix::sys::signal::kill(c.pid(), Signal::SIGKILL);
        // The init's parent (the engine's shim, or `run`) reaps it; wait until it is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.init_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if let Some(m) = &cgroup {
        // Thaws a frozen cgroup, kills what is left in it, and removes it.
        m.destroy()?;
    }
    let state = c.state();
    std::fs::remove_dir_all(&c.dir)
        .map_err(|e| Error::io(format!("removing {}", c.dir.display()), e))?;
    if !c.record.config.hooks.poststop.is_empty() {
        let mut state = state;
        state.status = Status::Stopped;
        let json = serde_json::to_vec(&state).map_err(|e| Error::msg(e.to_string()))?;
        for w in hooks::run_all_warn("poststop", &c.record.config.hooks.poststop, &json) {
            log.warn(&w);
        }
    }
    Ok(())
}

/// `pause ID` (`freeze`) and `resume ID`.
pub fn pause(root: &Path, id: &str, freeze: bool) -> Result<(), Error> {
    let c = store::load(root, id)?;
    let status = c.status();
    match (freeze, status) {
        (true, Status::Running) | (false, Status::Paused) => {}
        (true, Status::Paused) => return Err(Error::msg("container already paused")),
        (false, _) => return Err(Error::msg("container not paused")),
        (true, _) => return Err(Error::msg("container not running")),
    }
    let Some(m) = c.cgroup()? else {
        return Err(Error::msg("the container has no cgroup to freeze"));
    };
    if freeze {
        m.freeze()?;
    } else {
        m.thaw()?;
    }
    Ok(())
}

/// `ps ID [ps options]`: the container's pids as JSON, or ps(1)'s lines for them.
pub fn ps(root: &Path, id: &str, format: Format, ps_args: &[String]) -> Result<(), Error> {
    let c = store::load(root, id)?;
    let pids: Vec<i32> = c.pids()?.iter().map(|p| p.as_raw()).collect();
    if format == Format::Json {
        return print_json(&pids);
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::io("running ps", e))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        return Err(Error::msg("ps output has no PID column"));
    };
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}

/// `list`: the containers under the root.
pub fn list(root: &Path, format: Format, quiet: bool) -> Result<(), Error> {
    let containers: Vec<Container> = store::ids(root)
        .iter()
        .filter_map(|id| store::load(root, id).ok())
        .collect();
    if quiet {
        for c in &containers {
            println!("{}", c.record.id);
        }
        return Ok(());
    }
    let rows: Vec<Value> = containers
        .iter()
        .map(|c| {
            let s = c.state();
            json!({
                "ociVersion": s.oci_version,
                "id": s.id,
                "pid": s.pid,
                "status": status_name(s.status),
                "bundle": s.bundle,
                "rootfs": c.record.rootfs,
                "created": c.record.created,
                "owner": c.record.owner,
                "annotations": s.annotations,
            })
        })
        .collect();
    if format == Format::Json {
        return print_json(&rows);
    }
    let cell = |v: &Value, k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let cols = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
    let keys = ["id", "pid", "status", "bundle", "created", "owner"];
    let mut table: Vec<Vec<String>> = vec![cols.iter().map(|s| s.to_string()).collect()];
    table.extend(
        rows.iter()
            .map(|r| keys.iter().map(|k| cell(r, k)).collect()),
    );
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in table {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

/// The `data` of a stats event, in runc's shape (the figures this host has).
fn stats_json(c: &Container) -> Result<Value, Error> {
    let Some(m) = c.cgroup()? else {
        return Ok(json!({}));
    };
    let s = m.stats()?;
    let cpu = s.cpu.unwrap_or_default();
    let mem = s.memory.unwrap_or_default();
    let pids = s.pids.unwrap_or_default();
    let blkio = s.blkio.unwrap_or_default();
    Ok(json!({
        "cpu": {
            "usage": {"total": cpu.usage_ns, "kernel": cpu.system_ns, "user": cpu.user_ns},
            "throttling": {
                "periods": cpu.periods,
                "throttledPeriods": cpu.throttled_periods,
                "throttledTime": cpu.throttled_ns,
            },
        },
        "memory": {
            "cache": mem.cache,
            "usage": {"usage": mem.usage, "limit": mem.limit, "max": mem.max_usage, "failcnt": mem.failcnt},
            "swap": {"usage": mem.swap_usage},
            "raw": {"rss": mem.rss},
        },
        "pids": {"current": pids.current, "limit": pids.limit},
        "blkio": {
            "ioServiceBytesRecursive": blkio.devices.iter().flat_map(|d| [
                json!({"major": d.major, "minor": d.minor, "op": "Read", "value": d.read_bytes}),
                json!({"major": d.major, "minor": d.minor, "op": "Write", "value": d.write_bytes}),
            ]).collect::<Vec<_>>(),
        },
    }))
}

/// A Go-style duration: `5s`, `500ms`, `1m`, `2h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    let bad = || Error::msg(format!("invalid duration {s:?}"));
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `events ID`: with `--stats` one stats event; otherwise one every `--interval` until the
/// container stops.
pub fn events(root: &Path, id: &str, stats: bool, interval: &str) -> Result<(), Error> {
    let every = parse_duration(interval)?;
    let c = store::load(root, id)?;
    if c.status() == Status::Stopped {
        return Err(Error::msg("container not running"));
    }
    loop {
        let event = json!({"type": "stats", "id": id, "data": stats_json(&c)?});
        println!("{event}");
        if stats {
            return Ok(());
        }
        std::thread::sleep(every);
        if c.status() == Status::Stopped {
            return Ok(());
        }
    }
}

/// Sizes as runc takes them: bytes, or with a k/m/g/t suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<i64, Error> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| Error::msg(format!("invalid size {s:?}")))?;
    if n == -1 {
        return Ok(-1);
    }
    n.checked_mul(mul)
        .ok_or_else(|| Error::msg(format!("invalid size {s:?}")))
}

/// Merges `patch` into `base`: objects key by key, anything else replaced, except that a 0 or
/// `null` number leaves the value as it was. That is how runc reads an update: engines send
/// every field, 0 for those they do not change (Docker's `update --pids-limit` carries
/// `"memory": {"limit": 0, "swap": 0}`).
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (_, Value::Null) => {}
        (b, Value::Number(n)) if n.as_f64() == Some(0.0) && !b.is_null() => {}
        (b, p) => *b = p,
    }
}

/// `update ID`: the container's resources with the given ones merged in, converted and
/// checked as config.json is, written to its cgroups and kept in its state.
pub fn update(root: &Path, a: &UpdateArgs) -> Result<(), Error> {
    let mut c = store::load(root, &a.id)?;
    if c.status() == Status::Stopped {
        return Err(Error::msg("container not running"));
    }
    let mut spec = c.record.spec.clone();
    let mut linux = spec.linux.clone().unwrap_or_default();
    let mut res = serde_json::to_value(linux.resources.clone().unwrap_or_default())
        .map_err(|e| Error::msg(e.to_string()))?;
    if let Some(src) = &a.resources {
        let data = if src == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| Error::io("reading resources from stdin", e))?;
            s
        } else {
            std::fs::read_to_string(src).map_err(|e| Error::io(format!("reading {src}"), e))?
        };
        let patch: Value =
            serde_json::from_str(&data).map_err(|e| Error::msg(format!("--resources: {e}")))?;
        if patch.get("devices").is_some() {
            return Err(Error::msg(
                "--resources: devices cannot be changed on a live container",
            ));
        }
        merge(&mut res, patch);
    }
    let mut flags = serde_json::Map::new();
    let mut put = |path: [&str; 2], v: Value| {
        let entry = flags.entry(path[0].to_owned()).or_insert_with(|| json!({}));
        entry[path[1]] = v;
    };
    if let Some(m) = &a.memory {
        put(["memory", "limit"], json!(parse_size(m)?));
    }
    if let Some(v) = a.cpu_quota {
        put(["cpu", "quota"], json!(v));
    }
    if let Some(v) = a.cpu_period {
        put(["cpu", "period"], json!(v));
    }
    if let Some(v) = a.cpu_share {
        put(["cpu", "shares"], json!(v));
    }
    if let Some(v) = &a.cpuset_cpus {
        put(["cpu", "cpus"], json!(v));
    }
    if let Some(v) = &a.cpuset_mems {
        put(["cpu", "mems"], json!(v));
    }
    if let Some(v) = a.pids_limit {
        put(["pids", "limit"], json!(v));
    }
    merge(&mut res, Value::Object(flags));
    linux.resources =
        Some(serde_json::from_value(res).map_err(|e| Error::msg(format!("resources: {e}")))?);
    spec.linux = Some(linux);
    let systemd = Path::new("/run/systemd/system").exists();
    let converted = oci::to_config(&spec, &a.id, &c.record.bundle, systemd)?;
    let Some(cg) = converted.config.cgroups.clone() else {
        return Err(Error::msg("the container has no cgroup to update"));
    };
    let Some(m) = c.cgroup()? else {
        return Err(Error::msg("the container has no cgroup to update"));
    };
    m.set(&cg)?;
    c.record.config.cgroups = Some(cg);
    c.record.spec = spec;
    store::save(&c.dir, &c.record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_sizes_and_durations_parse_as_runc_takes_them() {
        for s in ["KILL", "SIGKILL", "kill", "9"] {
            assert_eq!(parse_signal(s).ok(), Some(Signal::SIGKILL), "{s}");
        }
        assert!(parse_signal("NOPE").is_err() && parse_signal("999").is_err());
        assert_eq!(parse_size("64m").ok(), Some(64 << 20));
        assert_eq!(parse_size("1G").ok(), Some(1 << 30));
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size("-1").ok(), Some(-1));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration("5s").ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("2").ok(), Some(Duration::from_secs(2)));
        assert!(parse_duration("0s").is_err() && parse_duration("5x").is_err());
    }

    #[test]
    fn resources_merge_key_by_key() {
        let mut base = json!({"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 3}});
        merge(
            &mut base,
            json!({"memory": {"limit": 9}, "cpu": {"shares": 4}}),
        );
        assert_eq!(
            base,
            json!({"memory": {"limit": 9, "swap": 2}, "pids": {"limit": 3}, "cpu": {"shares": 4}})
        );
        // Zeros and nulls are "unchanged", as engines send them.
        merge(
            &mut base,
            json!({"memory": {"limit": 0, "swap": null}, "pids": {"limit": 50}}),
        );
        assert_eq!(base["memory"], json!({"limit": 9, "swap": 2}));
        assert_eq!(base["pids"], json!({"limit": 50}));
    }
}
