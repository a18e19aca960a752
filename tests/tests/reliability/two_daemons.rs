//! Daemons on different roots with the default cgroup parent keep to their own cgroups: the
//! same container id in each lands in different cgroups, `pids` and `kill --all` see only their
//! own, and a cgroup that exists already is refused, never adopted.

use execdriver_tests::*;
use tonic::Code;

#[tokio::test]
async fn daemons_on_different_roots_never_share_cgroups() {
    let a = Daemon::start_with_default_cgroup_parent();
    let b = Daemon::start_with_default_cgroup_parent();
    assert_ne!(a.cgroup_parent, b.cgroup_parent);
    assert!(
        a.cgroup_parent.starts_with("execdriver-"),
        "{}",
        a.cgroup_parent
    );
    let id = unique("same");
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    for (d, c) in [(&a, &mut ca), (&b, &mut cb)] {
        let mut r = d.request(&["sleep", "1000"]);
        r.id = id.clone();
        c.run(r).await.unwrap();
    }
    let pids = |c: &mut Client| {
        let id = id.clone();
        let mut c = c.clone();
        async move {
            c.pids(pb::PidsRequest { id })
                .await
                .unwrap()
                .into_inner()
                .pids
        }
    };
    let (pa, pb_) = (pids(&mut ca).await, pids(&mut cb).await);
    assert_eq!(pa.len(), 1, "{pa:?}");
    assert_eq!(pb_.len(), 1, "{pb_:?}");
    assert_ne!(pa, pb_);
    // Each daemon's cgroups are under its own parent.
    assert!(!a.cgroup_dirs().is_empty());
    assert!(!b.cgroup_dirs().is_empty());
    // kill --all on one leaves the other's container running.
    ca.kill(pb::KillRequest {
        id: id.clone(),
        signal: 9,
        all: true,
        ..Default::default()
    })
    .await
    .unwrap();
    ca.wait(pb::WaitRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let st = cb
        .state(pb::StateRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap();
    assert_eq!(st.status, pb::Status::Running as i32, "{st:?}");

    // A cgroup of that name existing already (a leftover, another daemon's) is not adopted.
    let taken = unique("taken");
    let dirs = cgroups_under(&a.cgroup_parent);
    let hierarchy = dirs[0].parent().unwrap().to_path_buf();
    std::fs::create_dir(hierarchy.join(&taken)).unwrap();
    let mut r = a.request(&["true"]);
    r.id = taken.clone();
    let err = ca.create(r).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("exists already"), "{err:?}");
    let _ = std::fs::remove_dir(hierarchy.join(&taken));
    for c in [&mut ca, &mut cb] {
        let _ = c
            .delete(pb::DeleteRequest {
                id: id.clone(),
                force: true,
            })
            .await;
    }
}

/// Two daemons in one network namespace never share a bridge (their addresses would collide):
/// the second is refused at start, naming the root of the first.
#[tokio::test]
async fn a_second_daemon_on_the_same_bridge_is_refused() {
    let bridge = unique_ifname("edbr");
    let a = Daemon::start_in_netns(&["--bridge", &bridge, "--subnet", "198.18.207.0/24"], &[]);
    let dir = TempDir::new("edt2");
    let out = a
        .netns()
        .command(bin("execdriverd"))
        .arg("--root")
        .arg(dir.path.join("root"))
        .arg("--socket")
        .arg(dir.path.join("d.sock"))
        .args(["--bridge", &bridge, "--subnet", "198.18.208.0/24"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--bridge {bridge}: another execdriverd"))
            && err.contains(&a.root.display().to_string()),
        "{err}"
    );
    assert!(!dir.path.join("d.sock").exists());
    // The first daemon still serves.
    let mut c = a.client().await;
    c.info(pb::InfoRequest {}).await.unwrap();
}
