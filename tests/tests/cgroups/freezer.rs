//! The freezer: pause and resume of a running container, and a container that starts frozen.

use std::time::Duration;

use execdriver_tests::{eventually, pb, unique, Daemon};
use tonic::Code;

use super::{cgroup_file, force_delete, has_v1, state, stats};

#[tokio::test]
async fn pause_freezes_a_counter_and_resume_continues_it() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let counter = format!("/tmp/{}", unique("counter"));
    let script = format!("i=0; while :; do i=$((i+1)); echo $i >> {counter}; usleep 20000; done");
    let req = d.request(&["sh", "-c", &script]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let file = d.rootfs.join(counter.trim_start_matches('/'));
    let read = || -> u64 {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .next_back()
            .unwrap_or(0)
    };
    eventually(Duration::from_secs(5), || (read() >= 3).then_some(()))
        .await
        .expect("the counter does not run");

    let st = c
        .pause(pb::PauseRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap();
    assert_eq!(st.status, pb::Status::Paused as i32);
    assert_eq!(state(&mut c, &id).await.status, pb::Status::Paused as i32);
    if has_v1("freezer") {
        assert_eq!(cgroup_file(&d, &id, "freezer", "freezer.state"), "FROZEN");
    }
    let frozen_at = read();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(read(), frozen_at, "the counter advanced while paused");
    // Stats and Pids still answer while paused; Pause and Start do not.
    assert!(stats(&mut c, &id).await.pids.unwrap().current >= 1);
    let err = c
        .pause(pb::PauseRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = c
        .start(pb::StartRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // Delete without force refuses a paused container.
    let err = c
        .delete(pb::DeleteRequest {
            id: id.clone(),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    let st = c
        .resume(pb::ResumeRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap();
    assert_eq!(st.status, pb::Status::Running as i32);
    eventually(Duration::from_secs(5), || {
        (read() > frozen_at + 2).then_some(())
    })
    .await
    .expect("the counter did not continue after Resume");
    let err = c
        .resume(pb::ResumeRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // SIGKILL reaches a paused container (it is thawed after the signal).
    c.pause(pb::PauseRequest { id: id.clone() }).await.unwrap();
    c.kill(pb::KillRequest {
        id: id.clone(),
        signal: 9,
        all: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let exit = tokio::time::timeout(
        Duration::from_secs(10),
        c.wait(pb::WaitRequest {
            id: id.clone(),
            ..Default::default()
        }),
    )
    .await
    .expect("a killed paused container should end")
    .unwrap()
    .into_inner()
    .exit
    .unwrap();
    assert_eq!(exit.signal, Some(9));
    assert!(!exit.oom_killed);
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .unwrap();

    // A forced delete of a paused container works too.
    let req = d.request(&["sleep", "100"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    c.pause(pb::PauseRequest { id: id.clone() }).await.unwrap();
    force_delete(&mut c, &id).await;
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

/// resources.freezer FROZEN: the container starts paused (libcontainer's freezer field
/// through the API); Resume lets it run; Update cannot set it.
#[tokio::test]
async fn a_frozen_start_is_paused_until_resume() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let marker = format!("/tmp/{}", unique("thawed"));
    let script = format!("usleep 100000; echo yes > {marker}; sleep 1000");
    let mut req = d.request(&["sh", "-c", &script]);
    let id = req.id.clone();
    req.resources = Some(pb::Resources {
        freezer: "FROZEN".into(),
        ..Default::default()
    });
    c.run(req).await.unwrap();
    assert_eq!(state(&mut c, &id).await.status, pb::Status::Paused as i32);
    if has_v1("freezer") {
        assert_eq!(cgroup_file(&d, &id, "freezer", "freezer.state"), "FROZEN");
    }
    let file = d.rootfs.join(marker.trim_start_matches('/'));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!file.exists(), "the command ran while frozen");
    let err = c
        .update(pb::UpdateRequest {
            id: id.clone(),
            resources: Some(pb::Resources {
                freezer: "THAWED".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("resources.freezer"), "{err:?}");
    c.resume(pb::ResumeRequest { id: id.clone() })
        .await
        .unwrap();
    assert_eq!(state(&mut c, &id).await.status, pb::Status::Running as i32);
    eventually(Duration::from_secs(5), || file.exists().then_some(()))
        .await
        .expect("the command did not run after Resume");
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}
