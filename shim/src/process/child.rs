//! The child's side of a process's creation, after `clone`: close what it inherited, wait for
//! the shim's Configured, set the container up (mounts, pivot_root, hostname, cwd, user,
//! capabilities, seccomp), report Ready, wait for Start, and exec; or report what failed.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid};

use crate::config::Config;
use crate::namespaces::{self, Namespace};
use crate::rootfs;
use crate::seccomp;
use crate::security;
use crate::sys::{self};

use execdriver_spec::oci::Status;

use super::identity::Identity;
use super::joined::Joined;
use super::kernel;
use super::spec::{Launch, ProcessSpec, StartGate, Stdio};
use super::sync::{recv, send, send_fd, ChildErrorCode, SyncMsg};

/// A failed setup step, carried back to the parent.
pub(super) struct ChildError {
    code: ChildErrorCode,
    message: String,
}

impl ChildError {
    pub(super) fn internal(what: &str, e: impl std::fmt::Display) -> ChildError {
        ChildError {
            code: ChildErrorCode::Internal,
            message: format!("{what}: {e}"),
        }
    }
    fn precondition(message: String) -> ChildError {
        ChildError {
            code: ChildErrorCode::Precondition,
            message,
        }
    }
}

/// The end of a child's setup: exec, or report why not and exit. Never returns.
pub(super) fn child_end(result: Result<Option<Exec>, ChildError>, sync: &OwnedFd) -> ! {
    let err = match result {
        Ok(None) => sys::exit_now(0), // the caller went away before Start
        Ok(Some(exec)) => exec.run(),
        Err(e) => e,
    };
    let _ = send(
        sync,
        &SyncMsg::Error {
            code: err.code,
            message: err.message,
        },
    );
    sys::exit_now(127)
}

/// Everything needed to exec, computed before Start so Start is one syscall.
pub(super) struct Exec {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    /// Run [`crate::reaper`] as PID 1 and the command as its child.
    reaper: bool,
    /// The command's stdin is a terminal: give it the foreground.
    tty: bool,
}

impl Exec {
    fn run(self) -> ChildError {
        // Descriptors are close-on-exec and the seccomp filter is loaded already (before
        // Ready): from here on only the syscalls of the reaper and of execve are made.
        if self.reaper {
            return match crate::reaper::spawn(self.tty) {
                Ok(()) => self.exec(), // the command's side of the fork
                Err(e) => ChildError::internal("starting the init", e),
            };
        }
        self.exec()
    }

    fn exec(self) -> ChildError {
        if let Err(e) = sys::reset_signals() {
            return ChildError::internal("resetting signals", e);
        }
        let e = nix::unistd::execve(&self.path, &self.args, &self.env).unwrap_err();
        let path = self.path.to_string_lossy();
        let (code, message) = match e {
            // The file was there at lookup: its interpreter (#!) or loader is what is missing.
            Errno::ENOENT => (
                ChildErrorCode::NotFound,
                format!("exec {path}: no such file or directory (or its #! interpreter)"),
            ),
            // Lower case, as Go words it: engines match "permission denied" and "is a
            // directory" for 126.
            Errno::EACCES | Errno::EISDIR | Errno::ENOEXEC | Errno::ETXTBSY => (
                ChildErrorCode::CannotRun,
                format!("exec {path}: {}", e.desc().to_lowercase()),
            ),
            e => (ChildErrorCode::Internal, format!("exec {path}: {e}")),
        };
        ChildError { code, message }
    }
}

fn wait_configured(sync: &OwnedFd) -> Result<bool, ChildError> {
    // Die with the shim: a container must not run unsupervised.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| ChildError::internal("pdeathsig", e))?;
    match recv(sync) {
        Ok(Some(SyncMsg::Configured)) => Ok(true),
        Ok(None) => Ok(false),
        Ok(Some(other)) => Err(ChildError::internal("sync", format!("{other:?}"))),
        Err(e) => Err(ChildError::internal("sync", e)),
    }
}

/// The namespaces an init joins rather than makes.
pub(super) struct Joins<'a> {
    /// A `netns` network strategy's file.
    pub netns: Option<&'a std::fs::File>,
    /// `namespace_paths`.
    pub paths: &'a Joined,
    /// The idmapped mounts made by the shim, to attach.
    pub idmapped: &'a rootfs::Idmapped,
    /// Born in a nursery's pivoted mount namespace ([`rootfs::staging`]).
    pub staged: Option<rootfs::staging::Staged>,
}

/// The container's init: new namespaces are in place; make its world.
pub(super) fn init_child(
    config: &Config,
    spec: &ProcessSpec,
    rootfs: &Path,
    stdio: Stdio,
    sync: &OwnedFd,
    joins: Joins<'_>,
    launch: &Launch,
) -> Result<Option<Exec>, ChildError> {
    // Before anything else moves its root: the staging root of a pivoted namespace.
    let staging = match joins.staged {
        Some(staged) => {
            Some(rootfs::staging::reach(staged).map_err(|e| ChildError::internal("rootfs", e))?)
        }
        None => None,
    };
    // [proc] Namespaces joined by path, first (the user namespace before the others), so the
    // shim's setup (cgroups, veths) finds the init where it will stay.
    joins.paths.enter().map_err(ChildError::precondition)?;
    let join_net = joins.netns;
    if !wait_configured(sync)? {
        return Ok(None);
    }
    if config.has_namespace(Namespace::User) {
        // The maps are written: become the namespace's root (the host's mapped uid), who sets
        // the container up and owns what it creates.
        let root_g = Gid::from_raw(0);
        let root_u = Uid::from_raw(0);
        let _ = nix::unistd::setgroups(&[]);
        nix::unistd::setresgid(root_g, root_g, root_g)
            .map_err(|e| ChildError::internal("setgid in the user namespace", e))?;
        nix::unistd::setresuid(root_u, root_u, root_u)
            .map_err(|e| ChildError::internal("setuid in the user namespace", e))?;
    }
    if config.has_namespace(Namespace::Cgroup) && !joins.paths.joins(Namespace::Cgroup) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| ChildError::internal("unshare of the cgroup namespace", e))?;
    }
    nix::unistd::setsid().map_err(|e| ChildError::internal("setsid", e))?;
    if let Some(netns) = join_net {
        crate::network::join_netns(netns)
            .map_err(|e| ChildError::internal("joining the network namespace", e))?;
    }
    let pty_size = take_stdio(stdio)?;
    if config.has_namespace(Namespace::Uts) && !config.hostname.is_empty() {
        nix::unistd::sethostname(&config.hostname)
            .map_err(|e| ChildError::internal("sethostname", e))?;
    }
    if !joins.paths.joins(Namespace::Net) {
        crate::network::setup_container(config).map_err(|e| ChildError::internal("network", e))?;
    }
    // [proc] The domain name and sysctls, in the container's namespaces, through the /proc
    // still mounted from the host (before the rootfs's own /proc and its read-only paths).
    kernel::set_domainname(config).map_err(|e| ChildError::internal("domainname", e))?;
    kernel::write_sysctls(config, Path::new("/proc/sys"))
        .map_err(|e| ChildError::precondition(e.to_string()))?;
    let mut create_container_hooks = || match &launch.hook_state {
        Some(state) if !config.hooks.create_container.is_empty() => crate::hooks::run_all(
            "createContainer",
            &config.hooks.create_container,
            &own_state(state, Status::Creating),
        )
        .map_err(|e| e.to_string()),
        _ => Ok(()),
    };
    rootfs::setup_with(
        config,
        rootfs,
        joins.idmapped,
        staging,
        &mut create_container_hooks,
    )
    .map_err(|e| match e {
        rootfs::Error::MissingSource { .. }
        | rootfs::Error::NotADirectory(_)
        | rootfs::Error::BeforePivot(_)
        | rootfs::Error::Field { .. } => ChildError::precondition(e.to_string()),
        e => ChildError::internal("rootfs", e),
    })?;
    let pty = match pty_size {
        Some((rows, cols)) => Some(open_console(rows, cols, spec.user.uid, true)?),
        None => None,
    };
    finish_child(config, spec, pty, sync, launch)
}

/// The state JSON a container-side hook gets: `state` with the process's own pid.
fn own_state(state: &execdriver_spec::oci::State, status: Status) -> Vec<u8> {
    let mut state = state.clone();
    state.pid = std::process::id() as i32;
    state.status = status;
    serde_json::to_vec(&state).unwrap_or_default()
}

/// An exec'd process: enter the container's namespaces, then as the init.
pub(super) fn join_child(
    config: &Config,
    spec: &ProcessSpec,
    opened: &[(Namespace, std::fs::File)],
    stdio: Stdio,
    sync: &OwnedFd,
    launch: &Launch,
) -> Result<Option<Exec>, ChildError> {
    if !wait_configured(sync)? {
        return Ok(None);
    }
    namespaces::join(opened)
        .map_err(|e| ChildError::internal("joining the container's namespaces", e))?;
    nix::unistd::setsid().map_err(|e| ChildError::internal("setsid", e))?;
    let pty = match take_stdio(stdio)? {
        Some((rows, cols)) => Some(open_console(rows, cols, spec.user.uid, false)?),
        None => None,
    };
    finish_child(config, spec, pty, sync, launch)
}

/// Installs pipe stdio now; returns the size of a terminal to open once in the container.
fn take_stdio(stdio: Stdio) -> Result<Option<(u16, u16)>, ChildError> {
    match stdio {
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } => {
            install_stdio(stdin, stdout, stderr)?;
            Ok(None)
        }
        Stdio::Pty { rows, cols } => Ok(Some((rows, cols))),
        Stdio::Inherit => Ok(None),
    }
}

/// Closes what the process inherited from the shim, except `keep`.
/// Runs only in a freshly cloned child, which execs or exits without dropping the shim's
/// objects.
pub(super) fn close_inherited(keep: &[RawFd]) -> Result<(), ChildError> {
    // SAFETY: a cloned child of the single-threaded shim; the objects owning the closed
    // descriptors are the shim's, which this child never uses or drops (it execs or _exits).
    #[allow(unsafe_code)]
    let closed = unsafe { sys::close_fds_except(keep) };
    closed.map_err(|e| ChildError::internal("closing the shim's descriptors", e))
}

/// The steps every process takes inside the container (see [`crate::security`] for the
/// order): cwd, command lookup, AppArmor, capabilities, user, no_new_privs, descriptors,
/// seccomp, then Ready, then wait for Start.
fn finish_child(
    config: &Config,
    spec: &ProcessSpec,
    pty_master: Option<OwnedFd>,
    sync: &OwnedFd,
    launch: &Launch,
) -> Result<Option<Exec>, ChildError> {
    // After pivot_root (or, for an exec, setns into the mount namespace) "/" is the
    // container's root: the cwd resolves inside it, symlinks included.
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    nix::unistd::chdir(cwd)
        .map_err(|e| ChildError::precondition(format!("working directory {cwd}: {e}")))?;
    let exec = prepare_exec(config, spec, pty_master.is_some())?;
    // [proc] Groups, umask, capability plan, I/O priority and personality.
    let identity = Identity::new(config, spec);

    if let Some(profile) = config.apparmor_profile() {
        // The shim refused the container already when AppArmor is missing and not allowed to be.
        if profile != "unconfined" && security::apparmor_enabled() {
            security::apparmor_exec(profile).map_err(|e| {
                ChildError::precondition(format!(
                    "context.{}: {profile:?}: {e}",
                    security::APPARMOR_KEY
                ))
            })?;
        }
    }
    let filter = match config
        .seccomp
        .resolve(identity.caps.bounding(), crate::seccomp::kernel_version())
    {
        None => None,
        Some(profile) => {
            let arch = seccomp::Arch::native().ok_or_else(|| {
                ChildError::precondition(
                    "seccomp: filters are not supported on this architecture; ask for unconfined"
                        .into(),
                )
            })?;
            let program = seccomp::compile(&profile, arch)
                .map_err(|e| ChildError::precondition(format!("seccomp: {e}")))?;
            Some(program)
        }
    };
    let load = |p: &seccomp::Program| {
        sys::seccomp_load(&p.insns, p.flags)
            .map_err(|e| ChildError::internal("loading the seccomp filter", e))
    };
    let nnp = config.no_new_privs();

    identity
        .set_scheduling()
        .map_err(|e| ChildError::internal("scheduling", e))?;
    identity
        .caps
        .before_uid_change()
        .map_err(|e| ChildError::internal("capabilities", e))?;
    if let (false, Some(p)) = (nnp, &filter) {
        // Without no_new_privs the filter needs CAP_SYS_ADMIN, which goes with the uid change:
        // load it now (what follows, setgroups to Ready, is allowed by the default profile).
        load(p)?;
    }
    let gid = Gid::from_raw(spec.user.gid);
    let uid = Uid::from_raw(spec.user.uid);
    identity
        .set_groups()
        .map_err(|e| ChildError::internal("setgroups", e))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| ChildError::internal("setgid", e))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| ChildError::internal("setuid", e))?;
    // A change of uid or gid clears the parent-death signal: set it again, or a container
    // running as another user would outlive a dead shim.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| ChildError::internal("pdeathsig", e))?;
    identity
        .caps
        .after_uid_change(uid.is_root())
        .map_err(|e| ChildError::precondition(format!("capabilities: {e}")))?;
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(|e| ChildError::internal("no_new_privs", e))?;
    }
    // No descriptor of the shim's reaches the command (what was asked, 0 to 2, is dup'd there).
    sys::cloexec_from(3)
        .map_err(|e| ChildError::internal("marking descriptors close-on-exec", e))?;
    sys::keep_on_exec(3, launch.preserve_fds)
        .map_err(|e| ChildError::precondition(format!("preserved descriptors: {e}")))?;
    if let (true, Some(p)) = (nnp, &filter) {
        // Last: from here the process only reports Ready, waits for Start and execs.
        load(p)?;
    }

    identity.set_umask();
    if launch.outlives_caller() {
        // The caller exits after Ready (an OCI `create`, a detached exec).
        nix::sys::prctl::set_pdeathsig(None).map_err(|e| ChildError::internal("pdeathsig", e))?;
    }
    send_fd(
        sync,
        &SyncMsg::Ready,
        pty_master.as_ref().map(|m| m.as_fd()),
    )
    .map_err(|e| ChildError::internal("sync", e))?;
    drop(pty_master);
    if let StartGate::Fifo(fifo) = &launch.gate {
        let mut opened = wait_fifo(fifo)?;
        let hooks = match &launch.hook_state {
            Some(state) => crate::hooks::run_all(
                "startContainer",
                &config.hooks.start_container,
                &own_state(state, Status::Created),
            )
            .map_err(|e| ChildError::precondition(e.to_string())),
            None => Ok(()),
        };
        // `start` reads "0" (go on) or why not, until EOF: the descriptor is close-on-exec,
        // so `start` returns once the command is exec'd.
        let said = match &hooks {
            Ok(()) => "0".to_owned(),
            Err(e) => e.message.clone(),
        };
        std::io::Write::write_all(&mut opened, said.as_bytes())
            .map_err(|e| ChildError::internal("writing the exec fifo", e))?;
        hooks?;
        std::mem::forget(opened);
        return Ok(Some(exec));
    }
    match recv(sync) {
        Ok(Some(SyncMsg::Start)) => Ok(Some(exec)),
        Ok(None) => Ok(None),
        Ok(Some(other)) => Err(ChildError::internal("sync", format!("{other:?}"))),
        Err(e) => Err(ChildError::internal("sync", e)),
    }
}

/// Blocks until `start` opens the exec fifo for reading (opening it for writing through
/// /proc/self/fd: the descriptor is `O_PATH`).
fn wait_fifo(fifo: &OwnedFd) -> Result<std::fs::File, ChildError> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| ChildError::internal("opening the exec fifo", e))
}

/// Makes three descriptors the process's 0, 1 and 2.
fn install_stdio(stdin: OwnedFd, stdout: OwnedFd, stderr: OwnedFd) -> Result<(), ChildError> {
    for (fd, target) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
        if fd.as_raw_fd() == target {
            std::mem::forget(fd); // already in place; keep it open
            continue;
        }
        let r = match target {
            0 => nix::unistd::dup2_stdin(fd.as_fd()),
            1 => nix::unistd::dup2_stdout(fd.as_fd()),
            _ => nix::unistd::dup2_stderr(fd.as_fd()),
        };
        r.map_err(|e| ChildError::internal("stdio", e))?;
    }
    Ok(())
}

/// Opens a terminal in the container's devpts (inside the container, /dev/ptmx is its own),
/// makes the slave our controlling terminal and 0, 1, 2 (and, for the init, /dev/console), and
/// returns the master.
fn open_console(rows: u16, cols: u16, uid: u32, console: bool) -> Result<OwnedFd, ChildError> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: Errno| ChildError::internal(&what, e)
    };
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(err("opening /dev/ptmx"))?;
    grantpt(&master).map_err(err("grantpt"))?;
    unlockpt(&master).map_err(err("unlockpt"))?;
    let name = ptsname_r(&master).map_err(err("ptsname"))?;
    let slave: OwnedFd = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(err("opening the pty slave"))?;
    // The user the command runs as owns its terminal, as login(1) would arrange.
    nix::unistd::fchown(&slave, Some(Uid::from_raw(uid)), None).map_err(err("chown the pty"))?;
    if rows > 0 && cols > 0 {
        sys::set_winsize(slave.as_fd(), rows, cols).map_err(err("setting the window size"))?;
    }
    if console {
        nix::mount::mount(
            Some(name.as_str()),
            "/dev/console",
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(err("binding /dev/console"))?;
    }
    sys::set_controlling_tty(slave.as_fd()).map_err(err("TIOCSCTTY"))?;
    let dup = |f: &OwnedFd| {
        f.try_clone()
            .map_err(|e| ChildError::internal("dup pty", e))
    };
    install_stdio(dup(&slave)?, dup(&slave)?, slave)?;
    Ok(master.into())
}

/// Resolves the command in the container (as execvp would) and builds argv and envp.
fn prepare_exec(config: &Config, spec: &ProcessSpec, tty: bool) -> Result<Exec, ChildError> {
    let Some(cmd) = spec.args.first() else {
        return Err(ChildError::precondition("args: no command given".into()));
    };
    let env = process_env(&spec.env, tty, &config.hostname);
    let path_env = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    // Worded as runc and Go's exec say it: engines turn "not found" and "no such file" into
    // exit code 127, "permission denied" and "is a directory" into 126.
    let path = lookup(cmd, path_env).map_err(|e| {
        let (code, message) = match e {
            Lookup::NotFound if cmd.contains('/') => (
                ChildErrorCode::NotFound,
                format!("exec: {cmd:?}: stat {cmd}: no such file or directory"),
            ),
            Lookup::NotFound => (
                ChildErrorCode::NotFound,
                format!("exec: {cmd:?}: executable file not found in $PATH"),
            ),
            Lookup::IsDirectory(p) if p == Path::new(cmd) => (
                ChildErrorCode::CannotRun,
                format!("exec: {cmd:?}: is a directory"),
            ),
            Lookup::IsDirectory(p) => (
                ChildErrorCode::CannotRun,
                format!(
                    "exec: {cmd:?}: permission denied: {} is a directory",
                    p.display()
                ),
            ),
            Lookup::NotExecutable(p) => (
                ChildErrorCode::CannotRun,
                format!(
                    "exec: {cmd:?}: permission denied: {} has no execute permission",
                    p.display()
                ),
            ),
        };
        ChildError { code, message }
    })?;
    let cstr = |s: &[u8]| {
        CString::new(s).map_err(|_| ChildError::precondition("NUL in args or env".into()))
    };
    let args = spec
        .args
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let env = env
        .iter()
        .map(|e| cstr(e.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Exec {
        path: cstr(path.as_os_str().as_bytes())?,
        args,
        env,
        reaper: spec.init,
        tty,
    })
}

/// The PATH a command is looked up in when its environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment a command gets: `env`, plus PATH, HOME, (with a tty) TERM and (with a
/// hostname) HOSTNAME when it does not set them.
pub fn process_env(env: &[String], tty: bool, hostname: &str) -> Vec<String> {
    let mut env = env.to_vec();
    let has = |env: &[String], key: &str| {
        env.iter()
            .any(|e| e.split_once('=').is_some_and(|(k, _)| k == key))
    };
    if !has(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOME") {
        env.push("HOME=/".into());
    }
    if tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    if !hostname.is_empty() && !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={hostname}"));
    }
    env
}

/// execvp's search: a name with a '/' is taken as it is; otherwise each PATH entry is tried.
pub fn find_executable(cmd: &str, path_env: &str) -> Option<PathBuf> {
    lookup(cmd, path_env).ok()
}

/// Why a command was not found as an executable file.
#[derive(Debug, PartialEq)]
enum Lookup {
    /// No such file (in any PATH entry).
    NotFound,
    /// The file found (the first, in PATH order) is a directory.
    IsDirectory(PathBuf),
    /// The file found (the first, in PATH order) has no execute bit.
    NotExecutable(PathBuf),
}

/// execvp's search, saying why it failed: as execvp, a file that is there but cannot be run
/// is remembered and the search goes on; only when no PATH entry has an executable is it the
/// answer (EACCES, not ENOENT).
fn lookup(cmd: &str, path_env: &str) -> Result<PathBuf, Lookup> {
    let check = |p: PathBuf| match std::fs::metadata(&p) {
        Err(_) => Err(Lookup::NotFound),
        Ok(m) if m.is_dir() => Err(Lookup::IsDirectory(p)),
        Ok(m) if !m.is_file() || m.permissions().mode() & 0o111 == 0 => {
            Err(Lookup::NotExecutable(p))
        }
        Ok(_) => Ok(p),
    };
    if cmd.contains('/') {
        return check(PathBuf::from(cmd));
    }
    let mut why = Lookup::NotFound;
    for dir in path_env.split(':').filter(|d| !d.is_empty()) {
        match check(Path::new(dir).join(cmd)) {
            Ok(p) => return Ok(p),
            Err(Lookup::NotFound) => {}
            Err(e) if why == Lookup::NotFound => why = e,
            Err(_) => {}
        }
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_like_execvp() {
        assert_eq!(
            find_executable("sh", "/nonexistent:/bin"),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            find_executable("/bin/sh", ""),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            find_executable("no-such-binary-here", "/bin:/usr/bin"),
            None
        );
        assert_eq!(find_executable("/etc/passwd", ""), None);
    }

    #[test]
    fn lookup_says_why_a_command_cannot_be_run() {
        let dir = std::env::temp_dir().join(format!("lookup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/tool")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(dir.join("b/tool"), "#!/bin/sh\n").unwrap();
        std::fs::write(dir.join("b/plain"), "data").unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        let path = format!("{}:{}", a.display(), b.display());
        assert_eq!(lookup("nothing", &path), Err(Lookup::NotFound));
        assert_eq!(lookup("/no/such", ""), Err(Lookup::NotFound));
        // The first one there, as execvp: a directory in a/, a plain file in b/.
        assert_eq!(
            lookup("tool", &path),
            Err(Lookup::IsDirectory(a.join("tool")))
        );
        assert_eq!(
            lookup("plain", &path),
            Err(Lookup::NotExecutable(b.join("plain")))
        );
        assert_eq!(lookup("/etc", ""), Err(Lookup::IsDirectory("/etc".into())));
        // An executable further on wins over one that cannot be run.
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(lookup("tool", &path), Ok(b.join("tool")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn env_gets_defaults() {
        let env = process_env(&["A=1".to_string()], true, "");
        assert!(env.contains(&"A=1".to_string()));
        assert!(env.iter().any(|e| e.starts_with("PATH=")));
        assert!(env.contains(&"HOME=/".to_string()));
        assert!(env.contains(&"TERM=xterm".to_string()));
    }
}
