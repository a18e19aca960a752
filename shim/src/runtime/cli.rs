//! `execdriver-runc`'s command line, as runc 1.1 spells it (clap): the global options and one
//! struct of options per verb.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Where state lives unless `--root` says otherwise.
pub const DEFAULT_ROOT: &str = "/run/execdriver-runc";

/// The state root without `--root`: [`DEFAULT_ROOT`], or, run rootless (not root, or root of
/// a user namespace, as under rootless Podman) with `XDG_RUNTIME_DIR` set, the user's
/// `$XDG_RUNTIME_DIR/execdriver-runc` (as runc's `$XDG_RUNTIME_DIR/runc`).
pub fn default_root() -> PathBuf {
    let rootless = !nix::unistd::geteuid().is_root() || crate::sys::in_user_namespace();
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if rootless && !dir.is_empty() => PathBuf::from(dir).join("execdriver-runc"),
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// `--version` as runc prints it: the runtime's version, the git commit it was built from,
/// then the runtime-spec version.
const VERSION: &str = concat!(
    "version ",
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("EXECDRIVER_GIT_COMMIT"),
    "\nspec: 1.2.0"
);

#[derive(Debug, Parser)]
#[command(
    name = "execdriver-runc",
    version = VERSION,
    about = "execdriver as an OCI runtime, with runc's command line"
)]
pub struct Cli {
    /// Enable debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Set the log file to write logs to (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Set the log format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// Root directory for storage of container state (this should be located in tmpfs)
    /// [default: /run/execdriver-runc; $XDG_RUNTIME_DIR/execdriver-runc when rootless]
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Use systemd cgroup paths (`slice:prefix:name`); needs a host running systemd.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container.
    Create(CreateArgs),
    /// Execute the user defined process in a created container.
    Start { id: String },
    /// Create and run a container.
    Run(RunArgs),
    /// Output the state of a container.
    State { id: String },
    /// Send a signal (default: SIGTERM) to the container's init process.
    Kill {
        id: String,
        signal: Option<String>,
        /// Send the signal to all processes in the container.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete any resources held by the container.
    Delete {
        id: String,
        /// Forcibly delete the container if it is still running (uses SIGKILL).
        #[arg(short, long)]
        force: bool,
    },
    /// Execute a new process inside the container.
    Exec(ExecArgs),
    /// Display the processes running inside a container.
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        id: String,
        /// Options passed to ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Suspend all processes inside the container.
    Pause { id: String },
    /// Resume all processes that have been previously paused.
    Resume { id: String },
    /// List containers started with the given root.
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        /// Display only container IDs.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Display container events (resource usage statistics).
    Events {
        id: String,
        /// Display the container's stats then exit.
        #[arg(long)]
        stats: bool,
        /// Set the stats collection interval (5s, 500ms, 1m).
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Update container resource constraints.
    Update(UpdateArgs),
    /// Show the enabled features.
    Features,
    /// Create a new specification file (config.json).
    Spec {
        #[arg(short, long)]
        bundle: Option<PathBuf>,
        /// Generate a configuration for a rootless container.
        #[arg(long)]
        rootless: bool,
    },
    /// Not supported: execdriver-runc has no CRIU support.
    Checkpoint {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Not supported: execdriver-runc has no CRIU support.
    Restore {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub id: String,
    /// Path to the root of the bundle directory (default: the current directory).
    #[arg(short, long)]
    pub bundle: Option<PathBuf>,
    /// Path to an AF_UNIX socket which will receive the pty master.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// File to write the process id to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Refused: execdriver-runc always uses pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring (execdriver-runc never does).
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors (3 to 3+N-1) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Detach from the container's process.
    #[arg(short, long)]
    pub detach: bool,
    /// Do not delete the container after it exits.
    #[arg(long)]
    pub keep: bool,
    /// Accepted for runc compatibility (the caller stays the container's parent).
    #[arg(long)]
    pub no_subreaper: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    pub id: String,
    /// The command and its arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Path to a process.json (an OCI `process`).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Detach from the process.
    #[arg(short, long)]
    pub detach: bool,
    /// Allocate a pseudo-TTY (its master goes to --console-socket).
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Current working directory in the container.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Set environment variables (KEY=VALUE).
    #[arg(short, long)]
    pub env: Vec<String>,
    /// UID (format: <uid>[:<gid>]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional capabilities (within the container's bounding set).
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct UpdateArgs {
    pub id: String,
    /// Path to a file with OCI LinuxResources JSON, or - for stdin.
    #[arg(short, long)]
    pub resources: Option<String>,
    /// Memory limit in bytes (k, m, g suffixes).
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long, alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    #[arg(long)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
}
