//! Exec into a live container, ExecSync, Stop, Kill of all processes, the init reaper, what
//! happens when PID 1 dies, and the seed's nsinit CLI.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{
    attach_collect, attach_collect_exec, bin, cgroups_under, eventually, make_rootfs, pb, run,
    unique, CgroupGuard, Client, Daemon, TempDir,
};
use tonic::Code;

fn exec_req(id: &str, args: &[&str]) -> pb::ExecRequest {
    pb::ExecRequest {
        id: id.to_owned(),
        exec_id: unique("e"),
        process: Some(pb::Process {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        start: false,
    }
}

/// Execs `args` in container `id` and collects what it prints until it ends.
async fn exec_collect(c: &mut Client, id: &str, args: &[&str]) -> execdriver_tests::Output {
    let req = exec_req(id, args);
    let exec_id = req.exec_id.clone();
    let p = c
        .exec(req)
        .await
        .expect("exec")
        .into_inner()
        .process
        .unwrap();
    assert_eq!(p.status, pb::Status::Created as i32);
    attach_collect_exec(c, id, &exec_id, None, true).await
}

async fn state(c: &mut Client, id: &str) -> pb::ContainerState {
    c.state(pb::StateRequest {
        id: id.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .container
    .unwrap()
}

#[tokio::test]
async fn exec_shares_the_containers_world_and_returns_its_code() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["sleep", "1000"]);
    req.hostname = "inside".into();
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let init = state(&mut c, &id).await;
    let view = "hostname; ps -o pid,comm | grep -c sleep; \
                for n in mnt net uts ipc pid; do readlink /proc/1/ns/$n; done; \
                for n in mnt net uts ipc pid; do readlink /proc/self/ns/$n; done; \
                cat /proc/self/cgroup | sort; ip -o link | cut -d: -f2; exit 7";
    let out = exec_collect(&mut c, &id, &["sh", "-c", view]).await;
    assert_eq!(out.exit.exit_code, Some(7), "{}", out.stderr());
    let text = out.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "inside");
    assert_eq!(lines[1], "1", "ps inside shows the init's sleep: {text}");
    assert_eq!(
        lines[2..7],
        lines[7..12],
        "the exec is in the init's namespaces: {text}"
    );
    // Same cgroups as the init.
    let init_cgroup: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_to_string(format!("/proc/{}/cgroup", init.pid))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    for l in &init_cgroup {
        assert!(text.contains(l.as_str()), "exec lacks cgroup {l}: {text}");
    }
    assert!(text.contains(" lo"), "{text}");

    // Wait and State by exec id; the exec's exit stays readable.
    let req = exec_req(&id, &["sh", "-c", "exit 3"]);
    let exec_id = req.exec_id.clone();
    let mut req = req;
    req.start = true;
    c.exec(req).await.unwrap();
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            exec_id: exec_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert_eq!(exit.exit_code, Some(3));
    let st = c
        .state(pb::StateRequest {
            id: id.clone(),
            exec_id: exec_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let p = st.process.unwrap();
    assert_eq!(p.status, pb::Status::Stopped as i32);
    assert_eq!(p.exit.unwrap().exit_code, Some(3));
    // Unknown exec ids and a duplicate.
    let err = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            exec_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut dup = exec_req(&id, &["true"]);
    dup.exec_id = exec_id.clone();
    let err = c.exec(dup).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = c.exec(exec_req(&id, &["/no/such"])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // Kill an exec'd process by its id.
    let mut req = exec_req(&id, &["sleep", "100"]);
    req.start = true;
    let exec_id = req.exec_id.clone();
    c.exec(req).await.unwrap();
    c.kill(pb::KillRequest {
        id: id.clone(),
        signal: 9,
        all: false,
        exec_id: exec_id.clone(),
    })
    .await
    .unwrap();
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            exec_id,
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert_eq!(exit.signal, Some(9));
    assert_eq!(
        state(&mut c, &id).await.status,
        pb::Status::Running as i32,
        "the init lives on"
    );
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn exec_with_a_terminal_and_stdin() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let mut r = exec_req(&id, &["sh", "-c", "tty; stty size"]);
    let p = r.process.as_mut().unwrap();
    p.tty = true;
    p.console_size = Some(pb::ConsoleSize { rows: 20, cols: 60 });
    let exec_id = r.exec_id.clone();
    c.exec(r).await.unwrap();
    let out = attach_collect_exec(&mut c, &id, &exec_id, None, true).await;
    assert_eq!(out.stdout().replace('\r', ""), "/dev/pts/0\n20 60\n");
    let mut r = exec_req(&id, &["cat"]);
    r.process.as_mut().unwrap().open_stdin = true;
    let exec_id = r.exec_id.clone();
    c.exec(r).await.unwrap();
    let out = attach_collect_exec(&mut c, &id, &exec_id, Some(b"typed\n".to_vec()), true).await;
    assert_eq!(out.stdout(), "typed\n");
    assert_eq!(out.code(), 0);
    // The exec's output is in its own log.
    let logs = c
        .logs(pb::LogsRequest {
            id: id.clone(),
            exec_id: exec_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    use tokio_stream::StreamExt;
    let chunks: Vec<_> = logs.collect().await;
    let text: Vec<u8> = chunks
        .into_iter()
        .flat_map(|m| m.unwrap().chunk.unwrap().data)
        .collect();
    assert_eq!(text, b"typed\n");
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn exec_sync_captures_output_and_its_timeout_kills() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let process = |args: &[&str]| {
        Some(pb::Process {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    };
    let r = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: process(&["sh", "-c", "echo out; echo err >&2; exit 2"]),
            timeout_seconds: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    assert_eq!(r.exit.unwrap().exit_code, Some(2));
    assert!(!r.timed_out);
    let t = Instant::now();
    let r = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: process(&["sh", "-c", "echo started; exec sleep 100"]),
            timeout_seconds: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.timed_out);
    assert_eq!(r.stdout, b"started\n");
    assert_eq!(r.exit.unwrap().signal, Some(9));
    assert!(t.elapsed() < Duration::from_secs(10));
    let ps = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: process(&["ps", "-o", "comm"]),
            timeout_seconds: 5,
        })
        .await
        .unwrap()
        .into_inner();
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert_eq!(
        ps.matches("sleep").count(),
        1,
        "the timed-out sleep is gone: {ps}"
    );
    let err = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: process(&["true"]),
            timeout_seconds: 99_999,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("timeout_seconds"));
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_escalates_to_sigkill_after_the_grace_period() {
    let d = Daemon::start();
    let mut c = d.client().await;
    // Ignores SIGTERM.
    let req = d.request(&["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let t = Instant::now();
    let r = c
        .stop(pb::StopRequest {
            id: id.clone(),
            signal: 0,
            timeout_seconds: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.killed);
    assert_eq!(r.exit.unwrap().signal, Some(9));
    assert!(t.elapsed() >= Duration::from_millis(900));
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
    // Heeds SIGTERM (a handler, since PID 1 ignores unhandled signals): no SIGKILL needed.
    let req = d.request(&[
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = c
        .stop(pb::StopRequest {
            id: id.clone(),
            signal: 0,
            timeout_seconds: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.killed);
    assert_eq!(r.exit.unwrap().exit_code, Some(0));
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

fn zombies_under(pid: i32) -> Vec<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s[s.rfind(')')? + 2..].chars().next())
                == Some('Z')
        })
        .collect()
}

#[tokio::test]
async fn the_init_reaper_leaves_no_zombies() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let orphans = "i=0; while [ $i -lt 10 ]; do (sleep 0.1 &); i=$((i+1)); done; exec sleep 1000";
    let count_zombies = "ps -o stat | grep -c '^Z' || true";
    // Without the reaper, the orphans' zombies pile up under a PID 1 that never waits: this
    // is what the test can see.
    let req = d.request(&["sh", "-c", orphans]);
    let plain = req.id.clone();
    c.run(req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = exec_collect(&mut c, &plain, &["sh", "-c", count_zombies]).await;
    assert_eq!(out.stdout().trim(), "10", "zombies without the init");
    // With it, none.
    let mut req = d.request(&["sh", "-c", orphans]);
    req.init = true;
    let id = req.id.clone();
    c.run(req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = exec_collect(&mut c, &id, &["sh", "-c", count_zombies]).await;
    assert_eq!(out.stdout().trim(), "0", "zombies with the init");
    // Signals reach the command through the init; its exit is the container's.
    let out = exec_collect(&mut c, &id, &["ps", "-o", "pid,comm"]).await;
    assert!(out.stdout().contains("sleep"), "{}", out.stdout());
    c.kill(pb::KillRequest {
        id: id.clone(),
        signal: 15,
        all: false,
        exec_id: String::new(),
    })
    .await
    .unwrap();
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert_eq!(
        exit.exit_code,
        Some(128 + 15),
        "SIGTERM forwarded to the command: {exit:?}"
    );
    // The shim has no zombie children on the host.
    let shim = state(&mut c, &plain).await.shim_pid;
    assert!(zombies_under(shim).is_empty());
    for id in [plain, id] {
        c.delete(pb::DeleteRequest { id, force: true })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn kill_all_and_the_death_of_pid_1_end_every_process() {
    let d = Daemon::start();
    let mut c = d.client().await;
    // Kill with all: every process of the container, through its cgroup.
    let req = d.request(&["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & wait"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let procs = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let pids_dir = |d: &Daemon, id: &str| {
        d.cgroup_dirs()
            .into_iter()
            .find(|p| p.ends_with(id) && p.to_string_lossy().contains("/pids/"))
            .unwrap()
    };
    let dir = pids_dir(&d, &id);
    eventually(Duration::from_secs(5), || (procs(&dir) == 3).then_some(()))
        .await
        .expect("three processes");
    c.kill(pb::KillRequest {
        id: id.clone(),
        signal: 9,
        all: true,
        exec_id: String::new(),
    })
    .await
    .unwrap();
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert_eq!(exit.signal, Some(9));
    assert_eq!(procs(&dir), 0);
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .unwrap();

    // PID 1 ends: everything in the container ends with it, exec'd processes report it.
    let req = d.request(&[
        "sh",
        "-c",
        "sleep 1000 & sleep 1000 & while [ ! -e /tmp/go ]; do sleep 0.05; done",
    ]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let mut r = exec_req(&id, &["sleep", "1000"]);
    r.start = true;
    let exec_id = r.exec_id.clone();
    c.exec(r).await.unwrap();
    std::fs::write(d.rootfs.join("tmp/go"), "").unwrap();
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert_eq!(exit.exit_code, Some(0));
    let exec_exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            exec_id,
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert_eq!(
        exec_exit.signal,
        Some(9),
        "the exec'd process died with the container"
    );
    let dir = pids_dir(&d, &id);
    assert_eq!(procs(&dir), 0);
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .unwrap();

    // Without a PID namespace the shim empties the cgroup when the init dies.
    let mut req = d.request(&["sh", "-c", "sleep 1000 & sleep 0.3"]);
    req.namespaces = vec![
        "NEWNS".into(),
        "NEWUTS".into(),
        "NEWIPC".into(),
        "NEWNET".into(),
    ];
    let id = req.id.clone();
    c.run(req).await.unwrap();
    c.wait(pb::WaitRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = pids_dir(&d, &id);
    eventually(Duration::from_secs(5), || (procs(&dir) == 0).then_some(()))
        .await
        .expect("the orphaned sleep is killed");
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

#[tokio::test]
async fn exec_errors() {
    let d = Daemon::start();
    let mut c = d.client().await;
    // A created (not started) container cannot be exec'd into, nor a stopped one.
    let req = d.request(&["true"]);
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let err = c.exec(exec_req(&id, &["true"])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    c.start(pb::StartRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.wait(pb::WaitRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let err = c.exec(exec_req(&id, &["true"])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let mut bad = exec_req(&id, &["true"]);
    bad.exec_id = "../x".into();
    let err = c.exec(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("exec_id"));
    let mut bad = exec_req(&id, &["true"]);
    bad.process = None;
    let err = c.exec(bad).await.unwrap_err();
    assert!(err.message().starts_with("process"), "{err:?}");
    let err = c
        .exec(exec_req("no-such-ctr", &["true"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
    let _ = run; // the harness's run() is for inits; execs use exec_collect
    let _ = attach_collect;
}

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

/// NEWCGROUP: the container sees its own cgroups as the root, and an exec'd process joins
/// that cgroup namespace too (not the host's).
#[tokio::test]
async fn exec_joins_the_cgroup_namespace() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["sleep", "1000"]);
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWCGROUP"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let script = "readlink /proc/1/ns/cgroup; readlink /proc/self/ns/cgroup; \
                  grep -E ':(memory|pids):' /proc/self/cgroup | cut -d: -f3";
    let out = exec_collect(&mut c, &id, &["sh", "-c", script]).await;
    assert_eq!(out.exit.exit_code, Some(0), "{}", out.stderr());
    let text = out.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], lines[1],
        "the exec is in the init's cgroup namespace: {text}"
    );
    let host = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    assert_ne!(lines[0], host.to_string_lossy(), "{text}");
    assert!(lines.len() >= 3, "{text}");
    for l in &lines[2..] {
        assert_eq!(*l, "/", "its own cgroup is its root: {text}");
    }
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
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

/// An exec'd process with its own terminal: its initial size is the one asked for, and
/// ResizePty with its exec id changes it (not the init's).
#[tokio::test]
async fn an_exec_terminal_has_its_size_and_resizes() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let go = unique("go");
    let script = format!("stty size; while [ ! -e /tmp/{go} ]; do sleep 0.05; done; stty size");
    let mut req = exec_req(&id, &["sh", "-c", &script]);
    let exec_id = req.exec_id.clone();
    let process = req.process.as_mut().unwrap();
    process.tty = true;
    process.console_size = Some(pb::ConsoleSize {
        rows: 30,
        cols: 100,
    });
    c.exec(req).await.unwrap();
    let mut c2 = c.clone();
    let (id2, exec2) = (id.clone(), exec_id.clone());
    let collector =
        tokio::spawn(async move { attach_collect_exec(&mut c2, &id2, &exec2, None, true).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.resize_pty(pb::ResizePtyRequest {
        id: id.clone(),
        size: Some(pb::ConsoleSize {
            rows: 50,
            cols: 132,
        }),
        exec_id: exec_id.clone(),
    })
    .await
    .unwrap();
    std::fs::write(d.rootfs.join("tmp").join(&go), "").unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), collector)
        .await
        .expect("the exec ends")
        .unwrap();
    assert_eq!(out.exit.exit_code, Some(0));
    assert_eq!(out.stdout().replace('\r', ""), "30 100\n50 132\n");
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}
