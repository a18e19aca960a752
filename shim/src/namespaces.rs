//! Namespaces on this kernel: their clone flags, whether the kernel has them, and joining the
//! namespaces of a live process. The names are the spec crate's.

use std::fs::File;
use std::path::Path;

use nix::sched::CloneFlags;

pub use execdriver_spec::namespaces::{Namespace, ALL};

/// The clone(2) flag that makes a new namespace of this kind.
pub fn clone_flag(ns: Namespace) -> CloneFlags {
    match ns {
        Namespace::Mount => CloneFlags::CLONE_NEWNS,
        Namespace::Uts => CloneFlags::CLONE_NEWUTS,
        Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
        Namespace::Pid => CloneFlags::CLONE_NEWPID,
        Namespace::Net => CloneFlags::CLONE_NEWNET,
        Namespace::User => CloneFlags::CLONE_NEWUSER,
        Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        // Never passed to clone(2) (its bit is in the exit signal's there): for setns and
        // unshare only.
        Namespace::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// Whether this kernel offers the namespace.
pub fn available(ns: Namespace) -> bool {
    Path::new("/proc/self/ns").join(ns.proc_name()).exists()
}

/// The clone flags for a set of namespaces.
pub fn clone_flags(namespaces: &[Namespace]) -> CloneFlags {
    namespaces
        .iter()
        .fold(CloneFlags::empty(), |acc, ns| acc | clone_flag(*ns))
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
        nix::sched::setns(file, clone_flag(*ns))?;
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
