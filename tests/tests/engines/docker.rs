//! Docker (dockerd + containerd + containerd-shim-runc-v2 + the runtime under test): run and
//! its exit codes and streams, the process settings, a detached container's exec, logs, stop,
//! kill, pause and rm, a terminal, limits (memory, pids), capabilities, a read-only root, and
//! networks (none; a bridge inside the test's own network namespace).

use std::process::Stdio;
use std::time::{Duration, Instant};

use execdriver_tests::engines::docker::IMAGE;
use execdriver_tests::engines::{Docker, Runtime};
use execdriver_tests::{unique, Terminal};

use super::{lines, wait_for_size};

variants!(
    run_exit_codes_and_streams,
    run_process_settings,
    detached_exec_logs_stop,
    kill_and_rm_force,
    pause_unpause,
    interactive_tty,
    memory_limit,
    pids_limit,
    cap_drop,
    read_only_root,
    network_none,
    network_bridge,
);

fn run_exit_codes_and_streams(rt: &Runtime) {
    let d = Docker::start(rt);
    let out = d.run(&["--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "out\n", "{out:?}");
    assert!(out.stderr.contains("err"), "{out:?}");
    assert_eq!(d.run(&["--rm", IMAGE, "true"]).code, 0);
    assert_eq!(d.run(&["--rm", IMAGE, "false"]).code, 1);
    // Docker maps a runtime's "no such file" for the command to 127.
    let out = d.run(&["--rm", IMAGE, "/no/such/binary"]);
    assert_eq!(out.code, 127, "{out:?}");
    // Standard input, to the end.
    let mut all = vec![
        "run",
        "--runtime",
        "edtest",
        "--rm",
        "-i",
        IMAGE,
        "sh",
        "-c",
    ];
    all.push("wc -l; cat /proc/1/cmdline | tr '\\0' ' '");
    let out = d.docker_input(&all, b"a\nb\nc\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        lines(&out.stdout),
        ["3", "sh -c wc -l; cat /proc/1/cmdline | tr '\\0' ' '"]
    );
}

fn run_process_settings(rt: &Runtime) {
    let d = Docker::start(rt);
    let script = "echo pid=$$; id -u; id -g; id -G; pwd; echo $FOO; hostname; umask; \
                  cat /proc/self/status | grep NoNewPrivs";
    let out = d.run(&[
        "--rm",
        "--user",
        "65534:65534",
        "--group-add",
        "5",
        "--workdir",
        "/tmp",
        "--env",
        "FOO=bar baz",
        "--hostname",
        "edhost",
        "--security-opt",
        "no-new-privileges",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let l = lines(&out.stdout);
    assert_eq!(
        l[..7],
        ["pid=1", "65534", "65534", "65534 5", "/tmp", "bar baz", "edhost"]
    );
    assert_eq!(l[7], "0022", "{out:?}");
    assert!(l[8].ends_with("\t1") || l[8].ends_with(" 1"), "{out:?}");
}

fn detached_exec_logs_stop(rt: &Runtime) {
    let d = Docker::start(rt);
    let name = unique("ed");
    let script = "echo started; trap 'echo term; exit 7' TERM; while :; do sleep 0.1; done";
    d.run(&["-d", "--name", &name, IMAGE, "sh", "-c", script])
        .ok();
    assert_eq!(d.inspect(&name, "{{.State.Running}}"), "true");
    // exec: a process in the container's namespaces, its own exit code, its stdin.
    let out = d.docker(&["exec", &name, "sh", "-c", "cat /proc/1/comm; hostname"]);
    assert_eq!(out.code, 0, "{out:?}");
    let hostname = d.inspect(&name, "{{.Config.Hostname}}");
    assert_eq!(lines(&out.stdout), ["sh", hostname.as_str()]);
    assert_eq!(d.docker(&["exec", &name, "sh", "-c", "exit 5"]).code, 5);
    let out = d.docker_input(&["exec", "-i", &name, "tr", "a-z", "A-Z"], b"shout\n");
    assert_eq!(out.stdout, "SHOUT\n", "{out:?}");
    let out = d.docker(&[
        "exec",
        "--user",
        "65534",
        "-w",
        "/tmp",
        &name,
        "sh",
        "-c",
        "id -u; pwd",
    ]);
    assert_eq!(lines(&out.stdout), ["65534", "/tmp"], "{out:?}");
    assert!(d.docker(&["logs", &name]).ok().contains("started"));
    // stop: SIGTERM, which the container's trap answers.
    let t = Instant::now();
    d.docker(&["stop", "--time", "30", &name]).ok();
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "stop waited for the timeout"
    );
    assert_eq!(d.inspect(&name, "{{.State.Running}}"), "false");
    assert_eq!(d.inspect(&name, "{{.State.ExitCode}}"), "7");
    assert_eq!(lines(&d.docker(&["logs", &name]).ok()), ["started", "term"]);
    // A stopped container starts again.
    d.docker(&["start", &name]).ok();
    assert_eq!(d.inspect(&name, "{{.State.Running}}"), "true");
    d.docker(&["stop", &name]).ok();
    d.docker(&["rm", &name]).ok();
    assert_eq!(d.docker(&["ps", "-aq"]).ok().trim(), "");
}

fn kill_and_rm_force(rt: &Runtime) {
    let d = Docker::start(rt);
    let name = unique("ed");
    d.run(&["-d", "--name", &name, IMAGE, "sleep", "1000"]).ok();
    d.docker(&["kill", &name]).ok();
    assert_eq!(d.docker(&["wait", &name]).ok().trim(), "137");
    assert_eq!(d.inspect(&name, "{{.State.ExitCode}}"), "137");
    // A signal of the caller's choice reaches the container's init.
    let trap = "trap 'exit 42' USR1; while :; do sleep 0.1; done";
    let n2 = unique("ed");
    d.run(&["-d", "--name", &n2, IMAGE, "sh", "-c", trap]).ok();
    d.docker(&["kill", "--signal", "USR1", &n2]).ok();
    assert_eq!(d.docker(&["wait", &n2]).ok().trim(), "42");
    // rm -f of a running container: gone, and so are its processes.
    let n3 = unique("ed");
    d.run(&["-d", "--name", &n3, IMAGE, "sleep", "1000"]).ok();
    let pid = d.inspect(&n3, "{{.State.Pid}}");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    d.docker(&["rm", "-f", &n3]).ok();
    let gone = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .map(|c| !c.starts_with("sleep"))
        .unwrap_or(true);
    assert!(gone, "the container's sleep (pid {pid}) survived rm -f");
    d.docker(&["rm", &name, &n2]).ok();
    assert_eq!(d.docker(&["ps", "-aq"]).ok().trim(), "");
}

fn pause_unpause(rt: &Runtime) {
    let d = Docker::start(rt);
    let name = unique("ed");
    let ticker = "while :; do echo tick; sleep 0.1; done";
    d.run(&["-d", "--name", &name, IMAGE, "sh", "-c", ticker])
        .ok();
    let ticks = || lines(&d.docker(&["logs", &name]).ok()).len();
    std::thread::sleep(Duration::from_millis(500));
    d.docker(&["pause", &name]).ok();
    assert_eq!(d.inspect(&name, "{{.State.Paused}}"), "true");
    // Frozen: the ticker prints nothing more, and exec is refused.
    let before = ticks();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(ticks(), before, "the container ran while paused");
    assert_ne!(d.docker(&["exec", &name, "true"]).code, 0);
    d.docker(&["unpause", &name]).ok();
    assert_eq!(d.inspect(&name, "{{.State.Paused}}"), "false");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        ticks() > before,
        "the container did not run again after unpause"
    );
    assert_eq!(d.docker(&["exec", &name, "echo", "back"]).ok(), "back\n");
    d.docker(&["rm", "-f", &name]).ok();
}

fn interactive_tty(rt: &Runtime) {
    let d = Docker::start(rt);
    let (mut term, slave) = Terminal::open(30, 100);
    let slave = std::fs::File::from(slave);
    let mut child = d
        .command()
        .args(["run", "--runtime", "edtest", "--rm", "-it", IMAGE, "sh"])
        .stdin(Stdio::from(slave.try_clone().expect("pty")))
        .stdout(Stdio::from(slave.try_clone().expect("pty")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("docker run -it");
    term.send("echo $((6*7))\n");
    term.expect(0, "42");
    let at = wait_for_size(&mut term, 30, 100);
    // The marker is quoted so the terminal's echo of the line does not match it.
    term.send("tty; echo 'do''ne'\n");
    let end = term.expect(at, "done\n");
    let text = term.text();
    assert!(text[at..end].contains("/dev/pts/0"), "{text}");
    term.send("exit 3\n");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("docker run -it did not end: {}", term.text());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(3), "{}", term.text());
}

fn memory_limit(rt: &Runtime) {
    let d = Docker::start(rt);
    let out = d.run(&[
        "--rm",
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        IMAGE,
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    assert_eq!(out.stdout.trim(), "33554432", "{out:?}");
    // The kernel holds the container to it: 64 MiB in a tmpfs (charged to the container's
    // memory cgroup) gets the writer OOM-killed.
    let name = unique("ed");
    let out = d.run(&[
        "--name",
        &name,
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        "--shm-size",
        "128m",
        IMAGE,
        "dd",
        "if=/dev/zero",
        "of=/dev/shm/fill",
        "bs=1M",
        "count=64",
    ]);
    assert_eq!(out.code, 137, "{out:?}");
    assert_eq!(d.inspect(&name, "{{.State.OOMKilled}}"), "true");
}

fn pids_limit(rt: &Runtime) {
    let d = Docker::start(rt);
    // Builtins read the cgroup files, so that no fork is needed to report. A subshell starts
    // sleeps until a fork fails (the subshell then exits with "can't fork").
    let script = "read max < /sys/fs/cgroup/pids/pids.max; echo max=$max; \
                  ( for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; \
                    do sleep 30 & done ) 2>&1; \
                  read cur < /sys/fs/cgroup/pids/pids.current; echo cur=$cur";
    let out = d.run(&["--rm", "--pids-limit", "8", IMAGE, "sh", "-c", script]);
    let l = lines(&out.stdout);
    assert_eq!(l.first(), Some(&"max=8"), "{out:?}");
    assert!(out.stdout.contains("can't fork"), "no fork failed: {out:?}");
    let cur: u32 = l
        .last()
        .and_then(|c| c.strip_prefix("cur="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(99);
    assert!(
        (2..=8).contains(&cur),
        "{cur} processes under --pids-limit 8: {out:?}"
    );
}

fn cap_drop(rt: &Runtime) {
    let d = Docker::start(rt);
    let script = "touch /tmp/f && chown 65534 /tmp/f && echo chowned; \
                  grep -E '^Cap(Eff|Bnd)' /proc/self/status";
    let out = d.run(&["--rm", IMAGE, "sh", "-c", script]);
    assert!(out.stdout.contains("chowned"), "{out:?}");
    let out = d.run(&["--rm", "--cap-drop", "CHOWN", IMAGE, "sh", "-c", script]);
    assert!(!out.stdout.contains("chowned"), "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
    for l in lines(&out.stdout) {
        let mask = u64::from_str_radix(l.rsplit('\t').next().unwrap_or(""), 16).unwrap_or(1);
        assert_eq!(mask & 1, 0, "CAP_CHOWN still in {l}");
    }
    let out = d.run(&[
        "--rm",
        "--cap-drop",
        "ALL",
        IMAGE,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(out.stdout.trim().ends_with("0000000000000000"), "{out:?}");
}

fn read_only_root(rt: &Runtime) {
    let d = Docker::start(rt);
    let script = "touch /f 2>&1; touch /tmp/f && echo tmp-ok; grep ' / ' /proc/mounts";
    let out = d.run(&[
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    assert!(out.stdout.contains("Read-only file system"), "{out:?}");
    assert!(out.stdout.contains("tmp-ok"), "{out:?}");
    assert!(
        out.stdout.contains(" ro,") || out.stdout.contains(" ro "),
        "{out:?}"
    );
}

fn network_none(rt: &Runtime) {
    let d = Docker::start(rt);
    let out = d.run(&["--rm", "--network", "none", IMAGE, "cat", "/proc/net/dev"]);
    let ifaces: Vec<&str> = lines(&out.stdout)
        .iter()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(ifaces, ["lo"], "{out:?}");
}

fn network_bridge(rt: &Runtime) {
    let d = Docker::start_in_netns(rt);
    // The bridge's address, in the test's namespace.
    let addr = d.netns().ip(&["-4", "-o", "addr", "show", "docker0"]);
    let gw = addr
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("docker0 has no address: {addr}"))
        .to_owned();
    let script = format!("ip -4 -o addr show eth0; ip route; ping -c 1 -W 5 {gw}");
    let out = d.run(&["--rm", "--network", "bridge", IMAGE, "sh", "-c", &script]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("inet "), "{out:?}");
    assert!(out.stdout.contains(&format!("default via {gw}")), "{out:?}");
    assert!(out.stdout.contains("1 packets received"), "{out:?}");
}
