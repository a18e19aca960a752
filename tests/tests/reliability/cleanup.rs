//! `execdriverd --cleanup`: refused while a daemon runs on the root; otherwise it removes
//! what dead containers left and keeps the live ones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use execdriver_tests::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{
    alive, bridge_daemon, bridged, container_processes, delete, read_pid, state, wait_gone,
};

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
