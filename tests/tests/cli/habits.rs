//! What Docker refuses at once (-it without a terminal, --cpus beyond the host's, an unknown
//! capability), how exec-sync says it timed out, the hint when no daemon listens, and Docker's
//! spellings: --name, -e, -w (made when missing), -v, the command after the options with or
//! without `--`, several ids for delete, kill and stop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, unique, Daemon, TempDir};

use super::{ctl, ctl_on, ok, output_within, stderr, stdout};

/// `-it` with stdin a file, /dev/null or a pipe: refused at once in Docker's words, for run,
/// exec and attach, and nothing is created (before, `exec -it ID sh < /dev/null` hung).
#[test]
fn it_without_a_terminal_is_refused_at_once() {
    let d = Daemon::start();
    let rootfs = d.rootfs.display().to_string();
    let id = unique("tty");
    ok(
        &d,
        &[
            "run", "-d", "--name", &id, "--rootfs", &rootfs, "sleep", "1000",
        ],
    );
    let cases: [&[&str]; 4] = [
        &["run", "-it", "--rm", "--rootfs", &rootfs, "sh"],
        &["run", "-i", "-t", "--rootfs", &rootfs, "--", "sh"],
        &["exec", "-it", &id, "--", "sh"],
        &["attach", "-it", &id],
    ];
    for args in cases {
        for stdin in [Stdio::null(), Stdio::piped()] {
            let t = Instant::now();
            let mut cmd = Command::new(bin("execdriverctl"));
            cmd.arg("--socket").arg(&d.socket).args(args).stdin(stdin);
            let o = output_within(&mut cmd, Duration::from_secs(20));
            assert_eq!(o.status.code(), Some(125), "{args:?}: {o:?}");
            assert_eq!(
                stderr(&o),
                "execdriverctl: the input device is not a TTY\n",
                "{args:?}"
            );
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{args:?}: {:?}",
                t.elapsed()
            );
        }
    }
    assert_eq!(
        ok(&d, &["ls", "-q"]),
        format!("{id}\n"),
        "nothing was created"
    );
    // -i alone (stdin forwarded, no terminal) and -t alone (Docker allows both) still work.
    assert_eq!(ok(&d, &["exec", "-i", &id, "cat"]), "");
    assert_eq!(
        ok(&d, &["exec", "-t", &id, "echo", "t"]).replace('\r', ""),
        "t\n"
    );
    ok(&d, &["rm", "-f", &id]);
}

/// --cpus beyond the host's CPUs (as Info counts them) is refused in Docker's words, by run,
/// create and update, before anything is made or changed; up to the host's is taken.
#[test]
fn cpus_beyond_the_hosts_are_refused() {
    let d = Daemon::start();
    let rootfs = d.rootfs.display().to_string();
    let info: serde_json::Value = serde_json::from_str(&ok(&d, &["--json", "info"])).unwrap();
    let cpus = info["cpus"].as_u64().expect("info --json says cpus");
    let online = std::thread::available_parallelism().unwrap().get() as u64;
    assert!(cpus >= online, "info says {cpus} CPUs, we have {online}");
    let too_many = (cpus + 1).to_string();
    let says = format!(
        "--cpus {too_many}: range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} \
         CPUs available"
    );
    for verb in ["run", "create"] {
        let o = ctl(
            &d,
            &[verb, "--rootfs", &rootfs, "--cpus", &too_many, "true"],
        );
        assert_eq!(o.status.code(), Some(125), "{o:?}");
        assert!(stderr(&o).contains(&says), "{o:?}");
    }
    assert_eq!(ok(&d, &["ls", "-q"]), "", "nothing was created");
    let id = unique("cpus");
    let all = cpus.to_string();
    ok(
        &d,
        &[
            "run", "-d", "--name", &id, "--rootfs", &rootfs, "--cpus", &all, "sleep", "1000",
        ],
    );
    let o = ctl(&d, &["update", "--cpus", &too_many, &id]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(stderr(&o).contains(&says), "{o:?}");
    let r: serde_json::Value =
        serde_json::from_str(&ok(&d, &["--json", "update", "--cpus", "0.5", &id])).unwrap();
    assert_eq!(r["cpu_quota"], 50_000, "{r}");
    ok(&d, &["rm", "-f", &id]);
}

/// An unknown capability is named by its flag, not by the request's field.
#[test]
fn an_unknown_capability_names_its_flag() {
    let d = Daemon::start();
    let rootfs = d.rootfs.display().to_string();
    for (flag, cap) in [("--cap-add", "BOGUS"), ("--cap-drop", "NOT_ONE")] {
        let o = ctl(
            &d,
            &[
                "run",
                "--rm",
                "--rootfs",
                &rootfs,
                "--cap-add",
                "SYS_PTRACE",
                flag,
                cap,
                "true",
            ],
        );
        assert_eq!(o.status.code(), Some(125), "{o:?}");
        assert_eq!(
            stderr(&o),
            format!("execdriverctl: {flag} {cap}: unknown capability\n")
        );
    }
    // Docker's spellings still pass.
    ok(
        &d,
        &[
            "run",
            "--rm",
            "--rootfs",
            &rootfs,
            "--cap-add",
            "cap_net_admin",
            "true",
        ],
    );
}

/// exec-sync killed by its --timeout says so and exits 124 (timeout(1)'s), with what the
/// command printed before.
#[test]
fn exec_sync_says_it_timed_out() {
    let d = Daemon::start();
    let rootfs = d.rootfs.display().to_string();
    let id = unique("tmo");
    ok(
        &d,
        &[
            "run", "-d", "--name", &id, "--rootfs", &rootfs, "sleep", "1000",
        ],
    );
    let t = Instant::now();
    let o = ctl(
        &d,
        &[
            "exec-sync",
            "--timeout",
            "1",
            &id,
            "sh",
            "-c",
            "echo started; sleep 30",
        ],
    );
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert_eq!(o.status.code(), Some(124), "{o:?}");
    assert_eq!(stdout(&o), "started\n");
    assert!(
        stderr(&o).contains("exec-sync: timed out after --timeout 1 s; the command was killed"),
        "{o:?}"
    );
    let o = ctl(
        &d,
        &["exec-sync", "--timeout", "5", &id, "sh", "-c", "exit 124"],
    );
    assert_eq!(o.status.code(), Some(124));
    assert!(!stderr(&o).contains("timed out"), "its own 124: {o:?}");
    ok(&d, &["rm", "-f", &id]);
}

/// No daemon on the socket: the message asks whether it runs and names the socket; 125.
#[test]
fn a_missing_daemon_is_hinted_at() {
    let dir = TempDir::new("edt-nosock");
    let socket = dir.path.join("none.sock");
    let o = ctl_on(&socket, &["ls"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert_eq!(
        stderr(&o),
        format!(
            "execdriverctl: is execdriverd running? socket {}: No such file or directory\n",
            socket.display()
        )
    );
    // A socket nobody listens on.
    let _l = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    drop(_l);
    let o = ctl_on(&socket, &["info"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(
        stderr(&o).contains("is execdriverd running? socket"),
        "{o:?}"
    );
}

/// --name, -e, -w (made when the rootfs lacks it), -v; the command after the options with or
/// without `--` (its own dashed flags untouched); delete, kill and stop of several ids, each
/// reported, the exit 125 when one failed; ls and rm.
#[test]
fn dockers_spellings() {
    let d = Daemon::start();
    let rootfs = d.rootfs.display().to_string();
    let data = TempDir::new("edt-v");
    std::fs::write(data.path.join("f"), "from-host").unwrap();
    let vol = format!("{}:/data:ro", data.path.display());
    let id = unique("spell");
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "--name",
            &id,
            "-e",
            "A=1",
            "-w",
            "/made/here",
            "-v",
            &vol,
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            "echo $A; pwd; cat /data/f; echo; ls -ld /made/here",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["1", "/made/here", "from-host"], "{out}");
    assert!(lines[3].starts_with("drwxr-xr-x"), "{out}");
    assert!(d.rootfs.join("made/here").is_dir(), "made in the rootfs");
    // An existing cwd is left as it is; a file there is chdir's error, not replaced.
    std::fs::write(d.rootfs.join("tmp/file"), "").unwrap();
    let o = ctl(
        &d,
        &["run", "--rm", "-w", "/tmp/file", "--rootfs", &rootfs, "pwd"],
    );
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    assert!(d.rootfs.join("tmp/file").is_file());

    let ids: Vec<String> = (0..3).map(|_| unique("many")).collect();
    for i in &ids {
        ok(
            &d,
            &[
                "run", "-d", "--name", i, "--rootfs", &rootfs, "sleep", "1000",
            ],
        );
    }
    let one = &ids[0];
    // The command's flags are its own, with or without "--".
    assert_eq!(
        ok(&d, &["exec", one, "sh", "-c", "echo $0 $1", "-x", "--rm"]),
        "-x --rm\n"
    );
    assert_eq!(
        ok(&d, &["exec", "-e", "K=v", one, "--", "sh", "-c", "echo $K"]),
        "v\n"
    );
    assert_eq!(ok(&d, &["exec-sync", one, "ls", "-d", "/tmp"]), "/tmp\n");
    // A mistyped flag before the command is a usage error, not a command.
    let o = ctl(&d, &["run", "--rootfs", &rootfs, "--hostnme", "x", "true"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");

    let o = ctl(&d, &["kill", "-s", "KILL", &ids[1], "no-such-one", &ids[2]]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert_eq!(stdout(&o), format!("{}\n{}\n", ids[1], ids[2]));
    assert!(stderr(&o).contains("no-such-one"), "{o:?}");
    for killed in &ids[1..] {
        let o = ctl(&d, &["wait", killed]);
        assert_eq!(
            (o.status.code(), stdout(&o).as_str()),
            (Some(137), "137\n"),
            "{o:?}"
        );
    }
    let o = ctl(&d, &["stop", "-t", "1", one, "no-such-one"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(stdout(&o).starts_with(&format!("{one}: ")), "{o:?}");
    let mut listed: Vec<String> = ok(&d, &["ls", "-q"]).lines().map(str::to_owned).collect();
    listed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(listed, want);
    let o = ctl(&d, &["rm", &ids[0], "no-such-one", &ids[1], &ids[2]]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert_eq!(stdout(&o), format!("{}\n{}\n{}\n", ids[0], ids[1], ids[2]));
    assert_eq!(ok(&d, &["list", "-q"]), "", "every other one deleted");
}
