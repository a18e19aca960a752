//! Capabilities: the seed's names (`SYS_ADMIN`), the set a container keeps (`capabilities`, by
//! default Docker's, minus `capabilities_mask`), and applying it to the bounding, effective,
//! permitted, inheritable and ambient sets.

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
    #[error("setting the {set} set: {source}")]
    Set {
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
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

/// The name that stands for every capability, in a keep list or a mask.
pub const ALL: &str = "ALL";

/// Whether `name` is a capability or `ALL`.
pub fn is_valid(name: &str) -> bool {
    name.eq_ignore_ascii_case(ALL) || parse(name).is_some()
}

/// The capabilities a container's processes hold: `keep` (absent: [`DOCKER_DEFAULT`]; `ALL`:
/// every capability this kernel has) minus `mask` (`ALL` drops them all).
pub fn resolve(keep: Option<&[String]>, mask: &[String]) -> CapsHashSet {
    let supported = caps::runtime::thread_all_supported();
    let is_all = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case(ALL));
    let mut set: CapsHashSet = match keep {
        None => DOCKER_DEFAULT.iter().filter_map(|n| parse(n)).collect(),
        Some(k) if is_all(k) => supported.clone(),
        Some(k) => parse_all(k),
    };
    if is_all(mask) {
        set.clear();
    }
    for c in parse_all(mask) {
        set.remove(&c);
    }
    set.retain(|c| supported.contains(c));
    set
}

/// Limits the bounding set to `keep`. Needs CAP_SETPCAP, so it runs before changing uid.
pub fn apply_bounding(keep: &CapsHashSet) -> Result<(), Error> {
    let current = caps::read(None, CapSet::Bounding).unwrap_or_default();
    for cap in current.iter().filter(|c| !keep.contains(c)) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|source| Error::Drop {
            cap: *cap,
            set: "bounding",
            source,
        })?;
    }
    Ok(())
}

/// Sets the process's sets once it runs as its final user: the ambient and inheritable sets
/// empty (as Docker does since CVE-2022-24769: nothing is inherited across exec beyond what
/// root keeps anyway), and for root the effective and permitted sets exactly `keep`. A
/// non-root user has none (the kernel cleared them when the uid changed, and a non-root
/// process gets none at exec): Docker's semantics.
pub fn apply_process(keep: &CapsHashSet, root: bool) -> Result<(), Error> {
    caps::clear(None, CapSet::Ambient).map_err(Error::Ambient)?;
    let set = |which: CapSet, name: &'static str, value: &CapsHashSet| {
        caps::set(None, which, value).map_err(|source| Error::Set { set: name, source })
    };
    set(CapSet::Inheritable, "inheritable", &CapsHashSet::new())?;
    let permitted = caps::read(None, CapSet::Permitted).unwrap_or_default();
    let target: CapsHashSet = if root {
        keep.intersection(&permitted).copied().collect()
    } else {
        CapsHashSet::new()
    };
    // Effective first: it must stay within the permitted set at every step.
    set(CapSet::Effective, "effective", &target)?;
    set(CapSet::Permitted, "permitted", &target)?;
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
        assert!(is_valid("all") && is_valid("KILL") && !is_valid("KILLALL"));
    }

    #[test]
    fn keep_list_and_mask_combine() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let default = resolve(None, &[]);
        assert_eq!(default.len(), DOCKER_DEFAULT.len());
        assert!(default.contains(&Capability::CAP_NET_RAW));
        assert!(!default.contains(&Capability::CAP_SYS_ADMIN));
        let no_raw = resolve(None, &names(&["NET_RAW"]));
        assert!(!no_raw.contains(&Capability::CAP_NET_RAW));
        assert_eq!(no_raw.len(), DOCKER_DEFAULT.len() - 1);
        let all = resolve(Some(&names(&["ALL"])), &names(&["SYS_ADMIN"]));
        assert!(all.contains(&Capability::CAP_SYS_PTRACE));
        assert!(!all.contains(&Capability::CAP_SYS_ADMIN));
        assert!(resolve(Some(&names(&["ALL"])), &names(&["all"])).is_empty());
        let explicit = resolve(Some(&names(&["CHOWN", "CAP_KILL"])), &[]);
        assert_eq!(explicit.len(), 2);
        assert!(resolve(Some(&[]), &[]).is_empty());
    }
}
