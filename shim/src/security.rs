//! The container's security settings beyond namespaces: what container.json says about them,
//! their validation, and the steps the shim takes for them from outside the container (user
//! namespace maps, rlimits, oom_score_adj) and inside (AppArmor, no_new_privs).
//!
//! The order a process of the container goes through (its init, and every exec'd process):
//!
//! 1. shim, before the process goes on: uid/gid maps (init with NEWUSER), rlimits,
//!    oom_score_adj — written from outside, where the shim has the privilege;
//! 2. the process: (NEWUSER: become root of its namespace), mounts, masked and read-only
//!    paths, pivot_root, hostname, cwd, command lookup, the AppArmor exec profile, the bounding
//!    set, (no_new_privileges off: the seccomp filter, while CAP_SYS_ADMIN is still held),
//!    groups, gid, uid, the effective, permitted, inheritable and ambient sets, no_new_privs,
//!    every descriptor above 2 close-on-exec, the seccomp filter; then it reports Ready and
//!    waits for Start, and execs.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};
use crate::namespaces::Namespace;

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

/// The rlimit names and their resource numbers.
pub const RLIMITS: [(&str, libc::__rlimit_resource_t); 16] = [
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
];

/// Parses an rlimit name: `RLIMIT_NOFILE`, or `nofile` / `NOFILE` as Docker's `--ulimit`.
pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("RLIMIT_") {
        upper
    } else {
        format!("RLIMIT_{upper}")
    };
    RLIMITS.iter().find(|(n, _)| *n == full).map(|(_, r)| *r)
}

/// Most lines a uid_map or gid_map takes (the kernel's limit since 4.15).
pub const MAX_ID_MAPS: usize = 340;

/// Checks the security fields of a config; errors name the field.
pub fn validate(c: &Config) -> Result<(), ConfigError> {
    if let Some(keep) = &c.capabilities {
        for (i, name) in keep.iter().enumerate() {
            if !crate::capabilities::is_valid(name) {
                return Err(ConfigError::new(
                    format!("capabilities[{i}]"),
                    format!("unknown capability {name:?}"),
                ));
            }
        }
    }
    let mut seen = Vec::new();
    for (i, r) in c.rlimits.iter().enumerate() {
        let f = |sub: &str| format!("rlimits[{i}].{sub}");
        let Some(res) = rlimit_resource(&r.kind) else {
            return Err(ConfigError::new(
                f("type"),
                format!("unknown rlimit {:?}", r.kind),
            ));
        };
        if seen.contains(&res) {
            return Err(ConfigError::new(
                f("type"),
                format!("{} given twice", r.kind),
            ));
        }
        seen.push(res);
        if r.soft > r.hard {
            return Err(ConfigError::new(
                f("soft"),
                format!("{} is above the hard limit {}", r.soft, r.hard),
            ));
        }
    }
    if let Some(adj) = c.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(ConfigError::new(
                "oom_score_adj",
                format!("{adj} is out of range -1000 to 1000"),
            ));
        }
    }
    c.seccomp
        .validate()
        .map_err(|(f, why)| ConfigError::new(format!("seccomp{f}"), why))?;
    for (field, list) in [
        ("masked_paths", &c.masked_paths),
        ("readonly_paths", &c.readonly_paths),
    ] {
        for (i, p) in list.iter().flatten().enumerate() {
            let f = format!("{field}[{i}]");
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
                format!("context.{APPARMOR_KEY}"),
                format!("{profile:?} is not a profile name"),
            ));
        }
    }
    validate_id_maps(c)
}

fn validate_id_maps(c: &Config) -> Result<(), ConfigError> {
    let userns = c.has_namespace(Namespace::User);
    for (field, maps) in [
        ("uid_mappings", &c.uid_mappings),
        ("gid_mappings", &c.gid_mappings),
    ] {
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
        if maps.len() > MAX_ID_MAPS {
            return Err(ConfigError::new(
                field,
                format!("{} ranges; at most {MAX_ID_MAPS}", maps.len()),
            ));
        }
        for (i, m) in maps.iter().enumerate() {
            let f = |sub: &str| format!("{field}[{i}].{sub}");
            if m.size == 0 {
                return Err(ConfigError::new(f("size"), "must be at least 1"));
            }
            let end = |start: u32| start as u64 + m.size as u64;
            if end(m.container_id) > u32::MAX as u64 || end(m.host_id) > u32::MAX as u64 {
                return Err(ConfigError::new(
                    f("size"),
                    "the range runs past the largest id (4294967294)",
                ));
            }
            for (j, other) in maps[..i].iter().enumerate() {
                let overlaps = |a: u32, b: u32| {
                    (a as u64) < b as u64 + other.size as u64 && (b as u64) < end(a)
                };
                if overlaps(m.container_id, other.container_id) {
                    return Err(ConfigError::new(
                        f("container_id"),
                        format!("overlaps {field}[{j}]"),
                    ));
                }
                if overlaps(m.host_id, other.host_id) {
                    return Err(ConfigError::new(
                        f("host_id"),
                        format!("overlaps {field}[{j}]"),
                    ));
                }
            }
        }
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
                "user",
                format!("uid {} is not in uid_mappings", user.uid),
            ));
        }
        if !mapped(&c.gid_mappings, user.gid) {
            return Err(ConfigError::new(
                "user",
                format!("gid {} is not in gid_mappings", user.gid),
            ));
        }
        // The init becomes root of its namespace to set the container up.
        if !mapped(&c.uid_mappings, 0) || !mapped(&c.gid_mappings, 0) {
            return Err(ConfigError::new(
                "uid_mappings",
                "container id 0 must be mapped (the container's root sets it up)",
            ));
        }
    }
    Ok(())
}

/// Errors of the steps taken from outside the container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("setting {name} of the container's process: {source}")]
    Rlimit {
        name: String,
        #[source]
        source: nix::errno::Errno,
    },
}

fn write_proc(path: String, data: &str) -> Result<(), Error> {
    // One write: the kernel takes a map file in a single write only.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(data.as_bytes()))
        .map_err(|source| Error::Write { path, source })
}

/// The content of a uid_map or gid_map file.
pub fn id_map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// The shim's part for a new process of the container, before it goes on: for the init of a
/// container with NEWUSER its uid and gid maps (setgroups stays allowed: the shim is
/// privileged, and the container's root may use setgroups within its mapped groups, as
/// under runc), then the rlimits and oom_score_adj (from outside, so raising a hard limit or
/// lowering the score works even in a user namespace).
pub fn parent_setup(config: &Config, pid: Pid, init: bool) -> Result<(), Error> {
    if init && config.has_namespace(Namespace::User) {
        write_proc(
            format!("/proc/{pid}/uid_map"),
            &id_map_text(&config.uid_mappings),
        )?;
        write_proc(
            format!("/proc/{pid}/gid_map"),
            &id_map_text(&config.gid_mappings),
        )?;
    }
    for r in &config.rlimits {
        // Validated: the name is known.
        let Some(res) = rlimit_resource(&r.kind) else {
            continue;
        };
        crate::sys::prlimit(pid, res, r.soft, r.hard).map_err(|source| Error::Rlimit {
            name: r.kind.clone(),
            source,
        })?;
    }
    if let Some(adj) = config.oom_score_adj {
        write_proc(format!("/proc/{pid}/oom_score_adj"), &adj.to_string())?;
    }
    Ok(())
}

/// Whether the kernel has AppArmor enabled.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim_start().starts_with('Y'))
}

/// What to do about a requested AppArmor profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppArmor {
    /// Nothing asked (or `unconfined`): nothing to do.
    None,
    /// Apply this profile at exec.
    Apply(String),
    /// The kernel has no AppArmor and the daemon allows running without it: run unconfined,
    /// with a warning.
    Skip(String),
    /// The kernel has no AppArmor: refuse (FAILED_PRECONDITION).
    Refuse(String),
}

/// Decides what happens to `profile` given whether AppArmor is `enabled` and whether the
/// daemon runs with `--allow-missing-apparmor`.
pub fn apparmor_decision(profile: Option<&str>, enabled: bool, allow_missing: bool) -> AppArmor {
    match profile {
        None | Some("") | Some("unconfined") => AppArmor::None,
        Some(p) if enabled => AppArmor::Apply(p.to_owned()),
        Some(p) if allow_missing => AppArmor::Skip(p.to_owned()),
        Some(p) => AppArmor::Refuse(p.to_owned()),
    }
}

/// The message for a refused profile; `field` is how the caller names it.
pub fn apparmor_refusal(field: &str, profile: &str) -> String {
    format!(
        "{field}: AppArmor profile {profile:?} requested, but this kernel does not have AppArmor \
         enabled; start the daemon with --allow-missing-apparmor to run such containers without \
         it, or ask for \"unconfined\""
    )
}

/// The AppArmor policy for a container.json, where the shim and nsinit start containers: an
/// error (FAILED_PRECONDITION, naming `context.apparmor_profile`) for a profile the kernel
/// cannot apply, unless `allow_missing` (`--allow-missing-apparmor`); then the warning to log.
pub fn check_apparmor(config: &Config, allow_missing: bool) -> Result<Option<String>, String> {
    let field = format!("context.{APPARMOR_KEY}");
    match apparmor_decision(config.apparmor_profile(), apparmor_enabled(), allow_missing) {
        AppArmor::Refuse(p) => Err(apparmor_refusal(&field, &p)),
        AppArmor::Skip(p) => Ok(Some(format!(
            "warning: {field} {p:?} asked, but this kernel has no AppArmor; running unconfined \
             (--allow-missing-apparmor)"
        ))),
        AppArmor::None | AppArmor::Apply(_) => Ok(None),
    }
}

/// Asks the kernel to confine the next exec of this process with `profile`.
pub fn apparmor_exec(profile: &str) -> std::io::Result<()> {
    let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
        "/proc/self/attr/apparmor/exec"
    } else {
        "/proc/self/attr/exec"
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(attr)
        .and_then(|mut f| f.write_all(format!("exec {profile}").as_bytes()))
}

/// A sealed in-memory copy of an executable (memfd: write, grow and shrink sealed), for
/// starting shims from: a shim's image is then no file on the host, so a container process
/// that reaches `/proc/<shim-image pid>/exe` (the `--init` reaper, an exec'd process before
/// it execs) cannot rewrite the host's binary (the runc CVE-2019-5736 class).
pub fn sealed_copy(path: &Path) -> std::io::Result<OwnedFd> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let name = c"execdriver-shim";
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    // MFD_EXEC (6.3+) keeps the copy executable where vm.memfd_noexec would forbid it.
    let fd = memfd_create(name, flags | MFdFlags::from_bits_retain(libc::MFD_EXEC))
        .or_else(|_| memfd_create(name, flags))
        .map_err(std::io::Error::from)?;
    let mut src = std::fs::File::open(path)?;
    let mut dst = std::fs::File::from(fd);
    std::io::copy(&mut src, &mut dst)?;
    let fd = OwnedFd::from(dst);
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(fd.as_fd(), FcntlArg::F_ADD_SEALS(seals)).map_err(std::io::Error::from)?;
    Ok(fd)
}

/// Whether `fd` is sealed against writes.
pub fn is_write_sealed(fd: impl AsFd) -> bool {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    fcntl(fd.as_fd(), FcntlArg::F_GET_SEALS)
        .is_ok_and(|s| SealFlag::from_bits_truncate(s).contains(SealFlag::F_SEAL_WRITE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_NAMESPACES;

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
            assert_eq!(validate(&c).unwrap_err().field, field);
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
            assert_eq!(validate(&c).unwrap_err().field, field);
        }
        assert_eq!(id_map_text(&userns().uid_mappings), "0 100000 65536\n");
    }

    #[test]
    fn rlimit_names() {
        assert_eq!(rlimit_resource("RLIMIT_NOFILE"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(rlimit_resource("nofile"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(rlimit_resource("NPROC"), Some(libc::RLIMIT_NPROC));
        assert_eq!(rlimit_resource("files"), None);
    }

    #[test]
    fn apparmor_policy() {
        use AppArmor::{Apply, Refuse, Skip};
        assert_eq!(apparmor_decision(None, false, false), AppArmor::None);
        assert_eq!(
            apparmor_decision(Some("unconfined"), false, false),
            AppArmor::None
        );
        assert_eq!(
            apparmor_decision(Some("docker-default"), true, false),
            Apply("docker-default".into())
        );
        assert_eq!(
            apparmor_decision(Some("docker-default"), false, false),
            Refuse("docker-default".into())
        );
        assert_eq!(
            apparmor_decision(Some("docker-default"), false, true),
            Skip("docker-default".into())
        );
        let msg = apparmor_refusal("context.apparmor_profile", "docker-default");
        assert!(msg.starts_with("context.apparmor_profile: "), "{msg}");
        assert!(msg.contains("--allow-missing-apparmor"), "{msg}");
    }

    #[test]
    fn sealed_copy_cannot_be_written() {
        let fd = sealed_copy(Path::new("/proc/self/exe")).unwrap();
        assert!(is_write_sealed(&fd));
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, std::fs::metadata("/proc/self/exe").unwrap().len());
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert!(f.write_all(b"x").is_err(), "a sealed copy took a write");
        assert!(f.set_len(0).is_err());
    }
}
