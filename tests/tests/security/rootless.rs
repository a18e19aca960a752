//! `execdriverd` run by an ordinary user (made with `useradd`, with subordinate ids):
//! its socket and state under the user's `XDG_RUNTIME_DIR`, containers in a user namespace
//! (root inside is the user, the subordinate range mapped through `newuidmap`), limits
//! refused naming them, exec and logs, a restart that finds its containers again, cgroups in a
//! delegated subtree, and the slirp4netns network (with the daemon in a network namespace of
//! the test's).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, make_rootfs, require_slirp4netns, unique, Netns, TempDir, TestUser};

/// A rootless daemon: its user, its runtime directory, its process, the cgroup v2 subtree
/// delegated to it, if any, and the network namespace of the test's it runs in, if any.
struct RootlessDaemon {
    user: TestUser,
    /// Dropped after the user's processes are killed.
    delegated: Option<Delegated>,
    dir: TempDir,
    xdg: PathBuf,
    rootfs: PathBuf,
    child: Option<Child>,
    netns: Option<Netns>,
}

/// Run as root by `sh -c` before the daemon (its arguments: a directory, then the command):
/// in the daemon's private mount namespace, /dev/net/tun becomes a node of mode 0666, as
/// Debian's udev makes it (this host's may be 0600, which only root may open), on a tmpfs
/// mounted over the directory there. The host's /dev is not touched.
const TUN_0666: &str = "d=$1; shift; mount -t tmpfs -o size=16k,mode=0755 edt-tun \"$d\" && \
    mknod -m 0666 \"$d/tun\" c 10 200 && mount --bind \"$d/tun\" /dev/net/tun && exec \"$@\"";

impl RootlessDaemon {
    fn start() -> RootlessDaemon {
        RootlessDaemon::start_with(false, None)
    }

    /// The daemon (its shims and their slirp4netns too) in a network namespace of the test's,
    /// in a private mount namespace where /dev/net/tun is open to the user.
    fn start_in_netns() -> RootlessDaemon {
        RootlessDaemon::start_with(false, Some(Netns::new()))
    }

    /// With `delegate`, the daemon starts in a cgroup v2 directory of its own that root gave
    /// the user, as systemd's `Delegate=yes` does; with `netns`, in that network namespace.
    fn start_with(delegate: bool, netns: Option<Netns>) -> RootlessDaemon {
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
            netns,
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
        let env = [("XDG_RUNTIME_DIR", xdg.as_str())];
        let log = self.dir.path.join("daemon.log");
        // Each wrapper execs the next (no fork): the child's pid is the daemon's. Root
        // first moves it into the delegated cgroup, then into the network namespace.
        let procs = self.delegated.as_ref().map(|d| d.dir.clone());
        let mut wrapper: Vec<&OsStr> = Vec::new();
        if let Some(dir) = &procs {
            wrapper.extend(
                ["sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""].map(OsStr::new),
            );
            wrapper.push(dir.as_os_str());
        }
        let tun = self.dir.path.join("tun");
        let net = self
            .netns
            .as_ref()
            .map(|ns| format!("--net={}", ns.path.display()));
        if let Some(net) = &net {
            std::fs::create_dir_all(&tun).unwrap();
            wrapper.extend(
                [
                    "nsenter",
                    net,
                    "--",
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-c",
                    TUN_0666,
                    "sh",
                ]
                .map(OsStr::new),
            );
            wrapper.push(tun.as_os_str());
        }
        let child = self
            .user
            .spawn_under(&wrapper, &self.xdg, &env, &[daemon.as_os_str()], &log);
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

/// `run --memory 64m`, which must fail: its stderr.
fn refused_memory_limit(d: &RootlessDaemon) -> String {
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
    assert!(!out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
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
    let stderr = refused_memory_limit(&d);
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
    let mut d = RootlessDaemon::start_with(true, None);
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
    let stderr = refused_memory_limit(&d);
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

/// `--network host` rootless: the container sees the daemon's interfaces (no namespace).
#[test]
fn a_rootless_daemons_container_takes_the_host_network() {
    let d = RootlessDaemon::start();
    // The host's network: the daemon's interfaces, not a namespace with lo alone.
    let host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--rootfs",
        d.rootfs(),
        "--",
        "sh",
        "-c",
        "id -u; ls /sys/class/net",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"0"), "{out}");
    let mut inside: Vec<&str> = lines[1..]
        .iter()
        .flat_map(|l| l.split_whitespace())
        .collect();
    inside.sort();
    let mut host: Vec<&str> = host.iter().map(String::as_str).collect();
    host.sort();
    assert_eq!(inside, host, "{out}\n{}", d.log());
}

/// A terminal with its size, stdin through attach, and the events of the container (its exit
/// once), through a rootless daemon's API.
#[test]
fn a_rootless_daemons_containers_take_a_terminal_attach_and_events() {
    use execdriver_tests::pb;
    use tokio_stream::StreamExt;
    let d = RootlessDaemon::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = execdriver_tests::connect(&d.socket()).await;
        let id = unique("rltty");
        let mut events = c
            .events(pb::EventsRequest {
                ids: vec![id.clone()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        c.create(pb::CreateRequest {
            id: id.clone(),
            rootfs: d.rootfs().into(),
            process: Some(pb::Process {
                args: [
                    "sh",
                    "-c",
                    "id -u; tty; stty size; read line; echo got $line",
                ]
                .map(String::from)
                .to_vec(),
                tty: true,
                open_stdin: true,
                console_size: Some(pb::ConsoleSize { rows: 33, cols: 77 }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
        let out =
            execdriver_tests::attach_collect(&mut c, &id, Some(b"hello\n".to_vec()), true).await;
        // The terminal echoes what was typed ("hello") wherever it came in.
        let text = out.stdout().replace('\r', "");
        let lines: Vec<&str> = text.lines().filter(|l| *l != "hello").collect();
        assert_eq!(lines, ["0", "/dev/pts/0", "33 77", "got hello"], "{text}");
        assert_eq!(out.exit.exit_code, Some(0), "{:?}", out.exit);

        // Created, started, exited: the exit once.
        let mut seen = Vec::new();
        while let Ok(Some(Ok(e))) =
            tokio::time::timeout(Duration::from_millis(700), events.next()).await
        {
            seen.push(pb::EventType::try_from(e.r#type).unwrap_or_default());
        }
        let exits = seen.iter().filter(|t| **t == pb::EventType::Exited).count();
        assert_eq!(exits, 1, "{seen:?}");
        assert!(seen.contains(&pb::EventType::Started), "{seen:?}");
        c.delete(pb::DeleteRequest { id, force: false })
            .await
            .unwrap();
    });
}

/// What a rootless container can do is what its user can: host files the user may not write
/// stay unwritable (also to root inside), the user's own are writable, and a setuid binary
/// gains nothing: one owned by the host's root (unmapped inside) runs as its caller, one owned
/// by root inside runs as the user on the host.
#[test]
fn a_rootless_container_reaches_no_further_than_its_user() {
    let d = RootlessDaemon::start();
    let theirs = d.dir.path.join("roots");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("file"), "root's\n").unwrap();
    let own = d.dir.path.join("own");
    d.user.own_dir(&own);
    // Others may enter it: uid 1000 inside is one of the user's subordinate ids outside.
    std::fs::set_permissions(&own, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(own.join("h")).unwrap();
    let bb = own.join("h/edtest-sys");
    std::fs::copy(execdriver_tests::sys_helper(), &bb).unwrap();
    std::os::unix::fs::chown(&bb, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&bb, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    for m in ["theirs", "own"] {
        std::fs::create_dir(d.rootfs.join(m)).unwrap();
    }
    let theirs_m = format!("{}:/theirs:rw", theirs.display());
    let own_m = format!("{}:/own:rw", own.display());
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        &theirs_m,
        "-v",
        &own_m,
        "--rootfs",
        d.rootfs(),
        "--",
        "sh",
        "-c",
        "echo x >> /theirs/file 2>/dev/null && echo wrote-theirs || echo refused-theirs; \
         touch /theirs/new 2>/dev/null && echo made-theirs || echo refused-new; \
         echo mine > /own/mine && echo wrote-own; \
         mkdir /own/i && cp /own/h/edtest-sys /own/i/ && chmod 4755 /own/i/edtest-sys && echo suid-made",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["refused-theirs", "refused-new", "wrote-own", "suid-made"],
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(theirs.join("file")).unwrap(),
        "root's\n"
    );
    assert!(!theirs.join("new").exists());
    // What the container made is the user's on the host.
    let meta = std::fs::metadata(own.join("mine")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), d.user.uid);
    // Run as uid 1000 inside, setuid bits honoured (no_new_privileges off): the host-root
    // setuid binary changes nothing (host root is not mapped inside); the one root inside
    // owns makes it root inside, which is the user on the host.
    let out = d.ok(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "--security-opt",
        "no-new-privileges=false",
        "-v",
        &own_m,
        "--rootfs",
        d.rootfs(),
        "--",
        "sh",
        "-c",
        "/own/h/edtest-sys uids; /own/i/edtest-sys uids",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["1000 1000 1000 1000", "1000 0 0 0"], "{out}");
    let _ = std::fs::remove_file(&bb);
}

#[test]
fn a_rootless_daemons_container_gets_the_slirp4netns_network() {
    require_slirp4netns();
    let d = RootlessDaemon::start_in_netns();
    let ns = d.netns.as_ref().expect("in a netns");
    let server = ns.serve_loopback();
    let info = d.ok(&["info"]);
    assert!(info.contains("slirp4netns"), "{info}\n{}", d.log());

    let id = unique("rls");
    d.ok(&[
        "run",
        "-d",
        "--name",
        &id,
        "--network",
        "slirp4netns",
        "--rootfs",
        d.rootfs(),
        "--",
        "sleep",
        "1000",
    ]);
    // One slirp4netns, the user's, in the daemon's namespace (the test's), joined to the
    // container's user namespace.
    let slirps = ns.processes_named("slirp4netns");
    assert_eq!(slirps.len(), 1, "{slirps:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", slirps[0])).unwrap();
    let uids = execdriver_tests::parse_status(&status)["Uid"].clone();
    assert!(
        uids.split_whitespace().all(|u| u == d.user.uid.to_string()),
        "{uids}"
    );
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", slirps[0])).unwrap();
    assert!(cmdline.contains("--userns-path=/proc/"), "{cmdline:?}");

    let script = format!(
        "id -u; head -n 1 /proc/self/uid_map; ls /sys/class/net | tr '\\n' ' '; echo; \
         ip -o -4 addr show dev tap0; ip route; echo rootless | nc -w 5 10.0.2.2 {}",
        server.port
    );
    let out = d.ok(&["exec", &id, "--", "sh", "-c", &script]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 5, "{out}");
    assert_eq!(lines[0], "0", "{out}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &d.user.uid.to_string(), "1"], "{out}");
    let mut links: Vec<&str> = lines[2].split_whitespace().collect();
    links.sort();
    assert_eq!(links, ["lo", "tap0"], "{out}");
    assert!(lines[3].contains("inet 10.0.2.100/24"), "{out}");
    assert!(out.contains("default via 10.0.2.2 dev tap0"), "{out}");
    assert!(out.contains("pong rootless"), "{out}");
    assert_eq!(server.finish(), ["rootless"]);

    d.ok(&["delete", "-f", &id]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ns.processes_named("slirp4netns").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ns.processes_named("slirp4netns"), Vec::<i32>::new());
}
