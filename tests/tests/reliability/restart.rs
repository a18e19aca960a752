//! Driver restarts: SIGKILL and SIGTERM of the daemon while containers run, SIGKILL in the
//! middle of creates, and a running daemon sweeping directories an earlier one left
//! half-made. Containers outlive the daemon and the next one serves or removes them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use execdriver_tests::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio_stream::StreamExt;
use tonic::Code;

use super::{alive, delete, exec_echo, logs, shims_under, state, wait_gone};

/// The numbers N of complete "n=N" lines, in order.
fn counters(text: &[u8]) -> Vec<u64> {
    let text = String::from_utf8_lossy(text);
    text.split(['\n', '\r'])
        .filter_map(|l| l.trim().strip_prefix("n=")?.parse().ok())
        .collect()
}

/// Attaches to a running container and reads until `done` says so (or `timeout`): what it
/// wrote meanwhile. `stdin` is sent first.
async fn attach_until(
    c: &mut Client,
    id: &str,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(4);
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Start(pb::AttachStart {
            id: id.to_owned(),
            stdin: stdin.is_some(),
            stdout: true,
            stderr: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut stream = c
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_or_else(|e| panic!("attach {id}: {e:?}"))
        .into_inner();
    if let Some(data) = stdin {
        tx.send(pb::AttachRequest {
            kind: Some(pb::attach_request::Kind::Stdin(data)),
        })
        .await
        .unwrap();
    }
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&out) {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(pb::AttachResponse {
                kind: Some(pb::attach_response::Kind::Output(o)),
            }))) => out.extend_from_slice(&o.data),
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("attach {id} ended: {other:?}"),
            Err(_) => break,
        }
    }
    out
}

/// Five containers (one a tty being written to every 10 ms), the driver SIGKILLed, one
/// container exits meanwhile, a new driver: four running and reachable (exec, attach, logs
/// without a gap), one stopped with its real exit code.
#[tokio::test]
async fn containers_outlive_a_killed_driver_and_a_new_one_serves_them() {
    let mut d = Daemon::start();
    let mut c = d.client().await;
    let shared = TempDir::new("edshared");
    let mount = pb::Mount {
        source: shared.path.display().to_string(),
        destination: "/shared".into(),
        writable: true,
        ..Default::default()
    };

    let mut tty = d.request(&[
        "sh",
        "-c",
        "i=0; while true; do echo n=$i; i=$((i+1)); sleep 0.01; done",
    ]);
    tty.process.as_mut().unwrap().tty = true;
    let sleeper = d.request(&["sleep", "1000"]);
    let chatty = d.request(&[
        "sh",
        "-c",
        "while true; do echo out; echo err >&2; sleep 0.2; done",
    ]);
    let mut cat = d.request(&["cat"]);
    cat.process.as_mut().unwrap().open_stdin = true;
    let mut exits = d.request(&[
        "sh",
        "-c",
        "while [ ! -e /shared/go ]; do sleep 0.05; done; echo bye; exit 7",
    ]);
    exits.mounts = vec![mount];
    let ids: Vec<String> = [&tty, &sleeper, &chatty, &cat, &exits]
        .iter()
        .map(|r| r.id.clone())
        .collect();
    let running = &ids[..4];
    let exiting = &ids[4];
    for r in [tty, sleeper, chatty, cat, exits] {
        c.run(r).await.expect("run");
    }
    // The counter is going.
    let seen = loop {
        let n = counters(&logs(&mut c, &ids[0]).await);
        if n.len() >= 20 {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let inits: BTreeMap<String, i32> = {
        let mut m = BTreeMap::new();
        for id in &ids {
            m.insert(id.clone(), state(&mut c, id).await.pid);
        }
        m
    };

    // A Wait in progress when the driver dies.
    let mut waiter = c.clone();
    let sleeper_id = ids[1].clone();
    let pending_wait = tokio::spawn(async move {
        waiter
            .wait(pb::WaitRequest {
                id: sleeper_id,
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    d.stop_daemon(libc::SIGKILL);
    let err = pending_wait.await.unwrap().expect_err("the driver died");
    assert_ne!(err.code(), Code::Ok);

    // One container exits while no driver runs; the others keep running.
    std::fs::write(shared.path.join("go"), "").unwrap();
    let exit_file = d.root.join(exiting).join("exit.json");
    eventually(Duration::from_secs(10), || exit_file.exists().then_some(()))
        .await
        .expect("the container exited and its shim recorded it");
    tokio::time::sleep(Duration::from_millis(300)).await; // the tty writes on
    for id in running {
        assert!(alive(inits[id]), "{id} died with the driver");
    }

    d.spawn();
    let mut c = d.client().await;
    assert!(d.log().contains("startup:"), "{}", d.log());
    let list = c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(list.len(), 5, "{list:?}");
    for id in running {
        let st = state(&mut c, id).await;
        assert_eq!(st.status, pb::Status::Running as i32, "{id}: {st:?}");
        assert_eq!(st.pid, inits[id]);
        let out = exec_echo(&mut c, id, "still here").await;
        assert_eq!(out.stdout, b"still here\n", "{id}");
        assert_eq!(out.exit.unwrap().status_code, 0);
    }
    let st = state(&mut c, exiting).await;
    assert_eq!(st.status, pb::Status::Stopped as i32);
    let exit = st.exit.expect("exit");
    assert_eq!(exit.exit_code, Some(7), "{exit:?}");
    assert_eq!(exit.status_code, 7);
    let w = c
        .wait(pb::WaitRequest {
            id: exiting.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert_eq!(w.status_code, 7);
    assert_eq!(logs(&mut c, exiting).await, b"bye\n");

    // Attach streams what the tty writes now; stdin reaches cat.
    let last = *seen.last().unwrap();
    let now = attach_until(&mut c, &ids[0], None, Duration::from_secs(10), |o| {
        counters(o).iter().any(|n| *n > last + 50)
    })
    .await;
    assert!(
        counters(&now).iter().any(|n| *n > last + 50),
        "{}",
        String::from_utf8_lossy(&now)
    );
    let echoed = attach_until(
        &mut c,
        &ids[3],
        Some(b"hello again\n".to_vec()),
        Duration::from_secs(10),
        |o| o.ends_with(b"hello again\n"),
    )
    .await;
    assert_eq!(echoed, b"hello again\n");

    // Kill, Wait and Delete work; the tty's log has every counter, with no gap.
    for id in running {
        c.kill(pb::KillRequest {
            id: id.clone(),
            signal: libc::SIGKILL,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("kill {id}: {e:?}"));
        let w = c
            .wait(pb::WaitRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .exit
            .unwrap();
        assert_eq!(w.signal, Some(libc::SIGKILL), "{id}: {w:?}");
    }
    let all = counters(&logs(&mut c, &ids[0]).await);
    assert!(all.len() > seen.len() + 50, "{} counters", all.len());
    for (i, n) in all.iter().enumerate() {
        assert_eq!(*n, i as u64, "a gap in the log at {i}");
    }
    let chatty_log = String::from_utf8_lossy(&logs(&mut c, &ids[2]).await).into_owned();
    assert!(chatty_log.matches("out\n").count() >= 3, "{chatty_log}");
    for id in &ids {
        delete(&mut c, id, false).await;
    }
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
    assert!(shims_under(&d.root).is_empty());
}

/// SIGTERM stops the daemon within its grace period although clients hold connections, a Wait
/// and an attach stream; containers keep running and a new daemon serves them.
#[tokio::test]
async fn sigterm_stops_the_daemon_promptly_and_leaves_containers_running() {
    let mut d = Daemon::start();
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
    let _idle = d.client().await; // a connection doing nothing
    let mut w = c.clone();
    let wid = id.clone();
    let wait = tokio::spawn(async move {
        w.wait(pb::WaitRequest {
            id: wid,
            ..Default::default()
        })
        .await
    });
    let (_tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(1);
    _tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Start(pb::AttachStart {
            id: id.clone(),
            stdout: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let _attached = c
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let daemon = d.pid().unwrap() as i32;
    let t = Instant::now();
    kill(Pid::from_raw(daemon), Signal::SIGTERM).unwrap();
    assert!(
        wait_gone(daemon, Duration::from_secs(20)).await,
        "execdriverd did not stop after SIGTERM: {}",
        d.log()
    );
    let took = t.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
    d.stop_daemon(libc::SIGTERM); // reaps it
    assert!(wait.await.unwrap().is_err());
    assert!(alive(pid), "the container died with the daemon");
    assert!(!d.socket.exists(), "the socket was left");

    d.spawn();
    let mut c = d.client().await;
    assert_eq!(state(&mut c, &id).await.status, pb::Status::Running as i32);
    assert_eq!(exec_echo(&mut c, &id, "ok").await.stdout, b"ok\n");
    delete(&mut c, &id, true).await;
    assert!(d.cgroup_dirs().is_empty());
}

/// The daemon SIGKILLed again and again while many creates are under way: whatever moment
/// it died at, the next daemon loads or removes every directory, and once the containers it
/// lists are deleted nothing is left.
#[tokio::test]
async fn a_driver_killed_mid_create_leaves_state_the_next_one_loads_or_cleans() {
    let mut d = Daemon::start();
    for delay_ms in [5u64, 40, 120] {
        let c = d.client().await;
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let mut c = c.clone();
            let req = d.request(&["sleep", "1000"]);
            tasks.push(tokio::spawn(async move { c.run(req).await }));
        }
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        d.stop_daemon(libc::SIGKILL);
        for t in tasks {
            let _ = t.await; // some made it, some did not
        }
        // Shims whose driver went away mid-create abandon their container.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        d.spawn();
        let mut c = d.client().await;
        let list = c
            .list(pb::ListRequest::default())
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert_eq!(
            list.len(),
            d.state_dirs().len(),
            "every directory left is a container the daemon knows: {list:?} {:?}\n{}",
            d.state_dirs(),
            d.log()
        );
        for st in &list {
            assert!(
                st.status == pb::Status::Running as i32 || st.status == pb::Status::Created as i32,
                "{st:?}"
            );
            delete(&mut c, &st.id, true).await;
        }
        assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
        assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
        assert!(
            shims_under(&d.root).is_empty(),
            "{:?}",
            shims_under(&d.root)
        );
    }
}

/// A directory of no container appearing while the daemon runs (a create of an earlier
/// daemon whose shim gave up after this one started) is swept within seconds; the containers
/// the daemon knows are not touched.
#[tokio::test]
async fn a_running_daemon_sweeps_stray_incomplete_directories() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let stray = d.root.join(unique("stray"));
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("container.json"), "{").unwrap();
    std::fs::write(stray.join("meta.json"), "{\"id\": \"cut sh").unwrap();
    let gone = eventually(Duration::from_secs(30), || (!stray.exists()).then_some(())).await;
    assert!(gone.is_some(), "{}", d.log());
    let logged = eventually(Duration::from_secs(5), || {
        d.log()
            .contains("removed a stray incomplete directory")
            .then_some(())
    });
    assert!(logged.await.is_some(), "{}", d.log());
    assert_eq!(state(&mut c, &id).await.status, pb::Status::Running as i32);
    delete(&mut c, &id, true).await;
}
