//! How processes end: Stop's escalation to SIGKILL, the init reaper leaving no zombies,
//! Kill of all processes, and the death of PID 1 ending every process.

use std::time::{Duration, Instant};

use execdriver_tests::{eventually, pb, Daemon};

use super::{exec_collect, exec_req, state};

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
