//! Capabilities on this kernel: the set a container keeps (`capabilities`, by default Docker's,
//! minus `capabilities_mask`, limited to what the kernel has), and applying it to the bounding,
//! effective, permitted, inheritable and ambient sets; or, when the config gives the five sets
//! themselves (`capability_sets`, as OCI configs do), applying those as runc does ([`Plan`]).
//! The names are the spec crate's.

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
    #[error("raising the ambient capability {cap} (it must also be permitted and inheritable): {source}")]
    Raise {
        cap: Capability,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("keeping the capabilities across the uid change: {0}")]
    KeepCaps(#[source] nix::errno::Errno),
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

/// The five sets a process is given (each limited to what this kernel has).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

impl Sets {
    /// The sets named in `sets` (names with or without `CAP_`; `ALL` for every capability
    /// this kernel has), without the ones this kernel lacks.
    pub fn resolve(sets: &crate::config::CapabilitySets) -> Sets {
        let supported = caps::runtime::thread_all_supported();
        let one = |names: &[String]| -> CapsHashSet {
            if names.iter().any(|n| n.eq_ignore_ascii_case(ALL)) {
                return supported.clone();
            }
            let mut set = parse_all(names);
            set.retain(|c| supported.contains(c));
            set
        };
        Sets {
            bounding: one(&sets.bounding),
            effective: one(&sets.effective),
            permitted: one(&sets.permitted),
            inheritable: one(&sets.inheritable),
            ambient: one(&sets.ambient),
        }
    }
}

/// How a process's capabilities are set: Docker's way (one set kept, nothing inherited, none
/// for a non-root user), or the five sets a config gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Keep(CapsHashSet),
    Sets(Sets),
}

impl Plan {
    /// The plan for a process of `config`: `sets` (an exec's own), else the config's
    /// `capability_sets`, else its `capabilities` minus `capabilities_mask`.
    pub fn new(
        config: &crate::config::Config,
        sets: Option<&crate::config::CapabilitySets>,
    ) -> Plan {
        match sets.or(config.capability_sets.as_ref()) {
            Some(s) => Plan::Sets(Sets::resolve(s)),
            None => Plan::Keep(kept(config)),
        }
    }

    /// The capabilities the process may ever hold (its bounding set): what Docker's seccomp
    /// profile opens syscalls for.
    pub fn bounding(&self) -> &CapsHashSet {
        match self {
            Plan::Keep(keep) => keep,
            Plan::Sets(s) => &s.bounding,
        }
    }

    /// Before the uid change (needs CAP_SETPCAP): limits the bounding set and, for the five
    /// sets, keeps the permitted set across the change to a non-root uid.
    pub fn before_uid_change(&self) -> Result<(), Error> {
        apply_bounding(self.bounding())?;
        if let Plan::Sets(_) = self {
            nix::sys::prctl::set_keepcaps(true).map_err(Error::KeepCaps)?;
        }
        Ok(())
    }

    /// After the uid change: Docker's sets ([`apply_process`]), or exactly the given
    /// effective, permitted and inheritable sets with the ambient ones raised. What a process
    /// holds after exec follows from these by the kernel's rules (a non-root process without
    /// file capabilities keeps its ambient set as permitted and effective).
    pub fn after_uid_change(&self, root: bool) -> Result<(), Error> {
        let s = match self {
            Plan::Keep(keep) => return apply_process(keep, root),
            Plan::Sets(s) => s,
        };
        nix::sys::prctl::set_keepcaps(false).map_err(Error::KeepCaps)?;
        caps::clear(None, CapSet::Ambient).map_err(Error::Ambient)?;
        let set = |which: CapSet, name: &'static str, value: &CapsHashSet| {
            caps::set(None, which, value).map_err(|source| Error::Set { set: name, source })
        };
        // Effective stays within permitted at every step; inheritable may only grow within
        // the permitted and bounding sets, so it is set while permitted is still whole.
        set(CapSet::Effective, "effective", &CapsHashSet::new())?;
        set(CapSet::Inheritable, "inheritable", &s.inheritable)?;
        set(CapSet::Permitted, "permitted", &s.permitted)?;
        set(CapSet::Effective, "effective", &s.effective)?;
        // The kernel raises an ambient capability only if it is permitted and inheritable.
        // One that is not is skipped, as runc does: `runc spec`'s own default lists ambient
        // capabilities without an inheritable set, and every engine's configs run as that.
        for cap in s
            .ambient
            .iter()
            .filter(|c| s.permitted.contains(c) && s.inheritable.contains(c))
        {
            caps::raise(None, CapSet::Ambient, *cap)
                .map_err(|source| Error::Raise { cap: *cap, source })?;
        }
        Ok(())
    }
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

    #[test]
    fn sets_take_prefixed_names_and_replace_the_keep_list() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let given = crate::config::CapabilitySets {
            bounding: names(&["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]),
            effective: names(&["CAP_NET_BIND_SERVICE"]),
            permitted: names(&["CAP_NET_BIND_SERVICE"]),
            inheritable: names(&["NET_BIND_SERVICE"]),
            ambient: names(&["CAP_NET_BIND_SERVICE"]),
        };
        let config = crate::config::Config {
            capability_sets: Some(given.clone()),
            capabilities: Some(names(&["SYS_ADMIN"])),
            ..Default::default()
        };
        let plan = Plan::new(&config, None);
        let Plan::Sets(s) = &plan else {
            panic!("{plan:?}")
        };
        assert_eq!(s.bounding.len(), 2);
        assert!(s.ambient.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert!(s.inheritable.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert!(!plan.bounding().contains(&Capability::CAP_SYS_ADMIN));
        let all = Sets::resolve(&crate::config::CapabilitySets {
            bounding: names(&["ALL"]),
            ..Default::default()
        });
        assert_eq!(all.bounding, caps::runtime::thread_all_supported());
        let legacy = crate::config::Config::default();
        assert_eq!(Plan::new(&legacy, None), Plan::Keep(kept(&legacy)));
        // An exec's own sets win over the config's.
        let own = crate::config::CapabilitySets::default();
        assert_eq!(Plan::new(&config, Some(&own)), Plan::Sets(Sets::default()));
    }
}
