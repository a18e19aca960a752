//! Who may talk to the driver (the socket's owner, group and mode) and what an id may name
//! (nothing outside the state directory).

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;

use execdriver_tests::{bin, pb, run_as, Daemon};
use tonic::Code;

use super::{assert_nothing_left, daemon, force_delete, start};

#[tokio::test]
async fn ids_cannot_escape_the_state_directory() {
    let d = daemon();
    let mut c = d.client().await;
    for id in ["../escape", "..", "a/../../b", "/abs", ".hidden"] {
        let mut req = d.request(&["true"]);
        req.id = id.into();
        let err = c.create(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id}");
        let err = c
            .state(pb::StateRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id}");
        let err = c
            .delete(pb::DeleteRequest {
                id: id.into(),
                force: true,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id}");
    }
    let id = start(&mut c, d.request(&["sleep", "100"])).await;
    for exec_id in ["../../x", "a/b", ".."] {
        let err = c
            .exec(pb::ExecRequest {
                id: id.clone(),
                exec_id: exec_id.into(),
                process: Some(pb::Process {
                    args: vec!["true".into()],
                    ..Default::default()
                }),
                start: true,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{exec_id}");
        assert!(err.message().starts_with("exec_id"), "{err:?}");
    }
    force_delete(&mut c, &id).await;
    // Nothing was made beside the root.
    let mut beside: Vec<String> = std::fs::read_dir(&d.dir.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(beside, ["d.sock", "daemon.log", "root", "rootfs"]);
    assert_nothing_left(&d);
}

fn ctl_as(d: &Daemon, uid: u32, gid: u32, groups: &[u32]) -> (bool, String) {
    let ctl = bin("execdriverctl");
    let out = run_as(
        uid,
        gid,
        groups,
        &[
            ctl.as_os_str(),
            OsStr::new("--socket"),
            d.socket.as_os_str(),
            OsStr::new("info"),
        ],
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_socket_admits_only_permitted_users() {
    // Default: 0600, root's. Another user cannot even connect.
    let d = Daemon::start();
    let md = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(md.mode() & 0o777, 0o600);
    let (ok, err) = ctl_as(&d, 1000, 1000, &[]);
    assert!(
        !ok && err.contains(
            "Permission denied (its owner, group and mode let in root and whom execdriverd's"
        ),
        "{err}"
    );
    let (ok, err) = ctl_as(&d, 0, 0, &[]);
    assert!(ok, "{err}");
    drop(d);

    // A socket everyone may open: the credential check refuses uid 1000 on every call.
    let d = Daemon::start_with(&["--socket-mode", "666"]);
    assert_eq!(std::fs::metadata(&d.socket).unwrap().mode() & 0o777, 0o666);
    let (ok, err) = ctl_as(&d, 1000, 1000, &[]);
    assert!(
        !ok && err.contains("uid 1000 may not use this execdriverd"),
        "{err}"
    );
    drop(d);
    // ... unless it is allowed.
    let d = Daemon::start_with(&["--socket-mode", "666", "--allow-uid", "1000"]);
    let (ok, err) = ctl_as(&d, 1000, 1000, &[]);
    assert!(ok, "{err}");
    let (ok, err) = ctl_as(&d, 1001, 1001, &[]);
    assert!(!ok && err.contains("may not use"), "{err}");
    drop(d);
    // --allow-uid alone: the socket lets the user connect (0666), the check refuses others.
    let d = Daemon::start_with(&["--allow-uid", "1000"]);
    assert_eq!(std::fs::metadata(&d.socket).unwrap().mode() & 0o777, 0o666);
    let (ok, err) = ctl_as(&d, 1000, 1000, &[]);
    assert!(ok, "{err}");
    let (ok, err) = ctl_as(&d, 1001, 1001, &[]);
    assert!(!ok && err.contains("may not use"), "{err}");
    drop(d);

    // A group: the socket is 0660 and that group's; members (also supplementary) get in.
    let group = 4242 + std::process::id() % 1000;
    let d = Daemon::start_with(&["--allow-gid", &group.to_string()]);
    let md = std::fs::metadata(&d.socket).unwrap();
    assert_eq!((md.mode() & 0o777, md.gid()), (0o660, group));
    let (ok, err) = ctl_as(&d, 1000, 1000, &[group]);
    assert!(ok, "supplementary member: {err}");
    let (ok, err) = ctl_as(&d, 1001, group, &[]);
    assert!(ok, "primary member: {err}");
    let (ok, err) = ctl_as(&d, 1002, 1002, &[]);
    assert!(
        !ok && err.contains(
            "Permission denied (its owner, group and mode let in root and whom execdriverd's"
        ),
        "{err}"
    );
    drop(d);
    let d = Daemon::start_with(&["--allow-gid", &group.to_string(), "--socket-mode", "666"]);
    let (ok, err) = ctl_as(&d, 1002, 1002, &[]);
    assert!(!ok && err.contains("may not use"), "{err}");
}

#[tokio::test]
async fn allow_uid_and_allow_gid_together_let_in_both() {
    // The uid need not be in the group: the socket is 0666 (the group's), and the credential
    // check refuses everyone else.
    let group = 5242 + std::process::id() % 1000;
    let d = Daemon::start_with(&["--allow-uid", "1000", "--allow-gid", &group.to_string()]);
    let md = std::fs::metadata(&d.socket).unwrap();
    assert_eq!((md.mode() & 0o777, md.gid()), (0o666, group));
    let (ok, err) = ctl_as(&d, 1000, 1000, &[]);
    assert!(ok, "--allow-uid, not in the group: {err}");
    let (ok, err) = ctl_as(&d, 1001, 1001, &[group]);
    assert!(ok, "a member of the group: {err}");
    let (ok, err) = ctl_as(&d, 1002, 1002, &[]);
    assert!(!ok && err.contains("may not use"), "{err}");
    assert!(!d.log().contains("cannot open the socket"), "{}", d.log());
    drop(d);

    // A mode that keeps out whom the flags admit is the operator's choice, said at start.
    let d = Daemon::start_with(&["--allow-uid", "1000", "--socket-mode", "600"]);
    let (ok, err) = ctl_as(&d, 1000, 1000, &[]);
    assert!(
        !ok && err.contains("Permission denied (its owner, group and mode let in root"),
        "{err}"
    );
    let log = d.log();
    assert!(
        log.contains("--socket-mode 600: --allow-uid 1000 cannot open the socket"),
        "{log}"
    );
}
