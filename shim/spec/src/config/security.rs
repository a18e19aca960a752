//! The checks of container.json's security fields: capabilities kept, rlimits,
//! oom_score_adj, the seccomp profile, masked and read-only paths, AppArmor, and user
//! namespace id maps (which also bound `user`).

use std::path::Path;

use super::{Config, ConfigError, Field, IdKind, IdMapField, RlimitField};
use crate::namespaces::Namespace;
use crate::security::{rlimit_name, IdMap, APPARMOR_KEY, MAX_ID_MAPS};

/// Checks the security fields of a config; errors name the field.
pub(super) fn validate(c: &Config) -> Result<(), ConfigError> {
    if let Some(keep) = &c.capabilities {
        for (i, name) in keep.iter().enumerate() {
            if !crate::capabilities::is_valid(name) {
                return Err(ConfigError::new(
                    Field::Capabilities(i),
                    format!("unknown capability {name:?}"),
                ));
            }
        }
    }
    let mut seen = Vec::new();
    for (i, r) in c.rlimits.iter().enumerate() {
        let f = |sub: RlimitField| Field::Rlimit(i, sub);
        let Some(res) = rlimit_name(&r.kind) else {
            return Err(ConfigError::new(
                f(RlimitField::Type),
                format!("unknown rlimit {:?}", r.kind),
            ));
        };
        if seen.contains(&res) {
            return Err(ConfigError::new(
                f(RlimitField::Type),
                format!("{} given twice", r.kind),
            ));
        }
        seen.push(res);
        if r.soft > r.hard {
            return Err(ConfigError::new(
                f(RlimitField::Soft),
                format!("{} is above the hard limit {}", r.soft, r.hard),
            ));
        }
    }
    if let Some(adj) = c.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(ConfigError::new(
                Field::OomScoreAdj,
                format!("{adj} is out of range -1000 to 1000"),
            ));
        }
    }
    c.seccomp
        .validate()
        .map_err(|(f, why)| ConfigError::new(Field::Seccomp(f), why))?;
    let masked = Field::MaskedPath as fn(usize) -> Field;
    let readonly = Field::ReadonlyPath as fn(usize) -> Field;
    for (field, list) in [(masked, &c.masked_paths), (readonly, &c.readonly_paths)] {
        for (i, p) in list.iter().flatten().enumerate() {
            let f = field(i);
            let path = Path::new(p);
            if !path.is_absolute() || p.contains('\0') || p == "/" {
                return Err(ConfigError::new(
                    f,
                    format!("{p:?} is not an absolute path below /"),
                ));
            }
            if path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
            {
                return Err(ConfigError::new(f, format!("{p:?} contains '..'")));
            }
        }
    }
    if let Some(profile) = c.context.get(APPARMOR_KEY) {
        if profile.is_empty()
            || profile.len() > 256
            || profile.contains(['\0', '\n'])
            || profile.trim() != profile
        {
            return Err(ConfigError::new(
                Field::ApparmorProfile,
                format!("{profile:?} is not a profile name"),
            ));
        }
    }
    validate_id_maps(c)
}

fn validate_id_maps(c: &Config) -> Result<(), ConfigError> {
    let userns = c.has_namespace(Namespace::User);
    for (kind, maps) in [
        (IdKind::Uid, &c.uid_mappings),
        (IdKind::Gid, &c.gid_mappings),
    ] {
        let field = Field::IdMaps(kind);
        if !userns && !maps.is_empty() {
            return Err(ConfigError::new(
                field,
                "id mappings need the NEWUSER namespace",
            ));
        }
        if userns && maps.is_empty() {
            return Err(ConfigError::new(
                field,
                "NEWUSER needs a mapping (e.g. container_id 0, host_id 100000, size 65536)",
            ));
        }
        check_ranges(kind, maps, field, |i, sub| Field::IdMap(kind, i, sub))?;
    }
    if userns {
        let user = c.user();
        let mapped = |maps: &[IdMap], id: u32| {
            maps.iter().any(|m| {
                id >= m.container_id && (id as u64) < m.container_id as u64 + m.size as u64
            })
        };
        if !mapped(&c.uid_mappings, user.uid) {
            return Err(ConfigError::new(
                Field::User,
                format!("uid {} is not in uid_mappings", user.uid),
            ));
        }
        if !mapped(&c.gid_mappings, user.gid) {
            return Err(ConfigError::new(
                Field::User,
                format!("gid {} is not in gid_mappings", user.gid),
            ));
        }
        // The init becomes root of its namespace to set the container up.
        if !mapped(&c.uid_mappings, 0) || !mapped(&c.gid_mappings, 0) {
            return Err(ConfigError::new(
                Field::IdMaps(IdKind::Uid),
                "container id 0 must be mapped (the container's root sets it up)",
            ));
        }
    }
    Ok(())
}

/// Checks id ranges: how many, each non-empty and within the ids, none overlapping another;
/// `whole` names the list, `at` a field of its `i`th range.
pub(super) fn check_ranges(
    kind: IdKind,
    maps: &[IdMap],
    whole: Field,
    at: impl Fn(usize, IdMapField) -> Field,
) -> Result<(), ConfigError> {
    if maps.len() > MAX_ID_MAPS {
        return Err(ConfigError::new(
            whole,
            format!("{} ranges; at most {MAX_ID_MAPS}", maps.len()),
        ));
    }
    for (i, m) in maps.iter().enumerate() {
        let f = |sub: IdMapField| at(i, sub);
        if m.size == 0 {
            return Err(ConfigError::new(f(IdMapField::Size), "must be at least 1"));
        }
        let end = |start: u32| start as u64 + m.size as u64;
        if end(m.container_id) > u32::MAX as u64 || end(m.host_id) > u32::MAX as u64 {
            return Err(ConfigError::new(
                f(IdMapField::Size),
                "the range runs past the largest id (4294967294)",
            ));
        }
        for (j, other) in maps[..i].iter().enumerate() {
            let overlaps =
                |a: u32, b: u32| (a as u64) < b as u64 + other.size as u64 && (b as u64) < end(a);
            if overlaps(m.container_id, other.container_id) {
                return Err(ConfigError::new(
                    f(IdMapField::ContainerId),
                    format!("overlaps {}[{j}]", kind.name()),
                ));
            }
            if overlaps(m.host_id, other.host_id) {
                return Err(ConfigError::new(
                    f(IdMapField::HostId),
                    format!("overlaps {}[{j}]", kind.name()),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_NAMESPACES;
    use crate::security::Rlimit;

    fn valid() -> Config {
        Config {
            namespaces: DEFAULT_NAMESPACES.to_vec(),
            args: vec!["/bin/true".into()],
            ..Default::default()
        }
    }

    fn userns() -> Config {
        let mut c = valid();
        c.namespaces.push(Namespace::User);
        c.uid_mappings = vec![IdMap {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        }];
        c.gid_mappings = c.uid_mappings.clone();
        c
    }

    #[test]
    fn errors_name_the_field() {
        type M = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(M, &str)> = vec![
            (
                Box::new(|c| c.capabilities = Some(vec!["CHOWN".into(), "NOPE".into()])),
                "capabilities[1]",
            ),
            (
                Box::new(|c| {
                    c.rlimits = vec![Rlimit {
                        kind: "RLIMIT_FOO".into(),
                        hard: 1,
                        soft: 1,
                    }]
                }),
                "rlimits[0].type",
            ),
            (
                Box::new(|c| {
                    c.rlimits = vec![Rlimit {
                        kind: "RLIMIT_NOFILE".into(),
                        hard: 10,
                        soft: 20,
                    }]
                }),
                "rlimits[0].soft",
            ),
            (
                Box::new(|c| {
                    let r = Rlimit {
                        kind: "RLIMIT_NOFILE".into(),
                        hard: 10,
                        soft: 5,
                    };
                    c.rlimits = vec![r.clone(), r]
                }),
                "rlimits[1].type",
            ),
            (Box::new(|c| c.oom_score_adj = Some(1001)), "oom_score_adj"),
            (
                Box::new(|c| {
                    c.seccomp = crate::seccomp::Seccomp::Profile(crate::seccomp::Profile {
                        default_action: "SCMP_ACT_ALLOW".into(),
                        syscalls: vec![crate::seccomp::Syscall {
                            names: vec!["read".into()],
                            action: "SCMP_ACT_BOGUS".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                }),
                "seccomp.syscalls[0].action",
            ),
            (
                Box::new(|c| c.masked_paths = Some(vec!["proc/kcore".into()])),
                "masked_paths[0]",
            ),
            (
                Box::new(|c| c.readonly_paths = Some(vec!["/proc/../etc".into()])),
                "readonly_paths[0]",
            ),
            (
                Box::new(|c| {
                    c.context.insert(APPARMOR_KEY.into(), "bad\nprofile".into());
                }),
                "context.apparmor_profile",
            ),
            (
                Box::new(|c| {
                    c.uid_mappings = vec![IdMap {
                        container_id: 0,
                        host_id: 1,
                        size: 1,
                    }]
                }),
                "uid_mappings",
            ),
        ];
        for (mutate, field) in cases {
            let mut c = valid();
            mutate(&mut c);
            assert_eq!(validate(&c).unwrap_err().field.json_path(), field);
        }
        validate(&valid()).unwrap();
    }

    #[test]
    fn user_namespace_maps_are_checked() {
        validate(&userns()).unwrap();
        type M = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(M, &str)> = vec![
            (Box::new(|c| c.gid_mappings.clear()), "gid_mappings"),
            (
                Box::new(|c| c.uid_mappings[0].size = 0),
                "uid_mappings[0].size",
            ),
            (
                Box::new(|c| c.uid_mappings[0].host_id = u32::MAX - 10),
                "uid_mappings[0].size",
            ),
            (
                Box::new(|c| {
                    c.uid_mappings.push(IdMap {
                        container_id: 100,
                        host_id: 500_000,
                        size: 1,
                    })
                }),
                "uid_mappings[1].container_id",
            ),
            (
                Box::new(|c| {
                    c.gid_mappings.push(IdMap {
                        container_id: 70_000,
                        host_id: 100_001,
                        size: 1,
                    })
                }),
                "gid_mappings[1].host_id",
            ),
            (Box::new(|c| c.user = "70000".into()), "user"),
            (
                Box::new(|c| {
                    c.uid_mappings = vec![IdMap {
                        container_id: 1000,
                        host_id: 1000,
                        size: 1,
                    }];
                    c.user = "1000".into();
                }),
                "uid_mappings",
            ),
        ];
        for (mutate, field) in cases {
            let mut c = userns();
            mutate(&mut c);
            assert_eq!(validate(&c).unwrap_err().field.json_path(), field);
        }
    }
}
