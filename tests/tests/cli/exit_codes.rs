//! Docker's exit codes: 125 when execdriverctl or the daemon fails, 126 when the command is
//! there but cannot be run (saying which path and why), 127 when it is not found, clap's 2 for
//! usage errors; `run --rm` whose delete fails never exits 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, unique, Daemon};

use super::{ctl, ok, stderr, stdout, wait_within};

/// run, create, exec and exec-sync of a command that is not there (127) or cannot be run (126):
/// a directory, a file without an x bit (found directly or in $PATH), each naming the path; and
/// what only execve finds out at start: not a program (126), a #! interpreter missing (127).
#[test]
fn a_command_not_found_is_127_one_that_cannot_run_is_126_naming_why() {
    let d = Daemon::start();
    let rootfs = d.rootfs.display().to_string();
    // 0644: no execute permission.
    std::fs::write(d.rootfs.join("bin/plain"), "echo never\n").unwrap();
    let cases = [
        ("nope", 127, "\"nope\": executable file not found in $PATH"),
        ("/no/such", 127, "stat /no/such: no such file or directory"),
        ("/etc", 126, "\"/etc\": is a directory"),
        ("/bin/plain", 126, "/bin/plain has no execute permission"),
        ("plain", 126, "/bin/plain has no execute permission"),
    ];
    for (cmd, code, says) in cases {
        let o = ctl(&d, &["run", "--rm", "--rootfs", &rootfs, cmd]);
        assert_eq!(o.status.code(), Some(code), "run {cmd}: {o:?}");
        assert!(stderr(&o).contains(says), "run {cmd}: {o:?}");
        let o = ctl(
            &d,
            &["create", "--rootfs", &rootfs, "--name", &unique("cr"), cmd],
        );
        assert_eq!(o.status.code(), Some(code), "create {cmd}: {o:?}");
    }
    assert!(
        ctl(&d, &["ls", "-q"]).stdout.is_empty(),
        "run --rm and a failed create leave nothing"
    );
    // Found and executable, but execve says no: at start, not at create.
    std::fs::write(d.rootfs.join("bin/garbage"), "not a program\n").unwrap();
    std::fs::write(d.rootfs.join("bin/orphan"), "#!/no/such/sh\n").unwrap();
    for f in ["garbage", "orphan"] {
        std::fs::set_permissions(
            d.rootfs.join("bin").join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    for (cmd, code, says) in [
        ("garbage", 126, "exec /bin/garbage: exec format error"),
        (
            "orphan",
            127,
            "exec /bin/orphan: no such file or directory (or its #! interpreter)",
        ),
    ] {
        let o = ctl(&d, &["run", "--rm", "--rootfs", &rootfs, cmd]);
        assert_eq!(o.status.code(), Some(code), "run {cmd}: {o:?}");
        assert!(stderr(&o).contains(says), "run {cmd}: {o:?}");
        let id = unique("late");
        ok(&d, &["create", "--rootfs", &rootfs, "--name", &id, cmd]);
        let o = ctl(&d, &["start", &id]);
        assert_eq!(o.status.code(), Some(code), "start {cmd}: {o:?}");
        assert!(stderr(&o).contains(says), "start {cmd}: {o:?}");
        ok(&d, &["rm", "-f", &id]);
    }
    let id = unique("codes");
    ok(
        &d,
        &[
            "run", "-d", "--name", &id, "--rootfs", &rootfs, "sleep", "1000",
        ],
    );
    for (cmd, code, says) in cases {
        for verb in ["exec", "exec-sync"] {
            let o = ctl(&d, &[verb, &id, cmd]);
            assert_eq!(o.status.code(), Some(code), "{verb} {cmd}: {o:?}");
            assert!(stderr(&o).contains(says), "{verb} {cmd}: {o:?}");
        }
    }
    // The command's own code stays its own, 126 and 127 included.
    for code in ["0", "3", "126", "127"] {
        let o = ctl(&d, &["exec", &id, "sh", "-c", &format!("exit {code}")]);
        assert_eq!(o.status.code(), Some(code.parse().unwrap()), "{o:?}");
    }
    // 125: the daemon says no (no such container), a bad flag value; 2: usage.
    let o = ctl(&d, &["state", "no-such-container"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(stderr(&o).contains("no-such-container"), "{o:?}");
    let o = ctl(&d, &["kill", "-s", "NOSIG", &id]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    let o = ctl(&d, &["run", "sh"]);
    assert_eq!(o.status.code(), Some(2), "no --rootfs: {o:?}");
    let o = ctl(&d, &["frobnicate"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    ok(&d, &["rm", "-f", &id]);
}

/// The container ends well but the daemon shuts down before `run --rm` deletes it: the delete
/// fails, which run says (naming the container left behind) and exits 125, not 0.
#[test]
fn run_rm_whose_delete_fails_says_why_and_fails() {
    let mut d = Daemon::start_with(&["--shutdown-grace", "5"]);
    let id = unique("rmfail");
    let child = Command::new(bin("execdriverctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["run", "--rm", "--name", &id, "--rootfs"])
        .arg(&d.rootfs)
        .args(["sh", "-c", "sleep 2; echo done"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once it runs, the daemon is told to stop: it finishes the attach, refuses the delete.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.root.join(&id).join("shim.pid").exists() {
        assert!(Instant::now() < deadline, "{id} never started: {}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(d.pid().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let o = wait_within(child, Duration::from_secs(30), "run --rm");
    assert_eq!(stdout(&o), "done\n", "{o:?}");
    assert_eq!(o.status.code(), Some(125), "{o:?}\n{}", d.log());
    assert!(
        stderr(&o).contains(&format!("--rm: deleting {id} failed, it is left behind")),
        "{o:?}"
    );
    // It was left behind indeed: the next daemon has it, and deletes it.
    d.stop_daemon(libc::SIGTERM);
    d.spawn();
    assert_eq!(ok(&d, &["ls", "-q"]), format!("{id}\n"));
    ok(&d, &["rm", &id]);
}
