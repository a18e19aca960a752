//! A request's `security`: capabilities, no_new_privileges, rlimits, oom_score_adj, seccomp,
//! AppArmor, masked and read-only paths, user namespace id maps.

use std::collections::BTreeMap;
use std::path::Path;

use execdriver_proto::{self as pb, CreateRequest};
use execdriver_shim::security as shim_security;
use execdriver_spec::capabilities;
use execdriver_spec::seccomp::{self, Seccomp};
use execdriver_spec::security::{self as spec_security, IdMap, Rlimit};

use super::checks::{absolute, check_list, check_string};
use super::daemon::Defaults;
use crate::error::{Error, Result};

/// The container.json fields of a request's `security`.
#[derive(Debug, Default)]
pub(super) struct SecurityParts {
    pub(super) capabilities: Option<Vec<String>>,
    pub(super) no_new_privileges: Option<bool>,
    pub(super) rlimits: Vec<Rlimit>,
    pub(super) oom_score_adj: Option<i32>,
    pub(super) seccomp: Seccomp,
    pub(super) masked_paths: Option<Vec<String>>,
    pub(super) readonly_paths: Option<Vec<String>>,
    pub(super) uid_mappings: Vec<IdMap>,
    pub(super) gid_mappings: Vec<IdMap>,
    /// `apparmor_profile`, when one is asked.
    pub(super) context: BTreeMap<String, String>,
}

/// Checks `req.security` and turns it into container.json's fields. A profile the kernel cannot
/// apply (AppArmor missing) is FAILED_PRECONDITION unless the daemon allows running without.
pub(super) fn security(req: &CreateRequest, defaults: &Defaults) -> Result<SecurityParts> {
    let Some(s) = &req.security else {
        return Ok(SecurityParts::default());
    };
    let mut out = SecurityParts {
        no_new_privileges: s.no_new_privileges,
        ..Default::default()
    };

    check_list("security.capabilities", s.capabilities.len(), 64)?;
    for (i, c) in s.capabilities.iter().enumerate() {
        let f = format!("security.capabilities[{i}]");
        check_string(&f, c)?;
        if !capabilities::is_valid(c) {
            return Err(Error::invalid(f, format!("unknown capability {c:?}")));
        }
    }
    if !s.capabilities.is_empty() {
        out.capabilities = Some(s.capabilities.clone());
    }

    check_list("security.rlimits", s.rlimits.len(), 16)?;
    for (i, r) in s.rlimits.iter().enumerate() {
        let f = |sub: &str| format!("security.rlimits[{i}].{sub}");
        check_string(&f("type"), &r.r#type)?;
        let Some(name) = spec_security::rlimit_name(&r.r#type) else {
            return Err(Error::invalid(
                f("type"),
                format!(
                    "unknown rlimit {:?} (RLIMIT_NOFILE, RLIMIT_NPROC, ...)",
                    r.r#type
                ),
            ));
        };
        let name = name.to_owned();
        if out.rlimits.iter().any(|o: &Rlimit| o.kind == name) {
            return Err(Error::invalid(f("type"), format!("{name} given twice")));
        }
        if r.soft > r.hard {
            return Err(Error::invalid(
                f("soft"),
                format!("{} is above the hard limit {}", r.soft, r.hard),
            ));
        }
        if name == "RLIMIT_NOFILE" {
            // The kernel refuses open files above fs.nr_open (EPERM), unlimited included.
            let nr_open = nr_open();
            if r.hard > nr_open {
                return Err(Error::invalid(
                    f("hard"),
                    format!("{} is above this kernel's fs.nr_open ({nr_open})", r.hard),
                ));
            }
        }
        out.rlimits.push(Rlimit {
            kind: name,
            hard: r.hard,
            soft: r.soft,
        });
    }

    if let Some(adj) = s.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(Error::invalid(
                "security.oom_score_adj",
                format!("{adj} is out of range -1000 to 1000"),
            ));
        }
        out.oom_score_adj = Some(adj);
    }

    out.seccomp = seccomp_setting(s.seccomp.as_ref())?;
    if let Seccomp::Profile(p) = &out.seccomp {
        // Too large a filter is the request's fault: find out now, not in the container.
        if let Some(arch) = seccomp::Arch::native() {
            seccomp::compile(p, arch)
                .map_err(|why| Error::invalid("security.seccomp.syscalls", why))?;
        }
    }
    if out.seccomp != Seccomp::Unconfined && seccomp::Arch::native().is_none() {
        return Err(Error::FailedPrecondition(
            "security.seccomp: execdriver has no seccomp filters for this architecture; ask \
             for \"unconfined\""
                .into(),
        ));
    }

    check_string("security.apparmor_profile", &s.apparmor_profile)?;
    match shim_security::apparmor_decision(
        Some(s.apparmor_profile.as_str()),
        shim_security::apparmor_enabled(),
        defaults.allow_missing_apparmor,
    ) {
        shim_security::AppArmor::Refuse(p) => {
            return Err(Error::FailedPrecondition(shim_security::apparmor_refusal(
                "security.apparmor_profile",
                &p,
            )))
        }
        shim_security::AppArmor::Skip(p) => {
            tracing::warn!(
                id = %req.id,
                profile = %p,
                "AppArmor profile asked but the kernel has no AppArmor: running unconfined \
                 (--allow-missing-apparmor)"
            );
        }
        _ => {}
    }
    if !s.apparmor_profile.is_empty() {
        out.context.insert(
            spec_security::APPARMOR_KEY.into(),
            s.apparmor_profile.clone(),
        );
    }

    for (field, extra, defaults_list) in [
        (
            "security.masked_paths",
            &s.masked_paths,
            &spec_security::DEFAULT_MASKED_PATHS[..],
        ),
        (
            "security.readonly_paths",
            &s.readonly_paths,
            &spec_security::DEFAULT_READONLY_PATHS[..],
        ),
    ] {
        check_list(field, extra.len(), 256)?;
        for (i, p) in extra.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let path = absolute(&f, p)?;
            if path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
                || path == Path::new("/")
            {
                return Err(Error::invalid(f, format!("{p:?} is not a path below /")));
            }
        }
        let list = if s.unmask_system_paths {
            Some(extra.clone())
        } else if extra.is_empty() {
            None
        } else {
            let mut all: Vec<String> = defaults_list.iter().map(|p| p.to_string()).collect();
            all.extend(extra.iter().cloned());
            Some(all)
        };
        if field == "security.masked_paths" {
            out.masked_paths = list;
        } else {
            out.readonly_paths = list;
        }
    }

    for (field, maps, dest) in [
        (
            "security.uid_mappings",
            &s.uid_mappings,
            &mut out.uid_mappings,
        ),
        (
            "security.gid_mappings",
            &s.gid_mappings,
            &mut out.gid_mappings,
        ),
    ] {
        check_list(field, maps.len(), spec_security::MAX_ID_MAPS)?;
        *dest = maps
            .iter()
            .map(|m| IdMap {
                container_id: m.container_id,
                host_id: m.host_id,
                size: m.size,
            })
            .collect();
    }
    Ok(out)
}

/// The request's seccomp choice as container.json's.
fn seccomp_setting(s: Option<&pb::SeccompConfig>) -> Result<Seccomp> {
    let Some(s) = s else {
        return Ok(Seccomp::Default);
    };
    check_string("security.seccomp.profile", &s.profile)?;
    let has_profile = !s.default_action.is_empty()
        || s.default_errno_ret.is_some()
        || !s.architectures.is_empty()
        || !s.flags.is_empty()
        || !s.syscalls.is_empty();
    let named = |name: &str| -> Result<()> {
        if has_profile {
            return Err(Error::invalid(
                "security.seccomp.profile",
                format!("{name:?} takes no rules; use \"custom\" for a profile of your own"),
            ));
        }
        Ok(())
    };
    let setting = match s.profile.as_str() {
        "default" => named("default").map(|_| Seccomp::Default)?,
        "unconfined" => named("unconfined").map(|_| Seccomp::Unconfined)?,
        "" if !has_profile => Seccomp::Default,
        "" | "custom" => {
            check_list("security.seccomp.syscalls", s.syscalls.len(), 4096)?;
            let profile = seccomp::Profile {
                default_action: s.default_action.clone(),
                default_errno_ret: s.default_errno_ret,
                architectures: s.architectures.clone(),
                flags: s.flags.clone(),
                syscalls: s
                    .syscalls
                    .iter()
                    .map(|r| seccomp::Syscall {
                        names: r.names.clone(),
                        action: r.action.clone(),
                        errno_ret: r.errno_ret,
                        args: r
                            .args
                            .iter()
                            .map(|a| seccomp::Arg {
                                index: a.index,
                                value: a.value,
                                value_two: a.value_two,
                                op: a.op.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            };
            profile.validate().map_err(|(f, why)| {
                Error::invalid(format!("security.seccomp{}", f.path(false)), why)
            })?;
            Seccomp::Profile(profile)
        }
        other => {
            return Err(Error::invalid(
                "security.seccomp.profile",
                format!("{other:?} is not \"default\", \"unconfined\" or \"custom\""),
            ))
        }
    };
    Ok(setting)
}

/// The most open files a process may have on this host (`fs.nr_open`; the kernel's default
/// when it cannot be read).
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}
