//! A container's network at create: a bridge-mode address from the ipam (held by a [`Lease`]
//! until the create succeeds) or the network namespace of another container.

use std::os::fd::AsRawFd;

use execdriver_proto as pb;
use execdriver_spec::config::Config as ContainerConfig;
use tracing::warn;

use super::Driver;
use crate::convert::{self, Meta};
use crate::error::{Error, Result};
use crate::ipam::Ipam;
use crate::render::status_name;

/// A bridge-mode address held by a Create; released when the Create fails.
pub(super) struct Lease<'a> {
    driver: &'a Driver,
    id: String,
    armed: bool,
}

impl Lease<'_> {
    pub(super) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.driver.release_address(&self.id) {
                warn!(id = %self.id, error = %e, "releasing the address of a failed create");
            }
        }
    }
}

impl Driver {
    fn ipam(&self) -> Option<std::sync::MutexGuard<'_, Ipam>> {
        // A panic while holding this lock is a bug; the allocations stay consistent.
        self.ipam
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(super) fn release_address(&self, id: &str) -> Result<()> {
        match self.ipam() {
            Some(mut ipam) => ipam.release(id),
            None => Ok(()),
        }
    }

    /// Completes the network of a container being created: a bridge-mode container gets its
    /// address (held by the returned lease until the create succeeds) and its veth; a
    /// container-mode one joins the other container's network namespace (a restricted
    /// caller's through the returned descriptor, to be held until the shim has opened it).
    pub(super) async fn complete_network<'a>(
        &'a self,
        id: &str,
        config: &mut ContainerConfig,
        meta: &mut Meta,
    ) -> Result<(Option<Lease<'a>>, Option<std::fs::File>)> {
        match meta.network.mode.as_str() {
            convert::MODE_BRIDGE => {
                let (Some(net), Some(mut ipam)) = (&self.config.defaults.network, self.ipam())
                else {
                    return Err(Error::FailedPrecondition(
                        "network.mode: NETWORK_MODE_BRIDGE needs a daemon started with --bridge and --subnet"
                            .into(),
                    ));
                };
                let requested =
                    if meta.network.address.is_empty() {
                        None
                    } else {
                        Some(meta.network.address.parse().map_err(|_| {
                            Error::invalid("network.address", "not an IPv4 address")
                        })?)
                    };
                let addr = ipam.allocate(id, requested)?;
                drop(ipam);
                let lease = Lease {
                    driver: self,
                    id: id.to_owned(),
                    armed: true,
                };
                config
                    .networks
                    .push(convert::bridge_network(net, addr, &meta.network));
                meta.network.address = format!("{addr}/{}", net.subnet.prefix);
                meta.network.gateway = net.gateway.to_string();
                meta.network.bridge = net.bridge.clone();
                config.validate().map_err(convert::request_field)?;
                Ok((Some(lease), None))
            }
            convert::MODE_CONTAINER => {
                let other_id = meta.network.container_id.clone();
                let other = self.get(&other_id)?;
                let st = self.state_of(&other).await?;
                let live = [
                    pb::Status::Created as i32,
                    pb::Status::Running as i32,
                    pb::Status::Paused as i32,
                ];
                if !live.contains(&st.status) || st.pid <= 0 {
                    return Err(Error::FailedPrecondition(format!(
                        "network.container_id: container {other_id} is {}; its network is gone",
                        status_name(st.status)
                    )));
                }
                let path = format!("/proc/{}/ns/net", st.pid);
                // A restricted caller's container joins through a descriptor of the namespace
                // opened while the other's init was seen alive before and after: its pid was
                // not reaped (the shim reaps and reports it), so not reused, in between. The
                // path alone could name the host's namespace once that pid is reused.
                let pinned = match meta.owner {
                    Some(_) => {
                        let ended = || {
                            Error::FailedPrecondition(format!(
                                "network.container_id: container {other_id} ended while its \
                                 network was being joined"
                            ))
                        };
                        let f = match std::fs::File::open(&path) {
                            Ok(f) => f,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                                return Err(ended())
                            }
                            Err(e) => return Err(Error::io(path.clone())(e)),
                        };
                        let again = self.state_of(&other).await?;
                        if !live.contains(&again.status) || again.pid != st.pid {
                            return Err(ended());
                        }
                        Some(f)
                    }
                    None => None,
                };
                let joined = pinned.as_ref().map_or_else(
                    || path.clone(),
                    |f| format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd()),
                );
                config.networks = vec![convert::netns_network(&joined)];
                let theirs = st.network.unwrap_or_default();
                meta.network.netns_path = path;
                meta.network.address = theirs.address;
                meta.network.gateway = theirs.gateway;
                meta.network.mac_address = theirs.mac_address;
                meta.network.bridge = theirs.bridge;
                meta.network.mtu = theirs.mtu;
                config.validate().map_err(convert::request_field)?;
                Ok((None, pinned))
            }
            _ => Ok((None, None)),
        }
    }
}
