//! The driver's model of its containers: the state directory, the table of known containers,
//! and each lifecycle operation as the shim carries it out.
//!
//! This file owns the [`Driver`], its table of [`Container`]s, looking a container up by id and
//! calling its shim. The operations are in the submodules: `recovery` (opening the root, the
//! startup pass, `--cleanup`, burying containers whose shim died), `network` (bridge addresses
//! and joined network namespaces at create), `lifecycle` (create, start, wait, kill, stop,
//! delete), `status` (state and list), `exec`, `io` (attach, resize, stdin, logs) and
//! `resources` (pause, resume, stats, update, pids).

mod exec;
mod io;
mod lifecycle;
mod network;
mod recovery;
mod resources;
mod status;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use execdriver_spec::protocol::{request, response};

use crate::convert::{self, Defaults, Meta};
use crate::error::{Error, Result};
use crate::events::{Hub, Tracker};
use crate::ipam::Ipam;
pub use crate::render::{container_stats, exit_status, status_name, timestamp, timestamp_ns};
use crate::shims;

/// How the daemon was configured.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub root: PathBuf,
    pub shim_path: PathBuf,
    pub defaults: Defaults,
    /// Events kept for Events subscribers that reconnect (0: the default).
    pub event_history: usize,
    /// Shims kept parked for creates (`--shim-pool`; 0: none).
    pub shim_pool: usize,
}

/// One container the driver knows.
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    pub meta: Meta,
    /// Serializes Start / Kill / Delete on this container.
    op: tokio::sync::Mutex<()>,
    /// Its events, in order.
    pub events: Arc<Tracker>,
    /// Serializes the clean-up after its shim's death with Delete's removal of the state
    /// directory; true once the directory is gone.
    teardown: tokio::sync::Mutex<bool>,
    /// Its shim was found dead and what it left was removed.
    buried: AtomicBool,
    /// Its network as created, once read.
    network: std::sync::OnceLock<execdriver_proto::NetworkStatus>,
}

impl Container {
    fn new(id: String, dir: PathBuf, meta: Meta, events: Arc<Tracker>) -> Container {
        Container {
            id,
            dir,
            meta,
            events,
            op: Default::default(),
            teardown: Default::default(),
            buried: AtomicBool::new(false),
            network: std::sync::OnceLock::new(),
        }
    }
}

/// How often the driver looks for shims that died.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The lock file in the root: one daemon (or `--cleanup`) per root at a time.
pub const ROOT_LOCK: &str = ".lock";

#[derive(Default)]
struct Table {
    containers: HashMap<String, Arc<Container>>,
    /// Ids whose Create is under way.
    creating: HashSet<String>,
}

pub struct Driver {
    pub config: DriverConfig,
    table: Mutex<Table>,
    /// Bridge-mode addresses (with `--bridge`).
    ipam: Option<Mutex<Ipam>>,
    /// The shim binary, sealed in memory.
    shim_exe: shims::ShimExe,
    /// Parked shims for creates.
    pub pool: Arc<crate::pool::ShimPool>,
    /// Container events for Events subscribers.
    pub events: Arc<Hub>,
    /// Held while the driver lives: no second daemon works on the same root.
    _root_lock: nix::fcntl::Flock<std::fs::File>,
}

/// Releases a Create's claim on its id when the Create ends, however it ends.
struct Reservation<'a> {
    driver: &'a Driver,
    id: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.driver.table().creating.remove(&self.id);
    }
}

impl Driver {
    /// Calls the shim of `c`; `Ok(None)` when it is gone, after burying it.
    async fn call_shim(
        &self,
        c: &Container,
        kind: request::Kind,
    ) -> Result<Option<response::Kind>> {
        let r = shims::call(&c.dir, kind).await?;
        if r.is_none() {
            self.bury(c).await;
        }
        Ok(r)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding this lock is a bug; the table itself stays consistent.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> Result<Arc<Container>> {
        convert::validate_id(id)?;
        self.table()
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(id.to_owned()))
    }

    /// The owner recorded for container `id` (`Meta::owner`); NOT_FOUND when there is none.
    pub fn owner_of(&self, id: &str) -> Result<Option<u32>> {
        Ok(self.get(id)?.meta.owner)
    }

    /// NOT_FOUND when `c` is no longer the container of its id (deleted meanwhile).
    fn still_known(&self, c: &Arc<Container>) -> Result<()> {
        match self.table().containers.get(&c.id) {
            Some(known) if Arc::ptr_eq(known, c) => Ok(()),
            _ => Err(Error::NotFound(c.id.clone())),
        }
    }

    /// Calls the container's shim; a missing shim means the container is gone.
    async fn call_running(&self, c: &Container, kind: request::Kind) -> Result<response::Kind> {
        self.call_shim(c, kind).await?.ok_or_else(|| {
            Error::FailedPrecondition(format!("container {} is stopped (its shim is gone)", c.id))
        })
    }

    /// Whether the shim of container `id` still runs.
    pub fn shim_runs(&self, id: &str) -> bool {
        self.get(id)
            .is_ok_and(|c| shims::shim_alive(&c.dir).is_some())
    }

    /// Calls the shim of a container; FAILED_PRECONDITION when none answers (it has stopped).
    async fn call_live(&self, c: &Container, kind: request::Kind) -> Result<response::Kind> {
        match self.call_shim(c, kind).await? {
            Some(k) => Ok(k),
            None => Err(Error::FailedPrecondition(format!(
                "container {} is stopped (its shim is gone)",
                c.id
            ))),
        }
    }
}

fn unexpected(k: response::Kind) -> Error {
    Error::Internal(format!("unexpected reply from the shim: {k:?}"))
}
