//! Capabilities on this kernel: the set a container keeps (`capabilities`, by default Docker's,
//! minus `capabilities_mask`, limited to what the kernel has), and applying it to the bounding,
//! effective, permitted, inheritable and ambient sets. The names are the spec crate's.

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

pub use execdriver_spec::capabilities::{is_valid, name, parse, parse_all, ALL, DOCKER_DEFAULT};

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

/// The capabilities a container's processes hold (its `capabilities` and `capabilities_mask`).
pub fn kept(config: &crate::config::Config) -> CapsHashSet {
    resolve(config.capabilities.as_deref(), &config.capabilities_mask)
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
