//! Podman (conmon + the runtime under test): run and its exit codes and streams, and a
//! detached container's exec, logs, stop and rm.

use std::time::{Duration, Instant};

use execdriver_tests::engines::podman::IMAGE;
use execdriver_tests::engines::{Podman, Runtime};
use execdriver_tests::unique;

use super::lines;

variants!(podman_run, podman_exec_stop_rm);

fn podman_run(rt: &Runtime) {
    let p = Podman::start(rt);
    let out = p.run(&[
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo out; echo err >&2; echo pid=$$; exit 3",
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(lines(&out.stdout), ["out", "pid=1"], "{out:?}");
    assert!(out.stderr.contains("err"), "{out:?}");
    assert_eq!(p.run(&["--rm", IMAGE, "true"]).code, 0);
    let out = p.run(&[
        "--rm",
        "--user",
        "65534",
        "--workdir",
        "/tmp",
        IMAGE,
        "sh",
        "-c",
        "id -u; pwd",
    ]);
    assert_eq!(lines(&out.stdout), ["65534", "/tmp"], "{out:?}");
    // A command that does not exist: Podman reports 127.
    let out = p.run(&["--rm", IMAGE, "/no/such/binary"]);
    assert_eq!(out.code, 127, "{out:?}");
}

fn podman_exec_stop_rm(rt: &Runtime) {
    let p = Podman::start(rt);
    let name = unique("ed");
    let script = "echo started; trap 'echo term; exit 7' TERM; while :; do sleep 0.1; done";
    p.run(&["-d", "--name", &name, IMAGE, "sh", "-c", script])
        .ok();
    let out = p.podman(&["exec", &name, "sh", "-c", "cat /proc/1/comm; exit 4"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(lines(&out.stdout), ["sh"], "{out:?}");
    let t = Instant::now();
    p.podman(&["stop", "--time", "30", &name]).ok();
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "stop waited for the timeout"
    );
    let code = p
        .podman(&["inspect", "-f", "{{.State.ExitCode}}", &name])
        .ok();
    assert_eq!(code.trim(), "7");
    let logs = p.podman(&["logs", &name]).ok();
    assert_eq!(lines(&logs), ["started", "term"]);
    p.podman(&["rm", &name]).ok();
    assert_eq!(p.podman(&["ps", "-aq"]).ok().trim(), "");
}
