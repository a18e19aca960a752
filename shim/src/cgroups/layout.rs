//! The cgroup hierarchies the host has mounted, read from /proc/self/mountinfo: v1
//! hierarchies with their controllers, and the unified (v2) one.

use std::fs;
use std::path::PathBuf;

use super::{Error, Result};

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
    /// Reads /proc/self/mountinfo, and keeps the hierarchies whose mount point the kernel says
    /// is one (statfs: a cgroup or cgroup2 filesystem): a mount hidden under another (a tmpfs
    /// mounted over /sys/fs/cgroup/unified, say) is not a hierarchy anyone can use there.
    ///
    /// Run rootless (not as root, or as root of a user namespace), only the unified hierarchy
    /// is kept: a user writes cgroups only where a cgroup v2 subtree was delegated to it (as
    /// systemd's `Delegate=yes` does); v1 hierarchies belong to the host's root.
    /// [`Layout::detect_host`] keeps them all.
    pub fn detect() -> Result<Layout> {
        let mut layout = Layout::detect_host()?;
        if crate::sys::rootless() {
            layout.hierarchies.retain(|h| h.v2);
        }
        Ok(layout)
    }

    /// Every hierarchy the host has mounted, whoever asks (what `info` reports).
    pub fn detect_host() -> Result<Layout> {
        let text = fs::read_to_string("/proc/self/mountinfo").map_err(Error::Mounts)?;
        Ok(Layout::from_candidates(Layout::candidates(&text), |h| {
            is_hierarchy(&h.mountpoint, h.v2)
        }))
    }

    /// Parses mountinfo text: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE SRC SUPEROPTS`
    /// (every cgroup mount taken as reachable; [`Layout::detect`] asks the kernel).
    pub fn parse(mountinfo: &str) -> Layout {
        Layout::from_candidates(Layout::candidates(mountinfo), |_| true)
    }

    /// The candidates `usable` accepts; a hierarchy mounted twice (bind mounts) counts once.
    fn from_candidates(all: Vec<Hierarchy>, usable: impl Fn(&Hierarchy) -> bool) -> Layout {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for h in all.into_iter().filter(|h| usable(h)) {
            if !hierarchies
                .iter()
                .any(|x| x.v2 == h.v2 && x.controllers == h.controllers)
            {
                hierarchies.push(h);
            }
        }
        Layout { hierarchies }
    }

    /// Every cgroup mount in mountinfo text, in order.
    fn candidates(mountinfo: &str) -> Vec<Hierarchy> {
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
            hierarchies.push(h);
        }
        hierarchies
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

/// Whether `path` is, to the kernel, the root of a cgroup (v1) or cgroup2 filesystem.
fn is_hierarchy(path: &std::path::Path, v2: bool) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    let want = if v2 {
        CGROUP2_SUPER_MAGIC
    } else {
        CGROUP_SUPER_MAGIC
    };
    statfs(path).is_ok_and(|s| s.filesystem_type() == want)
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

/// How v2 files (and v1 pids.max) spell "no limit".
#[cfg(test)]
mod tests {
    use super::super::Cgroup;
    use super::*;
    use std::path::Path;

    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
30 29 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
31 29 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 29 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 29 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
34 29 0:27 / /mnt/again rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn only_what_the_kernel_calls_a_hierarchy_is_kept() {
        // The unified mount hidden (say, under a tmpfs): a v1 host.
        let l = Layout::from_candidates(Layout::candidates(HYBRID), |h| !h.v2);
        assert_eq!(l.mode(), "v1");
        // The first memory mount hidden, its bind mount kept.
        let l = Layout::from_candidates(Layout::candidates(HYBRID), |h| {
            h.mountpoint != Path::new("/sys/fs/cgroup/memory")
        });
        let memory = l
            .hierarchies
            .iter()
            .find(|h| h.controllers == ["memory"])
            .unwrap();
        assert_eq!(memory.mountpoint, Path::new("/mnt/again"));
        // statfs: a temp directory is no hierarchy; a mounted one is.
        assert!(!is_hierarchy(&std::env::temp_dir(), false));
        assert!(!is_hierarchy(&std::env::temp_dir(), true));
        if let Ok(real) = Layout::detect() {
            for h in &real.hierarchies {
                assert!(is_hierarchy(&h.mountpoint, h.v2), "{h:?}");
            }
        }
    }

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
