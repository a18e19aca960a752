//! The command line: clap's definitions of the global flags, the subcommands and the flag
//! groups they share (limits, security). Only what is typed; what it means is in `request`
//! and `security`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "execdriverctl",
    version = super::VERSION,
    about = "Command-line client for execdriverd"
)]
pub struct Cli {
    /// The daemon's socket.
    #[arg(long, global = true, default_value = "/run/execdriverd.sock")]
    pub socket: PathBuf,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// What the host and driver can do.
    Info,
    /// Create and start a container; without -d, show its output and exit with its code.
    Run(RunArgs),
    /// Create a container (its command waits for `start`).
    Create(CreateArgs),
    /// Start a created container (or, with --exec, a created exec'd process).
    Start {
        /// Start this created exec'd process instead of the container.
        #[arg(long = "exec")]
        exec_id: Option<String>,
        /// The container's id.
        id: String,
    },
    /// Show a container's state (with --exec, an exec'd process's too).
    State {
        /// Show this exec'd process's state instead of the container's.
        #[arg(long = "exec")]
        exec_id: Option<String>,
        /// Print with a template: {{.ID}} {{.Status}} (the fields of --json, any case;
        /// {{json .Labels}}; \t and \n), or "json".
        #[arg(long)]
        format: Option<String>,
        /// The container's id.
        id: String,
    },
    /// List containers.
    #[command(visible_alias = "ls")]
    List {
        /// Only containers with this label (KEY=VALUE).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Only the ids, one a line.
        #[arg(short, long)]
        quiet: bool,
        /// Print each container with a template: {{.ID}} {{.Status}} (the fields of --json,
        /// any case; {{json .Labels}}; \t and \n), or "json".
        #[arg(long, conflicts_with = "quiet")]
        format: Option<String>,
    },
    /// Wait for a container (or, with --exec, an exec'd process) to end; prints its exit code
    /// and exits with it.
    Wait {
        /// Wait for this exec'd process instead of the container's init.
        #[arg(long = "exec")]
        exec_id: Option<String>,
        /// The container's id.
        id: String,
    },
    /// Send a signal (name or number; default TERM) to one or more containers.
    Kill {
        /// The signal: a name (TERM, SIGKILL, hup) or a number.
        #[arg(short, long, default_value = "TERM")]
        signal: String,
        /// Signal every process of the container.
        #[arg(long)]
        all: bool,
        /// Signal this exec'd process instead of the init.
        #[arg(long = "exec")]
        exec_id: Option<String>,
        /// The containers' ids; each is reported, and the exit is non-zero if any failed.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Stop one or more containers: a signal, a grace period, then SIGKILL to everything in
    /// each.
    Stop {
        /// The first signal (name or number).
        #[arg(short, long, default_value = "TERM")]
        signal: String,
        /// Seconds to wait before SIGKILL.
        #[arg(short, long, default_value_t = 10)]
        time: u32,
        /// The containers' ids; each is reported, and the exit is non-zero if any failed.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Run a command in a running container; exits with its exit code.
    Exec(ExecArgs),
    /// Delete one or more stopped containers (-f: kill them first).
    #[command(visible_alias = "rm")]
    Delete {
        /// Kill a running container first (it is always ended: see the book's Reliability chapter).
        #[arg(short, long)]
        force: bool,
        /// The containers' ids; each is reported, and the exit is non-zero if any failed.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Attach to a container's stdio.
    Attach {
        /// Send this terminal's stdin.
        #[arg(short, long)]
        interactive: bool,
        /// The container has a terminal: put ours in raw mode and pass window size changes.
        #[arg(short, long)]
        tty: bool,
        /// Attach to this exec'd process instead of the init.
        #[arg(long = "exec")]
        exec_id: Option<String>,
        /// The container's id.
        id: String,
    },
    /// Print a container's log (-f: follow it until the container ends).
    Logs {
        /// After what is logged, keep printing what comes until the container ends.
        #[arg(short, long)]
        follow: bool,
        /// Only what was logged at or after this time (RFC 3339, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Only the last N lines of what is logged so far ("all": every line).
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// The log of this exec'd process instead of the init's.
        #[arg(long = "exec")]
        exec_id: Option<String>,
        /// The container's id.
        id: String,
    },
    /// Freeze every process of a running container.
    Pause {
        /// The container's id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// The container's id.
        id: String,
    },
    /// Show a container's resource use (cpu, memory, pids, block I/O, network).
    Stats {
        /// Keep printing a sample every --interval until the container stops.
        #[arg(long)]
        stream: bool,
        /// Milliseconds between samples with --stream.
        #[arg(long, default_value = "1000")]
        interval: u32,
        /// The container's id.
        id: String,
    },
    /// Change the limits of a created, running or paused container.
    Update {
        #[command(flatten)]
        limits: LimitArgs,
        /// The container's id.
        id: String,
    },
    /// List a container's processes (host pid and pid inside the container).
    Pids {
        /// The container's id.
        id: String,
    },
    /// Stream container events until interrupted (one line, or one JSON object, per event).
    Events {
        /// Only this container's events (repeatable).
        #[arg(long = "id")]
        ids: Vec<String>,
        /// Only events of this type (repeatable): created, started, exited, exec_added,
        /// exec_started, exec_exited, paused, resumed, oom, deleted.
        #[arg(long = "type")]
        types: Vec<String>,
        /// First replay the kept events after this sequence number (the last one seen).
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
    /// Run a command in a running container to its end and print what it wrote; exits with
    /// its exit code (124 when --timeout killed it).
    ExecSync {
        /// Seconds before it is killed (default 60); then the exit code is 124.
        #[arg(long, default_value_t = 0)]
        timeout: u32,
        /// Environment variable KEY=VALUE (repeatable).
        #[arg(short, long = "env")]
        env: Vec<String>,
        /// uid[:gid] to run as.
        #[arg(short, long)]
        user: Option<String>,
        /// Working directory inside the container.
        #[arg(short = 'w', long)]
        cwd: Option<String>,
        /// The container's id.
        id: String,
        /// The command and its arguments (after the options; "--" before it is optional).
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// Set the size of a container's (or an exec'd process's) terminal.
    Resize {
        /// Rows of the terminal.
        #[arg(long)]
        rows: u32,
        /// Columns of the terminal.
        #[arg(long)]
        cols: u32,
        /// Resize this exec'd process's terminal instead of the init's.
        #[arg(long = "exec")]
        exec_id: Option<String>,
        /// The container's id.
        id: String,
    },
    /// Close a container's (or an exec'd process's) stdin.
    CloseStdin {
        /// Close this exec'd process's stdin instead of the init's.
        #[arg(long = "exec")]
        exec_id: Option<String>,
        /// The container's id.
        id: String,
    },
    /// Close and reopen a container's log file (after an external tool moved it).
    ReopenLog {
        /// The container's id.
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Keep stdin open and send ours.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container (it must exist).
    #[arg(short = 'w', long)]
    pub cwd: Option<String>,
    /// A name for the process (default: generated).
    #[arg(long = "exec-id")]
    pub exec_id: Option<String>,
    /// Start it and return at once, printing its exec id.
    #[arg(short, long)]
    pub detach: bool,
    /// The container's id.
    pub id: String,
    /// The command and its arguments (after the options; "--" before it is optional).
    #[arg(required = true, trailing_var_arg = true)]
    pub command: Vec<String>,
}

/// Resource limits, for create/run and update.
#[derive(Args, Debug, Default)]
pub struct LimitArgs {
    /// Memory limit: bytes, or with a k, m, g or t suffix (64m); -1 or 0 unlimited.
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Soft memory limit, same units.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit, same units (at least --memory); -1 unlimited swap.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Relative CPU weight, 2 to 262144 (1024 is the usual default).
    #[arg(long)]
    pub cpu_shares: Option<i64>,
    /// How many CPUs the container may use, e.g. 0.5 or 1.5, at most the host's (sets
    /// --cpu-quota with a 100 ms period); 0 unlimited.
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU time per period in microseconds; -1 unlimited.
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// The CPU quota period in microseconds (1000 to 1000000).
    #[arg(long)]
    pub cpu_period: Option<i64>,
    /// CPUs the container may run on, e.g. 0-1,3.
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use, e.g. 0.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Block I/O weight, 10 to 1000.
    #[arg(long)]
    pub blkio_weight: Option<i64>,
    /// Most processes the container may have; -1 or 0 unlimited.
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Container id (default: random).
    #[arg(long, visible_alias = "name")]
    pub id: Option<String>,
    /// Root filesystem directory.
    #[arg(long)]
    pub rootfs: PathBuf,
    /// The container's hostname (default: its id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container (made when the rootfs lacks it).
    #[arg(short = 'w', long)]
    pub cwd: Option<String>,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Bind mount SRC:DST[:ro|:rw][:private] (repeatable).
    #[arg(short = 'v', long = "mount")]
    pub mounts: Vec<String>,
    /// Capability to drop, e.g. NET_RAW (repeatable).
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Namespace to create, e.g. NEWPID (repeatable; default NEWNS NEWUTS NEWIPC NEWPID NEWNET).
    #[arg(long = "namespace")]
    pub namespaces: Vec<String>,
    /// Mount the rootfs read-only.
    #[arg(long)]
    pub readonly_rootfs: bool,
    /// Label KEY=VALUE (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the container a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Run a minimal init as PID 1 that forwards signals and reaps orphans.
    #[arg(long)]
    pub init: bool,
    /// Rotate the log when it would pass this size (e.g. 10m); default: never.
    #[arg(long)]
    pub log_max_size: Option<String>,
    /// Log files kept in all when rotating.
    #[arg(long, default_value_t = 1)]
    pub log_max_files: u32,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Allow a device (repeatable): a host node HOST[:CONTAINER][:PERMS] such as /dev/fuse, or
    /// a rule "TYPE MAJOR:MINOR [PERMS]" such as "c 10:229 rwm" ("*" for any number).
    #[arg(long = "device")]
    pub devices: Vec<String>,
    /// Allow every device.
    #[arg(long)]
    pub allow_all_devices: bool,
    /// Cgroup parent (relative to the hierarchy roots), instead of the daemon's.
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// Network: bridge, none, host, slirp4netns (user-mode, outbound access without a
    /// bridge), container:ID (share ID's), or the path of a network namespace to join
    /// (default: bridge when the daemon has one, else none).
    #[arg(long)]
    pub network: Option<String>,
    /// The address in the daemon's subnet (bridge network; default: a free one).
    #[arg(long)]
    pub ip: Option<String>,
    /// eth0's MAC address (bridge network; default: a random locally administered one).
    #[arg(long)]
    pub mac: Option<String>,
    /// eth0's MTU (bridge network; default: the daemon's), or tap0's (slirp4netns; default
    /// 65520).
    #[arg(long)]
    pub mtu: Option<u32>,
    #[command(flatten)]
    pub security: SecurityArgs,
    /// The command and its arguments (after the options; "--" before it is optional).
    #[arg(required = true, trailing_var_arg = true)]
    pub command: Vec<String>,
}

/// Security flags of create/run.
#[derive(Args, Debug, Default)]
pub struct SecurityArgs {
    /// Capability to keep besides Docker's default set, e.g. SYS_PTRACE; ALL keeps every one
    /// (repeatable; --cap-drop is applied after).
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Every capability, no seccomp filter, no AppArmor profile, no masked or read-only paths,
    /// every device.
    #[arg(long)]
    pub privileged: bool,
    /// seccomp=unconfined|default|PATH (an OCI seccomp JSON profile),
    /// no-new-privileges[=true|false], apparmor=PROFILE, systempaths=unconfined (repeatable).
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// A resource limit TYPE=SOFT[:HARD], e.g. nofile=1024:2048 (HARD defaults to SOFT;
    /// "unlimited" or -1 for no limit; repeatable).
    #[arg(long = "ulimit")]
    pub ulimits: Vec<String>,
    /// Run in a new user namespace mapping CONTAINER_ID:HOST_ID:SIZE for uids and gids, e.g.
    /// 0:100000:65536 (repeatable; adds NEWUSER to the namespaces).
    #[arg(long = "userns-map")]
    pub userns_map: Vec<String>,
    /// The processes' oom_score_adj, -1000 to 1000.
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i32>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Delete the container when it ends.
    #[arg(long)]
    pub rm: bool,
    /// Detach: print the id and return once started.
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// The parsed command line `execdriverctl ARGS...`, for the tests of the modules that read it.
#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Cmd {
        let argv = std::iter::once("execdriverctl").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().cmd
    }

    fn create_args(flags: &[&str]) -> CreateArgs {
        let args: Vec<&str> = ["create", "--rootfs", "/rootfs"]
            .iter()
            .chain(flags)
            .chain(&["--", "true"])
            .copied()
            .collect();
        match parse(&args) {
            Cmd::Create(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_create_flags_and_its_own() {
        let Cmd::Run(a) = parse(&["run", "--rm", "-d", "--rootfs", "/r", "-t", "--", "sh"]) else {
            panic!("not run");
        };
        assert!(a.rm && a.detach && a.create.tty && !a.create.interactive);
        assert_eq!(a.create.command, ["sh"]);
        // Negative numbers are values, not flags.
        let a = create_args(&["--memory", "-1", "--oom-score-adj", "-500"]);
        assert_eq!(a.limits.memory.as_deref(), Some("-1"));
        assert_eq!(a.security.oom_score_adj, Some(-500));
        assert!(Cli::try_parse_from(["execdriverctl", "create", "--rootfs", "/r"]).is_err());
    }
}
