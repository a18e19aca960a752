//! The user-mode network (container.json's `slirp4netns` strategy): the container's own
//! network namespace gets a tap device, `tap0`, whose traffic the `slirp4netns` program (Debian's
//! package) carries through ordinary sockets of the shim's network namespace. No bridge, no
//! veth, nothing made on the host: a rootless daemon's containers get outbound access this way.
//!
//! ```text
//! shim                                   slirp4netns (the shim's child)
//! clone the init, write its id maps
//! fork + exec ------------------------>  joins the init's user namespace (when it has one)
//!                                        and network namespace, makes tap0, gives it
//!                                        10.0.2.100/24, the MTU and a default route via
//!                                        10.0.2.2 (--configure)
//!          <---------------------------- "1" on --ready-fd
//! Configured -> the init goes on         ... carries the traffic
//! the init exits: --exit-fd closed ---->  exits; the shim reaps it
//! ```
//!
//! 10.0.2.2 is the host: slirp4netns runs without `--disable-host-loopback`, so a connection
//! to 10.0.2.2:PORT reaches 127.0.0.1:PORT of the shim's network namespace (the daemon's).
//! 10.0.2.3 forwards DNS to the host's resolver.
//!
//! The shim is single-threaded: slirp4netns is forked and exec'd like the init, with every
//! descriptor of the shim's close-on-exec except its two pipe ends; its output goes to
//! `slirp4netns.log` in the state directory. The shim's reaper collects it like any orphan
//! (it is never taken for a container process); [`Slirp4netns::stop`] ends it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::protocol::ErrorCode;
use crate::sys::{self, Forked};
pub use execdriver_spec::network::{
    SLIRP_ADDRESS, SLIRP_DEFAULT_MTU, SLIRP_DNS, SLIRP_GATEWAY, SLIRP_IFNAME,
};

/// The program, looked up in `PATH` and then in these directories.
pub const PROGRAM: &str = "slirp4netns";
const FALLBACK_DIRS: [&str; 4] = ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin"];
/// How long slirp4netns may take to report the network ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long it may take to exit once its exit descriptor is closed, before SIGKILL.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// Its output (messages, errors), in the container's state directory.
pub const LOG_NAME: &str = "slirp4netns.log";
/// The device slirp4netns opens to make the tap.
const TUN: &str = "/dev/net/tun";
/// At most this much of the log goes into an error.
const LOG_TAIL: u64 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "slirp4netns is not installed (not in PATH nor /usr/bin): install it (Debian: apt-get \
         install slirp4netns) or use another network mode"
    )]
    NotInstalled,
    #[error(
        "{TUN} is not readable and writable by uid {uid}, which slirp4netns needs to make the \
         tap device (Debian's udev makes it mode 0666)"
    )]
    NoTun { uid: u32 },
    #[error("slirp4netns: {what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("slirp4netns: {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("slirp4netns did not report the network ready within {0:?}{1}")]
    Timeout(Duration, String),
    #[error("slirp4netns ended ({status}) before the network was ready{log}")]
    Failed { status: String, log: String },
}

impl Error {
    /// FAILED_PRECONDITION for what the host lacks; INTERNAL otherwise.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NotInstalled | Error::NoTun { .. } => ErrorCode::FailedPrecondition,
            _ => ErrorCode::Internal,
        }
    }
}

fn sys_err(what: &'static str) -> impl FnOnce(Errno) -> Error {
    move |source| Error::Sys { what, source }
}

/// Where the slirp4netns program is: the first executable file of that name in `PATH`, or
/// else in /usr/bin, /bin, /usr/local/bin, /usr/sbin.
pub fn find() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(PROGRAM))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether this process may open the tun device (root may; an ordinary user needs it mode
/// 0666, as Debian makes it).
pub fn tun_usable() -> bool {
    nix::unistd::access(
        TUN,
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
    )
    .is_ok()
}

/// Checks, before anything is made, that slirp4netns can run here: the program is installed
/// and the tun device is open to this process.
pub fn check() -> Result<PathBuf, Error> {
    let program = find().ok_or(Error::NotInstalled)?;
    if !tun_usable() {
        return Err(Error::NoTun {
            uid: nix::unistd::geteuid().as_raw(),
        });
    }
    Ok(program)
}

/// Whether process `pid` is in a user namespace other than this process's (slirp4netns must
/// join it to configure a network namespace it owns).
pub fn own_userns(pid: Pid) -> bool {
    let ours = std::fs::read_link("/proc/self/ns/user").ok();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
    theirs.is_some() && theirs != ours
}

/// Whether containers of this process can have the slirp4netns network: the program is
/// there, and the tun device is open to it.
pub fn available() -> bool {
    check().is_ok()
}

/// A running slirp4netns, a child of the shim's. Dropped, it is ended ([`Slirp4netns::stop`]).
#[derive(Debug)]
pub struct Slirp4netns {
    pid: Pid,
    /// The write end of its `--exit-fd`: closing it ends slirp4netns.
    exit: Option<OwnedFd>,
    /// Collected already (by [`Slirp4netns::stop`] or the shim's reaper): its pid is no longer
    /// ours to signal.
    reaped: bool,
}

/// What [`start`] is given.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// The init, whose network namespace gets the tap.
    pub init: Pid,
    /// The init has a user namespace of its own, which owns its network namespace.
    pub userns: bool,
    /// The tap's MTU; 0 for [`SLIRP_DEFAULT_MTU`].
    pub mtu: u32,
    /// The container's state directory (for [`LOG_NAME`]).
    pub state_dir: &'a Path,
}

/// Starts slirp4netns for the init's network namespace and waits (at most [`READY_TIMEOUT`])
/// until it has configured tap0. On error nothing of it is left running.
pub fn start(opts: &Options<'_>) -> Result<Slirp4netns, Error> {
    let program = check()?;
    let log_path = opts.state_dir.join(LOG_NAME);
    let log = File::options()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&log_path)
        .map_err(|source| Error::Io {
            what: "opening slirp4netns.log",
            source,
        })?;
    let null = File::options()
        .read(true)
        .open("/dev/null")
        .map_err(|source| Error::Io {
            what: "opening /dev/null",
            source,
        })?;
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys_err("pipe"))?;
    let (exit_r, exit_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys_err("pipe"))?;
    let argv = arguments(&program, opts, ready_w.as_raw_fd(), exit_r.as_raw_fd());
    // SAFETY: the shim is single-threaded (it starts no thread); the child only sets up its
    // descriptors and signals and execs.
    #[allow(unsafe_code)]
    let forked = unsafe { sys::clone_process(CloneFlags::empty()) }.map_err(sys_err("fork"))?;
    match forked {
        Forked::Child => {
            let _ = exec_child(&argv, &null, &log, &ready_w, &exit_r);
            sys::exit_now(127)
        }
        Forked::Parent(pid) => {
            drop(ready_w);
            drop(exit_r);
            let mut slirp = Slirp4netns {
                pid,
                exit: Some(exit_w),
                reaped: false,
            };
            match slirp.wait_ready(ready_r) {
                Ok(()) => {
                    crate::log::info!(
                        "slirp4netns {pid}: tap0 of init {} is up (mtu {})",
                        opts.init,
                        effective_mtu(opts.mtu)
                    );
                    Ok(slirp)
                }
                Err(e) => {
                    // Killed at once, so its log is complete when read.
                    slirp.kill();
                    Err(match e {
                        Error::Timeout(t, _) => Error::Timeout(t, log_tail(log)),
                        Error::Failed { status, .. } => Error::Failed {
                            status,
                            log: log_tail(log),
                        },
                        e => e,
                    })
                }
            }
        }
    }
}

fn effective_mtu(mtu: u32) -> u32 {
    if mtu == 0 {
        SLIRP_DEFAULT_MTU
    } else {
        mtu
    }
}

/// `slirp4netns --configure --mtu=N --ready-fd=R --exit-fd=E [--userns-path=...] PID tap0`.
fn arguments(program: &Path, opts: &Options<'_>, ready: i32, exit: i32) -> Vec<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    let mut args = vec![
        program.as_os_str().as_bytes().to_vec(),
        b"--configure".to_vec(),
        format!("--mtu={}", effective_mtu(opts.mtu)).into_bytes(),
        format!("--ready-fd={ready}").into_bytes(),
        format!("--exit-fd={exit}").into_bytes(),
    ];
    if opts.userns {
        args.push(format!("--userns-path=/proc/{}/ns/user", opts.init).into_bytes());
    }
    args.push(opts.init.to_string().into_bytes());
    args.push(SLIRP_IFNAME.as_bytes().to_vec());
    // No argument holds a NUL: a path from the environment could (it came through OsStr),
    // and then the exec fails, which the parent sees as an early end.
    args.into_iter()
        .filter_map(|a| std::ffi::CString::new(a).ok())
        .collect()
}

/// In the forked child: stdin from /dev/null, output to the log, signals as after a fresh
/// exec, every descriptor close-on-exec but the two pipe ends; then exec.
fn exec_child(
    argv: &[std::ffi::CString],
    null: &File,
    log: &File,
    ready: &OwnedFd,
    exit: &OwnedFd,
) -> nix::Result<()> {
    nix::unistd::dup2_stdin(null.as_fd())?;
    nix::unistd::dup2_stdout(log.as_fd())?;
    nix::unistd::dup2_stderr(log.as_fd())?;
    sys::reset_signals()?;
    // Ended with the shim even if its exit descriptor were somehow kept open elsewhere.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    sys::cloexec_from(3)?;
    for fd in [ready, exit] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
    }
    let Some(program) = argv.first() else {
        return Err(Errno::EINVAL);
    };
    nix::unistd::execv(program, argv)?;
    Ok(())
}

impl Slirp4netns {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Waits for slirp4netns's "1" on the ready pipe.
    fn wait_ready(&mut self, ready: OwnedFd) -> Result<(), Error> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut ready = File::from(ready);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(READY_TIMEOUT, String::new()));
            }
            let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::ZERO);
            let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(sys_err("poll")(e)),
            }
            let mut byte = [0u8; 1];
            match ready.read(&mut byte) {
                Ok(1) if byte[0] == b'1' => return Ok(()),
                Ok(1) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(_) | Err(_) => {
                    // EOF: it is ending (or its exec failed). Its status says how.
                    return Err(Error::Failed {
                        status: self.wait_exit(deadline),
                        log: String::new(),
                    });
                }
            }
        }
    }

    /// Collects it once it has ended, waiting until `deadline` (then SIGKILL); how it ended.
    fn wait_exit(&mut self, deadline: Instant) -> String {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(WaitStatus::StillAlive) => {
                    self.kill();
                    return "killed: it did not exit".into();
                }
                Ok(s) => {
                    self.reaped = true;
                    return describe(s);
                }
                Err(e) => {
                    self.reaped = true;
                    return format!("waitpid: {e}");
                }
            }
        }
    }

    /// For the shim's reaper, which collected `pid`: true when it was this slirp4netns, whose
    /// end is recorded (its pid is not signalled from now on).
    pub fn collected(&mut self, pid: Pid) -> bool {
        if pid != self.pid || self.reaped {
            return false;
        }
        self.reaped = true;
        self.exit = None;
        true
    }

    /// Whether it still runs (not collected yet).
    pub fn running(&self) -> bool {
        !self.reaped
    }

    /// Ends it: closes its exit descriptor, gives it [`EXIT_GRACE`] to exit, then SIGKILL;
    /// collects it. Nothing to do once it was collected.
    pub fn stop(&mut self) {
        self.exit = None;
        if self.reaped {
            return;
        }
        let how = self.wait_exit(Instant::now() + EXIT_GRACE);
        crate::log::info!("slirp4netns {}: ended ({how})", self.pid);
    }

    /// SIGKILL and collect (an unreaped child: the pid is still ours).
    fn kill(&mut self) {
        self.exit = None;
        if self.reaped {
            return;
        }
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
        self.reaped = true;
    }
}

impl Drop for Slirp4netns {
    fn drop(&mut self) {
        self.stop();
    }
}

/// "exit status N" or "killed by SIGX".
pub fn describe(s: WaitStatus) -> String {
    match s {
        WaitStatus::Exited(_, 127) => "exit status 127: it could not be run".into(),
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}

/// ": <the last lines of its log>", or nothing when it wrote none.
fn log_tail(mut log: File) -> String {
    let len = log.seek(SeekFrom::End(0)).unwrap_or(0);
    let from = len.saturating_sub(LOG_TAIL);
    let mut text = String::new();
    if log.seek(SeekFrom::Start(from)).is_ok() {
        let mut bytes = Vec::new();
        let _ = log.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", text.lines().collect::<Vec<_>>().join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_names_the_init_and_its_user_namespace() {
        let dir = Path::new("/run/x");
        let opts = Options {
            init: Pid::from_raw(4242),
            userns: true,
            mtu: 0,
            state_dir: dir,
        };
        let args: Vec<String> = arguments(Path::new("/usr/bin/slirp4netns"), &opts, 7, 9)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "/usr/bin/slirp4netns",
                "--configure",
                "--mtu=65520",
                "--ready-fd=7",
                "--exit-fd=9",
                "--userns-path=/proc/4242/ns/user",
                "4242",
                "tap0",
            ]
        );
        let opts = Options {
            userns: false,
            mtu: 1500,
            ..opts
        };
        let args: Vec<String> = arguments(Path::new("/s"), &opts, 3, 4)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert!(args.contains(&"--mtu=1500".to_owned()), "{args:?}");
        assert!(!args.iter().any(|a| a.starts_with("--userns-path")));
        // Never --disable-host-loopback: 10.0.2.2 reaches the host's 127.0.0.1.
        assert!(!args.iter().any(|a| a.contains("loopback")));
    }
}
