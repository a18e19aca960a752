//! Namespaces: the seed's names, their clone flags, and joining the namespaces of a live process.

use std::fmt;
use std::fs::File;
use std::path::Path;

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

/// A Linux namespace, named in container.json as in the seed (`NEWNS`, `NEWUTS`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Namespace {
    #[serde(rename = "NEWNS")]
    Mount,
    #[serde(rename = "NEWUTS")]
    Uts,
    #[serde(rename = "NEWIPC")]
    Ipc,
    #[serde(rename = "NEWPID")]
    Pid,
    #[serde(rename = "NEWNET")]
    Net,
    #[serde(rename = "NEWUSER")]
    User,
    #[serde(rename = "NEWCGROUP")]
    Cgroup,
}

/// Every namespace, in the order a joining process must enter them (user first, mount last).
pub const ALL: [Namespace; 7] = [
    Namespace::User,
    Namespace::Ipc,
    Namespace::Uts,
    Namespace::Net,
    Namespace::Pid,
    Namespace::Cgroup,
    Namespace::Mount,
];

impl Namespace {
    /// The seed's name: `NEWNS`, `NEWPID`, ...
    pub fn name(self) -> &'static str {
        match self {
            Namespace::Mount => "NEWNS",
            Namespace::Uts => "NEWUTS",
            Namespace::Ipc => "NEWIPC",
            Namespace::Pid => "NEWPID",
            Namespace::Net => "NEWNET",
            Namespace::User => "NEWUSER",
            Namespace::Cgroup => "NEWCGROUP",
        }
    }

    /// Parses the seed's name.
    pub fn from_name(s: &str) -> Option<Namespace> {
        ALL.into_iter().find(|n| n.name() == s)
    }

    pub fn clone_flag(self) -> CloneFlags {
        match self {
            Namespace::Mount => CloneFlags::CLONE_NEWNS,
            Namespace::Uts => CloneFlags::CLONE_NEWUTS,
            Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
            Namespace::Pid => CloneFlags::CLONE_NEWPID,
            Namespace::Net => CloneFlags::CLONE_NEWNET,
            Namespace::User => CloneFlags::CLONE_NEWUSER,
            Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        }
    }

    /// The file under /proc/PID/ns/.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::Mount => "mnt",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Pid => "pid",
            Namespace::Net => "net",
            Namespace::User => "user",
            Namespace::Cgroup => "cgroup",
        }
    }

    /// Whether this kernel offers the namespace.
    pub fn available(self) -> bool {
        Path::new("/proc/self/ns").join(self.proc_name()).exists()
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The clone flags for a set of namespaces.
pub fn clone_flags(namespaces: &[Namespace]) -> CloneFlags {
    namespaces
        .iter()
        .fold(CloneFlags::empty(), |acc, ns| acc | ns.clone_flag())
}

/// Opens /proc/PID/ns/* for each namespace in `namespaces` that differs from ours, in join order.
/// Opening them all before entering any keeps /proc valid while we move.
pub fn open_for_join(
    pid: i32,
    namespaces: &[Namespace],
) -> std::io::Result<Vec<(Namespace, File)>> {
    let mut out = Vec::new();
    for ns in ALL.into_iter().filter(|ns| namespaces.contains(ns)) {
        let theirs = format!("/proc/{pid}/ns/{}", ns.proc_name());
        let ours = format!("/proc/self/ns/{}", ns.proc_name());
        if std::fs::read_link(&theirs)? == std::fs::read_link(&ours)? {
            continue; // already there; setns into our own user ns would fail with EINVAL
        }
        out.push((ns, File::open(&theirs)?));
    }
    Ok(out)
}

/// Enters namespaces opened by [`open_for_join`]. A PID namespace applies to children only.
pub fn join(opened: &[(Namespace, File)]) -> nix::Result<()> {
    for (ns, file) in opened {
        nix::sched::setns(file, ns.clone_flag())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for ns in ALL {
            assert_eq!(Namespace::from_name(ns.name()), Some(ns));
            let json = serde_json::to_string(&ns).unwrap();
            assert_eq!(json, format!("\"{}\"", ns.name()));
        }
        assert_eq!(Namespace::from_name("NEWFOO"), None);
    }

    #[test]
    fn flags_combine() {
        let f = clone_flags(&[Namespace::Mount, Namespace::Pid]);
        assert_eq!(f, CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID);
    }
}
