//! What this host offers, for Info: cgroup controllers, seccomp, AppArmor, user namespaces, the
//! default capability set and namespaces. Read from /proc and /sys when asked.

use std::path::Path;

use execdriver_shim::cgroups::Layout;
use execdriver_spec::capabilities;
use execdriver_spec::config::DEFAULT_NAMESPACES;

/// The cgroup controllers containers can use, sorted and without duplicates: those of the v1
/// hierarchies (named ones such as `name=systemd` left out) and those the v2 root offers.
pub fn cgroup_controllers(layout: &Layout) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in &layout.hierarchies {
        if h.v2 {
            let text = std::fs::read_to_string(h.mountpoint.join("cgroup.controllers"))
                .unwrap_or_default();
            out.extend(text.split_whitespace().map(str::to_owned));
        } else {
            out.extend(
                h.controllers
                    .iter()
                    .filter(|c| !c.starts_with("name="))
                    .cloned(),
            );
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether the kernel has seccomp filters: a `Seccomp:` line in /proc/self/status (the kernel
/// was built with CONFIG_SECCOMP) and the filter actions list (CONFIG_SECCOMP_FILTER).
pub fn seccomp() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|l| l.starts_with("Seccomp:"))
        && Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
}

/// Whether AppArmor is enabled.
pub fn apparmor() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim().eq_ignore_ascii_case("y"))
}

/// Whether user namespaces can be made: the kernel has them and allows more than 0.
pub fn user_namespaces() -> bool {
    Path::new("/proc/self/ns/user").exists()
        && std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// The capabilities a container keeps by default (Docker's set), those this kernel has.
pub fn default_capabilities() -> Vec<String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .unwrap_or(u8::MAX);
    capabilities::DOCKER_DEFAULT
        .iter()
        .filter(|n| capabilities::parse(n).is_some_and(|c| c.index() <= last))
        .map(|n| n.to_string())
        .collect()
}

/// The namespaces a container gets when its request names none (as `convert` fills them in).
pub fn default_namespaces() -> Vec<String> {
    DEFAULT_NAMESPACES
        .iter()
        .map(|n| n.name().to_owned())
        .collect()
}

/// The host's online CPUs (sysconf's _SC_NPROCESSORS_ONLN; 0 if it cannot say).
pub fn online_cpus() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_cpus_are_the_hosts() {
        let listed = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        // "0-3,5": count each range.
        let count: u32 = listed
            .trim()
            .split(',')
            .map(|r| match r.split_once('-') {
                Some((a, b)) => b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap() + 1,
                None => 1,
            })
            .sum();
        assert_eq!(online_cpus(), count);
    }

    #[test]
    fn controllers_skip_named_hierarchies() {
        let layout = Layout::parse(
            "30 25 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
             31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             32 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        );
        assert_eq!(cgroup_controllers(&layout), ["cpu", "cpuacct", "memory"]);
    }

    #[test]
    fn default_capabilities_are_dockers() {
        let caps = default_capabilities();
        assert!(caps.contains(&"CHOWN".to_owned()), "{caps:?}");
        assert!(caps.contains(&"AUDIT_WRITE".to_owned()), "{caps:?}");
        assert!(!caps.contains(&"SYS_ADMIN".to_owned()), "{caps:?}");
    }

    #[test]
    fn default_namespaces_are_the_configs() {
        assert_eq!(
            default_namespaces(),
            ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"]
        );
    }
}
