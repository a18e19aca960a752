//! A container's state directory: the names of its files and how they are written.
//!
//! ```text
//! <root>/<id>/container.json   what was asked (the seed's format)
//!             meta.json        the driver's record (labels, rootfs, created time)
//!             pid              the container's init as the host sees it (the seed's pid file)
//!             shim.pid         the shim supervising it
//!             shim.sock        the shim's control socket
//!             exit.json        how the init ended (written by the shim, atomically)
//!             log              stdout/stderr lines
//!             shim.log         the shim's own diagnostics
//!             network.json     the host ends of the container's veths (when it has any)
//! ```
//!
//! Every write is temp file + rename, so a reader sees the old or the new file, never a part.
//! Exec'd processes log to [`exec_log_name`] beside `log`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub const CONFIG: &str = "container.json";
pub const META: &str = "meta.json";
pub const PID: &str = "pid";
pub const SHIM_PID: &str = "shim.pid";
pub const SOCKET: &str = "shim.sock";
pub const EXIT: &str = "exit.json";
pub const LOG: &str = "log";
pub const SHIM_LOG: &str = "shim.log";
pub const NETWORK: &str = "network.json";

/// The exit status of a parked shim that gave up before reading an adoption (its nursery
/// died): it made nothing of the container's, so the daemon hands the create to another.
pub const PARK_ABANDONED: i32 = 75;

/// The log file of an exec'd process, beside the container's `log`.
pub fn exec_log_name(exec_id: &str) -> String {
    format!("exec-{exec_id}.log")
}

/// Writes `data` to `dir/name` atomically: a temp file in the same directory, then rename.
/// With `durable`, the file and the directory are fsynced, so the write survives a crash.
pub fn write_atomic(dir: &Path, name: &str, data: &[u8], durable: bool) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(data)?;
    if durable {
        f.sync_all()?;
    }
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads a pid file: a decimal number, optionally followed by a newline.
pub fn read_pid(path: &Path) -> io::Result<i32> {
    let s = fs::read_to_string(path)?;
    s.trim()
        .parse()
        .ok()
        .filter(|p: &i32| *p > 0)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad pid file {}", path.display()),
            )
        })
}

/// How a container's init (or an exec'd process) ended. `exit.json` in the state directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub pid: i32,
    /// The exit code when it exited; absent when a signal killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default)]
    pub oom_killed: bool,
    /// Unix time in nanoseconds; 0 when it never started.
    #[serde(default)]
    pub started_at: i64,
    #[serde(default)]
    pub finished_at: i64,
    /// Why it ended, when the shim knows more than the wait status (e.g. "exec failed: ...").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl ExitRecord {
    /// The shell's view: the code, or 128 + the signal.
    pub fn status_code(&self) -> i32 {
        match (self.exit_code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 255,
        }
    }

    pub fn load(dir: &Path) -> io::Result<ExitRecord> {
        let data = fs::read(dir.join(EXIT))?;
        serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Writes exit.json atomically. Not fsynced: the rename makes it safe against any process
    /// crash, which is what a driver restart needs; a host crash ends the containers anyway.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let data = serde_json::to_vec(self).map_err(io::Error::other)?;
        write_atomic(dir, EXIT, &data, false)
    }
}

/// Now, as Unix nanoseconds.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The path to use when connecting to a unix socket at `path`. `sun_path` holds 108 bytes; a
/// longer path is reached through `/proc/self/fd/N/<name>` of an `O_PATH` descriptor of its
/// directory, which the caller keeps open until connected.
pub fn socket_path(path: &Path) -> io::Result<(PathBuf, Option<File>)> {
    if path.as_os_str().len() < 100 {
        return Ok((path.to_owned(), None));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path has no parent",
        ));
    };
    let dirfd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    use std::os::fd::AsRawFd;
    let short = PathBuf::from(format!("/proc/self/fd/{}", dirfd.as_raw_fd())).join(name);
    Ok((short, Some(dirfd)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces() {
        let dir =
            std::env::temp_dir().join(format!("execdriver-state-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        write_atomic(&dir, "f", b"one", false).unwrap();
        write_atomic(&dir, "f", b"two", true).unwrap();
        assert_eq!(fs::read(dir.join("f")).unwrap(), b"two");
        assert!(!dir.join(".f.tmp").exists());
        let rec = ExitRecord {
            pid: 7,
            signal: Some(9),
            ..Default::default()
        };
        rec.save(&dir).unwrap();
        assert_eq!(ExitRecord::load(&dir).unwrap(), rec);
        assert_eq!(rec.status_code(), 137);
        fs::remove_dir_all(&dir).unwrap();
    }
}
