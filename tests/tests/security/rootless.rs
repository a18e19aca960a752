//! `execdriverd` run by an ordinary user (made with `useradd`, with subordinate ids):
//! its socket and state under the user's `XDG_RUNTIME_DIR`, containers in a user namespace
//! (root inside is the user, the subordinate range mapped through `newuidmap`), limits
//! refused naming them, exec and logs, a restart that finds its containers again, and the
//! slirp4netns network (with the daemon in a network namespace of the test's).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, make_rootfs, require_slirp4netns, unique, Netns, TempDir, TestUser};

/// A rootless daemon: its user, its runtime directory, its process, and the network namespace
/// of the test's it runs in (with [`RootlessDaemon::start_in_netns`]).
struct RootlessDaemon {
    user: TestUser,
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
        Self::start_with(None)
    }

    /// The daemon (its shims and their slirp4netns too) in a network namespace of the test's,
    /// in a private mount namespace where /dev/net/tun is open to the user.
    fn start_in_netns() -> RootlessDaemon {
        Self::start_with(Some(Netns::new()))
    }

    fn start_with(netns: Option<Netns>) -> RootlessDaemon {
        let user = TestUser::new(true);
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
        let child = match &self.netns {
            None => self
                .user
                .spawn(&self.xdg, &env, &[daemon.as_os_str()], &log),
            Some(ns) => {
                // nsenter and unshare exec (no fork), and so do sh and setpriv: the child's
                // pid is the daemon's.
                let tun = self.dir.path.join("tun");
                std::fs::create_dir_all(&tun).unwrap();
                let net = format!("--net={}", ns.path.display());
                let wrapper: Vec<&OsStr> = [
                    "nsenter",
                    &net,
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
                .into_iter()
                .map(OsStr::new)
                .chain([tun.as_os_str()])
                .collect();
                self.user
                    .spawn_under(&wrapper, &self.xdg, &env, &[daemon.as_os_str()], &log)
            }
        };
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
