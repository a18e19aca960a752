//! A daemon out of file descriptors never strands a container: with its limit at 64 and 24
//! containers, 24 parallel `delete -f` calls may fail, but afterwards every container is either
//! gone (its shim and processes with it) or still listed and manageable, and a second round of
//! deletes with the limit restored ends them all.

use execdriver_tests::*;

#[tokio::test]
async fn deletes_under_fd_exhaustion_leave_every_container_manageable() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut ids = Vec::new();
    for _ in 0..24 {
        let r = d.request(&["sleep", "1000"]);
        ids.push(r.id.clone());
        c.run(r).await.unwrap();
    }
    let daemon = d.pid().unwrap();
    // The soft limit only: raising a hard limit again needs CAP_SYS_RESOURCE.
    let limit = |n: &str| {
        let ok = std::process::Command::new("prlimit")
            .args(["--pid", &daemon.to_string(), &format!("--nofile={n}:")])
            .status()
            .unwrap()
            .success();
        assert!(ok, "prlimit");
    };
    limit("64");
    let mut tasks = Vec::new();
    for id in &ids {
        let mut c = c.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            c.delete(pb::DeleteRequest { id, force: true })
                .await
                .is_ok()
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    limit("1024");
    // Every container left is still manageable: its state answers and delete -f ends it.
    let list = c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    for st in &list {
        c.state(pb::StateRequest {
            id: st.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{} is unmanageable: {e:?}", st.id));
        c.delete(pb::DeleteRequest {
            id: st.id.clone(),
            force: true,
        })
        .await
        .unwrap_or_else(|e| panic!("{} cannot be deleted: {e:?}", st.id));
    }
    let list = c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(list.is_empty(), "{list:?}");
    // No shim of this daemon runs on.
    let root = d.root.display().to_string();
    let stray = std::process::Command::new("pgrep")
        .args(["-f", &root])
        .output()
        .unwrap();
    let pids: Vec<_> = String::from_utf8_lossy(&stray.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|p| p.parse::<u32>() != Ok(daemon))
        .collect();
    assert!(pids.is_empty(), "processes left under {root}: {pids:?}");
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}
