//! The container's security settings beyond namespaces, as container.json has them: Docker's
//! masked and read-only paths, rlimits, user namespace id maps, the AppArmor key, and their
//! names. Their checks are the config's (`config/security.rs`); the seccomp profile has a
//! module of its own ([`crate::seccomp`]).

use serde::{Deserialize, Serialize};

/// Docker's masked paths: a file gets /dev/null bound over it, a directory an empty read-only
/// tmpfs. Paths the kernel does not have are skipped.
pub const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths: bound onto themselves read-only.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The AppArmor profile name in container.json's `context`.
pub const APPARMOR_KEY: &str = "apparmor_profile";

/// One resource limit (`setrlimit(2)`), as in OCI's `process.rlimits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE`, `RLIMIT_NPROC`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// u64::MAX is unlimited (RLIM_INFINITY).
    pub hard: u64,
    pub soft: u64,
}

/// A range of ids mapped into a user namespace: `container_id..container_id+size` inside is
/// `host_id..host_id+size` outside.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// The rlimit names Linux has.
pub const RLIMIT_NAMES: [&str; 16] = [
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

/// The full name of an rlimit: `RLIMIT_NOFILE`, or `nofile` / `NOFILE` as Docker's `--ulimit`.
pub fn rlimit_name(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("RLIMIT_") {
        upper
    } else {
        format!("RLIMIT_{upper}")
    };
    RLIMIT_NAMES.iter().find(|n| **n == full).copied()
}

/// Most lines a uid_map or gid_map takes (the kernel's limit since 4.15).
pub const MAX_ID_MAPS: usize = 340;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimit_names() {
        assert_eq!(rlimit_name("RLIMIT_NOFILE"), Some("RLIMIT_NOFILE"));
        assert_eq!(rlimit_name("nofile"), Some("RLIMIT_NOFILE"));
        assert_eq!(rlimit_name("NPROC"), Some("RLIMIT_NPROC"));
        assert_eq!(rlimit_name("files"), None);
    }
}
