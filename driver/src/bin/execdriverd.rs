//! `execdriverd`: serves the execdriver.v1 API on a unix socket.
//!
//! Every option can also be given in a TOML file (`--config FILE`), under the flag's name
//! without the dashes (`cgroup-parent = "execdriver"`, `allow-uid = [1000]`); a flag on the
//! command line wins over the file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use execdriver_driver::cli::daemon::{parse_mode, Args};
use execdriver_driver::convert::{BridgeNetwork, Defaults};
use execdriver_driver::driver::DriverConfig;
use execdriver_driver::policy::{Admitted, Policy};
use execdriver_driver::server::{self, ServerConfig};
use execdriver_driver::shims::default_shim_path;

/// The config file: the same options as the flags, named as they are (without the dashes).
#[derive(serde::Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    root: Option<PathBuf>,
    socket: Option<PathBuf>,
    shim: Option<PathBuf>,
    cgroup_parent: Option<String>,
    cgroup_devices: Option<String>,
    cgroups_when_limited: Option<Vec<String>>,
    bridge: Option<String>,
    subnet: Option<String>,
    gateway: Option<String>,
    mtu: Option<u32>,
    allow_uid: Option<Vec<u32>>,
    allow_gid: Option<u32>,
    admitted_policy: Option<String>,
    restricted_rootfs_prefix: Option<Vec<String>>,
    restricted_mount_prefix: Option<Vec<String>>,
    /// Octal, as the flag: "660".
    socket_mode: Option<String>,
    allow_missing_apparmor: Option<bool>,
    log_format: Option<String>,
    log_level: Option<String>,
    event_history: Option<usize>,
    shim_pool: Option<usize>,
    shutdown_grace: Option<u64>,
}

/// Reads `--config` and puts each option it sets into `args`, unless the command line set it.
fn apply_config_file(
    args: &mut Args,
    matches: &clap::ArgMatches,
    path: &Path,
) -> Result<(), String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let file: FileConfig =
        toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let from_file = |id: &str| matches.value_source(id) != Some(ValueSource::CommandLine);
    macro_rules! take {
        ($field:ident, $id:literal) => {
            if let Some(v) = file.$field {
                if from_file($id) {
                    args.$field = v;
                }
            }
        };
        (opt $field:ident, $id:literal) => {
            if let Some(v) = file.$field {
                if from_file($id) {
                    args.$field = Some(v);
                }
            }
        };
    }
    take!(root, "root");
    take!(socket, "socket");
    take!(opt shim, "shim");
    take!(opt cgroup_parent, "cgroup_parent");
    take!(cgroup_devices, "cgroup_devices");
    take!(cgroups_when_limited, "cgroups_when_limited");
    take!(opt bridge, "bridge");
    take!(opt subnet, "subnet");
    take!(opt gateway, "gateway");
    take!(mtu, "mtu");
    take!(opt allow_gid, "allow_gid");
    if let Some(mode) = &file.socket_mode {
        if from_file("socket_mode") {
            args.socket_mode = Some(
                parse_mode(mode)
                    .map_err(|e| format!("--config {}: socket-mode: {e}", path.display()))?,
            );
        }
    }
    take!(allow_missing_apparmor, "allow_missing_apparmor");
    take!(log_format, "log_format");
    take!(log_level, "log_level");
    take!(event_history, "event_history");
    take!(shim_pool, "shim_pool");
    take!(shutdown_grace, "shutdown_grace");
    take!(admitted_policy, "admitted_policy");
    if let Some(v) = file.allow_uid {
        if from_file("allow_uids") {
            args.allow_uids = v;
        }
    }
    if let Some(v) = file.restricted_rootfs_prefix {
        if from_file("restricted_rootfs_prefixes") {
            args.restricted_rootfs_prefixes = v;
        }
    }
    if let Some(v) = file.restricted_mount_prefix {
        if from_file("restricted_mount_prefixes") {
            args.restricted_mount_prefixes = v;
        }
    }
    if Admitted::parse(&args.admitted_policy).is_none() {
        return Err(format!(
            "admitted-policy {:?}: expected full or restricted",
            args.admitted_policy
        ));
    }
    if !["auto", "bpf"].contains(&args.cgroup_devices.as_str()) {
        return Err(format!(
            "cgroup-devices {:?}: expected auto or bpf",
            args.cgroup_devices
        ));
    }
    if let Some(c) = args
        .cgroups_when_limited
        .iter()
        .find(|c| !execdriver_spec::config::SHAREABLE.contains(&c.as_str()))
    {
        return Err(format!(
            "cgroups-when-limited {c:?}: expected {}",
            execdriver_spec::config::SHAREABLE.join(" or ")
        ));
    }
    if !["text", "json"].contains(&args.log_format.as_str()) {
        return Err(format!(
            "log-format {:?}: expected text or json",
            args.log_format
        ));
    }
    if args.bridge.is_some() != args.subnet.is_some() {
        return Err("bridge and subnet go together".into());
    }
    if (args.gateway.is_some() || args.mtu != 0) && args.bridge.is_none() {
        return Err("gateway and mtu need a bridge".into());
    }
    Ok(())
}

fn init_logging(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: journald, files and log shippers get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let mut args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    if let Some(path) = args.config.clone() {
        if let Err(e) = apply_config_file(&mut args, &matches, &path) {
            eprintln!("execdriverd: {e}");
            return ExitCode::from(2);
        }
    }
    init_logging(&args.log_format, &args.log_level);
    let mut rootless = execdriver_driver::convert::Rootless::detect();
    if let Some(r) = &mut rootless {
        // Before any thread starts: the move takes the whole process.
        r.claim_cgroups();
        // An ordinary user's daemon: its root and socket in the user's runtime directory
        // unless given, no parked shims (they need cgroups).
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            if !given("root") && args.config.is_none() {
                args.root = dir.join("execdriver");
            }
            if !given("socket") && args.config.is_none() {
                args.socket = dir.join("execdriverd.sock");
            }
        }
        args.shim_pool = 0;
        tracing::info!(
            uid = r.uid,
            subuids = ?r.subuids,
            cgroups = ?r.cgroups,
            "rootless: containers get a user namespace, and cgroups only in a delegated subtree"
        );
    }
    if let Some((old, new)) = execdriver_driver::shims::raise_nofile_limit() {
        tracing::debug!(
            old,
            new,
            "open-files soft limit raised (containers keep the old one)"
        );
    }
    if args.allow_missing_apparmor && !execdriver_shim::security::apparmor_enabled() {
        tracing::warn!(
            "--allow-missing-apparmor: this kernel has no AppArmor; containers that ask for a \
             profile run unconfined"
        );
    }
    let root = if args.root.is_absolute() {
        args.root.clone()
    } else {
        std::env::current_dir()
            .map(|d| d.join(&args.root))
            .unwrap_or_else(|_| args.root.clone())
    };
    let network = match (&args.bridge, &args.subnet) {
        (Some(bridge), Some(subnet)) => {
            match BridgeNetwork::new(bridge, subnet, args.gateway.as_deref(), args.mtu) {
                Ok(n) => Some(n),
                Err(e) => {
                    eprintln!("execdriverd: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    let cgroup_parent = match rootless.as_ref().map(|r| &r.cgroups) {
        // Rootless, the delegated subtree is the only place the daemon may make cgroups
        // (a --cgroup-parent is placed below it).
        Some(Ok(d)) => match &args.cgroup_parent {
            Some(p) => format!("{}/{}", d.parent, p.trim_matches('/')),
            None => d.parent.clone(),
        },
        _ => args
            .cgroup_parent
            .clone()
            .unwrap_or_else(|| execdriver_driver::convert::default_cgroup_parent(&root)),
    };
    let driver_cfg = DriverConfig {
        root,
        shim_path: args.shim.clone().unwrap_or_else(default_shim_path),
        defaults: Defaults {
            cgroup_parent,
            cgroup_devices: execdriver_shim::cgroups::DeviceMode::parse(&args.cgroup_devices)
                .unwrap_or_default(),
            network,
            allow_missing_apparmor: args.allow_missing_apparmor,
            rootless,
            when_limited: args.cgroups_when_limited.clone(),
        },
        event_history: args.event_history,
        shim_pool: args.shim_pool,
    };
    if args.cleanup {
        return match execdriver_driver::driver::Driver::cleanup(&driver_cfg) {
            Ok(report) => {
                for line in &report.lines {
                    println!("{line}");
                }
                println!(
                    "cleanup: {} state directories removed, {} containers kept",
                    report.removed_dirs.len(),
                    report.kept.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("execdriverd --cleanup: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let policy = match Policy::new(
        Admitted::parse(&args.admitted_policy).unwrap_or_default(),
        args.restricted_rootfs_prefixes.clone(),
        args.restricted_mount_prefixes.clone(),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("execdriverd: {e}");
            return ExitCode::from(2);
        }
    };
    for warning in policy.warnings(!args.allow_uids.is_empty() || args.allow_gid.is_some()) {
        tracing::warn!("{warning}");
    }
    let server_cfg = ServerConfig {
        socket: args.socket.clone(),
        allow_uids: args.allow_uids.clone(),
        allow_gid: args.allow_gid,
        socket_mode: args.socket_mode,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        policy,
    };
    // The runtime starts only now: nothing above needed threads.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("execdriverd: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(server::serve(driver_cfg, server_cfg));
    // Tasks of calls cut short by the shutdown are not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("execdriverd: {e}");
            ExitCode::FAILURE
        }
    }
}
