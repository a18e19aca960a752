//! Capability names as container.json writes them (the seed's `SYS_ADMIN`) and the set a
//! container keeps by default (Docker's).

use std::str::FromStr;

use caps::{Capability, CapsHashSet};

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
}
