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
    // (Its parked shims, `--state ROOT/.pool/TOKEN`, are no container's.)
    let stray = std::process::Command::new("pgrep")
        .args(["-af", &root])
        .output()
        .unwrap();
    let pids: Vec<_> = String::from_utf8_lossy(&stray.stdout)
        .lines()
        .filter(|l| !l.contains("/.pool/"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|p| p.parse::<u32>() != Ok(daemon))
        .collect();
    assert!(pids.is_empty(), "processes left under {root}: {pids:?}");
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

/// The whole lifecycle (run, exec, state, delete -f) with the daemon a few descriptors short
/// of its limit, at several distances from it, so each step meets EMFILE somewhere: every
/// call answers (success or an error), and afterwards every container is either gone or
/// listed and manageable, and nothing is left once they are deleted.
#[tokio::test]
async fn the_lifecycle_near_fd_exhaustion_strands_nothing() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let before = super::settled_census(&d, false).await;
    let daemon = d.pid().unwrap();
    let limit = |n: usize| {
        let ok = std::process::Command::new("prlimit")
            .args(["--pid", &daemon.to_string(), &format!("--nofile={n}:")])
            .status()
            .unwrap()
            .success();
        assert!(ok, "prlimit");
    };
    let mut failures = 0;
    for headroom in [1, 3, 5, 8, 12, 16] {
        limit(super::fd_count(daemon) + headroom);
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let mut c = c.clone();
            let r = d.request(&["sleep", "1000"]);
            tasks.push(tokio::spawn(async move {
                let id = r.id.clone();
                let mut errors = 0;
                let calls = tokio::time::timeout(std::time::Duration::from_secs(60), async {
                    errors += c.run(r).await.is_err() as usize;
                    errors += c
                        .exec_sync(pb::ExecSyncRequest {
                            id: id.clone(),
                            process: Some(pb::Process {
                                args: vec!["true".into()],
                                ..Default::default()
                            }),
                            timeout_seconds: 10,
                        })
                        .await
                        .is_err() as usize;
                    errors += c
                        .state(pb::StateRequest {
                            id: id.clone(),
                            ..Default::default()
                        })
                        .await
                        .is_err() as usize;
                    errors += c
                        .delete(pb::DeleteRequest { id, force: true })
                        .await
                        .is_err() as usize;
                })
                .await;
                assert!(calls.is_ok(), "a call hung under descriptor pressure");
                errors
            }));
        }
        for t in tasks {
            failures += t.await.unwrap();
        }
        limit(1024);
    }
    // Every container left answers and is ended by delete -f.
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
        super::delete(&mut c, &st.id, true).await;
    }
    // A create that failed for want of descriptors may not have removed its directory; the
    // daemon's sweep does (every 10 s).
    let _ = eventually(std::time::Duration::from_secs(25), || {
        d.state_dirs().is_empty().then_some(())
    })
    .await;
    let after = super::settled_census(&d, false).await;
    assert_eq!(
        (
            after.shims,
            after.processes,
            after.cgroups,
            after.state_dirs,
            after.mounts
        ),
        (
            before.shims,
            before.processes,
            before.cgroups,
            before.state_dirs,
            before.mounts
        ),
        "left behind after {failures} failed calls: {after:?}\n{}",
        d.log()
    );
    // The pressure was real: some calls failed on it.
    assert!(failures > 0, "no call met the limit");
}

/// A daemon started with a low open-files soft limit (a shell's 1024) raises its own to the
/// hard limit (one descriptor per container: thousands need more), while its containers keep
/// the soft limit it was started with.
#[tokio::test]
async fn the_daemon_raises_its_open_files_limit_and_containers_keep_the_old_one() {
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    if hard <= 512 {
        eprintln!("skipped: hard open-files limit {hard} too low to show a raise");
        return;
    }
    let d = Daemon::start_wrapped(&["prlimit", "--nofile=512:", "--"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid().unwrap())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], hard.to_string(), "{line}");
    assert_eq!(fields[4], hard.to_string(), "{line}");
    let mut c = d.client().await;
    let out = run(&mut c, d.request(&["sh", "-c", "ulimit -Sn; ulimit -Hn"])).await;
    assert_eq!(out.stdout(), format!("512\n{hard}\n"));
}
