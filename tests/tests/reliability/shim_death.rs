//! Shim deaths: a SIGKILLed shim (with and without a PID namespace), a shim whose container
//! runs as another user dying without a driver, and a stopped shim that must give a
//! deadline instead of a hang.

use std::time::{Duration, Instant};

use execdriver_tests::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tonic::Code;

use super::{
    alive, bridge_daemon, bridged, census, container_processes, delete, read_pid, settled_census,
    state, wait_gone,
};

/// A SIGKILLed shim: the container is reported stopped with a clear reason, its processes are
/// gone (those that outlive the init without a PID namespace are killed through the cgroup by
/// the driver, without any call asking), nothing leaks.
#[tokio::test]
async fn a_killed_shim_stops_its_container_and_nothing_leaks() {
    let d = bridge_daemon("198.18.201.0/24");
    let mut c = d.client().await;
    let before = settled_census(&d, true).await;

    // A: the usual namespaces; B: no PID namespace and a background child that outlives its
    // init (no parent-death signal reaches it).
    let a = bridged(&d, &["sleep", "1000"]);
    let mut b = bridged(&d, &["sh", "-c", "sleep 1000 & exec sleep 1001"]);
    b.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWNET"]
        .map(String::from)
        .to_vec();
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    c.run(a).await.unwrap();
    c.run(b).await.unwrap();
    let b_procs = eventually(Duration::from_secs(5), || {
        let n = container_processes(&d);
        (n.len() >= 3).then_some(n)
    })
    .await
    .expect("both containers' processes");
    let mut w = c.clone();
    let bw = b_id.clone();
    let pending_wait = tokio::spawn(async move {
        w.wait(pb::WaitRequest {
            id: bw,
            ..Default::default()
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let shim_a = read_pid(&d.root.join(&a_id).join("shim.pid"));
    let shim_b = read_pid(&d.root.join(&b_id).join("shim.pid"));
    let init_a = state(&mut c, &a_id).await.pid;
    kill(Pid::from_raw(shim_a), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(shim_b), Signal::SIGKILL).unwrap();
    assert!(wait_gone(shim_a, Duration::from_secs(5)).await);
    // A's init gets the parent-death signal; its PID namespace ends with it.
    assert!(wait_gone(init_a, Duration::from_secs(5)).await);

    // B: nobody asks; the driver's watchdog finds the dead shim and kills what is left.
    for p in &b_procs {
        assert!(
            wait_gone(*p, Duration::from_secs(15)).await,
            "pid {p} still runs unsupervised\n{}",
            d.log()
        );
    }
    let w = pending_wait
        .await
        .unwrap()
        .expect("a Wait in progress gets the end");
    assert!(w.into_inner().exit.unwrap().reason.contains("shim"));

    for id in [&a_id, &b_id] {
        let st = state(&mut c, id).await;
        assert_eq!(st.status, pb::Status::Stopped as i32, "{id}: {st:?}");
        let exit = st.exit.expect("exit");
        assert!(
            exit.reason.contains("the shim (pid") && exit.reason.contains("died"),
            "{id}: {exit:?}"
        );
        assert_eq!(st.shim_pid, 0);
        // Calls that need the shim say it is gone; Wait answers at once.
        let err = c
            .exec(pb::ExecRequest {
                id: id.clone(),
                process: Some(pb::Process {
                    args: vec!["true".into()],
                    ..Default::default()
                }),
                start: true,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        let w = tokio::time::timeout(
            Duration::from_secs(5),
            c.wait(pb::WaitRequest {
                id: id.clone(),
                ..Default::default()
            }),
        )
        .await
        .expect("wait returns at once")
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
        assert_eq!(w.reason, exit.reason);
    }
    let b_exit = state(&mut c, &b_id).await.exit.unwrap();
    assert!(b_exit.reason.contains("cgroup"), "{b_exit:?}");
    // The cgroups, veths and addresses went when the shims were found dead.
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
    assert!(d.netns().veths().is_empty(), "{:?}", d.netns().veths());

    for id in [&a_id, &b_id] {
        delete(&mut c, id, false).await;
    }
    let settled = eventually(Duration::from_secs(10), || {
        (census(&d, true) == before).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "before: {before:?}\nafter:  {:?}\nfds: {:?}",
        census(&d, true),
        fd_targets(d.pid().expect("daemon runs"))
    );
}

fn fd_targets(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|r| {
            r.flatten()
                .map(|e| {
                    std::fs::read_link(e.path())
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Without the driver, a shim's death still ends its container: the init's parent-death
/// signal survives the switch to another user. The next driver reports it stopped.
#[tokio::test]
async fn a_container_running_as_another_user_dies_with_its_shim() {
    let mut d = Daemon::start();
    let mut c = d.client().await;
    let mut ids = Vec::new();
    let mut inits = Vec::new();
    for namespaces in [vec![], vec!["NEWNS", "NEWUTS", "NEWIPC", "NEWNET"]] {
        let mut r = d.request(&["sleep", "1000"]);
        r.process.as_mut().unwrap().user = "65534:65534".into();
        r.namespaces = namespaces.into_iter().map(String::from).collect();
        let st = c
            .run(r.clone())
            .await
            .unwrap()
            .into_inner()
            .container
            .unwrap();
        ids.push(r.id);
        inits.push(st.pid);
    }
    drop(c);
    d.stop_daemon(libc::SIGKILL);
    for (id, init) in ids.iter().zip(&inits) {
        let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
        assert!(status.contains("Uid:\t65534"), "{status}");
        let shim = read_pid(&d.root.join(id).join("shim.pid"));
        kill(Pid::from_raw(shim), Signal::SIGKILL).unwrap();
        assert!(
            wait_gone(*init, Duration::from_secs(5)).await,
            "{id}: the init outlived its shim"
        );
    }
    d.spawn();
    let mut c = d.client().await;
    for id in &ids {
        let st = state(&mut c, id).await;
        assert_eq!(st.status, pb::Status::Stopped as i32);
        assert!(st.exit.unwrap().reason.contains("died"));
        delete(&mut c, id, false).await;
    }
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
    assert!(d.state_dirs().is_empty());
}

/// A shim that does not answer (stopped with SIGSTOP) makes calls fail with DEADLINE_EXCEEDED
/// after the shim deadline instead of hanging, is not taken for dead, and serves again once
/// continued.
#[tokio::test]
async fn a_stuck_shim_gets_a_deadline_not_a_hang() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    let pid = c
        .run(req)
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap()
        .pid;
    let shim = read_pid(&d.root.join(&id).join("shim.pid"));
    kill(Pid::from_raw(shim), Signal::SIGSTOP).unwrap();
    struct Cont(i32);
    impl Drop for Cont {
        fn drop(&mut self) {
            let _ = kill(Pid::from_raw(self.0), Signal::SIGCONT);
        }
    }
    let cont = Cont(shim);
    let t = Instant::now();
    let err = c
        .state(pb::StateRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(30));
    // Others are served meanwhile, and the listing shows what the daemon last knew of it
    // (running) without asking the stuck shim.
    c.info(pb::InfoRequest {}).await.unwrap();
    let other = d.request(&["true"]);
    run(&mut c, other).await;
    let t = Instant::now();
    let list = c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, pb::Status::Running as i32);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "list waited for the stuck shim"
    );
    assert!(alive(pid));
    drop(cont);
    assert_eq!(state(&mut c, &id).await.status, pb::Status::Running as i32);
    delete(&mut c, &id, true).await;
}

/// Where in a container's life its shim is killed.
#[derive(Debug, Clone, Copy)]
enum Step {
    Created,
    Running,
    Execing,
    Paused,
    Exited,
}

/// The shim SIGKILLed at each step of the lifecycle (created, running, with an exec'd process,
/// paused, after the init exited): every time the container ends up stopped with its exit
/// recorded (a Wait answers), its processes are gone, a plain Delete removes it, and nothing
/// (shim, process, cgroup, state directory, mount, veth, daemon fd) is left.
#[tokio::test]
async fn a_shim_killed_at_each_step_strands_nothing() {
    let d = bridge_daemon("198.18.202.0/24");
    let mut c = d.client().await;
    let before = settled_census(&d, true).await;
    for step in [
        Step::Created,
        Step::Running,
        Step::Execing,
        Step::Paused,
        Step::Exited,
    ] {
        let args: &[&str] = match step {
            Step::Exited => &["true"],
            _ => &["sleep", "1000"],
        };
        let req = bridged(&d, args);
        let id = req.id.clone();
        match step {
            Step::Created => {
                c.create(req).await.unwrap();
            }
            _ => {
                c.run(req).await.unwrap();
            }
        }
        let init = state(&mut c, &id).await.pid;
        let mut watched = vec![init];
        match step {
            Step::Execing => {
                let r = c
                    .exec(pb::ExecRequest {
                        id: id.clone(),
                        process: Some(pb::Process {
                            args: vec!["sleep".into(), "999".into()],
                            ..Default::default()
                        }),
                        start: true,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                watched.push(r.process.map_or(0, |p| p.pid));
            }
            Step::Paused => {
                c.pause(pb::PauseRequest { id: id.clone() }).await.unwrap();
            }
            Step::Exited => {
                c.wait(pb::WaitRequest {
                    id: id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            }
            Step::Created | Step::Running => {}
        }
        let shim = read_pid(&d.root.join(&id).join("shim.pid"));
        kill(Pid::from_raw(shim), Signal::SIGKILL).unwrap();
        assert!(wait_gone(shim, Duration::from_secs(5)).await, "{step:?}");
        for p in watched.into_iter().filter(|p| *p > 0) {
            assert!(
                wait_gone(p, Duration::from_secs(15)).await,
                "{step:?}: pid {p} outlives its shim\n{}",
                d.log()
            );
        }
        // Stopped, with its exit recorded: a Wait answers at once.
        let t = Instant::now();
        let st = loop {
            let st = state(&mut c, &id).await;
            if st.status == pb::Status::Stopped as i32 {
                break st;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{step:?}: never stopped: {st:?}\n{}",
                d.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(st.exit.is_some(), "{step:?}: {st:?}");
        let w = tokio::time::timeout(
            Duration::from_secs(5),
            c.wait(pb::WaitRequest {
                id: id.clone(),
                ..Default::default()
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("{step:?}: wait hangs"))
        .unwrap();
        assert!(w.into_inner().exit.is_some(), "{step:?}");
        delete(&mut c, &id, false).await;
    }
    let settled = eventually(Duration::from_secs(10), || {
        (census(&d, true) == before).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "before: {before:?}\nafter:  {:?}",
        census(&d, true)
    );
}
