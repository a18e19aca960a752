//! A live container's resources: pause and resume, stats (one sample or a stream), updating
//! its limits, and its pids.

use std::sync::Arc;
use std::time::Duration;

use execdriver_proto as pb;
use execdriver_spec::protocol::{self, request, response, Empty};
use tracing::info;

use super::{unexpected, Driver};
use crate::convert;
use crate::error::{Error, Result};
use crate::render::container_stats;

impl Driver {
    /// Freezes every process of a running container.
    pub async fn pause(&self, id: &str) -> Result<pb::ContainerState> {
        let c = self.get(id)?;
        let _op = c.op.lock().await;
        self.call_live(&c, request::Kind::Pause(Empty {})).await?;
        info!(id = %id, "paused");
        c.events.paused();
        self.state_of(&c).await
    }

    /// Thaws a paused container.
    pub async fn resume(&self, id: &str) -> Result<pb::ContainerState> {
        let c = self.get(id)?;
        let _op = c.op.lock().await;
        self.call_live(&c, request::Kind::Resume(Empty {})).await?;
        info!(id = %id, "resumed");
        c.events.resumed();
        self.state_of(&c).await
    }

    /// One sample of the container's resource use.
    pub async fn stats(&self, id: &str) -> Result<pb::ContainerStats> {
        let c = self.get(id)?;
        match self.call_live(&c, request::Kind::Stats(Empty {})).await? {
            response::Kind::Stats(s) => Ok(container_stats(id, s)),
            other => Err(unexpected(other)),
        }
    }

    /// Samples every `interval_ms` (0: 1000) into a channel until the container stops, the
    /// receiver is dropped, or an error (sent last). The first sample is taken before this
    /// returns, so a bad id or a stopped container is an error of the call itself.
    pub async fn stats_stream(
        self: &Arc<Self>,
        id: &str,
        interval_ms: u32,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<pb::ContainerStats>>> {
        let interval = match interval_ms {
            0 => 1000,
            100..=3_600_000 => interval_ms,
            _ => {
                return Err(Error::invalid(
                    "interval_ms",
                    format!("{interval_ms} is out of range 100 to 3600000"),
                ))
            }
        };
        let first = self.stats(id).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let driver = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            let mut ticks = tokio::time::interval(Duration::from_millis(interval.into()));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate: that sample went already
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = tx.closed() => return,
                }
                match driver.stats(&id).await {
                    Ok(s) => {
                        if tx.send(Ok(s)).await.is_err() {
                            return;
                        }
                    }
                    // Stopped or deleted: the stream ends.
                    Err(Error::FailedPrecondition(_) | Error::NotFound(_)) => return,
                    Err(Error::Shim {
                        code: protocol::ErrorCode::FailedPrecondition,
                        ..
                    }) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    /// Changes the limits of a live container; returns the limits in force.
    pub async fn update(&self, req: &pb::UpdateRequest) -> Result<pb::Resources> {
        let limits = convert::update_limits(req)?;
        if let Some(r) = &self.config.defaults.rootless {
            r.check_limits(&limits)?;
        }
        let resources = protocol::Resources::of(&limits);
        let c = self.get(&req.id)?;
        let _op = c.op.lock().await;
        let reply = self
            .call_live(&c, request::Kind::Update(resources))
            .await
            .map_err(|e| match e {
                // The shim names container.json's field; the caller knows the request's.
                Error::Shim {
                    code: protocol::ErrorCode::InvalidArgument,
                    message,
                } => match message
                    .strip_prefix("cgroups.")
                    .and_then(|m| m.split_once(": "))
                {
                    Some((field, reason)) => Error::invalid(format!("resources.{field}"), reason),
                    None => Error::invalid("resources", message),
                },
                Error::Shim {
                    code: protocol::ErrorCode::FailedPrecondition,
                    message,
                } => Error::FailedPrecondition(match message.strip_prefix("cgroups.") {
                    Some(rest) => format!("resources.{rest}"),
                    None => message,
                }),
                e => e,
            })?;
        match reply {
            response::Kind::Resources(r) => {
                info!(id = %req.id, "updated");
                Ok(pb::Resources {
                    memory: r.memory,
                    memory_reservation: r.memory_reservation,
                    memory_swap: r.memory_swap,
                    cpu_shares: r.cpu_shares,
                    cpu_quota: r.cpu_quota,
                    cpu_period: r.cpu_period,
                    cpuset_cpus: r.cpuset_cpus,
                    cpuset_mems: r.cpuset_mems,
                    blkio_weight: r.blkio_weight,
                    pids_limit: r.pids_limit,
                    ..Default::default()
                })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Every process of the container.
    pub async fn pids(&self, id: &str) -> Result<pb::PidsResponse> {
        let c = self.get(id)?;
        match self.call_live(&c, request::Kind::Pids(Empty {})).await? {
            response::Kind::Pids(p) => Ok(pb::PidsResponse {
                pids: p.pids,
                container_pids: p.container_pids,
            }),
            other => Err(unexpected(other)),
        }
    }
}
