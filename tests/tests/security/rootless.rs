//! `execdriverd` run by an ordinary user (made with `useradd`, with subordinate ids):
//! its socket and state under the user's `XDG_RUNTIME_DIR`, containers in a user namespace
//! (root inside is the user, the subordinate range mapped through `newuidmap`), limits
//! refused naming them, exec and logs, and a restart that finds its containers again.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, make_rootfs, unique, TempDir, TestUser};

/// A rootless daemon: its user, its runtime directory, its process.
struct RootlessDaemon {
    user: TestUser,
    dir: TempDir,
    xdg: PathBuf,
    rootfs: PathBuf,
    child: Option<Child>,
}

impl RootlessDaemon {
    fn start() -> RootlessDaemon {
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
        let child = self.user.spawn(
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
