//! Flags to requests: what create/run, exec, exec-sync, kill, stop and logs send, built from
//! the parsed arguments without talking to the daemon (mounts, network, labels, log rotation,
//! signals, times). The limits and devices are in `resources`, the security flags and the
//! daemon's defaults in `security`.

use std::collections::BTreeMap;

use execdriver_proto as pb;

use crate::args::{CreateArgs, ExecArgs};
use crate::resources::{parse_device, parse_size, resources};
use crate::security::{check_capabilities, namespaces, security_config, Defaults};
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

/// A container id for a create that names none: 12 random hex digits, as Docker shows ids.
pub fn random_id() -> Result<String, String> {
    execdriver_spec::id::random_hex::<6>().map_err(|e| format!("generating a container id: {e}"))
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
        Some("slirp4netns") => pb::NetworkMode::Slirp4netns,
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
                "--network {s:?}: expected bridge, none, host, slirp4netns, container:ID or a /path"
            ))
        }
    } as i32;
    Ok(Some(n))
}

/// The request of create/run. `defaults` is the daemon's Info, needed when
/// `security::needs_defaults` says so.
pub fn create_request(
    a: &CreateArgs,
    defaults: Option<&Defaults>,
) -> Result<pb::CreateRequest, String> {
    check_capabilities(&a.security, &a.cap_drop)?;
    let id = match &a.id {
        Some(id) => id.clone(),
        None => random_id()?,
    };
    Ok(pb::CreateRequest {
        id,
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
        namespaces: namespaces(a, defaults)?,
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
        security: security_config(&a.security, defaults)?,
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

/// Parses `logs --tail`: a number of lines, or "all" (None).
pub fn parse_tail(s: &str) -> Result<Option<u32>, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("--tail {s:?}: expected a number of lines or \"all\""))
}

/// Parses `logs --since`: RFC 3339 in UTC.
pub fn parse_since(s: &str) -> Result<prost_types::Timestamp, String> {
    let ns = execdriver_spec::logline::parse_rfc3339(s).ok_or_else(|| {
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
    use crate::args::Cmd;
    use crate::parsed::{create_args, parse};
    use crate::security::needs_defaults;

    #[test]
    fn create_request_of_the_flags() {
        let a = create_args(&[
            "--id",
            "c1",
            "--hostname",
            "h",
            "-e",
            "A=1",
            "--cwd",
            "/w",
            "-u",
            "1000:1000",
            "-i",
            "--init",
            "--mount",
            "/src:/dst:ro:private",
            "--mount",
            "/a:/b",
            "--cap-drop",
            "NET_RAW",
            "--readonly-rootfs",
            "--label",
            "k=v=w",
            "--log-max-size",
            "10m",
            "--log-max-files",
            "3",
            "--memory",
            "64m",
            "--pids-limit",
            "-1",
            "--device",
            "/dev/fuse",
            "--cgroup-parent",
            "p",
            "--network",
            "container:c0",
        ]);
        assert!(!needs_defaults(&a));
        let r = create_request(&a, None).unwrap();
        assert_eq!((r.id.as_str(), r.rootfs.as_str()), ("c1", "/rootfs"));
        let p = r.process.unwrap();
        assert_eq!((p.args, p.env), (vec!["true".into()], vec!["A=1".into()]));
        assert_eq!((p.cwd.as_str(), p.user.as_str()), ("/w", "1000:1000"));
        assert!(p.open_stdin && !p.tty && p.console_size.is_none());
        assert_eq!(r.hostname, "h");
        assert!(r.namespaces.is_empty(), "empty: the daemon's default");
        assert_eq!(
            r.mounts,
            [
                pb::Mount {
                    source: "/src".into(),
                    destination: "/dst".into(),
                    writable: false,
                    private: true,
                },
                pb::Mount {
                    source: "/a".into(),
                    destination: "/b".into(),
                    writable: true,
                    private: false,
                },
            ]
        );
        assert!(r.readonly_rootfs && r.init);
        assert_eq!(r.capabilities_mask, ["NET_RAW"]);
        assert_eq!(r.labels.get("k").map(String::as_str), Some("v=w"));
        let log = r.log.unwrap();
        assert_eq!((log.max_size, log.max_files), (10 << 20, 3));
        let res = r.resources.unwrap();
        assert_eq!((res.memory, res.pids_limit), (64 << 20, -1));
        assert_eq!(res.devices.len(), 1);
        assert!(!res.allow_all_devices);
        assert_eq!(res.cgroup_parent, "p");
        let n = r.network.unwrap();
        assert_eq!(n.mode, pb::NetworkMode::Container as i32);
        assert_eq!(n.container_id, "c0");
        assert_eq!(r.security, None, "no security flag, no SecurityConfig");

        // A random id when none is given; --privileged allows every device.
        let r = create_request(&create_args(&["--privileged"]), None).unwrap();
        assert_eq!(r.id.len(), 12);
        assert!(r.id.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(r.resources.unwrap().allow_all_devices);
        assert_eq!(r.security.unwrap().capabilities, ["ALL"]);
        assert_eq!(r.network, None, "no network flag: the daemon's default");
    }

    #[test]
    fn create_request_needs_the_daemons_defaults_exactly_when_said() {
        let defaults = Defaults {
            capabilities: vec!["CHOWN".into()],
            namespaces: vec!["NEWNS".into()],
            cpus: 2,
        };
        for flags in [
            &[][..],
            &["--cap-add", "SYS_PTRACE"],
            &["--cap-add", "ALL"],
            &["--privileged", "--cap-add", "SYS_PTRACE"],
            &["--userns-map", "0:100000:65536"],
            &["--userns-map", "0:100000:65536", "--namespace", "NEWNS"],
            &["--namespace", "NEWNS", "--cap-drop", "KILL"],
        ] {
            let a = create_args(flags);
            assert_eq!(
                create_request(&a, None).is_ok(),
                !needs_defaults(&a),
                "{flags:?}"
            );
            let r = create_request(&a, Some(&defaults)).unwrap();
            if flags == ["--cap-add", "SYS_PTRACE"] {
                let s = r.security.as_ref().unwrap();
                assert_eq!(s.capabilities, ["CHOWN", "SYS_PTRACE"]);
            }
            if flags == ["--userns-map", "0:100000:65536"] {
                assert_eq!(r.namespaces, ["NEWNS", "NEWUSER"]);
                let s = r.security.as_ref().unwrap();
                assert_eq!(s.uid_mappings.len(), 1);
                assert_eq!(s.uid_mappings, s.gid_mappings);
            }
        }
    }

    #[test]
    fn bad_create_flags_say_which() {
        for (flags, says) in [
            (&["--label", "novalue"][..], "--label"),
            (&["--mount", "/a"], "--mount"),
            (&["--mount", "/a:/b:noexec"], "--mount"),
            (&["--network", "bridged"], "--network"),
            (&["--log-max-size=-1"], "--log-max-size"),
            (&["--memory", "lots"], "--memory"),
            (&["--cpus", "1", "--cpu-quota", "5000"], "--cpus"),
            (&["--ulimit", "nofile"], "--ulimit"),
            (
                &["--userns-map", "0:1", "--namespace", "NEWNS"],
                "--userns-map",
            ),
            (&["--security-opt", "seccomp=/nonexistent.json"], "seccomp"),
        ] {
            let err = create_request(&create_args(flags), None).unwrap_err();
            assert!(err.contains(says), "{flags:?}: {err}");
        }
    }

    #[test]
    fn network_flags() {
        let mode = |flags: &[&str]| {
            let n = network_config(&create_args(flags)).unwrap().unwrap();
            (pb::NetworkMode::try_from(n.mode).unwrap(), n)
        };
        assert_eq!(mode(&["--network", "bridge"]).0, pb::NetworkMode::Bridge);
        assert_eq!(mode(&["--network", "none"]).0, pb::NetworkMode::None);
        assert_eq!(mode(&["--network", "host"]).0, pb::NetworkMode::Host);
        let (m, n) = mode(&["--network", "slirp4netns", "--mtu", "1500"]);
        assert_eq!((m, n.mtu), (pb::NetworkMode::Slirp4netns, 1500));
        let (m, n) = mode(&["--network", "/run/netns/x"]);
        assert_eq!(
            (m, n.netns_path.as_str()),
            (pb::NetworkMode::Netns, "/run/netns/x")
        );
        // --ip, --mac or --mtu alone: the daemon's default mode with them.
        let (m, n) = mode(&[
            "--ip",
            "10.0.0.5",
            "--mac",
            "02:00:00:00:00:01",
            "--mtu",
            "1400",
        ]);
        assert_eq!(m, pb::NetworkMode::Unspecified);
        assert_eq!(
            (n.address.as_str(), n.mac_address.as_str(), n.mtu),
            ("10.0.0.5", "02:00:00:00:00:01", 1400)
        );
    }

    #[test]
    fn exec_requests_of_the_flags() {
        let Cmd::Exec(a) = parse(&[
            "exec",
            "-i",
            "-d",
            "-e",
            "X=1",
            "-u",
            "7",
            "--cwd",
            "/t",
            "--exec-id",
            "e1",
            "c1",
            "--",
            "ls",
            "-l",
        ]) else {
            panic!("not exec");
        };
        let r = exec_request(&a);
        assert_eq!(
            (r.id.as_str(), r.exec_id.as_str(), r.start),
            ("c1", "e1", true)
        );
        let p = r.process.unwrap();
        assert_eq!(p.args, ["ls", "-l"]);
        assert_eq!(
            (p.env, p.user, p.cwd),
            (vec!["X=1".into()], "7".into(), "/t".into())
        );
        assert!(p.open_stdin && !p.tty);
        let Cmd::ExecSync {
            timeout,
            env,
            user,
            cwd,
            id,
            command,
        } = parse(&["exec-sync", "--timeout", "5", "c1", "--", "true"])
        else {
            panic!("not exec-sync");
        };
        let r = exec_sync_request(timeout, env, user, cwd, id, command);
        assert_eq!((r.id.as_str(), r.timeout_seconds), ("c1", 5));
        let p = r.process.unwrap();
        assert_eq!(p.args, ["true"]);
        assert!(!p.tty && !p.open_stdin && p.user.is_empty() && p.cwd.is_empty());
    }

    #[test]
    fn signals_and_times() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("hup").unwrap(), libc::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("NOPE").is_err());
        let t = parse_since("2026-01-02T03:04:05Z").unwrap();
        assert_eq!((t.seconds, t.nanos), (1_767_323_045, 0));
        assert!(parse_since("yesterday").unwrap_err().contains("--since"));
        assert_eq!(parse_tail("all").unwrap(), None);
        assert_eq!(parse_tail("0").unwrap(), Some(0));
        assert_eq!(parse_tail("25").unwrap(), Some(25));
        assert!(parse_tail("-1").unwrap_err().contains("--tail"));
        assert_eq!(key_values("--label", &[]).unwrap().len(), 0);
    }
}
