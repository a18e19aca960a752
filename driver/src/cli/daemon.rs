//! `execdriverd`'s command line (clap). Every option can also be given in a TOML file
//! (`--config FILE`), under the flag's name without the dashes; the daemon's `main` merges the
//! two. Here so the man page and shell completions are generated from the same definitions.

use std::path::PathBuf;

use clap::Parser;

use crate::server;

#[derive(Parser, Debug)]
#[command(
    name = "execdriverd",
    version = super::VERSION,
    about = "The execdriver container execution driver daemon"
)]
pub struct Args {
    /// A TOML file with any of these options (named as the flags, without the dashes);
    /// flags given on the command line win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// State directory: one subdirectory per container.
    #[arg(long, default_value = "/run/execdriver")]
    pub root: PathBuf,
    /// The unix socket to serve the gRPC API on.
    #[arg(long, default_value = "/run/execdriverd.sock")]
    pub socket: PathBuf,
    /// The shim binary (default: execdriver-shim beside this binary).
    #[arg(long)]
    pub shim: Option<PathBuf>,
    /// Cgroup parent of every container (default: `execdriver` for the default --root, else
    /// `execdriver-` and a hash of the root, so daemons on different roots never share cgroups).
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// Device access enforcement: auto (v1 devices cgroup where mounted, else eBPF) or bpf
    /// (the eBPF filter on the v2 cgroup, also on a hybrid host).
    #[arg(long, default_value = "auto", value_parser = ["auto", "bpf"])]
    pub cgroup_devices: String,
    /// v1 controllers whose cgroup a container gets only when it sets a limit of theirs
    /// (comma-separated: memory, cpuset); without one it shares the cgroup parent's. For
    /// thousands of containers: each memory cgroup costs the kernel about 1 MiB then, and each
    /// cpuset is checked against all its siblings. Shared: no per-container memory figures.
    #[arg(long, value_delimiter = ',', value_parser = ["memory", "cpuset"])]
    pub cgroups_when_limited: Vec<String>,
    /// Bridge for bridge-mode containers; created (with the gateway address) if missing.
    /// Needs --subnet.
    #[arg(long, requires = "subnet")]
    pub bridge: Option<String>,
    /// IPv4 subnet (CIDR) bridge-mode containers get their addresses from, e.g. 10.88.0.0/16.
    #[arg(long, requires = "bridge")]
    pub subnet: Option<String>,
    /// The bridge's address and the containers' gateway (default: the subnet's first address).
    #[arg(long, requires = "bridge")]
    pub gateway: Option<String>,
    /// MTU of bridge-mode containers' interfaces, and of the bridge when it is created
    /// (default: the bridge's MTU).
    #[arg(long, requires = "bridge", default_value_t = 0)]
    pub mtu: u32,
    /// Also admit this uid on the socket (root and the daemon's uid always are). The socket
    /// becomes 0666 (unless --socket-mode says otherwise) so that user can connect; every
    /// call's uid is checked. Under --admitted-policy full (the default) an admitted user can
    /// run privileged containers and mount any host path: root-equivalent, as Docker's docker
    /// group is.
    #[arg(long = "allow-uid")]
    pub allow_uids: Vec<u32>,
    /// Admit members of this group (primary or supplementary), and make the socket owned by
    /// it and 0660 (0666 with --allow-uid). Root-equivalent under --admitted-policy full.
    #[arg(long = "allow-gid")]
    pub allow_gid: Option<u32>,
    /// What callers admitted by --allow-uid/--allow-gid may ask for: full (anything root may)
    /// or restricted (no privileges, added capabilities, devices or host namespaces, host
    /// paths only under the restricted prefixes, only their own containers). Root and the
    /// daemon's uid are never restricted.
    #[arg(long, default_value = "full", value_parser = ["full", "restricted"])]
    pub admitted_policy: String,
    /// Under the restricted policy: a directory a container's rootfs may be in (repeatable;
    /// `{uid}` stands for the caller's uid). A writable rootfs must be on a filesystem mounted
    /// nosuid,nodev.
    #[arg(long = "restricted-rootfs-prefix")]
    pub restricted_rootfs_prefixes: Vec<String>,
    /// Under the restricted policy: a directory bind mount sources may be in (repeatable;
    /// `{uid}` stands for the caller's uid). A writable mount's source must be on a
    /// filesystem mounted nosuid,nodev.
    #[arg(long = "restricted-mount-prefix")]
    pub restricted_mount_prefixes: Vec<String>,
    /// The socket's mode in octal (default 600, 660 with --allow-gid, 666 with --allow-uid),
    /// e.g. 666 to let every local user connect; who may use the daemon is still checked on
    /// every call. A mode that keeps out users the flags admit is warned about at start.
    #[arg(long = "socket-mode", value_parser = parse_mode)]
    pub socket_mode: Option<u32>,
    /// Run containers that ask for an AppArmor profile on a kernel without AppArmor, unconfined
    /// (each such container is logged); without it they are refused (FAILED_PRECONDITION).
    #[arg(long)]
    pub allow_missing_apparmor: bool,
    /// Log format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Log filter (tracing's EnvFilter syntax), e.g. info or execdriver_driver=debug.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Container events kept for Events subscribers that reconnect with a sequence number.
    #[arg(long, default_value_t = crate::events::DEFAULT_HISTORY)]
    pub event_history: usize,
    /// Shims kept started ahead of creates, each with its cgroups made and a process parked
    /// in them, so a container's init is born in its cgroups (0: none; each costs about 1.5 MiB,
    /// most of it the kernel's for the cgroups).
    #[arg(long, default_value_t = 2)]
    pub shim_pool: usize,
    /// Seconds a stopping daemon (SIGTERM) waits for open calls such as attached clients
    /// before it exits anyway; containers keep running.
    #[arg(long, default_value_t = server::DEFAULT_SHUTDOWN_GRACE.as_secs())]
    pub shutdown_grace: u64,
    /// Run once and exit: remove what containers whose shim is gone left (processes, cgroups,
    /// veths, mounts, addresses, state directories), print what was done. Refused while a
    /// daemon runs on the same root; containers whose shim runs are kept.
    #[arg(long)]
    pub cleanup: bool,
}

/// `--socket-mode`: an octal mode with only read and write bits.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode"))?;
    if mode & !0o666 != 0 {
        return Err(format!("{s}: only read and write bits (at most 666)"));
    }
    Ok(mode)
}
