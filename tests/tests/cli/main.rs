//! `execdriverctl` as Docker users' hands expect it (the project's issue 16): exit codes
//! (`exit_codes`), refusals and Docker's habits (`habits`), `list -q`, `--format` and
//! `logs --tail` (`output`), `--help` (`help`), and every example of the README's "Using it"
//! run as written (`readme`).
//!
//! This file holds what they share: running execdriverctl against a test's daemon, with a
//! time limit.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, Daemon};

mod exit_codes;
mod habits;
mod help;
mod output;
mod readme;

/// `execdriverctl --socket SOCKET ARGS`, stdin from /dev/null, ended (and failed) after 60 s.
fn ctl_on(socket: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("execdriverctl"));
    cmd.arg("--socket").arg(socket).args(args);
    output_within(&mut cmd, Duration::from_secs(60))
}

/// `execdriverctl ARGS` against `d`.
fn ctl(d: &Daemon, args: &[&str]) -> Output {
    ctl_on(&d.socket, args)
}

/// `execdriverctl ARGS` against `d`, which must succeed; its stdout.
fn ok(d: &Daemon, args: &[&str]) -> String {
    let o = ctl(d, args);
    assert!(o.status.success(), "execdriverctl {args:?}: {o:?}");
    stdout(&o)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `cmd` (stdin /dev/null unless set) in a process group of its own; panics, after
/// killing the group, if it has not ended within `limit`.
fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn");
    wait_within(child, limit, &format!("{cmd:?}"))
}

/// Waits for `child` (the leader of its process group); kills the group and panics after
/// `limit`.
fn wait_within(child: std::process::Child, limit: Duration, what: &str) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let start = Instant::now();
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let out = rx.recv().ok().and_then(Result::ok);
            panic!("{what} did not end within {:?}: {out:?}", start.elapsed());
        }
    }
}
