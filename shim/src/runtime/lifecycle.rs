//! `create`, `start` and `run`. `create` reads the bundle's config.json, makes the cgroups,
//! clones the init with [`crate::process::create_with`] (the shim's own code path) gated on
//! `<root>/<id>/exec.fifo`, runs the prestart and createRuntime hooks once the init's
//! namespaces exist, writes `state.json` and the pid file, and exits: the init waits, opening
//! the fifo for writing, with nobody holding it but the caller's subreaper. `start` opens the
//! fifo for reading (the init then execs) and runs the poststart hooks.

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::cgroups::{self, DeviceMode, Layout, Manager};
use crate::config::Cgroups;
use crate::hooks;
use crate::process::{self, Launch, StartGate, Stdio};
use execdriver_spec::oci::{self, State, Status};

use super::cli::{CreateArgs, RunArgs};
use super::store::{self, Container, Record, FIFO};
use super::{control, Error, Logger};

/// `create ID`: the container waits for `start`.
pub fn create(root: &Path, a: &CreateArgs, log: &Logger) -> Result<(), Error> {
    make(root, a, log, false).map(|_| ())
}

/// `run ID`: create, start, and (without `-d`) stay with the init (signals forwarded, a
/// terminal without `--console-socket` relayed to ours), then delete unless `--keep`.
/// Returns the init's exit status (128 + its signal).
pub fn run(root: &Path, a: &RunArgs, log: &Logger) -> Result<i32, Error> {
    // Blocked before the init exists, so its SIGCHLD cannot be lost.
    let signals = if a.detach {
        None
    } else {
        Some(forwarding_signals()?)
    };
    let (c, master) = make(root, &a.create, log, !a.detach)?;
    if let Err(e) = start(root, &a.create.id, log) {
        let _ = control::delete(root, &a.create.id, true, log);
        return Err(e);
    }
    let Some(signals) = signals else {
        return Ok(0);
    };
    // The init is this process's child: stay with it here.
    let code = supervise(c.pid(), &signals, master);
    if !a.keep {
        control::delete(root, &a.create.id, true, log)?;
    }
    code
}

/// The signalfd of the signals a foreground `run` or `exec` forwards.
pub(super) fn forwarding_signals() -> Result<nix::sys::signalfd::SignalFd, Error> {
    crate::nsinit::forwarding_signals().map_err(|e| Error::msg(e.to_string()))
}

/// Stays with a child in the foreground: forwards signals, relays `master` (our terminal in
/// raw mode meanwhile), reaps; its exit status, or 128 + the signal that killed it.
pub(super) fn supervise(
    pid: Pid,
    signals: &nix::sys::signalfd::SignalFd,
    master: Option<OwnedFd>,
) -> Result<i32, Error> {
    let _raw = master
        .as_ref()
        .and_then(|_| crate::nsinit::RawTerminal::enter());
    crate::nsinit::supervise(pid, signals, master.as_ref()).map_err(|e| Error::msg(e.to_string()))
}

/// Makes the container; with `relay` (a foreground `run`) a terminal without
/// `--console-socket` is kept here, its master returned.
fn make(
    root: &Path,
    a: &CreateArgs,
    log: &Logger,
    relay: bool,
) -> Result<(Container, Option<OwnedFd>), Error> {
    store::check_id(&a.id)?;
    if a.no_pivot {
        return Err(Error::msg(
            "--no-pivot is not supported: execdriver-runc always uses pivot_root",
        ));
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io("the current directory", e))?;
    let bundle = a.bundle.as_ref().map(|b| cwd.join(b)).unwrap_or(cwd);
    let bundle = bundle
        .canonicalize()
        .map_err(|e| Error::io(format!("bundle {}", bundle.display()), e))?;
    let path = bundle.join("config.json");
    let data = fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let spec = oci::Spec::parse(&data).map_err(|e| Error::msg(format!("config.json: {e}")))?;
    let systemd = Path::new("/run/systemd/system").exists();
    let converted = oci::to_config(&spec, &a.id, &bundle, systemd)?;
    let config = converted.config;
    if config.tty && a.console_socket.is_none() && !relay {
        return Err(Error::msg(
            "cannot allocate tty if runc will detach without setting console socket",
        ));
    }
    if !config.tty && a.console_socket.is_some() {
        return Err(Error::msg(
            "cannot use console socket if runc will not detach or allocate tty",
        ));
    }
    match crate::security::check_apparmor(&config, false) {
        Err(refusal) => return Err(Error::msg(refusal)),
        Ok(Some(warning)) => log.warn(&warning),
        Ok(None) => {}
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    let dir = store::dir_of(root, &a.id);
    match fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::msg(format!("container with id exists: {}", a.id)))
        }
        Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
    }
    let record = Record {
        id: a.id.clone(),
        pid: 0,
        start_time: 0,
        rootfs: config
            .rootfs
            .clone()
            .unwrap_or_else(|| bundle.join("rootfs")),
        bundle,
        created: execdriver_spec::logline::rfc3339_nanos(execdriver_spec::state::now_ns()),
        owner: "root".into(),
        annotations: spec.annotations.clone(),
        config,
        spec,
    };
    let console_size = match (converted.console_size, relay && record.config.tty) {
        (Some(size), _) => Some(size),
        (None, true) => crate::sys::get_winsize(std::io::stdin().as_fd()).ok(),
        (None, false) => None,
    };
    match make_in(&dir, record, a, console_size) {
        Ok(c) => Ok(c),
        Err(e) => {
            let _ = fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

fn make_in(
    dir: &Path,
    mut record: Record,
    a: &CreateArgs,
    console_size: Option<(u16, u16)>,
) -> Result<(Container, Option<OwnedFd>), Error> {
    let fifo_path = dir.join(FIFO);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622))
        .map_err(|e| Error::io("creating the exec fifo", e.into()))?;
    // Writable by the container's user, whoever that is (the umask took bits off).
    fs::set_permissions(&fifo_path, fs::Permissions::from_mode(0o622))
        .map_err(|e| Error::io("chmod of the exec fifo", e))?;
    let fifo: OwnedFd =
        nix::fcntl::open(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::io("opening the exec fifo", e.into()))?;

    let cgroup: Option<Box<dyn Manager>> = match record.config.cgroups.clone() {
        Some(cg) => {
            let m = cgroups::open(&Layout::detect()?, &cg, DeviceMode::Auto)?;
            let made = m
                .create()
                .and_then(|_| m.set(&cg))
                .and_then(|_| m.set_devices(&cg));
            match made {
                Ok(()) => Some(m),
                Err(e) => {
                    let _ = m.destroy();
                    if !rootless_without_cgroups(&e, &cg)? {
                        return Err(e.into());
                    }
                    // Recorded without cgroups: later commands (ps, kill --all, delete,
                    // events) work from the init's pid.
                    record.config.cgroups = None;
                    None
                }
            }
        }
        None => None,
    };
    let config = &record.config;
    let stdio = if config.tty {
        let (rows, cols) = console_size.unwrap_or((0, 0));
        Stdio::Pty { rows, cols }
    } else {
        Stdio::Inherit
    };
    let mut hook_state = State::new(
        &record.id,
        Status::Creating,
        0,
        &record.bundle.to_string_lossy(),
    );
    hook_state.annotations = record.annotations.clone();
    let launch = Launch {
        gate: StartGate::Fifo(fifo),
        preserve_fds: a.preserve_fds,
        detached: false,
        hook_state: Some(hook_state.clone()),
    };
    let rootfs = record.rootfs.clone();
    let created = process::create_with(config, &rootfs, stdio, launch, &mut |pid| {
        if let Some(m) = &cgroup {
            m.apply(pid).map_err(|e| format!("cgroups: {e}"))?;
        }
        // The init's namespaces exist, pivot_root has not happened: prestart (deprecated)
        // and createRuntime, in the runtime's namespaces.
        let mut state = hook_state.clone();
        state.pid = pid.as_raw();
        let json = serde_json::to_vec(&state).map_err(|e| e.to_string())?;
        hooks::run_all("prestart", &config.hooks.prestart, &json)
            .and_then(|_| hooks::run_all("createRuntime", &config.hooks.create_runtime, &json))
            .map_err(|e| e.to_string())
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
    let pid = created.pid;
    let mut created = created;
    let master = created.pty_master.take();
    match finish(dir, &mut record, a, pid, master.as_ref()) {
        Ok(()) => {
            created.release();
            let container = Container {
                dir: dir.to_owned(),
                record,
            };
            // Sent to the console socket, or kept for the caller to relay.
            let master = master.filter(|_| a.console_socket.is_none());
            Ok((container, master))
        }
        Err(e) => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            if let Some(m) = &cgroup {
                let _ = m.destroy();
            }
            Err(e)
        }
    }
}

/// The end of a create once the init waits: the console to the engine, the state, the pid
/// file.
fn finish(
    dir: &Path,
    record: &mut Record,
    a: &CreateArgs,
    pid: Pid,
    pty_master: Option<&OwnedFd>,
) -> Result<(), Error> {
    record.pid = pid.as_raw();
    record.start_time = store::proc_stat(record.pid)
        .map(|(t, _)| t)
        .ok_or_else(|| Error::msg("the container's init exited during create"))?;
    if let (Some(sock), Some(master)) = (&a.console_socket, pty_master) {
        send_console(sock, master)?;
    }
    store::save(dir, record)?;
    if let Some(p) = &a.pid_file {
        write_pid_file(p, pid)?;
    }
    Ok(())
}

/// Sends the terminal's master over the engine's `--console-socket` (SCM_RIGHTS).
pub(super) fn send_console(socket: &Path, master: &OwnedFd) -> Result<(), Error> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| Error::io(format!("connecting to {}", socket.display()), e))?;
    crate::sys::send_with_fd(stream.as_fd(), b"/dev/ptmx", Some(master.as_fd()))
        .map_err(|e| Error::io("sending the console", e.into()))
}

/// Writes `--pid-file` whole (a temporary file renamed over it), as runc does.
pub(super) fn write_pid_file(path: &Path, pid: Pid) -> Result<(), Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("the current directory", e))?;
    let path: PathBuf = cwd.join(path);
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::msg(format!(
            "--pid-file {}: not a file path",
            path.display()
        )));
    };
    execdriver_spec::state::write_atomic(
        parent,
        &name.to_string_lossy(),
        pid.to_string().as_bytes(),
        false,
    )
    .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// `start ID`: lets a created container's init exec its command.
pub fn start(root: &Path, id: &str, log: &Logger) -> Result<(), Error> {
    let c = store::load(root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => return Err(Error::msg("cannot start a container that has stopped")),
        Status::Creating => {
            return Err(Error::msg("cannot start a container in the creating state"))
        }
        Status::Running | Status::Paused => {
            return Err(Error::msg("cannot start an already running container"))
        }
    }
    let fifo_path = c.dir.join(FIFO);
    // Non-blocking, so an init that died before opening its end cannot hang `start`.
    let fifo: OwnedFd = nix::fcntl::open(
        &fifo_path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("opening the exec fifo", e.into()))?;
    let mut f = fs::File::from(fifo);
    // The init writes "0" (or why it cannot go on) and holds its end until its exec.
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) if !said.is_empty() => break,
            Ok(0) if c.init_alive() => {} // not opened by the init yet
            Ok(n @ 1..) => said.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && c.init_alive() => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = fs::remove_file(&fifo_path);
    match said.as_slice() {
        b"0" => {}
        [] => {
            return Err(Error::msg(
                "the container's init exited before it could start its command",
            ))
        }
        why => return Err(Error::msg(String::from_utf8_lossy(why).into_owned())),
    }
    if !c.record.config.hooks.poststart.is_empty() {
        let json = serde_json::to_vec(&c.state()).map_err(|e| Error::msg(e.to_string()))?;
        for w in hooks::run_all_warn("poststart", &c.record.config.hooks.poststart, &json) {
            log.warn(&w);
        }
    }
    Ok(())
}

/// Whether a create whose cgroups could not be made (`e`) goes on without them: run rootless
/// (not as root, or as root of a user namespace, as under rootless Podman) with no cgroup the
/// user may write, as runc does, when the config asks for no limit. A limit it asks for is refused, naming it (a delegated cgroup v2 subtree would be
/// needed). Otherwise (root, or another failure) the error stands.
fn rootless_without_cgroups(e: &cgroups::Error, cg: &Cgroups) -> Result<bool, Error> {
    let denied = match e {
        cgroups::Error::Create { source, .. } | cgroups::Error::Write { source, .. } => {
            matches!(
                source.raw_os_error(),
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
            )
        }
        _ => false,
    };
    let rootless = !nix::unistd::geteuid().is_root() || crate::sys::in_user_namespace();
    if !denied || !rootless {
        return Ok(false);
    }
    match cg.first_limit() {
        Some(field) => Err(Error::msg(format!(
            "linux.resources.{field}: running rootless, with no cgroup this user may write \
             ({e}): limits need a delegated cgroup v2 subtree; remove the limit or run as root"
        ))),
        // As runc: nothing said (an engine would log it for every container).
        None => Ok(true),
    }
}
