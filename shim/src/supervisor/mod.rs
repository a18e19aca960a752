//! The shim: creates one container and supervises it until it is deleted.
//!
//! One thread, one epoll loop over: a signalfd (SIGCHLD and the signals the shim ignores), the
//! control socket and its clients, and the stdio of the container's processes (its init and
//! every exec'd process). It reaps every child (it is a child subreaper), records the init's
//! exit in `exit.json`, keeps a log per process, and relays stdio to attached clients. It runs
//! in its own session, so the driver can stop without stopping it.
//!
//! Slow clients: output is forwarded to every attached client; while any client has more than
//! [`HIGH_WATER`] bytes queued the shim stops reading the container's output (the container
//! blocks on a full pipe, as under `docker attach`); a client that stays above that mark for
//! [`STALL_LIMIT`] is disconnected, so one stuck client cannot stall the container for long.
//! The log gets every byte regardless.
//!
//! Pid reuse: the shim signals a process by pid only until it has reaped it (its status is not
//! Stopped); an unreaped child's pid cannot be reused, so a signal never reaches a stranger.
//!
//! Where things are: this file holds `Shim` and its epoll loop; `setup` brings the shim
//! and its container up; `procs` is the table of the container's processes (spawning exec'd
//! ones, reaping, exit records); `clients` the control connections; `dispatch` what a request
//! about one process does; `container` the requests answered through the cgroup; `relay` the
//! output and stdin of the processes, and the back-pressure; `events` what subscribers hear.

mod clients;
mod container;
mod dispatch;
mod events;
mod park;
mod procs;
mod relay;
mod setup;

pub use park::{
    daemon_gone, move_in, pool_cgroup_name, pool_cgroups, wait_for_adoption, Adoption, Parked,
};
pub use procs::exec_log_name;
pub use setup::{prepare_process, Report};

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use crate::cgroups::{DeviceMode, Manager, OomWatch};
use crate::config::Config;
use crate::log;
use crate::logfile::Rotation;
use crate::network;
use crate::process;
use crate::protocol::{self, response, ErrorCode, ExecFailure, Response, Stream};
use crate::slirp4netns::Slirp4netns;
use crate::state;

use clients::Client;
use procs::Proc;

pub use execdriver_spec::limits::{HIGH_WATER, STALL_LIMIT};

/// How the shim was asked to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub id: String,
    pub state_dir: PathBuf,
    /// Give the container a stdin pipe that attached clients can write to.
    pub stdin: bool,
    pub log_rotation: Rotation,
    /// The terminal's initial size (rows, cols) when container.json asks for a tty.
    pub console_size: (u16, u16),
    /// How device access is enforced (`--cgroup-devices`).
    pub cgroup_devices: DeviceMode,
    /// Run a container that asks for an AppArmor profile on a kernel without AppArmor,
    /// unconfined, with a warning (`--allow-missing-apparmor`); otherwise it is refused.
    pub allow_missing_apparmor: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] crate::config::LoadError),
    #[error("container.json: rootfs is not set")]
    NoRootfs,
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("cgroups: {0}")]
    Cgroup(#[from] crate::cgroups::Error),
    #[error("{0}")]
    Process(#[from] process::Error),
    #[error("network: {0}")]
    Network(#[from] crate::network::Error),
    #[error("network: {0}")]
    Slirp4netns(#[from] crate::slirp4netns::Error),
    /// The host cannot give what container.json asks (FAILED_PRECONDITION).
    #[error("{0}")]
    Precondition(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Config(_) | Error::NoRootfs => ErrorCode::InvalidArgument,
            Error::Cgroup(e) if e.is_invalid() => ErrorCode::InvalidArgument,
            Error::Cgroup(e) if e.is_precondition() => ErrorCode::FailedPrecondition,
            Error::Process(p) => p.code(),
            Error::Network(n) => n.code(),
            Error::Slirp4netns(n) => n.code(),
            Error::Precondition(_) => ErrorCode::FailedPrecondition,
            _ => ErrorCode::Internal,
        }
    }

    /// The reply of this error, worded `message`.
    pub fn reply(&self, message: String) -> Response {
        let failure = match self {
            Error::Process(p) => p.exec_failure(),
            _ => ExecFailure::Unspecified,
        };
        Response::exec_error(self.code(), failure, message)
    }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, source }
}

fn sys_err(what: &'static str) -> impl FnOnce(Errno) -> Error {
    move |source| Error::Sys { what, source }
}

/// Runs the shim: creates the container, reports on `report` (the driver's pipe) whether that
/// worked, then supervises until deleted. Returns the process exit code.
pub fn run(opts: Options, report: Report) -> i32 {
    run_adopted(opts, report, None)
}

/// [`run`] for a parked shim that a create adopted: its pool set becomes the container's.
pub fn run_adopted(opts: Options, mut report: Report, parked: Option<Parked>) -> i32 {
    let mut parked = parked;
    let made = Shim::create(&opts, &mut parked);
    // What of the pool set the create did not take (it failed before, or it did not fit)
    // goes, whatever happened.
    if let Some(p) = parked {
        p.discard();
    }
    let mut shim = match made {
        Ok(shim) => shim,
        Err(e) => {
            log::error!("shim {}: create failed: {e}", opts.id);
            let _ = protocol::write_frame(&mut report.pipe, &e.reply(e.to_string()));
            return 1;
        }
    };
    let created = Response {
        kind: Some(response::Kind::State(shim.state_of(INIT))),
    };
    if protocol::write_frame(&mut report.pipe, &created).is_err() {
        // The driver is gone before hearing of the container: nobody can reach it. Undo.
        log::error!(
            "shim {}: driver went away during create; removing the container",
            opts.id
        );
        shim.abandon();
        return 1;
    }
    report.created();
    crate::sys::release_unused_memory();
    shim.serve();
    0
}

/// The slot of the container's init.
const INIT: usize = 0;

const TOKEN_SIGNAL: u64 = 0;
const TOKEN_LISTENER: u64 = 1;
/// The container's cgroup hit its memory limit.
const TOKEN_OOM: u64 = 15;
const FIRST_CLIENT: u64 = 16;
/// Process stdio tokens: PROC_TOKENS + slot * 4 + (0 stdout, 1 stderr, 2 stdin).
const PROC_TOKENS: u64 = 1 << 40;

fn proc_token(slot: usize, which: u64) -> u64 {
    PROC_TOKENS + slot as u64 * 4 + which
}

struct Shim {
    id: String,
    dir: PathBuf,
    config: Config,
    cgroup: Option<Box<dyn Manager>>,
    /// Ready when the container's cgroup hits its memory limit.
    oom: Option<OomWatch>,
    /// The cgroup's OOM-kill count when the container was created.
    oom_base: u64,
    /// An OOM kill happened in the container.
    oom_seen: bool,
    /// OOM kills reported to subscribers so far.
    oom_reported: u64,
    /// The host ends of the container's veths, removed when the init ends.
    links: Vec<network::HostLink>,
    /// The user-mode network's slirp4netns (a child of the shim's), ended when the init ends.
    slirp: Option<Slirp4netns>,
    log_rotation: Rotation,
    /// Slot 0 is the init; exec'd processes take the others (None: free).
    procs: Vec<Option<Proc>>,
    epoll: Epoll,
    signals: SignalFd,
    listener: UnixListener,
    output_paused: bool,
    /// Reused for every read of a process's output.
    read_buf: Vec<u8>,
    clients: HashMap<u64, Client>,
    next_token: u64,
    done: bool,
}

impl Shim {
    fn serve(&mut self) {
        let mut events = vec![EpollEvent::empty(); 64];
        while !self.done {
            // Idle, the shim sleeps until something happens: no periodic wake-up (thousands
            // of idle shims cost no CPU). Only a client over the high-water mark needs a clock.
            let timeout = if self.clients.values().any(|c| c.over_since.is_some()) {
                EpollTimeout::from(1000u16)
            } else {
                EpollTimeout::NONE
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("shim {}: epoll_wait: {e}", self.id);
                    break;
                }
            };
            for ev in &events[..n] {
                let flags = ev.events();
                match ev.data() {
                    TOKEN_SIGNAL => self.on_signals(),
                    TOKEN_LISTENER => self.on_accept(),
                    TOKEN_OOM => self.on_oom(true),
                    t if t >= PROC_TOKENS => {
                        let slot = ((t - PROC_TOKENS) / 4) as usize;
                        match (t - PROC_TOKENS) % 4 {
                            0 => self.on_output(slot, Stream::Stdout),
                            1 => self.on_output(slot, Stream::Stderr),
                            _ => self.flush_stdin(slot),
                        }
                    }
                    token => self.on_client(token, flags),
                }
            }
            self.check_stalled();
            self.update_output_interest();
            self.flush_logs();
        }
        let _ = fs::remove_file(self.dir.join(state::SOCKET));
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            if info.ssi_signo == Signal::SIGHUP as u32 {
                self.rebind();
            } else if info.ssi_signo != Signal::SIGCHLD as u32 {
                log::info!("shim {}: ignoring signal {}", self.id, info.ssi_signo);
            }
        }
        self.reap();
    }

    /// SIGHUP: binds the control socket again when `shim.sock` is not the socket this shim
    /// listens on (removed or replaced by someone else), so the driver can reach it again.
    fn rebind(&mut self) {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let path = self.dir.join(state::SOCKET);
        let ours = nix::sys::stat::fstat(self.listener.as_fd()).ok();
        let present = fs::symlink_metadata(&path).ok();
        if let (Some(ours), Some(present)) = (&ours, &present) {
            if present.ino() == ours.st_ino && present.dev() == ours.st_dev {
                return;
            }
        }
        match setup::bind_socket(&self.dir) {
            Ok(listener) => {
                let _ = self.epoll.delete(&self.listener);
                if let Err(e) = self.epoll.add(
                    &listener,
                    EpollEvent::new(nix::sys::epoll::EpollFlags::EPOLLIN, TOKEN_LISTENER),
                ) {
                    log::error!("shim {}: watching the new shim.sock: {e}", self.id);
                }
                self.listener = listener;
                log::warn!("shim {}: shim.sock was missing; bound it again", self.id);
            }
            Err(e) => log::error!("shim {}: binding shim.sock again: {e}", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_tokens_do_not_meet_client_tokens() {
        assert!(proc_token(0, 0) > FIRST_CLIENT);
        assert_eq!((proc_token(7, 2) - PROC_TOKENS) / 4, 7);
        assert_eq!((proc_token(7, 2) - PROC_TOKENS) % 4, 2);
    }
}
