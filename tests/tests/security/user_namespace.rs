//! User namespaces: the container's root is an unprivileged uid on the host.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use execdriver_tests::{attach_collect, parse_status, pb, run, TempDir};

use super::{daemon, exec_sync, exec_sync_as, force_delete, security, sh};

/// Gives `dir` and everything under it to `uid`:`gid` (what an engine does to an image for a
/// user namespace, so the container's root owns its files).
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).unwrap();
    if std::fs::symlink_metadata(dir).unwrap().is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

#[tokio::test]
async fn user_namespace_root_is_an_unprivileged_host_uid() {
    let d = daemon();
    let mut c = d.client().await;
    chown_tree(&d.rootfs, 100_000, 100_000);
    let data = TempDir::new("edt-userns");
    std::fs::set_permissions(&data.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = TempDir::new("edt-secret");
    std::fs::write(secret.path.join("secret"), "host root only").unwrap();
    std::fs::set_permissions(
        secret.path.join("secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let map = pb::IdMapping {
        container_id: 0,
        host_id: 100_000,
        size: 65536,
    };
    let mut req = sh(
        &d,
        "id -u; id -g; cat /proc/self/uid_map; touch /data/by-root; \
         cat /secret/secret 2>&1; exec sleep 100",
    );
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"]
        .map(String::from)
        .to_vec();
    let s = security(&mut req);
    s.uid_mappings = vec![map];
    s.gid_mappings = vec![map];
    req.mounts = vec![
        pb::Mount {
            source: data.path.display().to_string(),
            destination: "/data".into(),
            writable: true,
            private: false,
        },
        pb::Mount {
            source: secret.path.display().to_string(),
            destination: "/secret".into(),
            writable: false,
            private: false,
        },
    ];
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let mut c2 = c.clone();
    let id2 = id.clone();
    let out = tokio::spawn(async move { attach_collect(&mut c2, &id2, None, false).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.start(pb::StartRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    // The file appears once the script got there.
    let made = execdriver_tests::eventually(Duration::from_secs(10), || {
        std::fs::metadata(data.path.join("by-root")).ok()
    })
    .await
    .expect("the container made no file");
    assert_eq!((made.uid(), made.gid()), (100_000, 100_000));
    // The init as the host sees it.
    let pid = c
        .state(pb::StateRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap()
        .pid;
    let status = parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap());
    assert!(status["Uid"].starts_with("100000"), "{status:?}");
    // An exec joins the user namespace: root inside, the mapped uid outside; uid 1000 inside
    // is 101000 outside.
    let text = exec_sync(&mut c, &id, &["sh", "-c", "id -u; touch /data/by-exec"]).await;
    assert_eq!(text, "0\n");
    let text = exec_sync_as(
        &mut c,
        &id,
        &["sh", "-c", "id -u; touch /data/by-user"],
        "1000",
    )
    .await;
    assert_eq!(text, "1000\n");
    assert_eq!(
        std::fs::metadata(data.path.join("by-exec")).unwrap().uid(),
        100_000
    );
    assert_eq!(
        std::fs::metadata(data.path.join("by-user")).unwrap().uid(),
        101_000
    );
    force_delete(&mut c, &id).await;
    let out = out.await.unwrap();
    let text = out.stdout();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "{text}");
    assert_eq!(lines.next(), Some("0"), "{text}");
    let map_line: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map_line, ["0", "100000", "65536"]);
    // Root of the container is nobody special on the host: a root-only host file stays shut.
    assert!(text.contains("Permission denied"), "{text}");

    // Without a network namespace of its own the kernel refuses it a new sysfs: it gets the
    // host's, read-only through and through (its submounts too).
    let mut req = sh(
        &d,
        "id -u; ls /sys/class > /dev/null && echo sys-ok; touch /sys/x 2>&1; \
         grep -c ' /sys[ /]' /proc/self/mountinfo; \
         grep ' /sys[ /]' /proc/self/mountinfo | awk '{print $6}' | grep -vc '^ro'",
    );
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWUSER"]
        .map(String::from)
        .to_vec();
    let s = security(&mut req);
    s.uid_mappings = vec![map];
    s.gid_mappings = vec![map];
    let out = run(&mut c, req).await;
    let text = out.stdout();
    assert!(text.starts_with("0\nsys-ok\n"), "{text} {}", out.stderr());
    assert!(text.contains("Read-only file system"), "{text}");
    let counts: Vec<u32> = text
        .lines()
        .rev()
        .take(2)
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(counts[0], 0, "a mount under /sys is writable: {text}");
    assert!(counts[1] >= 1, "{text}");
}
