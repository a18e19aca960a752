//! `delete -f` always ends its container: a shim whose socket was removed binds it again, a
//! container's nested cgroups go with it, what cannot be removed (a busy cgroup) is named in
//! the reply and retried by the daemon until it is gone, and a shim killed at any step of the
//! lifecycle leaves a container that is stopped with its exit recorded, deletable, and
//! nothing behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use execdriver_tests::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tonic::Code;

use super::{census, exec_echo, read_pid, settled_census, state, wait_gone, Census};

/// One of the container's cgroup directories (the pids hierarchy's when mounted).
fn a_cgroup_dir(d: &Daemon, id: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = d
        .cgroup_dirs()
        .into_iter()
        .filter(|p| p.ends_with(id))
        .collect();
    dirs.iter()
        .find(|p| p.to_string_lossy().contains("/pids/"))
        .or(dirs.first())
        .cloned()
        .unwrap_or_else(|| panic!("no cgroup of {id}"))
}

/// Nothing of the daemon's containers is left: no shim, process, cgroup, state directory or
/// mount (the daemon's own descriptors are not compared: its connections come and go).
fn assert_nothing_left(after: &Census, before: &Census, d: &Daemon) {
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
        "left behind: {after:?} (before: {before:?})\n{}",
        d.log()
    );
}

#[tokio::test]
async fn a_shim_whose_socket_was_removed_binds_it_again() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let before = settled_census(&d, false).await;
    let r = d.request(&["sleep", "1000"]);
    let id = r.id.clone();
    c.run(r).await.unwrap();
    let sock = d.root.join(&id).join("shim.sock");
    std::fs::remove_file(&sock).unwrap();
    let st = state(&mut c, &id).await;
    assert_eq!(st.status, pb::Status::Running as i32, "{st:?}");
    assert!(sock.exists());
    assert_eq!(exec_echo(&mut c, &id, "back").await.stdout, b"back\n");
    assert!(d.log().contains("bound it again") || d.log().contains("bound its missing socket"));
    super::delete(&mut c, &id, true).await;
    assert_nothing_left(&settled_census(&d, false).await, &before, &d);
}

#[tokio::test]
async fn nested_cgroups_go_with_their_container() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let before = settled_census(&d, false).await;
    let r = d.request(&["sleep", "1000"]);
    let id = r.id.clone();
    c.run(r).await.unwrap();
    let init = state(&mut c, &id).await.pid;
    // As a container with a writable cgroupfs would: a cgroup of its own, its init moved in.
    let nested = a_cgroup_dir(&d, &id).join("nested").join("deeper");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(nested.join("cgroup.procs"), init.to_string()).unwrap();
    let resp = c
        .delete(pb::DeleteRequest {
            id: id.clone(),
            force: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.leftovers.is_empty(), "{:?}", resp.leftovers);
    assert!(!nested.exists());
    assert!(wait_gone(init, Duration::from_secs(5)).await);
    assert_nothing_left(&settled_census(&d, false).await, &before, &d);
}

/// Unmounts on drop, so a failing test leaves no mount on the host's cgroupfs.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn mount_tmpfs(on: &Path) -> Mounted {
    nix::mount::mount(
        Some("none"),
        on,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("mounting a tmpfs on {}: {e}", on.display()));
    Mounted(on.to_owned())
}

#[tokio::test]
async fn what_a_delete_cannot_remove_is_named_and_retried_until_gone() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let before = settled_census(&d, false).await;
    let r = d.request(&["sleep", "1000"]);
    let (id, again) = (r.id.clone(), r.clone());
    c.run(r).await.unwrap();
    let init = state(&mut c, &id).await.pid;
    let shim = read_pid(&d.root.join(&id).join("shim.pid"));
    // A cgroup below the container's that cannot be removed while something is mounted on it.
    let stuck = a_cgroup_dir(&d, &id).join("stuck");
    std::fs::create_dir(&stuck).unwrap();
    let mounted = mount_tmpfs(&stuck);

    let resp = c
        .delete(pb::DeleteRequest {
            id: id.clone(),
            force: true,
        })
        .await
        .expect("delete -f ends the container even when its cgroup stays")
        .into_inner();
    assert!(
        resp.leftovers.iter().any(|l| l.contains("stuck")),
        "{:?}",
        resp.leftovers
    );
    // The container is ended and gone from the daemon; its shim and processes with it.
    assert!(wait_gone(init, Duration::from_secs(5)).await);
    assert!(wait_gone(shim, Duration::from_secs(5)).await);
    let err = c
        .state(pb::StateRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(!d.root.join(&id).exists());
    // The id's cgroup is still there: a new container of that id is refused, not mixed in.
    let err = c.run(again.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("exists"), "{err:?}");

    // Once it can be removed, the daemon does (it retries every 10 s).
    drop(mounted);
    let gone = eventually(Duration::from_secs(30), || {
        (d.cgroup_dirs().is_empty() && !d.root.join(".leftovers").exists()).then_some(())
    })
    .await;
    assert!(gone.is_some(), "{:?}\n{}", d.cgroup_dirs(), d.log());
    assert!(d.log().contains("all removed"), "{}", d.log());
    // And the id is free again.
    c.run(again).await.unwrap();
    super::delete(&mut c, &id, true).await;
    assert_nothing_left(&settled_census(&d, false).await, &before, &d);
}

/// Where in its life a container's shim is killed.
#[derive(Debug, Clone, Copy)]
enum Step {
    Created,
    Running,
    Execing,
    Paused,
    Exited,
}

#[tokio::test]
async fn a_shim_killed_at_any_step_leaves_a_stopped_container_and_nothing_behind() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let before = settled_census(&d, false).await;
    for step in [
        Step::Created,
        Step::Running,
        Step::Execing,
        Step::Paused,
        Step::Exited,
    ] {
        let cmd: &[&str] = match step {
            Step::Exited => &["true"],
            _ => &["sh", "-c", "sleep 1000 & exec sleep 1001"],
        };
        let r = d.request(cmd);
        let id = r.id.clone();
        match step {
            Step::Created => {
                c.create(r).await.unwrap();
            }
            _ => {
                c.run(r).await.unwrap();
            }
        }
        match step {
            Step::Execing => {
                c.exec(pb::ExecRequest {
                    id: id.clone(),
                    process: Some(pb::Process {
                        args: vec!["sleep".into(), "1002".into()],
                        ..Default::default()
                    }),
                    start: true,
                    ..Default::default()
                })
                .await
                .unwrap();
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
            _ => {}
        }
        let shim = read_pid(&d.root.join(&id).join("shim.pid"));
        kill(Pid::from_raw(shim), Signal::SIGKILL).unwrap();
        assert!(wait_gone(shim, Duration::from_secs(5)).await, "{step:?}");
        // Stopped, with how it ended recorded; every process of it gone.
        let st = state(&mut c, &id).await;
        assert_eq!(st.status, pb::Status::Stopped as i32, "{step:?}: {st:?}");
        let exit = st.exit.unwrap_or_else(|| panic!("{step:?}: no exit"));
        if matches!(step, Step::Exited) {
            assert_eq!(exit.exit_code, Some(0), "{step:?}: {exit:?}");
        } else {
            assert!(exit.reason.contains("shim"), "{step:?}: {exit:?}");
        }
        let procs = eventually(Duration::from_secs(15), || {
            super::container_processes(&d).is_empty().then_some(())
        })
        .await;
        assert!(procs.is_some(), "{step:?}: processes run unsupervised");
        // A plain delete works (the container is stopped) and leaves nothing.
        super::delete(&mut c, &id, false).await;
        let now = census(&d, false);
        assert_nothing_left(&now, &before, &d);
    }
}
