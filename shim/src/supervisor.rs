//! The shim: creates one container and supervises it until it is deleted.
//!
//! One thread, one epoll loop over: a signalfd (SIGCHLD and the signals the shim ignores), the
//! control socket and its clients, and the container's stdio. It reaps every child (it is a
//! child subreaper), records the init's exit in `exit.json`, keeps the log, and relays stdio to
//! attached clients. It runs in its own session, so the driver can stop without stopping it.
//!
//! Slow clients: output is forwarded to every attached client; while any client has more than
//! [`HIGH_WATER`] bytes queued the shim stops reading the container's output (the container
//! blocks on a full pipe, as under `docker attach`); a client that stays above that mark for
//! [`STALL_LIMIT`] is disconnected, so one stuck client cannot stall the container for long.
//! The log gets every byte regardless.

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

use crate::cgroups::{Cgroup, Layout};
use crate::config::Config;
use crate::logfile::{LogWriter, Rotation};
use crate::namespaces::Namespace;
use crate::network;
use crate::process::{self, Init, Stdio};
use crate::protocol::{
    self, request, response, ErrorCode, Exit, FrameDecoder, Output, Request, Response, ShimState,
    Status, Stream,
};
use crate::state::{self, ExitRecord};

/// Queued bytes per client above which the container's output is not read.
pub const HIGH_WATER: usize = 4 << 20;
/// How long a client may hold the container up before it is disconnected.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);
/// Queued stdin bytes above which the shim stops reading stdin from clients.
const STDIN_HIGH_WATER: usize = 4 << 20;

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
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Config(_) | Error::NoRootfs => ErrorCode::InvalidArgument,
            Error::Process(p) => p.code(),
            Error::Network(n) => n.code(),
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
        kind: Some(response::Kind::State(shim.state())),
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

struct Client {
    stream: UnixStream,
    decoder: FrameDecoder,
    out: Vec<u8>,
    mode: Mode,
    /// When its queue went above HIGH_WATER.
    over_since: Option<Instant>,
    /// Close once `out` is written.
    closing: bool,
    /// Registered for EPOLLIN (false while stdin is backed up).
    reading: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idle,
    Waiting,
    Attached {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
}

const TOKEN_SIGNAL: u64 = 0;
const TOKEN_LISTENER: u64 = 1;
const TOKEN_STDOUT: u64 = 2;
const TOKEN_STDERR: u64 = 3;
const TOKEN_STDIN: u64 = 4;
const FIRST_CLIENT: u64 = 16;

struct Shim {
    id: String,
    dir: PathBuf,
    config: Config,
    cgroup: Option<Cgroup>,
    /// The host ends of the container's veths, removed when the init ends.
    links: Vec<network::HostLink>,
    init: Option<Init>,
    pid: Pid,
    status: Status,
    started_at: i64,
    exit: Option<ExitRecord>,
    /// Why Start failed, kept for the exit record.
    start_error: Option<String>,
    epoll: Epoll,
    signals: SignalFd,
    listener: UnixListener,
    /// The terminal's master, for resizes.
    pty: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    stdin_close: bool,
    output_paused: bool,
    log: LogWriter,
    clients: HashMap<u64, Client>,
    next_token: u64,
    done: bool,
}

/// A pipe whose one end the shim keeps (non-blocking) and whose other end the init gets.
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

impl Shim {
    fn create(opts: &Options) -> Result<Shim, Error> {
        let dir = opts.state_dir.clone();
        let config = Config::load(&dir.join(state::CONFIG))?;
        let rootfs = config.rootfs.clone().ok_or(Error::NoRootfs)?;

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

        let cgroup = match &config.cgroups {
            Some(cg) => {
                let cgroup = Cgroup::new(&Layout::detect()?, &cg.parent, &cg.name)?;
                cgroup.create()?;
                Some(cgroup)
            }
            None => None,
        };

        let mut links = Vec::new();
        let made = Self::create_init(
            opts,
            &config,
            &rootfs,
            cgroup.as_ref(),
            &net_plan,
            &mut links,
        );
        let (init, stdin, stdout, stderr) = match made {
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
        let tty = config.tty;
        let mut shim = Shim {
            id: opts.id.clone(),
            dir: dir.clone(),
            config,
            cgroup,
            links,
            init: Some(init),
            pid,
            status: Status::Created,
            started_at: 0,
            exit: None,
            start_error: None,
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(sys_err("epoll"))?,
            signals,
            listener: bind_socket(&dir)?,
            pty: if tty { stdout.try_clone().ok() } else { None },
            stdout: Some(stdout),
            stderr,
            stdin,
            stdin_buf: Vec::new(),
            stdin_close: false,
            output_paused: false,
            log: LogWriter::open(&dir.join(state::LOG), opts.log_rotation)
                .map_err(io_err("opening the log"))?,
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

    #[allow(clippy::type_complexity)]
    fn create_init(
        opts: &Options,
        config: &Config,
        rootfs: &Path,
        cgroup: Option<&Cgroup>,
        net_plan: &network::Plan,
        links: &mut Vec<network::HostLink>,
    ) -> Result<(Init, Option<File>, File, Option<File>), Error> {
        let force_ioctl = network::force_ioctl_from_env();
        let add_to_cgroup = &mut |pid: Pid| {
            if let Some(cg) = cgroup {
                cg.add(pid).map_err(|e| format!("cgroups: {e}"))?;
            }
            *links = network::setup_host(net_plan, pid.as_raw(), force_ioctl)
                .map_err(|e| format!("network: {e}"))?;
            Ok(())
        };
        if config.tty {
            let (rows, cols) = opts.console_size;
            let mut init =
                process::create(config, rootfs, Stdio::Pty { rows, cols }, add_to_cgroup)?;
            let Some(master) = init.pty_master.take() else {
                return Err(Error::Io {
                    what: "the container's terminal",
                    source: io::ErrorKind::NotFound.into(),
                });
            };
            set_nonblocking(&master)?;
            let output = File::from(master);
            let input = if opts.stdin {
                Some(output.try_clone().map_err(io_err("dup the terminal"))?)
            } else {
                None
            };
            return Ok((init, input, output, None));
        }
        let (stdin_child, stdin_ours) = if opts.stdin {
            let (r, w) = pipe()?;
            (r, Some(File::from(w)))
        } else {
            let null = File::open("/dev/null").map_err(io_err("opening /dev/null"))?;
            (OwnedFd::from(null), None)
        };
        let (stdout_ours, stdout_child) = pipe()?;
        let (stderr_ours, stderr_child) = pipe()?;
        let stdio = Stdio::Fds {
            stdin: stdin_child,
            stdout: stdout_child,
            stderr: stderr_child,
        };
        let init = process::create(config, rootfs, stdio, add_to_cgroup)?;
        for fd in [Some(&stdout_ours), Some(&stderr_ours)]
            .into_iter()
            .flatten()
        {
            set_nonblocking(fd)?;
        }
        if let Some(w) = &stdin_ours {
            set_nonblocking(w)?;
        }
        Ok((
            init,
            stdin_ours,
            File::from(stdout_ours),
            Some(File::from(stderr_ours)),
        ))
    }

    fn register(&self) -> Result<(), Error> {
        let add = |fd: std::os::fd::BorrowedFd<'_>, token: u64| {
            self.epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                .map_err(sys_err("epoll_ctl"))
        };
        add(self.signals.as_fd(), TOKEN_SIGNAL)?;
        add(self.listener.as_fd(), TOKEN_LISTENER)?;
        if let Some(f) = &self.stdout {
            add(f.as_fd(), TOKEN_STDOUT)?;
        }
        if let Some(f) = &self.stderr {
            add(f.as_fd(), TOKEN_STDERR)?;
        }
        Ok(())
    }

    /// Kills the container and removes what the shim made, for a create nobody will hear of.
    fn abandon(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
        network::remove_host_links(&self.links);
        if let Some(cg) = &self.cgroup {
            let _ = cg.destroy();
        }
        let _ = fs::remove_file(self.dir.join(state::SOCKET));
        let _ = fs::remove_file(self.dir.join(state::PID));
    }

    fn state(&self) -> ShimState {
        ShimState {
            status: self.status as i32,
            pid: self.pid.as_raw(),
            started_at: self.started_at,
            exit: self.exit.as_ref().map(Exit::from),
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
                    TOKEN_STDOUT => self.on_output(Stream::Stdout),
                    TOKEN_STDERR => self.on_output(Stream::Stderr),
                    TOKEN_STDIN => self.flush_stdin(),
                    token => self.on_client(token, flags),
                }
            }
            self.check_stalled();
            self.update_output_interest();
        }
        let _ = fs::remove_file(self.dir.join(state::SOCKET));
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            if info.ssi_signo != Signal::SIGCHLD as u32 {
                eprintln!("shim {}: ignoring signal {}", self.id, info.ssi_signo);
            }
        }
        self.reap();
    }

    /// Collects every child that has ended; records the init's end.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == self.pid => {
                    self.on_init_exit(Some(code), None)
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == self.pid => {
                    self.on_init_exit(None, Some(sig as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) => continue, // an orphan that was reparented to us
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("shim {}: waitpid: {e}", self.id);
                    break;
                }
            }
        }
    }

    fn on_init_exit(&mut self, exit_code: Option<i32>, signal: Option<i32>) {
        // Everything the container wrote before it ended goes to the log and the clients
        // before the exit does.
        self.output_paused = false;
        for stream in [Stream::Stdout, Stream::Stderr] {
            self.drain_output(stream);
        }
        let _ = self.log.flush_partial(Stream::Stdout);
        let _ = self.log.flush_partial(Stream::Stderr);
        if !self.config.has_namespace(Namespace::Pid) {
            // Without a PID namespace the kernel does not end the rest; the cgroup does.
            if let Some(cg) = &self.cgroup {
                cg.signal_all(Signal::SIGKILL);
            }
        }
        self.init = None;
        // The kernel would remove the veths with the namespace; a namespace that outlives the
        // init (joined by another container) must not keep them on the bridge.
        network::remove_host_links(&self.links);
        let record = ExitRecord {
            pid: self.pid.as_raw(),
            exit_code,
            signal,
            oom_killed: false,
            started_at: self.started_at,
            finished_at: state::now_ns(),
            reason: self.start_error.take().unwrap_or_default(),
        };
        if let Err(e) = record.save(&self.dir) {
            eprintln!("shim {}: writing exit.json: {e}", self.id);
        }
        let _ = fs::remove_file(self.dir.join(state::PID));
        self.status = Status::Stopped;
        let exit = Response {
            kind: Some(response::Kind::Exit(Exit::from(&record))),
        };
        self.exit = Some(record);
        let tokens: Vec<u64> = self.clients.keys().copied().collect();
        for t in tokens {
            let Some(c) = self.clients.get_mut(&t) else {
                continue;
            };
            if matches!(c.mode, Mode::Waiting | Mode::Attached { .. }) {
                c.out.extend_from_slice(&protocol::encode_frame(&exit));
                c.closing = true;
                self.flush_client(t);
            }
        }
        self.stdin = None;
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
                            out: Vec::new(),
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
            Kind::Start(_) => self.start(),
            Kind::State(_) => Response {
                kind: Some(response::Kind::State(self.state())),
            },
            Kind::Wait(_) => match &self.exit {
                Some(rec) => Response {
                    kind: Some(response::Kind::Exit(Exit::from(rec))),
                },
                None => {
                    if let Some(c) = self.clients.get_mut(&token) {
                        c.mode = Mode::Waiting;
                    }
                    return;
                }
            },
            Kind::Kill(k) => self.kill(k),
            Kind::Attach(a) => {
                let mode = Mode::Attached {
                    stdin: a.stdin,
                    stdout: a.stdout,
                    stderr: a.stderr,
                };
                if let Some(c) = self.clients.get_mut(&token) {
                    c.mode = mode;
                }
                self.reply(token, Response::ok());
                if let Some(rec) = &self.exit {
                    let exit = Response {
                        kind: Some(response::Kind::Exit(Exit::from(rec))),
                    };
                    if let Some(c) = self.clients.get_mut(&token) {
                        c.closing = true;
                    }
                    self.reply(token, exit);
                }
                return;
            }
            Kind::Stdin(data) => {
                if self.attached_with_stdin(token) && self.stdin.is_some() && !self.stdin_close {
                    self.stdin_buf.extend_from_slice(&data);
                    self.flush_stdin();
                }
                return; // stream frames get no reply
            }
            Kind::CloseStdin(_) => {
                if self.stdin.is_some() {
                    self.stdin_close = true;
                    self.flush_stdin();
                }
                if matches!(
                    self.clients.get(&token).map(|c| c.mode),
                    Some(Mode::Attached { .. })
                ) {
                    return;
                }
                Response::ok()
            }
            Kind::Resize(r) => self.resize(r),
            Kind::Shutdown(_) => self.shutdown(),
        };
        self.reply(token, resp);
    }

    fn attached_with_stdin(&self, token: u64) -> bool {
        matches!(
            self.clients.get(&token).map(|c| c.mode),
            Some(Mode::Attached { stdin: true, .. })
        )
    }

    fn start(&mut self) -> Response {
        if self.status != Status::Created {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {} is {}, not created",
                    self.id,
                    status_name(self.status)
                ),
            );
        }
        let Some(mut init) = self.init.take() else {
            return Response::error(ErrorCode::FailedPrecondition, "container init is gone");
        };
        match init.start() {
            Ok(()) => {
                self.status = Status::Running;
                self.started_at = state::now_ns();
                Response::ok()
            }
            Err(e) => {
                let msg = format!("start: {e}");
                self.start_error = Some(msg.clone());
                Response::error(e.code(), msg)
            }
        }
    }

    fn kill(&mut self, k: protocol::Kill) -> Response {
        let Ok(sig) = Signal::try_from(k.signal) else {
            return Response::error(
                ErrorCode::InvalidArgument,
                format!("signal: {} is not a signal", k.signal),
            );
        };
        if self.status == Status::Stopped {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!("container {} is not running", self.id),
            );
        }
        if k.all {
            if let Some(cg) = &self.cgroup {
                cg.signal_all(sig);
                return Response::ok();
            }
        }
        // The shim has not reaped the init (status is not Stopped), so its pid is still ours.
        match kill(self.pid, sig) {
            Ok(()) | Err(Errno::ESRCH) => Response::ok(),
            Err(e) => Response::error(ErrorCode::Internal, format!("kill: {e}")),
        }
    }

    fn resize(&mut self, r: protocol::Resize) -> Response {
        let Some(pty) = &self.pty else {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!("container {} has no terminal", self.id),
            );
        };
        let (Ok(rows), Ok(cols)) = (u16::try_from(r.rows), u16::try_from(r.cols)) else {
            return Response::error(
                ErrorCode::InvalidArgument,
                "rows and cols must be at most 65535",
            );
        };
        if self.status == Status::Stopped {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!("container {} is not running", self.id),
            );
        }
        match crate::sys::set_winsize(pty.as_fd(), rows, cols) {
            Ok(()) => Response::ok(),
            Err(e) => Response::error(ErrorCode::Internal, format!("resize: {e}")),
        }
    }

    fn shutdown(&mut self) -> Response {
        if self.status != Status::Stopped {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {} is {}; stop it first",
                    self.id,
                    status_name(self.status)
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

    /// Reads what the container wrote on `stream`, until the pipe is empty.
    fn on_output(&mut self, stream: Stream) {
        if !self.output_paused {
            self.read_output(stream, 16);
        }
    }

    fn drain_output(&mut self, stream: Stream) {
        self.read_output(stream, usize::MAX);
    }

    fn read_output(&mut self, stream: Stream, max_reads: usize) {
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..max_reads {
            let file = match stream {
                Stream::Stderr => self.stderr.as_mut(),
                _ => self.stdout.as_mut(),
            };
            let Some(file) = file else { return };
            match file.read(&mut buf) {
                Ok(n) if n > 0 => {
                    self.forward(stream, &buf[..n]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A terminal's master reads EIO once every slave is closed: the end, as EOF is.
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
                Err(_) => return, // EAGAIN: empty for now
            }
            let _ = self.log.flush_partial(stream);
            let f = match stream {
                Stream::Stderr => self.stderr.take(),
                _ => self.stdout.take(),
            };
            if let Some(f) = f {
                let _ = self.epoll.delete(f.as_fd());
            }
            return;
        }
    }

    fn forward(&mut self, stream: Stream, data: &[u8]) {
        if let Err(e) = self.log.write(stream, data) {
            eprintln!("shim {}: writing the log: {e}", self.id);
        }
        let frame = protocol::encode_frame(&Response {
            kind: Some(response::Kind::Output(Output {
                stream: stream as i32,
                data: data.to_vec(),
            })),
        });
        let tokens: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| match c.mode {
                Mode::Attached { stdout, stderr, .. } => {
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
                c.out.extend_from_slice(&frame);
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
            match c.stream.write(&c.out[written..]) {
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
        c.out.drain(..written);
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

    /// Stops reading the container's output while a client is backed up; resumes after.
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
        for (f, token) in [
            (self.stdout.as_ref(), TOKEN_STDOUT),
            (self.stderr.as_ref(), TOKEN_STDERR),
        ] {
            if let Some(f) = f {
                let _ = self
                    .epoll
                    .modify(f.as_fd(), &mut EpollEvent::new(flags, token));
            }
        }
    }

    /// Writes queued stdin to the container; closes it when asked and drained.
    fn flush_stdin(&mut self) {
        let Some(file) = self.stdin.as_mut() else {
            self.stdin_buf.clear();
            return;
        };
        let mut written = 0;
        let mut broken = false;
        while written < self.stdin_buf.len() {
            match file.write(&self.stdin_buf[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    broken = true; // EPIPE: nobody reads stdin any more
                    break;
                }
            }
        }
        self.stdin_buf.drain(..written);
        let registered = self.epoll.delete(file.as_fd()).is_ok();
        let _ = registered;
        if broken || (self.stdin_close && self.stdin_buf.is_empty()) {
            self.stdin = None;
            self.stdin_buf.clear();
        } else if !self.stdin_buf.is_empty() {
            let _ = self.epoll.add(
                file.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLOUT, TOKEN_STDIN),
            );
        }
        // Back-pressure: stop reading stdin frames while the pipe is backed up.
        let reading = self.stdin_buf.len() < STDIN_HIGH_WATER;
        let tokens: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                matches!(c.mode, Mode::Attached { stdin: true, .. }) && c.reading != reading
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
    let listener = UnixListener::bind(state::SOCKET).map_err(io_err("binding shim.sock"))?;
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
    let _ = nix::unistd::setsid();
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
