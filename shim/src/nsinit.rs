//! `nsinit`: the seed's reference CLI, on the same library as the shim.
//!
//! ```text
//! nsinit [--root DIR] [--allow-missing-apparmor] exec CMD [ARG...]
//! ```
//!
//! In a directory holding a rootfs and a container.json, `nsinit exec CMD` starts the container
//! in the foreground (the terminal connected when container.json says `tty: true`, signals
//! forwarded to it) and writes the seed's `pid` file there. Running `nsinit exec CMD` again
//! while that container lives joins its namespaces instead. When PID 1 dies every process of
//! the container dies (the kernel ends a PID namespace with its init; without NEWPID, the
//! cgroup is emptied) and the pid file is removed. `--root DIR` reads container.json from DIR
//! and keeps the pid file there; the rootfs is still the current directory (unless
//! container.json names one).
//!
//! A pid file is trusted only when its process still runs, started before the file was
//! written (a reused pid belongs to a younger process), and lives in another mount namespace
//! than ours (a container init does); otherwise it is stale, removed, and a new container
//! starts.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cgroups::{self, DeviceMode, Layout, Manager};
use crate::config::{Config, LoadError};
use crate::log;
use crate::namespaces::Namespace;
use crate::process::{self, Created, ProcessSpec, Stdio};
use crate::state;

mod cli;
pub use cli::{Cli, Verb};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A usage error, or `--help` / `--version` (clap's, which prints and exits).
    #[error("{0}")]
    Usage(clap::Error),
    /// The host cannot give what container.json asks (an AppArmor profile without AppArmor).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Config(#[from] LoadError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cgroups: {0}")]
    Cgroup(#[from] cgroups::Error),
    #[error("{0}")]
    Process(#[from] process::Error),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// What the command line asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Where container.json is read and the pid file kept.
    pub root: PathBuf,
    pub command: Vec<String>,
    /// Run a container that asks for an AppArmor profile on a kernel without AppArmor,
    /// unconfined (with a warning); otherwise it is refused.
    pub allow_missing_apparmor: bool,
}

/// Parses `[--root DIR] [--allow-missing-apparmor] exec CMD [ARG...]` (without the program
/// name). `--help`, `--version` and usage errors are `Error::Usage`, whose `exit()` prints them.
pub fn parse_args(args: &[String], cwd: &Path) -> Result<Args, Error> {
    use clap::error::ErrorKind;
    use clap::Parser;
    let cli = Cli::try_parse_from(std::iter::once("nsinit").chain(args.iter().map(String::as_str)))
        .map_err(Error::Usage)?;
    let Verb::Exec { command } = cli.command;
    let command: Vec<String> = command.into_iter().skip_while(|a| a == "--").collect();
    if command.is_empty() {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        let e = cmd.error(ErrorKind::MissingRequiredArgument, "exec needs a command");
        return Err(Error::Usage(e));
    }
    Ok(Args {
        root: cli.root.map_or_else(|| cwd.to_owned(), |dir| cwd.join(dir)),
        command,
        allow_missing_apparmor: cli.allow_missing_apparmor,
    })
}

/// Runs `nsinit`; returns the exit code (the command's, or 128 + its signal).
pub fn run(args: Args) -> Result<i32, Error> {
    let cwd = std::env::current_dir().map_err(io_err("the current directory"))?;
    let mut config = Config::load(&args.root.join(state::CONFIG))?;
    if let Some(warning) = crate::security::check_apparmor(&config, args.allow_missing_apparmor)
        .map_err(Error::Refused)?
    {
        log::warn!("nsinit: {warning}");
    }
    let rootfs = config.rootfs.clone().unwrap_or(cwd);
    let pid_file = args.root.join(state::PID);

    let signals = forwarding_signals()?;

    if let Some(init) = live_container(&pid_file) {
        let spec = ProcessSpec {
            args: args.command,
            env: config.environment.clone(),
            cwd: config.working_dir.clone(),
            user: config.user(),
            init: false,
            own: Default::default(),
        };
        let stdio = stdio_for(&config);
        // The joining process goes in the container's cgroups too (they exist while it lives).
        let cgroup = match &config.cgroups {
            Some(cg) => Some(cgroups::open(&Layout::detect()?, cg, DeviceMode::Auto)?),
            None => None,
        };
        let created = process::join(&config, init, &spec, stdio, &mut |pid| {
            if let Some(m) = &cgroup {
                m.apply(pid).map_err(|e| format!("cgroups: {e}"))?;
            }
            Ok(())
        })?;
        return foreground(created, &signals, None);
    }
    // Stale or missing: a new container.
    let _ = fs::remove_file(&pid_file);
    config.args = args.command;
    let cgroup = match &config.cgroups {
        Some(cg) => {
            let m = cgroups::open(&Layout::detect()?, cg, DeviceMode::Auto)?;
            let made = m
                .create()
                .and_then(|_| m.set(cg))
                .and_then(|_| m.set_devices(cg));
            if let Err(e) = made {
                let _ = m.destroy();
                return Err(e.into());
            }
            Some(m)
        }
        None => None,
    };
    let stdio = stdio_for(&config);
    let created = process::create(&config, &rootfs, stdio, &mut |pid| {
        if let Some(m) = &cgroup {
            m.apply(pid).map_err(|e| format!("cgroups: {e}"))?;
        }
        Ok(())
    });
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            if let Some(m) = &cgroup {
                let _ = m.destroy();
            }
            return Err(e.into());
        }
    };
    state::write_atomic(
        &args.root,
        state::PID,
        created.pid.to_string().as_bytes(),
        false,
    )
    .map_err(io_err(format!("writing {}", pid_file.display())))?;
    let no_pid_ns = !config.has_namespace(Namespace::Pid);
    let result = foreground(
        created,
        &signals,
        Some((&pid_file, cgroup.as_deref(), no_pid_ns)),
    );
    if let Some(m) = &cgroup {
        let _ = m.destroy();
    }
    result
}

/// Blocks the signals [`supervise`] forwards (and SIGCHLD, SIGWINCH) and returns the signalfd
/// they arrive on. Call it before the process is made, or its SIGCHLD may be lost.
pub fn forwarding_signals() -> Result<SignalFd, Error> {
    let mut mask = SigSet::empty();
    for s in FORWARDED
        .iter()
        .chain([Signal::SIGCHLD, Signal::SIGWINCH].iter())
    {
        mask.add(*s);
    }
    mask.thread_block()
        .map_err(|e| io_err("blocking signals")(e.into()))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| io_err("signalfd")(e.into()))
}

/// The signals passed on to the container's process.
const FORWARDED: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
];

fn stdio_for(config: &Config) -> Stdio {
    if config.tty {
        let (rows, cols) = crate::sys::get_winsize(io::stdin().as_fd()).unwrap_or((24, 80));
        Stdio::Pty { rows, cols }
    } else {
        Stdio::Inherit
    }
}

/// The init of a live container recorded in `pid_file`, if the file is to be trusted.
pub fn live_container(pid_file: &Path) -> Option<Pid> {
    let pid = state::read_pid(pid_file).ok()?;
    let written = fs::metadata(pid_file).ok()?.modified().ok()?;
    let started = process_start_time(pid)?;
    // A process that started after the file was written has a reused pid.
    if started > written + Duration::from_secs(1) {
        return None;
    }
    let theirs = fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()?;
    let ours = fs::read_link("/proc/self/ns/mnt").ok()?;
    (theirs != ours).then_some(Pid::from_raw(pid))
}

/// When a process started, from /proc/PID/stat (field 22, in clock ticks after boot).
fn process_start_time(pid: i32) -> Option<SystemTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let ticks: u64 = rest.split(' ').nth(19)?.parse().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()??
        .max(1) as u64;
    let btime: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    let ms = btime * 1000 + ticks * 1000 / hz;
    Some(UNIX_EPOCH + Duration::from_millis(ms))
}

/// Starts the created process and stays with it until it ends: forwards signals, relays a
/// terminal, reaps. For a container's init (`owned`), removes the pid file afterwards and,
/// without a PID namespace, kills what is left in its cgroup.
fn foreground(
    mut created: Created,
    signals: &SignalFd,
    owned: Option<(&Path, Option<&dyn Manager>, bool)>,
) -> Result<i32, Error> {
    let pid = created.pid;
    let master = created.pty_master.take();
    let _raw = master.as_ref().and_then(|_| RawTerminal::enter());
    let started = created.start();
    let code = match started {
        Ok(()) => supervise(pid, signals, master.as_ref()),
        Err(e) => {
            let _ = waitpid(pid, None);
            Err(e.into())
        }
    };
    if let Some((pid_file, cgroup, no_pid_ns)) = owned {
        if no_pid_ns {
            if let Some(m) = cgroup {
                m.kill_all(Signal::SIGKILL);
            }
        }
        let _ = fs::remove_file(pid_file);
    }
    code
}

/// Stays with a started process until it ends: forwards signals (those of
/// [`forwarding_signals`]), relays a terminal's `master` to our stdio, reaps; returns its exit
/// status (128 + a signal). Also `execdriver-runc`'s foreground `run` and `exec`.
pub fn supervise(pid: Pid, signals: &SignalFd, master: Option<&OwnedFd>) -> Result<i32, Error> {
    let stdin = io::stdin();
    let mut stdin_open = master.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io_err("poll")(e.into())),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if let (Some(m), Some(true)) = (master, ready.get(1)) {
            // The terminal's output to ours; EIO once the container side is closed.
            match nix::unistd::read(m, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = io::stdout().write_all(&buf[..n]);
                    let _ = io::stdout().flush();
                }
                _ => {}
            }
        }
        if let (Some(m), Some(true)) = (master, ready.get(2)) {
            match io::stdin().lock().read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = nix::unistd::write(m, &buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
        if ready[0] {
            while let Ok(Some(info)) = signals.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match sig {
                    Signal::SIGCHLD => {}
                    Signal::SIGWINCH => {
                        if let (Some(m), Ok((rows, cols))) =
                            (master, crate::sys::get_winsize(stdin.as_fd()))
                        {
                            let _ = crate::sys::set_winsize(m.as_fd(), rows, cols);
                        }
                    }
                    other => {
                        let _ = kill(pid, other);
                    }
                }
            }
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == pid => {
                        drain(master, &mut buf);
                        return Ok(code);
                    }
                    Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => {
                        drain(master, &mut buf);
                        return Ok(128 + sig as i32);
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }
}

/// Copies what is left in the terminal to our stdout.
fn drain(master: Option<&OwnedFd>, buf: &mut [u8]) {
    let Some(m) = master else { return };
    let _ = nix::fcntl::fcntl(
        m,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while let Ok(n) = nix::unistd::read(m, buf) {
        if n == 0 {
            break;
        }
        let _ = io::stdout().write_all(&buf[..n]);
    }
    let _ = io::stdout().flush();
}

/// Our terminal in raw mode while the container's terminal is relayed; restored on drop.
pub struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    /// None when stdin is no terminal.
    pub fn enter() -> Option<RawTerminal> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_the_seed_command_line() {
        let cwd = Path::new("/srv/ctr");
        assert_eq!(
            parse_args(&s(&["exec", "/bin/bash"]), cwd).unwrap(),
            Args {
                root: cwd.to_owned(),
                command: s(&["/bin/bash"]),
                allow_missing_apparmor: false,
            }
        );
        assert_eq!(
            parse_args(
                &s(&["--root", "/var/run/c1", "exec", "--", "sh", "-c", "id"]),
                cwd
            )
            .unwrap(),
            Args {
                root: PathBuf::from("/var/run/c1"),
                command: s(&["sh", "-c", "id"]),
                allow_missing_apparmor: false,
            }
        );
        assert!(
            parse_args(&s(&["--allow-missing-apparmor", "exec", "true"]), cwd)
                .unwrap()
                .allow_missing_apparmor
        );
        assert!(parse_args(&s(&["exec"]), cwd).is_err());
        assert!(parse_args(&s(&["run", "x"]), cwd).is_err());
    }

    #[test]
    fn stale_pid_files_are_not_trusted() {
        let dir = std::env::temp_dir().join(format!("nsinit-pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        // Our own pid: alive, but in our mount namespace: not a container.
        fs::write(&pid_file, std::process::id().to_string()).unwrap();
        assert_eq!(live_container(&pid_file), None);
        // A pid nobody has.
        fs::write(&pid_file, "999999999").unwrap();
        assert_eq!(live_container(&pid_file), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
