//! The driver's model of its containers: the state directory, the table of known containers,
//! and each lifecycle operation as the shim carries it out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use execdriver_proto as pb;
use execdriver_shim::cgroups::{Cgroup, Layout};
use execdriver_shim::config::Config as ContainerConfig;
use execdriver_shim::network as shim_net;
use execdriver_shim::protocol::{self, request, response, Empty, ShimState, Status};
use execdriver_shim::state::{self, ExitRecord};
use tracing::{info, warn};

use crate::convert::{self, Defaults, Meta};
use crate::error::{Error, Result};
use crate::ipam::Ipam;
use crate::shims::{self, ShimConn, SpawnOptions};

/// How the daemon was configured.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub root: PathBuf,
    pub shim_path: PathBuf,
    pub defaults: Defaults,
}

/// One container the driver knows.
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    pub meta: Meta,
    /// Serializes Start / Kill / Delete on this container.
    op: tokio::sync::Mutex<()>,
}

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
        let mut driver = Driver {
            config,
            table: Mutex::new(Table::default()),
            ipam: None,
        };
        let entries = std::fs::read_dir(&driver.config.root).map_err(Error::io(format!(
            "reading {}",
            driver.config.root.display()
        )))?;
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !dir.is_dir() || convert::validate_id(&id).is_err() {
                continue;
            }
            match std::fs::read(dir.join(state::META))
                .ok()
                .and_then(|d| serde_json::from_slice::<Meta>(&d).ok())
            {
                Some(meta) if meta.id == id => {
                    info!(id = %id, "recovered container");
                    let c = Container {
                        id: id.clone(),
                        dir,
                        meta,
                        op: Default::default(),
                    };
                    driver.table().containers.insert(id, Arc::new(c));
                }
                _ => {
                    // A create that crashed before it finished: nobody was told of it.
                    warn!(id = %id, "removing an incomplete container directory");
                    cleanup_without_shim(&dir);
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
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
                shim_net::remove_host_links(&shim_net::load_host_links(&dir));
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        if let Some(lease) = lease {
            lease.keep();
        }
        let container = Arc::new(Container {
            id: id.clone(),
            dir,
            meta,
            op: Default::default(),
        });
        self.table()
            .containers
            .insert(id.clone(), container.clone());
        info!(id = %id, pid = shim_state.pid, "created");
        if start {
            self.start(&id).await
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
        state::write_atomic(dir, state::META, &meta_json, true)
            .map_err(Error::io("writing meta.json"))?;
        let opts = SpawnOptions {
            stdin: meta.open_stdin,
            console_size: meta.tty.then_some(meta.console_size),
        };
        shims::spawn(&self.config.shim_path, &meta.id, dir, &opts).await
    }

    pub async fn start(&self, id: &str) -> Result<pb::ContainerState> {
        let c = self.get(id)?;
        let _op = c.op.lock().await;
        match shims::call(&c.dir, request::Kind::Start(Empty {})).await? {
            Some(_) => {}
            None => {
                return Err(Error::FailedPrecondition(format!(
                    "container {id} is stopped (its shim is gone)"
                )))
            }
        }
        info!(id = %id, "started");
        self.state_of(&c).await
    }

    pub async fn state(&self, id: &str) -> Result<pb::ContainerState> {
        let c = self.get(id)?;
        self.state_of(&c).await
    }

    async fn state_of(&self, c: &Container) -> Result<pb::ContainerState> {
        let st = match shims::call(&c.dir, request::Kind::State(Empty {})).await {
            Ok(Some(response::Kind::State(st))) => Some(st),
            _ => None,
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
            out.push(self.state_of(&c).await?);
        }
        Ok(out)
    }

    /// Blocks until the container's init has ended.
    pub async fn wait(&self, id: &str) -> Result<pb::ExitStatus> {
        let c = self.get(id)?;
        wait_dir(&c.dir).await
    }

    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let c = self.get(id)?;
        let signal = if signal == 0 { libc::SIGTERM } else { signal };
        if !(1..=64).contains(&signal) {
            return Err(Error::invalid(
                "signal",
                format!("{signal} is not a signal number"),
            ));
        }
        let _op = c.op.lock().await;
        match shims::call(&c.dir, request::Kind::Kill(protocol::Kill { signal, all })).await? {
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
        let st = self.state_of(&c).await?;
        let stopped = st.status == pb::Status::Stopped as i32;
        if !stopped {
            if !force {
                return Err(Error::FailedPrecondition(format!(
                    "container {id} is {}; stop it first or delete with force",
                    status_name(st.status)
                )));
            }
            let _ = shims::call(
                &c.dir,
                request::Kind::Kill(protocol::Kill {
                    signal: libc::SIGKILL,
                    all: true,
                }),
            )
            .await;
            if tokio::time::timeout(Duration::from_secs(10), wait_dir(&c.dir))
                .await
                .is_err()
            {
                return Err(Error::Internal(format!(
                    "container {id} did not die after SIGKILL"
                )));
            }
        }
        let exit = match ShimConn::connect(&c.dir).await {
            Ok(mut conn) => {
                conn.call(request::Kind::Shutdown(Empty {})).await?;
                // The shim closes the connection as it exits.
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.recv()).await;
                ExitRecord::load(&c.dir).ok()
            }
            Err(_) => {
                let dir = c.dir.clone();
                let _ = tokio::task::spawn_blocking(move || cleanup_without_shim(&dir)).await;
                ExitRecord::load(&c.dir).ok()
            }
        };
        // The shim removed the host ends when the init ended; make sure.
        shim_net::remove_host_links(&shim_net::load_host_links(&c.dir));
        std::fs::remove_dir_all(&c.dir)
            .map_err(Error::io(format!("removing {}", c.dir.display())))?;
        // Released while the id is still taken, so a new container of that id cannot have
        // been given an address that this would release.
        if let Err(e) = self.release_address(id) {
            warn!(id = %id, error = %e, "releasing the container's address");
        }
        self.table().containers.remove(id);
        info!(id = %id, "deleted");
        Ok(exit.map(|e| exit_status(&(&e).into())))
    }

    /// Opens an attach stream to the container's shim.
    pub async fn attach(&self, start: &pb::AttachStart) -> Result<ShimConn> {
        let c = self.get(&start.id)?;
        let mut conn = match ShimConn::connect(&c.dir).await {
            Ok(conn) => conn,
            Err(_) => {
                return Err(Error::FailedPrecondition(format!(
                    "container {} is stopped",
                    c.id
                )))
            }
        };
        let attach = protocol::Attach {
            stdin: start.stdin,
            stdout: start.stdout,
            stderr: start.stderr,
        };
        conn.call(request::Kind::Attach(attach)).await?;
        Ok(conn)
    }
}

/// Waits on the shim in `dir`; without a shim, reads what it left.
async fn wait_dir(dir: &Path) -> Result<pb::ExitStatus> {
    match shims::call(dir, request::Kind::Wait(Empty {})).await {
        Ok(Some(response::Kind::Exit(e))) => Ok(exit_status(&e)),
        _ => Ok(exit_status(&(&orphan_exit(dir)).into())),
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

/// Removes what a container's shim would have removed, when the shim is gone.
fn cleanup_without_shim(dir: &Path) {
    shim_net::remove_host_links(&shim_net::load_host_links(dir));
    if let Ok(config) = ContainerConfig::load(&dir.join(state::CONFIG)) {
        if let Some(cg) = &config.cgroups {
            if let Ok(cgroup) = Layout::detect().and_then(|l| Cgroup::new(&l, &cg.parent, &cg.name))
            {
                if let Err(e) = cgroup.destroy() {
                    warn!(dir = %dir.display(), error = %e, "removing cgroups");
                }
            }
        }
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

pub fn timestamp(ns: i64) -> Option<prost_types::Timestamp> {
    (ns > 0).then_some(prost_types::Timestamp {
        seconds: ns / 1_000_000_000,
        nanos: (ns % 1_000_000_000) as i32,
    })
}

pub fn exit_status(e: &protocol::Exit) -> pb::ExitStatus {
    let record = ExitRecord {
        pid: e.pid,
        exit_code: e.exit_code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        started_at: e.started_at,
        finished_at: e.finished_at,
        reason: e.reason.clone(),
    };
    pb::ExitStatus {
        exited: true,
        exit_code: e.exit_code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        finished_at: timestamp(e.finished_at),
        reason: e.reason.clone(),
        status_code: record.status_code(),
    }
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
