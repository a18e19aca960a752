//! Requests about the container as a whole, answered through its cgroup: pause, resume,
//! stats, update, pids, and shutdown (which removes the cgroup and ends the shim).

use std::fs;

use crate::cgroups;
use crate::log;
use crate::namespaces::Namespace;
use crate::protocol::{self, response, ErrorCode, Response, Status};
use crate::state;

use super::procs::status_name;
use super::Shim;

impl Shim {
    fn no_cgroups(&self) -> Response {
        Response::error(
            ErrorCode::FailedPrecondition,
            format!("container {} has no cgroups", self.id),
        )
    }

    pub(super) fn pause(&mut self) -> Response {
        if self.init().status != Status::Running {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {} is {}, not running",
                    self.id,
                    status_name(self.init().status)
                ),
            );
        }
        let Some(cg) = self.cgroup.as_deref() else {
            return self.no_cgroups();
        };
        match cg.freeze() {
            Ok(()) => {
                self.set_init_status(Status::Paused);
                Response::ok()
            }
            Err(e) => Response::error(ErrorCode::Internal, format!("pause: {e}")),
        }
    }

    pub(super) fn resume(&mut self) -> Response {
        if self.init().status != Status::Paused {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {} is {}, not paused",
                    self.id,
                    status_name(self.init().status)
                ),
            );
        }
        let Some(cg) = self.cgroup.as_deref() else {
            return self.no_cgroups();
        };
        match cg.thaw() {
            Ok(()) => {
                self.set_init_status(Status::Running);
                Response::ok()
            }
            Err(e) => Response::error(ErrorCode::Internal, format!("resume: {e}")),
        }
    }

    fn refuse_stopped(&self) -> Option<Response> {
        (self.init().status == Status::Stopped).then(|| {
            Response::error(
                ErrorCode::FailedPrecondition,
                format!("container {} is not running", self.id),
            )
        })
    }

    pub(super) fn stats(&mut self) -> Response {
        if let Some(r) = self.refuse_stopped() {
            return r;
        }
        let Some(cg) = self.cgroup.as_deref() else {
            return self.no_cgroups();
        };
        match cg.stats() {
            Ok(mut stats) => {
                if self.config.has_namespace(Namespace::Net) {
                    // /proc/PID/net/dev shows the network namespace of PID: the container's.
                    stats.networks = cgroups::stats::read_networks(self.init().pid.as_raw());
                }
                Response {
                    kind: Some(response::Kind::Stats(stats)),
                }
            }
            Err(e) => Response::error(ErrorCode::Internal, format!("stats: {e}")),
        }
    }

    /// Changes limits of a live container; container.json keeps the limits in force.
    pub(super) fn update(&mut self, r: protocol::Resources) -> Response {
        if let Some(resp) = self.refuse_stopped() {
            return resp;
        }
        let Some(current) = self.config.cgroups.clone() else {
            return self.no_cgroups();
        };
        let merged = r.merged_into(&current);
        if let Some(c) = current
            .share_parent
            .iter()
            .find(|c| merged.limits_controller(c))
        {
            let field = if c == "cpuset" {
                "cpuset_cpus"
            } else {
                c.as_str()
            };
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "cgroups.{field}: the container shares its parent's {c} cgroup (made without \
                     a {c} limit under execdriverd --cgroups-when-limited); a {c} limit needs a \
                     {c} cgroup of its own, which only a create makes"
                ),
            );
        }
        if let Err(e) = merged.validate_resources() {
            return Response::error(ErrorCode::InvalidArgument, e.to_string());
        }
        let Some(cg) = self.cgroup.as_deref() else {
            return self.no_cgroups();
        };
        if let Err(e) = cg.set(&merged) {
            // An invalid value's message starts with the field (cgroups.memory: ...).
            return if e.is_invalid() {
                Response::error(ErrorCode::InvalidArgument, e.to_string())
            } else {
                Response::error(ErrorCode::Internal, format!("update: {e}"))
            };
        }
        self.config.cgroups = Some(merged.clone());
        match serde_json::to_vec_pretty(&self.config) {
            Ok(json) => {
                if let Err(e) = state::write_atomic(&self.dir, state::CONFIG, &json, false) {
                    log::error!(
                        "shim {}: recording the update in container.json: {e}",
                        self.id
                    );
                }
            }
            Err(e) => log::error!("shim {}: {e}", self.id),
        }
        Response {
            kind: Some(response::Kind::Resources(protocol::Resources::of(&merged))),
        }
    }

    pub(super) fn pids(&mut self) -> Response {
        if let Some(r) = self.refuse_stopped() {
            return r;
        }
        let Some(cg) = self.cgroup.as_deref() else {
            return self.no_cgroups();
        };
        let pids: Vec<i32> = cg.pids().iter().map(|p| p.as_raw()).collect();
        let container_pids = pids.iter().map(|p| namespace_pid(*p)).collect();
        Response {
            kind: Some(response::Kind::Pids(protocol::Pids {
                pids,
                container_pids,
            })),
        }
    }

    pub(super) fn shutdown(&mut self) -> Response {
        let status = self.init().status;
        if status != Status::Stopped {
            return Response::error(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {} is {}; stop it first",
                    self.id,
                    status_name(status)
                ),
            );
        }
        // The shim ends whatever happens: what it could not remove the driver finds (it
        // releases the container's cgroups again) and retries later.
        let released = match &self.cgroup {
            Some(cg) => match cg.destroy() {
                Ok(()) => true,
                Err(e) => {
                    log::warn!("shim {}: shutdown: {e}; the driver retries", self.id);
                    false
                }
            },
            None => true,
        };
        self.done = true;
        if released {
            Response {
                kind: Some(response::Kind::Released(protocol::Empty {})),
            }
        } else {
            Response::ok()
        }
    }
}

/// The pid of host process `pid` in its innermost pid namespace (the last NSpid entry); 0
/// when unknown.
fn namespace_pid(pid: i32) -> i32 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|v| v.split_whitespace().last()?.parse().ok())
        })
        .unwrap_or(0)
}
