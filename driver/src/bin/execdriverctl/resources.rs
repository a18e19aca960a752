//! The limit flags (--memory, --cpus, --pids-limit, ..., of create/run and update) as
//! Resources (0 for --memory, --pids-limit and --cpus means unlimited, as Docker's), --cpus
//! checked against the host's CPUs, the sizes they take (64m, 1.5g) and --device rules.

use execdriver_proto as pb;

use crate::args::LimitArgs;

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

/// A limit where Docker's 0 means none: -1, which lifts a limit (in `update` too) where 0
/// would mean "not set".
fn unlimited_if_zero(n: i64) -> i64 {
    if n == 0 {
        -1
    } else {
        n
    }
}

/// The Resources of the limit flags (unset flags stay 0: not set).
pub fn resources(l: &LimitArgs) -> Result<pb::Resources, String> {
    let size = |flag: &str, v: &Option<String>| -> Result<i64, String> {
        v.as_deref().map_or(Ok(0), |s| parse_size(flag, s))
    };
    let memory = match &l.memory {
        Some(m) => unlimited_if_zero(parse_size("--memory", m)?),
        None => 0,
    };
    let mut r = pb::Resources {
        memory,
        memory_reservation: size("--memory-reservation", &l.memory_reservation)?,
        memory_swap: size("--memory-swap", &l.memory_swap)?,
        cpu_shares: l.cpu_shares.unwrap_or(0),
        cpu_quota: l.cpu_quota.unwrap_or(0),
        cpu_period: l.cpu_period.unwrap_or(0),
        cpuset_cpus: l.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: l.cpuset_mems.clone().unwrap_or_default(),
        blkio_weight: l.blkio_weight.unwrap_or(0),
        pids_limit: l.pids_limit.map_or(0, unlimited_if_zero),
        ..Default::default()
    };
    if let Some(cpus) = &l.cpus {
        if l.cpu_quota.is_some() {
            return Err("--cpus and --cpu-quota set the same limit; give one".into());
        }
        let n = parse_cpus(cpus)?;
        if n == 0.0 {
            r.cpu_quota = -1; // Docker's --cpus 0: no limit
            return Ok(r);
        }
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

fn parse_cpus(cpus: &str) -> Result<f64, String> {
    cpus.parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("--cpus {cpus:?}: expected a number such as 0.5 (0: no limit)"))
}

/// Refuses --cpus beyond the host's CPUs (`host_cpus`, from the daemon's Info; 0: unknown,
/// nothing checked), in Docker's words.
pub fn check_cpus(l: &LimitArgs, host_cpus: u32) -> Result<(), String> {
    let Some(cpus) = &l.cpus else {
        return Ok(());
    };
    let n = parse_cpus(cpus)?;
    if host_cpus > 0 && n != 0.0 && !(0.01..=f64::from(host_cpus)).contains(&n) {
        return Err(format!(
            "--cpus {cpus}: range of CPUs is from 0.01 to {host_cpus}.00, as there are only \
             {host_cpus} CPUs available"
        ));
    }
    Ok(())
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
    fn cpus_beyond_the_hosts_are_refused() {
        let l = |cpus: &str| LimitArgs {
            cpus: Some(cpus.into()),
            ..Default::default()
        };
        let err = check_cpus(&l("8"), 2).unwrap_err();
        assert_eq!(
            err,
            "--cpus 8: range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
        );
        assert!(check_cpus(&l("0.001"), 2).is_err());
        for ok in ["2", "1.5", "0.01", "0"] {
            assert!(check_cpus(&l(ok), 2).is_ok(), "{ok}");
        }
        assert!(
            check_cpus(&l("64"), 0).is_ok(),
            "an older daemon: not known"
        );
        assert!(check_cpus(&LimitArgs::default(), 1).is_ok());
        assert!(check_cpus(&l("lots"), 2).unwrap_err().contains("--cpus"));
    }

    #[test]
    fn zero_means_unlimited_as_dockers() {
        let r = resources(&LimitArgs {
            memory: Some("0".into()),
            pids_limit: Some(0),
            cpus: Some("0".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((r.memory, r.pids_limit, r.cpu_quota), (-1, -1, -1));
        assert_eq!(r.cpu_period, 0, "no period set for no quota");
        // Unset stays unset (0: the daemon's default, or unchanged by update).
        let r = resources(&LimitArgs::default()).unwrap();
        assert_eq!((r.memory, r.pids_limit, r.cpu_quota), (0, 0, 0));
        let r = resources(&LimitArgs {
            memory: Some("64m".into()),
            pids_limit: Some(-1),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((r.memory, r.pids_limit), (64 << 20, -1));
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
