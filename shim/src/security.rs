//! The container's security settings beyond namespaces (their model and checks are the spec
//! crate's): the steps the shim takes for them from outside the container (user namespace
//! maps, rlimits, oom_score_adj) and inside (AppArmor, no_new_privs).
//!
//! The order a process of the container goes through (its init, and every exec'd process):
//!
//! 1. shim, before the process goes on: uid/gid maps (init with NEWUSER), rlimits,
//!    oom_score_adj — written from outside, where the shim has the privilege;
//! 2. the process: (namespaces joined by path, user first), (NEWUSER: become root of its
//!    namespace), hostname, domain name, sysctls, mounts, masked and read-only paths,
//!    pivot_root, cwd, command lookup, the AppArmor exec profile, the I/O priority and
//!    personality, the bounding set (with capability sets: keep-caps on), (no_new_privileges
//!    off: the seccomp filter, while CAP_SYS_ADMIN is still held), groups (gid and additional
//!    gids), gid, uid, the effective, permitted, inheritable and ambient sets, no_new_privs,
//!    every descriptor above 2 close-on-exec, the seccomp filter, the umask; then it reports
//!    Ready and waits for Start, and execs.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::unistd::Pid;

use crate::config::Config;
use crate::namespaces::Namespace;

pub use execdriver_spec::security::{
    IdMap, Rlimit, APPARMOR_KEY, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS,
};

/// The rlimit names and their resource numbers.
const RLIMITS: [(&str, libc::__rlimit_resource_t); 16] = [
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

/// The resource number of an rlimit name (any spelling [`execdriver_spec::security::rlimit_name`]
/// takes).
pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    let full = execdriver_spec::security::rlimit_name(name)?;
    RLIMITS.iter().find(|(n, _)| *n == full).map(|(_, r)| *r)
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

/// The maps of a rootless runtime's container (run by a user, not root). A map of the user's
/// own id alone is written directly, as the kernel lets an unprivileged process do (for gids
/// after `setgroups` is denied in the namespace: the container cannot change its groups).
/// Anything more (the subordinate ids of /etc/subuid and /etc/subgid) goes through the
/// setuid helpers `newuidmap` and `newgidmap` (Debian's `uidmap`), which check those files.
fn rootless_maps(config: &Config, pid: Pid) -> Result<(), Error> {
    let own =
        |maps: &[IdMap], id: u32| maps.len() == 1 && maps[0].host_id == id && maps[0].size == 1;
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    if own(&config.uid_mappings, uid) {
        write_proc(
            format!("/proc/{pid}/uid_map"),
            &id_map_text(&config.uid_mappings),
        )?;
    } else {
        id_map_helper("newuidmap", pid, &config.uid_mappings)?;
    }
    if own(&config.gid_mappings, gid) {
        write_proc(format!("/proc/{pid}/setgroups"), "deny")?;
        write_proc(
            format!("/proc/{pid}/gid_map"),
            &id_map_text(&config.gid_mappings),
        )?;
    } else {
        id_map_helper("newgidmap", pid, &config.gid_mappings)?;
    }
    Ok(())
}

/// Runs `newuidmap PID ID HOSTID SIZE...` (or `newgidmap`).
fn id_map_helper(helper: &str, pid: Pid, maps: &[IdMap]) -> Result<(), Error> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.arg(m.container_id.to_string())
            .arg(m.host_id.to_string())
            .arg(m.size.to_string());
    }
    let failed = |why: String| Error::Write {
        path: format!(
            "/proc/{pid}/{}",
            if helper == "newuidmap" {
                "uid_map"
            } else {
                "gid_map"
            }
        ),
        source: std::io::Error::other(format!(
            "{helper} (Debian's uidmap; the ids must be the user's own or in /etc/sub{}id): {why}",
            if helper == "newuidmap" { "u" } else { "g" }
        )),
    };
    match cmd.stdin(std::process::Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(failed(String::from_utf8_lossy(&o.stderr).trim().to_owned())),
        Err(e) => Err(failed(e.to_string())),
    }
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
    // A joined user namespace (`namespace_paths`) has its maps already.
    let new_userns = config.has_namespace(Namespace::User)
        && !config.namespace_paths.contains_key(&Namespace::User);
    if init && new_userns {
        if nix::unistd::geteuid().is_root() {
            write_proc(
                format!("/proc/{pid}/uid_map"),
                &id_map_text(&config.uid_mappings),
            )?;
            write_proc(
                format!("/proc/{pid}/gid_map"),
                &id_map_text(&config.gid_mappings),
            )?;
        } else {
            rootless_maps(config, pid)?;
        }
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

    #[test]
    fn rlimit_names() {
        assert_eq!(rlimit_resource("RLIMIT_NOFILE"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(rlimit_resource("nofile"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(rlimit_resource("NPROC"), Some(libc::RLIMIT_NPROC));
        assert_eq!(rlimit_resource("files"), None);
    }

    #[test]
    fn id_maps_are_written_one_range_a_line() {
        let maps = [IdMap {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        }];
        assert_eq!(id_map_text(&maps), "0 100000 65536\n");
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
