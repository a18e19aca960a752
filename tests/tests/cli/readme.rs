//! Every example of the README's "Using it" section, run in order and as written: the lines
//! are read from README.md itself, so the two cannot drift apart. What the test swaps is only
//! what must be private to it: the README's paths (`/path/to/rootfs`, `/srv/data`, ...) for its
//! own, and the daemon's root, socket and cgroup parent (an `execdriverd ... &` line starts
//! the test's daemon with the line's other flags; one with `--bridge` in a network namespace
//! of the test's own). A line exits 0 unless its comment says "exit code N"; `-it` lines run
//! on a terminal the test types `exit` into; `events` lines stream until the test's Ctrl-C.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, Daemon, Netns, TempDir, Terminal};

use super::{output_within, stderr, stdout};

/// The README's shell lines of its "Using it" section: each ```sh block's lines, a line ended
/// by `\` joined with the next, comment-only and empty lines left out.
fn using_it() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let start = readme
        .find("\n## Using it\n")
        .expect("a \"## Using it\" section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut lines = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for l in section.lines() {
        if l.starts_with("```") {
            in_block = l == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        match l.strip_suffix('\\') {
            Some(part) => pending.push_str(part),
            None => {
                pending.push_str(l);
                let line = std::mem::take(&mut pending);
                if !split_comment(&line).0.trim().is_empty() {
                    lines.push(line);
                }
            }
        }
    }
    lines
}

/// A shell line's command and its comment (from a `#` outside quotes that starts a word).
fn split_comment(line: &str) -> (&str, &str) {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return (&line[..i], &line[i + 1..]),
            _ => {}
        }
        prev = c;
    }
    (line, "")
}

/// "exit code N" in a comment: the code the line exits with.
fn expected_code(comment: &str) -> i32 {
    comment
        .split("exit code ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The test's stand-ins for the README's paths.
struct Places {
    data: TempDir,
    profile: PathBuf,
    netns: Netns,
}

impl Places {
    fn new() -> Places {
        let data = TempDir::new("edt-readme-data");
        std::fs::write(data.path.join("index.html"), "hello\n").unwrap();
        let profile = data.path.join("profile.json");
        std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        Places {
            data,
            profile,
            netns: Netns::new(),
        }
    }

    /// The line with the README's paths swapped for the test's.
    fn swap(&self, line: &str, d: &Daemon) -> String {
        self.swap_paths(line)
            .replace("/path/to/rootfs", &d.rootfs.display().to_string())
            .replace("/run/execdriverd.sock", &d.socket.display().to_string())
    }

    /// The line with the README's paths that are no daemon's swapped for the test's.
    fn swap_paths(&self, line: &str) -> String {
        line.replace("/path/to/profile.json", &self.profile.display().to_string())
            .replace("/srv/data", &self.data.path.display().to_string())
            .replace(
                "/var/run/netns/blue",
                &self.netns.path.display().to_string(),
            )
    }
}

/// `execdriverctl` as the lines call it: a script first in PATH adding the daemon's socket.
fn wrapper(dir: &Path) -> PathBuf {
    let bindir = dir.join("bin");
    std::fs::create_dir_all(&bindir).unwrap();
    let script = bindir.join("execdriverctl");
    let mut f = std::fs::File::create(&script).unwrap();
    writeln!(
        f,
        "#!/bin/sh\nexec '{}' --socket \"$EDTEST_SOCKET\" \"$@\"",
        bin("execdriverctl").display()
    )
    .unwrap();
    drop(f);
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bindir
}

/// The flags of an `execdriverd` line (as the shell splits them) less its root, socket and
/// cgroup parent (the test's own are given) and a trailing `&`.
fn daemon_flags(cmd: &str) -> Vec<String> {
    let rest = cmd
        .strip_prefix("execdriverd ")
        .unwrap_or_else(|| panic!("not a daemon line: {cmd}"));
    let rest = rest.trim().trim_end_matches('&');
    let o = Command::new("sh")
        .args(["-c", &format!("printf '%s\\0' {rest}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{cmd}: {o:?}");
    let words: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .split_terminator('\0')
        .map(str::to_owned)
        .collect();
    let mut flags = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        if matches!(w.as_str(), "--root" | "--socket" | "--cgroup-parent") {
            it.next();
        } else {
            flags.push(w);
        }
    }
    flags
}

#[test]
fn the_readme_examples_run_as_written() {
    let lines = using_it();
    assert!(lines.len() >= 30, "the section shrank? {lines:#?}");
    let places = Places::new();
    let scratch = TempDir::new("edt-readme");
    let path = format!(
        "{}:{}",
        wrapper(&scratch.path).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut daemon: Option<Daemon> = None;
    let mut ran = 0;
    for line in &lines {
        let (cmd, comment) = split_comment(line);
        let cmd = cmd.trim();
        if cmd.starts_with("execdriverd ") {
            let flags = daemon_flags(&places.swap_paths(cmd));
            if flags.iter().any(|f| f == "--cleanup") {
                // Refused while a daemon runs on the root: the daemon stops first.
                let mut d = daemon.take().expect("a daemon ran before --cleanup");
                d.stop_daemon(libc::SIGTERM);
                let mut c = match d.netns_opt() {
                    Some(ns) => ns.command(bin("execdriverd")),
                    None => Command::new(bin("execdriverd")),
                };
                c.args(&flags)
                    .arg("--root")
                    .arg(&d.root)
                    .args(["--cgroup-parent", &d.cgroup_parent]);
                let o = output_within(&mut c, Duration::from_secs(60));
                assert!(o.status.success(), "{line}: {o:?}");
                daemon = Some(d);
            } else {
                let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                match daemon.as_mut() {
                    // In the foreground: in place of the running one, on its root.
                    Some(d) if !cmd.ends_with('&') => d.restart_with(&flags),
                    _ => {
                        drop(daemon.take());
                        daemon = Some(if flags.contains(&"--bridge") {
                            Daemon::start_in_netns(&flags, &[])
                        } else {
                            Daemon::start_with(&flags)
                        });
                    }
                }
            }
            ran += 1;
            continue;
        }
        let d = daemon.as_ref().expect("an execdriverd line comes first");
        let script = places.swap(cmd, d);
        let mut sh = Command::new("sh");
        sh.args(["-c", &script])
            .env("PATH", &path)
            .env("EDTEST_SOCKET", &d.socket);
        let (code, out, err) = if cmd.contains(" -it ") {
            interactive(sh, line)
        } else if cmd.contains(" events") {
            streaming(sh, line)
        } else {
            let o = output_within(&mut sh, Duration::from_secs(60));
            (o.status.code(), stdout(&o), stderr(&o))
        };
        assert_eq!(
            code,
            Some(expected_code(comment)),
            "README line {line:?} as run: {script:?}\nstdout: {out}\nstderr: {err}\ndaemon log:\n{}",
            d.log()
        );
        assert!(
            err.is_empty(),
            "README line {line:?} wrote on stderr: {err}\nstdout: {out}"
        );
        ran += 1;
    }
    assert_eq!(ran, lines.len());
}

/// An `-it` line on a terminal: once the shell prompts, `exit` is typed.
fn interactive(sh: Command, line: &str) -> (Option<i32>, String, String) {
    let (mut term, slave) = Terminal::open(24, 80);
    // setsid -c: a session whose controlling terminal is the slave, as a user's shell has.
    let mut c = Command::new("setsid");
    c.arg("-c").arg(sh.get_program()).args(sh.get_args());
    for (k, v) in sh.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let child = c
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    term.expect(0, "# ");
    term.send("exit\r");
    let o = super::wait_within(child, Duration::from_secs(30), line);
    let text = term.text();
    let err = if text.contains("execdriverctl:") {
        text.clone()
    } else {
        String::new()
    };
    (o.status.code(), text, err)
}

/// A line that streams until interrupted: still running after a second, it gets Ctrl-C
/// (SIGINT to its process group) and ends; then it counts as exit 0.
fn streaming(mut sh: Command, line: &str) -> (Option<i32>, String, String) {
    let mut child = sh
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let o = child.wait_with_output().unwrap();
            panic!("{line} ended by itself ({status}): {o:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGINT).unwrap();
    let o = super::wait_within(child, Duration::from_secs(10), line);
    use std::os::unix::process::ExitStatusExt;
    let interrupted =
        o.status.signal() == Some(libc::SIGINT) || matches!(o.status.code(), Some(0 | 130));
    assert!(interrupted, "{line}: {o:?}");
    (Some(0), stdout(&o), stderr(&o))
}
