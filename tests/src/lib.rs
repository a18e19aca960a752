//! The integration-test harness: a busybox rootfs, a private execdriverd per test, a client,
//! and cleanup of everything a test made, also when it fails.
//!
//! Binaries come from the workspace's target directory (`cargo build --workspace --bins` first;
//! the README's test command does it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use execdriver_proto as pb;
use execdriver_proto::exec_driver_client::ExecDriverClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

pub type Client = ExecDriverClient<Channel>;

pub mod engines;
pub mod foreign;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this test process: `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The directory holding the workspace's binaries (target/debug or target/release).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_owned()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        p.display()
    );
    p
}

/// Where busybox-static's binary is.
pub fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox is missing: install Debian's busybox-static");
}

/// A scratch directory removed on drop (after unmounting anything left under it).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Makes a busybox root filesystem at `dir`: /bin/busybox, a link per applet, the usual
/// directories, /etc/passwd and /etc/group.
pub fn make_rootfs(dir: &Path) {
    for d in [
        "bin", "sbin", "usr/bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "mnt",
    ] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    std::fs::copy(busybox(), dir.join("bin/busybox")).expect("copy busybox");
    // The applets are listed by the host's busybox, not the fresh copy: executing a file just
    // written fails with ETXTBSY while a child forked meanwhile by another test thread still
    // holds the copy's write descriptor.
    let list = Command::new(busybox())
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("passwd");
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .expect("group");
    std::fs::set_permissions(
        dir.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .expect("chmod tmp");
}

/// A private execdriverd with its own root, socket and rootfs. Dropping it stops the daemon
/// and removes every container it left (processes, cgroups, state).
pub struct Daemon {
    pub dir: TempDir,
    pub root: PathBuf,
    pub socket: PathBuf,
    pub rootfs: PathBuf,
    pub cgroup_parent: String,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// The test's own network namespace, when the daemon runs inside one.
    netns: Option<Netns>,
    /// Pass `--cgroup-parent` (otherwise the daemon picks its default, which `cgroup_parent`
    /// then holds).
    pass_cgroup_parent: bool,
    env: Vec<(String, String)>,
    /// A command the daemon is started through (it must exec the daemon, keeping its pid).
    wrapper: Vec<String>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// A daemon started through `wrapper` (a command that execs its last argument, the
    /// daemon, with the daemon's arguments after it), e.g. into a mount namespace of its own.
    pub fn start_wrapped(wrapper: &[&str]) -> Daemon {
        let mut d = Daemon::start_with(&[]);
        d.stop_daemon(libc::SIGKILL);
        d.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        d.spawn();
        d
    }

    pub fn start_with(extra_args: &[&str]) -> Daemon {
        let dir = TempDir::new("edt");
        let root = dir.path.join("root");
        let socket = dir.path.join("d.sock");
        let rootfs = dir.path.join("rootfs");
        make_rootfs(&rootfs);
        let cgroup_parent = unique("edtest");
        let mut d = Daemon {
            dir,
            root,
            socket,
            rootfs,
            cgroup_parent,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            netns: None,
            env: Vec::new(),
            pass_cgroup_parent: true,
            wrapper: Vec::new(),
        };
        d.spawn();
        d
    }

    /// A daemon started without `--cgroup-parent`: its default for its root.
    pub fn start_with_default_cgroup_parent() -> Daemon {
        let dir = TempDir::new("edt");
        let root = dir.path.join("root");
        let socket = dir.path.join("d.sock");
        let rootfs = dir.path.join("rootfs");
        make_rootfs(&rootfs);
        let cgroup_parent = execdriver_driver::convert::default_cgroup_parent(&root);
        let mut d = Daemon {
            dir,
            root,
            socket,
            rootfs,
            cgroup_parent,
            child: None,
            extra_args: Vec::new(),
            netns: None,
            env: Vec::new(),
            pass_cgroup_parent: false,
            wrapper: Vec::new(),
        };
        d.spawn();
        d
    }

    /// A daemon inside a network namespace of its own (made for it, removed with it), with
    /// `extra_args` (e.g. `--bridge`) and `env` added to its command line and environment.
    pub fn start_in_netns(extra_args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let netns = Netns::new();
        let dir = TempDir::new("edt");
        let root = dir.path.join("root");
        let socket = dir.path.join("d.sock");
        let rootfs = dir.path.join("rootfs");
        make_rootfs(&rootfs);
        let mut d = Daemon {
            dir,
            root,
            socket,
            rootfs,
            cgroup_parent: unique("edtest"),
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            netns: Some(netns),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            pass_cgroup_parent: true,
            wrapper: Vec::new(),
        };
        d.spawn();
        d
    }

    /// The network namespace the daemon runs in (with [`Daemon::start_in_netns`]).
    pub fn netns(&self) -> &Netns {
        self.netns
            .as_ref()
            .expect("the daemon was not started in a netns")
    }

    /// Stops the daemon (SIGTERM: its containers keep running) and starts another on the same
    /// root, socket and cgroup parent with `extra_args` instead of the first one's.
    pub fn restart_with(&mut self, extra_args: &[&str]) {
        self.stop_daemon(libc::SIGTERM);
        self.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        self.spawn();
    }

    /// The network namespace the daemon runs in, if it was started in one.
    pub fn netns_opt(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    /// Starts (again) the daemon process on the same root and socket.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path.join("daemon.log"))
            .expect("daemon log");
        let mut cmd = match (&self.netns, self.wrapper.split_first()) {
            (Some(ns), _) => ns.command(bin("execdriverd")),
            (None, Some((program, args))) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin("execdriverd"));
                c
            }
            (None, None) => Command::new(bin("execdriverd")),
        };
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--root")
            .arg(&self.root)
            .arg("--socket")
            .arg(&self.socket)
            .args(if self.pass_cgroup_parent {
                vec!["--cgroup-parent", self.cgroup_parent.as_str()]
            } else {
                vec![]
            })
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start execdriverd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "execdriverd did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the daemon process with `signal` (containers keep running).
    pub fn stop_daemon(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY-free: kill by our own child's pid.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::try_from(signal).expect("signal"),
            );
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("daemon.log")).unwrap_or_default()
    }

    pub async fn client(&self) -> Client {
        let channel = execdriver_driver_connect(&self.socket).await;
        ExecDriverClient::new(channel)
    }

    /// A create request for `args` in this daemon's rootfs with a unique id.
    pub fn request(&self, args: &[&str]) -> pb::CreateRequest {
        pb::CreateRequest {
            id: unique("c"),
            rootfs: self.rootfs.display().to_string(),
            process: Some(pb::Process {
                args: args.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The containers' cgroup directories under this daemon's cgroup parent, in every
    /// hierarchy (not its parked shims' pool sets, see [`is_pool`]).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroups_under(&self.cgroup_parent)
            .into_iter()
            .filter(|p| !is_pool(p))
            .collect()
    }

    /// The pool sets of this daemon's parked shims (`--shim-pool`), in every hierarchy.
    pub fn pool_cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroups_under(&self.cgroup_parent)
            .into_iter()
            .filter(|p| is_pool(p))
            .collect()
    }

    /// Container state directories left in the root (not the parked shims' `.pool`).
    pub fn state_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.root)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir() && !is_pool(p))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Kills every process of every container this daemon made, and their shims, then removes
    /// their cgroups and the parent. Used on drop; tests can call it to assert on a clean slate.
    fn reap_everything(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        for dir in self.state_dirs() {
            for f in ["shim.pid", "pid"] {
                if let Ok(pid) = std::fs::read_to_string(dir.join(f)) {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        if is_ours(pid, &dir) {
                            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                        }
                    }
                }
            }
        }
        // Parked shims (and their nurseries) end when the daemon goes, each removing its own
        // cgroups; one still parking could make its set (and the parent) after the parent is
        // removed below. Ours work in our root's pool directory: killed by pid, waited for.
        let pool = self.root.join(".pool");
        let parked = || -> Vec<i32> {
            std::fs::read_dir("/proc")
                .map(|r| {
                    r.flatten()
                        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                        .filter(|pid| {
                            std::fs::read_link(format!("/proc/{pid}/cwd"))
                                .is_ok_and(|cwd| cwd.starts_with(&pool))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = parked();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // A shim the daemon started as it was killed, not yet in the pool directory, sees
        // the daemon gone before it makes anything (`supervisor::daemon_gone`).
        remove_cgroup_parent(&self.cgroup_parent);
    }
}

/// A network namespace of a test's own, held by a `sleep` in it (started with
/// `unshare --net`) and reached as `/proc/PID/ns/net`: nothing is mounted for it (unlike
/// `ip netns add`), and dropping it kills the holder (our child, by pid), so the namespace goes
/// with the last process in it. Its `lo` is up.
pub struct Netns {
    holder: Child,
    /// `/proc/<holder>/ns/net`.
    pub path: PathBuf,
}

impl Netns {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Netns {
        let holder = Command::new("unshare")
            .args(["--net", "--", "sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare --net (util-linux)");
        let path = PathBuf::from(format!("/proc/{}/ns/net", holder.id()));
        let ns = Netns { holder, path };
        let ours = std::fs::read_link("/proc/self/ns/net").expect("our netns");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(&ns.path).ok().as_ref() == Some(&ours) {
            assert!(
                Instant::now() < deadline,
                "unshare --net did not take effect"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `nsenter --net=<path> -- <program>`: a command that runs in this namespace (nsenter
    /// execs it, so its pid is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path.display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `program args` in the namespace; returns its stdout; panics if it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter");
        assert!(
            out.status.success(),
            "{program} {args:?} in the test netns: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip ARGS` in the namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        self.run("ip", args)
    }

    /// Runs a shell script in the namespace with a sysfs of the namespace mounted on /sys (in a
    /// private mount namespace that ends with the script), as `ip netns exec` provides.
    pub fn with_sysfs(&self, script: &str) -> String {
        self.run(
            "unshare",
            &[
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                &format!("mount -t sysfs sysfs /sys && {script}"),
            ],
        )
    }

    /// The names of the veth interfaces in the namespace.
    pub fn veths(&self) -> Vec<String> {
        self.ip(&["-o", "link", "show", "type", "veth"])
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_owned())
            .collect()
    }
}

impl Netns {
    /// The pids of the processes named `comm` (their `/proc/PID/comm`) whose network namespace
    /// is this one: only a test's own can be there.
    pub fn processes_named(&self, comm: &str) -> Vec<i32> {
        let ours = std::fs::read_link(&self.path).expect("the test netns");
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim_end() == comm)
                    && std::fs::read_link(format!("/proc/{pid}/ns/net"))
                        .ok()
                        .as_ref()
                        == Some(&ours)
            })
            .collect()
    }

    /// A TCP server on 127.0.0.1 (an ephemeral port) of this namespace: each connection's
    /// first line `L` is answered `pong L`. Stopped on drop.
    pub fn serve_loopback(&self) -> LoopbackServer {
        let ns = std::fs::File::open(&self.path).expect("open the test netns");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            // This thread alone enters the namespace; the socket stays in it.
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
            listener.set_nonblocking(true).expect("nonblocking");
            let port = listener.local_addr().expect("local_addr").port();
            let _ = tx.send(port);
            let mut lines = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        use std::io::{BufRead, Write};
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut reader = std::io::BufReader::new(&stream);
                        let mut line = String::new();
                        let _ = reader.read_line(&mut line);
                        let line = line.trim_end().to_owned();
                        let _ = (&stream).write_all(format!("pong {line}\n").as_bytes());
                        lines.push(line);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            lines
        });
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the loopback server's port");
        LoopbackServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

/// See [`Netns::serve_loopback`].
pub struct LoopbackServer {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl LoopbackServer {
    /// Stops it; the first lines of the connections it answered.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fails the test, saying how to fix it, when slirp4netns is not installed (scripts/test.sh
/// installs it): a test of the user-mode network must not pass without it.
pub fn require_slirp4netns() {
    assert!(
        execdriver_shim::slirp4netns::find().is_some(),
        "slirp4netns is not installed: apt-get install -y slirp4netns (scripts/test.sh installs it)"
    );
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// An interface name unique to this test process, within IFNAMSIZ: `<prefix><hex>`.
pub fn unique_ifname(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:x}{n:x}", std::process::id() & 0xffff);
    assert!(name.len() <= 15, "{name} is too long for an interface name");
    name
}

/// Whether `path` is a parked shim's (`--shim-pool`): its directory under the root's `.pool`,
/// or its cgroups, `.pool-TOKEN`. They come and go as the daemon refills its pool; tests of
/// what containers leave behind look past them, and `pool` tests look at them.
pub fn is_pool(path: &Path) -> bool {
    path.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s == ".pool" || s.starts_with(".pool-"))
    })
}

/// The cgroup directories under `parent` in every mounted hierarchy.
pub fn cgroups_under(parent: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if !(right.starts_with("cgroup ") || right.starts_with("cgroup2 ")) {
            continue;
        }
        let Some(mountpoint) = left.split(' ').nth(4) else {
            continue;
        };
        if let Ok(children) = std::fs::read_dir(Path::new(mountpoint).join(parent)) {
            out.extend(
                children
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Kills every process in the cgroups under `parent` and removes them and `parent`, in every
/// hierarchy. Tests give each daemon its own parent, so this touches only what they made.
pub fn remove_cgroup_parent(parent: &str) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let dirs = cgroups_under(parent);
    for d in &dirs {
        if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
            for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        // A frozen cgroup's tasks cannot die until thawed.
        let _ = std::fs::write(d.join("freezer.state"), "THAWED");
    }
    for d in &dirs {
        let deadline = Instant::now() + Duration::from_secs(5);
        while d.exists() && std::fs::remove_dir(d).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.starts_with("cgroup ") || right.starts_with("cgroup2 ") {
            if let Some(mountpoint) = left.split(' ').nth(4) {
                let _ = std::fs::remove_dir(Path::new(mountpoint).join(parent));
            }
        }
    }
}

/// Removes a cgroup parent (and kills what is in it) when dropped.
pub struct CgroupGuard(pub String);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        remove_cgroup_parent(&self.0);
    }
}

/// Whether `pid` is a process this test started (its shim runs with cwd in the state dir, or
/// it is in one of our container's namespaces); guards against killing a reused pid.
fn is_ours(pid: i32, state_dir: &Path) -> bool {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
    if cwd.starts_with(state_dir) {
        return true;
    }
    // A container init: its cgroup names the container id.
    let id = state_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("\0");
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .is_ok_and(|c| c.contains(&format!("/{id}")))
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop_daemon(libc::SIGKILL);
        self.reap_everything();
    }
}

/// A client of the daemon serving `socket` (one this harness did not start: a rootless
/// daemon's, say; root is admitted by every daemon).
pub async fn connect(socket: &Path) -> Client {
    ExecDriverClient::new(execdriver_driver_connect(socket).await)
}

async fn execdriver_driver_connect(socket: &Path) -> Channel {
    let socket = socket.to_owned();
    tonic::transport::Endpoint::from_static("http://execdriverd.sock")
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect to execdriverd")
}

/// What a container printed and how it ended.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: pb::ExitStatus,
}

impl Output {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn code(&self) -> i32 {
        self.exit.status_code
    }
}

/// Attaches to a container (which must not have started yet if all output is wanted) and
/// collects its output until it ends. `stdin` is sent, then stdin is closed.
pub async fn attach_collect(
    client: &mut Client,
    id: &str,
    stdin: Option<Vec<u8>>,
    start: bool,
) -> Output {
    attach_collect_exec(client, id, "", stdin, start).await
}

/// As [`attach_collect`], for an exec'd process of the container.
pub async fn attach_collect_exec(
    client: &mut Client,
    id: &str,
    exec_id: &str,
    stdin: Option<Vec<u8>>,
    start: bool,
) -> Output {
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(16);
    let start_msg = pb::AttachStart {
        id: id.to_owned(),
        exec_id: exec_id.to_owned(),
        stdin: stdin.is_some(),
        stdout: true,
        stderr: true,
    };
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Start(start_msg)),
    })
    .await
    .unwrap();
    let mut stream = client
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("attach")
        .into_inner();
    if let Some(data) = stdin {
        tx.send(pb::AttachRequest {
            kind: Some(pb::attach_request::Kind::Stdin(data)),
        })
        .await
        .unwrap();
        tx.send(pb::AttachRequest {
            kind: Some(pb::attach_request::Kind::CloseStdin(pb::CloseStdin {})),
        })
        .await
        .unwrap();
    }
    if start {
        client
            .start(pb::StartRequest {
                id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            })
            .await
            .expect("start");
    }
    let mut out = Output::default();
    while let Some(msg) = stream.next().await {
        match msg.expect("attach stream").kind {
            Some(pb::attach_response::Kind::Output(c)) if c.stream == pb::Stream::Stderr as i32 => {
                out.stderr.extend_from_slice(&c.data)
            }
            Some(pb::attach_response::Kind::Output(c)) => out.stdout.extend_from_slice(&c.data),
            Some(pb::attach_response::Kind::Exit(e)) => {
                out.exit = e;
                break;
            }
            None => {}
        }
    }
    drop(tx);
    out
}

/// Creates a container from `req`, runs it to the end, collects its output, deletes it.
pub async fn run(client: &mut Client, req: pb::CreateRequest) -> Output {
    let id = req.id.clone();
    let stdin = req
        .process
        .as_ref()
        .filter(|p| p.open_stdin)
        .map(|_| Vec::new());
    client.create(req).await.expect("create");
    let out = attach_collect(client, &id, stdin, true).await;
    client
        .delete(pb::DeleteRequest { id, force: false })
        .await
        .expect("delete");
    out
}

/// Polls `f` until it returns Some or `timeout` passes.
pub async fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The mount points in the host's mount table that lie under `path`.
pub fn host_mounts_under(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.display().to_string();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|m| m.starts_with(&p))
        .collect()
}

/// The static test helper `edtest-sys` (tests/helper/edtest-sys.rs: one system call a
/// container should or should not be able to make), built once with rustc and
/// `+crt-static` so it runs in the busybox rootfs.
pub fn sys_helper() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| static_helper("edtest-sys")).clone()
}

/// The pod sandbox's process of the CRI tests' pause image (tests/helper/edtest-pause.rs:
/// waits for signals, reaps children), built as [`sys_helper`] is.
pub fn pause_helper() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| static_helper("edtest-pause")).clone()
}

/// Builds tests/helper/NAME.rs into a static binary beside the test binaries (again only
/// when the source is newer), with the rustc of the toolchain building the tests.
fn static_helper(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("helper/{name}.rs"));
    let out = bin_dir().join(name);
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if mtime(&out).is_none() || mtime(&out) < mtime(&src) {
        let rustc = Path::new(env!("CARGO"))
            .parent()
            .map(|d| d.join("rustc"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("rustc"));
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let status = Command::new(&rustc)
            .args([
                "--edition",
                "2021",
                "-O",
                "-C",
                "target-feature=+crt-static",
            ])
            .arg("-o")
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("run rustc for a test helper");
        assert!(status.success(), "building {} failed", src.display());
        std::fs::rename(&tmp, &out).expect("install the test helper");
    }
    out
}

/// Copies the test helper into a rootfs as /bin/edtest-sys.
pub fn install_helper(rootfs: &Path) {
    std::fs::copy(sys_helper(), rootfs.join("bin/edtest-sys")).expect("copy the test helper");
}

/// Runs `args` as another user (setpriv: uid, gid, and exactly `groups` as supplementary
/// groups) and returns its output.
pub fn run_as(
    uid: u32,
    gid: u32,
    groups: &[u32],
    args: &[&std::ffi::OsStr],
) -> std::process::Output {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        cmd.arg(format!("--groups={}", list.join(",")));
    }
    cmd.arg("--").args(args).output().expect("run setpriv")
}

/// An ordinary user made for a test (`useradd`, which also gives it subordinate ids in
/// /etc/subuid and /etc/subgid), with a home directory with `home`; removed (its home too) on
/// drop, after its processes are killed.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    pub fn new(home: bool) -> TestUser {
        let name = unique("edu").replace('-', "");
        let out = Command::new("useradd")
            .args(["--shell", "/bin/sh"])
            .arg(if home {
                "--create-home"
            } else {
                "--no-create-home"
            })
            .arg(&name)
            .output()
            .expect("useradd (passwd)");
        assert!(out.status.success(), "{out:?}");
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, &name]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        TestUser { name, uid, gid }
    }

    /// Runs `argv` as the user in `cwd`, with `env` (and HOME set).
    pub fn run(
        &self,
        cwd: &Path,
        env: &[(&str, &str)],
        argv: &[&std::ffi::OsStr],
    ) -> std::process::Output {
        let home = format!("HOME=/home/{}", self.name);
        let mut all: Vec<std::ffi::OsString> =
            vec!["env".into(), "-C".into(), cwd.into(), home.into()];
        all.extend(env.iter().map(|(k, v)| format!("{k}={v}").into()));
        all.extend(argv.iter().map(|a| a.into()));
        let refs: Vec<&std::ffi::OsStr> = all.iter().map(|a| a.as_os_str()).collect();
        run_as(self.uid, self.gid, &[], &refs)
    }

    /// Starts `argv` as the user in `cwd`, with `env` (and HOME set); output to `log`.
    pub fn spawn(
        &self,
        cwd: &Path,
        env: &[(&str, &str)],
        argv: &[&std::ffi::OsStr],
        log: &Path,
    ) -> Child {
        self.spawn_under(&[], cwd, env, argv, log)
    }

    /// [`TestUser::spawn`] through `wrapper` (run as root, it execs the rest of its command
    /// line, `setpriv ...`, in the end: e.g. `nsenter --net=... --`).
    pub fn spawn_under(
        &self,
        wrapper: &[&std::ffi::OsStr],
        cwd: &Path,
        env: &[(&str, &str)],
        argv: &[&std::ffi::OsStr],
        log: &Path,
    ) -> Child {
        let home = format!("HOME=/home/{}", self.name);
        let log = std::fs::File::create(log).expect("log file");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg("setpriv");
                c
            }
            None => Command::new("setpriv"),
        };
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "--", "env", "-C"])
            .arg(cwd)
            .arg(home)
            .args(env.iter().map(|(k, v)| format!("{k}={v}")))
            .args(argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("run setpriv")
    }

    /// Checks what `id -u`, the first line of `/proc/self/uid_map` and `echo pid $$` printed,
    /// as the first three of `lines`: root inside, mapped to this user outside, pid 1 of its
    /// own namespace.
    pub fn assert_root_inside(&self, lines: &[&str]) {
        assert!(lines.len() >= 3, "{lines:?}");
        assert_eq!(lines[0], "0", "{lines:?}");
        let map: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(map, ["0", &self.uid.to_string(), "1"], "{lines:?}");
        assert_eq!(lines[2], "pid 1", "{lines:?}");
    }

    /// Makes `dir` (new) the user's own, mode 0700.
    pub fn own_dir(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid)).unwrap();
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its processes (a rootless engine's pause process, say): ours, by their uid.
        let _ = Command::new("pkill")
            .args(["-KILL", "-U", &self.uid.to_string()])
            .output();
        std::thread::sleep(Duration::from_millis(100));
        let _ = Command::new("userdel")
            .args(["--remove", &self.name])
            .output();
    }
}

/// Parses `KEY:\tVALUE` lines of /proc/PID/status.
pub fn parse_status(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// A terminal the test holds the master side of, with a reader thread collecting output.
pub struct Terminal {
    pub master: std::fs::File,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Terminal {
    pub fn open(rows: u16, cols: u16) -> (Terminal, std::os::fd::OwnedFd) {
        let ws = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
        let master = std::fs::File::from(pty.master);
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (Terminal { master, output }, pty.slave)
    }

    pub fn send(&mut self, s: &str) {
        std::io::Write::write_all(&mut self.master, s.as_bytes()).unwrap();
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).replace('\r', "")
    }

    /// Waits until the output after `from` contains `needle`; returns the new `from`.
    pub fn expect(&self, from: usize, needle: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text();
            if let Some(pos) = text[from.min(text.len())..].find(needle) {
                return from + pos + needle.len();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}; terminal shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn resize(&self, rows: u16, cols: u16) {
        execdriver_shim::sys::set_winsize(std::os::fd::AsFd::as_fd(&self.master), rows, cols)
            .unwrap();
    }
}

/// An open-files limit (soft, hard) for a container to ask for: hard 2048, or this process's
/// own hard limit if lower (raising a hard limit needs CAP_SYS_RESOURCE, which the container's
/// setup does not have where the host's bounding set lacks it), soft half of it.
pub fn nofile_limits() -> (u64, u64) {
    let own = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(2048);
    let hard = own.min(2048);
    (hard / 2, hard)
}
