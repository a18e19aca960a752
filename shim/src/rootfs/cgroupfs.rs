//! `cgroup` and `cgroup2` filesystems in the container.
//!
//! `cgroup` (v1) on a host with v1 hierarchies: a tmpfs at the destination holding one
//! directory per hierarchy the host mounts (named as the host names them: `cpu`, `memory`,
//! `systemd`, and `unified` for a hybrid host's v2 mount), each the container's own cgroup:
//! with a cgroup namespace a new mount of that hierarchy (rooted at the container's cgroup),
//! otherwise a bind of the container's directory in the host's hierarchy. Comounted controllers
//! (`cpu,cpuacct`) get a symlink per name. The entry's flags apply to each (so `ro` makes them
//! read-only, as runc does), and the tmpfs is remounted read-only last. On a host with only the
//! v2 hierarchy, `cgroup` is mounted as `cgroup2`.
//!
//! `cgroup2`: with a cgroup namespace a new mount; otherwise the container's own directory of
//! the host's unified hierarchy, bound.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::base::{do_mount, refused, Error, Result};
use super::binds::{bind_at, set_propagation, Bind};
use super::dev::symlink_at;
use super::options::Options;
use super::paths::{fd_path, open_in_root, Create};
use crate::cgroups::{Hierarchy, Layout};
use crate::config::{Config, Filesystem};
use crate::namespaces::Namespace;

fn layout(field: &str) -> Result<Layout> {
    Layout::detect().map_err(|e| refused(field, format!("finding the host's cgroups: {e}")))
}

/// The calling process's cgroup in hierarchy `h`, from /proc/self/cgroup (`ID:CONTROLLERS:PATH`).
fn own_path(h: &Hierarchy, proc_self_cgroup: &str) -> Option<PathBuf> {
    proc_self_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.v2 {
            controllers.is_empty()
        } else {
            let mut names: Vec<&str> = controllers.split(',').collect();
            let mut want: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
            names.sort_unstable();
            want.sort_unstable();
            !want.is_empty() && names == want
        };
        matches.then(|| PathBuf::from(path))
    })
}

/// Binds the container's own directory of hierarchy `h` at `dest` (an `open_in_root` result).
fn bind_own(
    root: BorrowedFd<'_>,
    h: &Hierarchy,
    dest: &std::os::fd::OwnedFd,
    dest_path: &Path,
    opts: &Options,
    field: &str,
) -> Result<()> {
    let text = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| refused(field, format!("reading /proc/self/cgroup: {e}")))?;
    let own = own_path(h, &text).ok_or_else(|| {
        refused(
            field,
            format!(
                "the container is in no cgroup of {}",
                h.mountpoint.display()
            ),
        )
    })?;
    let source = h.mountpoint.join(own.strip_prefix("/").unwrap_or(&own));
    let bind = Bind {
        source: &source,
        recursive: false,
        readonly: opts.readonly(),
        flags: opts.remount_flags(),
        clear: opts.clear,
        propagation: &[],
        prepared: None,
    };
    bind_at(root, &bind, dest, dest_path, "cgroup bind")
}

/// A `cgroup2` filesystem at `fs.destination`.
pub fn mount_v2(
    config: &Config,
    root: BorrowedFd<'_>,
    fs: &Filesystem,
    opts: &Options,
    field: &str,
) -> Result<()> {
    let dest = open_in_root(root, &fs.destination, Create::Dir)?;
    if config.has_namespace(Namespace::Cgroup) {
        do_mount(
            Some(Path::new("cgroup2")),
            &fd_path(&dest),
            Some("cgroup2"),
            opts.flags,
            opts.data().as_deref(),
            "cgroup2",
        )?;
    } else {
        let layout = layout(field)?;
        let h = layout.hierarchies.iter().find(|h| h.v2).ok_or_else(|| {
            refused(
                &format!("{field}.type"),
                "this host has no cgroup2 hierarchy mounted",
            )
        })?;
        bind_own(root, h, &dest, &fs.destination, opts, field)?;
    }
    set_propagation(root, &fs.destination, &opts.propagation, "cgroup2")
}

/// A `cgroup` (v1) filesystem at `fs.destination`.
pub fn mount_v1(
    config: &Config,
    root: BorrowedFd<'_>,
    fs: &Filesystem,
    opts: &Options,
    field: &str,
) -> Result<()> {
    let layout = layout(field)?;
    if layout.hierarchies.iter().all(|h| h.v2) {
        return mount_v2(config, root, fs, opts, field);
    }
    let dest = open_in_root(root, &fs.destination, Create::Dir)?;
    let tmpfs_flags = opts.flags - MsFlags::MS_RDONLY;
    do_mount(
        Some(Path::new("cgroup")),
        &fd_path(&dest),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
        "cgroup tmpfs",
    )?;
    let top = open_in_root(root, &fs.destination, Create::Nothing)?;
    let cgroupns = config.has_namespace(Namespace::Cgroup);
    for h in &layout.hierarchies {
        let Some(name) = h.mountpoint.file_name() else {
            continue;
        };
        let sub_path = fs.destination.join(name);
        let sub = open_in_root(top.as_fd(), Path::new(name), Create::Dir)?;
        if cgroupns {
            let (kind, data) = if h.v2 {
                ("cgroup2", None)
            } else {
                ("cgroup", Some(h.controllers.join(",")))
            };
            do_mount(
                Some(Path::new(kind)),
                &fd_path(&sub),
                Some(kind),
                opts.flags,
                data.as_deref(),
                kind,
            )
            .map_err(|e| match e {
                Error::Mount { what, source, .. } => Error::Mount {
                    what,
                    target: sub_path.clone(),
                    source,
                },
                e => e,
            })?;
        } else {
            bind_own(root, h, &sub, &sub_path, opts, field)?;
        }
        if h.controllers.len() > 1 {
            for c in &h.controllers {
                if c.as_str() != name && !c.contains('=') {
                    symlink_at(top.as_fd(), &name.to_string_lossy(), c)?;
                }
            }
        }
    }
    if opts.readonly() {
        do_mount(
            None,
            &fd_path(&top),
            None,
            MsFlags::MS_REMOUNT | opts.flags,
            Some("mode=755"),
            "cgroup tmpfs read-only remount",
        )?;
    }
    set_propagation(root, &fs.destination, &opts.propagation, "cgroup")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_paths() {
        let text = "12:cpu,cpuacct:/a/b\n4:memory:/a/b\n1:name=systemd:/sys\n0::/u\n";
        let h = |c: &[&str], v2| Hierarchy {
            mountpoint: "/x".into(),
            controllers: c.iter().map(|s| s.to_string()).collect(),
            v2,
        };
        assert_eq!(
            own_path(&h(&["cpuacct", "cpu"], false), text),
            Some("/a/b".into())
        );
        assert_eq!(own_path(&h(&["memory"], false), text), Some("/a/b".into()));
        assert_eq!(
            own_path(&h(&["name=systemd"], false), text),
            Some("/sys".into())
        );
        assert_eq!(own_path(&h(&[], true), text), Some("/u".into()));
        assert_eq!(own_path(&h(&["pids"], false), text), None);
    }
}
