//! Requests: `handle` answers one decoded [`Request`]; the requests about one process (start,
//! exec, kill, attach, resize) are here too. Those about the whole container live in
//! `container`, subscriptions in `events`.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};

use crate::config::User;
use crate::log;
use crate::process::ProcessSpec;
use crate::protocol::{
    self, request, response, ErrorCode, ExecSpec, Exit, Request, Response, Status,
};
use crate::state;

use super::clients::Mode;
use super::procs::status_name;
use super::{Shim, INIT};

impl Shim {
    pub(super) fn handle(&mut self, token: u64, req: Request) {
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
                        log::error!("shim {}: freezing after start: {e}", self.id);
                    } else {
                        self.set_init_status(Status::Paused);
                    }
                }
                Response::ok()
            }
            Err(e) => {
                let msg = format!("start: {e}");
                p.start_error = Some(msg.clone());
                Response::exec_error(e.code(), e.exec_failure(), msg)
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
            own: Default::default(),
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
            Err(e) => e.reply(e.to_string()),
        }
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
}
