//! The runtime's state directory: `<root>/<id>/state.json` (a [`Record`]: the init's pid and
//! start time, the bundle, the created time, the model and the bundle's config), the exec fifo
//! `exec.fifo` while the container waits for `start`; and a container's status as the
//! runtime-spec names it, from the kernel (is the init alive, is it the same process, is the
//! cgroup frozen).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cgroups::{self, DeviceMode, Layout, Manager};
use crate::config::Config;
use execdriver_spec::oci::{self, State, Status};

use super::Error;

pub const STATE: &str = "state.json";
pub const FIFO: &str = "exec.fifo";

/// What `create` leaves for the other verbs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The init as the host sees it.
    pub pid: i32,
    /// Field 22 of /proc/PID/stat when the init was made: a different value means the pid
    /// was reused and the container is stopped.
    pub start_time: u64,
    /// Absolute.
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339, UTC.
    pub created: String,
    pub owner: String,
    pub annotations: BTreeMap<String, String>,
    /// The model the container runs (cgroups, namespaces, hooks, the init's process).
    pub config: Config,
    /// The bundle's config.json as it was read (`update` converts its resources again).
    pub spec: oci::Spec,
}

/// A container's directory under the root.
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
}

/// Refuses ids that are not a single plain path component (runc: `^[\w+-\.]+$`).
pub fn check_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::msg(format!("invalid container id format: {id}")))
    }
}

pub fn dir_of(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Loads container `id`, or runc's "container does not exist".
pub fn load(root: &Path, id: &str) -> Result<Container, Error> {
    check_id(id)?;
    let dir = dir_of(root, id);
    let data = match fs::read(dir.join(STATE)) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::msg("container does not exist"))
        }
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    };
    let record: Record = serde_json::from_slice(&data)
        .map_err(|e| Error::msg(format!("{}: {e}", dir.join(STATE).display())))?;
    Ok(Container { dir, record })
}

pub fn save(dir: &Path, record: &Record) -> Result<(), Error> {
    let data = serde_json::to_vec(record).map_err(|e| Error::msg(e.to_string()))?;
    execdriver_spec::state::write_atomic(dir, STATE, &data, false)
        .map_err(|e| Error::io(format!("writing {}", dir.join(STATE).display()), e))
}

/// The ids under `root` that have a state file, sorted.
pub fn ids(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE).is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    ids
}

/// Field 22 of /proc/PID/stat (start time in clock ticks after boot) and the state letter
/// (field 3); None when there is no such process.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

impl Container {
    /// Whether the recorded init still runs (the same process, not a zombie).
    pub fn init_alive(&self) -> bool {
        matches!(proc_stat(self.record.pid),
            Some((start, state)) if start == self.record.start_time && state != 'Z' && state != 'X')
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.record.pid)
    }

    pub fn status(&self) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.dir.join(FIFO).exists() {
            return Status::Created;
        }
        if self.frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    /// The state JSON (`pid` 0 once stopped).
    pub fn state(&self) -> State {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.record.pid
        };
        let mut state = State::new(
            &self.record.id,
            status,
            pid,
            &self.record.bundle.to_string_lossy(),
        );
        state.annotations = self.record.annotations.clone();
        state
    }

    /// The container's cgroups (none when its config has none).
    pub fn cgroup(&self) -> Result<Option<Box<dyn Manager>>, Error> {
        match &self.record.config.cgroups {
            Some(cg) => Ok(Some(cgroups::open(
                &Layout::detect()?,
                cg,
                DeviceMode::Auto,
            )?)),
            None => Ok(None),
        }
    }

    /// The cgroup's, or the container's one process's, pids.
    pub fn pids(&self) -> Result<Vec<Pid>, Error> {
        match self.cgroup()? {
            Some(m) => Ok(m.pids()),
            None if self.init_alive() => Ok(vec![self.pid()]),
            None => Ok(Vec::new()),
        }
    }

    /// Whether the freezer holds the container's cgroup.
    pub fn frozen(&self) -> bool {
        let Ok(Some(m)) = self.cgroup() else {
            return false;
        };
        let cg = m.cgroup();
        if let Some(dir) = cg.v1_dir("freezer") {
            if let Ok(s) = fs::read_to_string(dir.join("freezer.state")) {
                return s.trim() != "THAWED";
            }
        }
        if let Some(dir) = cg.v2_dir() {
            if let Ok(s) = fs::read_to_string(dir.join("cgroup.freeze")) {
                return s.trim() == "1";
            }
        }
        false
    }

    /// Signals the init (after checking it is the recorded process), or every process of the
    /// container with `all`.
    pub fn signal(&self, sig: Signal, all: bool) -> Result<(), Error> {
        if all {
            if let Some(m) = self.cgroup()? {
                m.kill_all(sig);
                return Ok(());
            }
        }
        if !self.init_alive() {
            return Err(Error::msg("container not running"));
        }
        nix::sys::signal::kill(self.pid(), sig)
            .map_err(|e| Error::msg(format!("signaling the init: {e}")))
    }
}
