//! The seed's nsinit CLI: exec twice into one container, `--root` keeping config and pid
//! file elsewhere, a relayed terminal, and forwarded signals.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, cgroups_under, make_rootfs, unique, CgroupGuard, TempDir};

/// A directory with a rootfs and container.json, for nsinit.
fn nsinit_dir(cgroup_parent: &str) -> TempDir {
    let dir = TempDir::new("edt-nsinit");
    make_rootfs(&dir.path);
    let config = serde_json::json!({
        "hostname": "nsbox",
        "namespaces": ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"],
        "cgroups": {"parent": cgroup_parent, "name": "c"},
        "environment": ["PATH=/bin"],
    });
    std::fs::write(dir.path.join("container.json"), config.to_string()).unwrap();
    dir
}

/// As [`nsinit_dir`], with container.json moved to a directory of its own, for `--root`:
/// (the rootfs directory, the root directory).
fn nsinit_dir_with_root(cgroup_parent: &str) -> (TempDir, TempDir) {
    let dir = nsinit_dir(cgroup_parent);
    let root = TempDir::new("edt-nsroot");
    std::fs::rename(
        dir.path.join("container.json"),
        root.path.join("container.json"),
    )
    .unwrap();
    (dir, root)
}

#[test]
fn nsinit_exec_twice_joins_and_the_pid_file_follows_the_container() {
    let parent = unique("edtest-nsinit");
    let _cleanup = CgroupGuard(parent.clone());
    let dir = nsinit_dir(&parent);
    let nsinit = bin("nsinit");
    // The first: a container that runs until /tmp/go appears.
    let first = Command::new(&nsinit)
        .args([
            "exec",
            "sh",
            "-c",
            "echo first $(hostname) $$; while [ ! -e /tmp/go ]; do sleep 0.05; done",
        ])
        .current_dir(&dir.path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = dir.path.join("pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // The second joins: it sees the first's processes and hostname.
    let second = Command::new(&nsinit)
        .args([
            "exec",
            "sh",
            "-c",
            "hostname; ps -o pid,comm | awk '$1 == 1 {print $2}'; echo $$",
        ])
        .current_dir(&dir.path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(
        second.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&second.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "nsbox");
    // PID 1 of the namespace it joined is the first's shell.
    assert_eq!(lines[1], "sh", "{text}");
    assert_ne!(lines[2], "1", "the joining process is not PID 1: {text}");
    // The first ends: its pid file goes, its processes are gone.
    std::fs::write(dir.path.join("tmp/go"), "").unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "first nsbox 1\n");
    assert!(
        !pid_file.exists(),
        "the pid file goes away with the container"
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    // A third starts a new container (PID 1 again) and returns its code.
    let third = Command::new(&nsinit)
        .args(["exec", "sh", "-c", "echo $$; exit 5"])
        .current_dir(&dir.path)
        .output()
        .unwrap();
    assert_eq!(third.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&third.stdout), "1\n");
    // A stale pid file (a pid that is not a container) is not joined.
    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
    let fourth = Command::new(&nsinit)
        .args(["exec", "sh", "-c", "echo $$"])
        .current_dir(&dir.path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&fourth.stdout), "1\n");
    assert!(!pid_file.exists());
    assert!(cgroups_under(&parent).is_empty());
}

#[test]
fn nsinit_root_keeps_config_and_pid_elsewhere() {
    let parent = unique("edtest-nsinit");
    let _cleanup = CgroupGuard(parent.clone());
    let (dir, root) = nsinit_dir_with_root(&parent);
    let out = Command::new(bin("nsinit"))
        .arg("--root")
        .arg(&root.path)
        .args([
            "exec",
            "sh",
            "-c",
            "ls /; test -e /container.json && echo leaked; true",
        ])
        .current_dir(&dir.path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("bin"),
        "the rootfs is the current directory: {text}"
    );
    assert!(!text.contains("leaked"));
    assert!(!root.path.join("pid").exists());
}

#[test]
fn nsinit_with_a_terminal_relays_it_and_forwards_signals() {
    let parent = unique("edtest-nsinit");
    let _cleanup = CgroupGuard(parent.clone());
    let dir = nsinit_dir(&parent);
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path.join("container.json")).unwrap()).unwrap();
    config["tty"] = true.into();
    std::fs::write(dir.path.join("container.json"), config.to_string()).unwrap();
    let (mut term, slave) = execdriver_tests::Terminal::open(25, 90);
    let mut child = Command::new("setsid")
        .arg("-c")
        .arg(bin("nsinit"))
        .args(["exec", "/bin/sh"])
        .current_dir(&dir.path)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut at = term.expect(0, "# ");
    // The container's own terminal, sized as ours.
    term.send("tty; stty size\r");
    at = term.expect(at, "/dev/pts/0\n25 90\n");
    // Ctrl-C goes through the relay to the container's foreground process.
    term.send("sleep 100\r");
    std::thread::sleep(Duration::from_millis(300));
    term.send("\x03");
    at = term.expect(at, "^C");
    term.send("echo status $?\r");
    at = term.expect(at, "status 130\n");
    let _ = at;
    term.send("exit 3\r");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nsinit did not exit; terminal:\n{}", term.text());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(3), "{}", term.text());
    assert!(!dir.path.join("pid").exists());
}

/// nsinit without a terminal forwards the signals it gets to the container's init, and exits
/// with the init's code; `--root DIR` reads container.json from DIR and keeps the pid file
/// there while the container runs (the rootfs is the working directory).
#[test]
fn nsinit_forwards_signals_and_keeps_the_pid_file_in_its_root() {
    use std::io::BufRead;
    let parent = unique("edtest-nsinit");
    let _cleanup = CgroupGuard(parent.clone());
    let (dir, root) = nsinit_dir_with_root(&parent);
    let mut child = Command::new(bin("nsinit"))
        .arg("--root")
        .arg(&root.path)
        .args([
            "exec",
            "sh",
            "-c",
            "trap 'echo got-term; exit 9' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .current_dir(&dir.path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    assert!(root.path.join("pid").exists(), "no pid file in --root");
    assert!(
        !dir.path.join("pid").exists(),
        "a pid file beside container.json"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got-term\n");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(9));
    assert!(
        !root.path.join("pid").exists(),
        "the pid file outlived the container"
    );
}
