//! Bringing a shim up: the shim process itself ([`prepare_process`]), then the container
//! (its cgroup, init, network and control socket: `Shim::create`), and undoing all that when
//! the driver never hears of the container (`Shim::abandon`).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::waitpid;

use crate::cgroups::{self, Layout, Manager};
use crate::config::Cgroups;
use crate::config::Config;
use crate::log;
use crate::logfile::LogWriter;
use crate::network;
use crate::process::{self, Nursery, Stdio};
use crate::slirp4netns::{self, Slirp4netns};
use crate::state;

use super::park::Parked;
use super::procs::{make_stdio, Proc};
use super::relay::READ_SIZE;
use super::{
    io_err, sys_err, Error, Options, Shim, FIRST_CLIENT, INIT, TOKEN_LISTENER, TOKEN_OOM,
    TOKEN_SIGNAL,
};

/// Refuses a container that asks for an AppArmor profile the kernel cannot apply, unless the
/// shim runs with `--allow-missing-apparmor` (then it runs unconfined, and the shim log says so).
fn check_apparmor(opts: &Options, config: &Config) -> Result<(), Error> {
    match crate::security::check_apparmor(config, opts.allow_missing_apparmor) {
        Ok(Some(warning)) => {
            log::warn!("shim {}: {warning}", opts.id);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(refusal) => Err(Error::Precondition(refusal)),
    }
}

impl Shim {
    /// `parked`: a parked shim's set and nursery; taken when the container is made from it,
    /// left for the caller to discard otherwise (also when this fails before).
    pub(super) fn create(opts: &Options, parked: &mut Option<Parked>) -> Result<Shim, Error> {
        let dir = opts.state_dir.clone();
        let config = Config::load(&dir.join(state::CONFIG))?;
        let rootfs = config.rootfs.clone().ok_or(Error::NoRootfs)?;
        check_apparmor(opts, &config)?;

        // Signals: SIGCHLD drives reaping; the rest must not kill the shim (its container
        // would die with it). All arrive on the signalfd.
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            mask.add(s);
        }
        mask.thread_block().map_err(sys_err("blocking signals"))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(sys_err("signalfd"))?;

        // Bridges are looked up before anything is made: a missing one fails cleanly. So is
        // slirp4netns, for the user-mode network.
        let net_plan = network::plan(&config)?;
        if config.slirp4netns().is_some() {
            slirp4netns::check()?;
        }

        // The cgroups, with every limit and the device rules in place before the init exists.
        // A parked shim's pool set becomes them when it fits (same parent); otherwise it is
        // discarded and they are made here.
        let mut nursery = None;
        let cgroup = match &config.cgroups {
            Some(cg) => {
                let manager = cgroups::open(&Layout::detect()?, cg, opts.cgroup_devices)?;
                let adopting = parked.take_if(|p| p.fits(cg));
                let made = match &adopting {
                    // pids.max waits until the nursery is gone (it counts until then).
                    Some(p) => manager.cgroup().adopt(&p.pool).and_then(|_| {
                        manager.set(&Cgroups {
                            pids_limit: 0,
                            ..cg.clone()
                        })
                    }),
                    None => manager.create().and_then(|_| manager.set(cg)),
                }
                .and_then(|_| manager.set_devices(cg));
                if let Err(e) = made {
                    let _ = manager.destroy();
                    if let Some(p) = adopting {
                        p.discard();
                    }
                    return Err(e.into());
                }
                if let Some(p) = adopting {
                    log::info!("shim {}: made from a parked shim", opts.id);
                    nursery = Some(p.nursery);
                }
                Some(manager)
            }
            None => None,
        };
        let oom = match cgroup.as_ref().map(|m| m.watch_oom()) {
            Some(Ok(w)) => w,
            Some(Err(e)) => {
                log::warn!("shim {}: OOM kills will be seen at exit only: {e}", opts.id);
                None
            }
            None => None,
        };
        let oom_base = cgroup.as_ref().and_then(|m| m.oom_kills()).unwrap_or(0);

        let mut links = Vec::new();
        let mut slirp = None;
        let made = Self::create_init(
            opts,
            &config,
            &rootfs,
            cgroup.as_deref(),
            nursery,
            &net_plan,
            &mut links,
            &mut slirp,
        );
        let init = match made {
            Ok(x) => x,
            Err(e) => {
                // The init is gone: slirp4netns goes too (before the cgroups).
                drop(slirp);
                network::remove_host_links(&links);
                if let Some(cg) = &cgroup {
                    let _ = cg.destroy();
                }
                return Err(e);
            }
        };
        let pid = init.pid;
        let mut shim = Shim {
            id: opts.id.clone(),
            dir: dir.clone(),
            config,
            cgroup,
            oom,
            oom_base,
            oom_seen: false,
            oom_reported: 0,
            links,
            slirp,
            log_rotation: opts.log_rotation,
            procs: vec![Some(init)],
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(sys_err("epoll"))?,
            signals,
            listener: bind_socket(&dir)?,
            output_paused: false,
            read_buf: vec![0u8; READ_SIZE],
            clients: HashMap::new(),
            next_token: FIRST_CLIENT,
            done: false,
        };
        if let Err(e) = shim.register() {
            shim.abandon();
            return Err(e);
        }
        let pid_text = pid.to_string();
        let written =
            state::write_atomic(&dir, state::PID, pid_text.as_bytes(), false).and_then(|_| {
                state::write_atomic(
                    &dir,
                    state::SHIM_PID,
                    std::process::id().to_string().as_bytes(),
                    false,
                )
            });
        if let Err(e) = written {
            shim.abandon();
            return Err(Error::Io {
                what: "writing the pid file",
                source: e,
            });
        }
        if !shim.links.is_empty() {
            if let Err(e) = network::save_host_links(&dir, &shim.links) {
                shim.abandon();
                return Err(Error::Io {
                    what: "writing network.json",
                    source: e,
                });
            }
        }
        Ok(shim)
    }

    /// Makes the init; `links` and `slirp` get the network it was given on the host side
    /// (theirs to undo if this fails).
    #[allow(clippy::too_many_arguments)]
    fn create_init(
        opts: &Options,
        config: &Config,
        rootfs: &Path,
        cgroup: Option<&dyn Manager>,
        nursery: Option<Nursery>,
        net_plan: &network::Plan,
        links: &mut Vec<network::HostLink>,
        slirp: &mut Option<Slirp4netns>,
    ) -> Result<Proc, Error> {
        let force_ioctl = network::force_ioctl_from_env();
        // After the id maps are written (slirp4netns joins the init's user namespace) and
        // before the init goes on: its command starts with the network up.
        let mut start_slirp = |pid: nix::unistd::Pid| -> Result<(), String> {
            if let Some((_, n)) = config.slirp4netns() {
                let started = slirp4netns::start(&slirp4netns::Options {
                    init: pid,
                    userns: slirp4netns::own_userns(pid),
                    mtu: n.mtu,
                    state_dir: &opts.state_dir,
                })
                .map_err(|e| format!("network: {e}"))?;
                *slirp = Some(started);
            }
            Ok(())
        };
        let log = LogWriter::open(&opts.state_dir.join(state::LOG), opts.log_rotation)
            .map_err(io_err("opening the log"))?;
        let mut io = make_stdio(config.tty, opts.stdin, opts.console_size)?;
        let child = std::mem::replace(&mut io.child, Stdio::Inherit);
        let created = match (nursery, cgroup) {
            (Some(nursery), Some(cg)) => {
                // Born in its cgroups: the v1 ones are the nursery's, the v2 one by
                // CLONE_INTO_CGROUP (on kernels that have it; moved otherwise).
                let v2 = cg.cgroup().v2_dir().map(Path::to_path_buf);
                let into_v2 = v2.as_ref().filter(|_| crate::sys::kernel_at_least(5, 7));
                let pids_limit = config.cgroups.as_ref().map_or(0, |c| c.pids_limit);
                process::create_by(
                    nursery,
                    &opts.state_dir.join(state::CONFIG),
                    config,
                    child,
                    into_v2.map(PathBuf::as_path),
                    &mut |pid| {
                        if let (Some(dir), None) = (&v2, into_v2) {
                            cgroups::add_to(dir, pid).map_err(|e| format!("cgroups: {e}"))?;
                        }
                        // The nursery is gone: its counts go, and the pids limit applies.
                        cg.cgroup().reset_counters();
                        cg.set_pids_limit(pids_limit)
                            .map_err(|e| format!("cgroups: {e}"))?;
                        *links = network::setup_host(net_plan, pid.as_raw(), force_ioctl)
                            .map_err(|e| format!("network: {e}"))?;
                        start_slirp(pid)
                    },
                )?
            }
            (nursery, cgroup) => {
                if let Some(n) = nursery {
                    n.dismiss();
                }
                process::create(config, rootfs, child, &mut |pid| {
                    if let Some(cg) = cgroup {
                        cg.apply(pid).map_err(|e| format!("cgroups: {e}"))?;
                    }
                    *links = network::setup_host(net_plan, pid.as_raw(), force_ioctl)
                        .map_err(|e| format!("network: {e}"))?;
                    start_slirp(pid)
                })?
            }
        };
        Proc::new(String::new(), created, io, opts.stdin, log)
    }

    fn register(&mut self) -> Result<(), Error> {
        self.epoll
            .add(
                self.signals.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SIGNAL),
            )
            .map_err(sys_err("epoll_ctl"))?;
        self.epoll
            .add(
                self.listener.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_LISTENER),
            )
            .map_err(sys_err("epoll_ctl"))?;
        if let Some(w) = &self.oom {
            self.epoll
                .add(w.fd(), EpollEvent::new(w.epoll_flags(), TOKEN_OOM))
                .map_err(sys_err("epoll_ctl"))?;
        }
        self.register_proc(INIT)
    }

    /// Kills the container and removes what the shim made, for a create nobody will hear of.
    pub(super) fn abandon(&mut self) {
        let pid = self.init().pid;
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        if let Some(s) = &mut self.slirp {
            s.stop();
        }
        network::remove_host_links(&self.links);
        if let Some(cg) = &self.cgroup {
            let _ = cg.destroy();
        }
        let _ = fs::remove_file(self.dir.join(state::SOCKET));
        let _ = fs::remove_file(self.dir.join(state::PID));
        // Without shim.pid the directory reads as a create that never finished, which the
        // driver's next startup pass removes.
        let _ = fs::remove_file(self.dir.join(state::SHIM_PID));
    }
}

/// Binds the control socket in `dir`, readable and writable by root only. The shim's working
/// directory is `dir`, so the name is short whatever the state path.
pub(super) fn bind_socket(dir: &Path) -> Result<UnixListener, Error> {
    let path = dir.join(state::SOCKET);
    let _ = fs::remove_file(&path);
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(state::SOCKET);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(io_err("binding shim.sock"))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod shim.sock"))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("shim.sock"))?;
    Ok(listener)
}

/// Where the shim reports its create: the driver's pipe (the original stdout) for the reply,
/// and the process that started it, which waits to exit with the create's outcome.
pub struct Report {
    /// The reply frame goes here.
    pub pipe: File,
    /// The starter's pipe: one byte when the create succeeded; its closing without one (the
    /// shim exiting) means it failed.
    starter: File,
    /// A parked shim's original stdin: the daemon's adoption comes on it.
    pub adoption: Option<File>,
}

impl Report {
    /// The create succeeded and was reported: the starter exits 0, the pipes close.
    pub fn created(self) {
        let mut starter = self.starter;
        let _ = io::Write::write_all(&mut starter, &[0]);
    }
}

/// Prepares the shim process itself: detached from its starter, its own session, a child
/// subreaper, SIGPIPE ignored, working directory in the state directory, diagnostics to
/// `shim.log`. Returns where to report the create.
pub fn prepare_process(state_dir: &Path, parked: bool) -> io::Result<Report> {
    // Detach from whoever started it: the process started forks the shim and waits only
    // until the create's outcome is known (exit 0 created, 1 failed and cleaned up), and the
    // shim is reparented to the nearest subreaper. The driver then holds nothing per shim (no
    // process handle, no pidfd: one descriptor less per container) and a shim's exit leaves no
    // zombie of the driver's.
    let (outcome, starter) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the shim is one thread here (first thing after main's argument parsing).
    #[allow(unsafe_code)]
    let forked = unsafe { crate::sys::clone_process(nix::sched::CloneFlags::empty()) };
    match forked {
        Ok(crate::sys::Forked::Parent(_)) => {
            drop(starter);
            // It keeps no end of the daemon's pipes: they close when the shim goes (a parked
            // shim's stdin too, so an adoption of a dead one fails at once).
            if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
            }
            let mut byte = [1u8];
            let mut outcome = File::from(outcome);
            let code = match io::Read::read(&mut outcome, &mut byte) {
                Ok(1) => i32::from(byte[0]),
                _ => 1,
            };
            crate::sys::exit_now(code)
        }
        Ok(crate::sys::Forked::Child) => drop(outcome),
        Err(e) => return Err(io::Error::from(e)),
    }
    // Its own session (and so its own process group, without a controlling terminal): the
    // driver's terminal, session and process group can go away without a signal reaching it
    // (and it ignores HUP, INT, QUIT and TERM anyway). Measured against setpgid alone (the
    // scheduler autogroup setsid makes): the same median start-to-exit within noise.
    // EPERM: it already leads a process group (a shell started it as a job): that group is
    // its own, which is what matters.
    let _ = nix::unistd::setsid();
    // Started from a sealed copy (/proc/self/fd/N), its command name would be "N": ps, top and
    // the kernel's messages name it as it is.
    let _ = nix::sys::prctl::set_name(c"execdriver-shim");
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
    crate::sys::ignore_signal(Signal::SIGPIPE).map_err(io::Error::from)?;
    std::env::set_current_dir(state_dir)?;
    let report = nix::unistd::dup(io::stdout().as_fd()).map_err(io::Error::from)?;
    nix::fcntl::fcntl(
        &report,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(io::Error::from)?;
    let adoption = if parked {
        let fd = nix::unistd::dup(io::stdin().as_fd()).map_err(io::Error::from)?;
        nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(io::Error::from)?;
        Some(File::from(fd))
    } else {
        None
    };
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join(state::SHIM_LOG))?;
    nix::unistd::dup2_stdin(null.as_fd()).map_err(io::Error::from)?;
    nix::unistd::dup2_stdout(null.as_fd()).map_err(io::Error::from)?;
    nix::unistd::dup2_stderr(log.as_fd()).map_err(io::Error::from)?;
    let _ = report.as_raw_fd();
    Ok(Report {
        pipe: File::from(report),
        starter: File::from(starter),
        adoption,
    })
}
