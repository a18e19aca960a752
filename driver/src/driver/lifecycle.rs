//! A container's lifecycle: create (and the shim's spawn), start, wait, kill, stop and delete.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use execdriver_proto as pb;
use execdriver_spec::config::Config as ContainerConfig;
use execdriver_spec::protocol::{self, request, response, Empty, ShimState, Target};
use execdriver_spec::state::{self, ExitRecord};
use tracing::{info, warn};

use super::recovery::orphan_exit;
use super::{unexpected, Container, Driver, Reservation};
use crate::convert::{self, Meta};
use crate::error::{Error, Result};
use crate::events::Tracker;
use crate::gc;
use crate::render::{exit_status, status_name, timestamp_ns};
use crate::shims::{self, SpawnOptions};

impl Driver {
    /// Creates a container and, with `start`, starts it. `owner`: the restricted caller it is
    /// made for (`crate::policy`), whose request the policy checked and whose host paths it
    /// made canonical.
    pub async fn create(
        &self,
        req: &pb::CreateRequest,
        start: bool,
        owner: Option<u32>,
    ) -> Result<pb::ContainerState> {
        // Without a parked shim, the shim will move the container's init into its cgroups;
        // let the kernel's migration lock switch modes (an RCU grace period) while the request
        // is checked and the shim starts, not after. (With one, the init is born in its
        // cgroups; a migration now would only hold the cgroup lock the adoption needs.)
        if self.pool.available() == 0 && self.config.defaults.rootless.is_none() {
            tokio::task::spawn_blocking(|| {
                let _ = execdriver_shim::cgroups::prime_migration_lock();
            });
        }
        let (mut config, mut meta) =
            convert::create_request(req, &self.config.defaults, state::now_ns())?;
        if owner.is_some() {
            restricted(req, &mut config)?;
            meta.owner = owner;
        }
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
        // `_netns` (a joined namespace held for the shim) lives until the create is done.
        let (lease, _netns) = self.complete_network(&id, &mut config, &mut meta).await?;
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
                let undone = tokio::task::spawn_blocking(move || {
                    let released = gc::release(&d, &parent);
                    // Removing a directory takes descriptors; the daemon may be out of them
                    // for a moment (it is what failed the create, often).
                    let mut removed = gc::remove_state_dir(&d);
                    for _ in 0..3 {
                        if removed.is_ok() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                        removed = gc::remove_state_dir(&d);
                    }
                    (released, removed)
                })
                .await;
                match undone {
                    Ok((released, Ok(()))) if released.left.is_empty() => {}
                    Ok((released, removed)) => warn!(
                        id = %id,
                        "undoing a failed create: {released}; removing {}: {}; the periodic \
                         sweep retries",
                        dir.display(),
                        removed.err().map(|e| e.to_string()).unwrap_or("done".into())
                    ),
                    Err(e) => warn!(id = %id, error = %e, "undoing a failed create"),
                }
                return Err(e);
            }
        };
        if let Some(lease) = lease {
            lease.keep();
        }
        let events = Arc::new(
            Tracker::new(
                self.events.clone(),
                &id,
                &dir,
                meta.labels.clone().into_iter().collect(),
            )
            .owned_by(meta.owner),
        );
        events.remember(&shim_state);
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
        // A parked shim's cgroups are made under the daemon's parent: only for a container
        // whose cgroups go there too.
        let pool = config
            .cgroups
            .as_ref()
            .filter(|c| c.parent == self.config.defaults.cgroup_parent)
            .map(|_| &*self.pool);
        shims::spawn(&self.shim_exe.program(), pool, &meta.id, dir, &opts).await
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

    /// Removes a stopped container (or, with force, kills it first). With force the container
    /// always ends: a shim that cannot be reached, does not kill it, or does not shut down is
    /// killed itself and the container is removed through its cgroups. What cannot be removed
    /// from the host is parked for later retries ([`crate::leftovers`]) and named in the reply;
    /// the id is free either way.
    pub async fn delete(&self, id: &str, force: bool) -> Result<pb::DeleteResponse> {
        let c = self.get(id)?;
        self.pool.touch();
        let _op = c.op.lock().await;
        // A Delete that held the lock before this one may have removed it.
        self.still_known(&c)?;
        // Stopped is final: when the daemon has heard so (the exit arrived on the shim's
        // subscription), the shim is not asked again.
        let known_stopped = c
            .events
            .known()
            .is_some_and(|k| k.status == protocol::Status::Stopped as i32);
        let state = if known_stopped {
            Ok(pb::ContainerState {
                status: pb::Status::Stopped as i32,
                ..Default::default()
            })
        } else {
            self.state_of(&c).await
        };
        let stopped = match state {
            Ok(st) if st.status == pb::Status::Stopped as i32 => true,
            Ok(st) if !force => {
                return Err(Error::FailedPrecondition(format!(
                    "container {id} is {}; stop it first or delete with force",
                    status_name(st.status)
                )));
            }
            Ok(_) => false,
            Err(e) if force => {
                warn!(id = %id, error = %e, "delete -f: the shim does not answer; ending it");
                self.end_shim(&c).await?;
                true
            }
            Err(e) => return Err(e),
        };
        if !stopped {
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
                warn!(id = %id, "delete -f: still running 10s after SIGKILL; ending its shim");
                self.end_shim(&c).await?;
            }
        }
        let released = match self.shut_down(&c).await {
            Ok(released) => released,
            Err(e) if force => {
                warn!(id = %id, error = %e, "delete -f: the shim did not shut down; ending it");
                self.end_shim(&c).await?;
                false
            }
            Err(e) => return Err(e),
        };
        let exit = ExitRecord::load(&c.dir).ok();
        // Its exit is reported (if the watcher has not yet) before the directory goes.
        if let Some(e) = &exit {
            c.events.exited(&e.into());
        }
        let leftovers = {
            let mut removed = c.teardown.lock().await;
            let (dir, root) = (c.dir.clone(), self.config.root.clone());
            let parent = self.config.defaults.cgroup_parent.clone();
            let id = id.to_owned();
            // The shim removed its cgroups and the host ends of its veths; what it could not
            // (or what a killed shim left) is removed here, or parked and retried later.
            let left = tokio::task::spawn_blocking(move || {
                let released = if released {
                    gc::release_after_shutdown(&dir)
                } else {
                    gc::release(&dir, &parent)
                };
                if released.left.is_empty() {
                    return gc::remove_state_dir(&dir).map(|_| Vec::new());
                }
                let parked = crate::leftovers::park(&root, &dir, &id)?;
                warn!(
                    id = %id,
                    parked = %parked.display(),
                    "delete: {released}; retried every {:?}",
                    crate::leftovers::RETRY_INTERVAL
                );
                Ok(released.left)
            })
            .await
            .map_err(|e| Error::Internal(format!("removing {}: {e}", c.dir.display())))?
            .map_err(Error::io(format!("removing {}", c.dir.display())))?;
            *removed = true;
            left
        };
        // Released while the id is still taken, so a new container of that id cannot have
        // been given an address that this would release.
        if let Err(e) = self.release_address(id) {
            warn!(id = %id, error = %e, "releasing the container's address");
        }
        self.table().containers.remove(id);
        info!(id = %id, "deleted");
        c.events.deleted(None);
        Ok(pb::DeleteResponse {
            exit: exit.map(|e| exit_status(&(&e).into())),
            leftovers,
        })
    }

    /// Asks the shim of a stopped container to remove its cgroups and exit, and waits until it
    /// has; buries it when it is gone already. True when the shim said it removed all it made
    /// (nothing to look for but its veths).
    async fn shut_down(&self, c: &Container) -> Result<bool> {
        match shims::connect_live(&c.dir).await? {
            Some(mut conn) => {
                let answer = tokio::time::timeout(
                    shims::CALL_TIMEOUT,
                    conn.call(request::Kind::Shutdown(Empty {})),
                )
                .await
                .map_err(|_| {
                    Error::DeadlineExceeded(format!(
                        "the shim of container {} did not shut down within {:?}",
                        c.id,
                        shims::CALL_TIMEOUT
                    ))
                })??;
                // The shim closes the connection as it exits.
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.recv()).await;
                Ok(matches!(answer, response::Kind::Released(_)))
            }
            None => {
                self.bury(c).await;
                Ok(false)
            }
        }
    }

    /// Ends the shim of `c` (SIGKILL through a pidfd, so never a process that reused its pid)
    /// and buries it: its container is killed through its cgroups and its exit recorded. An
    /// error only when the daemon cannot tell whether the shim runs (out of descriptors or
    /// memory): then nothing is done, and the call can be repeated.
    pub(super) async fn end_shim(&self, c: &Container) -> Result<()> {
        let dir = c.dir.clone();
        tokio::task::spawn_blocking(move || shims::kill_shim(&dir))
            .await
            .map_err(|e| Error::Internal(format!("ending the shim: {e}")))??;
        self.bury(c).await;
        Ok(())
    }

    /// Waits until the init (or an exec'd process) of `c` has ended. A shim that is gone, or
    /// dies meanwhile, is buried and what it left says how the container ended.
    pub(super) async fn wait_on(&self, c: &Container, exec_id: &str) -> Result<pb::ExitStatus> {
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
}

/// A restricted caller's container (`crate::policy`): its rootfs must be the canonical path the
/// policy checked, not what a path swapped since then resolves to, and the shim opens it and
/// the mount sources (canonical too) without following symlinks (`strict_host_paths`).
fn restricted(req: &pb::CreateRequest, config: &mut ContainerConfig) -> Result<()> {
    if config.rootfs.as_deref() != Some(Path::new(&req.rootfs)) {
        return Err(Error::denied(
            "rootfs",
            format!("{} changed while it was checked", req.rootfs),
        ));
    }
    config.strict_host_paths = true;
    Ok(())
}
