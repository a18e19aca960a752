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

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cgroups::{self, DeviceMode, Layout, Manager, OomWatch};
use crate::config::{Config, User};
use crate::logfile::{LogWriter, Rotation};
use crate::namespaces::Namespace;
use crate::network;
use crate::process::{self, Created, ProcessSpec, Stdio};
use crate::protocol::{
    self, request, response, ErrorCode, ExecSpec, Exit, FrameDecoder, Request, Response, ShimState,
    Status, Stream,
};
use crate::state::{self, ExitRecord};

/// Queued bytes per client above which the container's output is not read.
pub const HIGH_WATER: usize = 4 << 20;
/// How long a client may hold the container up before it is disconnected.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);
/// Bytes read from a process's output at once.
const READ_SIZE: usize = 256 * 1024;
/// Stdout and stderr pipes hold this much, so a fast writer blocks less often.
const PIPE_SIZE: i32 = 1 << 20;
/// Queued stdin bytes above which the shim stops reading stdin from clients.
const STDIN_HIGH_WATER: usize = 4 << 20;
/// Records of ended exec'd processes kept (the oldest go first beyond this).
const MAX_ENDED_EXECS: usize = 64;

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
    /// The host cannot give what container.json asks (FAILED_PRECONDITION).
    #[error("{0}")]
    Precondition(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Config(_) | Error::NoRootfs => ErrorCode::InvalidArgument,
            Error::Cgroup(e) if e.is_invalid() => ErrorCode::InvalidArgument,
            Error::Process(p) => p.code(),
            Error::Network(n) => n.code(),
            Error::Precondition(_) => ErrorCode::FailedPrecondition,
            _ => ErrorCode::Internal,
        }
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
pub fn run(opts: Options, mut report: File) -> i32 {
    let mut shim = match Shim::create(&opts) {
        Ok(shim) => shim,
        Err(e) => {
            eprintln!("shim {}: create failed: {e}", opts.id);
            let _ = protocol::write_frame(&mut report, &Response::error(e.code(), e.to_string()));
            return 1;
        }
    };
    let created = Response {
        kind: Some(response::Kind::State(shim.state_of(INIT))),
    };
    if protocol::write_frame(&mut report, &created).is_err() {
        // The driver is gone before hearing of the container: nobody can reach it. Undo.
        eprintln!(
            "shim {}: driver went away during create; removing the container",
            opts.id
        );
        shim.abandon();
        return 1;
    }
    drop(report);
    shim.serve();
    0
}

/// Bytes queued for a client: appended at the end, written from `pos`.
#[derive(Default)]
struct OutBuf {
    buf: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Marks `n` bytes written; reclaims the front only when that is cheap relative to it.
    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 20) && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

struct Client {
    stream: UnixStream,
    decoder: FrameDecoder,
    out: OutBuf,
    mode: Mode,
    /// When its queue went above HIGH_WATER.
    over_since: Option<Instant>,
    /// Close once `out` is written.
    closing: bool,
    /// Registered for EPOLLIN (false while stdin is backed up).
    reading: bool,
}

/// What a client connection is for; `slot` names the process.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idle,
    Waiting {
        slot: usize,
    },
    Attached {
        slot: usize,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Hears of every exit and OOM kill (`Subscribe`).
    Subscribed,
}

impl Mode {
    fn slot(self) -> Option<usize> {
        match self {
            Mode::Idle | Mode::Subscribed => None,
            Mode::Waiting { slot } | Mode::Attached { slot, .. } => Some(slot),
        }
    }
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

/// One process of the container and its stdio.
struct Proc {
    /// Empty for the init.
    exec_id: String,
    pid: Pid,
    /// Until started.
    created: Option<Created>,
    status: Status,
    started_at: i64,
    exit: Option<ExitRecord>,
    /// Why Start failed, kept for the exit record.
    start_error: Option<String>,
    /// The terminal's master, for resizes.
    pty: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    stdin_close: bool,
    stdin_registered: bool,
    log: LogWriter,
    log_dirty: bool,
}

/// The stdio a new process gets, and the shim's ends of it.
struct ProcStdio {
    child: Stdio,
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
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

/// A pipe, close-on-exec at both ends (the child's end is dup'd onto 0, 1 or 2).
fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys_err("pipe"))
}

fn set_nonblocking(fd: &impl AsFd) -> Result<(), Error> {
    let flags =
        nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_GETFL).map_err(sys_err("fcntl"))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))
        .map_err(sys_err("fcntl"))?;
    Ok(())
}

/// Pipes (or a terminal to be opened in the container) for a new process.
fn make_stdio(tty: bool, stdin: bool, size: (u16, u16)) -> Result<ProcStdio, Error> {
    if tty {
        let (rows, cols) = size;
        return Ok(ProcStdio {
            child: Stdio::Pty { rows, cols },
            stdin: None,
            stdout: None,
            stderr: None,
        });
    }
    let (stdin_child, stdin_ours) = if stdin {
        let (r, w) = pipe()?;
        set_nonblocking(&w)?;
        (r, Some(File::from(w)))
    } else {
        let null = File::open("/dev/null").map_err(io_err("opening /dev/null"))?;
        (OwnedFd::from(null), None)
    };
    let (stdout_ours, stdout_child) = pipe()?;
    let (stderr_ours, stderr_child) = pipe()?;
    for fd in [&stdout_ours, &stderr_ours] {
        set_nonblocking(fd)?;
        // Best effort: the system's pipe-max-size may be lower.
        let _ = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    Ok(ProcStdio {
        child: Stdio::Fds {
            stdin: stdin_child,
            stdout: stdout_child,
            stderr: stderr_child,
        },
        stdin: stdin_ours,
        stdout: Some(File::from(stdout_ours)),
        stderr: Some(File::from(stderr_ours)),
    })
}

impl Proc {
    /// Wraps a created process and its stdio; with a terminal, its master is the stdout (and,
    /// when asked, the stdin).
    fn new(
        exec_id: String,
        mut created: Created,
        io: ProcStdio,
        stdin: bool,
        log: LogWriter,
    ) -> Result<Proc, Error> {
        let (mut stdout, mut stdin_file, stderr, mut pty) = (io.stdout, io.stdin, io.stderr, None);
        if let Some(master) = created.pty_master.take() {
            set_nonblocking(&master)?;
            let master = File::from(master);
            if stdin {
                stdin_file = Some(master.try_clone().map_err(io_err("dup the terminal"))?);
            }
            pty = Some(master.try_clone().map_err(io_err("dup the terminal"))?);
            stdout = Some(master);
        }
        Ok(Proc {
            exec_id,
            pid: created.pid,
            created: Some(created),
            status: Status::Created,
            started_at: 0,
            exit: None,
            start_error: None,
            pty,
            stdout,
            stderr,
            stdin: stdin_file,
            stdin_buf: Vec::new(),
            stdin_close: false,
            stdin_registered: false,
            log,
            log_dirty: false,
        })
    }
}

/// Refuses a container that asks for an AppArmor profile the kernel cannot apply, unless the
/// shim runs with `--allow-missing-apparmor` (then it runs unconfined, and the shim log says so).
fn check_apparmor(opts: &Options, config: &Config) -> Result<(), Error> {
    match crate::security::check_apparmor(config, opts.allow_missing_apparmor) {
        Ok(Some(warning)) => {
            eprintln!("shim {}: {warning}", opts.id);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(refusal) => Err(Error::Precondition(refusal)),
    }
}

/// The log file of an exec'd process.
pub fn exec_log_name(exec_id: &str) -> String {
    format!("exec-{exec_id}.log")
}

impl Shim {
    fn create(opts: &Options) -> Result<Shim, Error> {
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

        // Bridges are looked up before anything is made: a missing one fails cleanly.
        let net_plan = network::plan(&config)?;

        // The cgroups, with every limit and the device rules in place before the init exists.
        let cgroup = match &config.cgroups {
            Some(cg) => {
                let manager = cgroups::open(&Layout::detect()?, cg, opts.cgroup_devices)?;
                let made = manager
                    .create()
                    .and_then(|_| manager.set(cg))
                    .and_then(|_| manager.set_devices(cg));
                if let Err(e) = made {
                    let _ = manager.destroy();
                    return Err(e.into());
                }
                Some(manager)
            }
            None => None,
        };
        let oom = match cgroup.as_ref().map(|m| m.watch_oom()) {
            Some(Ok(w)) => w,
            Some(Err(e)) => {
                eprintln!("shim {}: OOM kills will be seen at exit only: {e}", opts.id);
                None
            }
            None => None,
        };
        let oom_base = cgroup.as_ref().and_then(|m| m.oom_kills()).unwrap_or(0);

        let mut links = Vec::new();
        let made = Self::create_init(
            opts,
            &config,
            &rootfs,
            cgroup.as_deref(),
            &net_plan,
            &mut links,
        );
        let init = match made {
            Ok(x) => x,
            Err(e) => {
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

    fn create_init(
        opts: &Options,
        config: &Config,
        rootfs: &Path,
        cgroup: Option<&dyn Manager>,
        net_plan: &network::Plan,
        links: &mut Vec<network::HostLink>,
    ) -> Result<Proc, Error> {
        let force_ioctl = network::force_ioctl_from_env();
        let log = LogWriter::open(&opts.state_dir.join(state::LOG), opts.log_rotation)
            .map_err(io_err("opening the log"))?;
        let mut io = make_stdio(config.tty, opts.stdin, opts.console_size)?;
        let child = std::mem::replace(&mut io.child, Stdio::Inherit);
        let created = process::create(config, rootfs, child, &mut |pid| {
            if let Some(cg) = cgroup {
                cg.apply(pid).map_err(|e| format!("cgroups: {e}"))?;
            }
            *links = network::setup_host(net_plan, pid.as_raw(), force_ioctl)
                .map_err(|e| format!("network: {e}"))?;
            Ok(())
        })?;
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

    fn register_proc(&mut self, slot: usize) -> Result<(), Error> {
        let Some(p) = self.procs.get(slot).and_then(|p| p.as_ref()) else {
            return Ok(());
        };
        for (f, which) in [(p.stdout.as_ref(), 0), (p.stderr.as_ref(), 1)] {
            if let Some(f) = f {
                self.epoll
                    .add(
                        f.as_fd(),
                        EpollEvent::new(EpollFlags::EPOLLIN, proc_token(slot, which)),
                    )
                    .map_err(sys_err("epoll_ctl"))?;
            }
        }
        Ok(())
    }

    fn init(&self) -> &Proc {
        // Slot 0 holds the init from create to exit of the shim.
        self.procs[INIT]
            .as_ref()
            .expect("the init's slot is never freed")
    }

    /// Kills the container and removes what the shim made, for a create nobody will hear of.
    fn abandon(&mut self) {
        let pid = self.init().pid;
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
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

    fn slot_of(&self, exec_id: &str) -> Option<usize> {
        self.procs
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.exec_id == exec_id))
    }

    /// The slot a request names, or the error reply for an unknown exec id.
    fn target(&self, exec_id: &str) -> Result<usize, Box<Response>> {
        self.slot_of(exec_id).ok_or_else(|| {
            Box::new(Response::error(
                ErrorCode::NotFound,
                format!("exec {exec_id:?} not found in container {}", self.id),
            ))
        })
    }

    fn state_of(&self, slot: usize) -> ShimState {
        let Some(p) = self.procs.get(slot).and_then(|p| p.as_ref()) else {
            return ShimState::default();
        };
        ShimState {
            status: p.status as i32,
            pid: p.pid.as_raw(),
            started_at: p.started_at,
            exit: p.exit.as_ref().map(Exit::from),
            shim_pid: std::process::id() as i32,
        }
    }

    fn serve(&mut self) {
        let mut events = vec![EpollEvent::empty(); 64];
        while !self.done {
            let n = match self.epoll.wait(&mut events, EpollTimeout::from(1000u16)) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("shim {}: epoll_wait: {e}", self.id);
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

    fn flush_logs(&mut self) {
        for p in self.procs.iter_mut().flatten() {
            if p.log_dirty {
                p.log_dirty = false;
                if let Err(e) = p.log.flush() {
                    eprintln!("shim {}: writing the log: {e}", self.id);
                }
            }
        }
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            if info.ssi_signo != Signal::SIGCHLD as u32 {
                eprintln!("shim {}: ignoring signal {}", self.id, info.ssi_signo);
            }
        }
        self.reap();
    }

    /// Collects every child that has ended; records the end of the container's processes.
    fn reap(&mut self) {
        loop {
            let (pid, code, signal) =
                match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::Exited(pid, code)) => (pid, Some(code), None),
                    Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, None, Some(sig as i32)),
                    Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                    Ok(_) | Err(Errno::EINTR) => continue,
                    Err(e) => {
                        eprintln!("shim {}: waitpid: {e}", self.id);
                        break;
                    }
                };
            let slot = self.procs.iter().position(|p| {
                p.as_ref()
                    .is_some_and(|p| p.pid == pid && p.status != Status::Stopped)
            });
            // Anything else is an orphan reparented to us: reaped, nothing to record.
            if let Some(slot) = slot {
                self.on_exit(slot, code, signal);
            }
        }
    }

    fn on_exit(&mut self, slot: usize, exit_code: Option<i32>, signal: Option<i32>) {
        // Everything the process wrote before it ended goes to the log and the clients
        // before its exit does.
        self.output_paused = false;
        for stream in [Stream::Stdout, Stream::Stderr] {
            self.read_output(slot, stream, usize::MAX);
        }
        if slot == INIT && !self.config.has_namespace(Namespace::Pid) {
            // Without a PID namespace the kernel does not end the rest; the cgroup does.
            if let Some(cg) = &self.cgroup {
                let _ = cg.thaw();
                cg.kill_all(Signal::SIGKILL);
            }
        }
        if slot == INIT {
            // The OOM notification may still be queued behind SIGCHLD: the counter decides too.
            self.on_oom(false);
            // The kernel would remove the veths with the namespace; a namespace that outlives
            // the init (joined by another container) must not keep them on the bridge.
            network::remove_host_links(&self.links);
        }
        let oom_killed = slot == INIT && self.oom_seen;
        let Some(p) = self.procs.get_mut(slot).and_then(|p| p.as_mut()) else {
            return;
        };
        let _ = p.log.flush_partial(Stream::Stdout);
        let _ = p.log.flush_partial(Stream::Stderr);
        p.created = None;
        let record = ExitRecord {
            pid: p.pid.as_raw(),
            exit_code,
            signal,
            oom_killed,
            started_at: p.started_at,
            finished_at: state::now_ns(),
            reason: p.start_error.take().unwrap_or_default(),
        };
        p.status = Status::Stopped;
        p.stdin = None;
        p.stdin_buf.clear();
        let exit = Response {
            kind: Some(response::Kind::Exit(Exit::from(&record))),
        };
        p.exit = Some(record.clone());
        if slot == INIT {
            if let Err(e) = record.save(&self.dir) {
                eprintln!("shim {}: writing exit.json: {e}", self.id);
            }
            let _ = fs::remove_file(self.dir.join(state::PID));
        }
        let exec_id = p.exec_id.clone();
        let tokens: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| c.mode.slot() == Some(slot))
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            if let Some(c) = self.clients.get_mut(&t) {
                c.out.extend_from_slice(&protocol::encode_frame(&exit));
                c.closing = true;
            }
            self.flush_client(t);
        }
        self.publish(protocol::ShimEvent {
            kind: protocol::EventKind::Exit as i32,
            exec_id,
            exit: Some(Exit::from(&record)),
            time: record.finished_at,
            oom_kills: 0,
        });
        self.prune_execs();
    }

    /// Keeps at most MAX_ENDED_EXECS records of ended exec'd processes nobody is watching.
    fn prune_execs(&mut self) {
        let watched: Vec<usize> = self
            .clients
            .values()
            .filter_map(|c| c.mode.slot())
            .collect();
        let mut ended: Vec<(i64, usize)> = self
            .procs
            .iter()
            .enumerate()
            .skip(1)
            .filter_map(|(slot, p)| {
                let p = p.as_ref()?;
                let finished = p.exit.as_ref()?.finished_at;
                (!watched.contains(&slot)).then_some((finished, slot))
            })
            .collect();
        if ended.len() <= MAX_ENDED_EXECS {
            return;
        }
        ended.sort();
        let excess = ended.len() - MAX_ENDED_EXECS;
        for (_, slot) in ended.into_iter().take(excess) {
            self.forget(slot);
        }
    }

    /// Drops an ended exec's record and its log.
    fn forget(&mut self, slot: usize) {
        if let Some(p) = self.procs.get_mut(slot).and_then(|p| p.take()) {
            for f in [p.stdout.as_ref(), p.stderr.as_ref()].into_iter().flatten() {
                let _ = self.epoll.delete(f.as_fd());
            }
            let _ = fs::remove_file(self.dir.join(exec_log_name(&p.exec_id)));
        }
    }

    fn on_accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let token = self.next_token;
                    self.next_token += 1;
                    let ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, token);
                    if self.epoll.add(stream.as_fd(), ev).is_err() {
                        continue;
                    }
                    self.clients.insert(
                        token,
                        Client {
                            stream,
                            decoder: FrameDecoder::default(),
                            out: OutBuf::default(),
                            mode: Mode::Idle,
                            over_since: None,
                            closing: false,
                            reading: true,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("shim {}: accept: {e}", self.id);
                    break;
                }
            }
        }
    }

    fn on_client(&mut self, token: u64, flags: EpollFlags) {
        if flags.contains(EpollFlags::EPOLLOUT) {
            self.flush_client(token);
        }
        if flags.intersects(
            EpollFlags::EPOLLIN
                | EpollFlags::EPOLLHUP
                | EpollFlags::EPOLLRDHUP
                | EpollFlags::EPOLLERR,
        ) {
            self.read_client(token);
        }
    }

    fn read_client(&mut self, token: u64) {
        let mut buf = [0u8; 64 * 1024];
        let mut closed = false;
        {
            let Some(c) = self.clients.get_mut(&token) else {
                return;
            };
            if !c.reading {
                return;
            }
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        c.decoder.push(&buf[..n]);
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        loop {
            let next = match self.clients.get_mut(&token) {
                Some(c) => c.decoder.next_frame::<Request>(),
                None => return,
            };
            match next {
                Ok(Some(req)) => self.handle(token, req),
                Ok(None) => break,
                Err(e) => {
                    eprintln!("shim {}: bad frame from a client: {e}", self.id);
                    self.drop_client(token);
                    return;
                }
            }
        }
        if closed {
            self.drop_client(token);
        }
    }

    fn reply(&mut self, token: u64, resp: Response) {
        if let Some(c) = self.clients.get_mut(&token) {
            c.out.extend_from_slice(&protocol::encode_frame(&resp));
        }
        self.flush_client(token);
    }

    fn handle(&mut self, token: u64, req: Request) {
        use request::Kind;
        let Some(kind) = req.kind else {
            self.reply(
                token,
                Response::error(ErrorCode::InvalidArgument, "empty request"),
            );
            return;
        };
        let resp = match kind {
            Kind::Start(t) => self.start(&t.exec_id),
            Kind::State(t) => match self.target(&t.exec_id) {
                Ok(slot) => Response {
                    kind: Some(response::Kind::State(self.state_of(slot))),
                },
                Err(resp) => *resp,
            },
            Kind::Wait(t) => match self.target(&t.exec_id) {
                Err(resp) => *resp,
                Ok(slot) => match self.procs[slot].as_ref().and_then(|p| p.exit.as_ref()) {
                    Some(rec) => Response {
                        kind: Some(response::Kind::Exit(Exit::from(rec))),
                    },
                    None => {
                        if let Some(c) = self.clients.get_mut(&token) {
                            c.mode = Mode::Waiting { slot };
                        }
                        return;
                    }
                },
            },
            Kind::Kill(k) => self.kill(k),
            Kind::Attach(a) => {
                self.attach(token, a);
                return;
            }
            Kind::Stdin(data) => {
                if let Some(Mode::Attached {
                    slot, stdin: true, ..
                }) = self.clients.get(&token).map(|c| c.mode)
                {
                    if let Some(p) = self.procs.get_mut(slot).and_then(|p| p.as_mut()) {
                        if p.stdin.is_some() && !p.stdin_close {
                            p.stdin_buf.extend_from_slice(&data);
                            self.flush_stdin(slot);
                        }
                    }
                }
                return; // stream frames get no reply
            }
            Kind::CloseStdin(t) => {
                let attached = self.clients.get(&token).and_then(|c| match c.mode {
                    Mode::Attached { slot, .. } => Some(slot),
                    _ => None,
                });
                let slot = match attached {
                    Some(slot) => slot,
                    None => match self.target(&t.exec_id) {
                        Ok(slot) => slot,
                        Err(resp) => {
                            self.reply(token, *resp);
                            return;
                        }
                    },
                };
                if let Some(p) = self.procs.get_mut(slot).and_then(|p| p.as_mut()) {
                    if p.stdin.is_some() {
                        p.stdin_close = true;
                    }
                }
                self.flush_stdin(slot);
                if attached.is_some() {
                    return;
                }
                Response::ok()
            }
            Kind::Resize(r) => self.resize(r),
            Kind::Shutdown(_) => self.shutdown(),
            Kind::ReopenLog(_) => {
                let mut result = Ok(());
                for p in self.procs.iter_mut().flatten() {
                    result = result.and(p.log.reopen());
                }
                match result {
                    Ok(()) => Response::ok(),
                    Err(e) => {
                        Response::error(ErrorCode::Internal, format!("reopening the log: {e}"))
                    }
                }
            }
            Kind::Exec(spec) => self.exec(spec),
            Kind::Pause(_) => self.pause(),
            Kind::Resume(_) => self.resume(),
            Kind::Stats(_) => self.stats(),
            Kind::Update(r) => self.update(r),
            Kind::Pids(_) => self.pids(),
            Kind::Subscribe(_) => {
                self.subscribe(token);
                return;
            }
            Kind::Forget(t) => match self.target(&t.exec_id) {
                Err(resp) => *resp,
                Ok(INIT) => Response::error(
                    ErrorCode::InvalidArgument,
                    "exec_id: the init cannot be forgotten",
                ),
                Ok(slot) => {
                    if self.procs[slot]
                        .as_ref()
                        .is_some_and(|p| p.status != Status::Stopped)
                    {
                        Response::error(
                            ErrorCode::FailedPrecondition,
                            format!("exec {} is running", t.exec_id),
                        )
                    } else {
                        self.forget(slot);
                        Response::ok()
                    }
                }
            },
        };
        self.reply(token, resp);
    }

    fn attach(&mut self, token: u64, a: protocol::Attach) {
        let slot = match self.target(&a.exec_id) {
            Ok(slot) => slot,
            Err(resp) => {
                self.reply(token, *resp);
                return;
            }
        };
        if let Some(c) = self.clients.get_mut(&token) {
            c.mode = Mode::Attached {
                slot,
                stdin: a.stdin,
                stdout: a.stdout,
                stderr: a.stderr,
            };
        }
        self.reply(token, Response::ok());
        if let Some(rec) = self.procs[slot].as_ref().and_then(|p| p.exit.as_ref()) {
            let exit = Response {
                kind: Some(response::Kind::Exit(Exit::from(rec))),
            };
            if let Some(c) = self.clients.get_mut(&token) {
                c.closing = true;
            }
            self.reply(token, exit);
        }
    }

    fn start(&mut self, exec_id: &str) -> Response {
        let slot = match self.target(exec_id) {
            Ok(slot) => slot,
            Err(resp) => return *resp,
        };
        if slot != INIT && self.init().status != Status::Running {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {} is {}",
                    self.id,
                    status_name(self.init().status)
                ),
            );
        }
        let Some(p) = self.procs[slot].as_mut() else {
            return Response::error(ErrorCode::NotFound, "gone");
        };
        let what = if slot == INIT {
            format!("container {}", self.id)
        } else {
            format!("exec {exec_id}")
        };
        if p.status != Status::Created {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!("{what} is {}, not created", status_name(p.status)),
            );
        }
        let Some(mut created) = p.created.take() else {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!("{what}: its process is gone"),
            );
        };
        match created.start() {
            Ok(()) => {
                p.status = Status::Running;
                p.started_at = state::now_ns();
                let frozen = self
                    .config
                    .cgroups
                    .as_ref()
                    .is_some_and(|c| c.freezer == "FROZEN");
                if slot == INIT && frozen {
                    // container.json asks for a paused start (libcontainer's freezer field).
                    if let Err(e) = self.cgroup.as_ref().map_or(Ok(()), |m| m.freeze()) {
                        eprintln!("shim {}: freezing after start: {e}", self.id);
                    } else {
                        self.set_init_status(Status::Paused);
                    }
                }
                Response::ok()
            }
            Err(e) => {
                let msg = format!("start: {e}");
                p.start_error = Some(msg.clone());
                Response::error(e.code(), msg)
            }
        }
    }

    /// Creates a process in the running container, waiting for Start.
    fn exec(&mut self, spec: ExecSpec) -> Response {
        if self.init().status != Status::Running {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {} is {}, not running",
                    self.id,
                    status_name(self.init().status)
                ),
            );
        }
        if spec.exec_id.is_empty() {
            return Response::error(ErrorCode::InvalidArgument, "exec_id: missing");
        }
        // It names a file in the state directory (exec-ID.log): nothing but a plain name.
        if spec.exec_id.len() > 64
            || spec.exec_id.starts_with('.')
            || !spec
                .exec_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Response::error(
                ErrorCode::InvalidArgument,
                format!("exec_id: {:?} is not a plain name", spec.exec_id),
            );
        }
        if self.slot_of(&spec.exec_id).is_some() {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "exec {} already exists in container {}",
                    spec.exec_id, self.id
                ),
            );
        }
        let user = match User::parse(&spec.user) {
            Ok(u) => u,
            Err(e) => return Response::error(ErrorCode::InvalidArgument, format!("user: {e}")),
        };
        let pspec = ProcessSpec {
            args: spec.args,
            env: spec.env,
            cwd: spec.cwd,
            user,
            init: false,
        };
        match self.make_exec(
            &spec.exec_id,
            &pspec,
            spec.tty,
            spec.stdin,
            (spec.rows as u16, spec.cols as u16),
        ) {
            Ok(slot) => Response {
                kind: Some(response::Kind::State(self.state_of(slot))),
            },
            Err(e) => Response::error(e.code(), e.to_string()),
        }
    }

    fn make_exec(
        &mut self,
        exec_id: &str,
        spec: &ProcessSpec,
        tty: bool,
        stdin: bool,
        size: (u16, u16),
    ) -> Result<usize, Error> {
        let log = LogWriter::open(&self.dir.join(exec_log_name(exec_id)), self.log_rotation)
            .map_err(io_err("opening the exec's log"))?;
        let mut io = make_stdio(tty, stdin, size)?;
        let child = std::mem::replace(&mut io.child, Stdio::Inherit);
        let cgroup = self.cgroup.as_deref();
        let created = process::join(&self.config, self.init().pid, spec, child, &mut |pid| {
            if let Some(cg) = cgroup {
                cg.apply(pid).map_err(|e| format!("cgroups: {e}"))?;
            }
            Ok(())
        })?;
        let proc = Proc::new(exec_id.to_owned(), created, io, stdin, log)?;
        let slot = match self.procs.iter().position(|p| p.is_none()) {
            Some(free) => {
                self.procs[free] = Some(proc);
                free
            }
            None => {
                self.procs.push(Some(proc));
                self.procs.len() - 1
            }
        };
        self.register_proc(slot)?;
        Ok(slot)
    }

    fn kill(&mut self, k: protocol::Kill) -> Response {
        let Ok(sig) = Signal::try_from(k.signal) else {
            return Response::error(
                ErrorCode::InvalidArgument,
                format!("signal: {} is not a signal", k.signal),
            );
        };
        let slot = match self.target(&k.exec_id) {
            Ok(slot) => slot,
            Err(resp) => return *resp,
        };
        let Some(p) = self.procs[slot].as_ref() else {
            return Response::error(ErrorCode::NotFound, "gone");
        };
        if p.status == Status::Stopped {
            let what = if slot == INIT {
                format!("container {}", self.id)
            } else {
                format!("exec {}", k.exec_id)
            };
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!("{what} is not running"),
            );
        }
        let sent = match (&self.cgroup, k.all) {
            (Some(cg), true) => {
                cg.kill_all(sig);
                Ok(())
            }
            // Not yet reaped (status is not Stopped), so the pid is still this process's.
            _ => match kill(p.pid, sig) {
                Ok(()) | Err(Errno::ESRCH) => Ok(()),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = sent {
            return Response::error(ErrorCode::Internal, format!("kill: {e}"));
        }
        if self.init().status == Status::Paused && sig == Signal::SIGKILL {
            // Frozen tasks die only once thawed (v1); other signals wait for Resume.
            if let Some(cg) = &self.cgroup {
                let _ = cg.thaw();
            }
            self.set_init_status(Status::Running);
        }
        Response::ok()
    }

    fn set_init_status(&mut self, status: Status) {
        if let Some(p) = self.procs[INIT].as_mut() {
            p.status = status;
        }
    }

    fn no_cgroups(&self) -> Response {
        Response::error(
            ErrorCode::FailedPrecondition,
            format!("container {} has no cgroups", self.id),
        )
    }

    fn pause(&mut self) -> Response {
        if self.init().status != Status::Running {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {} is {}, not running",
                    self.id,
                    status_name(self.init().status)
                ),
            );
        }
        let Some(cg) = self.cgroup.as_deref() else {
            return self.no_cgroups();
        };
        match cg.freeze() {
            Ok(()) => {
                self.set_init_status(Status::Paused);
                Response::ok()
            }
            Err(e) => Response::error(ErrorCode::Internal, format!("pause: {e}")),
        }
    }

    fn resume(&mut self) -> Response {
        if self.init().status != Status::Paused {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {} is {}, not paused",
                    self.id,
                    status_name(self.init().status)
                ),
            );
        }
        let Some(cg) = self.cgroup.as_deref() else {
            return self.no_cgroups();
        };
        match cg.thaw() {
            Ok(()) => {
                self.set_init_status(Status::Running);
                Response::ok()
            }
            Err(e) => Response::error(ErrorCode::Internal, format!("resume: {e}")),
        }
    }

    fn refuse_stopped(&self) -> Option<Response> {
        (self.init().status == Status::Stopped).then(|| {
            Response::error(
                ErrorCode::FailedPrecondition,
                format!("container {} is not running", self.id),
            )
        })
    }

    fn stats(&mut self) -> Response {
        if let Some(r) = self.refuse_stopped() {
            return r;
        }
        let Some(cg) = self.cgroup.as_deref() else {
            return self.no_cgroups();
        };
        match cg.stats() {
            Ok(mut stats) => {
                if self.config.has_namespace(Namespace::Net) {
                    // /proc/PID/net/dev shows the network namespace of PID: the container's.
                    stats.networks = cgroups::stats::read_networks(self.init().pid.as_raw());
                }
                Response {
                    kind: Some(response::Kind::Stats(stats)),
                }
            }
            Err(e) => Response::error(ErrorCode::Internal, format!("stats: {e}")),
        }
    }

    /// Changes limits of a live container; container.json keeps the limits in force.
    fn update(&mut self, r: protocol::Resources) -> Response {
        if let Some(resp) = self.refuse_stopped() {
            return resp;
        }
        let Some(current) = self.config.cgroups.clone() else {
            return self.no_cgroups();
        };
        let merged = r.merged_into(&current);
        if let Err(e) = merged.validate_resources() {
            return Response::error(ErrorCode::InvalidArgument, e.to_string());
        }
        let Some(cg) = self.cgroup.as_deref() else {
            return self.no_cgroups();
        };
        if let Err(e) = cg.set(&merged) {
            // An invalid value's message starts with the field (cgroups.memory: ...).
            return if e.is_invalid() {
                Response::error(ErrorCode::InvalidArgument, e.to_string())
            } else {
                Response::error(ErrorCode::Internal, format!("update: {e}"))
            };
        }
        self.config.cgroups = Some(merged.clone());
        match serde_json::to_vec_pretty(&self.config) {
            Ok(json) => {
                if let Err(e) = state::write_atomic(&self.dir, state::CONFIG, &json, false) {
                    eprintln!(
                        "shim {}: recording the update in container.json: {e}",
                        self.id
                    );
                }
            }
            Err(e) => eprintln!("shim {}: {e}", self.id),
        }
        Response {
            kind: Some(response::Kind::Resources(protocol::Resources::of(&merged))),
        }
    }

    fn pids(&mut self) -> Response {
        if let Some(r) = self.refuse_stopped() {
            return r;
        }
        let Some(cg) = self.cgroup.as_deref() else {
            return self.no_cgroups();
        };
        let pids: Vec<i32> = cg.pids().iter().map(|p| p.as_raw()).collect();
        let container_pids = pids.iter().map(|p| namespace_pid(*p)).collect();
        Response {
            kind: Some(response::Kind::Pids(protocol::Pids {
                pids,
                container_pids,
            })),
        }
    }

    /// Notes an OOM kill in the container: the kernel's counter decides; on kernels without
    /// one, a notification (`notified`) does.
    fn on_oom(&mut self, notified: bool) {
        if let Some(w) = &self.oom {
            w.drain();
        }
        if self.init().exit.is_some() {
            // Recorded already; v1 also signals the eventfd when the cgroup is removed.
            return;
        }
        let Some(cg) = &self.cgroup else { return };
        // Kills so far: the kernel's counter, or (without one) one per notification.
        let kills = match cg.oom_kills() {
            Some(n) => n.saturating_sub(self.oom_base),
            None => self.oom_reported + u64::from(notified),
        };
        if kills > 0 && !self.oom_seen {
            self.oom_seen = true;
            eprintln!(
                "shim {}: the kernel OOM-killed a process of the container",
                self.id
            );
        }
        if kills > self.oom_reported {
            self.oom_reported = kills;
            self.publish(protocol::ShimEvent {
                kind: protocol::EventKind::Oom as i32,
                exec_id: String::new(),
                exit: None,
                time: state::now_ns(),
                oom_kills: kills,
            });
        }
    }

    /// Sends an event to every subscriber.
    fn publish(&mut self, event: protocol::ShimEvent) {
        let frame = protocol::encode_frame(&Response {
            kind: Some(response::Kind::Event(event)),
        });
        let tokens: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| c.mode == Mode::Subscribed)
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            if let Some(c) = self.clients.get_mut(&t) {
                c.out.extend_from_slice(&frame);
            }
            self.flush_client(t);
        }
    }

    /// Makes a connection a subscriber; an init that has ended is reported at once.
    fn subscribe(&mut self, token: u64) {
        if let Some(c) = self.clients.get_mut(&token) {
            c.mode = Mode::Subscribed;
        }
        self.reply(token, Response::ok());
        if let Some(rec) = self.init().exit.as_ref() {
            let event = protocol::ShimEvent {
                kind: protocol::EventKind::Exit as i32,
                exec_id: String::new(),
                exit: Some(Exit::from(rec)),
                time: rec.finished_at,
                oom_kills: 0,
            };
            self.reply(
                token,
                Response {
                    kind: Some(response::Kind::Event(event)),
                },
            );
        }
    }

    fn resize(&mut self, r: protocol::Resize) -> Response {
        let slot = match self.target(&r.exec_id) {
            Ok(slot) => slot,
            Err(resp) => return *resp,
        };
        let Some(p) = self.procs[slot].as_ref() else {
            return Response::error(ErrorCode::NotFound, "gone");
        };
        let Some(pty) = &p.pty else {
            return Response::error(ErrorCode::FailedPrecondition, "the process has no terminal");
        };
        let (Ok(rows), Ok(cols)) = (u16::try_from(r.rows), u16::try_from(r.cols)) else {
            return Response::error(
                ErrorCode::InvalidArgument,
                "rows and cols must be at most 65535",
            );
        };
        if p.status == Status::Stopped {
            return Response::error(ErrorCode::FailedPrecondition, "the process is not running");
        }
        match crate::sys::set_winsize(pty.as_fd(), rows, cols) {
            Ok(()) => Response::ok(),
            Err(e) => Response::error(ErrorCode::Internal, format!("resize: {e}")),
        }
    }

    fn shutdown(&mut self) -> Response {
        let status = self.init().status;
        if status != Status::Stopped {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {} is {}; stop it first",
                    self.id,
                    status_name(status)
                ),
            );
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                return Response::error(ErrorCode::Internal, e.to_string());
            }
        }
        self.done = true;
        Response::ok()
    }

    fn on_output(&mut self, slot: usize, stream: Stream) {
        if !self.output_paused {
            self.read_output(slot, stream, 16);
        }
    }

    fn read_output(&mut self, slot: usize, stream: Stream, max_reads: usize) {
        let mut buf = std::mem::take(&mut self.read_buf);
        self.read_output_into(slot, stream, max_reads, &mut buf);
        self.read_buf = buf;
    }

    fn read_output_into(&mut self, slot: usize, stream: Stream, max_reads: usize, buf: &mut [u8]) {
        for _ in 0..max_reads {
            let Some(p) = self.procs.get_mut(slot).and_then(|p| p.as_mut()) else {
                return;
            };
            let file = match stream {
                Stream::Stderr => p.stderr.as_mut(),
                _ => p.stdout.as_mut(),
            };
            let Some(file) = file else { return };
            match file.read(buf) {
                Ok(n) if n > 0 => {
                    self.forward(slot, stream, &buf[..n]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A terminal's master reads EIO once every slave is closed: the end, as EOF is.
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
                Err(_) => return, // EAGAIN: empty for now
            }
            let _ = p.log.flush_partial(stream);
            let f = match stream {
                Stream::Stderr => p.stderr.take(),
                _ => p.stdout.take(),
            };
            if let Some(f) = f {
                let _ = self.epoll.delete(f.as_fd());
            }
            return;
        }
    }

    fn forward(&mut self, slot: usize, stream: Stream, data: &[u8]) {
        let Some(p) = self.procs.get_mut(slot).and_then(|p| p.as_mut()) else {
            return;
        };
        if let Err(e) = p.log.write(stream, data) {
            eprintln!("shim {}: writing the log: {e}", self.id);
        }
        p.log_dirty = true;
        let tokens: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| match c.mode {
                Mode::Attached {
                    slot: s,
                    stdout,
                    stderr,
                    ..
                } if s == slot => {
                    if stream == Stream::Stderr {
                        stderr
                    } else {
                        stdout
                    }
                }
                _ => false,
            })
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            if let Some(c) = self.clients.get_mut(&t) {
                protocol::append_output_frame(&mut c.out.buf, stream, data);
            }
            self.flush_client(t);
        }
    }

    /// Writes as much of a client's queue as it takes; drops it on error or once it is done.
    fn flush_client(&mut self, token: u64) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        let mut written = 0;
        let mut failed = false;
        while written < c.out.len() {
            match c.stream.write(&c.out.pending()[written..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        c.out.consume(written);
        if failed || (c.closing && c.out.is_empty()) {
            self.drop_client(token);
            return;
        }
        if c.out.len() > HIGH_WATER {
            c.over_since.get_or_insert_with(Instant::now);
        } else {
            c.over_since = None;
        }
        let mut flags = EpollFlags::EPOLLRDHUP;
        if c.reading {
            flags |= EpollFlags::EPOLLIN;
        }
        if !c.out.is_empty() {
            flags |= EpollFlags::EPOLLOUT;
        }
        let _ = self
            .epoll
            .modify(c.stream.as_fd(), &mut EpollEvent::new(flags, token));
    }

    fn drop_client(&mut self, token: u64) {
        if let Some(c) = self.clients.remove(&token) {
            let _ = self.epoll.delete(c.stream.as_fd());
        }
    }

    fn check_stalled(&mut self) {
        let now = Instant::now();
        let stalled: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                c.over_since
                    .is_some_and(|t| now.duration_since(t) > STALL_LIMIT)
            })
            .map(|(t, _)| *t)
            .collect();
        for t in stalled {
            eprintln!(
                "shim {}: disconnecting a client that read nothing for {STALL_LIMIT:?}",
                self.id
            );
            self.drop_client(t);
        }
    }

    /// Stops reading output while a client is backed up; resumes after.
    fn update_output_interest(&mut self) {
        let backed_up = self.clients.values().any(|c| c.out.len() > HIGH_WATER);
        if backed_up == self.output_paused {
            return;
        }
        self.output_paused = backed_up;
        let flags = if backed_up {
            EpollFlags::empty()
        } else {
            EpollFlags::EPOLLIN
        };
        for (slot, p) in self.procs.iter().enumerate() {
            let Some(p) = p else { continue };
            for (f, which) in [(p.stdout.as_ref(), 0), (p.stderr.as_ref(), 1)] {
                if let Some(f) = f {
                    let _ = self.epoll.modify(
                        f.as_fd(),
                        &mut EpollEvent::new(flags, proc_token(slot, which)),
                    );
                }
            }
        }
    }

    /// Writes a process's queued stdin; closes its stdin when asked and drained.
    fn flush_stdin(&mut self, slot: usize) {
        let Some(p) = self.procs.get_mut(slot).and_then(|p| p.as_mut()) else {
            return;
        };
        let Some(file) = p.stdin.as_mut() else {
            p.stdin_buf.clear();
            return;
        };
        let mut written = 0;
        let mut broken = false;
        while written < p.stdin_buf.len() {
            match file.write(&p.stdin_buf[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    broken = true; // EPIPE: nobody reads stdin any more
                    break;
                }
            }
        }
        p.stdin_buf.drain(..written);
        let want_out = !broken && !p.stdin_buf.is_empty();
        if want_out != p.stdin_registered {
            let r = if want_out {
                self.epoll.add(
                    file.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLOUT, proc_token(slot, 2)),
                )
            } else {
                self.epoll.delete(file.as_fd())
            };
            if r.is_ok() {
                p.stdin_registered = want_out;
            }
        }
        if broken || (p.stdin_close && p.stdin_buf.is_empty()) {
            if p.stdin_registered {
                if let Some(f) = &p.stdin {
                    let _ = self.epoll.delete(f.as_fd());
                }
                p.stdin_registered = false;
            }
            p.stdin = None;
            p.stdin_buf.clear();
        }
        // Back-pressure: stop reading stdin frames while the pipe is backed up.
        let reading = p.stdin_buf.len() < STDIN_HIGH_WATER;
        let tokens: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                matches!(c.mode, Mode::Attached { slot: s, stdin: true, .. } if s == slot)
                    && c.reading != reading
            })
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            if let Some(c) = self.clients.get_mut(&t) {
                c.reading = reading;
            }
            self.flush_client(t);
            if reading {
                self.read_client(t);
            }
        }
    }
}

/// The pid of host process `pid` in its innermost pid namespace (the last NSpid entry); 0
/// when unknown.
fn namespace_pid(pid: i32) -> i32 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|v| v.split_whitespace().last()?.parse().ok())
        })
        .unwrap_or(0)
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Created => "created",
        Status::Running => "running",
        Status::Paused => "paused",
        Status::Stopped => "stopped",
        Status::Unspecified => "unknown",
    }
}

/// Binds the control socket in `dir`, readable and writable by root only. The shim's working
/// directory is `dir`, so the name is short whatever the state path.
fn bind_socket(dir: &Path) -> Result<UnixListener, Error> {
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

/// Prepares the shim process itself: its own session, a child subreaper, SIGPIPE ignored,
/// working directory in the state directory, diagnostics to `shim.log`. Returns the report pipe
/// (the original stdout).
pub fn prepare_process(state_dir: &Path) -> io::Result<File> {
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
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join(state::SHIM_LOG))?;
    nix::unistd::dup2_stdin(null.as_fd()).map_err(io::Error::from)?;
    nix::unistd::dup2_stdout(null.as_fd()).map_err(io::Error::from)?;
    nix::unistd::dup2_stderr(log.as_fd()).map_err(io::Error::from)?;
    let _ = report.as_raw_fd();
    Ok(File::from(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_buffer_consumes_without_quadratic_copies() {
        let mut b = OutBuf::default();
        b.extend_from_slice(&[1, 2, 3, 4]);
        b.consume(1);
        assert_eq!(b.pending(), &[2, 3, 4]);
        b.extend_from_slice(&[5]);
        b.consume(4);
        assert!(b.is_empty());
        assert_eq!(b.buf.len(), 0, "fully written buffers are reset");
    }

    #[test]
    fn proc_tokens_do_not_meet_client_tokens() {
        assert!(proc_token(0, 0) > FIRST_CLIENT);
        assert_eq!((proc_token(7, 2) - PROC_TOKENS) / 4, 7);
        assert_eq!((proc_token(7, 2) - PROC_TOKENS) % 4, 2);
    }
}
