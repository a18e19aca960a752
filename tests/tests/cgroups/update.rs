//! Update: new limits for a running container, written to its cgroups.

use execdriver_tests::{pb, Daemon};
use tonic::Code;

use super::{cgroup_dir, cgroup_file, force_delete, with_resources, MIB};

#[tokio::test]
async fn update_changes_limits_of_a_running_container() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = with_resources(&d, &["sleep", "100"], |r| {
        r.memory = 64 * MIB;
        r.memory_swap = 64 * MIB;
        r.pids_limit = 50;
        r.cpu_shares = 512;
    });
    let id = req.id.clone();
    c.run(req).await.unwrap();
    assert_eq!(
        cgroup_file(&d, &id, "memory", "memory.limit_in_bytes"),
        (64 * MIB).to_string()
    );

    let r = c
        .update(pb::UpdateRequest {
            id: id.clone(),
            resources: Some(pb::Resources {
                memory: 128 * MIB,
                memory_swap: 256 * MIB,
                pids_limit: 100,
                cpu_quota: 50_000,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .resources
        .unwrap();
    assert_eq!(r.memory, 128 * MIB);
    assert_eq!(r.pids_limit, 100);
    assert_eq!(r.cpu_shares, 512, "untouched limits stay");
    for (ctrl, file, want) in [
        ("memory", "memory.limit_in_bytes", (128 * MIB).to_string()),
        (
            "memory",
            "memory.memsw.limit_in_bytes",
            (256 * MIB).to_string(),
        ),
        ("pids", "pids.max", "100".into()),
        ("cpu", "cpu.cfs_quota_us", "50000".into()),
        ("cpu", "cpu.shares", "512".into()),
    ] {
        let path = cgroup_dir(&d.cgroup_parent, &id, ctrl).map(|p| p.join(file));
        if file.contains("memsw") && !path.is_some_and(|p| p.exists()) {
            continue; // no swap accounting on this kernel
        }
        assert_eq!(cgroup_file(&d, &id, ctrl, file), want, "{file}");
    }
    // The limits in force are what container.json says now.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.root.join(&id).join("container.json")).unwrap())
            .unwrap();
    assert_eq!(json["cgroups"]["memory"], 128 * MIB);
    assert_eq!(json["cgroups"]["pids_limit"], 100);
    // Lifting a limit.
    c.update(pb::UpdateRequest {
        id: id.clone(),
        resources: Some(pb::Resources {
            pids_limit: -1,
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    assert_eq!(cgroup_file(&d, &id, "pids", "pids.max"), "max");

    // Bad values name the field.
    for (res, field) in [
        (
            pb::Resources {
                memory: 10,
                ..Default::default()
            },
            "resources.memory",
        ),
        (
            pb::Resources {
                cpu_shares: 1,
                ..Default::default()
            },
            "resources.cpu_shares",
        ),
        (
            pb::Resources {
                cpuset_cpus: "4095".into(),
                ..Default::default()
            },
            "resources.cpuset_cpus",
        ),
        (
            // Below the memory limit in force (128 MiB): checked by the shim.
            pb::Resources {
                memory_swap: 100 * MIB,
                ..Default::default()
            },
            "resources.memory_swap",
        ),
    ] {
        let err = c
            .update(pb::UpdateRequest {
                id: id.clone(),
                resources: Some(res),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().starts_with(&format!("{field}:")),
            "{:?} should name {field}",
            err.message()
        );
    }
    assert_eq!(
        cgroup_file(&d, &id, "memory", "memory.limit_in_bytes"),
        (128 * MIB).to_string(),
        "a refused update changes nothing"
    );

    force_delete(&mut c, &id).await;
    let err = c
        .update(pb::UpdateRequest {
            id: id.clone(),
            resources: Some(pb::Resources {
                memory: 64 * MIB,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}
