//! Events: the order per container (created -> started -> exited -> deleted) with the right
//! codes, exec events, filters, replay from a sequence number, the bounded history, OOM, and
//! exits that happen while the driver is down.

use std::time::Duration;

use execdriver_tests::{pb, unique, Client, Daemon};
use tokio_stream::StreamExt;
use tonic::Code;

use pb::EventType as T;

const WAIT: Duration = Duration::from_secs(30);

async fn subscribe(
    c: &mut Client,
    ids: &[&str],
    types: &[T],
    since: u64,
) -> (tonic::Streaming<pb::Event>, u64) {
    let resp = c
        .events(pb::EventsRequest {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            types: types.iter().map(|t| *t as i32).collect(),
            since_sequence: since,
        })
        .await
        .expect("events");
    let last = resp
        .metadata()
        .get("execdriver-last-sequence")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("the last sequence in the initial metadata");
    (resp.into_inner(), last)
}

/// Reads events until one matches `until` (included); fails after WAIT.
async fn read_until(
    s: &mut tonic::Streaming<pb::Event>,
    until: impl Fn(&pb::Event) -> bool,
) -> Vec<pb::Event> {
    let mut got = Vec::new();
    loop {
        let e = tokio::time::timeout(WAIT, s.next())
            .await
            .unwrap_or_else(|_| panic!("no matching event within {WAIT:?}; got {got:#?}"))
            .expect("the stream ended")
            .expect("an event");
        let done = until(&e);
        got.push(e);
        if done {
            return got;
        }
    }
}

fn is(t: T, id: &str) -> impl Fn(&pb::Event) -> bool + '_ {
    move |e| e.r#type == t as i32 && e.id == id
}

fn types(events: &[pb::Event]) -> Vec<T> {
    events
        .iter()
        .map(|e| T::try_from(e.r#type).unwrap_or(T::Unspecified))
        .collect()
}

fn assert_increasing(events: &[pb::Event]) {
    for w in events.windows(2) {
        assert!(w[0].sequence < w[1].sequence, "{events:#?}");
    }
}

async fn wait_exit(c: &mut Client, id: &str) -> pb::ExitStatus {
    c.wait(pb::WaitRequest {
        id: id.into(),
        ..Default::default()
    })
    .await
    .expect("wait")
    .into_inner()
    .exit
    .expect("exit")
}

async fn delete(c: &mut Client, id: &str) {
    c.delete(pb::DeleteRequest {
        id: id.into(),
        force: true,
    })
    .await
    .expect("delete");
}

#[tokio::test]
async fn container_and_exec_events_in_order_with_codes() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["sleep", "1000"]);
    req.labels.insert("app".into(), "events-test".into());
    let id = req.id.clone();
    let (mut s, _) = subscribe(&mut c, &[&id], &[], 0).await;
    c.run(req).await.expect("run");
    let exec = c
        .exec(pb::ExecRequest {
            id: id.clone(),
            exec_id: "x1".into(),
            process: Some(pb::Process {
                args: vec!["sh".into(), "-c".into(), "exit 7".into()],
                ..Default::default()
            }),
            start: true,
        })
        .await
        .expect("exec")
        .into_inner();
    assert_eq!(exec.process.unwrap().exec_id, "x1");
    let got = read_until(&mut s, |e| e.r#type == T::ExecExited as i32).await;
    c.pause(pb::PauseRequest { id: id.clone() }).await.unwrap();
    c.resume(pb::ResumeRequest { id: id.clone() })
        .await
        .unwrap();
    c.kill(pb::KillRequest {
        id: id.clone(),
        signal: 9,
        ..Default::default()
    })
    .await
    .unwrap();
    wait_exit(&mut c, &id).await;
    delete(&mut c, &id).await;
    let rest = read_until(&mut s, is(T::Deleted, &id)).await;
    let all: Vec<pb::Event> = got.into_iter().chain(rest).collect();
    assert_eq!(
        types(&all),
        [
            T::Created,
            T::Started,
            T::ExecAdded,
            T::ExecStarted,
            T::ExecExited,
            T::Paused,
            T::Resumed,
            T::Exited,
            T::Deleted
        ],
        "{all:#?}"
    );
    assert_increasing(&all);
    for e in &all {
        assert_eq!(e.id, id);
        assert_eq!(e.labels.get("app").map(String::as_str), Some("events-test"));
        assert!(e.time.is_some(), "{e:?}");
    }
    assert!(all[0].pid > 0 && all[1].pid == all[0].pid, "{all:#?}");
    for e in &all[2..5] {
        assert_eq!(e.exec_id, "x1");
    }
    assert!(all[3].pid > 0 && all[3].pid != all[0].pid);
    let exec_exit = all[4].exit.as_ref().expect("exec exit");
    assert_eq!(exec_exit.exit_code, Some(7));
    let exit = all[7].exit.as_ref().expect("exit");
    assert_eq!((exit.exit_code, exit.signal), (None, Some(9)));
    assert_eq!(exit.status_code, 137);
    assert!(all[7].exec_id.is_empty() && all[8].exit.is_none());
}

#[tokio::test]
async fn a_command_that_ends_at_once_still_reports_started_before_exited() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let (mut s, _) = subscribe(&mut c, &[], &[], 0).await;
    for code in 0..5 {
        let req = d.request(&["sh", "-c", &format!("exit {code}")]);
        let id = req.id.clone();
        if code % 2 == 0 {
            c.run(req).await.expect("run");
        } else {
            c.create(req).await.expect("create");
            c.start(pb::StartRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .expect("start");
        }
        wait_exit(&mut c, &id).await;
        delete(&mut c, &id).await;
        let got = read_until(&mut s, is(T::Deleted, &id)).await;
        assert_eq!(
            types(&got),
            [T::Created, T::Started, T::Exited, T::Deleted],
            "{got:#?}"
        );
        assert_eq!(got[2].exit.as_ref().unwrap().exit_code, Some(code));
        assert_increasing(&got);
    }
    // A container deleted without ever starting: created -> exited (SIGKILL) -> deleted.
    let req = d.request(&["true"]);
    let id = req.id.clone();
    c.create(req).await.unwrap();
    delete(&mut c, &id).await;
    let got = read_until(&mut s, is(T::Deleted, &id)).await;
    assert_eq!(types(&got), [T::Created, T::Exited, T::Deleted], "{got:#?}");
}

#[tokio::test]
async fn filters_by_id_and_type() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let a = d.request(&["sh", "-c", "exit 1"]);
    let b = d.request(&["sh", "-c", "exit 2"]);
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    let (mut exits, _) = subscribe(&mut c, &[], &[T::Exited], 0).await;
    let (mut only_b, _) = subscribe(&mut c, &[&b_id], &[], 0).await;
    for req in [a, b] {
        let id = req.id.clone();
        c.run(req).await.unwrap();
        wait_exit(&mut c, &id).await;
        delete(&mut c, &id).await;
    }
    let got = read_until(&mut exits, is(T::Exited, &b_id)).await;
    assert_eq!(types(&got), [T::Exited, T::Exited], "{got:#?}");
    assert_eq!(got[0].id, a_id);
    assert_eq!(got[0].exit.as_ref().unwrap().exit_code, Some(1));
    assert_eq!(got[1].exit.as_ref().unwrap().exit_code, Some(2));
    let got = read_until(&mut only_b, is(T::Deleted, &b_id)).await;
    assert!(got.iter().all(|e| e.id == b_id), "{got:#?}");
    assert_eq!(got.len(), 4);
    // A bad filter is refused, naming the field.
    let err = c
        .events(pb::EventsRequest {
            types: vec![0],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("types[0]"), "{}", err.message());
}

#[tokio::test]
async fn a_reconnecting_subscriber_gets_what_it_missed() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let (mut s, before) = subscribe(&mut c, &[], &[], 0).await;
    let info = c.info(pb::InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.last_event_sequence, before);
    let first = d.request(&["true"]);
    let first_id = first.id.clone();
    c.run(first).await.unwrap();
    wait_exit(&mut c, &first_id).await;
    delete(&mut c, &first_id).await;
    let seen = read_until(&mut s, is(T::Deleted, &first_id)).await;
    let last_seen = seen.last().unwrap().sequence;
    drop(s);

    // While nobody listens: another container's whole life.
    let missed = d.request(&["sh", "-c", "exit 5"]);
    let missed_id = missed.id.clone();
    c.run(missed).await.unwrap();
    wait_exit(&mut c, &missed_id).await;
    delete(&mut c, &missed_id).await;

    let (mut s, _) = subscribe(&mut c, &[], &[], last_seen).await;
    let got = read_until(&mut s, is(T::Deleted, &missed_id)).await;
    assert_eq!(
        types(&got),
        [T::Created, T::Started, T::Exited, T::Deleted],
        "{got:#?}"
    );
    let seqs: Vec<u64> = got.iter().map(|e| e.sequence).collect();
    assert_eq!(
        seqs,
        (last_seen + 1..=last_seen + 4).collect::<Vec<_>>(),
        "nothing lost, nothing twice"
    );
    assert_eq!(got[2].exit.as_ref().unwrap().exit_code, Some(5));
    // Live events follow the replay on the same stream.
    let live = d.request(&["true"]);
    let live_id = live.id.clone();
    c.create(live).await.unwrap();
    let got = read_until(&mut s, is(T::Created, &live_id)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sequence, last_seen + 5);
    delete(&mut c, &live_id).await;
}

#[tokio::test]
async fn a_since_older_than_the_history_is_told_what_is_lost() {
    let d = Daemon::start_with(&["--event-history", "3"]);
    let mut c = d.client().await;
    let info = c.info(pb::InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.event_history, 3);
    let start = info.last_event_sequence;
    let mut id = String::new();
    for _ in 0..2 {
        let req = d.request(&["true"]);
        id = req.id.clone();
        c.run(req).await.unwrap();
        wait_exit(&mut c, &id).await;
        delete(&mut c, &id).await;
    }
    // 8 events: only the last 3 are kept; a client that saw the first misses 2 to 5.
    let (mut s, last) = subscribe(&mut c, &[], &[], start + 1).await;
    assert_eq!(last, start + 8);
    let got = read_until(&mut s, is(T::Deleted, &id)).await;
    assert_eq!(
        types(&got),
        [T::EventsLost, T::Started, T::Exited, T::Deleted],
        "{got:#?}"
    );
    assert_eq!(
        got[0].sequence,
        start + 5,
        "the lost marker names the last lost"
    );
    assert!(got[0].id.is_empty());
    // A since from the future (another driver's numbers) is told so too.
    let (mut s, _) = subscribe(&mut c, &[], &[], last + 1000).await;
    let got = read_until(&mut s, |_| true).await;
    assert_eq!(types(&got), [T::EventsLost]);
}

#[tokio::test]
async fn oom_kill_is_an_event_before_the_exit() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&[
        "sh",
        "-c",
        "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
    ]);
    req.resources = Some(pb::Resources {
        memory: 32 << 20,
        ..Default::default()
    });
    let id = req.id.clone();
    let (mut s, _) = subscribe(&mut c, &[&id], &[], 0).await;
    c.run(req).await.unwrap();
    let got = read_until(&mut s, is(T::Exited, &id)).await;
    assert_eq!(
        types(&got),
        [T::Created, T::Started, T::Oom, T::Exited],
        "{got:#?}"
    );
    let exit = got[3].exit.as_ref().unwrap();
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.signal, Some(9));
    delete(&mut c, &id).await;
}

#[tokio::test]
async fn exits_while_the_driver_is_down_are_reported_after_it_restarts_once() {
    let mut d = Daemon::start();
    let mut c = d.client().await;
    let gate = unique("go");
    let script = format!("while [ ! -e /tmp/{gate} ]; do sleep 0.05; done; exit 4");
    let req = d.request(&["sh", "-c", &script]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let before = c
        .info(pb::InfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .last_event_sequence;
    drop(c);
    d.stop_daemon(libc::SIGTERM);

    // The container ends while no driver runs.
    std::fs::write(d.rootfs.join("tmp").join(&gate), "").unwrap();
    let exit_json = d.root.join(&id).join("exit.json");
    let deadline = std::time::Instant::now() + WAIT;
    while !exit_json.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the container did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    d.spawn();
    let mut c = d.client().await;
    let (mut s, _) = subscribe(&mut c, &[], &[], before).await;
    let got = read_until(&mut s, is(T::Exited, &id)).await;
    assert_eq!(types(&got), [T::Exited], "{got:#?}");
    assert_eq!(
        got[0].sequence,
        before + 1,
        "a graceful stop keeps the numbering"
    );
    assert_eq!(got[0].exit.as_ref().unwrap().exit_code, Some(4));
    let exited_seq = got[0].sequence;
    drop((s, c));

    // Another restart (a killed driver this time) does not report it again.
    d.stop_daemon(libc::SIGKILL);
    d.spawn();
    let mut c = d.client().await;
    let (mut s, _) = subscribe(&mut c, &[&id], &[], exited_seq).await;
    delete(&mut c, &id).await;
    let got = read_until(&mut s, is(T::Deleted, &id)).await;
    assert!(
        got.iter()
            .all(|e| e.r#type != T::Exited as i32 && e.sequence > exited_seq),
        "{got:#?}"
    );
    // The killed driver skipped numbers it may have used: the replay says events may be lost.
    assert_eq!(types(&got), [T::EventsLost, T::Deleted], "{got:#?}");
}

#[tokio::test]
async fn an_exec_started_before_a_restart_reports_its_exit_live() {
    let mut d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let gate = unique("exec-go");
    let script = format!("while [ ! -e /tmp/{gate} ]; do sleep 0.05; done; exit 9");
    c.exec(pb::ExecRequest {
        id: id.clone(),
        exec_id: "long".into(),
        process: Some(pb::Process {
            args: vec!["sh".into(), "-c".into(), script],
            ..Default::default()
        }),
        start: true,
    })
    .await
    .unwrap();
    drop(c);
    d.stop_daemon(libc::SIGTERM);
    d.spawn();
    let mut c = d.client().await;
    let (mut s, _) = subscribe(&mut c, &[&id], &[], 0).await;
    std::fs::write(d.rootfs.join("tmp").join(&gate), "").unwrap();
    let got = read_until(&mut s, |e| e.r#type == T::ExecExited as i32).await;
    assert_eq!(types(&got), [T::ExecExited], "{got:#?}");
    assert_eq!(got[0].exec_id, "long");
    assert_eq!(got[0].exit.as_ref().unwrap().exit_code, Some(9));
    delete(&mut c, &id).await;
    let got = read_until(&mut s, is(T::Deleted, &id)).await;
    assert_eq!(types(&got), [T::Exited, T::Deleted], "{got:#?}");
}
