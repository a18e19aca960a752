//! The process table: the container's init (slot 0) and its exec'd processes, each with its
//! stdio and log; making an exec'd process, reaping every child, and recording how each ended
//! (`exit.json` for the init), with a bounded number of ended execs remembered.

use std::fs::{self, File};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::log;
use crate::logfile::LogWriter;
use crate::namespaces::Namespace;
use crate::network;
use crate::process::{self, Created, ProcessSpec, Stdio};
use crate::protocol::{self, response, ErrorCode, Exit, Response, ShimState, Status, Stream};
use crate::state::{self, ExitRecord};

use super::{io_err, sys_err, Error, Shim, INIT};

/// Stdout and stderr pipes hold this much, so a fast writer blocks less often.
const PIPE_SIZE: i32 = 1 << 20;

/// Records of ended exec'd processes kept (the oldest go first beyond this).
const MAX_ENDED_EXECS: usize = 64;

/// One process of the container and its stdio.
pub(super) struct Proc {
    /// Empty for the init.
    pub(super) exec_id: String,
    pub(super) pid: Pid,
    /// Until started.
    pub(super) created: Option<Created>,
    pub(super) status: Status,
    pub(super) started_at: i64,
    pub(super) exit: Option<ExitRecord>,
    /// Why Start failed, kept for the exit record.
    pub(super) start_error: Option<String>,
    /// The terminal's master, for resizes.
    pub(super) pty: Option<File>,
    pub(super) stdout: Option<File>,
    pub(super) stderr: Option<File>,
    pub(super) stdin: Option<File>,
    pub(super) stdin_buf: Vec<u8>,
    pub(super) stdin_close: bool,
    pub(super) stdin_registered: bool,
    pub(super) log: LogWriter,
    pub(super) log_dirty: bool,
}

/// The stdio a new process gets, and the shim's ends of it.
pub(super) struct ProcStdio {
    pub(super) child: Stdio,
    pub(super) stdin: Option<File>,
    pub(super) stdout: Option<File>,
    pub(super) stderr: Option<File>,
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
pub(super) fn make_stdio(tty: bool, stdin: bool, size: (u16, u16)) -> Result<ProcStdio, Error> {
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
    pub(super) fn new(
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

pub use crate::state::exec_log_name;

impl Shim {
    pub(super) fn init(&self) -> &Proc {
        // Slot 0 holds the init from create to exit of the shim.
        self.procs[INIT]
            .as_ref()
            .expect("the init's slot is never freed")
    }

    pub(super) fn slot_of(&self, exec_id: &str) -> Option<usize> {
        self.procs
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.exec_id == exec_id))
    }

    /// The slot a request names, or the error reply for an unknown exec id.
    pub(super) fn target(&self, exec_id: &str) -> Result<usize, Box<Response>> {
        self.slot_of(exec_id).ok_or_else(|| {
            Box::new(Response::error(
                ErrorCode::NotFound,
                format!("exec {exec_id:?} not found in container {}", self.id),
            ))
        })
    }

    pub(super) fn state_of(&self, slot: usize) -> ShimState {
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

    /// Collects every child that has ended; records the end of the container's processes.
    pub(super) fn reap(&mut self) {
        loop {
            let (pid, code, signal) =
                match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::Exited(pid, code)) => (pid, Some(code), None),
                    Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, None, Some(sig as i32)),
                    Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                    Ok(_) | Err(Errno::EINTR) => continue,
                    Err(e) => {
                        log::error!("shim {}: waitpid: {e}", self.id);
                        break;
                    }
                };
            let slot = self.procs.iter().position(|p| {
                p.as_ref()
                    .is_some_and(|p| p.pid == pid && p.status != Status::Stopped)
            });
            // Anything else is an orphan reparented to us (or the user-mode network's
            // slirp4netns): reaped, nothing to record.
            if let Some(slot) = slot {
                self.on_exit(slot, code, signal);
            } else if self.slirp.as_mut().is_some_and(|s| s.collected(pid))
                && self.init().status != Status::Stopped
            {
                log::warn!(
                    "shim {}: slirp4netns {pid} ended (exit code {code:?}, signal {signal:?}) while the container runs: it has no network now",
                    self.id
                );
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
            // The namespace's tap goes with slirp4netns.
            if let Some(s) = &mut self.slirp {
                s.stop();
            }
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
                log::error!("shim {}: writing exit.json: {e}", self.id);
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
    pub(super) fn forget(&mut self, slot: usize) {
        if let Some(p) = self.procs.get_mut(slot).and_then(|p| p.take()) {
            for f in [p.stdout.as_ref(), p.stderr.as_ref()].into_iter().flatten() {
                let _ = self.epoll.delete(f.as_fd());
            }
            let _ = fs::remove_file(self.dir.join(exec_log_name(&p.exec_id)));
        }
    }

    pub(super) fn make_exec(
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

    pub(super) fn set_init_status(&mut self, status: Status) {
        if let Some(p) = self.procs[INIT].as_mut() {
            p.status = status;
        }
    }
}

pub(super) fn status_name(s: Status) -> String {
    s.name()
}
