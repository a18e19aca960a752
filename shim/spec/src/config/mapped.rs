//! The checks of the two kernel features an OCI config.json can ask for beyond the rest: the
//! clock offsets of a time namespace (`time_offsets`) and idmapped bind mounts
//! (`filesystems[].uid_mappings`/`gid_mappings`, the `idmap` and `ridmap` options).

use super::security::check_ranges;
use super::{Config, ConfigError, Field, FilesystemField, IdKind, TIME_CLOCKS};
use crate::namespaces::Namespace;

/// Checks `time_offsets` and the idmapped filesystems; called by `Config::validate`.
pub(super) fn validate(c: &Config) -> Result<(), ConfigError> {
    for (clock, offset) in &c.time_offsets {
        let field = || Field::TimeOffset(clock.clone());
        if !TIME_CLOCKS.contains(&clock.as_str()) {
            return Err(ConfigError::new(
                field(),
                format!("{clock:?} is not a clock of a time namespace (monotonic, boottime)"),
            ));
        }
        if !c.has_namespace(Namespace::Time) {
            return Err(ConfigError::new(
                field(),
                "clock offsets need the NEWTIME namespace",
            ));
        }
        if c.namespace_paths.contains_key(&Namespace::Time) {
            return Err(ConfigError::new(
                field(),
                "the time namespace is joined: its offsets were set by whoever made it",
            ));
        }
        if offset.nanos >= 1_000_000_000 {
            return Err(ConfigError::new(
                field(),
                format!("{} nanoseconds: at most 999999999", offset.nanos),
            ));
        }
    }
    for (i, fs) in c.filesystems.iter().flatten().enumerate() {
        if !fs.idmapped() {
            continue;
        }
        let bind = fs.kind == "bind" || fs.options.iter().any(|o| o == "bind" || o == "rbind");
        if !bind {
            return Err(ConfigError::new(
                Field::Filesystem(i, FilesystemField::Options),
                "only bind mounts are idmapped here",
            ));
        }
        let (uids, gids) = (&fs.uid_mappings, &fs.gid_mappings);
        if uids.is_empty() != gids.is_empty() {
            let missing = if uids.is_empty() {
                IdKind::Uid
            } else {
                IdKind::Gid
            };
            return Err(ConfigError::new(
                Field::Filesystem(i, FilesystemField::IdMaps(missing)),
                "an idmapped mount needs both uid and gid mappings",
            ));
        }
        if uids.is_empty() && !c.has_namespace(Namespace::User) {
            return Err(ConfigError::new(
                Field::Filesystem(i, FilesystemField::Options),
                "idmap without mappings takes the container's user namespace mappings, and there is no NEWUSER",
            ));
        }
        for (kind, maps) in [(IdKind::Uid, uids), (IdKind::Gid, gids)] {
            let field = Field::Filesystem(i, FilesystemField::IdMaps(kind));
            check_ranges(kind, maps, field.clone(), |_, _| field.clone())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Filesystem, TimeOffset};
    use super::*;
    use crate::security::IdMap;

    fn base() -> Config {
        Config {
            rootfs: Some("/r".into()),
            args: vec!["/bin/true".into()],
            ..Default::default()
        }
    }

    #[test]
    fn time_offsets_need_a_time_namespace_and_known_clocks() {
        let mut c = base();
        c.time_offsets
            .insert("boottime".into(), TimeOffset { secs: 5, nanos: 0 });
        let e = validate(&c).unwrap_err();
        assert_eq!(e.field.json_path(), "time_offsets.boottime");
        c.namespaces.push(Namespace::Time);
        validate(&c).unwrap();
        c.time_offsets
            .insert("realtime".into(), TimeOffset { secs: 5, nanos: 0 });
        assert!(validate(&c).unwrap_err().reason.contains("not a clock"));
        c.time_offsets.remove("realtime");
        c.time_offsets.insert(
            "monotonic".into(),
            TimeOffset {
                secs: 0,
                nanos: 1_000_000_000,
            },
        );
        assert_eq!(
            validate(&c).unwrap_err().field.json_path(),
            "time_offsets.monotonic"
        );
    }

    #[test]
    fn idmapped_mounts_are_binds_with_both_maps() {
        let map = IdMap {
            container_id: 1000,
            host_id: 0,
            size: 1,
        };
        let mut c = base();
        c.filesystems = Some(vec![Filesystem {
            destination: "/data".into(),
            kind: "bind".into(),
            source: "/srv".into(),
            options: vec!["rbind".into()],
            uid_mappings: vec![map],
            gid_mappings: vec![],
        }]);
        let e = validate(&c).unwrap_err();
        assert_eq!(e.field.json_path(), "filesystems[0].gid_mappings");
        c.filesystems.as_mut().unwrap()[0].gid_mappings = vec![map];
        validate(&c).unwrap();
        let fs = &mut c.filesystems.as_mut().unwrap()[0];
        fs.kind = "tmpfs".into();
        fs.options.clear();
        assert_eq!(
            validate(&c).unwrap_err().field.json_path(),
            "filesystems[0].options"
        );
        let fs = &mut c.filesystems.as_mut().unwrap()[0];
        fs.kind = "bind".into();
        fs.uid_mappings = vec![IdMap { size: 0, ..map }];
        assert_eq!(
            validate(&c).unwrap_err().field.json_path(),
            "filesystems[0].uid_mappings"
        );
        let fs = &mut c.filesystems.as_mut().unwrap()[0];
        fs.uid_mappings.clear();
        fs.gid_mappings.clear();
        fs.options = vec!["idmap".into()];
        assert!(validate(&c).unwrap_err().reason.contains("NEWUSER"));
    }
}
