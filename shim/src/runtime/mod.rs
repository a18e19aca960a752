//! `execdriver-runc`: execdriver as an OCI runtime with runc's command line, so engines that
//! drive runc (containerd's runc shim, Docker, Podman's conmon) can run containers with it.
//!
//! * `cli.rs`: the command line (clap);
//! * `store.rs`: `<root>/<id>/state.json`, the exec fifo, and a container's status;
//! * `lifecycle.rs`: `create`, `start`, `run` (the init is made by [`crate::process`] as the
//!   shim makes it, then waits on the exec fifo for `start` with nobody holding it);
//! * `control.rs`: `state`, `kill`, `delete`, `pause`, `resume`, `ps`, `list`, `events`,
//!   `update`;
//! * `exec.rs`: `exec`;
//! * `info.rs`: `features`, `spec`, and the refusals of `checkpoint` and `restore`.
//!
//! Errors go to the `--log` file (runc's text or JSON lines; containerd's shim reads the last
//! JSON error) and to stderr; the exit status is 1, or the container's process's for `run`
//! and `exec` in the foreground.

pub mod cli;
mod control;
mod exec;
mod info;
mod lifecycle;
mod store;

use std::io::Write;
use std::path::PathBuf;

use execdriver_spec::logline::rfc3339_nanos;

pub use cli::Cli;
use cli::{Command, LogFormat};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Msg(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Oci(#[from] execdriver_spec::oci::OciError),
    #[error("cgroups: {0}")]
    Cgroup(#[from] crate::cgroups::Error),
    #[error("{0}")]
    Process(#[from] crate::process::Error),
    #[error("{0}")]
    Hook(#[from] crate::hooks::Error),
}

impl Error {
    pub fn msg(m: impl Into<String>) -> Error {
        Error::Msg(m.into())
    }
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Where diagnostics go: `--log` (text or JSON lines) or stderr.
pub struct Logger {
    file: Option<PathBuf>,
    format: LogFormat,
    debug: bool,
}

impl Logger {
    pub fn new(cli: &Cli) -> Logger {
        Logger {
            file: cli.log.clone(),
            format: cli.log_format,
            debug: cli.debug,
        }
    }

    /// One line as runc writes it: `time="..." level=error msg="..."` or
    /// `{"level":"error","msg":"...","time":"..."}`.
    pub fn line(&self, level: &str, msg: &str) -> String {
        let secs = execdriver_spec::state::now_ns() / 1_000_000_000 * 1_000_000_000;
        // RFC 3339 to the second, as runc's logrus writes it.
        let full = rfc3339_nanos(secs);
        let time = match full.split_once('.') {
            Some((s, _)) => format!("{s}Z"),
            None => full,
        };
        match self.format {
            LogFormat::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}"),
        }
    }

    pub fn log(&self, level: &str, msg: &str) {
        if level == "debug" && !self.debug {
            return;
        }
        let line = self.line(level, msg);
        match &self.file {
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path);
                if let Ok(mut f) = f {
                    let _ = f.write_all(format!("{line}\n").as_bytes());
                }
            }
            None => eprintln!("{line}"),
        }
    }

    pub fn warn(&self, msg: &str) {
        self.log("warning", msg);
    }

    /// A failed command: logged, and on stderr as a plain message when the log is a file.
    pub fn error(&self, msg: &str) {
        self.log("error", msg);
        if self.file.is_some() {
            eprintln!("{msg}");
        }
    }
}

/// Runs one command; returns the exit status.
pub fn main(cli: Cli) -> i32 {
    let log = Logger::new(&cli);
    match dispatch(&cli, &log) {
        Ok(code) => code,
        Err(e) => {
            log.error(&e.to_string());
            1
        }
    }
}

fn dispatch(cli: &Cli, log: &Logger) -> Result<i32, Error> {
    if cli.systemd_cgroup && !std::path::Path::new("/run/systemd/system").exists() {
        return Err(Error::msg(
            "--systemd-cgroup: this host does not run systemd (no /run/systemd/system); \
             use cgroupfs paths (drop the flag)",
        ));
    }
    log.log("debug", &format!("command: {:?}", cli.command));
    let root = &cli.root.clone().unwrap_or_else(cli::default_root);
    match &cli.command {
        Command::Create(a) => lifecycle::create(root, a, log).map(|_| 0),
        Command::Start { id } => lifecycle::start(root, id, log).map(|_| 0),
        Command::Run(a) => lifecycle::run(root, a, log),
        Command::State { id } => control::state(root, id).map(|_| 0),
        Command::Kill { id, signal, all } => {
            control::kill(root, id, signal.as_deref(), *all).map(|_| 0)
        }
        Command::Delete { id, force } => control::delete(root, id, *force, log).map(|_| 0),
        Command::Exec(a) => exec::exec(root, a),
        Command::Ps {
            format,
            id,
            ps_args,
        } => control::ps(root, id, *format, ps_args).map(|_| 0),
        Command::Pause { id } => control::pause(root, id, true).map(|_| 0),
        Command::Resume { id } => control::pause(root, id, false).map(|_| 0),
        Command::List { format, quiet } => control::list(root, *format, *quiet).map(|_| 0),
        Command::Events {
            id,
            stats,
            interval,
        } => control::events(root, id, *stats, interval).map(|_| 0),
        Command::Update(a) => control::update(root, a).map(|_| 0),
        Command::Features => info::features().map(|_| 0),
        Command::Spec { bundle, rootless } => info::spec(bundle.as_deref(), *rootless).map(|_| 0),
        Command::Checkpoint { .. } | Command::Restore { .. } => Err(Error::msg(
            "checkpoint is not supported by execdriver-runc (no CRIU support)",
        )),
    }
}

/// Prints a value as JSON on stdout (pretty, as runc's `state` does).
fn print_json(v: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::msg(e.to_string()))?;
    println!("{text}");
    Ok(())
}
