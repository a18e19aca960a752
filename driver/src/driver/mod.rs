//! The driver's model of its containers: the state directory, the table of known containers,
//! and each lifecycle operation as the shim carries it out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use execdriver_proto as pb;
use execdriver_shim::cgroups::stats::Stats;
use execdriver_shim::config::Config as ContainerConfig;
use execdriver_shim::network as shim_net;
use execdriver_shim::protocol::{self, request, response, Empty, ShimState, Status, Target};
use execdriver_shim::state::{self, ExitRecord};
use tracing::{info, warn};

use crate::convert::{self, Defaults, Meta};
use crate::error::{Error, Result};
use crate::events::{Hub, Tracker};
use crate::gc;
use crate::ipam::Ipam;
pub use crate::render::{exit_status, timestamp, timestamp_ns};
use crate::shims::{self, ShimConn, SpawnOptions};

/// How the daemon was configured.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub root: PathBuf,
    pub shim_path: PathBuf,
    pub defaults: Defaults,
    /// Events kept for Events subscribers that reconnect (0: the default).
    pub event_history: usize,
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
    /// Container events for Events subscribers.
    pub events: Arc<Hub>,
    /// Held while the driver lives: no second daemon works on the same root.
    _root_lock: nix::fcntl::Flock<std::fs::File>,
}

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

/// A bridge-mode address held by a Create; released when the Create fails.
struct Lease<'a> {
    driver: &'a Driver,
    id: String,
    armed: bool,
}

impl Lease<'_> {
    fn keep(mut self) {
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
        let mut driver = Driver {
            shim_exe: shims::ShimExe::open(&config.shim_path),
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
        for found in load {
            // A dead one's leftovers went in the pass.
            let (meta, buried) = match found.kind {
                gc::Kind::Live { meta, .. } => (*meta, false),
                gc::Kind::Dead { meta } => (*meta, true),
                _ => continue,
            };
            let events = Arc::new(Tracker::recovered(
                driver.events.clone(),
                &found.id,
                &found.dir,
                meta.labels.clone().into_iter().collect(),
            ));
            let c = Container::new(found.id.clone(), found.dir, meta, events);
            c.buried.store(buried, Ordering::Relaxed);
            driver.table().containers.insert(found.id, Arc::new(c));
        }
        if let Some(net) = driver.config.defaults.network.clone() {
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
        let (mut report, _) = gc::pass(&config.root, parent, true);
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
            let all: Vec<Arc<Container>> = self.table().containers.values().cloned().collect();
            for c in all {
                if c.buried.load(Ordering::Relaxed) || shims::shim_alive(&c.dir).is_some() {
                    continue;
                }
                self.bury(&c).await;
            }
            if n % 5 == 4 {
                self.sweep_strays().await;
            }
        }
    }

    /// Removes directories of no container that are not being created: what a create of a
    /// previous daemon, still finishing when this one started, left once its shim gave up.
    async fn sweep_strays(&self) {
        let Ok(entries) = std::fs::read_dir(&self.config.root) else {
            return;
        };
        let strays: Vec<(String, PathBuf)> = {
            let t = self.table();
            entries
                .flatten()
                .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
                .filter(|(id, dir)| {
                    dir.is_dir()
                        && convert::validate_id(id).is_ok()
                        && !t.containers.contains_key(id)
                        && !t.creating.contains(id)
                })
                .collect()
        };
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
    async fn bury(&self, c: &Container) {
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
            (released, rec)
        })
        .await;
        match done {
            Ok((released, rec)) => {
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

    fn ipam(&self) -> Option<std::sync::MutexGuard<'_, Ipam>> {
        // A panic while holding this lock is a bug; the allocations stay consistent.
        self.ipam
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn release_address(&self, id: &str) -> Result<()> {
        match self.ipam() {
            Some(mut ipam) => ipam.release(id),
            None => Ok(()),
        }
    }

    /// Completes the network of a container being created: a bridge-mode container gets its
    /// address (held by the returned lease until the create succeeds) and its veth; a
    /// container-mode one joins the other container's network namespace.
    async fn complete_network<'a>(
        &'a self,
        id: &str,
        config: &mut ContainerConfig,
        meta: &mut Meta,
    ) -> Result<Option<Lease<'a>>> {
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
                config.validate()?;
                Ok(Some(lease))
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
                config.networks = vec![convert::netns_network(&path)];
                let theirs = st.network.unwrap_or_default();
                meta.network.netns_path = path;
                meta.network.address = theirs.address;
                meta.network.gateway = theirs.gateway;
                meta.network.mac_address = theirs.mac_address;
                meta.network.bridge = theirs.bridge;
                meta.network.mtu = theirs.mtu;
                config.validate()?;
                Ok(None)
            }
            _ => Ok(None),
        }
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

    /// Creates a container and, with `start`, starts it.
    pub async fn create(&self, req: &pb::CreateRequest, start: bool) -> Result<pb::ContainerState> {
        // The shim will move the container's init into its cgroups; let the kernel's migration
        // lock switch modes (an RCU grace period) while the request is checked and the shim
        // starts, not after.
        tokio::task::spawn_blocking(|| {
            let _ = execdriver_shim::cgroups::prime_migration_lock();
        });
        let (mut config, mut meta) =
            convert::create_request(req, &self.config.defaults, state::now_ns())?;
        let id = meta.id.clone();
        let _reservation = {
            let mut t = self.table();
            if t.containers.contains_key(&id) || !t.creating.insert(id.clone()) {
                return Err(Error::AlreadyExists(id));
            }
            Reservation {
                driver: self,
                id: id.clone(),
            }
        };
        let lease = self.complete_network(&id, &mut config, &mut meta).await?;
        let dir = self.config.root.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id))
            }
            Err(e) => return Err(Error::io(format!("creating {}", dir.display()))(e)),
        }
        let made = self.create_in(&dir, &config, &meta).await;
        let shim_state = match made {
            Ok(st) => st,
            Err(e) => {
                // The shim removes what it made when it reports a failure; one that died
                // part-way did not.
                let (d, parent) = (dir.clone(), self.config.defaults.cgroup_parent.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    gc::release(&d, &parent);
                    gc::remove_state_dir(&d)
                })
                .await;
                return Err(e);
            }
        };
        if let Some(lease) = lease {
            lease.keep();
        }
        let events = Arc::new(Tracker::new(
            self.events.clone(),
            &id,
            &dir,
            meta.labels.clone().into_iter().collect(),
        ));
        let container = Arc::new(Container::new(id.clone(), dir, meta, events));
        self.table()
            .containers
            .insert(id.clone(), container.clone());
        info!(id = %id, pid = shim_state.pid, "created");
        container.events.created(shim_state.pid);
        container.events.clone().watch();
        if start {
            Ok(self.start(&id, "").await?.0)
        } else {
            Ok(self.container_state(&container, Some(shim_state)))
        }
    }

    async fn create_in(
        &self,
        dir: &Path,
        config: &ContainerConfig,
        meta: &Meta,
    ) -> Result<ShimState> {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(Error::io("chmod state dir"))?;
        let json = serde_json::to_vec_pretty(config).map_err(|e| Error::Internal(e.to_string()))?;
        state::write_atomic(dir, state::CONFIG, &json, false)
            .map_err(Error::io("writing container.json"))?;
        let meta_json = serde_json::to_vec(meta).map_err(|e| Error::Internal(e.to_string()))?;
        state::write_atomic(dir, state::META, &meta_json, false)
            .map_err(Error::io("writing meta.json"))?;
        let opts = SpawnOptions {
            stdin: meta.open_stdin,
            console_size: meta.tty.then_some(meta.console_size),
            log_max_size: meta.log_max_size,
            log_max_files: meta.log_max_files,
            cgroup_devices: self.config.defaults.cgroup_devices,
            allow_missing_apparmor: self.config.defaults.allow_missing_apparmor,
        };
        shims::spawn(&self.shim_exe.program(), &meta.id, dir, &opts).await
    }

    /// Starts a created container, or (with an exec id) a created exec'd process.
    pub async fn start(
        &self,
        id: &str,
        exec_id: &str,
    ) -> Result<(pb::ContainerState, Option<pb::ProcessState>)> {
        let c = self.get(id)?;
        convert::validate_exec_id(exec_id)?;
        let _op = c.op.lock().await;
        self.call_running(
            &c,
            request::Kind::Start(Target {
                exec_id: exec_id.to_owned(),
            }),
        )
        .await?;
        info!(id = %id, exec_id = %exec_id, "started");
        let process = if exec_id.is_empty() {
            None
        } else {
            Some(self.process_state(&c, exec_id).await)
        };
        let container = self.state_of(&c).await?;
        match &process {
            None => {
                c.events
                    .started(container.pid, timestamp_ns(&container.started_at));
                // Created with resources.freezer FROZEN: the shim froze it once started.
                if container.status == pb::Status::Paused as i32 {
                    c.events.paused();
                }
            }
            Some(p) => {
                let (pid, at) = p
                    .as_ref()
                    .map(|p| (p.pid, timestamp_ns(&p.started_at)))
                    .unwrap_or((0, 0));
                c.events.exec_started(exec_id, pid, at);
            }
        }
        Ok((container, process.transpose()?))
    }

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

    async fn state_of(&self, c: &Container) -> Result<pb::ContainerState> {
        let st = match self
            .call_shim(c, request::Kind::State(Target::init()))
            .await?
        {
            Some(response::Kind::State(st)) => Some(st),
            Some(other) => return Err(unexpected(other)),
            None => None,
        };
        Ok(self.container_state(c, st))
    }

    /// Combines the shim's answer (None: no shim) with the driver's record.
    fn container_state(&self, c: &Container, st: Option<ShimState>) -> pb::ContainerState {
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
            rootfs: c.meta.rootfs.display().to_string(),
            bundle: c.dir.display().to_string(),
            shim_pid,
            network: Some(network_status(c)),
        }
    }

    pub async fn list(&self, filter: &BTreeMap<String, String>) -> Result<Vec<pb::ContainerState>> {
        let mut all: Vec<Arc<Container>> = self
            .table()
            .containers
            .values()
            .filter(|c| filter.iter().all(|(k, v)| c.meta.labels.get(k) == Some(v)))
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.meta.created_at, &a.id).cmp(&(b.meta.created_at, &b.id)));
        let mut out = Vec::with_capacity(all.len());
        for c in all {
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

    /// Blocks until the container's init (or an exec'd process) has ended.
    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<pb::ExitStatus> {
        let c = self.get(id)?;
        convert::validate_exec_id(exec_id)?;
        self.wait_on(&c, exec_id).await
    }

    pub async fn kill(&self, id: &str, signal: i32, all: bool, exec_id: &str) -> Result<()> {
        let c = self.get(id)?;
        convert::validate_exec_id(exec_id)?;
        let signal = if signal == 0 { libc::SIGTERM } else { signal };
        if !(1..=64).contains(&signal) {
            return Err(Error::invalid(
                "signal",
                format!("{signal} is not a signal number"),
            ));
        }
        let _op = c.op.lock().await;
        self.still_known(&c)?;
        let kill = protocol::Kill {
            signal,
            all,
            exec_id: exec_id.to_owned(),
        };
        match self.call_shim(&c, request::Kind::Kill(kill)).await? {
            Some(_) => Ok(()),
            None => Err(Error::FailedPrecondition(format!(
                "container {id} is not running"
            ))),
        }
    }

    /// Removes a stopped container (or, with force, kills it first).
    pub async fn delete(&self, id: &str, force: bool) -> Result<Option<pb::ExitStatus>> {
        let c = self.get(id)?;
        let _op = c.op.lock().await;
        // A Delete that held the lock before this one may have removed it.
        self.still_known(&c)?;
        let st = self.state_of(&c).await?;
        let stopped = st.status == pb::Status::Stopped as i32;
        if !stopped {
            if !force {
                return Err(Error::FailedPrecondition(format!(
                    "container {id} is {}; stop it first or delete with force",
                    status_name(st.status)
                )));
            }
            let _ = self
                .call_shim(
                    &c,
                    request::Kind::Kill(protocol::Kill {
                        exec_id: String::new(),
                        signal: libc::SIGKILL,
                        all: true,
                    }),
                )
                .await;
            if tokio::time::timeout(Duration::from_secs(10), self.wait_on(&c, ""))
                .await
                .is_err()
            {
                return Err(Error::Internal(format!(
                    "container {id} did not die after SIGKILL"
                )));
            }
        }
        let exit = match shims::connect_live(&c.dir).await? {
            Some(mut conn) => {
                tokio::time::timeout(
                    shims::CALL_TIMEOUT,
                    conn.call(request::Kind::Shutdown(Empty {})),
                )
                .await
                .map_err(|_| {
                    Error::DeadlineExceeded(format!(
                        "the shim of container {id} did not shut down within {:?}",
                        shims::CALL_TIMEOUT
                    ))
                })??;
                // The shim closes the connection as it exits.
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.recv()).await;
                ExitRecord::load(&c.dir).ok()
            }
            None => {
                self.bury(&c).await;
                ExitRecord::load(&c.dir).ok()
            }
        };
        // Its exit is reported (if the watcher has not yet) before the directory goes.
        if let Some(e) = &exit {
            c.events.exited(&e.into());
        }
        {
            let mut removed = c.teardown.lock().await;
            let dir = c.dir.clone();
            tokio::task::spawn_blocking(move || {
                // The shim removed the host ends when the init ended; make sure.
                shim_net::remove_host_links(&shim_net::load_host_links(&dir));
                gc::remove_state_dir(&dir)
            })
            .await
            .map_err(|e| Error::Internal(format!("removing {}: {e}", c.dir.display())))?
            .map_err(Error::io(format!("removing {}", c.dir.display())))?;
            *removed = true;
        }
        // Released while the id is still taken, so a new container of that id cannot have
        // been given an address that this would release.
        if let Err(e) = self.release_address(id) {
            warn!(id = %id, error = %e, "releasing the container's address");
        }
        self.table().containers.remove(id);
        info!(id = %id, "deleted");
        c.events.deleted(None);
        Ok(exit.map(|e| exit_status(&(&e).into())))
    }

    /// NOT_FOUND when `c` is no longer the container of its id (deleted meanwhile).
    fn still_known(&self, c: &Arc<Container>) -> Result<()> {
        match self.table().containers.get(&c.id) {
            Some(known) if Arc::ptr_eq(known, c) => Ok(()),
            _ => Err(Error::NotFound(c.id.clone())),
        }
    }

    /// Waits until the init (or an exec'd process) of `c` has ended. A shim that is gone, or
    /// dies meanwhile, is buried and what it left says how the container ended.
    async fn wait_on(&self, c: &Container, exec_id: &str) -> Result<pb::ExitStatus> {
        let target = Target {
            exec_id: exec_id.to_owned(),
        };
        match shims::call_within(&c.dir, request::Kind::Wait(target), None).await {
            Ok(Some(response::Kind::Exit(e))) => return Ok(exit_status(&e)),
            Ok(Some(other)) => return Err(unexpected(other)),
            // An error of a shim that still runs (an unknown exec id, say) is the answer.
            Err(e) if shims::shim_alive(&c.dir).is_some() => return Err(e),
            Ok(None) | Err(_) => {}
        }
        self.bury(c).await;
        if exec_id.is_empty() {
            return Ok(exit_status(&(&orphan_exit(&c.dir)).into()));
        }
        // An exec'd process of a container whose shim is gone ended with it; how is unknown.
        Ok(pb::ExitStatus {
            exited: true,
            reason: "the shim is gone; the process ended with the container".into(),
            status_code: 255,
            ..Default::default()
        })
    }

    /// Resizes the terminal of the container's init (or of an exec'd process).
    pub async fn resize(&self, id: &str, exec_id: &str, rows: u32, cols: u32) -> Result<()> {
        if rows == 0 || cols == 0 || rows > u16::MAX as u32 || cols > u16::MAX as u32 {
            return Err(Error::invalid("size", "rows and cols must be 1 to 65535"));
        }
        let c = self.get(id)?;
        convert::validate_exec_id(exec_id)?;
        let exec_id = exec_id.to_owned();
        self.call_running(
            &c,
            request::Kind::Resize(protocol::Resize {
                rows,
                cols,
                exec_id,
            }),
        )
        .await
        .map(drop)
    }

    /// Closes the stdin of the container's init (or of an exec'd process).
    pub async fn close_stdin(&self, id: &str, exec_id: &str) -> Result<()> {
        let c = self.get(id)?;
        convert::validate_exec_id(exec_id)?;
        self.call_running(
            &c,
            request::Kind::CloseStdin(Target {
                exec_id: exec_id.to_owned(),
            }),
        )
        .await
        .map(drop)
    }

    /// Reopens the container's log file.
    pub async fn reopen_log(&self, id: &str) -> Result<()> {
        let c = self.get(id)?;
        self.call_running(&c, request::Kind::ReopenLog(Empty {}))
            .await
            .map(drop)
    }

    /// The state directory of a container and the name of the log of its init (or of an
    /// exec'd process), for reading it.
    pub fn log_of(&self, id: &str, exec_id: &str) -> Result<(PathBuf, String)> {
        let c = self.get(id)?;
        convert::validate_exec_id(exec_id)?;
        if exec_id.is_empty() {
            return Ok((c.dir.clone(), state::LOG.to_owned()));
        }
        let name = execdriver_shim::supervisor::exec_log_name(exec_id);
        if !c.dir.join(&name).exists() {
            return Err(Error::NotFound(format!("{id}/exec {exec_id}")));
        }
        Ok((c.dir.clone(), name))
    }

    /// Creates (and with `start`, starts) a process in a running container.
    pub async fn exec(&self, req: &pb::ExecRequest) -> Result<pb::ProcessState> {
        let spec = convert::exec_request(req)?;
        let exec_id = spec.exec_id.clone();
        let c = self.get(&req.id)?;
        let _op = c.op.lock().await;
        let kind = self.call_running(&c, request::Kind::Exec(spec)).await?;
        let response::Kind::State(st) = kind else {
            return Err(Error::Internal("unexpected reply from the shim".into()));
        };
        info!(id = %c.id, exec_id = %exec_id, pid = st.pid, "exec created");
        c.events.exec_added(&exec_id);
        if req.start {
            self.call_running(
                &c,
                request::Kind::Start(Target {
                    exec_id: exec_id.clone(),
                }),
            )
            .await?;
            let p = self.process_state(&c, &exec_id).await;
            let (pid, at) = p
                .as_ref()
                .map(|p| (p.pid, timestamp_ns(&p.started_at)))
                .unwrap_or((0, 0));
            c.events.exec_started(&exec_id, pid, at);
            return p;
        }
        Ok(process_state(&exec_id, &st))
    }

    /// Runs a process to its end (or its timeout) and returns what it wrote.
    pub async fn exec_sync(&self, req: &pb::ExecSyncRequest) -> Result<pb::ExecSyncResponse> {
        const LIMIT: usize = 16 << 20;
        let timeout = convert::timeout_seconds("timeout_seconds", req.timeout_seconds, 60, 3600)?;
        let mut process = req.process.clone();
        if let Some(p) = process.as_mut() {
            if p.tty || p.open_stdin {
                return Err(Error::invalid(
                    "process",
                    "ExecSync runs without a terminal or stdin",
                ));
            }
        }
        let exec_req = pb::ExecRequest {
            id: req.id.clone(),
            exec_id: String::new(),
            process,
            start: false,
        };
        let spec = convert::exec_request(&exec_req)?;
        let exec_id = spec.exec_id.clone();
        let c = self.get(&req.id)?;
        self.call_running(&c, request::Kind::Exec(spec)).await?;
        c.events.exec_added(&exec_id);
        let mut conn = self
            .attach(&pb::AttachStart {
                id: req.id.clone(),
                stdin: false,
                stdout: true,
                stderr: true,
                exec_id: exec_id.clone(),
            })
            .await?;
        self.call_running(
            &c,
            request::Kind::Start(Target {
                exec_id: exec_id.clone(),
            }),
        )
        .await?;
        match self.process_state(&c, &exec_id).await {
            Ok(p) => c
                .events
                .exec_started(&exec_id, p.pid, timestamp_ns(&p.started_at)),
            Err(_) => c.events.exec_started(&exec_id, 0, 0),
        }
        let mut out = pb::ExecSyncResponse::default();
        let deadline = tokio::time::Instant::now() + timeout;
        let exit = loop {
            let msg = match tokio::time::timeout_at(deadline, conn.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    out.timed_out = true;
                    let kill = protocol::Kill {
                        signal: libc::SIGKILL,
                        all: false,
                        exec_id: exec_id.clone(),
                    };
                    let _ = shims::call(&c.dir, request::Kind::Kill(kill)).await;
                    conn.recv().await
                }
            };
            match msg.map_err(Error::io("reading the exec's output"))? {
                Some(protocol::Response {
                    kind: Some(response::Kind::Output(o)),
                }) => {
                    let buf = if o.stream == protocol::Stream::Stderr as i32 {
                        &mut out.stderr
                    } else {
                        &mut out.stdout
                    };
                    let room = LIMIT.saturating_sub(buf.len());
                    if o.data.len() > room {
                        out.truncated = true;
                    }
                    buf.extend_from_slice(&o.data[..o.data.len().min(room)]);
                }
                Some(protocol::Response {
                    kind: Some(response::Kind::Exit(e)),
                }) => break exit_status(&e),
                Some(_) => {}
                None => break self.wait_on(&c, &exec_id).await?,
            }
        };
        out.exit = Some(exit);
        let _ = shims::call(&c.dir, request::Kind::Forget(Target { exec_id })).await;
        Ok(out)
    }

    /// Signals the container's init, waits, then kills everything in it.
    pub async fn stop(&self, req: &pb::StopRequest) -> Result<pb::StopResponse> {
        let timeout = convert::timeout_seconds("timeout_seconds", req.timeout_seconds, 10, 3600)?;
        let signal = if req.signal == 0 {
            libc::SIGTERM
        } else {
            req.signal
        };
        if !(1..=64).contains(&signal) {
            return Err(Error::invalid(
                "signal",
                format!("{signal} is not a signal number"),
            ));
        }
        let c = self.get(&req.id)?;
        let st = self.state_of(&c).await?;
        if st.status == pb::Status::Stopped as i32 {
            return Ok(pb::StopResponse {
                exit: st.exit,
                killed: false,
            });
        }
        let kill = |signal, all| protocol::Kill {
            signal,
            all,
            exec_id: String::new(),
        };
        // A created init has not exec'd: only SIGKILL ends it.
        let first = if st.status == pb::Status::Created as i32 {
            libc::SIGKILL
        } else {
            signal
        };
        let _ = shims::call(&c.dir, request::Kind::Kill(kill(first, false))).await?;
        if let Ok(exit) = tokio::time::timeout(timeout, self.wait_on(&c, "")).await {
            return Ok(pb::StopResponse {
                exit: Some(exit?),
                killed: first == libc::SIGKILL,
            });
        }
        info!(id = %c.id, "did not stop within {timeout:?}; killing");
        let _ = shims::call(&c.dir, request::Kind::Kill(kill(libc::SIGKILL, true))).await;
        let exit = tokio::time::timeout(Duration::from_secs(10), self.wait_on(&c, ""))
            .await
            .map_err(|_| {
                Error::Internal(format!("container {} did not die after SIGKILL", c.id))
            })??;
        Ok(pb::StopResponse {
            exit: Some(exit),
            killed: true,
        })
    }

    /// Calls the container's shim; a missing shim means the container is gone.
    async fn call_running(&self, c: &Container, kind: request::Kind) -> Result<response::Kind> {
        self.call_shim(c, kind).await?.ok_or_else(|| {
            Error::FailedPrecondition(format!("container {} is stopped (its shim is gone)", c.id))
        })
    }

    /// Opens an attach stream to the container's shim.
    /// Whether the shim of container `id` still runs.
    pub fn shim_runs(&self, id: &str) -> bool {
        self.get(id)
            .is_ok_and(|c| shims::shim_alive(&c.dir).is_some())
    }

    pub async fn attach(&self, start: &pb::AttachStart) -> Result<ShimConn> {
        let c = self.get(&start.id)?;
        let mut conn = match shims::connect_live(&c.dir).await? {
            Some(conn) => conn,
            None => {
                self.bury(&c).await;
                return Err(Error::FailedPrecondition(format!(
                    "container {} is stopped (its shim is gone)",
                    c.id
                )));
            }
        };
        convert::validate_exec_id(&start.exec_id)?;
        let attach = protocol::Attach {
            exec_id: start.exec_id.clone(),
            stdin: start.stdin,
            stdout: start.stdout,
            stderr: start.stderr,
        };
        tokio::time::timeout(
            shims::CALL_TIMEOUT,
            conn.call(request::Kind::Attach(attach)),
        )
        .await
        .map_err(|_| {
            Error::DeadlineExceeded(format!(
                "the shim of container {} did not answer within {:?}",
                c.id,
                shims::CALL_TIMEOUT
            ))
        })??;
        Ok(conn)
    }
}

impl Driver {
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
        let resources = convert::update_request(req)?;
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

fn unexpected(k: response::Kind) -> Error {
    Error::Internal(format!("unexpected reply from the shim: {k:?}"))
}

/// The shim's stats as the API has them.
pub fn container_stats(id: &str, s: Stats) -> pb::ContainerStats {
    pb::ContainerStats {
        id: id.to_owned(),
        read_at: timestamp(s.read_at),
        cpu: s.cpu.map(|c| pb::CpuStats {
            usage_ns: c.usage_ns,
            user_ns: c.user_ns,
            system_ns: c.system_ns,
            periods: c.periods,
            throttled_periods: c.throttled_periods,
            throttled_ns: c.throttled_ns,
        }),
        memory: s.memory.map(|m| pb::MemoryStats {
            usage: m.usage,
            limit: m.limit,
            max_usage: m.max_usage,
            cache: m.cache,
            rss: m.rss,
            swap_usage: m.swap_usage,
            failcnt: m.failcnt,
            oom_kills: m.oom_kills,
        }),
        pids: s.pids.map(|p| pb::PidsStats {
            current: p.current,
            limit: p.limit,
        }),
        blkio: s.blkio.map(|b| pb::BlkioStats {
            read_bytes: b.read_bytes,
            write_bytes: b.write_bytes,
            devices: b
                .devices
                .into_iter()
                .map(|d| pb::BlkioDeviceStats {
                    major: d.major,
                    minor: d.minor,
                    read_bytes: d.read_bytes,
                    write_bytes: d.write_bytes,
                })
                .collect(),
        }),
        networks: s
            .networks
            .into_iter()
            .map(|n| pb::NetworkStats {
                name: n.name,
                rx_bytes: n.rx_bytes,
                rx_packets: n.rx_packets,
                rx_errors: n.rx_errors,
                rx_dropped: n.rx_dropped,
                tx_bytes: n.tx_bytes,
                tx_packets: n.tx_packets,
                tx_errors: n.tx_errors,
                tx_dropped: n.tx_dropped,
            })
            .collect(),
    }
}

/// An exec'd process's state from the shim's answer.
fn process_state(exec_id: &str, st: &ShimState) -> pb::ProcessState {
    pb::ProcessState {
        exec_id: exec_id.to_owned(),
        status: proto_status(Status::try_from(st.status).unwrap_or(Status::Unspecified)) as i32,
        pid: st.pid,
        exit: st.exit.as_ref().map(exit_status),
        started_at: timestamp(st.started_at),
    }
}

/// What is known of a container whose shim is gone: its exit record, or that it is unknown.
fn orphan_exit(dir: &Path) -> ExitRecord {
    ExitRecord::load(dir).unwrap_or_else(|_| ExitRecord {
        pid: state::read_pid(&dir.join(state::PID)).unwrap_or(0),
        reason: "the shim is gone and left no exit record".into(),
        ..Default::default()
    })
}

/// A container's network as created: the driver's record, and the shim's for the host end.
fn network_status(c: &Container) -> pb::NetworkStatus {
    let m = &c.meta.network;
    let mode = match m.mode.as_str() {
        convert::MODE_NONE => pb::NetworkMode::None,
        convert::MODE_BRIDGE => pb::NetworkMode::Bridge,
        convert::MODE_HOST => pb::NetworkMode::Host,
        convert::MODE_CONTAINER => pb::NetworkMode::Container,
        convert::MODE_NETNS => pb::NetworkMode::Netns,
        _ => pb::NetworkMode::Unspecified,
    };
    let links = if mode == pb::NetworkMode::Bridge {
        shim_net::load_host_links(&c.dir)
    } else {
        Vec::new()
    };
    let link = links.first();
    pb::NetworkStatus {
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
    }
}

fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(Error::io(format!("creating {}", path.display())))
}

fn proto_status(s: Status) -> pb::Status {
    match s {
        Status::Created => pb::Status::Created,
        Status::Running => pb::Status::Running,
        Status::Paused => pb::Status::Paused,
        Status::Stopped => pb::Status::Stopped,
        Status::Unspecified => pb::Status::Unspecified,
    }
}

pub fn status_name(s: i32) -> &'static str {
    match pb::Status::try_from(s).unwrap_or(pb::Status::Unspecified) {
        pb::Status::Created => "created",
        pb::Status::Running => "running",
        pb::Status::Paused => "paused",
        pb::Status::Stopped => "stopped",
        pb::Status::Unspecified => "unknown",
    }
}
