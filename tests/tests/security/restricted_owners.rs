//! Whose containers a restricted caller may use: only its own. Every call naming another's
//! container (root's privileged one here) is PERMISSION_DENIED naming `id`, List and Events
//! show it only its own, and it cannot join another's network; root sees and uses everything.

use std::time::Duration;

use tokio_stream::StreamExt;

use super::restricted::{assert_denied, client_as, restricted_daemon, user_request, Area, USER};
use super::{assert_nothing_left, force_delete, privileged, start};
use execdriver_tests::pb;

#[tokio::test]
async fn restricted_callers_use_only_their_own_containers() {
    let area = Area::new();
    let d = restricted_daemon(&area);
    let mut root = d.client().await;
    let mut user = client_as(&d, USER).await;
    let mut events = user
        .events(pb::EventsRequest::default())
        .await
        .expect("events")
        .into_inner();
    let mut req = d.request(&["sleep", "1000"]);
    privileged(&mut req);
    let theirs = start(&mut root, req).await;
    let mine = start(&mut user, user_request(&d, &area, &["sleep", "1000"])).await;

    let id = || theirs.clone();
    let process = || {
        Some(pb::Process {
            args: vec!["id".into()],
            ..Default::default()
        })
    };
    assert_denied(
        user.state(pb::StateRequest {
            id: id(),
            ..Default::default()
        })
        .await,
        "id",
    );
    assert_denied(
        user.exec(pb::ExecRequest {
            id: id(),
            process: process(),
            start: true,
            ..Default::default()
        })
        .await,
        "id",
    );
    assert_denied(
        user.exec_sync(pb::ExecSyncRequest {
            id: id(),
            process: process(),
            timeout_seconds: 10,
        })
        .await,
        "id",
    );
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Start(pb::AttachStart {
            id: id(),
            stdin: true,
            stdout: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    assert_denied(
        user.attach(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await,
        "id",
    );
    assert_denied(
        user.logs(pb::LogsRequest {
            id: id(),
            ..Default::default()
        })
        .await,
        "id",
    );
    assert_denied(
        user.kill(pb::KillRequest {
            id: id(),
            signal: 9,
            ..Default::default()
        })
        .await,
        "id",
    );
    assert_denied(
        user.stop(pb::StopRequest {
            id: id(),
            ..Default::default()
        })
        .await,
        "id",
    );
    assert_denied(user.pause(pb::PauseRequest { id: id() }).await, "id");
    assert_denied(
        user.update(pb::UpdateRequest {
            id: id(),
            resources: Some(pb::Resources {
                pids_limit: 10,
                ..Default::default()
            }),
        })
        .await,
        "id",
    );
    assert_denied(user.pids(pb::PidsRequest { id: id() }).await, "id");
    assert_denied(user.stats(pb::StatsRequest { id: id() }).await, "id");
    assert_denied(
        user.wait(pb::WaitRequest {
            id: id(),
            ..Default::default()
        })
        .await,
        "id",
    );
    assert_denied(
        user.delete(pb::DeleteRequest {
            id: id(),
            force: true,
        })
        .await,
        "id",
    );
    // Its network is no way in either.
    let mut req = user_request(&d, &area, &["true"]);
    req.network = Some(pb::NetworkConfig {
        mode: pb::NetworkMode::Container as i32,
        container_id: id(),
        ..Default::default()
    });
    assert_denied(user.run(req).await, "network.container_id");
    // An id nobody has is still NOT_FOUND.
    let e = user
        .state(pb::StateRequest {
            id: "nobody-has-this".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");

    // Root's container still runs; the caller's own is its to use.
    let st = root
        .state(pb::StateRequest {
            id: id(),
            ..Default::default()
        })
        .await
        .expect("root sees it")
        .into_inner();
    assert_eq!(
        st.container.unwrap().status,
        pb::Status::Running as i32,
        "untouched"
    );
    let listed = |r: pb::ListResponse| {
        let mut ids: Vec<String> = r.containers.into_iter().map(|c| c.id).collect();
        ids.sort();
        ids
    };
    let mine_only = listed(
        user.list(pb::ListRequest::default())
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(mine_only, std::slice::from_ref(&mine));
    let all = listed(
        root.list(pb::ListRequest::default())
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(all.contains(&mine) && all.contains(&theirs), "{all:?}");
    let r = user
        .exec_sync(pb::ExecSyncRequest {
            id: mine.clone(),
            process: process(),
            timeout_seconds: 30,
        })
        .await
        .expect("exec into its own")
        .into_inner();
    assert!(String::from_utf8_lossy(&r.stdout).starts_with("uid=0"));
    // A container in the network of its own container, joined through a descriptor the
    // daemon held (not /proc/PID/ns/net, which a reused pid could make the host's).
    let mut req = user_request(&d, &area, &["readlink", "/proc/self/ns/net"]);
    req.network = Some(pb::NetworkConfig {
        mode: pb::NetworkMode::Container as i32,
        container_id: mine.clone(),
        ..Default::default()
    });
    let joined = req.id.clone();
    user.create(req)
        .await
        .expect("create in its own container's network");
    let json = std::fs::read_to_string(d.root.join(&joined).join("container.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&json).unwrap();
    let nspath = config["networks"][0]["context"]["nspath"]
        .as_str()
        .unwrap_or_default();
    let held = format!("/proc/{}/fd/", d.pid().unwrap());
    assert!(nspath.starts_with(&held), "{json}");
    let out = execdriver_tests::attach_collect(&mut user, &joined, None, true).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let pid = root
        .state(pb::StateRequest {
            id: mine.clone(),
            ..Default::default()
        })
        .await
        .expect("state")
        .into_inner()
        .container
        .unwrap()
        .pid;
    let theirs_ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(out.stdout().trim(), theirs_ns.to_str().unwrap());
    force_delete(&mut user, &joined).await;
    force_delete(&mut user, &mine).await;

    // Its events: its own containers' only, up to the deletion of `mine`.
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("events in time")
            .expect("an event")
            .expect("not an error");
        seen.push((e.id.clone(), e.r#type));
        if e.id == mine && e.r#type == pb::EventType::Deleted as i32 {
            break;
        }
    }
    assert!(
        seen.iter().all(|(i, _)| *i != theirs),
        "root's container's events reached the restricted caller: {seen:?}"
    );
    assert!(seen
        .iter()
        .any(|(i, t)| *i == mine && *t == pb::EventType::Created as i32));
    force_delete(&mut root, &theirs).await;
    assert_nothing_left(&d);
}
