//! `execdriverd` run by an ordinary user (made with `useradd`, with subordinate ids):
//! its socket and state under the user's `XDG_RUNTIME_DIR`, containers in a user namespace
//! (root inside is the user, the subordinate range mapped through `newuidmap`), limits
//! refused naming them, exec and logs, and a restart that finds its containers again.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, make_rootfs, unique, TempDir, TestUser};

/// A rootless daemon: its user, its runtime directory, its process, and the cgroup v2
/// subtree delegated to it, if any.
struct RootlessDaemon {
    user: TestUser,
    /// Dropped after the user's processes are killed.
    delegated: Option<Delegated>,
    dir: TempDir,
    xdg: PathBuf,
    rootfs: PathBuf,
    child: Option<Child>,
}

impl RootlessDaemon {
    fn start() -> RootlessDaemon {
        RootlessDaemon::start_with(false)
    }

    /// With `delegate`, the daemon starts in a cgroup v2 directory of its own that root gave
    /// the user, as systemd's `Delegate=yes` does.
    fn start_with(delegate: bool) -> RootlessDaemon {
        let user = TestUser::new(true);
        let delegated = delegate.then(|| Delegated::new(&user));
        let dir = TempDir::new("edt-rootlessd");
        std::fs::set_permissions(
            &dir.path,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let xdg = dir.path.join("xdg");
        user.own_dir(&xdg);
        let rootfs = dir.path.join("rootfs");
        make_rootfs(&rootfs);
        let mut d = RootlessDaemon {
            user,
            delegated,
            dir,
            xdg,
            rootfs,
            child: None,
        };
        d.spawn();
        d
    }

    fn socket(&self) -> PathBuf {
        self.xdg.join("execdriverd.sock")
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let daemon = bin("execdriverd");
        let xdg = self.xdg.display().to_string();
        let child = self.user.spawn_in(
            self.delegated.as_ref().map(|d| d.dir.as_path()),
            &self.xdg,
            &[("XDG_RUNTIME_DIR", &xdg)],
            &[daemon.as_os_str()],
            &self.dir.path.join("daemon.log"),
        );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the rootless daemon did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Our child (setpriv execs into env, which execs the daemon: the same pid).
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("daemon.log")).unwrap_or_default()
    }

    /// `execdriverctl ARGS` as the user.
    fn ctl(&self, args: &[&str]) -> Output {
        let ctl = bin("execdriverctl");
        let socket = self.socket();
        let mut argv: Vec<&OsStr> = vec![ctl.as_os_str(), OsStr::new("--socket")];
        argv.push(socket.as_os_str());
        argv.extend(args.iter().map(OsStr::new));
        self.user.run(&self.xdg, &[], &argv)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "{args:?}: {out:?}\n{}", self.log());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn rootfs(&self) -> &str {
        self.rootfs.to_str().unwrap()
    }
}

impl Drop for RootlessDaemon {
    fn drop(&mut self) {
        self.stop();
        // The user's processes (containers, shims) go with it (TestUser's drop).
    }
}

/// A cgroup v2 directory given to a user as systemd delegates one: the directory and its
/// `cgroup.procs`, `cgroup.subtree_control` and `cgroup.threads` are the user's. Removed
/// (with everything below it, its processes killed) on drop.
struct Delegated {
    dir: PathBuf,
}

impl Delegated {
    fn new(user: &TestUser) -> Delegated {
        let unified = Path::new("/sys/fs/cgroup/unified");
        let unified = if unified.join("cgroup.procs").exists() {
            unified
        } else {
            Path::new("/sys/fs/cgroup")
        };
        let dir = unified.join(unique("edtest-deleg"));
        std::fs::create_dir(&dir).unwrap();
        for p in [
            dir.clone(),
            dir.join("cgroup.procs"),
            dir.join("cgroup.subtree_control"),
            dir.join("cgroup.threads"),
        ] {
            std::os::unix::fs::chown(&p, Some(user.uid), Some(user.gid)).unwrap();
        }
        Delegated { dir }
    }

    /// The directory relative to the hierarchy's root, as /proc/PID/cgroup shows it.
    fn relative(&self) -> String {
        let root = self.dir.parent().unwrap();
        format!("/{}", self.dir.strip_prefix(root).unwrap().display())
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let mut dirs = Vec::new();
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
            out.push(d.to_owned());
        }
        walk(&self.dir, &mut dirs);
        for d in dirs {
            for _ in 0..100 {
                if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The cgroup v2 path of `pid` (`0::PATH` of /proc/PID/cgroup).
fn v2_cgroup_of(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_owned()
}

fn run_lines(d: &RootlessDaemon, script: &str) -> Vec<String> {
    let out = d.ok(&[
        "run",
        "--rm",
        "--hostname",
        "rl",
        "--rootfs",
        d.rootfs(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    out.lines().map(str::to_owned).collect()
}

#[test]
fn a_rootless_daemon_runs_containers_in_a_user_namespace() {
    let d = RootlessDaemon::start();
    let info = d.ok(&["info"]);
    assert!(info.contains("Rootless:"), "{info}");
    assert!(info.contains(&d.xdg.display().to_string()), "{info}");
    let lines = run_lines(
        &d,
        "id -u; head -n 1 /proc/self/uid_map; echo pid $$; hostname; ls /sys/class/net",
    );
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    d.user.assert_root_inside(&lines);
    assert_eq!(lines[3], "rl");
    assert_eq!(lines[4], "lo", "{lines:?}");
    // Nothing of the host the user could not touch: a host file it may not write stays so.
    let lines = run_lines(
        &d,
        "echo x > /proc/sys/kernel/hostname 2>/dev/null && echo wrote || echo refused",
    );
    assert_eq!(lines, ["refused"]);

    // A limit is refused, naming it and why.
    let out = d.ctl(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--rootfs",
        d.rootfs(),
        "--",
        "true",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains("memory") && stderr.contains("rootless"),
        "{stderr}"
    );
}

#[test]
fn a_rootless_daemons_containers_take_exec_logs_and_a_restart() {
    let mut d = RootlessDaemon::start();
    let id = unique("rl");
    d.ok(&[
        "run",
        "-d",
        "--name",
        &id,
        "--rootfs",
        d.rootfs(),
        "--",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]);
    assert_eq!(
        d.ok(&["exec", &id, "--", "echo", "inside"]).trim(),
        "inside"
    );
    let logs = eventually_text(|| d.ok(&["logs", &id]), "started");
    assert!(logs.contains("started"), "{logs}");
    // Root inside is the user outside: the host sees the container's process as the user.
    let state = d.ok(&["state", "--format", "{{.pid}}", &id]);
    let pid: i32 = state.trim().parse().unwrap_or_else(|_| panic!("{state}"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = execdriver_tests::parse_status(&status)["Uid"].clone();
    assert!(
        uids.split_whitespace().all(|u| u == d.user.uid.to_string()),
        "{uids}"
    );
    // Only its own processes are in sight.
    let ps = d.ok(&["exec", &id, "--", "sh", "-c", "ls -d /proc/[0-9]* | wc -l"]);
    assert!(ps.trim().parse::<u32>().unwrap() < 10, "{ps}");
    // A restart finds it running.
    d.stop();
    d.spawn();
    let state = d.ok(&["state", &id]);
    assert!(state.contains("running"), "{state}\n{}", d.log());
    d.ok(&["delete", "-f", &id]);
    let list = d.ok(&["list", "-q"]);
    assert!(list.trim().is_empty(), "{list}");
    assert!(!Path::new(&d.xdg.join("execdriver").join(&id)).exists());
}

fn eventually_text(mut f: impl FnMut() -> String, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = f();
        if text.contains(want) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon started in a cgroup v2 subtree delegated to its user: each container gets a
/// cgroup there (the daemon and its shims a leaf of their own), pause and stats work on it,
/// a limit the subtree offers no controller for is refused naming it, a delete removes it,
/// and a restarted daemon finds the container in it.
#[test]
fn a_rootless_daemon_in_a_delegated_cgroup_gives_each_container_one() {
    let mut d = RootlessDaemon::start_with(true);
    let deleg = d.delegated.as_ref().unwrap();
    let (dir, rel) = (deleg.dir.clone(), deleg.relative());
    let info = d.ok(&["info"]);
    assert!(
        info.contains(&format!("cgroups in the delegated {}", dir.display())),
        "{info}\n{}",
        d.log()
    );
    let daemon_pid = d.child.as_ref().unwrap().id().to_string();
    assert_eq!(v2_cgroup_of(&daemon_pid), format!("{rel}/execdriverd"));

    let id = unique("rlcg");
    d.ok(&[
        "run",
        "-d",
        "--name",
        &id,
        "--rootfs",
        d.rootfs(),
        "--",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let pid = d.ok(&["state", "--format", "{{.pid}}", &id]);
    let mine = format!("{rel}/containers/{id}");
    assert_eq!(v2_cgroup_of(&pid), mine);
    let cg = dir.join("containers").join(&id);
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.trim());
    // An exec'd process joins it.
    let inside = d.ok(&[
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "cat /proc/self/cgroup; sleep 0.2",
    ]);
    assert!(inside.contains("0::"), "{inside}");
    let pids = d.ok(&["pids", &id]);
    assert!(pids.contains(pid.trim()), "{pids}");

    // Pause freezes the cgroup (cgroup.freeze); resume thaws it.
    d.ok(&["pause", &id]);
    assert_eq!(
        std::fs::read_to_string(cg.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "1"
    );
    assert!(d.ok(&["state", &id]).contains("paused"));
    d.ok(&["resume", &id]);
    assert_eq!(
        std::fs::read_to_string(cg.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "0"
    );
    // Its busy loop shows in its cgroup's CPU time.
    std::thread::sleep(Duration::from_millis(200));
    let stats = d.ok(&["stats", "--json", &id]);
    let v: serde_json::Value =
        serde_json::from_str(&stats).unwrap_or_else(|e| panic!("{e}: {stats}"));
    let usage = v
        .pointer("/cpu/usage_ns")
        .and_then(|u| u.as_u64())
        .unwrap_or(0);
    assert!(usage > 10_000_000, "{stats}");

    // This host's subtree offers no memory controller: a memory limit is refused, saying so.
    let out = d.ctl(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--rootfs",
        d.rootfs(),
        "--",
        "true",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains("memory") && stderr.contains("offers no memory controller"),
        "{stderr}"
    );

    // And so is an update asking for one.
    let out = d.ctl(&["update", "--memory", "64m", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("offers no memory controller"), "{stderr}");

    // A restart finds it, still in its cgroup; a delete removes the cgroup.
    d.stop();
    d.spawn();
    assert!(d.ok(&["state", &id]).contains("running"), "{}", d.log());
    assert_eq!(v2_cgroup_of(&pid), mine);
    d.ok(&["delete", "-f", &id]);
    assert!(!cg.exists(), "{}", d.log());
}
