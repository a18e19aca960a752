//! The security flags of create/run (--cap-add, --privileged, --security-opt, --ulimit,
//! --userns-map, --oom-score-adj) as the request's SecurityConfig, the namespaces the request
//! asks for, and the daemon's defaults (from Info) that --cap-add and --userns-map start from
//! and --cpus is checked against.

use execdriver_proto as pb;

use crate::args::{CreateArgs, SecurityArgs};

/// What the daemon gives a container that asks for nothing, as its Info says: the
/// capabilities --cap-add adds to and the namespaces --userns-map adds NEWUSER to; and the
/// host's CPUs, the most --cpus may ask. Asked for only when a flag needs them
/// (`needs_defaults`), so that the CLI sends what the daemon it talks to means, whatever
/// version either is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Defaults {
    pub capabilities: Vec<String>,
    pub namespaces: Vec<String>,
    /// 0: the daemon does not say (older than Info.cpus).
    pub cpus: u32,
}

impl From<pb::InfoResponse> for Defaults {
    fn from(info: pb::InfoResponse) -> Defaults {
        Defaults {
            capabilities: info.default_capabilities,
            namespaces: info.default_namespaces,
            cpus: info.cpus,
        }
    }
}

/// Whether the request of these flags starts from the daemon's defaults, or --cpus is to be
/// checked against the host's.
pub fn needs_defaults(a: &CreateArgs) -> bool {
    adds_to_default_capabilities(&a.security)
        || adds_to_default_namespaces(a)
        || a.limits.cpus.is_some()
}

/// Refuses a capability name that is none, naming its flag: `--cap-add BOGUS: unknown
/// capability` (the daemon would name the request's field, security.capabilities[14]).
pub fn check_capabilities(a: &SecurityArgs, cap_drop: &[String]) -> Result<(), String> {
    let named = a.cap_add.iter().map(|c| ("--cap-add", c));
    for (flag, c) in named.chain(cap_drop.iter().map(|c| ("--cap-drop", c))) {
        if !execdriver_spec::capabilities::is_valid(c) {
            return Err(format!("{flag} {c}: unknown capability"));
        }
    }
    Ok(())
}

/// --cap-add without --privileged or ALL: the default set plus those named.
fn adds_to_default_capabilities(a: &SecurityArgs) -> bool {
    !a.privileged
        && !a.cap_add.is_empty()
        && !a.cap_add.iter().any(|c| c.eq_ignore_ascii_case("ALL"))
}

/// --userns-map without --namespace: the default namespaces plus NEWUSER.
fn adds_to_default_namespaces(a: &CreateArgs) -> bool {
    !a.security.userns_map.is_empty() && a.namespaces.is_empty()
}

/// The defaults, which the caller fetched when `needs_defaults` said so.
fn given(defaults: Option<&Defaults>) -> Result<&Defaults, String> {
    defaults.ok_or_else(|| "the daemon's defaults (Info) were needed but not asked for".into())
}

/// Parses --ulimit TYPE=SOFT[:HARD].
pub fn parse_ulimit(s: &str) -> Result<pb::Rlimit, String> {
    let bad = || format!("--ulimit {s:?}: expected TYPE=SOFT[:HARD], e.g. nofile=1024:2048");
    let (kind, values) = s.split_once('=').ok_or_else(bad)?;
    let num = |v: &str| -> Result<u64, String> {
        match v {
            "unlimited" | "-1" => Ok(u64::MAX),
            v => v.parse().map_err(|_| bad()),
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(values)?, num(values)?),
    };
    Ok(pb::Rlimit {
        r#type: kind.to_owned(),
        soft,
        hard,
    })
}

/// Parses --userns-map CONTAINER_ID:HOST_ID:SIZE.
pub fn parse_id_map(s: &str) -> Result<pb::IdMapping, String> {
    let bad = || format!("--userns-map {s:?}: expected CONTAINER_ID:HOST_ID:SIZE");
    let parts: Vec<u32> = s
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [container_id, host_id, size] = parts[..] else {
        return Err(bad());
    };
    Ok(pb::IdMapping {
        container_id,
        host_id,
        size,
    })
}

/// An OCI seccomp profile file as the request's SeccompConfig.
pub fn seccomp_file(path: &str) -> Result<pb::SeccompConfig, String> {
    let data = std::fs::read(path).map_err(|e| format!("--security-opt seccomp={path}: {e}"))?;
    let p: execdriver_spec::seccomp::Profile =
        serde_json::from_slice(&data).map_err(|e| format!("--security-opt seccomp={path}: {e}"))?;
    Ok(pb::SeccompConfig {
        profile: "custom".into(),
        default_action: p.default_action,
        default_errno_ret: p.default_errno_ret,
        architectures: p.architectures,
        flags: p.flags,
        syscalls: p
            .syscalls
            .into_iter()
            .map(|r| pb::SeccompSyscall {
                names: r.names,
                action: r.action,
                errno_ret: r.errno_ret,
                args: r
                    .args
                    .into_iter()
                    .map(|a| pb::SeccompArg {
                        index: a.index,
                        value: a.value,
                        value_two: a.value_two,
                        op: a.op,
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// The request's SecurityConfig from the flags (None when no flag says anything).
pub fn security_config(
    a: &SecurityArgs,
    defaults: Option<&Defaults>,
) -> Result<Option<pb::SecurityConfig>, String> {
    let mut s = pb::SecurityConfig::default();
    if a.privileged {
        s.capabilities = vec!["ALL".into()];
        s.seccomp = Some(pb::SeccompConfig {
            profile: "unconfined".into(),
            ..Default::default()
        });
        s.unmask_system_paths = true;
    } else if adds_to_default_capabilities(a) {
        s.capabilities = given(defaults)?
            .capabilities
            .iter()
            .chain(&a.cap_add)
            .cloned()
            .collect();
    } else if !a.cap_add.is_empty() {
        // ALL among them.
        s.capabilities = vec!["ALL".into()];
    }
    for opt in &a.security_opt {
        let (key, value) = opt.split_once('=').unwrap_or((opt.as_str(), ""));
        match (key, value) {
            ("seccomp", "unconfined" | "default") => {
                s.seccomp = Some(pb::SeccompConfig {
                    profile: value.into(),
                    ..Default::default()
                })
            }
            ("seccomp", path) if !path.is_empty() => s.seccomp = Some(seccomp_file(path)?),
            ("no-new-privileges", "" | "true") => s.no_new_privileges = Some(true),
            ("no-new-privileges", "false") => s.no_new_privileges = Some(false),
            ("apparmor", profile) if !profile.is_empty() => s.apparmor_profile = profile.to_owned(),
            ("systempaths", "unconfined") => s.unmask_system_paths = true,
            _ => {
                return Err(format!(
                    "--security-opt {opt:?}: expected seccomp=unconfined|default|PATH, \
                     no-new-privileges[=true|false], apparmor=PROFILE or systempaths=unconfined"
                ))
            }
        }
    }
    s.rlimits = a
        .ulimits
        .iter()
        .map(|u| parse_ulimit(u))
        .collect::<Result<_, _>>()?;
    s.uid_mappings = a
        .userns_map
        .iter()
        .map(|m| parse_id_map(m))
        .collect::<Result<_, _>>()?;
    s.gid_mappings = s.uid_mappings.clone();
    s.oom_score_adj = a.oom_score_adj;
    Ok((s != pb::SecurityConfig::default()).then_some(s))
}

/// The namespaces to ask for: --namespace (or the daemon's default set), plus NEWUSER with
/// --userns-map.
pub fn namespaces(a: &CreateArgs, defaults: Option<&Defaults>) -> Result<Vec<String>, String> {
    let mut ns = a.namespaces.clone();
    if !a.security.userns_map.is_empty() {
        if adds_to_default_namespaces(a) {
            ns = given(defaults)?.namespaces.clone();
            if ns.is_empty() {
                return Err(
                    "--userns-map: the daemon does not say which namespaces it gives by \
                            default (an older execdriverd?); name them with --namespace"
                        .into(),
                );
            }
        }
        if !ns.iter().any(|n| n == "NEWUSER") {
            ns.push("NEWUSER".into());
        }
    }
    Ok(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsed::create_args;

    /// An Info as a daemon gives it: Docker's 14 capabilities and the five namespaces.
    fn info() -> pb::InfoResponse {
        pb::InfoResponse {
            default_capabilities: [
                "CHOWN",
                "DAC_OVERRIDE",
                "FSETID",
                "FOWNER",
                "MKNOD",
                "NET_RAW",
                "SETGID",
                "SETUID",
                "SETFCAP",
                "SETPCAP",
                "NET_BIND_SERVICE",
                "SYS_CHROOT",
                "KILL",
                "AUDIT_WRITE",
            ]
            .map(String::from)
            .to_vec(),
            default_namespaces: ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn security_flags() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            pb::Rlimit {
                r#type: "nofile".into(),
                soft: 1024,
                hard: 2048
            }
        );
        let r = parse_ulimit("nproc=unlimited").unwrap();
        assert_eq!((r.soft, r.hard), (u64::MAX, u64::MAX));
        assert!(parse_ulimit("nofile").is_err() && parse_ulimit("nofile=x").is_err());
        let m = parse_id_map("0:100000:65536").unwrap();
        assert_eq!((m.container_id, m.host_id, m.size), (0, 100_000, 65536));
        assert!(parse_id_map("0:1").is_err());

        let d = Defaults::from(info());
        assert_eq!(
            security_config(&SecurityArgs::default(), None).unwrap(),
            None
        );
        let s = security_config(
            &SecurityArgs {
                cap_add: vec!["SYS_PTRACE".into()],
                security_opt: vec![
                    "no-new-privileges=false".into(),
                    "seccomp=unconfined".into(),
                    "apparmor=docker-default".into(),
                ],
                userns_map: vec!["0:100000:65536".into()],
                oom_score_adj: Some(-5),
                ..Default::default()
            },
            Some(&d),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.capabilities.len(), 15);
        assert!(s.capabilities.contains(&"SYS_PTRACE".to_string()));
        assert_eq!(s.no_new_privileges, Some(false));
        assert_eq!(s.seccomp.unwrap().profile, "unconfined");
        assert_eq!(s.apparmor_profile, "docker-default");
        assert_eq!(s.uid_mappings, s.gid_mappings);
        assert_eq!(s.oom_score_adj, Some(-5));
        let s = security_config(
            &SecurityArgs {
                privileged: true,
                ..Default::default()
            },
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.capabilities, ["ALL"]);
        assert!(s.unmask_system_paths);
        assert!(security_config(
            &SecurityArgs {
                security_opt: vec!["label=disable".into()],
                ..Default::default()
            },
            None
        )
        .is_err());
    }

    #[test]
    fn defaults_are_infos() {
        let i = pb::InfoResponse {
            default_capabilities: vec!["CHOWN".into()],
            default_namespaces: vec!["NEWNS".into()],
            namespaces: vec!["NEWNS".into(), "NEWUSER".into()],
            cpus: 4,
            ..Default::default()
        };
        assert_eq!(
            Defaults::from(i),
            Defaults {
                capabilities: vec!["CHOWN".into()],
                namespaces: vec!["NEWNS".into()],
                cpus: 4,
            }
        );
        assert!(needs_defaults(&create_args(&["--cpus", "1"])));
    }

    #[test]
    fn unknown_capabilities_name_their_flag() {
        let a = create_args(&["--cap-add", "BOGUS"]);
        let err = check_capabilities(&a.security, &a.cap_drop).unwrap_err();
        assert_eq!(err, "--cap-add BOGUS: unknown capability");
        let a = create_args(&["--cap-add", "sys_ptrace", "--cap-drop", "NOPE"]);
        let err = check_capabilities(&a.security, &a.cap_drop).unwrap_err();
        assert_eq!(err, "--cap-drop NOPE: unknown capability");
        // Docker's spellings: any case, CAP_ or not, ALL.
        let a = create_args(&["--cap-add", "CAP_NET_ADMIN", "--cap-drop", "all"]);
        assert!(check_capabilities(&a.security, &a.cap_drop).is_ok());
        // Before any request is made, also with the daemon's defaults at hand.
        let a = create_args(&["--cap-add", "SYS_PTRACE", "--cap-add", "BOGUS"]);
        let d = Defaults::from(info());
        let err = crate::request::create_request(&a, Some(&d)).unwrap_err();
        assert_eq!(err, "--cap-add BOGUS: unknown capability");
    }

    #[test]
    fn cap_add_adds_to_the_daemons_defaults() {
        let d = Defaults::from(pb::InfoResponse {
            default_capabilities: vec!["CHOWN".into(), "KILL".into()],
            ..Default::default()
        });
        let a = create_args(&["--cap-add", "SYS_PTRACE", "--cap-add", "NET_ADMIN"]);
        assert!(needs_defaults(&a));
        let s = security_config(&a.security, Some(&d)).unwrap().unwrap();
        assert_eq!(s.capabilities, ["CHOWN", "KILL", "SYS_PTRACE", "NET_ADMIN"]);
        // Without the daemon's word there is no set to add to: no compiled-in guess.
        assert!(security_config(&a.security, None).is_err());

        // ALL (any case) or --privileged: every capability, the defaults not needed.
        for flags in [
            &["--cap-add", "all", "--cap-add", "SYS_PTRACE"][..],
            &["--privileged", "--cap-add", "SYS_PTRACE"],
        ] {
            let a = create_args(flags);
            assert!(!needs_defaults(&a), "{flags:?}");
            let s = security_config(&a.security, None).unwrap().unwrap();
            assert_eq!(s.capabilities, ["ALL"], "{flags:?}");
        }
        // --cap-drop alone is a mask the daemon applies; no defaults, no SecurityConfig.
        let a = create_args(&["--cap-drop", "NET_RAW"]);
        assert!(!needs_defaults(&a));
        assert_eq!(security_config(&a.security, None).unwrap(), None);
    }

    #[test]
    fn userns_map_adds_newuser_to_the_daemons_namespaces() {
        let d = Defaults::from(info());
        let a = create_args(&["--userns-map", "0:100000:65536"]);
        assert!(needs_defaults(&a));
        assert_eq!(
            namespaces(&a, Some(&d)).unwrap(),
            ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"]
        );
        let other = Defaults {
            namespaces: vec!["NEWNS".into(), "NEWPID".into()],
            ..Default::default()
        };
        assert_eq!(
            namespaces(&a, Some(&other)).unwrap(),
            ["NEWNS", "NEWPID", "NEWUSER"]
        );
        assert!(namespaces(&a, None).is_err());
        // A daemon whose Info has no default_namespaces (older): say so, do not send NEWUSER
        // alone.
        let err = namespaces(&a, Some(&Defaults::default())).unwrap_err();
        assert!(err.contains("--namespace"), "{err}");

        // --namespace given: NEWUSER added once, the defaults not needed.
        let a = create_args(&["--userns-map", "0:1:1", "--namespace", "NEWNS"]);
        assert!(!needs_defaults(&a));
        assert_eq!(namespaces(&a, None).unwrap(), ["NEWNS", "NEWUSER"]);
        let a = create_args(&[
            "--userns-map",
            "0:1:1",
            "--namespace",
            "NEWUSER",
            "--namespace",
            "NEWNS",
        ]);
        assert_eq!(namespaces(&a, None).unwrap(), ["NEWUSER", "NEWNS"]);

        // Without --userns-map: as given, and none given stays empty (the daemon's default).
        let a = create_args(&["--namespace", "NEWNS", "--namespace", "NEWPID"]);
        assert_eq!(namespaces(&a, None).unwrap(), ["NEWNS", "NEWPID"]);
        let a = create_args(&[]);
        assert!(!needs_defaults(&a));
        assert!(namespaces(&a, None).unwrap().is_empty());
    }
}
