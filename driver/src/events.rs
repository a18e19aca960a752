//! Container events: a hub that numbers them, keeps a bounded history and broadcasts them to
//! subscribers, and a tracker per container that keeps each container's events in order
//! (created -> started -> exited -> deleted) whoever reports them first.
//!
//! The driver reports what it does itself (created, started, exec added / started, paused,
//! resumed, deleted). Exits and OOM kills come from the shim: a watcher task per container
//! holds a `Subscribe` connection to its shim, which pushes every exit (init or exec'd process)
//! and OOM kill as it happens, and the init's exit at once if it has already ended. So an exit
//! that happened while the driver was down is reported when the restarted driver subscribes;
//! the `exit.emitted` marker in the state directory (written atomically when the exit event is
//! sent) keeps it from being reported twice.
//!
//! Sequence numbers survive restarts: `<root>/events.seq` holds a number every sequence used so
//! far is below; blocks of numbers are reserved ahead, and a graceful stop records the exact
//! next one. A killed driver thus skips at most a block.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use execdriver_proto as pb;
use execdriver_spec::protocol::{
    self, request, response, Empty, EventKind, ShimState, Status, Target,
};
use execdriver_spec::state::{self, ExitRecord};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, info, warn, Instrument};

use crate::render::{exit_status, timestamp};
use crate::shims::{self, ShimConn};

/// The marker, in a container's state directory, that its exit event was sent.
pub const EXIT_EMITTED: &str = "exit.emitted";
/// In the driver's root: the sequence numbers below this one may have been used.
pub const SEQUENCE_FILE: &str = "events.seq";
/// Events kept for subscribers that reconnect, by default.
pub const DEFAULT_HISTORY: usize = 4096;
/// Sequence numbers reserved in `events.seq` at a time.
const RESERVE: u64 = 1024;
/// Events queued for one subscriber before it counts as lagging (it then catches up from the
/// history, or is told what it lost).
const BROADCAST_CAPACITY: usize = 1024;

/// An event as kept and broadcast, with the owner of its container (`Meta::owner`): a
/// restricted caller gets only its own containers' events.
#[derive(Debug)]
pub struct Published {
    pub event: pb::Event,
    pub owner: Option<u32>,
}

impl std::ops::Deref for Published {
    type Target = pb::Event;
    fn deref(&self) -> &pb::Event {
        &self.event
    }
}

pub type Event = Arc<Published>;

struct Inner {
    history: VecDeque<Event>,
    /// The next sequence number.
    next: u64,
    /// Sequence numbers below this are reserved in the sequence file.
    reserved: u64,
    /// Stopping: the sequence file holds the exact next number, kept so event by event.
    exact: bool,
}

/// Numbers, keeps and broadcasts events.
pub struct Hub {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Event>,
    root: PathBuf,
    capacity: usize,
    closed: watch::Sender<bool>,
}

/// What a new subscriber gets: the kept events it asked for, whether some are lost, and the
/// live feed from there on.
pub struct Subscription {
    /// The sequence number of the last event before the subscription (0: none).
    pub last_sequence: u64,
    lost: Option<u64>,
    backlog: Vec<Event>,
    rx: broadcast::Receiver<Event>,
    closed: watch::Receiver<bool>,
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub ids: Vec<String>,
    pub types: Vec<i32>,
    /// Only containers with this owner (a restricted caller's uid); None: every container.
    pub owner: Option<u32>,
}

impl Filter {
    pub fn matches(&self, e: &pb::Event, owner: Option<u32>) -> bool {
        if e.r#type == pb::EventType::EventsLost as i32 {
            return true;
        }
        (self.owner.is_none() || self.owner == owner)
            && (self.ids.is_empty() || self.ids.contains(&e.id))
            && (self.types.is_empty() || self.types.contains(&e.r#type))
    }
}

impl Hub {
    /// A hub whose sequence continues from `root/events.seq`, keeping `capacity` events.
    pub fn open(root: &Path, capacity: usize) -> Hub {
        let path = root.join(SEQUENCE_FILE);
        let next = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1)
            .max(1);
        let hub = Hub {
            inner: Mutex::new(Inner {
                history: VecDeque::with_capacity(capacity.min(DEFAULT_HISTORY)),
                next,
                reserved: next,
                exact: false,
            }),
            tx: broadcast::channel(BROADCAST_CAPACITY).0,
            root: root.to_owned(),
            capacity: capacity.max(1),
            closed: watch::channel(false).0,
        };
        let mut inner = hub.lock();
        hub.reserve(&mut inner);
        drop(inner);
        hub
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock is a bug; the history stays consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_sequence_file(&self, value: u64) {
        if let Err(e) = state::write_atomic(
            &self.root,
            SEQUENCE_FILE,
            value.to_string().as_bytes(),
            false,
        ) {
            warn!(error = %e, "writing {SEQUENCE_FILE}");
        }
    }

    fn reserve(&self, inner: &mut Inner) {
        inner.reserved = inner.next + RESERVE;
        self.write_sequence_file(inner.reserved);
    }

    /// How many events are kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The sequence number of the last event (0: none yet).
    pub fn last_sequence(&self) -> u64 {
        self.lock().next - 1
    }

    /// Numbers the event (of a container with `owner`), keeps it and sends it to every
    /// subscriber.
    pub fn publish(&self, mut event: pb::Event, owner: Option<u32>) -> u64 {
        let mut inner = self.lock();
        if inner.next >= inner.reserved && !inner.exact {
            self.reserve(&mut inner);
        }
        event.sequence = inner.next;
        inner.next += 1;
        if inner.exact {
            // An exit during the shutdown grace: the next driver must not reuse its number.
            self.write_sequence_file(inner.next);
        }
        debug!(
            sequence = event.sequence,
            r#type = event_type_name(event.r#type),
            id = %event.id,
            exec_id = %event.exec_id,
            "event"
        );
        let event = Arc::new(Published { event, owner });
        if inner.history.len() >= self.capacity {
            inner.history.pop_front();
        }
        inner.history.push_back(event.clone());
        // Sent under the lock, so subscribers see the sequence in order. No subscriber: fine.
        let _ = self.tx.send(event.clone());
        event.sequence
    }

    /// Subscribes: the kept events after `since` (0: none), then every new one.
    pub fn subscribe(&self, since: u64) -> Subscription {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let last = inner.next - 1;
        let (lost, backlog) = if since == 0 {
            (None, Vec::new())
        } else {
            let oldest = inner.history.front().map_or(inner.next, |e| e.sequence);
            let lost = if since > last {
                Some(last)
            } else if since + 1 < oldest {
                Some(oldest - 1)
            } else {
                None
            };
            let backlog = inner
                .history
                .iter()
                .filter(|e| e.sequence > since)
                .cloned()
                .collect();
            (lost, backlog)
        };
        Subscription {
            last_sequence: last,
            lost,
            backlog,
            rx,
            closed: self.closed.subscribe(),
        }
    }

    /// The kept events after `after`, and whether some after it are no longer kept.
    fn since(&self, after: u64) -> (Option<u64>, Vec<Event>) {
        let inner = self.lock();
        let oldest = inner.history.front().map_or(inner.next, |e| e.sequence);
        let lost = (after + 1 < oldest).then(|| oldest - 1);
        let kept = inner
            .history
            .iter()
            .filter(|e| e.sequence > after)
            .cloned()
            .collect();
        (lost, kept)
    }

    /// Ends every subscription (UNAVAILABLE) and records the exact next sequence number, for a
    /// graceful stop.
    pub fn close(&self) {
        let _ = self.closed.send(true);
        let mut inner = self.lock();
        inner.exact = true;
        self.write_sequence_file(inner.next);
    }

    /// Streams a subscription, filtered, into `tx` until the receiver goes away or the hub
    /// closes (the last item is then UNAVAILABLE).
    pub async fn stream(
        self: Arc<Self>,
        mut sub: Subscription,
        filter: Filter,
        tx: mpsc::Sender<Result<pb::Event, tonic::Status>>,
    ) {
        let mut last_sent = 0u64;
        let send = |e: &pb::Event| {
            let tx = tx.clone();
            let e = e.clone();
            async move { tx.send(Ok(e)).await.is_ok() }
        };
        if let Some(seq) = sub.lost {
            if !send(&lost_event(seq)).await {
                return;
            }
            last_sent = seq;
        }
        for e in std::mem::take(&mut sub.backlog) {
            last_sent = e.sequence;
            if filter.matches(&e, e.owner) && !send(&e).await {
                return;
            }
        }
        last_sent = last_sent.max(sub.last_sequence);
        loop {
            let next = tokio::select! {
                r = sub.rx.recv() => r,
                _ = tx.closed() => return,
                _ = closed(&mut sub.closed) => {
                    let _ = tx.send(Err(tonic::Status::unavailable("execdriverd is shutting down"))).await;
                    return;
                }
            };
            match next {
                Ok(e) => {
                    if e.sequence <= last_sent {
                        continue;
                    }
                    last_sent = e.sequence;
                    if filter.matches(&e, e.owner) && !send(&e).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow for the live feed: catch up from the history.
                    let (lost, kept) = self.since(last_sent);
                    if let Some(seq) = lost {
                        if !send(&lost_event(seq)).await {
                            return;
                        }
                        last_sent = seq;
                    }
                    for e in kept {
                        if e.sequence <= last_sent {
                            continue;
                        }
                        last_sent = e.sequence;
                        if filter.matches(&e, e.owner) && !send(&e).await {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// Returns once the hub is closed.
async fn closed(rx: &mut watch::Receiver<bool>) {
    loop {
        let now = *rx.borrow_and_update();
        if now {
            return;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

fn lost_event(sequence: u64) -> pb::Event {
    pb::Event {
        sequence,
        r#type: pb::EventType::EventsLost as i32,
        time: timestamp(state::now_ns()),
        ..Default::default()
    }
}

/// The name of an event type as the CLI shows it: "exec_started".
pub fn event_type_name(t: i32) -> String {
    let t = pb::EventType::try_from(t).unwrap_or(pb::EventType::Unspecified);
    execdriver_spec::protocol::enum_word(t.as_str_name(), "EVENT_TYPE_")
}

/// Parses an event type as [`event_type_name`] gives it (or its proto name).
pub fn parse_event_type(s: &str) -> Option<pb::EventType> {
    let lower = s.to_ascii_lowercase();
    let short = lower.trim_start_matches("event_type_");
    pb::EventType::from_str_name(&format!("EVENT_TYPE_{}", short.to_ascii_uppercase()))
        .filter(|t| *t != pb::EventType::Unspecified)
}

#[derive(Default)]
struct ExecTrack {
    started: bool,
    exited: bool,
}

#[derive(Default)]
struct TrackState {
    started: bool,
    exited: bool,
    deleted: bool,
    /// Loaded from the state directory after a restart: whether `started` was sent is unknown,
    /// so an exit does not send it.
    recovered: bool,
    execs: HashMap<String, ExecTrack>,
    /// OOM kills reported before `started` was sent; they follow it.
    pending: Vec<pb::Event>,
    /// The container's state as last heard (from its shim, or from what the daemon did to
    /// it): what List shows without asking every shim. Never back from Stopped.
    known: Option<ShimState>,
}

/// One container's events, in order: whoever reports an event first sends it, once.
pub struct Tracker {
    id: String,
    owner: Option<u32>,
    dir: PathBuf,
    labels: HashMap<String, String>,
    hub: Arc<Hub>,
    state: Mutex<TrackState>,
    /// Subscribed to the shim right now: its death would end the subscription at once, so the
    /// daemon's periodic liveness check skips it.
    watching: AtomicBool,
}

impl Tracker {
    /// The tracker of a container being created now.
    pub fn new(hub: Arc<Hub>, id: &str, dir: &Path, labels: HashMap<String, String>) -> Tracker {
        Tracker {
            id: id.to_owned(),
            owner: None,
            dir: dir.to_owned(),
            labels,
            hub,
            state: Mutex::new(TrackState::default()),
            watching: AtomicBool::new(false),
        }
    }

    /// The tracker of a container found in the state directory at start.
    pub fn recovered(
        hub: Arc<Hub>,
        id: &str,
        dir: &Path,
        labels: HashMap<String, String>,
    ) -> Tracker {
        let t = Tracker::new(hub, id, dir, labels);
        {
            let mut st = t.lock();
            st.recovered = true;
            st.exited = dir.join(EXIT_EMITTED).exists();
        }
        t
    }

    /// Its events carry `owner` (the container's `Meta::owner`).
    pub fn owned_by(mut self, owner: Option<u32>) -> Tracker {
        self.owner = owner;
        self
    }

    fn lock(&self) -> MutexGuard<'_, TrackState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn event(&self, t: pb::EventType, exec_id: &str, time_ns: i64) -> pb::Event {
        pb::Event {
            sequence: 0,
            r#type: t as i32,
            id: self.id.clone(),
            exec_id: exec_id.to_owned(),
            time: timestamp(if time_ns > 0 {
                time_ns
            } else {
                state::now_ns()
            }),
            exit: None,
            pid: 0,
            labels: self.labels.clone(),
        }
    }

    fn send(&self, st: &TrackState, e: pb::Event) {
        if !st.deleted {
            self.hub.publish(e, self.owner);
        }
    }

    pub fn created(&self, pid: i32) {
        let st = self.lock();
        let mut e = self.event(pb::EventType::Created, "", 0);
        e.pid = pid;
        self.send(&st, e);
    }

    /// The init started (`started_at` in Unix nanoseconds; 0: now).
    pub fn started(&self, pid: i32, started_at: i64) {
        let mut st = self.lock();
        self.send_started(&mut st, pid, started_at);
    }

    fn send_started(&self, st: &mut TrackState, pid: i32, started_at: i64) {
        Tracker::set_status(st, Status::Running);
        if st.started || st.exited {
            return;
        }
        st.started = true;
        let mut e = self.event(pb::EventType::Started, "", started_at);
        e.pid = pid;
        self.send(st, e);
        for e in std::mem::take(&mut st.pending) {
            self.send(st, e);
        }
    }

    /// Remembers the container's state as its shim just told it (a container never leaves
    /// Stopped, so an older answer arriving after the exit changes nothing).
    pub fn remember(&self, shim: &ShimState) {
        let mut st = self.lock();
        let stopped = Status::Stopped as i32;
        if st.known.as_ref().is_some_and(|k| k.status == stopped) && shim.status != stopped {
            return;
        }
        st.known = Some(shim.clone());
    }

    /// The state last heard of, with `status` (Running, Paused) set by what the daemon did.
    fn set_status(st: &mut TrackState, status: Status) {
        if let Some(k) = st.known.as_mut() {
            if k.status != Status::Stopped as i32 {
                k.status = status as i32;
            }
        }
    }

    /// The container's state as last heard; None when nothing was heard yet (after a restart,
    /// until its watch has asked the shim).
    pub fn known(&self) -> Option<ShimState> {
        self.lock().known.clone()
    }

    /// The init ended. Sends `started` first when the start has not been reported yet (a
    /// command that ends before Start returns), then `exited`, once; records that it was sent.
    pub fn exited(&self, exit: &protocol::Exit) {
        let mut st = self.lock();
        if st.known.as_ref().is_none_or(|k| k.exit.is_none()) {
            let k = st.known.get_or_insert_with(|| ShimState {
                pid: exit.pid,
                started_at: exit.started_at,
                ..Default::default()
            });
            k.status = Status::Stopped as i32;
            k.exit = Some(exit.clone());
        }
        if st.exited || st.deleted {
            return;
        }
        if exit.started_at > 0 && !st.recovered {
            self.send_started(&mut st, exit.pid, exit.started_at);
        }
        for e in std::mem::take(&mut st.pending) {
            self.send(&st, e);
        }
        st.exited = true;
        // Marked before it is sent: a client that has seen the event never sees it again from
        // a daemon restarted after it (killed right after the send, say). A daemon killed
        // between the two sends it never; its restart says events may have been lost.
        if let Err(e) = state::write_atomic(&self.dir, EXIT_EMITTED, b"", false) {
            // The directory is gone (deleted meanwhile): nothing to mark.
            debug!(id = %self.id, error = %e, "writing {EXIT_EMITTED}");
        }
        let mut e = self.event(pb::EventType::Exited, "", exit.finished_at);
        e.exit = Some(exit_status(exit));
        self.send(&st, e);
    }

    pub fn exec_added(&self, exec_id: &str) {
        let mut st = self.lock();
        st.execs.entry(exec_id.to_owned()).or_default();
        let e = self.event(pb::EventType::ExecAdded, exec_id, 0);
        self.send(&st, e);
    }

    pub fn exec_started(&self, exec_id: &str, pid: i32, started_at: i64) {
        let mut st = self.lock();
        self.send_exec_started(&mut st, exec_id, pid, started_at);
    }

    fn send_exec_started(&self, st: &mut TrackState, exec_id: &str, pid: i32, started_at: i64) {
        let x = st.execs.entry(exec_id.to_owned()).or_default();
        if x.started || x.exited {
            return;
        }
        x.started = true;
        let mut e = self.event(pb::EventType::ExecStarted, exec_id, started_at);
        e.pid = pid;
        self.send(st, e);
    }

    pub fn exec_exited(&self, exec_id: &str, exit: &protocol::Exit) {
        let mut st = self.lock();
        let known = st.execs.contains_key(exec_id);
        if known && st.execs.get(exec_id).is_some_and(|x| x.exited) {
            return;
        }
        // An exec'd process this driver has not seen (started before a restart) had its
        // `exec_started` sent by the driver before, or lost with its history.
        if exit.started_at > 0 && (known || !st.recovered) {
            self.send_exec_started(&mut st, exec_id, exit.pid, exit.started_at);
        }
        st.execs.entry(exec_id.to_owned()).or_default().exited = true;
        let mut e = self.event(pb::EventType::ExecExited, exec_id, exit.finished_at);
        e.exit = Some(exit_status(exit));
        self.send(&st, e);
    }

    /// Exec'd processes that were started and have not been reported ended.
    fn running_execs(&self) -> Vec<String> {
        self.lock()
            .execs
            .iter()
            .filter(|(_, x)| x.started && !x.exited)
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn paused(&self) {
        let mut st = self.lock();
        Tracker::set_status(&mut st, Status::Paused);
        self.send(&st, self.event(pb::EventType::Paused, "", 0));
    }

    pub fn resumed(&self) {
        let mut st = self.lock();
        Tracker::set_status(&mut st, Status::Running);
        self.send(&st, self.event(pb::EventType::Resumed, "", 0));
    }

    pub fn oom(&self, time_ns: i64) {
        let mut st = self.lock();
        let e = self.event(pb::EventType::Oom, "", time_ns);
        if !st.started && !st.recovered && !st.exited {
            // The shim saw it before Start's reply became `started`.
            st.pending.push(e);
        } else {
            self.send(&st, e);
        }
    }

    /// Delete removed the container: its exit (if not reported yet), then `deleted`; nothing
    /// after.
    pub fn deleted(&self, exit: Option<&protocol::Exit>) {
        if let Some(exit) = exit {
            self.exited(exit);
        }
        let mut st = self.lock();
        if st.deleted {
            return;
        }
        let e = self.event(pb::EventType::Deleted, "", 0);
        self.send(&st, e);
        st.deleted = true;
    }

    fn is_deleted(&self) -> bool {
        self.lock().deleted
    }

    /// Whether a subscription to the shim is open (its end would be noticed at once).
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::Relaxed)
    }

    fn exit_sent(&self) -> bool {
        self.lock().exited
    }

    /// Watches the container's shim for exits and OOM kills until the shim is gone; spawned
    /// for every container (at create, and for those found at start).
    pub fn watch(self: Arc<Self>) {
        let span = tracing::info_span!("container", id = %self.id);
        tokio::spawn(self.run_watch().instrument(span));
    }

    async fn run_watch(self: Arc<Self>) {
        // Subscribed until the shim is proven gone: a connect or subscribe that fails while it
        // runs (the daemon out of descriptors, say) is retried, never taken for its death.
        let mut backoff = Duration::from_millis(100);
        for attempt in 0u64.. {
            if self.is_deleted() {
                return;
            }
            if let Some(mut conn) = self.subscribe(attempt > 0).await {
                backoff = Duration::from_millis(100);
                self.watching.store(true, Ordering::Relaxed);
                loop {
                    match conn.recv().await {
                        Ok(Some(protocol::Response {
                            kind: Some(response::Kind::Event(ev)),
                        })) => self.on_shim_event(ev).await,
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
                self.watching.store(false, Ordering::Relaxed);
            }
            match shims::shim_status(&self.dir) {
                shims::Liveness::Gone => break,
                shims::Liveness::Alive(_) | shims::Liveness::Unknown { .. } => {
                    if self.exit_sent() {
                        // The init ended and was reported; its shim waits for Delete.
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // The shim is gone: deleted, or it died. A death before the exit was reported leaves
        // exit.json (or nothing: the exit is then unknown).
        if self.is_deleted() || self.exit_sent() {
            return;
        }
        // Give a Delete that shut the shim down the moment to say so.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if self.is_deleted() || self.exit_sent() {
            return;
        }
        let exit = match ExitRecord::load(&self.dir) {
            Ok(rec) => protocol::Exit::from(&rec),
            Err(_) if !self.dir.exists() => return,
            Err(_) => protocol::Exit {
                pid: state::read_pid(&self.dir.join(state::PID)).unwrap_or(0),
                reason: "the shim is gone and left no exit record".into(),
                ..Default::default()
            },
        };
        info!("the shim is gone; reporting the exit it left");
        self.exited(&exit);
    }

    /// Subscribes to the shim's events. On a later subscription (`again`), an exit that
    /// happened while none was open is reported from the shim's state.
    async fn subscribe(&self, again: bool) -> Option<ShimConn> {
        let mut conn = match ShimConn::connect(&self.dir).await {
            Ok(conn) => conn,
            Err(e) => {
                if again {
                    debug!(error = %e, "connecting to the shim for its events");
                }
                return None;
            }
        };
        if let Err(e) = conn.call(request::Kind::Subscribe(Empty {})).await {
            warn!(error = %e, "subscribing to the shim's events");
            return None;
        }
        // After a restart (nothing known yet), or a subscription lost: what the shim says now,
        // and an exit that happened while no subscription was open.
        if again || self.known().is_none() {
            let st = shims::call(&self.dir, request::Kind::State(Target::init())).await;
            if let Ok(Some(response::Kind::State(st))) = st {
                self.remember(&st);
                if let Some(exit) = &st.exit {
                    if !self.exit_sent() {
                        self.exited(exit);
                    }
                }
            }
        }
        Some(conn)
    }

    async fn on_shim_event(&self, ev: protocol::ShimEvent) {
        match EventKind::try_from(ev.kind).unwrap_or(EventKind::Unspecified) {
            EventKind::Exit => {
                let exit = ev.exit.unwrap_or_default();
                if !ev.exec_id.is_empty() {
                    self.exec_exited(&ev.exec_id, &exit);
                    return;
                }
                // The init's end ends its exec'd processes; their exits come before its own.
                for exec_id in self.running_execs() {
                    let wait = shims::call(
                        &self.dir,
                        request::Kind::Wait(Target {
                            exec_id: exec_id.clone(),
                        }),
                    );
                    if let Ok(Ok(Some(response::Kind::Exit(e)))) =
                        tokio::time::timeout(Duration::from_secs(2), wait).await
                    {
                        self.exec_exited(&exec_id, &e);
                    }
                }
                self.exited(&exit);
            }
            EventKind::Oom => self.oom(ev.time),
            EventKind::Unspecified => {}
        }
    }
}

#[cfg(test)]
mod tests;
