//! Starting shims and talking to them over their control sockets.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use execdriver_spec::protocol::{self, request, response, ErrorCode, Request, Response, ShimState};
use execdriver_spec::state;
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::process::Command;

use crate::error::{Error, Result};

/// How long a shim may take to create its container.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a shim may take to answer one request (Wait, which blocks until the process ends,
/// and attach streams have no such limit). The shim is one thread that never blocks on a
/// container, so only a stuck (stopped, wedged) shim takes longer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes one frame.
pub async fn write_frame(
    w: &mut (impl AsyncWrite + Unpin),
    msg: &impl Message,
) -> std::io::Result<()> {
    w.write_all(&protocol::encode_frame(msg)).await
}

/// Reads one frame; `None` at a clean end of stream. The framing is the spec crate's codec.
pub async fn read_frame<M: Message + Default>(
    r: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<M>> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = protocol::frame_len(header)?;
    // Read into spare capacity (nothing zeroed first) and decode from a Bytes, so output
    // (bytes fields) is sliced from this buffer rather than copied out of it.
    let mut buf = Vec::with_capacity(len);
    AsyncReadExt::take(&mut *r, len as u64)
        .read_to_end(&mut buf)
        .await?;
    if buf.len() < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    protocol::decode_body(bytes::Bytes::from(buf)).map(Some)
}

/// Options for a new shim beyond its container.json.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    pub stdin: bool,
    /// The terminal's initial size, for a container with a tty.
    pub console_size: Option<(u16, u16)>,
    /// Log rotation: bytes per file (0: never rotate) and files kept.
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// How device access is enforced.
    pub cgroup_devices: execdriver_shim::cgroups::DeviceMode,
    /// Let the shim run a container whose AppArmor profile the kernel cannot apply.
    pub allow_missing_apparmor: bool,
}

/// The open-files soft limit the daemon was started with, when it raised its own (see
/// [`raise_nofile_limit`]): shims, and so containers, get it back.
static INHERITED_NOFILE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// The soft limit shims and containers get back (see [`raise_nofile_limit`]), if it was raised.
pub fn inherited_nofile() -> Option<u64> {
    INHERITED_NOFILE.get().copied()
}

/// Raises the daemon's open-files soft limit to its hard limit: it holds one descriptor per
/// container (its event subscription), so thousands of containers need more than the usual
/// 1024. Containers are not given the raised limit (as Go does for the processes it starts).
/// Returns the (old, new) soft limits when it changed.
pub fn raise_nofile_limit() -> Option<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return None;
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).ok()?;
    let _ = INHERITED_NOFILE.set(soft);
    Some((soft, hard))
}

/// The shim's arguments for the container whose state directory is `dir`.
fn shim_args(id: &str, dir: &Path, opts: &SpawnOptions) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--id".into(),
        id.into(),
        "--state".into(),
        dir.to_string_lossy().into_owned(),
    ];
    if opts.stdin {
        args.push("--stdin".into());
    }
    if opts.log_max_size > 0 {
        args.extend([
            "--log-max-size".into(),
            opts.log_max_size.to_string(),
            "--log-max-files".into(),
            opts.log_max_files.max(1).to_string(),
        ]);
    }
    if let Some((rows, cols)) = opts.console_size {
        args.extend(["--console-size".into(), format!("{rows}x{cols}")]);
    }
    if opts.cgroup_devices == execdriver_shim::cgroups::DeviceMode::Bpf {
        args.extend(["--cgroup-devices".into(), "bpf".into()]);
    }
    if opts.allow_missing_apparmor {
        args.push("--allow-missing-apparmor".into());
    }
    if let Some(soft) = INHERITED_NOFILE.get() {
        args.extend(["--nofile-soft".into(), soft.to_string()]);
    }
    args
}

/// Starts a shim for the container whose state directory is `dir` (or hands the create to a
/// parked one from `pool`) and waits until it reports the container created (its state) or
/// failed (the error).
pub async fn spawn(
    shim_path: &Path,
    pool: Option<&crate::pool::ShimPool>,
    id: &str,
    dir: &Path,
    opts: &SpawnOptions,
) -> Result<ShimState> {
    let args = shim_args(id, dir, opts);
    // A parked shim, when one is ready and the path is one it can be told.
    if let Some(pool) = pool.filter(|_| dir.to_str().is_some()) {
        while let Some(mut parked) = pool.take() {
            if pool.adopt(&mut parked, &args).await.is_ok() {
                drop(parked.stdin);
                let parked_dir = parked.dir.clone();
                match read_report(parked.child, parked.stdout, dir, true).await {
                    Reported::Done(report) => {
                        // The quiet spell before a refill counts from the create's end.
                        pool.touch();
                        return report;
                    }
                    // Its nursery died before it read the create: nothing of the container's
                    // was made; the next parked shim (or a new one) takes it.
                    Reported::Abandoned => {
                        tracing::warn!(dir = %parked_dir.display(), "a parked shim went before it took the create; handing it on");
                        pool.clean_up(parked_dir).await;
                    }
                }
            }
        }
    }
    let mut cmd = Command::new(shim_path);
    cmd.args(&args);
    // Started from a sealed copy (/proc/self/fd/N), it shows as itself.
    cmd.arg0("execdriver-shim");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(false);
    let mut child = cmd
        .spawn()
        .map_err(Error::io(format!("starting {}", shim_path.display())))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(Error::Internal("shim stdout was not captured".into()));
    };
    match read_report(child, stdout, dir, false).await {
        Reported::Done(report) => report,
        Reported::Abandoned => Err(Error::Internal(
            "the shim exited without reporting (as a parked shim that gave up)".into(),
        )),
    }
}

/// What a shim started for a create (or a parked one adopted) ended with.
enum Reported {
    /// Its report: the container's state, or the create's error.
    Done(Result<ShimState>),
    /// An adopted parked shim that exited before it moved into the container's directory
    /// (its nursery died: [`state::PARK_ABANDONED`]; or it was killed as it was handed the
    /// create): nothing of the container's was made.
    Abandoned,
}

/// Reads the shim's report of its create from `stdout`, and reaps the process started (which
/// exits once the shim has reported: the shim detaches, the daemon holds no handle on it).
async fn read_report(
    mut child: tokio::process::Child,
    mut stdout: tokio::process::ChildStdout,
    dir: &Path,
    adopted: bool,
) -> Reported {
    let report = tokio::time::timeout(CREATE_TIMEOUT, read_frame::<Response>(&mut stdout)).await;
    drop(stdout);
    let started = child.wait().await;
    let report = match report {
        Ok(r) => r,
        Err(_) => {
            return Reported::Done(Err(Error::Internal(format!(
                "the shim did not report within {CREATE_TIMEOUT:?}"
            ))));
        }
    };
    Reported::Done(match report {
        Ok(Some(Response {
            kind: Some(response::Kind::State(st)),
        })) => Ok(st),
        Ok(Some(Response {
            kind: Some(response::Kind::Error(e)),
        })) => Err(shim_error(e)),
        // A parked shim's first step in the container's directory is its log (`move_in`).
        Ok(None)
            if adopted
                && (matches!(&started, Ok(s) if s.code() == Some(state::PARK_ABANDONED))
                    || !dir.join(state::SHIM_LOG).exists()) =>
        {
            return Reported::Abandoned;
        }
        Ok(_) => {
            let log = std::fs::read_to_string(dir.join(state::SHIM_LOG)).unwrap_or_default();
            let status = match started {
                Ok(s) if !s.success() => format!(" ({s})"),
                Ok(_) => String::new(),
                Err(e) => format!(" (reaping it: {e})"),
            };
            Err(Error::Internal(format!(
                "the shim exited{status} without reporting: {}",
                log.lines().last().unwrap_or("no log")
            )))
        }
        Err(e) => Err(Error::io("reading the shim's report")(e)),
    })
}

fn shim_error(e: protocol::ErrorReply) -> Error {
    match protocol::ExecFailure::try_from(e.exec_failure) {
        Ok(failure @ (protocol::ExecFailure::NotFound | protocol::ExecFailure::CannotRun)) => {
            Error::Exec {
                failure,
                message: e.message,
            }
        }
        _ => Error::Shim {
            code: ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Internal),
            message: e.message,
        },
    }
}

/// A connection to one shim.
pub struct ShimConn {
    pub stream: UnixStream,
}

impl ShimConn {
    /// Connects to the shim of the container in `dir`.
    pub async fn connect(dir: &Path) -> std::io::Result<ShimConn> {
        let (path, _dirfd) = state::socket_path(&dir.join(state::SOCKET))?;
        let stream = UnixStream::connect(&path).await?;
        Ok(ShimConn { stream })
    }

    pub async fn send(&mut self, kind: request::Kind) -> std::io::Result<()> {
        write_frame(&mut self.stream, &Request::new(kind)).await
    }

    pub async fn recv(&mut self) -> std::io::Result<Option<Response>> {
        read_frame(&mut self.stream).await
    }

    /// One request, one reply. A shim error becomes `Err`.
    pub async fn call(&mut self, kind: request::Kind) -> Result<response::Kind> {
        self.send(kind)
            .await
            .map_err(Error::io("talking to the shim"))?;
        match self
            .recv()
            .await
            .map_err(Error::io("talking to the shim"))?
        {
            Some(Response {
                kind: Some(response::Kind::Error(e)),
            }) => Err(shim_error(e)),
            Some(Response { kind: Some(k) }) => Ok(k),
            _ => Err(Error::Internal(
                "the shim closed the connection without a reply".into(),
            )),
        }
    }
}

/// Calls a shim once: connect, request, reply, within [`CALL_TIMEOUT`]. `Ok(None)` when no
/// shim listens on the socket and none runs (it is gone); a shim that runs but does not
/// answer is UNAVAILABLE or DEADLINE_EXCEEDED, never taken for a stopped container.
pub async fn call(dir: &Path, kind: request::Kind) -> Result<Option<response::Kind>> {
    call_within(dir, kind, Some(CALL_TIMEOUT)).await
}

/// As [`call`], with no deadline on the reply (Wait). The connect is still bounded.
pub async fn call_within(
    dir: &Path,
    kind: request::Kind,
    timeout: Option<Duration>,
) -> Result<Option<response::Kind>> {
    let mut conn = match connect_live(dir).await? {
        Some(c) => c,
        None => return Ok(None),
    };
    match timeout {
        None => conn.call(kind).await.map(Some),
        Some(t) => match tokio::time::timeout(t, conn.call(kind)).await {
            Ok(r) => r.map(Some),
            Err(_) => Err(Error::DeadlineExceeded(format!(
                "the shim of {} ({}) did not answer within {t:?}",
                dir.display(),
                describe_shim(dir)
            ))),
        },
    }
}

/// Connects to the shim in `dir`: `Ok(None)` when it is gone (nothing listens and no shim
/// process runs there); UNAVAILABLE when its process runs but cannot be reached. A shim that
/// runs but whose socket is missing (removed by hand, by a tool, or by an old daemon) is asked
/// to bind it again (SIGHUP) and the connect is retried.
pub async fn connect_live(dir: &Path) -> Result<Option<ShimConn>> {
    match tokio::time::timeout(CALL_TIMEOUT, ShimConn::connect(dir)).await {
        Ok(Ok(c)) => Ok(Some(c)),
        // The daemon's own failure (no descriptor for a socket, no memory) is this call's.
        Ok(Err(e)) if own_error(&e) => Err(Error::Unavailable(format!(
            "connecting to the shim of {}: {e}",
            dir.display()
        ))),
        Ok(Err(e)) => match shim_status(dir) {
            Liveness::Gone => Ok(None),
            Liveness::Unknown { pid, error } => Err(Error::Unavailable(format!(
                "cannot tell whether the shim of {} (pid {}) runs: {error}; its socket: {e}",
                dir.display(),
                pid.unwrap_or(0)
            ))),
            // Nothing listens where its socket should be: removed, or replaced.
            Liveness::Alive(pid)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                match rebind(dir, pid).await {
                    Some(c) => Ok(Some(c)),
                    None => Err(Error::Unavailable(format!(
                        "the shim of {} (pid {pid}) runs but its socket refuses connections: {e}",
                        dir.display()
                    ))),
                }
            }
            Liveness::Alive(pid) => Err(Error::Unavailable(format!(
                "the shim of {} (pid {pid}) runs but cannot be reached: {e}",
                dir.display()
            ))),
        },
        Err(_) => Err(Error::DeadlineExceeded(format!(
            "connecting to the shim of {} ({}) took longer than {CALL_TIMEOUT:?}",
            dir.display(),
            describe_shim(dir)
        ))),
    }
}

/// Asks the live shim `pid` of `dir` to bind its socket again and connects once it has
/// (within a second).
async fn rebind(dir: &Path, pid: i32) -> Option<ShimConn> {
    let d = dir.to_owned();
    let signalled =
        tokio::task::spawn_blocking(move || signal_shim(&d, pid, rustix::process::Signal::HUP))
            .await
            .ok()?;
    if let Err(e) = signalled {
        tracing::warn!(dir = %dir.display(), pid, error = %e, "asking the shim to rebind its socket");
        return None;
    }
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(c) = ShimConn::connect(dir).await {
            tracing::info!(dir = %dir.display(), pid, "the shim bound its missing socket again");
            return Some(c);
        }
    }
    None
}

/// Sends `sig` to the shim `pid` of `dir` through a pidfd opened first and checked to be that
/// shim's after, so a process that reused the pid is never signalled.
fn signal_shim(dir: &Path, pid: i32, sig: rustix::process::Signal) -> std::io::Result<()> {
    let raw = rustix::process::Pid::from_raw(pid).ok_or(std::io::ErrorKind::InvalidInput)?;
    let fd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())?;
    match shim_status(dir) {
        Liveness::Alive(p) if p == pid => {}
        _ => return Err(std::io::ErrorKind::NotFound.into()),
    }
    rustix::process::pidfd_send_signal(&fd, sig)?;
    Ok(())
}

/// Kills the shim of the container in `dir` and waits (up to 10 s) until it has ended. Done
/// when no shim runs; an error when the daemon cannot tell (its own descriptors or memory ran
/// out) or the shim outlives SIGKILL.
pub fn kill_shim(dir: &Path) -> Result<()> {
    let pid = match shim_status(dir) {
        Liveness::Gone => return Ok(()),
        Liveness::Alive(pid) => pid,
        Liveness::Unknown { pid, error } => {
            return Err(Error::Unavailable(format!(
                "cannot tell whether the shim of {} (pid {}) runs: {error}",
                dir.display(),
                pid.unwrap_or(0)
            )))
        }
    };
    let raw = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| Error::Internal(format!("shim pid {pid}")))?;
    let fd = match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => return Err(Error::io(format!("pidfd_open({pid})"))(e.into())),
    };
    match shim_status(dir) {
        Liveness::Alive(p) if p == pid => {}
        Liveness::Unknown { error, .. } => {
            return Err(Error::Unavailable(format!(
                "cannot tell whether the shim of {} runs: {error}",
                dir.display()
            )))
        }
        _ => return Ok(()),
    }
    tracing::warn!(dir = %dir.display(), pid, "killing the shim");
    rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL)
        .map_err(|e| Error::io(format!("killing shim {pid}"))(e.into()))?;
    // The pidfd is readable once the process has ended.
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::event::Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(n) if n > 0 => Ok(()),
        _ => Err(Error::Internal(format!(
            "the shim {pid} of {} did not end within 10s of SIGKILL",
            dir.display()
        ))),
    }
}

fn describe_shim(dir: &Path) -> String {
    match shim_alive(dir) {
        Some(pid) => format!("pid {pid}"),
        None => "not running".into(),
    }
}

/// The pid of the shim of the container in `dir` if it runs: `shim.pid` names a process that
/// is not a zombie and whose working directory is `dir` (every shim works in its state
/// directory, so a reused pid is not taken for it).
pub fn shim_alive(dir: &Path) -> Option<i32> {
    match shim_status(dir) {
        Liveness::Alive(pid) => Some(pid),
        // The daemon could not look (out of descriptors, memory): the shim is not declared
        // gone on an error of the daemon's own; 0 stands for a pid not read.
        Liveness::Unknown { pid, .. } => Some(pid.unwrap_or(0)),
        Liveness::Gone => None,
    }
}

/// What the daemon knows of a shim.
#[derive(Debug)]
pub enum Liveness {
    Alive(i32),
    /// Proven gone: no pid file, no such process, a zombie, or a reused pid.
    Gone,
    /// Not known: the daemon ran out of descriptors or memory looking.
    Unknown {
        pid: Option<i32>,
        error: std::io::Error,
    },
}

/// Whether the daemon's own resources failed a look (descriptors, memory, an interrupted
/// call): that says nothing of the shim.
fn own_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS | libc::EAGAIN | libc::EINTR
        )
    )
}

/// Whether the shim of the container in `dir` runs. Anything but the daemon's own failure to
/// look is proof: no pid file, no such process, a zombie, a process the daemon may not
/// inspect or working elsewhere (a reused pid) is not this container's shim.
pub fn shim_status(dir: &Path) -> Liveness {
    use std::os::unix::fs::MetadataExt;
    let unknown = |pid: Option<i32>, error: std::io::Error| Liveness::Unknown { pid, error };
    let pid = match state::read_pid(&dir.join(state::SHIM_PID)) {
        Ok(pid) => pid,
        Err(e) if own_error(&e) => return unknown(None, e),
        Err(_) => return Liveness::Gone,
    };
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if own_error(&e) => return unknown(Some(pid), e),
        Err(_) => return Liveness::Gone,
    };
    // The state is the field after the command, which is in parentheses and may hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z") | Some("X")) {
        return Liveness::Gone;
    }
    let theirs = match std::fs::metadata(format!("/proc/{pid}/cwd")) {
        Ok(m) => m,
        Err(e) if own_error(&e) => return unknown(Some(pid), e),
        Err(_) => return Liveness::Gone,
    };
    let ours = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if own_error(&e) => return unknown(Some(pid), e),
        Err(_) => return Liveness::Gone,
    };
    if theirs.dev() == ours.dev() && theirs.ino() == ours.ino() {
        Liveness::Alive(pid)
    } else {
        Liveness::Gone
    }
}

/// The shim binary the driver starts shims from: a sealed in-memory copy of `--shim`, so no
/// shim's image is a host file that a container process could reach through
/// /proc/PID/exe and rewrite (the runc CVE-2019-5736 class); the file itself where the kernel
/// has no memfd.
pub struct ShimExe {
    path: PathBuf,
    sealed: Option<std::os::fd::OwnedFd>,
}

impl ShimExe {
    pub fn open(path: &Path) -> ShimExe {
        match execdriver_shim::security::sealed_copy(path) {
            Ok(fd) => ShimExe {
                path: path.to_owned(),
                sealed: Some(fd),
            },
            Err(e) => {
                tracing::warn!(
                    shim = %path.display(),
                    "cannot make a sealed copy of the shim ({e}); starting it from the file"
                );
                ShimExe {
                    path: path.to_owned(),
                    sealed: None,
                }
            }
        }
    }

    /// What to exec.
    pub fn program(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        match &self.sealed {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            None => self.path.clone(),
        }
    }
}

/// The path of the shim binary: `--shim`, or `execdriver-shim` beside the running executable.
pub fn default_shim_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("execdriver-shim")))
        .unwrap_or_else(|| PathBuf::from("execdriver-shim"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shim_is_gone_only_on_proof() {
        let dir =
            std::env::temp_dir().join(format!("execdriver-shimstatus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // No pid file; a pid that is no process; a process working elsewhere (this one).
        assert!(matches!(shim_status(&dir), Liveness::Gone));
        std::fs::write(dir.join(state::SHIM_PID), "999999999").unwrap();
        assert!(matches!(shim_status(&dir), Liveness::Gone));
        std::fs::write(dir.join(state::SHIM_PID), std::process::id().to_string()).unwrap();
        assert!(matches!(shim_status(&dir), Liveness::Gone));
        // A process working in the directory is its shim.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(&dir)
            .spawn()
            .unwrap();
        std::fs::write(dir.join(state::SHIM_PID), child.id().to_string()).unwrap();
        assert!(matches!(shim_status(&dir), Liveness::Alive(p) if p == child.id() as i32));
        let _ = child.kill();
        let _ = child.wait();
        assert!(matches!(shim_status(&dir), Liveness::Gone));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_daemons_own_failures_say_nothing_of_the_shim() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOMEM] {
            assert!(own_error(&std::io::Error::from_raw_os_error(errno)));
        }
        for errno in [libc::ENOENT, libc::EACCES, libc::ESRCH] {
            assert!(!own_error(&std::io::Error::from_raw_os_error(errno)));
        }
    }
}
