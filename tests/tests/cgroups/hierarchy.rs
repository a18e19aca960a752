//! Where a container's cgroups are: a parent chosen per container, and delete emptying and
//! removing every cgroup it made in every hierarchy.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use execdriver_shim::cgroups::Layout;
use execdriver_tests::{attach_collect, eventually, pb, run, unique, CgroupGuard, Daemon};

use super::{with_resources, ChildGuard};

#[tokio::test]
async fn delete_empties_and_removes_every_cgroup() {
    let d = Daemon::start();
    let mut c = d.client().await;
    // Without NEWPID nothing ends the init's children when it exits: the cgroup does.
    let marker = format!("/tmp/{}", unique("escaped"));
    let mut req = d.request(&[
        "sh",
        "-c",
        &format!("sleep 1000 & echo $! > {marker}; exit 0"),
    ]);
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWNET"]
        .map(String::from)
        .to_vec();
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.exit.exit_code, Some(0));
    let pid: i32 = std::fs::read_to_string(d.rootfs.join(marker.trim_start_matches('/')))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eventually(Duration::from_secs(5), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await
    .expect("the init's orphan should be killed through the cgroup");
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .unwrap();
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());

    // A process left in the cgroups after the init died (as one escaping PID-namespace
    // teardown would be) is killed by Delete, and every directory goes.
    let req = d.request(&["true"]);
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.exit.exit_code, Some(0));
    let straggler = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut straggler = ChildGuard(straggler);
    let layout = Layout::detect().unwrap();
    let mut dirs = Vec::new();
    for h in &layout.hierarchies {
        let dir = h.mountpoint.join(&d.cgroup_parent).join(&id);
        assert!(dir.is_dir(), "{} missing before Delete", dir.display());
        std::fs::write(dir.join("cgroup.procs"), straggler.0.id().to_string()).unwrap();
        dirs.push(dir);
    }
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .unwrap();
    let status = straggler.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    for dir in &dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());

    // A cgroup nested in the container's (as one with a writable cgroupfs may make): the
    // shim's one rmdir per directory is refused, it walks the tree, and every directory goes.
    let req = d.request(&["true"]);
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.exit.exit_code, Some(0));
    let mut nested = Vec::new();
    for h in &layout.hierarchies {
        let dir = h.mountpoint.join(&d.cgroup_parent).join(&id).join("inner");
        std::fs::create_dir(&dir).unwrap();
        nested.push(dir);
    }
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .unwrap();
    for dir in &nested {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

#[tokio::test]
async fn cgroup_parent_can_be_chosen_per_container() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let parent = format!("{}/nested", unique("edtest-parent"));
    // Dropped in reverse: the nested parent first, then the top.
    let _top = CgroupGuard(parent.split('/').next().unwrap().to_owned());
    let _nested = CgroupGuard(parent.clone());
    let req = with_resources(&d, &["cat", "/proc/self/cgroup"], |r| {
        r.cgroup_parent = parent.clone()
    });
    let id = req.id.clone();
    let out = run(&mut c, req).await;
    assert!(
        out.stdout().contains(&format!("/{parent}/{id}")),
        "{}",
        out.stdout()
    );
    for h in Layout::detect().unwrap().hierarchies {
        assert!(!h.mountpoint.join(&parent).join(&id).exists());
    }
}

/// A cgroup mount hidden under another (a tmpfs mounted over /sys/fs/cgroup/unified) is no
/// hierarchy: the daemon asks the kernel (statfs), not the mount table, so Info does not list
/// it and no container's cgroup is made there (before, every delete waited on its rmdir).
#[tokio::test]
async fn a_hierarchy_hidden_under_another_mount_is_not_used() {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.procs").exists() {
        eprintln!("skipped: no cgroup2 hierarchy at {}", unified.display());
        return;
    }
    // The tmpfs is in a mount namespace of the daemon's own (private: the host never sees it).
    let d = Daemon::start_wrapped(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        "mount -t tmpfs none /sys/fs/cgroup/unified && exec \"$@\"",
        "sh",
    ]);
    let mut c = d.client().await;
    let info = c.info(pb::InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.cgroup_mode, "v1", "{info:?}");
    assert!(
        !info.cgroup_hierarchies.iter().any(|h| h == "v2"),
        "{:?}",
        info.cgroup_hierarchies
    );
    // This host offers hugetlb only through the v2 hierarchy.
    let real = Layout::detect().unwrap();
    if !real
        .hierarchies
        .iter()
        .any(|h| !h.v2 && h.controllers.iter().any(|c| c == "hugetlb"))
    {
        assert!(
            !info.cgroup_controllers.iter().any(|c| c == "hugetlb"),
            "{:?}",
            info.cgroup_controllers
        );
    }
    for _ in 0..3 {
        let r = d.request(&["true"]);
        let id = r.id.clone();
        c.run(r).await.unwrap();
        c.wait(pb::WaitRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        let resp = c
            .delete(pb::DeleteRequest { id, force: false })
            .await
            .unwrap()
            .into_inner();
        assert!(resp.leftovers.is_empty(), "{:?}", resp.leftovers);
    }
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
}
