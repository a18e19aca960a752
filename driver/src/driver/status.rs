//! What the driver reports of its containers: the state of one (and of its exec'd processes),
//! the listing, and a container's network as created.

use std::collections::BTreeMap;
use std::sync::Arc;

use execdriver_proto as pb;
use execdriver_shim::network as shim_net;
use execdriver_spec::protocol::{request, response, ShimState, Status, Target};
use tracing::warn;

use super::recovery::orphan_exit;
use super::{unexpected, Container, Driver};
use crate::convert;
use crate::error::{Error, Result};
use crate::render::{exit_status, process_state, proto_status, timestamp};

impl Driver {
    /// The state of an exec'd process.
    pub async fn process_state(&self, c: &Container, exec_id: &str) -> Result<pb::ProcessState> {
        let kind = self
            .call_running(
                c,
                request::Kind::State(Target {
                    exec_id: exec_id.to_owned(),
                }),
            )
            .await?;
        let response::Kind::State(st) = kind else {
            return Err(Error::Internal("unexpected reply from the shim".into()));
        };
        Ok(process_state(exec_id, &st))
    }

    pub async fn state(
        &self,
        id: &str,
        exec_id: &str,
    ) -> Result<(pb::ContainerState, Option<pb::ProcessState>)> {
        let c = self.get(id)?;
        convert::validate_exec_id(exec_id)?;
        let process = if exec_id.is_empty() {
            None
        } else {
            Some(self.process_state(&c, exec_id).await?)
        };
        Ok((self.state_of(&c).await?, process))
    }

    pub(super) async fn state_of(&self, c: &Container) -> Result<pb::ContainerState> {
        let st = match self
            .call_shim(c, request::Kind::State(Target::init()))
            .await?
        {
            Some(response::Kind::State(st)) => {
                c.events.remember(&st);
                Some(st)
            }
            Some(other) => return Err(unexpected(other)),
            None => None,
        };
        Ok(self.container_state(c, st))
    }

    /// Combines the shim's answer (None: no shim) with the driver's record.
    pub(super) fn container_state(
        &self,
        c: &Container,
        st: Option<ShimState>,
    ) -> pb::ContainerState {
        let (status, pid, started_at, exit, shim_pid) = match st {
            Some(st) => {
                let status = Status::try_from(st.status).unwrap_or(Status::Unspecified);
                (
                    status,
                    st.pid,
                    st.started_at,
                    st.exit.map(|e| exit_status(&e)),
                    st.shim_pid,
                )
            }
            None => {
                let exit = orphan_exit(&c.dir);
                (
                    Status::Stopped,
                    exit.pid,
                    exit.started_at,
                    Some(exit_status(&(&exit).into())),
                    0,
                )
            }
        };
        let finished_at = exit.as_ref().and_then(|e| e.finished_at);
        pb::ContainerState {
            id: c.id.clone(),
            status: proto_status(status) as i32,
            pid,
            exit,
            created_at: timestamp(c.meta.created_at),
            started_at: timestamp(started_at),
            finished_at,
            labels: c.meta.labels.clone().into_iter().collect(),
            rootfs: path_string(&c.meta.rootfs),
            bundle: path_string(&c.dir),
            shim_pid,
            network: Some(network_status(c)),
        }
    }

    /// The containers with every label of `filter` whose owner `sees` admits.
    pub async fn list(
        &self,
        filter: &BTreeMap<String, String>,
        sees: &(dyn Fn(Option<u32>) -> bool + Sync),
    ) -> Result<Vec<pb::ContainerState>> {
        // Sorted by creation time taken out beside each (at 10,000 containers, a comparison
        // that reads both containers' records missed the cache at every step).
        let mut all: Vec<(i64, Arc<Container>)> = self
            .table()
            .containers
            .values()
            .filter(|c| sees(c.meta.owner))
            .filter(|c| filter.iter().all(|(k, v)| c.meta.labels.get(k) == Some(v)))
            .map(|c| (c.meta.created_at, c.clone()))
            .collect();
        all.sort_unstable_by(|(ta, a), (tb, b)| ta.cmp(tb).then_with(|| a.id.cmp(&b.id)));
        // What the daemon knows (every state change passes through it, and each shim's exit
        // arrives on its subscription): no round trip per container. A shim not heard from
        // yet (just after a restart) is asked.
        let mut out = Vec::with_capacity(all.len());
        for (_, c) in all {
            if c.buried.load(std::sync::atomic::Ordering::Relaxed) {
                out.push(self.container_state(&c, None));
                continue;
            }
            if let Some(known) = c.events.known() {
                out.push(self.container_state(&c, Some(known)));
                continue;
            }
            match self.state_of(&c).await {
                Ok(st) => out.push(st),
                // One unreachable shim does not fail the listing: its status is unknown.
                Err(e) => {
                    warn!(id = %c.id, error = %e, "listing");
                    out.push(self.container_state(&c, Some(ShimState::default())));
                }
            }
        }
        Ok(out)
    }
}

/// A container's network as created: the driver's record, and the shim's for the host end
/// (read once: it does not change after create).
fn network_status(c: &Container) -> pb::NetworkStatus {
    if let Some(n) = c.network.get() {
        return n.clone();
    }
    let (n, complete) = read_network_status(c);
    if complete {
        let _ = c.network.set(n.clone());
    }
    n
}

/// The network status, and whether it is complete (a bridge container's host end was read).
fn read_network_status(c: &Container) -> (pb::NetworkStatus, bool) {
    let m = &c.meta.network;
    let mode = match m.mode.as_str() {
        convert::MODE_NONE => pb::NetworkMode::None,
        convert::MODE_BRIDGE => pb::NetworkMode::Bridge,
        convert::MODE_HOST => pb::NetworkMode::Host,
        convert::MODE_CONTAINER => pb::NetworkMode::Container,
        convert::MODE_NETNS => pb::NetworkMode::Netns,
        convert::MODE_SLIRP4NETNS => pb::NetworkMode::Slirp4netns,
        _ => pb::NetworkMode::Unspecified,
    };
    let links = if mode == pb::NetworkMode::Bridge {
        shim_net::load_host_links(&c.dir)
    } else {
        Vec::new()
    };
    let link = links.first();
    let complete = mode != pb::NetworkMode::Bridge || link.is_some();
    let status = pb::NetworkStatus {
        mode: mode as i32,
        address: m.address.clone(),
        gateway: m.gateway.clone(),
        mac_address: link
            .map(|l| l.mac_address.clone())
            .unwrap_or_else(|| m.mac_address.clone()),
        host_interface: link.map(|l| l.name.clone()).unwrap_or_default(),
        bridge: m.bridge.clone(),
        mtu: link.map(|l| l.mtu).unwrap_or(m.mtu),
        container_id: m.container_id.clone(),
        netns_path: m.netns_path.clone(),
    };
    (status, complete)
}

/// A path as a string: checked as UTF-8 at once (List builds 10,000 of these; the lossy walk
/// Display takes, byte by byte, was a sixth of its time), lossy only when it is not.
fn path_string(p: &std::path::Path) -> String {
    match p.to_str() {
        Some(s) => s.to_owned(),
        None => p.to_string_lossy().into_owned(),
    }
}
