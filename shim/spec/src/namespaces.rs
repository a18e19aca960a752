//! Namespaces as container.json names them (the seed's `NEWNS`, `NEWUTS`, ...).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Linux namespace, named in container.json as in the seed (`NEWNS`, `NEWUTS`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// The boot-time and monotonic clocks' offsets (Linux 5.6). Made by the process that
    /// creates the container (`unshare`, then its offsets, then the clone), never by clone(2).
    #[serde(rename = "NEWTIME")]
    Time,
}

/// Every namespace, in the order a joining process must enter them (user first, mount last).
pub const ALL: [Namespace; 8] = [
    Namespace::User,
    Namespace::Ipc,
    Namespace::Uts,
    Namespace::Net,
    Namespace::Pid,
    Namespace::Cgroup,
    Namespace::Time,
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
            Namespace::Time => "NEWTIME",
        }
    }

    /// Parses the seed's name.
    pub fn from_name(s: &str) -> Option<Namespace> {
        ALL.into_iter().find(|n| n.name() == s)
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
            Namespace::Time => "time",
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
