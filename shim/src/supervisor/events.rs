//! Events for subscribers: every process's exit and the container's OOM kills.

use crate::log;
use crate::protocol::{self, response, Exit, Response};
use crate::state;

use super::clients::Mode;
use super::Shim;

impl Shim {
    /// Notes an OOM kill in the container: the kernel's counter decides; on kernels without
    /// one, a notification (`notified`) does.
    pub(super) fn on_oom(&mut self, notified: bool) {
        if let Some(w) = &self.oom {
            w.drain();
        }
        if self.init().exit.is_some() {
            // Recorded already; v1 also signals the eventfd when the cgroup is removed.
            return;
        }
        let Some(cg) = &self.cgroup else { return };
        // Kills so far: the kernel's counter, or (without one) one per notification.
        let kills = match cg.oom_kills() {
            Some(n) => n.saturating_sub(self.oom_base),
            None => self.oom_reported + u64::from(notified),
        };
        if kills > 0 && !self.oom_seen {
            self.oom_seen = true;
            log::warn!(
                "shim {}: the kernel OOM-killed a process of the container",
                self.id
            );
        }
        if kills > self.oom_reported {
            self.oom_reported = kills;
            self.publish(protocol::ShimEvent {
                kind: protocol::EventKind::Oom as i32,
                exec_id: String::new(),
                exit: None,
                time: state::now_ns(),
                oom_kills: kills,
            });
        }
    }

    /// Sends an event to every subscriber.
    pub(super) fn publish(&mut self, event: protocol::ShimEvent) {
        let frame = protocol::encode_frame(&Response {
            kind: Some(response::Kind::Event(event)),
        });
        let tokens: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| c.mode == Mode::Subscribed)
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            if let Some(c) = self.clients.get_mut(&t) {
                c.out.extend_from_slice(&frame);
            }
            self.flush_client(t);
        }
    }

    /// Makes a connection a subscriber; an init that has ended is reported at once.
    pub(super) fn subscribe(&mut self, token: u64) {
        if let Some(c) = self.clients.get_mut(&token) {
            c.mode = Mode::Subscribed;
        }
        self.reply(token, Response::ok());
        if let Some(rec) = self.init().exit.as_ref() {
            let event = protocol::ShimEvent {
                kind: protocol::EventKind::Exit as i32,
                exec_id: String::new(),
                exit: Some(Exit::from(rec)),
                time: rec.finished_at,
                oom_kills: 0,
            };
            self.reply(
                token,
                Response {
                    kind: Some(response::Kind::Event(event)),
                },
            );
        }
    }
}
