//! `--cgroups-when-limited memory,cpuset`: containers without a memory (cpuset) limit join the
//! cgroup parent's memory (cpuset) cgroup, shared; those with one get their own; every other
//! hierarchy stays each container's own; parked shims serve the unlimited ones; a delete
//! touches no other container; an Update asking for a limit of a shared controller is refused.

use super::*;
use execdriver_tests::eventually;
use std::time::Duration;

/// `pid`'s cgroup path in the v1 hierarchy holding `controller` (/proc/PID/cgroup).
fn cgroup_of(pid: i32, controller: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_owned())
        })
        .unwrap_or_else(|| panic!("{pid}: no {controller} line in {text}"))
}

#[tokio::test]
async fn unlimited_containers_share_the_parents_memory_and_cpuset_cgroups() {
    if !has_v1("memory") {
        println!("skipped: no v1 memory hierarchy on this host");
        return;
    }
    let d = Daemon::start_with(&[
        "--cgroups-when-limited",
        "memory,cpuset",
        "--shim-pool",
        "1",
    ]);
    let mut c = d.client().await;
    let parent = format!("/{}", d.cgroup_parent);
    // The pool's set has no memory cgroup: its nursery waits in the parent's.
    let parked_memory = eventually(Duration::from_secs(10), || {
        d.pool_cgroup_dirs()
            .iter()
            .filter(|p| p.starts_with("/sys/fs/cgroup/pids"))
            .any(|p| {
                std::fs::read_to_string(p.join("cgroup.procs")).is_ok_and(|t| !t.trim().is_empty())
            })
            .then_some(())
    })
    .await;
    // The nursery is in: the shim reports itself parked right after.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(parked_memory.is_some(), "no pool set: {}", d.log());
    assert!(
        !d.pool_cgroup_dirs()
            .iter()
            .any(|p| p.starts_with("/sys/fs/cgroup/memory")),
        "{:?}",
        d.pool_cgroup_dirs()
    );

    let mut ids = Vec::new();
    for memory in [0, 0, 64 * MIB] {
        let req = with_resources(&d, &["sleep", "1000"], |r| {
            r.memory = memory;
            if memory != 0 {
                r.cpuset_cpus = "0".into();
            }
        });
        ids.push(req.id.clone());
        c.run(req)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    }
    let pids: Vec<i32> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(state(&mut c, id).await.pid);
        }
        v
    };
    // The first unlimited one was made from the parked shim.
    let shim_log = std::fs::read_to_string(d.root.join(&ids[0]).join("shim.log")).unwrap();
    assert!(shim_log.contains("made from a parked shim"), "{shim_log}");
    for (i, id) in ids.iter().enumerate() {
        let own = format!("{parent}/{id}");
        assert_eq!(cgroup_of(pids[i], "pids"), own);
        assert_eq!(cgroup_of(pids[i], "cpu"), own);
        let memory = cgroup_of(pids[i], "memory");
        let cpuset = cgroup_of(pids[i], "cpuset");
        if i < 2 {
            assert_eq!(memory, parent, "container {i}");
            assert_eq!(cpuset, parent, "container {i}");
            assert!(cgroup_dir(&d.cgroup_parent, id, "memory").is_some_and(|p| !p.exists()));
            assert!(cgroup_dir(&d.cgroup_parent, id, "cpuset").is_some_and(|p| !p.exists()));
        } else {
            assert_eq!(memory, own);
            assert_eq!(cpuset, own);
            assert_eq!(cgroup_file(&d, id, "cpuset", "cpuset.cpus"), "0");
            assert_eq!(
                cgroup_file(&d, id, "memory", "memory.limit_in_bytes"),
                (64 * MIB).to_string()
            );
        }
    }
    // Stats: no memory figures for a sharing container, the limited one's as ever.
    assert!(stats(&mut c, &ids[0]).await.memory.is_none());
    assert!(stats(&mut c, &ids[2]).await.memory.is_some());
    // A memory limit later needs a memory cgroup of its own: refused, naming the field.
    let err = c
        .update(pb::UpdateRequest {
            id: ids[0].clone(),
            resources: Some(pb::Resources {
                memory: 64 * MIB,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("resources.memory"),
        "{}",
        err.message()
    );
    let err = c
        .update(pb::UpdateRequest {
            id: ids[0].clone(),
            resources: Some(pb::Resources {
                cpuset_cpus: "0".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("resources.cpuset_cpus"),
        "{}",
        err.message()
    );
    // A delete takes its own processes only: the other sharing container runs on.
    force_delete(&mut c, &ids[0]).await;
    assert!(!std::path::Path::new(&format!("/proc/{}", pids[0])).exists());
    assert_eq!(
        state(&mut c, &ids[1]).await.status,
        pb::Status::Running as i32
    );
    let shared = cgroup_dir(&d.cgroup_parent, "", "memory").unwrap();
    let procs = std::fs::read_to_string(shared.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == pids[1].to_string()),
        "{procs}"
    );
    force_delete(&mut c, &ids[1]).await;
    force_delete(&mut c, &ids[2]).await;
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}
