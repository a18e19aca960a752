//! Capabilities: the seed's names (`SYS_ADMIN`) and dropping the ones in `capabilities_mask`.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};

/// Errors changing the capability sets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dropping {cap} from the {set} set: {source}")]
    Drop {
        cap: Capability,
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("clearing the ambient set: {0}")]
    Ambient(#[source] caps::errors::CapsError),
}

/// Parses a capability name as the seed writes it (`NET_ADMIN`); `CAP_NET_ADMIN` and lower case
/// are accepted too.
pub fn parse(name: &str) -> Option<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full).ok()
}

/// The seed's name of a capability: `NET_ADMIN`.
pub fn name(cap: Capability) -> String {
    cap.to_string().trim_start_matches("CAP_").to_owned()
}

/// Parses a list of names; unknown names were rejected by config validation, so they are skipped.
pub fn parse_all(names: &[String]) -> CapsHashSet {
    names.iter().filter_map(|n| parse(n)).collect()
}

/// Docker's default set: what a container keeps when the request names no capabilities.
pub const DOCKER_DEFAULT: [&str; 14] = [
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
];

/// Drops `mask` from the bounding set. Needs CAP_SETPCAP, so it runs before changing uid.
pub fn drop_bounding(mask: &CapsHashSet) -> Result<(), Error> {
    let supported = caps::runtime::thread_all_supported();
    for cap in mask.iter().filter(|c| supported.contains(c)) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|source| Error::Drop {
            cap: *cap,
            set: "bounding",
            source,
        })?;
    }
    Ok(())
}

/// Drops `mask` from the effective, permitted and inheritable sets and clears the ambient set.
/// For a non-root user the kernel clears the sets at exec anyway; this makes root match.
pub fn drop_process(mask: &CapsHashSet) -> Result<(), Error> {
    caps::clear(None, CapSet::Ambient).map_err(Error::Ambient)?;
    for (set, name) in [
        (CapSet::Inheritable, "inheritable"),
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
    ] {
        let current = caps::read(None, set).unwrap_or_default();
        for cap in mask.iter().filter(|c| current.contains(c)) {
            caps::drop(None, set, *cap).map_err(|source| Error::Drop {
                cap: *cap,
                set: name,
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_names_parse() {
        assert_eq!(parse("SYS_ADMIN"), Some(Capability::CAP_SYS_ADMIN));
        assert_eq!(parse("CAP_NET_ADMIN"), Some(Capability::CAP_NET_ADMIN));
        assert_eq!(parse("mknod"), Some(Capability::CAP_MKNOD));
        assert_eq!(parse("SYS_BOGUS"), None);
        assert_eq!(name(Capability::CAP_AUDIT_WRITE), "AUDIT_WRITE");
    }
}
