//! The container's filesystems as an OCI config lists them (`config.filesystems`): mounted in
//! order with OCI semantics in place of the built-in set, then the standard devices and the
//! /dev symlinks unless /dev is a bind mount of the host's.
//!
//! A bind mount (type `bind`, or options `bind`/`rbind`) binds its host source (an idmapped
//! one attaches the copy prepared outside, see [`super::idmap`]) (a file
//! destination for a file source, a directory otherwise), remounted with its flags (`ro`,
//! recursively for `rbind`; `nosuid`, `nodev`, `noexec`, ...), then its propagation options
//! in order. Any other type is mounted with its flags and its other options as data (`mode=755`,
//! `size=65536k`), the source defaulting to the type. `cgroup` and `cgroup2` are in
//! [`super::cgroupfs`].

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::base::{in_field, refused, Error, Result};
use super::binds::{bind_at, set_propagation, Bind};
use super::builtin::sysfs_bind;
use super::cgroupfs;
use super::dev::{make_links, make_requested_devices, make_standard_devices};
use super::idmap::Idmapped;
use super::options::{self, Options};
use super::paths::{fd_path, open_in_root, Create};
use crate::config::{Config, Filesystem};
use crate::namespaces::Namespace;
use nix::errno::Errno;

/// Mounts `config.filesystems` under `root`, then fills /dev.
pub fn mount_all(config: &Config, root: BorrowedFd<'_>, idmapped: &Idmapped) -> Result<()> {
    let list = config.filesystems.as_deref().unwrap_or_default();
    let mut dev_is_host_bind = false;
    for (i, fs) in list.iter().enumerate() {
        let field = format!("filesystems[{i}]");
        let opts =
            options::parse(&fs.options).map_err(|why| refused(&format!("{field}.options"), why))?;
        let bind = fs.kind == "bind" || opts.bind();
        if fs.destination == Path::new("/dev") {
            dev_is_host_bind = bind;
        }
        let prepared = idmapped.tree(i);
        if fs.idmapped() && prepared.is_none() {
            return Err(refused(&field, "an idmapped mount was not prepared"));
        }
        mount_one(config, root, fs, &opts, bind, prepared, &field)
            .map_err(|e| in_field(&field, e))?;
    }
    if dev_is_host_bind {
        return Ok(());
    }
    let dev = open_in_root(root, Path::new("/dev"), Create::Dir)?;
    make_standard_devices(dev.as_fd())?;
    make_requested_devices(config, dev.as_fd())?;
    make_links(dev.as_fd(), true, Path::new("/proc/kcore").exists())?;
    if config.tty {
        // The pty slave is bound here by the caller; make the mount point now.
        open_in_root(dev.as_fd(), Path::new("console"), Create::File)?;
    }
    Ok(())
}

fn mount_one(
    config: &Config,
    root: BorrowedFd<'_>,
    fs: &Filesystem,
    opts: &Options,
    bind: bool,
    prepared: Option<BorrowedFd<'_>>,
    field: &str,
) -> Result<()> {
    if bind {
        return bind_mount(root, fs, opts, prepared, field);
    }
    if opts.recursive_readonly {
        return Err(refused(
            &format!("{field}.options"),
            "rro applies to bind mounts only",
        ));
    }
    match fs.kind.as_str() {
        "cgroup" => return cgroupfs::mount_v1(config, root, fs, opts, field),
        "cgroup2" => return cgroupfs::mount_v2(config, root, fs, opts, field),
        _ => {}
    }
    let dest = open_in_root(root, &fs.destination, Create::Dir)
        .map_err(|e| in_field(&format!("{field}.destination"), e))?;
    let source = if fs.source.is_empty() {
        fs.kind.as_str()
    } else {
        fs.source.as_str()
    };
    let data = opts.data();
    match nix::mount::mount(
        Some(source),
        &fd_path(&dest),
        Some(fs.kind.as_str()),
        opts.flags,
        data.as_deref(),
    ) {
        Ok(()) => {}
        Err(Errno::EPERM) if fs.kind == "sysfs" && !config.has_namespace(Namespace::Net) => {
            return sysfs_bind(root, &dest, &fs.destination);
        }
        Err(source) => {
            return Err(Error::Mount {
                what: fs.kind.clone(),
                target: fs.destination.clone(),
                source,
            })
        }
    }
    set_propagation(root, &fs.destination, &opts.propagation, &fs.kind)
}

/// A bind mount. Data options mean nothing to a bind (the kernel ignores them with MS_BIND,
/// and runc does too): engines send some (`mode=`, SELinux labels), so they are not refused.
fn bind_mount(
    root: BorrowedFd<'_>,
    fs: &Filesystem,
    opts: &Options,
    prepared: Option<BorrowedFd<'_>>,
    field: &str,
) -> Result<()> {
    let source = Path::new(&fs.source);
    if !source.is_absolute() {
        return Err(refused(
            &format!("{field}.source"),
            format!("{:?}: a bind mount's source is an absolute path", fs.source),
        ));
    }
    let meta = std::fs::metadata(source).map_err(|_| Error::MissingSource {
        field: format!("{field}.source"),
        path: source.to_owned(),
    })?;
    let create = if meta.is_dir() {
        Create::Dir
    } else {
        Create::File
    };
    let dest = open_in_root(root, &fs.destination, create)
        .map_err(|e| in_field(&format!("{field}.destination"), e))?;
    let bind = Bind {
        source,
        recursive: opts.recursive(),
        readonly: opts.readonly(),
        flags: opts.remount_flags(),
        clear: opts.clear,
        propagation: &opts.propagation,
        prepared,
    };
    bind_at(root, &bind, &dest, &fs.destination, "bind")
}
