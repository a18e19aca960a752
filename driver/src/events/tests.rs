//! The hub's numbering, history and filters, and a tracker's order.

use super::*;

fn temp_root(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "execdriver-events-{name}-{}-{}",
        std::process::id(),
        state::now_ns()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ev(id: &str, t: pb::EventType) -> pb::Event {
    pb::Event {
        id: id.into(),
        r#type: t as i32,
        ..Default::default()
    }
}

#[test]
fn sequences_history_and_lost() {
    let root = temp_root("seq");
    let hub = Hub::open(&root, 3);
    for i in 0..5 {
        assert_eq!(
            hub.publish(ev(&format!("c{i}"), pb::EventType::Created), None),
            i + 1
        );
    }
    // Kept: 3, 4, 5.
    let sub = hub.subscribe(4);
    assert_eq!(sub.last_sequence, 5);
    assert_eq!(sub.lost, None);
    assert_eq!(sub.backlog.len(), 1);
    let sub = hub.subscribe(1);
    assert_eq!(sub.lost, Some(2), "event 2 is gone");
    assert_eq!(
        sub.backlog.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    let sub = hub.subscribe(99);
    assert_eq!(sub.lost, Some(5), "a since from the future");
    // A graceful stop records the exact next number; a new hub continues from it.
    hub.close();
    // An event after the close (an exit during the shutdown grace) moves it on.
    assert_eq!(hub.publish(ev("c", pb::EventType::Exited), None), 6);
    let hub = Hub::open(&root, 3);
    assert_eq!(hub.publish(ev("c", pb::EventType::Deleted), None), 7);
    // Without close (a killed driver) the next one skips the reserved block.
    drop(hub);
    let hub = Hub::open(&root, 3);
    assert!(hub.publish(ev("c", pb::EventType::Deleted), None) > 7);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn filters_and_type_names() {
    let f = Filter {
        ids: vec!["a".into()],
        types: vec![pb::EventType::Exited as i32],
        owner: None,
    };
    assert!(f.matches(&ev("a", pb::EventType::Exited), Some(7)));
    assert!(!f.matches(&ev("b", pb::EventType::Exited), None));
    assert!(!f.matches(&ev("a", pb::EventType::Started), None));
    assert!(f.matches(&ev("", pb::EventType::EventsLost), None));
    // A restricted caller's: its own containers only.
    let own = Filter {
        owner: Some(7),
        ..Filter::default()
    };
    assert!(own.matches(&ev("a", pb::EventType::Exited), Some(7)));
    assert!(!own.matches(&ev("a", pb::EventType::Exited), None));
    assert!(!own.matches(&ev("a", pb::EventType::Exited), Some(8)));
    assert!(own.matches(&ev("", pb::EventType::EventsLost), None));
    assert_eq!(
        parse_event_type("exec_started"),
        Some(pb::EventType::ExecStarted)
    );
    assert_eq!(parse_event_type("EVENT_TYPE_OOM"), Some(pb::EventType::Oom));
    assert_eq!(parse_event_type("nope"), None);
}

#[test]
fn a_fast_exit_still_comes_after_started_and_once() {
    let root = temp_root("order");
    let hub = Arc::new(Hub::open(&root, 100));
    let sub = hub.subscribe(0);
    let t = Tracker::new(hub.clone(), "c", &root, HashMap::new());
    t.created(10);
    let exit = protocol::Exit {
        exit_code: Some(0),
        started_at: 5,
        finished_at: 6,
        pid: 10,
        ..Default::default()
    };
    // The shim's exit arrives before Start's reply was turned into `started`.
    t.exited(&exit);
    t.started(10, 5);
    t.exited(&exit);
    t.deleted(Some(&exit));
    t.paused(); // after deleted: nothing
    let mut rx = sub.rx;
    let mut types = Vec::new();
    while let Ok(e) = rx.try_recv() {
        types.push(e.r#type);
    }
    use pb::EventType::*;
    assert_eq!(
        types,
        [Created, Started, Exited, Deleted].map(|t| t as i32),
        "{types:?}"
    );
    assert!(root.join(EXIT_EMITTED).exists());
    // A recovered tracker of that container does not report the exit again.
    let r = Tracker::recovered(hub.clone(), "c", &root, HashMap::new());
    let before = hub.last_sequence();
    r.exited(&exit);
    assert_eq!(hub.last_sequence(), before);
    std::fs::remove_dir_all(&root).unwrap();
}
