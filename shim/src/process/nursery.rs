//! The nursery: a process parked, ahead of any request, in a fresh set of cgroups and a fresh
//! network namespace, which clones a container's init when asked. The init is born where it
//! belongs, so the create pays neither a cgroup migration (on a quiet host the first one waits
//! a whole RCU grace period for the kernel's migration lock) nor a network namespace.
//!
//! ```text
//! shim (parked)                         nursery (in .pool-TOKEN cgroups, own netns, lo up)
//! fork ------------------------------->  joins the cgroups, unshares its network namespace
//!          <---------------------------- Parked
//! ... a create adopts the shim; the cgroups are renamed to the container's ...
//! Bear {config} + fds (sync socket, stdio, v2 cgroup) -->
//!                                        clone(CLONE_PARENT | namespaces): the init is the
//!                                        shim's child, in the nursery's cgroups
//!          <---------------------------- Born {pid}, then the nursery exits
//! ```
//!
//! Nothing of the nursery reaches the container: it touches only its own pages (freed, and
//! uncharged, when it exits), it is gone before the init runs any of the container's code, and
//! the network namespace it made holds nothing but `lo`. A container that asks for a user
//! namespace gets a new network namespace at its clone, as without a nursery (its user
//! namespace must own it).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::sync::{sync_pair, Error};
use super::{clone_init, Birth, Launch, Stdio};
use crate::config::Config;
use crate::namespaces::Namespace;
use crate::sys::{self, Forked};

/// What the shim and its nursery say to each other.
#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    /// Nursery to shim: in its cgroups and network namespace, waiting.
    Parked,
    /// Shim to nursery: clone the init of the container.json at `config`. Descriptors: the
    /// init's end of its sync socket; stdin, stdout and stderr with [`Pipes::Fds`]; then the
    /// v2 cgroup directory with `into_cgroup`.
    Bear {
        config: PathBuf,
        stdio: Pipes,
        into_cgroup: bool,
    },
    /// Nursery to shim: the init is cloned (a child of the shim's); `in_cgroup`: born in the
    /// v2 directory.
    Born { pid: i32, in_cgroup: bool },
    /// Nursery to shim: it could not (`precondition`: the request's fault).
    Failed { precondition: bool, message: String },
}

/// [`Stdio`] without its descriptors (they travel beside the message).
#[derive(Debug, Serialize, Deserialize)]
enum Pipes {
    Inherit,
    Fds,
    Pty { rows: u16, cols: u16 },
}

/// How long a nursery may take to park, in seconds.
const PARK_TIMEOUT_S: i64 = 8;

/// A parked nursery, seen from the shim.
pub struct Nursery {
    pid: Pid,
    sock: OwnedFd,
}

impl Nursery {
    /// Forks the nursery: it joins the cgroups whose `cgroup.procs` files are `procs`, makes
    /// a network namespace with `lo` up and, given a `staging` directory, a mount namespace
    /// pivoted ahead ([`crate::rootfs::staging`]). Returns once it is parked.
    pub fn start(procs: &[PathBuf], staging: Option<&Path>) -> Result<Nursery, Error> {
        let (ours, theirs) = sync_pair()?;
        // SAFETY: the shim is single-threaded.
        #[allow(unsafe_code)]
        let forked = unsafe { sys::clone_process(CloneFlags::empty()) };
        match forked.map_err(Error::Clone)? {
            Forked::Child => {
                drop(ours);
                nursery_main(procs, staging, theirs)
            }
            Forked::Parent(pid) => {
                drop(theirs);
                // Parking is bounded (a frozen parent cgroup would hold the nursery's move
                // for ever): the nursery is killed and the park fails.
                use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
                use nix::sys::time::{TimeVal, TimeValLike};
                let _ = setsockopt(&ours, ReceiveTimeout, &TimeVal::seconds(PARK_TIMEOUT_S));
                let nursery = Nursery { pid, sock: ours };
                let answer = nursery.recv();
                let _ = setsockopt(&nursery.sock, ReceiveTimeout, &TimeVal::zero());
                match answer {
                    Ok(Msg::Parked) => Ok(nursery),
                    other => {
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                        let _ = waitpid(pid, None);
                        Err(match other {
                            Ok(m) => unexpected(m),
                            Err(e) => e,
                        })
                    }
                }
            }
        }
    }

    /// Its end of the socket, readable (EOF) once the nursery is gone: a parked nursery sends
    /// nothing until asked.
    pub fn gone_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Whether the nursery is still there (killed, it can bear nothing).
    pub fn alive(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Ends a nursery that will not be used: it exits when its socket closes; reaped here.
    pub fn dismiss(self) {
        let pid = self.pid;
        drop(self.sock);
        let _ = waitpid(pid, None);
    }

    /// Has the nursery clone the init of the container.json at `config_path` (the shim
    /// loaded it too; the nursery, forked before it existed, reads its own copy), and reaps
    /// the nursery. Returns the init's pid and whether it was born in `v2_cgroup`.
    pub(super) fn bear(
        self,
        config_path: &Path,
        stdio: Stdio,
        child_sock: OwnedFd,
        v2_cgroup: Option<&Path>,
    ) -> Result<(Pid, bool), Error> {
        let cgroup = match v2_cgroup {
            Some(dir) => Some(File::open(dir).map_err(Error::Join)?),
            None => None,
        };
        let (pipes, stdio_fds) = match &stdio {
            Stdio::Inherit => (Pipes::Inherit, Vec::new()),
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => (
                Pipes::Fds,
                vec![stdin.as_fd(), stdout.as_fd(), stderr.as_fd()],
            ),
            Stdio::Pty { rows, cols } => (
                Pipes::Pty {
                    rows: *rows,
                    cols: *cols,
                },
                Vec::new(),
            ),
        };
        let mut fds: Vec<BorrowedFd<'_>> = vec![child_sock.as_fd()];
        fds.extend(stdio_fds);
        fds.extend(cgroup.as_ref().map(|f| f.as_fd()));
        let msg = Msg::Bear {
            config: config_path.to_owned(),
            stdio: pipes,
            into_cgroup: cgroup.is_some(),
        };
        let sent = send(&self.sock, &msg, &fds);
        // The init's ends are the nursery's (and the init's) now.
        drop(child_sock);
        drop(stdio);
        let answer = sent.and_then(|_| self.recv());
        // It exits once it has answered (or has failed to).
        let _ = waitpid(self.pid, None);
        match answer? {
            Msg::Born { pid, in_cgroup } => Ok((Pid::from_raw(pid), in_cgroup)),
            Msg::Failed {
                precondition,
                message,
            } => Err(Error::Nursery {
                precondition,
                message,
            }),
            other => Err(unexpected(other)),
        }
    }

    fn recv(&self) -> Result<Msg, Error> {
        recv(&self.sock)?
            .map(|(m, _)| m)
            .ok_or_else(|| Error::Nursery {
                precondition: false,
                message: "the nursery exited".into(),
            })
    }
}

fn unexpected(m: Msg) -> Error {
    Error::Protocol(format!("from the nursery: {m:?}"))
}

fn send(sock: &OwnedFd, msg: &Msg, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
    let data = serde_json::to_vec(msg).map_err(|e| Error::Protocol(e.to_string()))?;
    sys::send_with_fds(sock.as_fd(), &data, fds).map_err(Error::Sync)
}

fn recv(sock: &OwnedFd) -> Result<Option<(Msg, Vec<OwnedFd>)>, Error> {
    let mut buf = [0u8; 4096];
    let (n, fds) = loop {
        match sys::recv_with_fds(sock.as_fd(), &mut buf) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(Error::Sync)?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[..n]).map_err(|e| Error::Protocol(e.to_string()))?;
    Ok(Some((msg, fds)))
}

/// The nursery's life: park, wait, bear (or, when the shim goes away, just exit).
fn nursery_main(procs: &[PathBuf], staging: Option<&Path>, sock: OwnedFd) -> ! {
    let _ = nix::sys::prctl::set_name(c"execdriver-nurs");
    // It dies with its shim; the shim's pool clean-up (or the daemon's sweep) removes the
    // cgroups.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let (host_net, host_mnt) = match park(procs, staging) {
        Ok(f) => f,
        Err(message) => {
            let _ = send(
                &sock,
                &Msg::Failed {
                    precondition: false,
                    message,
                },
                &[],
            );
            sys::exit_now(1)
        }
    };
    if send(&sock, &Msg::Parked, &[]).is_err() {
        sys::exit_now(1);
    }
    let (msg, fds) = match recv(&sock) {
        Ok(Some(x)) => x,
        _ => sys::exit_now(0),
    };
    let answer = match msg {
        Msg::Bear {
            config,
            stdio,
            into_cgroup,
        } => bear(
            &config,
            stdio,
            into_cgroup,
            fds,
            &host_net,
            host_mnt.as_ref(),
        ),
        other => Msg::Failed {
            precondition: false,
            message: format!("unexpected {other:?}"),
        },
    };
    let _ = send(&sock, &answer, &[]);
    sys::exit_now(0)
}

/// Joins the pool's cgroups and makes the network namespace; returns the host's. With
/// `staging`, also the pivoted mount namespace, and then the host's mount namespace (None when
/// it could not be made: the init then pivots as without a nursery).
fn park(procs: &[PathBuf], staging: Option<&Path>) -> Result<(File, Option<HostMnt>), String> {
    for p in procs {
        // "0": the writing process.
        std::fs::write(p, "0").map_err(|e| format!("joining {}: {e}", p.display()))?;
    }
    let host = File::open("/proc/self/ns/net").map_err(|e| format!("/proc/self/ns/net: {e}"))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(NEWNET): {e}"))?;
    crate::network::loopback_up().map_err(|e| format!("lo up: {e}"))?;
    let host_mnt = match staging {
        Some(dir) => {
            let mnt =
                File::open("/proc/self/ns/mnt").map_err(|e| format!("/proc/self/ns/mnt: {e}"))?;
            match crate::rootfs::staging::prepare(dir) {
                Ok(staged) => Some(HostMnt { mnt, staged }),
                Err(e) => {
                    crate::log::warn!("nursery: no staging root ({e}): its init will pivot");
                    nix::sched::setns(&mnt, CloneFlags::CLONE_NEWNS)
                        .map_err(|e| format!("back to the host's mount namespace: {e}"))?;
                    None
                }
            }
        }
        None => None,
    };
    Ok((host, host_mnt))
}

/// The host's mount namespace, left for a pivoted one ([`crate::rootfs::staging`]).
struct HostMnt {
    mnt: File,
    staged: crate::rootfs::staging::Staged,
}

fn bear(
    config_path: &Path,
    pipes: Pipes,
    into_cgroup: bool,
    fds: Vec<OwnedFd>,
    host_net: &File,
    host_mnt: Option<&HostMnt>,
) -> Msg {
    let failed = |e: Error| Msg::Failed {
        precondition: e.code() == crate::protocol::ErrorCode::FailedPrecondition,
        message: e.to_string(),
    };
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            return Msg::Failed {
                precondition: false,
                message: e.to_string(),
            }
        }
    };
    let Some(rootfs) = config.rootfs.clone() else {
        return Msg::Failed {
            precondition: false,
            message: "container.json: rootfs is not set".into(),
        };
    };
    let mut fds = fds.into_iter();
    let Some(child_sock) = fds.next() else {
        return failed(Error::Protocol("no sync socket".into()));
    };
    let stdio = match pipes {
        Pipes::Inherit => Stdio::Inherit,
        Pipes::Pty { rows, cols } => Stdio::Pty { rows, cols },
        Pipes::Fds => match (fds.next(), fds.next(), fds.next()) {
            (Some(stdin), Some(stdout), Some(stderr)) => Stdio::Fds {
                stdin,
                stdout,
                stderr,
            },
            _ => return failed(Error::Protocol("stdio descriptors missing".into())),
        },
    };
    let cgroup = if into_cgroup { fds.next() } else { None };
    // The namespace made here is the container's when it wants a new one of its own (and no
    // user namespace, which must own it). Otherwise the init starts from the host's, as it
    // would from the shim.
    let own_netns = config.has_namespace(Namespace::Net)
        && !config.has_namespace(Namespace::User)
        && config.netns_path().is_none()
        && !config.namespace_paths.contains_key(&Namespace::Net)
        && !config.namespace_paths.contains_key(&Namespace::User);
    if !own_netns {
        if let Err(e) = nix::sched::setns(host_net, CloneFlags::CLONE_NEWNET) {
            return failed(Error::Join(e.into()));
        }
    }
    // The pivoted mount namespace is for a container that makes a mount namespace of its own
    // and joins none (and has no user namespace, which must own it); any other goes back to
    // the host's, as it would start from the shim.
    let staged = host_mnt.filter(|_| {
        config.has_namespace(Namespace::Mount)
            && !config.has_namespace(Namespace::User)
            && config.namespace_paths.is_empty()
    });
    if let Some(h) = host_mnt.filter(|_| staged.is_none()) {
        if let Err(e) = nix::sched::setns(&h.mnt, CloneFlags::CLONE_NEWNS) {
            return failed(Error::Join(e.into()));
        }
    }
    let birth = Birth {
        sibling: true,
        cgroup: cgroup.as_ref().map(|f| f.as_fd()),
        in_own_netns: own_netns,
        staged: staged.map(|h| h.staged),
    };
    match clone_init(
        &config,
        &rootfs,
        stdio,
        child_sock,
        Launch::default(),
        &birth,
    ) {
        Ok((pid, in_cgroup)) => Msg::Born {
            pid: pid.as_raw(),
            in_cgroup,
        },
        Err(e) => failed(e),
    }
}
