//! Parked shims (`--shim-pool N`): shims started ahead of any request, each with a set of
//! cgroups of its own and a nursery process parked in them (see the shim's
//! `supervisor::park`). A create adopts one instead of starting a shim, and its container's
//! init is born in its cgroups: the create pays no process start, no cgroup creation, no
//! cgroup migration (on a quiet host the first one waits a whole RCU grace period) and no new
//! network namespace.
//!
//! The pool is refilled after a quiet spell ([`QUIET`] without a create or delete): parking
//! moves the nursery into its cgroups, which takes the kernel's cgroup lock for that grace
//! period, and must not stall the creates and deletes of a burst. A burst that empties the
//! pool starts shims as without one.
//!
//! A parked shim ends when its stdin closes (the daemon stopped): it removes its nursery, its
//! cgroups and its directory. What a killed one leaves is swept at the daemon's start.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

/// The pool's directory in the daemon's root: one directory per parked shim.
pub const POOL_DIR: &str = ".pool";

/// How long the daemon is left without a create or delete before the pool is refilled.
pub const QUIET: Duration = Duration::from_millis(30);

/// How long a shim may take to park.
const PARK_TIMEOUT: Duration = Duration::from_secs(10);

/// Failures to park in a row after which the pool pauses for [`GIVE_UP`] (and says why).
const MAX_FAILURES: u32 = 3;

/// How long the pool rests after [`MAX_FAILURES`].
const GIVE_UP: Duration = Duration::from_secs(60);

/// How often a full pool looks for parked shims that went (killed, or their nursery was).
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// A parked shim, as the daemon holds it.
pub struct Parked {
    /// The process started (it exits once the shim reports a create).
    pub child: Child,
    /// Where the adoption is written.
    pub stdin: ChildStdin,
    /// Where the create is reported.
    pub stdout: ChildStdout,
    /// Its directory under the pool's.
    pub dir: PathBuf,
}

pub struct ShimPool {
    size: usize,
    dir: PathBuf,
    /// Starts every token (see [`root_mark`]).
    mark: String,
    cgroup_parent: String,
    /// Park sets without a cgroup of these controllers (`--cgroups-when-limited`: the
    /// containers they are for share the parent's).
    share: Vec<String>,
    program: PathBuf,
    parked: Mutex<Vec<Parked>>,
    wake: Notify,
    /// When the last create or delete happened, in ms since `epoch`.
    last_activity: AtomicU64,
    epoch: Instant,
    stopped: AtomicBool,
    /// Held by the refill while a shim parks (see [`ShimPool::stop`]).
    parking: tokio::sync::Mutex<()>,
    next: AtomicU64,
}

impl ShimPool {
    /// A pool of `size` shims started from `program` (0: none is kept), with cgroups under
    /// `cgroup_parent`, in `root`'s pool directory.
    pub fn new(
        size: usize,
        root: &Path,
        cgroup_parent: &str,
        share: Vec<String>,
        program: PathBuf,
    ) -> Arc<ShimPool> {
        Arc::new(ShimPool {
            size,
            dir: root.join(POOL_DIR),
            mark: root_mark(root),
            cgroup_parent: cgroup_parent.to_owned(),
            share,
            program,
            parked: Mutex::new(Vec::new()),
            wake: Notify::new(),
            last_activity: AtomicU64::new(0),
            epoch: Instant::now(),
            stopped: AtomicBool::new(false),
            parking: tokio::sync::Mutex::new(()),
            next: AtomicU64::new(0),
        })
    }

    fn parked(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many shims are parked now.
    pub fn available(&self) -> usize {
        self.parked().len()
    }

    /// A parked shim for a create, if one is ready.
    pub fn take(&self) -> Option<Parked> {
        self.touch();
        let p = self.parked().pop();
        if p.is_some() {
            self.wake.notify_one();
        }
        p
    }

    /// A create or delete happened: the refill waits for a quiet spell after it.
    pub fn touch(&self) {
        self.last_activity
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Keeps the pool full until [`ShimPool::stop`].
    pub async fn refill(self: Arc<Self>) {
        if self.size == 0 {
            return;
        }
        let mut failures = 0;
        while !self.stopped.load(Ordering::Relaxed) {
            if self.available() >= self.size {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(PRUNE_EVERY) => self.prune().await,
                }
                continue;
            }
            let quiet = self.quiet_for();
            if quiet < QUIET {
                tokio::time::sleep(QUIET - quiet).await;
                continue;
            }
            // Held while a shim parks: a stop waits for it, then ends it with the rest.
            let parking = self.parking.lock().await;
            if self.stopped.load(Ordering::Relaxed) {
                break;
            }
            let t = Instant::now();
            let parked = self.park_one().await.map(|p| self.parked().push(p));
            debug!(
                ms = t.elapsed().as_secs_f64() * 1e3,
                ok = parked.is_ok(),
                "parking a shim"
            );
            drop(parking);
            match parked {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if failures >= MAX_FAILURES {
                        // Creates start their own shims meanwhile; tried again later.
                        warn!(
                            error = %e,
                            "cannot park shims; trying again in {GIVE_UP:?}"
                        );
                        tokio::time::sleep(GIVE_UP).await;
                        failures = 0;
                        continue;
                    }
                    warn!(error = %e, "parking a shim");
                    tokio::time::sleep(Duration::from_millis(200 * failures as u64)).await;
                }
            }
        }
    }

    /// Drops the parked shims that exited (a shim whose nursery was killed goes by itself,
    /// removing its set): the refill replaces them. What one killed outright left is removed.
    async fn prune(&self) {
        let gone: Vec<Parked> = {
            let mut parked = self.parked();
            let mut gone = Vec::new();
            for mut p in std::mem::take(&mut *parked) {
                match p.child.try_wait() {
                    Ok(None) => parked.push(p),
                    _ => gone.push(p),
                }
            }
            gone
        };
        for p in gone {
            warn!(dir = %p.dir.display(), "a parked shim went; parking another");
            self.clean_up(p.dir).await;
        }
    }

    async fn park_one(&self) -> std::io::Result<Parked> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        // The root's mark first: a daemon sweeps only its own sets, also where daemons on
        // different roots were given one cgroup parent.
        let token = format!(
            "{}{:x}{:x}",
            self.mark,
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
                ^ (std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as u64)
                    .unwrap_or(0)
                    << 16)
        );
        let dir = self.dir.join(&token);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let mut cmd = Command::new(&self.program);
        cmd.arg("--park")
            .arg("--state")
            .arg(&dir)
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent);
        for c in &self.share {
            cmd.arg("--share-parent").arg(c);
        }
        if let Some(soft) = crate::shims::inherited_nofile() {
            cmd.arg("--nofile-soft").arg(soft.to_string());
        }
        cmd.arg0("execdriver-shim")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(false);
        let mut child = cmd.spawn()?;
        let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the shim's pipes were not made"));
        };
        let mut byte = [0u8; 1];
        let parked = tokio::time::timeout(PARK_TIMEOUT, stdout.read(&mut byte)).await;
        match parked {
            Ok(Ok(1)) if byte[0] == b'P' => Ok(Parked {
                child,
                stdin,
                stdout,
                dir,
            }),
            other => {
                drop(stdin);
                // The shim gives up parking by itself (its nursery's timeout); bounded here
                // too, so a stop never waits for ever.
                let _ = tokio::time::timeout(PARK_TIMEOUT, child.wait()).await;
                let log = std::fs::read_to_string(dir.join(execdriver_spec::state::SHIM_LOG))
                    .unwrap_or_default();
                let _ = std::fs::remove_dir_all(&dir);
                Err(std::io::Error::other(format!(
                    "the shim did not park ({}): {}",
                    match other {
                        Ok(Ok(_)) => "it exited".to_owned(),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => format!("not within {PARK_TIMEOUT:?}"),
                    },
                    log.lines().last().unwrap_or("no log")
                )))
            }
        }
    }

    /// Ends every parked shim and waits until each has removed what it made.
    pub async fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        let _parking = self.parking.lock().await;
        let all: Vec<Parked> = std::mem::take(&mut *self.parked());
        for mut p in all {
            drop(p.stdin);
            let _ = tokio::time::timeout(Duration::from_secs(5), p.child.wait()).await;
        }
        let _ = std::fs::remove_dir(&self.dir);
    }

    /// Hands a parked shim its create: `args` are the shim's usual arguments. On failure the
    /// shim is gone; what it made is removed.
    pub async fn adopt(&self, p: &mut Parked, args: &[String]) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(args).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // A parked shim that died (killed) took its starter with it.
        let written = match p.child.try_wait() {
            Ok(None) => p.stdin.write_all(&line).await,
            Ok(Some(status)) => Err(std::io::Error::other(format!(
                "the parked shim is gone ({status})"
            ))),
            Err(e) => Err(e),
        };
        if let Err(e) = &written {
            warn!(dir = %p.dir.display(), error = %e, "a parked shim could not be used");
            let _ = tokio::time::timeout(PARK_TIMEOUT, p.child.wait()).await;
            self.clean_up(p.dir.clone()).await;
        }
        written
    }

    /// Removes what a parked shim that is gone left: its directory and its pool set.
    pub async fn clean_up(&self, dir: PathBuf) {
        let (parent, token) = (self.cgroup_parent.clone(), token_of(&dir));
        // Removing cgroups may wait for killed processes: off the async threads.
        let _ = tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(&dir);
            sweep_cgroups(&parent, &token);
        })
        .await;
    }
}

/// A parked shim's token: its directory's name.
fn token_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes what parked shims that are gone left: the pool directory under `root` and the
/// pool cgroups under `cgroup_parent` (their nurseries killed). At the daemon's start, when
/// no parked shim of its own exists yet.
pub fn sweep(root: &Path, cgroup_parent: &str) {
    let dir = root.join(POOL_DIR);
    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            warn!(dir = %dir.display(), error = %e, "removing the old pool directory");
        }
    }
    sweep_cgroups(cgroup_parent, &root_mark(root));
}

/// The start of the tokens of the parked shims of the daemon on `root`: `r` and the root's
/// path hashed (FNV-1a, as the default cgroup parent), then `-`.
fn root_mark(root: &Path) -> String {
    format!("r{:08x}-", crate::convert::root_hash(root))
}

/// Removes the pool cgroups under `parent` whose token starts with `prefix` (one set: its
/// whole token).
fn sweep_cgroups(parent: &str, prefix: &str) {
    let want = execdriver_shim::supervisor::pool_cgroup_name(prefix);
    for cg in execdriver_shim::supervisor::pool_cgroups(parent) {
        let name = cg
            .relative
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.starts_with(&want) {
            continue;
        }
        match cg.destroy() {
            Ok(()) => info!(cgroup = %cg.relative.display(), "removed a parked shim's cgroups"),
            Err(e) => {
                warn!(cgroup = %cg.relative.display(), error = %e, "removing a parked shim's cgroups")
            }
        }
    }
}
