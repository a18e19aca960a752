//! The harness itself: an engine dropped while a test fails, with a container running, leaves
//! nothing (no process of its own, no mount, no cgroup, no directory).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use execdriver_tests::engines::{Containerd, Docker, Podman, Runtime};
use execdriver_tests::{cgroups_under, host_mounts_under, unique};

variants!(
    docker_leaves_nothing,
    podman_leaves_nothing,
    containerd_leaves_nothing
);

/// What an engine made, to look for after it is gone.
struct Made {
    dir: PathBuf,
    cgroup_parent: String,
    /// The running container's init, as the host sees it.
    pid: i32,
}

/// Runs `f` (which starts an engine and a container, returns what they made, and panics while
/// the engine is alive), then checks that nothing of it is left.
fn fails_then_clean(f: impl FnOnce(&mut Option<Made>)) {
    let mut made = None;
    let result = catch_unwind(AssertUnwindSafe(|| f(&mut made)));
    assert!(result.is_err(), "the test body was meant to fail");
    let made = made.expect("the engine started");
    assert!(!made.dir.exists(), "{} is left", made.dir.display());
    let under = format!("{}/", made.dir.display());
    let left: Vec<String> = host_mounts_under(&made.dir)
        .into_iter()
        .filter(|m| Path::new(m) == made.dir || m.starts_with(&under))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(cgroups_under(&made.cgroup_parent), Vec::<PathBuf>::new());
    for controller in ["memory", "pids", "cpu", "freezer"] {
        let p = Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(&made.cgroup_parent);
        assert!(!p.exists(), "{} is left", p.display());
    }
    let needle = format!("{}/", made.dir.display());
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&needle),
            "process {:?} is left",
            entry.file_name()
        );
    }
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", made.pid)).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).starts_with("sleep"),
        "the container's init {} is left",
        made.pid
    );
}

fn docker_leaves_nothing(rt: &Runtime) {
    fails_then_clean(|made| {
        let d = Docker::start(rt);
        let name = unique("ed");
        d.run(&[
            "-d",
            "--name",
            &name,
            execdriver_tests::engines::docker::IMAGE,
            "sleep",
            "1000",
        ])
        .ok();
        let pid = d.inspect(&name, "{{.State.Pid}}").parse().unwrap_or(0);
        *made = Some(Made {
            dir: d.scratch.dir.path.clone(),
            cgroup_parent: d.scratch.cgroup_parent.clone(),
            pid,
        });
        panic!("a failing test with dockerd and a container running");
    });
}

fn podman_leaves_nothing(rt: &Runtime) {
    fails_then_clean(|made| {
        let p = Podman::start(rt);
        let name = unique("ed");
        p.run(&[
            "-d",
            "--name",
            &name,
            execdriver_tests::engines::podman::IMAGE,
            "sleep",
            "1000",
        ])
        .ok();
        let pid = p.podman(&["inspect", "-f", "{{.State.Pid}}", &name]).ok();
        *made = Some(Made {
            dir: p.scratch.dir.path.clone(),
            cgroup_parent: p.scratch.cgroup_parent.clone(),
            pid: pid.trim().parse().unwrap_or(0),
        });
        panic!("a failing test with a podman container running");
    });
}

fn containerd_leaves_nothing(rt: &Runtime) {
    fails_then_clean(|made| {
        let c = Containerd::start(rt);
        let id = unique("ed");
        c.run(&["-d"], &id, &["sleep", "1000"]).ok();
        let tasks = c.ctr(&["tasks", "ls"]).ok();
        let pid = tasks
            .lines()
            .find(|l| l.starts_with(&id))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        *made = Some(Made {
            dir: c.scratch.dir.path.clone(),
            cgroup_parent: c.scratch.cgroup_parent.clone(),
            pid,
        });
        panic!("a failing test with containerd and a task running");
    });
}
