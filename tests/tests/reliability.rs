//! Reliability: driver restarts (SIGKILL and SIGTERM), shim deaths, crashes mid-create, many
//! concurrent clients, bad input, and `execdriverd --cleanup`. Nothing is lost and nothing
//! leaks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use execdriver_tests::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio_stream::StreamExt;
use tonic::Code;

// ---------------------------------------------------------------------------------------------
// helpers

fn bridge_daemon(subnet: &str) -> Daemon {
    let bridge = unique_ifname("edbr");
    Daemon::start_in_netns(&["--bridge", &bridge, "--subnet", subnet], &[])
}

fn bridged(d: &Daemon, args: &[&str]) -> pb::CreateRequest {
    pb::CreateRequest {
        network: Some(pb::NetworkConfig {
            mode: pb::NetworkMode::Bridge as i32,
            ..Default::default()
        }),
        ..d.request(args)
    }
}

fn alive(pid: i32) -> bool {
    // A zombie (dead, not yet reaped by whoever its parent is now) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

async fn wait_gone(pid: i32, timeout: Duration) -> bool {
    eventually(timeout, || (!alive(pid)).then_some(()))
        .await
        .is_some()
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("pid")
}

/// Open descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// Processes whose working directory is under `root`: the daemon's shims (each works in its
/// container's state directory).
fn shims_under(root: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| {
                    std::fs::read_link(format!("/proc/{pid}/cwd"))
                        .is_ok_and(|cwd| cwd.starts_with(root))
                })
                .filter(|pid| alive(*pid))
                .collect()
        })
        .unwrap_or_default()
}

/// Every process in the daemon's cgroups.
fn container_processes(d: &Daemon) -> Vec<i32> {
    let mut out = Vec::new();
    for dir in d.cgroup_dirs() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Everything of a daemon's containers that could leak, counted.
#[derive(Debug, PartialEq, Eq)]
struct Census {
    shims: usize,
    processes: usize,
    cgroups: usize,
    state_dirs: usize,
    mounts: usize,
    veths: usize,
    daemon_fds: usize,
}

/// A census once the daemon is quiet: connections the harness opened to see it come up (and
/// closed) may still be open in the daemon for a moment.
async fn settled_census(d: &Daemon, with_netns: bool) -> Census {
    let mut last = census(d, with_netns);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = census(d, with_netns);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn census(d: &Daemon, with_netns: bool) -> Census {
    Census {
        shims: shims_under(&d.root).len(),
        processes: container_processes(d).len(),
        cgroups: d.cgroup_dirs().len(),
        state_dirs: d.state_dirs().len(),
        mounts: host_mounts_under(&d.dir.path).len(),
        veths: if with_netns {
            d.netns().veths().len()
        } else {
            0
        },
        daemon_fds: fd_count(d.pid().expect("daemon runs")),
    }
}

async fn state(c: &mut Client, id: &str) -> pb::ContainerState {
    c.state(pb::StateRequest {
        id: id.to_owned(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("state {id}: {e:?}"))
    .into_inner()
    .container
    .expect("container")
}

async fn exec_echo(c: &mut Client, id: &str, text: &str) -> pb::ExecSyncResponse {
    c.exec_sync(pb::ExecSyncRequest {
        id: id.to_owned(),
        process: Some(pb::Process {
            args: vec!["echo".into(), text.into()],
            ..Default::default()
        }),
        timeout_seconds: 20,
    })
    .await
    .unwrap_or_else(|e| panic!("exec in {id}: {e:?}"))
    .into_inner()
}

async fn logs(c: &mut Client, id: &str) -> Vec<u8> {
    let mut stream = c
        .logs(pb::LogsRequest {
            id: id.to_owned(),
            ..Default::default()
        })
        .await
        .expect("logs")
        .into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.next().await {
        out.extend_from_slice(&m.expect("logs stream").chunk.expect("chunk").data);
    }
    out
}

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

async fn delete(c: &mut Client, id: &str, force: bool) {
    c.delete(pb::DeleteRequest {
        id: id.to_owned(),
        force,
    })
    .await
    .unwrap_or_else(|e| panic!("delete {id}: {e:?}"));
}

// ---------------------------------------------------------------------------------------------
// driver restart

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

// ---------------------------------------------------------------------------------------------
// shim death

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
    // Others are served meanwhile, and the listing shows it as unknown.
    c.info(pb::InfoRequest {}).await.unwrap();
    let other = d.request(&["true"]);
    run(&mut c, other).await;
    let list = c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, pb::Status::Unspecified as i32);
    assert!(alive(pid));
    drop(cont);
    assert_eq!(state(&mut c, &id).await.status, pb::Status::Running as i32);
    delete(&mut c, &id, true).await;
}

// ---------------------------------------------------------------------------------------------
// load

/// 100 containers created concurrently from several clients (each runs echo and exits with its
/// own code), all deleted: every exit code right, and afterwards no process, mount, cgroup,
/// veth, state directory or open descriptor of theirs remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_containers_leave_nothing_behind() {
    const CLIENTS: usize = 10;
    const EACH: usize = 10;
    let d = bridge_daemon("198.18.202.0/24");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(d.client().await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = settled_census(&d, true).await;
    assert_eq!(before.cgroups + before.state_dirs + before.shims, 0);

    let t = Instant::now();
    let mut tasks = Vec::new();
    for (k, mut client) in clients.clone().into_iter().enumerate() {
        let reqs: Vec<(pb::CreateRequest, i32)> = (0..EACH)
            .map(|i| {
                let n = (k * EACH + i) as i32;
                let code = n % 7;
                let r = bridged(
                    &d,
                    &["sh", "-c", &format!("echo container-{n}; exit {code}")],
                );
                (r, code)
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for (req, code) in reqs {
                let id = req.id.clone();
                let out = run(&mut client, req).await;
                results.push((id, code, out));
            }
            results
        }));
    }
    let mut n = 0;
    for t in tasks {
        for (id, code, out) in t.await.expect("client task") {
            assert_eq!(out.code(), code, "{id}: {out:?}");
            assert_eq!(out.exit.exit_code, Some(code), "{id}");
            assert!(out.stdout().starts_with("container-"), "{id}: {out:?}");
            n += 1;
        }
    }
    let took = t.elapsed();
    assert_eq!(n, CLIENTS * EACH);
    eprintln!(
        "{n} containers created, run and deleted by {CLIENTS} concurrent clients in {took:?}"
    );

    let settled = eventually(Duration::from_secs(10), || {
        (census(&d, true) == before).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "before: {before:?}\nafter:  {:?}",
        census(&d, true)
    );
    let allocations = std::fs::read_to_string(d.root.join("ipam.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&allocations).unwrap();
    assert!(
        v["allocations"].as_object().is_none_or(|a| a.is_empty()),
        "{allocations}"
    );
}

/// The same id created by several clients at once: one success, the rest ALREADY_EXISTS, and
/// concurrent deletes of one container: one success, the rest NOT_FOUND.
#[tokio::test]
async fn the_same_id_at_once_gives_one_success() {
    let d = Daemon::start();
    let c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = c.clone();
        let req = req.clone();
        tasks.push(tokio::spawn(async move { c.create(req).await }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.code(), Code::AlreadyExists, "{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(d.state_dirs().len(), 1);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let mut c = c.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            c.delete(pb::DeleteRequest { id, force: true }).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.code(), Code::NotFound, "{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert!(d.state_dirs().is_empty());
    assert!(d.cgroup_dirs().is_empty());
}

/// Clients that hang up mid-stream or mid-call cost nothing: the daemon's descriptors and the
/// shim's connections come back to where they were, and a create whose client went away
/// completes (or is rolled back), never half-made.
#[tokio::test]
async fn clients_that_hang_up_cost_nothing() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]); // writes nothing: an attach would idle
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let shim = read_pid(&d.root.join(&id).join("shim.pid")) as u32;
    let daemon = d.pid().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (daemon_fds, shim_fds) = (fd_count(daemon), fd_count(shim));

    for _ in 0..20 {
        let mut c = d.client().await;
        // An attach, a follow of the logs and a Wait, each dropped unfinished.
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(1);
        tx.send(pb::AttachRequest {
            kind: Some(pb::attach_request::Kind::Start(pb::AttachStart {
                id: id.clone(),
                stdin: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let attached = c
            .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap();
        let logs = c
            .logs(pb::LogsRequest {
                id: id.clone(),
                follow: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut w = c.clone();
        let wid = id.clone();
        let wait = tokio::spawn(async move {
            w.wait(pb::WaitRequest {
                id: wid,
                ..Default::default()
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        wait.abort();
        drop((attached, logs, tx, c));
    }
    let settled = eventually(Duration::from_secs(10), || {
        (fd_count(daemon) <= daemon_fds && fd_count(shim) <= shim_fds).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "daemon fds {} (were {daemon_fds}), shim fds {} (were {shim_fds})",
        fd_count(daemon),
        fd_count(shim)
    );

    // Creates whose client's deadline passes while the shim works: each is then either made
    // whole (and served) or not at all, never half.
    for ms in [5, 20, 60] {
        let r = d.request(&["sleep", "1000"]);
        let rid = r.id.clone();
        let mut req = tonic::Request::new(r);
        req.set_timeout(Duration::from_millis(ms));
        let first = c.create(req).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        match c
            .state(pb::StateRequest {
                id: rid.clone(),
                ..Default::default()
            })
            .await
        {
            Ok(st) => {
                let st = st.into_inner().container.unwrap();
                assert_eq!(st.status, pb::Status::Created as i32, "{ms} ms: {st:?}");
                delete(&mut c, &rid, true).await;
            }
            Err(e) => {
                assert_eq!(e.code(), Code::NotFound, "{ms} ms: {first:?} {e:?}");
                assert!(!d.root.join(&rid).exists(), "{ms} ms: half a container");
            }
        }
    }
    delete(&mut c, &id, true).await;
    assert!(d.state_dirs().is_empty());
    assert!(d.cgroup_dirs().is_empty());
}

// ---------------------------------------------------------------------------------------------
// bad input

/// Passes bytes through as they are: for sending malformed messages.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_call(d: &Daemon, method: &'static str, body: Vec<u8>) -> tonic::Status {
    let channel = execdriver_driver::server::connect(&d.socket)
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    match grpc.unary(tonic::Request::new(body), path, RawCodec).await {
        Ok(r) => panic!("{method}: accepted {:?}", r.into_inner()),
        Err(s) => s,
    }
}

/// A table of bad inputs: each gets a clean error (the right code, the field named), and the
/// daemon keeps serving.
#[tokio::test]
async fn bad_input_gets_clean_errors_and_the_daemon_keeps_serving() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let daemon = d.pid().unwrap() as i32;

    // Malformed protobuf.
    let create = "/execdriver.v1.ExecDriver/Create";
    for (what, body) in [
        ("garbage", vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]),
        ("truncated", vec![0x0a, 0x40, b'a', b'b']),
        ("bad utf-8 in a string", vec![0x0a, 0x02, 0xc3, 0x28]),
        ("wrong wire type", vec![0x0d, 0x01, 0x02, 0x03, 0x04]),
        ("nested garbage", vec![0x1a, 0x03, 0x0a, 0x09, 0x01]),
    ] {
        let s = raw_call(&d, create, body).await;
        assert_eq!(s.code(), Code::Internal, "{what}: {s:?}");
        assert!(s.message().contains("decod"), "{what}: {s:?}");
    }
    let s = raw_call(&d, "/execdriver.v1.ExecDriver/NoSuchMethod", vec![]).await;
    assert_eq!(s.code(), Code::Unimplemented, "{s:?}");

    // A message over the size limit.
    let mut big = d.request(&["true"]);
    big.labels.insert("k".into(), "v".repeat(17 << 20));
    let err = c.create(big).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");

    type Mutation = Box<dyn Fn(&mut pb::CreateRequest)>;
    let proc_mut = |f: fn(&mut pb::Process)| -> Mutation {
        Box::new(move |r: &mut pb::CreateRequest| f(r.process.as_mut().unwrap()))
    };
    let res = |f: fn(&mut pb::Resources)| -> Mutation {
        Box::new(move |r: &mut pb::CreateRequest| {
            let mut x = pb::Resources::default();
            f(&mut x);
            r.resources = Some(x);
        })
    };
    let cases: Vec<(&str, Mutation, Code, &str)> = vec![
        (
            "id with a slash",
            Box::new(|r| r.id = "a/b".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "id ..",
            Box::new(|r| r.id = "..".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "absolute id",
            Box::new(|r| r.id = "/etc".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "unicode id",
            Box::new(|r| r.id = "conteneur-é".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "NUL in id",
            Box::new(|r| r.id = "a\0b".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "oversized id",
            Box::new(|r| r.id = "x".repeat(65)),
            Code::InvalidArgument,
            "id",
        ),
        (
            "oversized arg",
            proc_mut(|p| p.args = vec!["x".repeat(70 * 1024)]),
            Code::InvalidArgument,
            "process.args[0]",
        ),
        (
            "NUL in an arg",
            proc_mut(|p| p.args = vec!["echo".into(), "a\0b".into()]),
            Code::InvalidArgument,
            "process.args[1]",
        ),
        (
            "NUL in env",
            proc_mut(|p| p.env = vec!["A=\0".into()]),
            Code::InvalidArgument,
            "process.env[0]",
        ),
        (
            "10k env entries",
            proc_mut(|p| p.env = (0..10_000).map(|i| format!("K{i}=v")).collect()),
            Code::InvalidArgument,
            "process.env",
        ),
        (
            "10k args",
            proc_mut(|p| p.args = vec!["true".into(); 10_000]),
            Code::InvalidArgument,
            "process.args",
        ),
        (
            "oversized env value",
            proc_mut(|p| p.env = vec![format!("A={}", "v".repeat(70 * 1024))]),
            Code::InvalidArgument,
            "process.env[0]",
        ),
        (
            "unicode user",
            proc_mut(|p| p.user = "utilisateur-ü".into()),
            Code::InvalidArgument,
            "process.user",
        ),
        (
            "oversized hostname",
            Box::new(|r| r.hostname = "h".repeat(100_000)),
            Code::InvalidArgument,
            "hostname",
        ),
        (
            "NUL in hostname",
            Box::new(|r| r.hostname = "a\0".into()),
            Code::InvalidArgument,
            "hostname",
        ),
        (
            "NUL in rootfs",
            Box::new(|r| r.rootfs = "/tmp\0x".into()),
            Code::InvalidArgument,
            "rootfs",
        ),
        (
            "NUL in a label key",
            Box::new(|r| {
                r.labels.insert("a\0".into(), "v".into());
            }),
            Code::InvalidArgument,
            "labels",
        ),
        (
            "10k labels",
            Box::new(|r| {
                r.labels = (0..10_000).map(|i| (format!("k{i}"), "v".into())).collect();
            }),
            Code::InvalidArgument,
            "labels",
        ),
        (
            "10k mounts",
            Box::new(|r| {
                r.mounts = vec![
                    pb::Mount {
                        source: "/tmp".into(),
                        destination: "/x".into(),
                        ..Default::default()
                    };
                    10_000
                ]
            }),
            Code::InvalidArgument,
            "mounts",
        ),
        (
            "negative memory",
            res(|r| r.memory = -5),
            Code::InvalidArgument,
            "resources.memory",
        ),
        (
            "negative cpu shares",
            res(|r| r.cpu_shares = -1),
            Code::InvalidArgument,
            "resources.cpu_shares",
        ),
        (
            "negative cpu quota",
            res(|r| r.cpu_quota = -7),
            Code::InvalidArgument,
            "resources.cpu_quota",
        ),
        (
            "negative pids limit",
            res(|r| r.pids_limit = -9),
            Code::InvalidArgument,
            "resources.pids_limit",
        ),
        (
            "negative blkio weight",
            res(|r| r.blkio_weight = -3),
            Code::InvalidArgument,
            "resources.blkio_weight",
        ),
        (
            "negative device numbers",
            res(|r| {
                r.devices = vec![pb::DeviceRule {
                    r#type: "c".into(),
                    major: -2,
                    minor: -2,
                    ..Default::default()
                }]
            }),
            Code::InvalidArgument,
            "resources.devices[0]",
        ),
        (
            "unknown network mode",
            Box::new(|r| {
                r.network = Some(pb::NetworkConfig {
                    mode: -1,
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "network.mode",
        ),
    ];
    for (what, mutate, code, field) in cases {
        let mut r = d.request(&["true"]);
        mutate(&mut r);
        let err = c.create(r).await.unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err:?}");
        assert!(
            err.message().starts_with(field),
            "{what}: {:?} should name {field}",
            err.message()
        );
    }

    // Unicode where it is allowed goes through as it is.
    let mut r = d.request(&["sh", "-c", "echo \"$GREETING\"; hostname"]);
    r.hostname = "hôte".into();
    r.labels.insert("clé".into(), "välue 🙂".into());
    r.process.as_mut().unwrap().env = vec!["GREETING=grüß dich 🙂".into()];
    let out = run(&mut c, r).await;
    assert_eq!(out.stdout(), "grüß dich 🙂\nhôte\n");

    // Ids and exec ids on the other calls.
    let live = d.request(&["sleep", "1000"]);
    let live_id = live.id.clone();
    c.run(live).await.unwrap();
    for id in ["a/b", "../x", "", "x\0"] {
        let err = c
            .state(pb::StateRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "state {id:?}");
        let err = c
            .kill(pb::KillRequest {
                id: id.into(),
                signal: 9,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "kill {id:?}");
        let err = c
            .delete(pb::DeleteRequest {
                id: id.into(),
                force: true,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "delete {id:?}");
    }
    let exec_id = "no-such-exec".to_string();
    let errs = vec![
        (
            "state",
            c.state(pb::StateRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
            })
            .await
            .unwrap_err(),
        ),
        (
            "start",
            c.start(pb::StartRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
            })
            .await
            .unwrap_err(),
        ),
        (
            "wait",
            c.wait(pb::WaitRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
            })
            .await
            .unwrap_err(),
        ),
        (
            "kill",
            c.kill(pb::KillRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
                signal: 15,
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
        (
            "resize",
            c.resize_pty(pb::ResizePtyRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
                size: Some(pb::ConsoleSize { rows: 10, cols: 10 }),
            })
            .await
            .unwrap_err(),
        ),
        (
            "close stdin",
            c.close_stdin(pb::CloseStdinRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
            })
            .await
            .unwrap_err(),
        ),
        (
            "logs",
            c.logs(pb::LogsRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
    ];
    for (what, err) in errs {
        assert_eq!(err.code(), Code::NotFound, "{what}: {err:?}");
    }
    for bad in ["a/b", "x\0", "é"] {
        let err = c
            .state(pb::StateRequest {
                id: live_id.clone(),
                exec_id: bad.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "exec id {bad:?}");
    }
    for signal in [-1, 65, i32::MAX] {
        let err = c
            .kill(pb::KillRequest {
                id: live_id.clone(),
                signal,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "signal {signal}");
    }
    let err = c
        .stop(pb::StopRequest {
            id: live_id.clone(),
            timeout_seconds: u32::MAX,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c
        .stats_stream(pb::StatsStreamRequest {
            id: live_id.clone(),
            interval_ms: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // An attach whose first message is not `start`.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(1);
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Stdin(b"x".to_vec())),
    })
    .await
    .unwrap();
    let err = c
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Still serving, the same daemon.
    assert!(alive(daemon));
    c.info(pb::InfoRequest {}).await.unwrap();
    let out = run(&mut c, d.request(&["echo", "still serving"])).await;
    assert_eq!(out.stdout(), "still serving\n");
    assert_eq!(exec_echo(&mut c, &live_id, "live").await.stdout, b"live\n");
    delete(&mut c, &live_id, true).await;
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty());
}

// ---------------------------------------------------------------------------------------------
// garbage collection

fn run_cleanup(d: &Daemon) -> (bool, String) {
    let out = d
        .netns()
        .command(bin("execdriverd"))
        .arg("--cleanup")
        .arg("--root")
        .arg(&d.root)
        .arg("--cgroup-parent")
        .arg(&d.cgroup_parent)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("execdriverd --cleanup");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `execdriverd --cleanup`: refused while a daemon runs on the root; otherwise removes what
/// containers whose shim is gone left (processes, cgroups, veths, mounts, addresses, state
/// directories), incomplete directories, temp files and stray empty cgroups, keeps the
/// containers whose shim runs, and says what it did.
#[tokio::test]
async fn cleanup_removes_the_leftovers_of_dead_containers_and_keeps_live_ones() {
    let mut d = bridge_daemon("198.18.203.0/24");
    let mut c = d.client().await;
    let keep = bridged(&d, &["sleep", "1000"]);
    let mut dead = bridged(&d, &["sh", "-c", "sleep 1000 & exec sleep 1001"]);
    dead.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWNET"]
        .map(String::from)
        .to_vec();
    let (keep_id, dead_id) = (keep.id.clone(), dead.id.clone());
    let keep_pid = c
        .run(keep)
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap()
        .pid;
    c.run(dead).await.unwrap();
    let dead_dir = d.root.join(&dead_id);
    let dead_shim = read_pid(&dead_dir.join("shim.pid"));
    let dead_procs = eventually(Duration::from_secs(5), || {
        let p: Vec<i32> = container_processes(&d)
            .into_iter()
            .filter(|p| *p != keep_pid)
            .collect();
        (p.len() >= 2).then_some(p)
    })
    .await
    .expect("the processes of the dead-to-be container");
    assert_eq!(d.netns().veths().len(), 2);

    let (ok, text) = run_cleanup(&d);
    assert!(!ok, "--cleanup ran beside a daemon: {text}");
    assert!(text.contains("another execdriverd"), "{text}");

    drop(c);
    d.stop_daemon(libc::SIGKILL);
    kill(Pid::from_raw(dead_shim), Signal::SIGKILL).unwrap();
    assert!(wait_gone(dead_shim, Duration::from_secs(5)).await);
    // Leftovers of other kinds: a mount under the dead container's state directory, a create
    // that never finished, a temp file of an interrupted write, a cgroup of no container.
    let mnt = dead_dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(mnt.clone());
    let half = d.root.join(unique("half"));
    std::fs::create_dir(&half).unwrap();
    std::fs::write(half.join("container.json"), "{\"truncated").unwrap();
    std::fs::write(d.root.join(".ipam.json.tmp"), "x").unwrap();
    let ghost = unique("ghost");
    let ghost_dirs: Vec<PathBuf> = {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        text.lines()
            .filter(|l| l.contains(" - cgroup"))
            .filter_map(|l| l.split(' ').nth(4))
            .map(|m| Path::new(m).join(&d.cgroup_parent).join(&ghost))
            .collect()
    };
    for g in &ghost_dirs {
        std::fs::create_dir_all(g).unwrap();
    }

    let (ok, text) = run_cleanup(&d);
    assert!(ok, "{text}");
    eprintln!("{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&dead_id) && l.contains("state directory removed")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(&keep_id) && l.contains("kept")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "{ghost}: no state directory and no process; removed"
    )));
    assert!(text.contains("ipam: released"), "{text}");
    for p in &dead_procs {
        assert!(!alive(*p), "pid {p} of the dead container still runs");
    }
    assert!(!dead_dir.exists());
    assert!(!half.exists());
    assert!(host_mounts_under(&d.root).is_empty());
    assert!(!d.root.join(".ipam.json.tmp").exists());
    for g in &ghost_dirs {
        assert!(!g.exists(), "{}", g.display());
    }
    let one = eventually(Duration::from_secs(5), || {
        (d.netns().veths().len() == 1).then_some(())
    });
    assert!(one.await.is_some(), "{:?}", d.netns().veths());
    let ipam = std::fs::read_to_string(d.root.join("ipam.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&ipam).unwrap();
    let allocations = v["allocations"].as_object().unwrap();
    assert_eq!(allocations.len(), 1, "{ipam}");
    assert!(alive(keep_pid));
    let cgroups = d.cgroup_dirs();
    assert!(cgroups.iter().all(|p| p.ends_with(&keep_id)), "{cgroups:?}");

    // Run again: nothing more to do.
    let (ok, again) = run_cleanup(&d);
    assert!(ok, "{again}");
    assert!(
        again.contains("0 state directories removed, 1 containers kept"),
        "{again}"
    );

    d.spawn();
    let mut c = d.client().await;
    assert_eq!(
        state(&mut c, &keep_id).await.status,
        pb::Status::Running as i32
    );
    delete(&mut c, &keep_id, true).await;
    assert!(d.netns().veths().is_empty());
    assert!(d.cgroup_dirs().is_empty());
}
