//! Recovery: opening the root (its lock, the startup pass that reloads the containers whose
//! shims still run and buries the rest, the bridge's addresses), `--cleanup`, and watching for
//! shims that died so what their containers left is removed.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use execdriver_shim::network as shim_net;
use execdriver_spec::state::{self, ExitRecord};
use tracing::{info, warn};

use super::{Container, Driver, DriverConfig, Reservation, Table, ROOT_LOCK, WATCH_INTERVAL};
use crate::convert;
use crate::error::{Error, Result};
use crate::events::{Hub, Tracker};
use crate::gc;
use crate::ipam::Ipam;
use crate::leftovers;
use crate::shims;

/// Takes the root's lock, or fails naming what holds it.
fn lock_root(root: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let path = root.join(ROOT_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(format!("opening {}", path.display())))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        Error::FailedPrecondition(format!(
            "{}: another execdriverd (or --cleanup) works on this root: {e}",
            root.display()
        ))
    })
}

/// Leftovers of deletes are retried every this many watch ticks.
const LEFTOVER_TICKS: u64 = leftovers::RETRY_INTERVAL.as_secs() / super::WATCH_INTERVAL.as_secs();

impl Driver {
    /// Opens the state directory and loads the containers in it (after a restart, their shims
    /// are still running and are reached through their sockets).
    pub fn open(config: DriverConfig) -> Result<Driver> {
        create_private_dir(&config.root)?;
        let lock = lock_root(&config.root)?;
        let history = match config.event_history {
            0 => crate::events::DEFAULT_HISTORY,
            n => n,
        };
        let events = Arc::new(Hub::open(&config.root, history));
        // What parked shims of an earlier daemon left (they end with it; a killed one leaves
        // its cgroups).
        crate::pool::sweep(&config.root, &config.defaults.cgroup_parent);
        let shim_exe = shims::ShimExe::open(&config.shim_path);
        let pool = crate::pool::ShimPool::new(
            config.shim_pool,
            &config.root,
            &config.defaults.cgroup_parent,
            config.defaults.when_limited.clone(),
            shim_exe.program(),
        );
        let mut driver = Driver {
            shim_exe,
            pool,
            config,
            table: Mutex::new(Table::default()),
            ipam: None,
            events,
            _root_lock: lock,
        };
        // The startup pass: what containers whose shim is gone left is removed, their exit
        // recorded; incomplete directories go.
        let (report, load) = gc::pass(
            &driver.config.root,
            &driver.config.defaults.cgroup_parent,
            false,
        );
        for line in &report.lines {
            info!("startup: {line}");
        }
        for line in leftovers::retry(&driver.config.root, &driver.config.defaults.cgroup_parent) {
            info!("startup: {line}");
        }
        for found in load {
            // A dead one's leftovers went in the pass.
            let (meta, buried) = match found.kind {
                gc::Kind::Live { meta, .. } => (*meta, false),
                gc::Kind::Dead { meta } => (*meta, true),
                _ => continue,
            };
            let events = Arc::new(
                Tracker::recovered(
                    driver.events.clone(),
                    &found.id,
                    &found.dir,
                    meta.labels.clone().into_iter().collect(),
                )
                .owned_by(meta.owner),
            );
            let c = Container::new(found.id.clone(), found.dir, meta, events);
            c.buried.store(buried, Ordering::Relaxed);
            driver.table().containers.insert(found.id, Arc::new(c));
        }
        if let Some(net) = driver.config.defaults.network.clone() {
            crate::claim::bridge(&net.bridge, &driver.config.root)?;
            shim_net::ensure_bridge(&net.bridge, net.gateway_cidr(), net.mtu)
                .map_err(|e| Error::Internal(format!("--bridge {}: {e}", net.bridge)))?;
            info!(bridge = %net.bridge, subnet = %net.subnet, gateway = %net.gateway, "bridge ready");
            let mut ipam = Ipam::open(&driver.config.root, &net)?;
            let owners = driver
                .table()
                .containers
                .values()
                .map(|c| {
                    let addr = (c.meta.network.mode == convert::MODE_BRIDGE)
                        .then(|| c.meta.network.address.split('/').next()?.parse().ok())
                        .flatten();
                    (c.id.clone(), addr)
                })
                .collect();
            ipam.reconcile(&owners)?;
            driver.ipam = Some(Mutex::new(ipam));
        }
        Ok(driver)
    }

    /// Starts watching every container's shim for exits and OOM kills (after [`Driver::open`],
    /// in the runtime). An exit that happened while the driver was down is reported now.
    pub fn watch_containers(&self) {
        tokio::spawn(self.pool.clone().refill());
        let all: Vec<Arc<Container>> = self.table().containers.values().cloned().collect();
        for c in all {
            c.events.clone().watch();
        }
    }

    /// `execdriverd --cleanup`: under the root's lock (so not while a daemon runs on it),
    /// removes the leftovers and the state directories of every container whose shim is gone,
    /// incomplete directories, their addresses in ipam.json, and empty cgroups under the
    /// daemon's parent that belong to no container. Containers whose shim runs are kept.
    pub fn cleanup(config: &DriverConfig) -> Result<gc::Report> {
        create_private_dir(&config.root)?;
        let _lock = lock_root(&config.root)?;
        let parent = &config.defaults.cgroup_parent;
        crate::pool::sweep(&config.root, parent);
        let (mut report, _) = gc::pass(&config.root, parent, true);
        report.lines.extend(leftovers::retry(&config.root, parent));
        gc::orphan_cgroups(parent, &report.kept.clone(), &mut report);
        match crate::ipam::prune(&config.root, &report.kept) {
            Ok(released) => {
                for (addr, id) in released {
                    report
                        .lines
                        .push(format!("ipam: released {addr} of container {id}"));
                }
            }
            Err(e) => report.lines.push(format!("ipam: {e}")),
        }
        Ok(report)
    }

    /// Looks for shims that died (every [`WATCH_INTERVAL`]) and removes what their containers
    /// left, so no container process runs unsupervised for long. Runs until the driver goes.
    pub async fn watch_shims(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(WATCH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0u64.. {
            ticks.tick().await;
            // A subscribed shim's death ends its subscription at once (the watcher then looks);
            // only the others (stopped containers, whose watcher is done) are looked at here,
            // off the async threads: thousands of idle containers cost no scan.
            // Filtered outside the table's lock (each container's own lock is taken).
            let all: Vec<Arc<Container>> = self.table().containers.values().cloned().collect();
            let unwatched: Vec<Arc<Container>> = all
                .into_iter()
                .filter(|c| !c.buried.load(Ordering::Relaxed) && !c.events.watching())
                .collect();
            let gone = tokio::task::spawn_blocking(move || {
                unwatched
                    .into_iter()
                    .filter(|c| shims::shim_alive(&c.dir).is_none())
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            for c in gone {
                self.bury(&c).await;
            }
            if n % 5 == 4 {
                self.sweep_strays().await;
            }
            if n % LEFTOVER_TICKS == LEFTOVER_TICKS - 1 && leftovers::any(&self.config.root) {
                let (root, parent) = (
                    self.config.root.clone(),
                    self.config.defaults.cgroup_parent.clone(),
                );
                if let Ok(lines) =
                    tokio::task::spawn_blocking(move || leftovers::retry(&root, &parent)).await
                {
                    for line in lines {
                        info!("{line}");
                    }
                }
            }
        }
    }

    /// Removes directories of no container that are not being created: what a create of a
    /// previous daemon, still finishing when this one started, left once its shim gave up.
    async fn sweep_strays(&self) {
        // Listed off the async threads and outside the table's lock (10,000 entries take a
        // few milliseconds, which a create or a List would otherwise wait for).
        let root = self.config.root.clone();
        let names: Vec<(String, PathBuf)> = tokio::task::spawn_blocking(move || {
            std::fs::read_dir(&root)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
                        .collect()
                })
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        // The table first: with thousands of containers, only strays are stat'ed.
        let unknown: Vec<(String, PathBuf)> = {
            let t = self.table();
            names
                .into_iter()
                .filter(|(id, _)| {
                    !t.containers.contains_key(id)
                        && !t.creating.contains(id)
                        && convert::validate_id(id).is_ok()
                })
                .collect()
        };
        let strays: Vec<(String, PathBuf)> = unknown
            .into_iter()
            .filter(|(_, dir)| dir.is_dir())
            .collect();
        for (id, dir) in strays {
            // Held like a Create's, so no Create of this id runs meanwhile.
            let _reservation = {
                let mut t = self.table();
                if t.containers.contains_key(&id) || !t.creating.insert(id.clone()) {
                    continue;
                }
                Reservation {
                    driver: self,
                    id: id.clone(),
                }
            };
            if gc::classify(&id, &dir) != gc::Kind::Incomplete {
                continue;
            }
            let parent = self.config.defaults.cgroup_parent.clone();
            let d = dir.clone();
            let done = tokio::task::spawn_blocking(move || {
                let released = gc::release(&d, &parent);
                gc::remove_state_dir(&d).map(|_| released)
            })
            .await;
            match done {
                Ok(Ok(released)) => {
                    info!(id = %id, "removed a stray incomplete directory: {released}")
                }
                Ok(Err(e)) => warn!(id = %id, error = %e, "removing a stray directory"),
                Err(e) => warn!(id = %id, error = %e, "removing a stray directory"),
            }
        }
    }

    /// The shim of `c` is gone: kills what is left of the container through its cgroups,
    /// removes its cgroups, veths and mounts, and makes sure an exit record says how it ended.
    /// Idempotent; does nothing once the container is deleted or when its shim runs.
    pub(super) async fn bury(&self, c: &Container) {
        let removed = c.teardown.lock().await;
        if *removed || c.buried.load(Ordering::Relaxed) {
            return;
        }
        if shims::shim_alive(&c.dir).is_some() {
            return;
        }
        let shim_pid = state::read_pid(&c.dir.join(state::SHIM_PID)).ok();
        let dir = c.dir.clone();
        let parent = self.config.defaults.cgroup_parent.clone();
        let done = tokio::task::spawn_blocking(move || {
            let released = gc::release(&dir, &parent);
            let rec = gc::record_exit(&dir, shim_pid, &released.killed);
            let saved = ExitRecord::load(&dir).is_ok();
            (released, rec, saved)
        })
        .await;
        match done {
            // Not written (out of descriptors, say): the next watch tick buries it again.
            Ok((_, _, false)) => {
                warn!(id = %c.id, "the shim is gone; its exit record could not be written yet")
            }
            Ok((released, rec, true)) => {
                warn!(
                    id = %c.id,
                    shim_pid = shim_pid.unwrap_or(0),
                    "the shim is gone: {}; {released}",
                    gc::exit_text(&rec)
                );
                c.buried.store(true, Ordering::Relaxed);
            }
            Err(e) => warn!(id = %c.id, error = %e, "cleaning up after a dead shim"),
        }
        drop(removed);
    }
}

/// What is known of a container whose shim is gone: its exit record, or that it is unknown.
pub(super) fn orphan_exit(dir: &Path) -> ExitRecord {
    ExitRecord::load(dir).unwrap_or_else(|_| ExitRecord {
        pid: state::read_pid(&dir.join(state::PID)).unwrap_or(0),
        reason: "the shim is gone and left no exit record".into(),
        ..Default::default()
    })
}

fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(Error::io(format!("creating {}", path.display())))
}
