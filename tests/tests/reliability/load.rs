//! Load: 100 concurrent containers with a census before and after, the same id from several
//! clients at once, and clients that hang up mid-stream or mid-call.

use std::time::{Duration, Instant};

use execdriver_tests::*;
use tonic::Code;

use super::{bridge_daemon, bridged, census, delete, fd_count, read_pid, settled_census};

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
