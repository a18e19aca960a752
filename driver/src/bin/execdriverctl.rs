//! `execdriverctl`: a command-line client for execdriverd, one subcommand per RPC.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use execdriver_driver::driver::status_name;
use execdriver_driver::events;
use execdriver_driver::server::connect;
use execdriver_proto as pb;
use execdriver_proto::exec_driver_client::ExecDriverClient;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tonic::transport::Channel;

#[derive(Parser, Debug)]
#[command(
    name = "execdriverctl",
    version,
    about = "Command-line client for execdriverd"
)]
struct Cli {
    /// The daemon's socket.
    #[arg(long, global = true, default_value = "/run/execdriverd.sock")]
    socket: PathBuf,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// What the host and driver can do.
    Info,
    /// Create and start a container; without -d, show its output and exit with its code.
    Run(RunArgs),
    /// Create a container (its command waits for `start`).
    Create(CreateArgs),
    /// Start a created container (or, with --exec, a created exec'd process).
    Start {
        #[arg(long = "exec")]
        exec_id: Option<String>,
        id: String,
    },
    /// Show a container's state (with --exec, an exec'd process's too).
    State {
        #[arg(long = "exec")]
        exec_id: Option<String>,
        id: String,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        /// Only containers with this label (KEY=VALUE).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Wait for a container (or, with --exec, an exec'd process) to end; prints its exit code
    /// and exits with it.
    Wait {
        #[arg(long = "exec")]
        exec_id: Option<String>,
        id: String,
    },
    /// Send a signal (name or number; default TERM).
    Kill {
        #[arg(short, long, default_value = "TERM")]
        signal: String,
        /// Signal every process of the container.
        #[arg(long)]
        all: bool,
        /// Signal this exec'd process instead of the init.
        #[arg(long = "exec")]
        exec_id: Option<String>,
        id: String,
    },
    /// Stop a container: a signal, a grace period, then SIGKILL to everything in it.
    Stop {
        /// The first signal (name or number).
        #[arg(short, long, default_value = "TERM")]
        signal: String,
        /// Seconds to wait before SIGKILL.
        #[arg(short, long, default_value_t = 10)]
        time: u32,
        id: String,
    },
    /// Run a command in a running container; exits with its exit code.
    Exec(ExecArgs),
    /// Delete a stopped container (-f: kill it first).
    #[command(alias = "rm")]
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
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
        id: String,
    },
    /// Print a container's log (-f: follow it until the container ends).
    Logs {
        #[arg(short, long)]
        follow: bool,
        /// Only what was logged at or after this time (RFC 3339, UTC).
        #[arg(long)]
        since: Option<String>,
        /// The log of this exec'd process instead of the init's.
        #[arg(long = "exec")]
        exec_id: Option<String>,
        id: String,
    },
    /// Freeze every process of a running container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Show a container's resource use (cpu, memory, pids, block I/O, network).
    Stats {
        /// Keep printing a sample every --interval until the container stops.
        #[arg(long)]
        stream: bool,
        /// Milliseconds between samples with --stream.
        #[arg(long, default_value = "1000")]
        interval: u32,
        id: String,
    },
    /// Change the limits of a created, running or paused container.
    Update {
        #[command(flatten)]
        limits: LimitArgs,
        id: String,
    },
    /// List a container's processes (host pid and pid inside the container).
    Pids { id: String },
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
    /// its exit code.
    ExecSync {
        /// Seconds before it is killed (default 60).
        #[arg(long, default_value_t = 0)]
        timeout: u32,
        /// Environment variable KEY=VALUE (repeatable).
        #[arg(short, long = "env")]
        env: Vec<String>,
        /// uid[:gid] to run as.
        #[arg(short, long)]
        user: Option<String>,
        /// Working directory inside the container.
        #[arg(long)]
        cwd: Option<String>,
        id: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Set the size of a container's (or an exec'd process's) terminal.
    Resize {
        #[arg(long)]
        rows: u32,
        #[arg(long)]
        cols: u32,
        #[arg(long = "exec")]
        exec_id: Option<String>,
        id: String,
    },
    /// Close a container's (or an exec'd process's) stdin.
    CloseStdin {
        #[arg(long = "exec")]
        exec_id: Option<String>,
        id: String,
    },
    /// Close and reopen a container's log file (after an external tool moved it).
    ReopenLog { id: String },
}

#[derive(Args, Debug)]
struct ExecArgs {
    /// Keep stdin open and send ours.
    #[arg(short, long)]
    interactive: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(long)]
    cwd: Option<String>,
    /// A name for the process (default: generated).
    #[arg(long = "exec-id")]
    exec_id: Option<String>,
    /// Start it and return at once, printing its exec id.
    #[arg(short, long)]
    detach: bool,
    id: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Resource limits, for create/run and update.
#[derive(Args, Debug, Default)]
struct LimitArgs {
    /// Memory limit: bytes, or with a k, m, g or t suffix (64m); -1 unlimited.
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Soft memory limit, same units.
    #[arg(long, allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit, same units (at least --memory); -1 unlimited swap.
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Relative CPU weight, 2 to 262144 (1024 is the usual default).
    #[arg(long)]
    cpu_shares: Option<i64>,
    /// How many CPUs the container may use, e.g. 0.5 or 1.5 (sets --cpu-quota with a 100 ms
    /// period).
    #[arg(long)]
    cpus: Option<String>,
    /// CPU time per period in microseconds; -1 unlimited.
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// The CPU quota period in microseconds (1000 to 1000000).
    #[arg(long)]
    cpu_period: Option<i64>,
    /// CPUs the container may run on, e.g. 0-1,3.
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use, e.g. 0.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Block I/O weight, 10 to 1000.
    #[arg(long)]
    blkio_weight: Option<i64>,
    /// Most processes the container may have; -1 unlimited.
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// Container id (default: random).
    #[arg(long)]
    id: Option<String>,
    /// Root filesystem directory.
    #[arg(long)]
    rootfs: PathBuf,
    #[arg(long)]
    hostname: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(long)]
    cwd: Option<String>,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    user: Option<String>,
    /// Bind mount SRC:DST[:ro|:rw][:private] (repeatable).
    #[arg(long = "mount")]
    mounts: Vec<String>,
    /// Capability to drop, e.g. NET_RAW (repeatable).
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Namespace to create, e.g. NEWPID (repeatable; default NEWNS NEWUTS NEWIPC NEWPID NEWNET).
    #[arg(long = "namespace")]
    namespaces: Vec<String>,
    /// Mount the rootfs read-only.
    #[arg(long)]
    readonly_rootfs: bool,
    /// Label KEY=VALUE (repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Keep stdin open.
    #[arg(short, long)]
    interactive: bool,
    /// Give the container a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Run a minimal init as PID 1 that forwards signals and reaps orphans.
    #[arg(long)]
    init: bool,
    /// Rotate the log when it would pass this size (e.g. 10m); default: never.
    #[arg(long)]
    log_max_size: Option<String>,
    /// Log files kept in all when rotating.
    #[arg(long, default_value_t = 1)]
    log_max_files: u32,
    #[command(flatten)]
    limits: LimitArgs,
    /// Allow a device (repeatable): a host node HOST[:CONTAINER][:PERMS] such as /dev/fuse, or
    /// a rule "TYPE MAJOR:MINOR [PERMS]" such as "c 10:229 rwm" ("*" for any number).
    #[arg(long = "device")]
    devices: Vec<String>,
    /// Allow every device.
    #[arg(long)]
    allow_all_devices: bool,
    /// Cgroup parent (relative to the hierarchy roots), instead of the daemon's.
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// Network: bridge, none, host, container:ID (share ID's), or the path of a network
    /// namespace to join (default: bridge when the daemon has one, else none).
    #[arg(long)]
    network: Option<String>,
    /// The address in the daemon's subnet (bridge network; default: a free one).
    #[arg(long)]
    ip: Option<String>,
    /// eth0's MAC address (bridge network; default: a random locally administered one).
    #[arg(long)]
    mac: Option<String>,
    /// eth0's MTU (bridge network; default: the daemon's).
    #[arg(long)]
    mtu: Option<u32>,
    #[command(flatten)]
    security: SecurityArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Security flags of create/run.
#[derive(Args, Debug, Default)]
struct SecurityArgs {
    /// Capability to keep besides Docker's default set, e.g. SYS_PTRACE; ALL keeps every one
    /// (repeatable; --cap-drop is applied after).
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Every capability, no seccomp filter, no AppArmor profile, no masked or read-only paths,
    /// every device.
    #[arg(long)]
    privileged: bool,
    /// seccomp=unconfined|default|PATH (an OCI seccomp JSON profile),
    /// no-new-privileges[=true|false], apparmor=PROFILE, systempaths=unconfined (repeatable).
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// A resource limit TYPE=SOFT[:HARD], e.g. nofile=1024:2048 (HARD defaults to SOFT;
    /// "unlimited" or -1 for no limit; repeatable).
    #[arg(long = "ulimit")]
    ulimits: Vec<String>,
    /// Run in a new user namespace mapping CONTAINER_ID:HOST_ID:SIZE for uids and gids, e.g.
    /// 0:100000:65536 (repeatable; adds NEWUSER to the namespaces).
    #[arg(long = "userns-map")]
    userns_map: Vec<String>,
    /// The processes' oom_score_adj, -1000 to 1000.
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    oom_score_adj: Option<i32>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Delete the container when it ends.
    #[arg(long)]
    rm: bool,
    /// Detach: print the id and return once started.
    #[arg(short, long)]
    detach: bool,
    #[command(flatten)]
    create: CreateArgs,
}

fn key_values(field: &str, items: &[String]) -> Result<BTreeMap<String, String>, String> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("{field} {s:?}: expected KEY=VALUE"))
        })
        .collect()
}

fn parse_mount(s: &str) -> Result<pb::Mount, String> {
    let mut parts = s.split(':');
    let (Some(source), Some(destination)) = (parts.next(), parts.next()) else {
        return Err(format!("--mount {s:?}: expected SRC:DST[:ro][:private]"));
    };
    let mut m = pb::Mount {
        source: source.into(),
        destination: destination.into(),
        writable: true,
        private: false,
    };
    for opt in parts {
        match opt {
            "ro" => m.writable = false,
            "rw" => m.writable = true,
            "private" => m.private = true,
            other => return Err(format!("--mount {s:?}: unknown option {other:?}")),
        }
    }
    Ok(m)
}

/// Parses a size: bytes, or a number (decimals allowed) with a b, k, m, g or t suffix (an
/// optional trailing "b" or "ib" too: 64m, 64MiB, 1.5g); -1 stays -1 (unlimited).
fn parse_size(flag: &str, s: &str) -> Result<i64, String> {
    let bad = || format!("{flag} {s:?}: expected a size such as 512k, 64m or 1g");
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some((i, 't')) => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    let bytes = n * mult as f64;
    if bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as i64)
}

/// The Resources of the limit flags (unset flags stay 0: not set).
fn resources(l: &LimitArgs) -> Result<pb::Resources, String> {
    let size = |flag: &str, v: &Option<String>| -> Result<i64, String> {
        v.as_deref().map_or(Ok(0), |s| parse_size(flag, s))
    };
    let mut r = pb::Resources {
        memory: size("--memory", &l.memory)?,
        memory_reservation: size("--memory-reservation", &l.memory_reservation)?,
        memory_swap: size("--memory-swap", &l.memory_swap)?,
        cpu_shares: l.cpu_shares.unwrap_or(0),
        cpu_quota: l.cpu_quota.unwrap_or(0),
        cpu_period: l.cpu_period.unwrap_or(0),
        cpuset_cpus: l.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: l.cpuset_mems.clone().unwrap_or_default(),
        blkio_weight: l.blkio_weight.unwrap_or(0),
        pids_limit: l.pids_limit.unwrap_or(0),
        ..Default::default()
    };
    if let Some(cpus) = &l.cpus {
        if l.cpu_quota.is_some() {
            return Err("--cpus and --cpu-quota set the same limit; give one".into());
        }
        let n: f64 = cpus
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n > 0.0)
            .ok_or_else(|| format!("--cpus {cpus:?}: expected a positive number such as 0.5"))?;
        let period = if r.cpu_period > 0 {
            r.cpu_period
        } else {
            100_000
        };
        r.cpu_period = period;
        r.cpu_quota = (n * period as f64).round() as i64;
    }
    Ok(r)
}

/// Parses --device: "c 10:229 rwm" (a rule) or "/dev/fuse[:/dev/fuse][:rwm]" (a host node).
fn parse_device(s: &str) -> Result<pb::DeviceRule, String> {
    let bad =
        || format!("--device {s:?}: expected HOST[:CONTAINER][:PERMS] or \"c MAJOR:MINOR PERMS\"");
    let words: Vec<&str> = s.split_whitespace().collect();
    if matches!(words.first(), Some(&("a" | "b" | "c"))) {
        let num = |n: &str| -> Result<i64, String> {
            if n == "*" {
                Ok(-1)
            } else {
                n.parse().map_err(|_| bad())
            }
        };
        let (major, minor) = match words.get(1) {
            Some(mm) => {
                let (a, b) = mm.split_once(':').ok_or_else(bad)?;
                (num(a)?, num(b)?)
            }
            None => (-1, -1),
        };
        if words.len() > 3 {
            return Err(bad());
        }
        return Ok(pb::DeviceRule {
            r#type: words[0].into(),
            major,
            minor,
            permissions: words.get(2).unwrap_or(&"rwm").to_string(),
            ..Default::default()
        });
    }
    let parts: Vec<&str> = s.split(':').collect();
    let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (path, container_path, permissions) = match parts.as_slice() {
        [host] => (*host, "", ""),
        [host, p] if is_perms(p) => (*host, "", *p),
        [host, c] => (*host, *c, ""),
        [host, c, p] => (*host, *c, *p),
        _ => return Err(bad()),
    };
    if !path.starts_with('/') {
        return Err(bad());
    }
    Ok(pb::DeviceRule {
        path: path.into(),
        container_path: container_path.into(),
        permissions: permissions.into(),
        ..Default::default()
    })
}

fn random_id() -> String {
    let mut bytes = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `--network` and its companions as the request's network part.
fn network_config(a: &CreateArgs) -> Result<Option<pb::NetworkConfig>, String> {
    if a.network.is_none() && a.ip.is_none() && a.mac.is_none() && a.mtu.is_none() {
        return Ok(None);
    }
    let mut n = pb::NetworkConfig {
        address: a.ip.clone().unwrap_or_default(),
        mac_address: a.mac.clone().unwrap_or_default(),
        mtu: a.mtu.unwrap_or(0),
        ..Default::default()
    };
    n.mode = match a.network.as_deref() {
        None => pb::NetworkMode::Unspecified,
        Some("bridge") => pb::NetworkMode::Bridge,
        Some("none") => pb::NetworkMode::None,
        Some("host") => pb::NetworkMode::Host,
        Some(s) if s.starts_with("container:") => {
            n.container_id = s["container:".len()..].to_owned();
            pb::NetworkMode::Container
        }
        Some(s) if s.starts_with('/') => {
            n.netns_path = s.to_owned();
            pb::NetworkMode::Netns
        }
        Some(s) => {
            return Err(format!(
                "--network {s:?}: expected bridge, none, host, container:ID or a /path"
            ))
        }
    } as i32;
    Ok(Some(n))
}

/// Parses --ulimit TYPE=SOFT[:HARD].
fn parse_ulimit(s: &str) -> Result<pb::Rlimit, String> {
    let bad = || format!("--ulimit {s:?}: expected TYPE=SOFT[:HARD], e.g. nofile=1024:2048");
    let (kind, values) = s.split_once('=').ok_or_else(bad)?;
    let num = |v: &str| -> Result<u64, String> {
        match v {
            "unlimited" | "-1" => Ok(u64::MAX),
            v => v.parse().map_err(|_| bad()),
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(values)?, num(values)?),
    };
    Ok(pb::Rlimit {
        r#type: kind.to_owned(),
        soft,
        hard,
    })
}

/// Parses --userns-map CONTAINER_ID:HOST_ID:SIZE.
fn parse_id_map(s: &str) -> Result<pb::IdMapping, String> {
    let bad = || format!("--userns-map {s:?}: expected CONTAINER_ID:HOST_ID:SIZE");
    let parts: Vec<u32> = s
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [container_id, host_id, size] = parts[..] else {
        return Err(bad());
    };
    Ok(pb::IdMapping {
        container_id,
        host_id,
        size,
    })
}

/// An OCI seccomp profile file as the request's SeccompConfig.
fn seccomp_file(path: &str) -> Result<pb::SeccompConfig, String> {
    let data = std::fs::read(path).map_err(|e| format!("--security-opt seccomp={path}: {e}"))?;
    let p: execdriver_spec::seccomp::Profile =
        serde_json::from_slice(&data).map_err(|e| format!("--security-opt seccomp={path}: {e}"))?;
    Ok(pb::SeccompConfig {
        profile: "custom".into(),
        default_action: p.default_action,
        default_errno_ret: p.default_errno_ret,
        architectures: p.architectures,
        flags: p.flags,
        syscalls: p
            .syscalls
            .into_iter()
            .map(|r| pb::SeccompSyscall {
                names: r.names,
                action: r.action,
                errno_ret: r.errno_ret,
                args: r
                    .args
                    .into_iter()
                    .map(|a| pb::SeccompArg {
                        index: a.index,
                        value: a.value,
                        value_two: a.value_two,
                        op: a.op,
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// The request's SecurityConfig from the flags (None when no flag says anything).
fn security_config(a: &SecurityArgs) -> Result<Option<pb::SecurityConfig>, String> {
    let mut s = pb::SecurityConfig::default();
    if a.privileged {
        s.capabilities = vec!["ALL".into()];
        s.seccomp = Some(pb::SeccompConfig {
            profile: "unconfined".into(),
            ..Default::default()
        });
        s.unmask_system_paths = true;
    } else if !a.cap_add.is_empty() {
        if a.cap_add.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
            s.capabilities = vec!["ALL".into()];
        } else {
            s.capabilities = execdriver_spec::capabilities::DOCKER_DEFAULT
                .iter()
                .map(|c| c.to_string())
                .chain(a.cap_add.iter().cloned())
                .collect();
        }
    }
    for opt in &a.security_opt {
        let (key, value) = opt.split_once('=').unwrap_or((opt.as_str(), ""));
        match (key, value) {
            ("seccomp", "unconfined" | "default") => {
                s.seccomp = Some(pb::SeccompConfig {
                    profile: value.into(),
                    ..Default::default()
                })
            }
            ("seccomp", path) if !path.is_empty() => s.seccomp = Some(seccomp_file(path)?),
            ("no-new-privileges", "" | "true") => s.no_new_privileges = Some(true),
            ("no-new-privileges", "false") => s.no_new_privileges = Some(false),
            ("apparmor", profile) if !profile.is_empty() => s.apparmor_profile = profile.to_owned(),
            ("systempaths", "unconfined") => s.unmask_system_paths = true,
            _ => {
                return Err(format!(
                    "--security-opt {opt:?}: expected seccomp=unconfined|default|PATH, \
                     no-new-privileges[=true|false], apparmor=PROFILE or systempaths=unconfined"
                ))
            }
        }
    }
    s.rlimits = a
        .ulimits
        .iter()
        .map(|u| parse_ulimit(u))
        .collect::<Result<_, _>>()?;
    s.uid_mappings = a
        .userns_map
        .iter()
        .map(|m| parse_id_map(m))
        .collect::<Result<_, _>>()?;
    s.gid_mappings = s.uid_mappings.clone();
    s.oom_score_adj = a.oom_score_adj;
    Ok((s != pb::SecurityConfig::default()).then_some(s))
}

/// The namespaces to ask for: --namespace (or the default set), plus NEWUSER with
/// --userns-map.
fn namespaces(a: &CreateArgs) -> Vec<String> {
    let mut ns = a.namespaces.clone();
    if !a.security.userns_map.is_empty() {
        if ns.is_empty() {
            ns = execdriver_spec::config::DEFAULT_NAMESPACES
                .iter()
                .map(|n| n.name().to_owned())
                .collect();
        }
        if !ns.iter().any(|n| n == "NEWUSER") {
            ns.push("NEWUSER".into());
        }
    }
    ns
}

fn create_request(a: &CreateArgs) -> Result<pb::CreateRequest, String> {
    Ok(pb::CreateRequest {
        id: a.id.clone().unwrap_or_else(random_id),
        rootfs: a.rootfs.display().to_string(),
        process: Some(pb::Process {
            args: a.command.clone(),
            env: a.env.clone(),
            cwd: a.cwd.clone().unwrap_or_default(),
            user: a.user.clone().unwrap_or_default(),
            tty: a.tty,
            open_stdin: a.interactive,
            console_size: if a.tty { terminal_size() } else { None },
        }),
        hostname: a.hostname.clone().unwrap_or_default(),
        namespaces: namespaces(a),
        mounts: a
            .mounts
            .iter()
            .map(|m| parse_mount(m))
            .collect::<Result<_, _>>()?,
        readonly_rootfs: a.readonly_rootfs,
        capabilities_mask: a.cap_drop.clone(),
        labels: key_values("--label", &a.labels)?.into_iter().collect(),
        init: a.init,
        log: match &a.log_max_size {
            Some(s) => {
                let max_size = parse_size("--log-max-size", s)?;
                if max_size < 0 {
                    return Err("--log-max-size: must not be negative".into());
                }
                Some(pb::LogConfig {
                    max_size: max_size as u64,
                    max_files: a.log_max_files,
                })
            }
            None => None,
        },
        resources: Some(pb::Resources {
            devices: a
                .devices
                .iter()
                .map(|d| parse_device(d))
                .collect::<Result<_, _>>()?,
            allow_all_devices: a.allow_all_devices || a.security.privileged,
            cgroup_parent: a.cgroup_parent.clone().unwrap_or_default(),
            ..resources(&a.limits)?
        }),
        network: network_config(a)?,
        security: security_config(&a.security)?,
    })
}

fn stats_json(s: &pb::ContainerStats) -> serde_json::Value {
    let cpu = s.cpu.unwrap_or_default();
    let mem = s.memory.unwrap_or_default();
    let pids = s.pids.unwrap_or_default();
    let io = s.blkio.clone().unwrap_or_default();
    serde_json::json!({
        "id": s.id,
        "read_at": rfc3339(&s.read_at),
        "cpu": {"usage_ns": cpu.usage_ns, "user_ns": cpu.user_ns, "system_ns": cpu.system_ns,
                "periods": cpu.periods, "throttled_periods": cpu.throttled_periods,
                "throttled_ns": cpu.throttled_ns},
        "memory": {"usage": mem.usage, "limit": mem.limit, "max_usage": mem.max_usage,
                   "cache": mem.cache, "rss": mem.rss, "swap_usage": mem.swap_usage,
                   "failcnt": mem.failcnt, "oom_kills": mem.oom_kills},
        "pids": {"current": pids.current, "limit": pids.limit},
        "blkio": {"read_bytes": io.read_bytes, "write_bytes": io.write_bytes,
                  "devices": io.devices.iter().map(|d| serde_json::json!({
                      "major": d.major, "minor": d.minor,
                      "read_bytes": d.read_bytes, "write_bytes": d.write_bytes})).collect::<Vec<_>>()},
        "networks": s.networks.iter().map(|n| serde_json::json!({
            "name": n.name, "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
            "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped, "tx_bytes": n.tx_bytes,
            "tx_packets": n.tx_packets, "tx_errors": n.tx_errors,
            "tx_dropped": n.tx_dropped})).collect::<Vec<_>>(),
    })
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

fn print_stats(s: &pb::ContainerStats) {
    let cpu = s.cpu.unwrap_or_default();
    let mem = s.memory.unwrap_or_default();
    let pids = s.pids.unwrap_or_default();
    let io = s.blkio.clone().unwrap_or_default();
    let limit = |n: u64, f: fn(u64) -> String| {
        if n == 0 {
            "none".to_owned()
        } else {
            f(n)
        }
    };
    println!(
        "CPU:     {:.3}s used ({:.3}s user, {:.3}s system); throttled {} of {} periods ({:.3}s)",
        cpu.usage_ns as f64 / 1e9,
        cpu.user_ns as f64 / 1e9,
        cpu.system_ns as f64 / 1e9,
        cpu.throttled_periods,
        cpu.periods,
        cpu.throttled_ns as f64 / 1e9
    );
    println!(
        "Memory:  {} of {} (max {}, cache {}, swap {}); OOM kills {}",
        human_bytes(mem.usage),
        limit(mem.limit, human_bytes),
        human_bytes(mem.max_usage),
        human_bytes(mem.cache),
        human_bytes(mem.swap_usage),
        mem.oom_kills
    );
    println!(
        "Pids:    {} of {}",
        pids.current,
        limit(pids.limit, |n| n.to_string())
    );
    println!(
        "Block:   {} read, {} written",
        human_bytes(io.read_bytes),
        human_bytes(io.write_bytes)
    );
    for n in &s.networks {
        println!(
            "Net {:<4} {} received, {} sent",
            n.name,
            human_bytes(n.rx_bytes),
            human_bytes(n.tx_bytes)
        );
    }
}

fn resources_json(r: &pb::Resources) -> serde_json::Value {
    serde_json::json!({
        "memory": r.memory, "memory_reservation": r.memory_reservation,
        "memory_swap": r.memory_swap, "cpu_shares": r.cpu_shares, "cpu_quota": r.cpu_quota,
        "cpu_period": r.cpu_period, "cpuset_cpus": r.cpuset_cpus, "cpuset_mems": r.cpuset_mems,
        "blkio_weight": r.blkio_weight, "pids_limit": r.pids_limit,
    })
}

/// The size of our terminal, if stdin is one.
fn terminal_size() -> Option<pb::ConsoleSize> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    execdriver_shim::sys::get_winsize(stdin.as_fd())
        .ok()
        .filter(|(r, c)| *r > 0 && *c > 0)
        .map(|(rows, cols)| pb::ConsoleSize {
            rows: rows as u32,
            cols: cols as u32,
        })
}

/// Puts our terminal in raw mode while alive, so keys (Ctrl-C included) go to the container's
/// terminal as they are; restores it on drop.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| format!("unknown signal {s:?}"))
}

fn rfc3339(ts: &Option<prost_types::Timestamp>) -> Option<String> {
    ts.as_ref().map(|t| {
        execdriver_spec::logline::rfc3339_nanos(t.seconds * 1_000_000_000 + t.nanos as i64)
    })
}

#[derive(Serialize)]
struct StateJson {
    id: String,
    status: &'static str,
    pid: i32,
    exit_code: Option<i32>,
    signal: Option<i32>,
    oom_killed: bool,
    exit_reason: String,
    created_at: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    labels: BTreeMap<String, String>,
    rootfs: String,
    bundle: String,
    shim_pid: i32,
    network: Option<NetworkJson>,
}

#[derive(Serialize)]
struct NetworkJson {
    mode: String,
    address: String,
    gateway: String,
    mac_address: String,
    host_interface: String,
    bridge: String,
    mtu: u32,
    container_id: String,
    netns_path: String,
}

impl From<&pb::NetworkStatus> for NetworkJson {
    fn from(n: &pb::NetworkStatus) -> NetworkJson {
        let mode = pb::NetworkMode::try_from(n.mode)
            .unwrap_or(pb::NetworkMode::Unspecified)
            .as_str_name()
            .trim_start_matches("NETWORK_MODE_")
            .to_ascii_lowercase();
        NetworkJson {
            mode,
            address: n.address.clone(),
            gateway: n.gateway.clone(),
            mac_address: n.mac_address.clone(),
            host_interface: n.host_interface.clone(),
            bridge: n.bridge.clone(),
            mtu: n.mtu,
            container_id: n.container_id.clone(),
            netns_path: n.netns_path.clone(),
        }
    }
}

impl From<&pb::ContainerState> for StateJson {
    fn from(s: &pb::ContainerState) -> StateJson {
        let exit = s.exit.clone().unwrap_or_default();
        StateJson {
            id: s.id.clone(),
            status: status_name(s.status),
            pid: s.pid,
            exit_code: exit.exit_code,
            signal: exit.signal,
            oom_killed: exit.oom_killed,
            exit_reason: exit.reason,
            created_at: rfc3339(&s.created_at),
            started_at: rfc3339(&s.started_at),
            finished_at: rfc3339(&s.finished_at),
            labels: s.labels.clone().into_iter().collect(),
            rootfs: s.rootfs.clone(),
            bundle: s.bundle.clone(),
            shim_pid: s.shim_pid,
            network: s.network.as_ref().map(NetworkJson::from),
        }
    }
}

#[derive(Serialize)]
struct ProcessJson {
    exec_id: String,
    status: &'static str,
    pid: i32,
    exit_code: Option<i32>,
    signal: Option<i32>,
    started_at: Option<String>,
}

impl From<&pb::ProcessState> for ProcessJson {
    fn from(p: &pb::ProcessState) -> ProcessJson {
        let exit = p.exit.clone().unwrap_or_default();
        ProcessJson {
            exec_id: p.exec_id.clone(),
            status: status_name(p.status),
            pid: p.pid,
            exit_code: exit.exit_code,
            signal: exit.signal,
            started_at: rfc3339(&p.started_at),
        }
    }
}

fn print_json(v: &impl Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn describe_exit(e: &pb::ExitStatus) -> String {
    match (e.exit_code, e.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("unknown ({})", e.reason),
    }
}

fn print_state(s: &pb::ContainerState) {
    let j = StateJson::from(s);
    println!("ID:       {}", j.id);
    println!("Status:   {}", j.status);
    println!("Pid:      {}", j.pid);
    if let Some(e) = &s.exit {
        println!(
            "Exit:     {}{}",
            describe_exit(e),
            if e.oom_killed { " (OOM killed)" } else { "" }
        );
    }
    println!("Created:  {}", j.created_at.unwrap_or_default());
    if let Some(t) = j.started_at {
        println!("Started:  {t}");
    }
    if let Some(t) = j.finished_at {
        println!("Finished: {t}");
    }
    println!("Rootfs:   {}", j.rootfs);
    println!("Bundle:   {}", j.bundle);
    if let Some(n) = &j.network {
        let mut line = n.mode.clone();
        if !n.container_id.is_empty() {
            line += &format!(" {}", n.container_id);
        }
        if !n.address.is_empty() {
            line += &format!(" {}", n.address);
        }
        if !n.gateway.is_empty() {
            line += &format!(" via {}", n.gateway);
        }
        if !n.host_interface.is_empty() {
            line += &format!(" ({} on {}, mtu {})", n.host_interface, n.bridge, n.mtu);
        }
        if !n.mac_address.is_empty() {
            line += &format!(" mac {}", n.mac_address);
        }
        if n.container_id.is_empty() && !n.netns_path.is_empty() {
            line += &format!(" {}", n.netns_path);
        }
        println!("Network:  {line}");
    }
    for (k, v) in &j.labels {
        println!("Label:    {k}={v}");
    }
}

type Client = ExecDriverClient<Channel>;

/// Our stdout or stderr without std's line buffering: container output is passed on as it
/// comes, in whole chunks, without scanning it for newlines. A File on a duplicate of the
/// descriptor, so dropping it never closes our stdout.
struct RawOut(std::fs::File);

impl RawOut {
    fn stdout() -> RawOut {
        Self::of(std::io::stdout().as_fd())
    }

    fn stderr() -> RawOut {
        Self::of(std::io::stderr().as_fd())
    }

    fn of(fd: std::os::fd::BorrowedFd<'_>) -> RawOut {
        let owned = fd.try_clone_to_owned().unwrap_or_else(|_| {
            std::fs::File::options()
                .write(true)
                .open("/dev/null")
                .expect("/dev/null")
                .into()
        });
        RawOut(std::fs::File::from(owned))
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all(data)
    }
}

/// Streams a container's output to ours until it ends; returns its exit status.
async fn attach_and_stream(
    client: &mut Client,
    id: &str,
    exec_id: &str,
    stdin: bool,
    tty: bool,
    start_after_attach: bool,
) -> Result<pb::ExitStatus, String> {
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(16);
    let start = pb::AttachStart {
        id: id.to_owned(),
        exec_id: exec_id.to_owned(),
        stdin,
        stdout: true,
        stderr: true,
    };
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Start(start)),
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut stream = client
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    if stdin {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut input = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let close = pb::attach_request::Kind::CloseStdin(pb::CloseStdin {});
                        let _ = tx.send(pb::AttachRequest { kind: Some(close) }).await;
                        break;
                    }
                    Ok(n) => {
                        let data = pb::attach_request::Kind::Stdin(buf[..n].to_vec());
                        if tx
                            .send(pb::AttachRequest { kind: Some(data) })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
    }
    // With a terminal on both sides: raw mode here, and our window size follows to theirs.
    let _raw = if tty && stdin { RawMode::enter() } else { None };
    if tty {
        if let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                while winch.recv().await.is_some() {
                    let Some(size) = terminal_size() else {
                        continue;
                    };
                    let msg = pb::AttachRequest {
                        kind: Some(pb::attach_request::Kind::Resize(size)),
                    };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    if start_after_attach {
        st(client
            .start(pb::StartRequest {
                id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            })
            .await)?;
    }
    let mut out = RawOut::stdout();
    let mut err = RawOut::stderr();
    loop {
        let msg = stream.message().await.map_err(|s| s.message().to_owned())?;
        let Some(msg) = msg else {
            return Err("the attach stream ended without an exit status".into());
        };
        match msg.kind {
            Some(pb::attach_response::Kind::Output(chunk)) => {
                if chunk.stream == pb::Stream::Stderr as i32 {
                    let _ = err.write_all(&chunk.data);
                } else {
                    let _ = out.write_all(&chunk.data);
                }
            }
            Some(pb::attach_response::Kind::Exit(e)) => {
                drop(tx);
                return Ok(e);
            }
            None => {}
        }
    }
}

/// Forwards SIGINT and SIGTERM received by this client to the container (like `docker run`).
fn proxy_signals(client: Client, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, num) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
    ] {
        let Ok(mut sig) = signal(kind) else { continue };
        let mut client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let _ = client
                    .kill(pb::KillRequest {
                        exec_id: String::new(),
                        id: id.clone(),
                        signal: num,
                        all: false,
                    })
                    .await;
            }
        });
    }
}

fn st<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, String> {
    r.map(|r| r.into_inner())
        .map_err(|s| s.message().to_owned())
}

/// An error and its causes: "transport error: Permission denied (os error 13)".
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(&format!(": {part}"));
        }
        source = s.source();
    }
    text
}

fn exit_code(e: &pb::ExitStatus) -> ExitCode {
    ExitCode::from(e.status_code.clamp(0, 255) as u8)
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    let channel = connect(&cli.socket)
        .await
        .map_err(|e| format!("connecting to {}: {}", cli.socket.display(), causes(&e)))?;
    let mut client = ExecDriverClient::new(channel);
    match cli.cmd {
        Cmd::Info => {
            let info: pb::InfoResponse = st(client.info(pb::InfoRequest {}).await)?;
            let modes: Vec<String> = info
                .network_modes
                .iter()
                .map(|m| network_mode_name(*m))
                .collect();
            if cli.json {
                print_json(&serde_json::json!({
                    "version": info.version, "kernel_version": info.kernel_version,
                    "cgroup_mode": info.cgroup_mode, "cgroup_hierarchies": info.cgroup_hierarchies,
                    "cgroup_controllers": info.cgroup_controllers,
                    "namespaces": info.namespaces, "root": info.root, "shim_path": info.shim_path,
                    "seccomp": info.seccomp, "apparmor": info.apparmor,
                    "user_namespaces": info.user_namespaces,
                    "default_capabilities": info.default_capabilities, "network_modes": modes,
                    "event_history": info.event_history,
                    "last_event_sequence": info.last_event_sequence,
                }));
            } else {
                let yes = |b: bool| if b { "yes" } else { "no" };
                println!("Version:     {}", info.version);
                println!("Kernel:      {}", info.kernel_version);
                println!(
                    "Cgroups:     {} ({})",
                    info.cgroup_mode,
                    info.cgroup_hierarchies.join(" ")
                );
                println!("Controllers: {}", info.cgroup_controllers.join(" "));
                println!("Namespaces:  {}", info.namespaces.join(" "));
                println!("Seccomp:     {}", yes(info.seccomp));
                println!("AppArmor:    {}", yes(info.apparmor));
                println!("User ns:     {}", yes(info.user_namespaces));
                println!("Caps:        {}", info.default_capabilities.join(" "));
                println!("Networks:    {}", modes.join(" "));
                println!(
                    "Events:      {} kept, last sequence {}",
                    info.event_history, info.last_event_sequence
                );
                println!("Root:        {}", info.root);
                println!("Shim:        {}", info.shim_path);
            }
        }
        Cmd::Create(a) => {
            let req = create_request(&a)?;
            let resp: pb::CreateResponse = st(client.create(req).await)?;
            let c = resp.container.unwrap_or_default();
            if cli.json {
                print_json(&StateJson::from(&c));
            } else {
                println!("{}", c.id);
            }
        }
        Cmd::Run(a) => {
            let req = create_request(&a.create)?;
            let id = req.id.clone();
            if a.detach {
                let resp: pb::CreateResponse = st(client.run(req).await)?;
                let c = resp.container.unwrap_or_default();
                if cli.json {
                    print_json(&StateJson::from(&c));
                } else {
                    println!("{}", c.id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            st(client.create(req).await)?;
            if !a.create.tty {
                proxy_signals(client.clone(), id.clone());
            }
            // --json without a terminal or stdin: the output as JSON lines, as `attach --json`.
            let as_json = cli.json && !a.create.tty && !a.create.interactive;
            let result = if as_json {
                attach_json(&mut client, &id, "", true).await
            } else {
                attach_and_stream(
                    &mut client,
                    &id,
                    "",
                    a.create.interactive,
                    a.create.tty,
                    true,
                )
                .await
            };
            if a.rm {
                let _ = client
                    .delete(pb::DeleteRequest {
                        id: id.clone(),
                        force: true,
                    })
                    .await;
            }
            let exit = result?;
            if cli.json && !as_json {
                print_json(
                    &serde_json::json!({"id": id, "exit_code": exit.exit_code, "signal": exit.signal, "status_code": exit.status_code}),
                );
            }
            return Ok(exit_code(&exit));
        }
        Cmd::Start { exec_id, id } => {
            let exec_id = exec_id.unwrap_or_default();
            let resp: pb::StartResponse = st(client.start(pb::StartRequest { id, exec_id }).await)?;
            if cli.json {
                match &resp.process {
                    Some(p) => print_json(&ProcessJson::from(p)),
                    None => print_json(&StateJson::from(&resp.container.unwrap_or_default())),
                }
            }
        }
        Cmd::State { exec_id, id } => {
            let exec_id = exec_id.unwrap_or_default();
            let resp: pb::StateResponse = st(client.state(pb::StateRequest { id, exec_id }).await)?;
            match (&resp.process, cli.json) {
                (Some(p), true) => print_json(&ProcessJson::from(p)),
                (Some(p), false) => {
                    let j = ProcessJson::from(p);
                    println!("Exec:     {}", j.exec_id);
                    println!("Status:   {}", j.status);
                    println!("Pid:      {}", j.pid);
                    if let Some(e) = &p.exit {
                        println!("Exit:     {}", describe_exit(e));
                    }
                }
                (None, true) => print_json(&StateJson::from(&resp.container.unwrap_or_default())),
                (None, false) => print_state(&resp.container.unwrap_or_default()),
            }
        }
        Cmd::List { labels } => {
            let label_filter = key_values("--label", &labels)?.into_iter().collect();
            let resp: pb::ListResponse = st(client.list(pb::ListRequest { label_filter }).await)?;
            if cli.json {
                print_json(
                    &resp
                        .containers
                        .iter()
                        .map(StateJson::from)
                        .collect::<Vec<_>>(),
                );
            } else {
                println!("{:<24} {:<9} {:>8}  CREATED", "ID", "STATUS", "PID");
                for c in &resp.containers {
                    let j = StateJson::from(c);
                    println!(
                        "{:<24} {:<9} {:>8}  {}",
                        j.id,
                        j.status,
                        j.pid,
                        j.created_at.unwrap_or_default()
                    );
                }
            }
        }
        Cmd::Wait { exec_id, id } => {
            let exec_id = exec_id.unwrap_or_default();
            let resp: pb::WaitResponse = st(client.wait(pb::WaitRequest { id, exec_id }).await)?;
            let e = resp.exit.unwrap_or_default();
            if cli.json {
                print_json(
                    &serde_json::json!({"exit_code": e.exit_code, "signal": e.signal, "oom_killed": e.oom_killed, "status_code": e.status_code, "reason": e.reason}),
                );
            } else {
                println!("{}", e.status_code);
            }
            return Ok(exit_code(&e));
        }
        Cmd::Kill {
            signal,
            all,
            exec_id,
            id,
        } => {
            let signal = parse_signal(&signal)?;
            let exec_id = exec_id.unwrap_or_default();
            st(client
                .kill(pb::KillRequest {
                    id: id.clone(),
                    signal,
                    all,
                    exec_id: exec_id.clone(),
                })
                .await)?;
            if cli.json {
                print_json(&serde_json::json!({"id": id, "exec_id": exec_id, "signal": signal}));
            }
        }
        Cmd::Stop { signal, time, id } => {
            let signal = parse_signal(&signal)?;
            let req = pb::StopRequest {
                id: id.clone(),
                signal,
                timeout_seconds: time,
            };
            let resp: pb::StopResponse = st(client.stop(req).await)?;
            let e = resp.exit.unwrap_or_default();
            if cli.json {
                print_json(
                    &serde_json::json!({"id": id, "exit_code": e.exit_code, "signal": e.signal,
                    "status_code": e.status_code, "killed": resp.killed}),
                );
            } else {
                println!(
                    "{id}: {}{}",
                    describe_exit(&e),
                    if resp.killed {
                        " (SIGKILL after the grace period)"
                    } else {
                        ""
                    }
                );
            }
        }
        Cmd::Exec(a) => {
            let process = pb::Process {
                args: a.command.clone(),
                env: a.env.clone(),
                cwd: a.cwd.clone().unwrap_or_default(),
                user: a.user.clone().unwrap_or_default(),
                tty: a.tty,
                open_stdin: a.interactive,
                console_size: if a.tty { terminal_size() } else { None },
            };
            let req = pb::ExecRequest {
                id: a.id.clone(),
                exec_id: a.exec_id.clone().unwrap_or_default(),
                process: Some(process),
                start: a.detach,
            };
            let resp: pb::ExecResponse = st(client.exec(req).await)?;
            let p = resp.process.unwrap_or_default();
            if a.detach {
                if cli.json {
                    print_json(&ProcessJson::from(&p));
                } else {
                    println!("{}", p.exec_id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let exit = if cli.json {
                attach_json(&mut client, &a.id, &p.exec_id, true).await?
            } else {
                attach_and_stream(&mut client, &a.id, &p.exec_id, a.interactive, a.tty, true)
                    .await?
            };
            return Ok(exit_code(&exit));
        }
        Cmd::Delete { force, id } => {
            let resp: pb::DeleteResponse = st(client
                .delete(pb::DeleteRequest {
                    id: id.clone(),
                    force,
                })
                .await)?;
            if cli.json {
                let e = resp.exit.unwrap_or_default();
                print_json(
                    &serde_json::json!({"id": id, "exit_code": e.exit_code, "signal": e.signal}),
                );
            } else {
                println!("{id}");
            }
        }
        Cmd::Attach {
            interactive,
            tty,
            exec_id,
            id,
        } => {
            let exec_id = exec_id.unwrap_or_default();
            let exit = if cli.json {
                attach_json(&mut client, &id, &exec_id, false).await?
            } else {
                attach_and_stream(&mut client, &id, &exec_id, interactive, tty, false).await?
            };
            return Ok(exit_code(&exit));
        }
        Cmd::Logs {
            follow,
            since,
            exec_id,
            id,
        } => {
            let since = match since {
                Some(s) => {
                    let ns = execdriver_spec::logline::parse_rfc3339(&s).ok_or_else(|| {
                        format!("--since {s:?}: expected RFC 3339 UTC, e.g. 2026-01-02T03:04:05Z")
                    })?;
                    Some(prost_types::Timestamp {
                        seconds: ns.div_euclid(1_000_000_000),
                        nanos: ns.rem_euclid(1_000_000_000) as i32,
                    })
                }
                None => None,
            };
            let exec_id = exec_id.unwrap_or_default();
            let req = pb::LogsRequest {
                id,
                since,
                follow,
                stdout: false,
                stderr: false,
                exec_id,
            };
            let mut stream = st(client.logs(req).await)?;
            let mut out = RawOut::stdout();
            let mut err = RawOut::stderr();
            while let Some(msg) = stream.message().await.map_err(|s| s.message().to_owned())? {
                let Some(chunk) = msg.chunk else { continue };
                if cli.json {
                    // One object per line, as `events --json`.
                    println!(
                        "{}",
                        serde_json::json!({
                            "time": rfc3339(&msg.time),
                            "stream": if chunk.stream == pb::Stream::Stderr as i32 { "stderr" } else { "stdout" },
                            "data": String::from_utf8_lossy(&chunk.data),
                        })
                    );
                } else if chunk.stream == pb::Stream::Stderr as i32 {
                    let _ = err.write_all(&chunk.data);
                } else {
                    let _ = out.write_all(&chunk.data);
                }
            }
        }
        Cmd::Pause { id } => {
            let resp: pb::PauseResponse = st(client.pause(pb::PauseRequest { id }).await)?;
            let c = resp.container.unwrap_or_default();
            if cli.json {
                print_json(&StateJson::from(&c));
            } else {
                println!("{}", c.id);
            }
        }
        Cmd::Resume { id } => {
            let resp: pb::ResumeResponse = st(client.resume(pb::ResumeRequest { id }).await)?;
            let c = resp.container.unwrap_or_default();
            if cli.json {
                print_json(&StateJson::from(&c));
            } else {
                println!("{}", c.id);
            }
        }
        Cmd::Stats {
            stream,
            interval,
            id,
        } => {
            if !stream {
                let resp: pb::StatsResponse = st(client.stats(pb::StatsRequest { id }).await)?;
                let s = resp.stats.unwrap_or_default();
                if cli.json {
                    print_json(&stats_json(&s));
                } else {
                    print_stats(&s);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut samples = st(client
                .stats_stream(pb::StatsStreamRequest {
                    id,
                    interval_ms: interval,
                })
                .await)?;
            while let Some(resp) = samples
                .message()
                .await
                .map_err(|s| s.message().to_owned())?
            {
                let s = resp.stats.unwrap_or_default();
                if cli.json {
                    // One JSON object per line, so a reader can take them as they come.
                    println!("{}", stats_json(&s));
                } else {
                    println!("-- {}", rfc3339(&s.read_at).unwrap_or_default());
                    print_stats(&s);
                }
            }
        }
        Cmd::Update { limits, id } => {
            let r = resources(&limits)?;
            let resp: pb::UpdateResponse = st(client
                .update(pb::UpdateRequest {
                    id: id.clone(),
                    resources: Some(r),
                })
                .await)?;
            if cli.json {
                print_json(&resources_json(&resp.resources.unwrap_or_default()));
            } else {
                println!("{id}");
            }
        }
        Cmd::Pids { id } => {
            let resp: pb::PidsResponse = st(client.pids(pb::PidsRequest { id }).await)?;
            if cli.json {
                print_json(&serde_json::json!({
                    "pids": resp.pids, "container_pids": resp.container_pids,
                }));
            } else {
                println!("{:>8} {:>8}", "PID", "IN-CTR");
                for (i, p) in resp.pids.iter().enumerate() {
                    println!(
                        "{p:>8} {:>8}",
                        resp.container_pids.get(i).copied().unwrap_or(0)
                    );
                }
            }
        }
        Cmd::Events { ids, types, since } => {
            let types = types
                .iter()
                .map(|t| {
                    events::parse_event_type(t)
                        .map(|t| t as i32)
                        .ok_or_else(|| format!("--type {t:?}: not an event type"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut stream = st(client
                .events(pb::EventsRequest {
                    ids,
                    types,
                    since_sequence: since,
                })
                .await)?;
            while let Some(e) = stream.message().await.map_err(|s| s.message().to_owned())? {
                if cli.json {
                    println!("{}", event_json(&e));
                } else {
                    println!("{}", describe_event(&e));
                }
            }
        }
        Cmd::ExecSync {
            timeout,
            env,
            user,
            cwd,
            id,
            command,
        } => {
            let req = pb::ExecSyncRequest {
                id,
                process: Some(pb::Process {
                    args: command,
                    env,
                    cwd: cwd.unwrap_or_default(),
                    user: user.unwrap_or_default(),
                    ..Default::default()
                }),
                timeout_seconds: timeout,
            };
            let resp: pb::ExecSyncResponse = st(client.exec_sync(req).await)?;
            let e = resp.exit.clone().unwrap_or_default();
            if cli.json {
                print_json(&serde_json::json!({
                    "stdout": String::from_utf8_lossy(&resp.stdout),
                    "stderr": String::from_utf8_lossy(&resp.stderr),
                    "exit_code": e.exit_code, "signal": e.signal, "status_code": e.status_code,
                    "timed_out": resp.timed_out, "truncated": resp.truncated,
                }));
            } else {
                let _ = RawOut::stdout().write_all(&resp.stdout);
                let _ = RawOut::stderr().write_all(&resp.stderr);
            }
            return Ok(exit_code(&e));
        }
        Cmd::Resize {
            rows,
            cols,
            exec_id,
            id,
        } => {
            let exec_id = exec_id.unwrap_or_default();
            st(client
                .resize_pty(pb::ResizePtyRequest {
                    id: id.clone(),
                    size: Some(pb::ConsoleSize { rows, cols }),
                    exec_id: exec_id.clone(),
                })
                .await)?;
            if cli.json {
                print_json(
                    &serde_json::json!({"id": id, "exec_id": exec_id, "rows": rows, "cols": cols}),
                );
            }
        }
        Cmd::CloseStdin { exec_id, id } => {
            let exec_id = exec_id.unwrap_or_default();
            st(client
                .close_stdin(pb::CloseStdinRequest {
                    id: id.clone(),
                    exec_id: exec_id.clone(),
                })
                .await)?;
            if cli.json {
                print_json(&serde_json::json!({"id": id, "exec_id": exec_id}));
            }
        }
        Cmd::ReopenLog { id } => {
            st(client
                .reopen_log(pb::ReopenLogRequest { id: id.clone() })
                .await)?;
            if cli.json {
                print_json(&serde_json::json!({"id": id}));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn network_mode_name(m: i32) -> String {
    pb::NetworkMode::try_from(m)
        .unwrap_or(pb::NetworkMode::Unspecified)
        .as_str_name()
        .trim_start_matches("NETWORK_MODE_")
        .to_ascii_lowercase()
}

fn exit_json(e: &pb::ExitStatus) -> serde_json::Value {
    serde_json::json!({"exit_code": e.exit_code, "signal": e.signal, "oom_killed": e.oom_killed,
        "status_code": e.status_code, "reason": e.reason, "finished_at": rfc3339(&e.finished_at)})
}

fn event_json(e: &pb::Event) -> serde_json::Value {
    serde_json::json!({
        "sequence": e.sequence,
        "type": events::event_type_name(e.r#type),
        "id": e.id,
        "exec_id": e.exec_id,
        "time": rfc3339(&e.time),
        "pid": e.pid,
        "exit": e.exit.as_ref().map(exit_json),
        "labels": e.labels.iter().collect::<BTreeMap<_, _>>(),
    })
}

fn describe_event(e: &pb::Event) -> String {
    let mut line = format!(
        "{:>6} {} {:<12} {}",
        e.sequence,
        rfc3339(&e.time).unwrap_or_default(),
        events::event_type_name(e.r#type),
        e.id
    );
    if !e.exec_id.is_empty() {
        line += &format!(" exec {}", e.exec_id);
    }
    if e.pid > 0 {
        line += &format!(" pid {}", e.pid);
    }
    if let Some(x) = &e.exit {
        line += &format!(
            " {}{}",
            describe_exit(x),
            if x.oom_killed { " (OOM killed)" } else { "" }
        );
    }
    line
}

/// Attaches (and with `start`, starts) and prints each chunk of output, then the exit, as one
/// JSON object per line.
async fn attach_json(
    client: &mut Client,
    id: &str,
    exec_id: &str,
    start: bool,
) -> Result<pb::ExitStatus, String> {
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(1);
    let msg = pb::AttachStart {
        id: id.to_owned(),
        exec_id: exec_id.to_owned(),
        stdin: false,
        stdout: true,
        stderr: true,
    };
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Start(msg)),
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut stream = st(client
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await)?;
    if start {
        st(client
            .start(pb::StartRequest {
                id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            })
            .await)?;
    }
    while let Some(msg) = stream.message().await.map_err(|s| s.message().to_owned())? {
        match msg.kind {
            Some(pb::attach_response::Kind::Output(c)) => println!(
                "{}",
                serde_json::json!({
                    "stream": if c.stream == pb::Stream::Stderr as i32 { "stderr" } else { "stdout" },
                    "data": String::from_utf8_lossy(&c.data),
                })
            ),
            Some(pb::attach_response::Kind::Exit(e)) => {
                println!("{}", serde_json::json!({ "exit": exit_json(&e) }));
                drop(tx);
                return Ok(e);
            }
            None => {}
        }
    }
    Err("the attach stream ended without an exit status".into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("execdriverctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // A read of our stdin may still be blocked in a runtime thread; do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("execdriverctl: {msg}");
            ExitCode::from(125)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_flags() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            pb::Rlimit {
                r#type: "nofile".into(),
                soft: 1024,
                hard: 2048
            }
        );
        let r = parse_ulimit("nproc=unlimited").unwrap();
        assert_eq!((r.soft, r.hard), (u64::MAX, u64::MAX));
        assert!(parse_ulimit("nofile").is_err() && parse_ulimit("nofile=x").is_err());
        let m = parse_id_map("0:100000:65536").unwrap();
        assert_eq!((m.container_id, m.host_id, m.size), (0, 100_000, 65536));
        assert!(parse_id_map("0:1").is_err());

        assert_eq!(security_config(&SecurityArgs::default()).unwrap(), None);
        let s = security_config(&SecurityArgs {
            cap_add: vec!["SYS_PTRACE".into()],
            security_opt: vec![
                "no-new-privileges=false".into(),
                "seccomp=unconfined".into(),
                "apparmor=docker-default".into(),
            ],
            userns_map: vec!["0:100000:65536".into()],
            oom_score_adj: Some(-5),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(s.capabilities.len(), 15);
        assert!(s.capabilities.contains(&"SYS_PTRACE".to_string()));
        assert_eq!(s.no_new_privileges, Some(false));
        assert_eq!(s.seccomp.unwrap().profile, "unconfined");
        assert_eq!(s.apparmor_profile, "docker-default");
        assert_eq!(s.uid_mappings, s.gid_mappings);
        assert_eq!(s.oom_score_adj, Some(-5));
        let s = security_config(&SecurityArgs {
            privileged: true,
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(s.capabilities, ["ALL"]);
        assert!(s.unmask_system_paths);
        assert!(security_config(&SecurityArgs {
            security_opt: vec!["label=disable".into()],
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("--memory", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("--memory", "64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("--memory", "1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("--memory", "512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("--memory", "4096").unwrap(), 4096);
        assert_eq!(parse_size("--memory-swap", "-1").unwrap(), -1);
        for bad in ["", "m", "12x", "-5m", "1e400"] {
            assert!(parse_size("--memory", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus_become_quota_and_period() {
        let r = resources(&LimitArgs {
            cpus: Some("0.2".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((r.cpu_quota, r.cpu_period), (20_000, 100_000));
        let r = resources(&LimitArgs {
            cpus: Some("1.5".into()),
            cpu_period: Some(50_000),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((r.cpu_quota, r.cpu_period), (75_000, 50_000));
        assert!(resources(&LimitArgs {
            cpus: Some("-1".into()),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn devices() {
        let d = parse_device("c 10:229 rwm").unwrap();
        assert_eq!((d.r#type.as_str(), d.major, d.minor), ("c", 10, 229));
        assert_eq!(d.permissions, "rwm");
        let d = parse_device("b 8:* r").unwrap();
        assert_eq!((d.major, d.minor, d.permissions.as_str()), (8, -1, "r"));
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!(d.path, "/dev/fuse");
        assert!(d.r#type.is_empty());
        let d = parse_device("/dev/fuse:rw").unwrap();
        assert_eq!(
            (d.container_path.as_str(), d.permissions.as_str()),
            ("", "rw")
        );
        let d = parse_device("/dev/sdb:/dev/xvdb:r").unwrap();
        assert_eq!(d.container_path, "/dev/xvdb");
        assert!(parse_device("fuse").is_err());
        assert!(parse_device("c x:1").is_err());
    }
}
