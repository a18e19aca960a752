//! Cgroups: where a container's cgroups are, creating them, joining, listing and removing.
//!
//! The host may have cgroup v1 hierarchies, the unified v2 hierarchy, or both (hybrid: v1
//! controllers plus a v2 mount at /sys/fs/cgroup/unified). A container gets `<parent>/<name>`
//! in every mounted hierarchy, so it is tracked wherever the host tracks processes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the cgroup mounts: {0}")]
    Mounts(#[source] io::Error),
    #[error("no cgroup hierarchy is mounted")]
    NoHierarchy,
    #[error("creating cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("removing cgroup {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, Error>;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// v1 controllers bound to it (`cpu`, `memory`, `name=systemd`, ...); empty for v2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// The hierarchies the host has mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// Reads /proc/self/mountinfo.
    pub fn detect() -> Result<Layout> {
        let text = fs::read_to_string("/proc/self/mountinfo").map_err(Error::Mounts)?;
        Ok(Layout::parse(&text))
    }

    /// Parses mountinfo text: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE SRC SUPEROPTS`.
    pub fn parse(mountinfo: &str) -> Layout {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split(' ').collect();
            let rfields: Vec<&str> = right.split(' ').collect();
            if fields.len() < 5 || rfields.len() < 3 {
                continue;
            }
            let mountpoint = PathBuf::from(unescape(fields[4]));
            let h = match rfields[0] {
                "cgroup2" => Hierarchy {
                    mountpoint,
                    controllers: Vec::new(),
                    v2: true,
                },
                "cgroup" => {
                    let controllers: Vec<String> = rfields[2]
                        .split(',')
                        .filter(|o| {
                            !matches!(
                                *o,
                                "rw" | "ro"
                                    | "relatime"
                                    | "noatime"
                                    | "nosuid"
                                    | "nodev"
                                    | "noexec"
                            ) && !o.starts_with("release_agent=")
                                && *o != "clone_children"
                                && *o != "xattr"
                        })
                        .map(str::to_owned)
                        .collect();
                    Hierarchy {
                        mountpoint,
                        controllers,
                        v2: false,
                    }
                }
                _ => continue,
            };
            // A hierarchy mounted twice (bind mounts) counts once.
            if !hierarchies
                .iter()
                .any(|x| x.v2 == h.v2 && x.controllers == h.controllers)
            {
                hierarchies.push(h);
            }
        }
        Layout { hierarchies }
    }

    /// "v1", "v2" or "hybrid".
    pub fn mode(&self) -> &'static str {
        let v1 = self.hierarchies.iter().any(|h| !h.v2);
        let v2 = self.hierarchies.iter().any(|h| h.v2);
        match (v1, v2) {
            (true, true) => "hybrid",
            (false, true) => "v2",
            (true, false) => "v1",
            (false, false) => "none",
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A container's cgroups: one directory per hierarchy.
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// `parent/name`, relative to each hierarchy's root.
    pub relative: PathBuf,
    pub dirs: Vec<(Hierarchy, PathBuf)>,
}

impl Cgroup {
    pub fn new(layout: &Layout, parent: &str, name: &str) -> Result<Cgroup> {
        if layout.hierarchies.is_empty() {
            return Err(Error::NoHierarchy);
        }
        let relative = Path::new(parent.trim_matches('/')).join(name);
        let dirs = layout
            .hierarchies
            .iter()
            .map(|h| (h.clone(), h.mountpoint.join(&relative)))
            .collect();
        Ok(Cgroup { relative, dirs })
    }

    /// Creates the directories (and their parents). cpuset parents get the cpus and mems of
    /// theirs, without which v1 refuses tasks.
    pub fn create(&self) -> Result<()> {
        for (h, dir) in &self.dirs {
            let is_cpuset = !h.v2 && h.controllers.iter().any(|c| c == "cpuset");
            // Walk down from the hierarchy root so each new level can be initialised.
            let mut cur = h.mountpoint.clone();
            for part in self.relative.components() {
                cur.push(part);
                match fs::create_dir(&cur) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => {
                        return Err(Error::Create {
                            path: cur.clone(),
                            source,
                        })
                    }
                }
                if is_cpuset {
                    for file in ["cpuset.cpus", "cpuset.mems"] {
                        let own = fs::read_to_string(cur.join(file)).unwrap_or_default();
                        if own.trim().is_empty() {
                            let parent = cur.parent().map(|p| p.join(file)).unwrap_or_default();
                            let value = fs::read_to_string(&parent).unwrap_or_default();
                            write(&cur.join(file), value.trim())?;
                        }
                    }
                }
            }
            debug_assert_eq!(&cur, dir);
        }
        Ok(())
    }

    /// Moves `pid` into every one of the container's cgroups.
    pub fn add(&self, pid: Pid) -> Result<()> {
        for (_, dir) in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The directory of a v1 controller, or the v2 directory.
    pub fn dir_for(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| h.controllers.iter().any(|c| c == controller))
            .or_else(|| self.dirs.iter().find(|(h, _)| h.v2))
            .map(|(_, d)| d.as_path())
    }

    /// Every process in the container's cgroup (from the pids, freezer or v2 hierarchy).
    pub fn procs(&self) -> Vec<Pid> {
        let mut out: Vec<Pid> = Vec::new();
        for (_, dir) in &self.dirs {
            if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                for p in text
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .map(Pid::from_raw)
                {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    /// Sends `sig` to every process in the cgroup; returns how many were signalled.
    pub fn signal_all(&self, sig: Signal) -> usize {
        self.procs()
            .into_iter()
            .filter(|p| kill(*p, sig).is_ok())
            .count()
    }

    /// Kills what is left and removes the directories (deepest first). Waits a little for
    /// killed processes to leave. Missing directories are fine.
    pub fn destroy(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.signal_all(Signal::SIGKILL) == 0 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for (_, dir) in &self.dirs {
            let mut attempts = 0;
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    // EBUSY while a killed task is still leaving.
                    Err(_) if attempts < 200 => {
                        attempts += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(source) => {
                        return Err(Error::Remove {
                            path: dir.clone(),
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|source| Error::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
30 29 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
31 29 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 29 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 29 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
34 29 0:27 / /mnt/again rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn parses_hybrid_layout() {
        let l = Layout::parse(HYBRID);
        assert_eq!(l.mode(), "hybrid");
        assert_eq!(l.hierarchies.len(), 4);
        assert_eq!(l.hierarchies[0].controllers, vec!["cpu"]);
        assert_eq!(l.hierarchies[2].controllers, vec!["name=systemd"]);
        assert!(l.hierarchies[3].v2);
        let cg = Cgroup::new(&l, "execdriver", "abc").unwrap();
        assert_eq!(
            cg.dir_for("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/execdriver/abc")
        );
        assert_eq!(
            cg.dir_for("pids").unwrap(),
            Path::new("/sys/fs/cgroup/unified/execdriver/abc")
        );
    }

    #[test]
    fn unescapes_mountpoints() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
