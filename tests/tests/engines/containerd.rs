//! containerd through `ctr run --rm` (containerd-shim-runc-v2 + the runtime under test): the
//! container's output and exit code; a detached task's exec, kill and delete.

use execdriver_tests::engines::{Containerd, Runtime};
use execdriver_tests::unique;

use super::lines;

variants!(ctr_run, ctr_task_exec_kill);

fn ctr_run(rt: &Runtime) {
    let c = Containerd::start(rt);
    let out = c.run(
        &["--rm"],
        &unique("ed"),
        &["sh", "-c", "echo out; echo pid=$$; exit 6"],
    );
    assert_eq!(out.code, 6, "{out:?}");
    assert_eq!(lines(&out.stdout), ["out", "pid=1"], "{out:?}");
    let out = c.run(&["--rm"], &unique("ed"), &["true"]);
    assert_eq!(out.code, 0, "{out:?}");
    // Nothing is left: the container and its task are gone.
    assert_eq!(c.ctr(&["containers", "ls", "-q"]).ok().trim(), "");
}

fn ctr_task_exec_kill(rt: &Runtime) {
    let c = Containerd::start(rt);
    let id = unique("ed");
    let script = "trap 'exit 9' TERM; while :; do sleep 0.1; done";
    c.run(&["-d"], &id, &["sh", "-c", script]).ok();
    // exec: the runtime's `exec` into the running task, its output and exit code.
    let out = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "cat /proc/1/comm; exit 4",
    ]);
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(lines(&out.stdout), ["sh"], "{out:?}");
    // kill (SIGTERM): the trap ends the task; containerd sees it stopped.
    c.ctr(&["tasks", "kill", &id]).ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ls = c.ctr(&["tasks", "ls"]).ok();
        if ls
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("STOPPED"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the task did not stop: {ls}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    c.ctr(&["tasks", "delete", &id]).ok();
    c.ctr(&["containers", "delete", &id]).ok();
    assert_eq!(c.ctr(&["containers", "ls", "-q"]).ok().trim(), "");
}
