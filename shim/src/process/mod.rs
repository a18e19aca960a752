//! A container's init: cloned into its namespaces, set up, held until Start, then exec'd.
//!
//! Parent and child talk over a `SOCK_SEQPACKET` socketpair with typed [`SyncMsg`]s:
//!
//! ```text
//! shim (parent)                          init (child, in the new namespaces)
//! clone(flags) ------------------------> waits for Configured
//! joins it to cgroups, network, ...
//! Configured --------------------------> hostname, mounts, pivot_root, cwd, user, caps
//!          <---------------------------- Ready  (or Error: the create fails)
//! ... Create has returned; later Start:
//! Start -------------------------------> execve(command)
//!          <---------------------------- EOF (exec worked: the socket is close-on-exec)
//!                                        or Error (exec failed)
//! ```
//!
//! With [`StartGate::Fifo`] (an OCI runtime's `create`, see `crate::runtime`) the init
//! outlives its caller instead: after Ready it opens the exec fifo for writing, which blocks
//! until `start` opens it for reading, writes "0" (or why not) and execs.
//!
//! `sync.rs` holds the channel and its messages, `spec.rs` what a process is given, and
//! `child.rs` everything the child does; this file is the shim's side.

mod child;
mod identity;
mod joined;
mod kernel;
mod nursery;
mod spec;
mod sync;
mod timens;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::config::Config;
use crate::namespaces::{self, Namespace};
use crate::security;
use crate::sys::{self, Forked};

use child::{child_end, close_inherited, init_child, join_child, ChildError};
pub use child::{find_executable, process_env};
pub use identity::{Identity, DEFAULT_UMASK};
pub use kernel::sysctl_path;
pub use nursery::Nursery;
pub use spec::{Launch, OwnSettings, ProcessSpec, StartGate, Stdio};
use sync::{recv, recv_fd, send, sync_pair};
pub use sync::{ChildErrorCode, Error, SyncMsg};

/// A process set up up to its exec, waiting for Start.
pub struct Created {
    pub pid: Pid,
    /// The terminal's master side, with [`Stdio::Pty`].
    pub pty_master: Option<OwnedFd>,
    sync: Option<OwnedFd>,
}

type ParentSetup<'a> = &'a mut dyn FnMut(Pid) -> Result<(), String>;

/// Clones a container's init into the config's namespaces and sets it up, up to the point of
/// exec. `parent_setup` runs in the caller once the child exists (join cgroups, move network
/// links). On error the child is killed and reaped; what `parent_setup` made is the caller's
/// to undo.
pub fn create(
    config: &Config,
    rootfs: &Path,
    stdio: Stdio,
    parent_setup: ParentSetup<'_>,
) -> Result<Created, Error> {
    create_with(config, rootfs, stdio, Launch::default(), parent_setup)
}

/// [`create`] with `launch`'s options: how the init waits for its go, the descriptors it
/// keeps, the hooks it runs.
pub fn create_with(
    config: &Config,
    rootfs: &Path,
    stdio: Stdio,
    launch: Launch,
    parent_setup: ParentSetup<'_>,
) -> Result<Created, Error> {
    let (parent_sock, child_sock) = sync_pair()?;
    let (pid, _) = clone_init(config, rootfs, stdio, child_sock, launch, &Birth::default())?;
    Created::configure(pid, parent_sock, config, true, parent_setup)
}

/// [`create`], with the init cloned by `nursery` (a process parked in the container's cgroups
/// beforehand, see [`Nursery`]): the init is born in its cgroups, with no migration. It is
/// still the caller's child. `v2_cgroup`: the container's cgroup v2 directory, which the init
/// is born into too (`CLONE_INTO_CGROUP`, Linux 5.7).
pub fn create_by(
    nursery: Nursery,
    config_path: &Path,
    config: &Config,
    stdio: Stdio,
    v2_cgroup: Option<&Path>,
    parent_setup: ParentSetup<'_>,
) -> Result<Created, Error> {
    let (parent_sock, child_sock) = sync_pair()?;
    let (pid, in_v2) = nursery.bear(config_path, stdio, child_sock, v2_cgroup)?;
    // A kernel (or a seccomp policy) that refused CLONE_INTO_CGROUP: moved now, before it
    // runs anything of the container's.
    if let (Some(dir), false) = (v2_cgroup, in_v2) {
        if let Err(e) = crate::cgroups::add_to(dir, pid) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(Error::ParentSetup(format!("cgroups: {e}")));
        }
    }
    Created::configure(pid, parent_sock, config, true, parent_setup)
}

/// How [`clone_init`] makes the init, beyond the config's namespaces.
#[derive(Default)]
struct Birth<'a> {
    /// CLONE_PARENT: the init becomes the caller's sibling (a nursery's: its parent's child).
    sibling: bool,
    /// The cgroup v2 directory to be born in (CLONE_INTO_CGROUP).
    cgroup: Option<std::os::fd::BorrowedFd<'a>>,
    /// Leave out CLONE_NEWNET: the caller already is in the network namespace made for it.
    in_own_netns: bool,
    /// The caller is in a mount namespace pivoted ahead ([`crate::rootfs::staging`]): the
    /// init's copy of it is entered without `pivot_root`.
    staged: Option<crate::rootfs::staging::Staged>,
}

/// Clones a container's init into the config's namespaces; the child sets itself up (talking
/// over `child_sock`) and never returns from here. Returns the child's pid in the caller, and
/// whether it was born in `birth.cgroup` (a kernel or seccomp policy without
/// `CLONE_INTO_CGROUP` gets a plain clone instead, and the caller moves it).
fn clone_init(
    config: &Config,
    rootfs: &Path,
    stdio: Stdio,
    child_sock: OwnedFd,
    launch: Launch,
    birth: &Birth<'_>,
) -> Result<(Pid, bool), Error> {
    let spec = ProcessSpec::from_config(config);
    // A `netns` network strategy replaces a new network namespace: its file is opened here,
    // the clone leaves out CLONE_NEWNET, and the init joins it.
    let join_net = crate::network::open_netns(config).map_err(Error::Network)?;
    // Namespaces joined by path (`namespace_paths`) likewise: opened and checked here.
    let joined = joined::Joined::open(config)?;
    // Idmapped mounts are made here, outside the container's user namespace, for the init to
    // attach.
    let idmapped = crate::rootfs::Idmapped::prepare(config).map_err(Error::Idmap)?;
    let mut flags = joined.clone_flags(config);
    if join_net.is_some() || birth.in_own_netns {
        flags.remove(CloneFlags::CLONE_NEWNET);
    }
    if birth.sibling {
        flags.insert(CloneFlags::CLONE_PARENT);
    }
    // A cgroup namespace is rooted where its process is when it is made: the init unshares
    // it once it is in the container's cgroups (after Configured), so the container sees its
    // own cgroup as "/".
    flags.remove(CloneFlags::CLONE_NEWCGROUP);
    // A new time namespace is made around the clone (see `timens`), never by it.
    let flags = timens::strip(flags);
    let mut in_cgroup = birth.cgroup.is_some();
    let forked = timens::around_clone(
        config,
        || {
            joined::in_pid_ns(
                joined.pid(),
                || {
                    // SAFETY: the shim, its nursery and nsinit are single-threaded (no code
                    // of theirs starts a thread).
                    #[allow(unsafe_code)]
                    let forked = unsafe {
                        match birth.cgroup.map(|fd| sys::clone3_process(flags, Some(fd))) {
                            Some(Err(
                                nix::errno::Errno::ENOSYS
                                | nix::errno::Errno::E2BIG
                                | nix::errno::Errno::EPERM,
                            ))
                            | None => {
                                in_cgroup = false;
                                sys::clone_process(flags)
                            }
                            Some(r) => r,
                        }
                    };
                    forked
                },
                |f| matches!(f, Forked::Parent(_)),
            )
        },
        |f| matches!(f, Forked::Parent(_)),
    )?;
    match forked.map_err(Error::Clone)? {
        Forked::Child => {
            let mut keep = stdio.raw_fds();
            keep.push(child_sock.as_raw_fd());
            keep.extend(join_net.as_ref().map(|f| f.as_raw_fd()));
            keep.extend(joined.raw_fds());
            keep.extend(idmapped.raw_fds());
            keep.extend(launch.raw_fds());
            let nets = child::Joins {
                netns: join_net.as_ref(),
                paths: &joined,
                idmapped: &idmapped,
                staged: birth.staged,
            };
            // Everything else (the parent's end of the sync socket among them) is closed.
            let r = close_inherited(&keep)
                .and_then(|_| init_child(config, &spec, rootfs, stdio, &child_sock, nets, &launch));
            child_end(r, &child_sock)
        }
        Forked::Parent(pid) => Ok((pid, in_cgroup)),
    }
}

/// Starts a process inside the live container whose init is `init_pid`: it joins every
/// namespace of the container (the PID namespace by being cloned into it), and gets the
/// container's capability mask and security settings, with `spec`'s command, env, cwd and user.
/// It is a child of the caller, which reaps it.
pub fn join(
    config: &Config,
    init_pid: Pid,
    spec: &ProcessSpec,
    stdio: Stdio,
    parent_setup: ParentSetup<'_>,
) -> Result<Created, Error> {
    join_with(
        config,
        init_pid,
        spec,
        stdio,
        Launch::default(),
        parent_setup,
    )
}

/// [`join`] with `launch`'s options (descriptors kept, a detached process).
pub fn join_with(
    config: &Config,
    init_pid: Pid,
    spec: &ProcessSpec,
    stdio: Stdio,
    launch: Launch,
    parent_setup: ParentSetup<'_>,
) -> Result<Created, Error> {
    let joining: Vec<Namespace> = config
        .namespaces
        .iter()
        .copied()
        .filter(|n| *n != Namespace::Pid)
        .collect();
    let opened = namespaces::open_for_join(init_pid.as_raw(), &joining).map_err(Error::Join)?;
    let (parent_sock, child_sock) = sync_pair()?;
    // The PID namespace applies to children: enter it for the clone, then come back.
    let pid_ns = if config.has_namespace(Namespace::Pid) {
        Some(std::fs::File::open(format!("/proc/{init_pid}/ns/pid")).map_err(Error::Join)?)
    } else {
        None
    };
    // Rootless (the caller is not root), entering the container's PID namespace takes its
    // user namespace first, which the caller cannot leave again: an intermediate process does
    // both and clones the process as the caller's child (CLONE_PARENT).
    let via_userns =
        !nix::unistd::geteuid().is_root() && opened.iter().any(|(ns, _)| *ns == Namespace::User);
    let forked = if via_userns {
        clone_via_userns(&opened, pid_ns.as_ref())
    } else {
        joined::in_pid_ns(
            pid_ns.as_ref(),
            || {
                // SAFETY: the shim and nsinit are single-threaded (no code of theirs starts a
                // thread).
                #[allow(unsafe_code)]
                let forked = unsafe { sys::clone_process(CloneFlags::empty()) };
                forked
            },
            |f| matches!(f, Forked::Parent(_)),
        )?
    };
    // Joined on the way already.
    let opened: Vec<(Namespace, std::fs::File)> = if via_userns {
        opened
            .into_iter()
            .filter(|(ns, _)| *ns != Namespace::User)
            .collect()
    } else {
        opened
    };
    match forked.map_err(Error::Clone)? {
        Forked::Child => {
            drop(parent_sock);
            let mut keep = stdio.raw_fds();
            keep.push(child_sock.as_raw_fd());
            keep.extend(opened.iter().map(|(_, f)| f.as_raw_fd()));
            keep.extend(launch.raw_fds());
            // Until it execs, this process is the shim's image inside the container: keep
            // other container processes out of its /proc/PID (exe, mem, fds), from the start.
            let r = nix::sys::prctl::set_dumpable(false)
                .map_err(|e| ChildError::internal("dumpable", e))
                .and_then(|_| close_inherited(&keep))
                .and_then(|_| join_child(config, spec, &opened, stdio, &child_sock, &launch));
            child_end(r, &child_sock)
        }
        Forked::Parent(pid) => {
            drop(child_sock);
            drop(stdio);
            drop(launch);
            Created::configure(pid, parent_sock, config, false, parent_setup)
        }
    }
}

/// For [`join_with`] run rootless: an intermediate process enters the container's user
/// namespace (its owner's process may) and then its PID namespace, and clones the process
/// with CLONE_PARENT, so it is the caller's child, in the container's PID namespace, with the
/// user namespace's capabilities for joining the rest. The intermediate tells the caller the
/// pid (or the errno) and exits.
fn clone_via_userns(
    opened: &[(Namespace, std::fs::File)],
    pid_ns: Option<&std::fs::File>,
) -> nix::Result<Forked> {
    use std::io::{Read, Write};
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the shim is single-threaded.
    #[allow(unsafe_code)]
    let mid = unsafe { sys::clone_process(CloneFlags::empty()) }?;
    match mid {
        Forked::Child => {
            drop(r);
            let user = opened.iter().find(|(ns, _)| *ns == Namespace::User);
            let made = (|| -> nix::Result<Forked> {
                if let Some((_, f)) = user {
                    nix::sched::setns(f, CloneFlags::CLONE_NEWUSER)?;
                }
                if let Some(f) = pid_ns {
                    nix::sched::setns(f, CloneFlags::CLONE_NEWPID)?;
                }
                // SAFETY: single-threaded, as above.
                #[allow(unsafe_code)]
                let forked = unsafe { sys::clone_process(CloneFlags::CLONE_PARENT) };
                forked
            })();
            let answer: i32 = match made {
                // The process itself: it goes on as the joined child.
                Ok(Forked::Child) => return Ok(Forked::Child),
                Ok(Forked::Parent(pid)) => pid.as_raw(),
                Err(e) => -(e as i32),
            };
            let _ = std::fs::File::from(w).write_all(&answer.to_ne_bytes());
            sys::exit_now(0)
        }
        Forked::Parent(mid) => {
            drop(w);
            let mut buf = [0u8; 4];
            let read = std::fs::File::from(r).read_exact(&mut buf);
            let _ = nix::sys::wait::waitpid(mid, None);
            read.map_err(|_| nix::errno::Errno::ECHILD)?;
            match i32::from_ne_bytes(buf) {
                pid if pid > 0 => Ok(Forked::Parent(Pid::from_raw(pid))),
                e => Err(nix::errno::Errno::from_raw(-e)),
            }
        }
    }
}

impl Created {
    fn configure(
        pid: Pid,
        sock: OwnedFd,
        config: &Config,
        init: bool,
        parent_setup: ParentSetup<'_>,
    ) -> Result<Created, Error> {
        let mut created = Created {
            pid,
            pty_master: None,
            sync: Some(sock),
        };
        let ready = security::parent_setup(config, pid, init)
            .map_err(|e| Error::ParentSetup(e.to_string()))
            .and_then(|_| created.wait_ready(parent_setup));
        match ready {
            Ok(()) => Ok(created),
            Err(e) => {
                created.kill_and_reap();
                Err(e)
            }
        }
    }

    fn sync(&self) -> Result<&OwnedFd, Error> {
        self.sync.as_ref().ok_or(Error::ChildVanished)
    }

    fn wait_ready(&mut self, parent_setup: ParentSetup<'_>) -> Result<(), Error> {
        parent_setup(self.pid).map_err(Error::ParentSetup)?;
        send(self.sync()?, &SyncMsg::Configured).map_err(Error::Sync)?;
        match recv_fd(self.sync()?)? {
            Some((SyncMsg::Ready, pty)) => {
                self.pty_master = pty;
                Ok(())
            }
            Some((SyncMsg::Error { code, message }, _)) => Err(Error::Child { code, message }),
            Some((other, _)) => Err(Error::Protocol(format!("{other:?}"))),
            None => Err(Error::ChildVanished),
        }
    }

    /// Lets the process exec its command. Returns once it has (or has failed to).
    pub fn start(&mut self) -> Result<(), Error> {
        let sock = self.sync.take().ok_or(Error::ChildVanished)?;
        send(&sock, &SyncMsg::Start).map_err(Error::Sync)?;
        match recv(&sock)? {
            None => Ok(()), // the socket closed on exec
            Some(SyncMsg::Error { code, message }) => Err(Error::Child { code, message }),
            Some(other) => Err(Error::Protocol(format!("{other:?}"))),
        }
    }

    /// Lets go of a process that waits on its exec fifo ([`StartGate::Fifo`]): it needs
    /// nothing more from the caller, which may exit.
    pub fn release(mut self) {
        self.sync = None;
    }

    fn kill_and_reap(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
        self.sync = None;
    }
}
