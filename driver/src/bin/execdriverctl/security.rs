//! The security flags of create/run (--cap-add, --privileged, --security-opt, --ulimit,
//! --userns-map, --oom-score-adj) as the request's SecurityConfig, and the namespaces the
//! request asks for.

use execdriver_proto as pb;

use crate::args::{CreateArgs, SecurityArgs};

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
    let p: execdriver_shim::seccomp::Profile =
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
pub fn security_config(a: &SecurityArgs) -> Result<Option<pb::SecurityConfig>, String> {
    let mut s = pb::SecurityConfig::default();
    if a.privileged {
        s.capabilities = vec!["ALL".into()];
        s.seccomp = Some(pb::SeccompConfig {
            profile: "unconfined".into(),
            ..Default::default()
        });
        s.unmask_system_paths = true;
    } else if !a.cap_add.is_empty() {
        if a.cap_add.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
            s.capabilities = vec!["ALL".into()];
        } else {
            s.capabilities = execdriver_shim::capabilities::DOCKER_DEFAULT
                .iter()
                .map(|c| c.to_string())
                .chain(a.cap_add.iter().cloned())
                .collect();
        }
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

/// The namespaces to ask for: --namespace (or the default set), plus NEWUSER with
/// --userns-map.
pub fn namespaces(a: &CreateArgs) -> Vec<String> {
    let mut ns = a.namespaces.clone();
    if !a.security.userns_map.is_empty() {
        if ns.is_empty() {
            ns = execdriver_shim::config::DEFAULT_NAMESPACES
                .iter()
                .map(|n| n.name().to_owned())
                .collect();
        }
        if !ns.iter().any(|n| n == "NEWUSER") {
            ns.push("NEWUSER".into());
        }
    }
    ns
}

#[cfg(test)]
mod tests {
    use super::*;

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

        assert_eq!(security_config(&SecurityArgs::default()).unwrap(), None);
        let s = security_config(&SecurityArgs {
            cap_add: vec!["SYS_PTRACE".into()],
            security_opt: vec![
                "no-new-privileges=false".into(),
                "seccomp=unconfined".into(),
                "apparmor=docker-default".into(),
            ],
            userns_map: vec!["0:100000:65536".into()],
            oom_score_adj: Some(-5),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(s.capabilities.len(), 15);
        assert!(s.capabilities.contains(&"SYS_PTRACE".to_string()));
        assert_eq!(s.no_new_privileges, Some(false));
        assert_eq!(s.seccomp.unwrap().profile, "unconfined");
        assert_eq!(s.apparmor_profile, "docker-default");
        assert_eq!(s.uid_mappings, s.gid_mappings);
        assert_eq!(s.oom_score_adj, Some(-5));
        let s = security_config(&SecurityArgs {
            privileged: true,
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(s.capabilities, ["ALL"]);
        assert!(s.unmask_system_paths);
        assert!(security_config(&SecurityArgs {
            security_opt: vec!["label=disable".into()],
            ..Default::default()
        })
        .is_err());
    }
}
