//! `execdriverd`: serves the execdriver.v1 API on a unix socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use execdriver_driver::convert::{BridgeNetwork, Defaults};
use execdriver_driver::driver::DriverConfig;
use execdriver_driver::server::{self, ServerConfig};
use execdriver_driver::shims::default_shim_path;

#[derive(Parser, Debug)]
#[command(
    name = "execdriverd",
    version,
    about = "The execdriver container execution driver daemon"
)]
struct Args {
    /// State directory: one subdirectory per container.
    #[arg(long, default_value = "/run/execdriver")]
    root: PathBuf,
    /// The unix socket to serve the gRPC API on.
    #[arg(long, default_value = "/run/execdriverd.sock")]
    socket: PathBuf,
    /// The shim binary (default: execdriver-shim beside this binary).
    #[arg(long)]
    shim: Option<PathBuf>,
    /// Cgroup parent of every container.
    #[arg(long, default_value = "execdriver")]
    cgroup_parent: String,
    /// Device access enforcement: auto (v1 devices cgroup where mounted, else eBPF) or bpf
    /// (the eBPF filter on the v2 cgroup, also on a hybrid host).
    #[arg(long, default_value = "auto", value_parser = ["auto", "bpf"])]
    cgroup_devices: String,
    /// Bridge for bridge-mode containers; created (with the gateway address) if missing.
    /// Needs --subnet.
    #[arg(long, requires = "subnet")]
    bridge: Option<String>,
    /// IPv4 subnet (CIDR) bridge-mode containers get their addresses from, e.g. 10.88.0.0/16.
    #[arg(long, requires = "bridge")]
    subnet: Option<String>,
    /// The bridge's address and the containers' gateway (default: the subnet's first address).
    #[arg(long, requires = "bridge")]
    gateway: Option<String>,
    /// MTU of bridge-mode containers' interfaces, and of the bridge when it is created
    /// (default: the bridge's MTU).
    #[arg(long, requires = "bridge", default_value_t = 0)]
    mtu: u32,
    /// Also admit this uid on the socket (root and the daemon's uid always are).
    #[arg(long = "allow-uid")]
    allow_uids: Vec<u32>,
    /// Admit peers whose gid is this, and make the socket 0660 owned by it.
    #[arg(long = "allow-gid")]
    allow_gid: Option<u32>,
    /// Log format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log filter (tracing's EnvFilter syntax), e.g. info or execdriver_driver=debug.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Run once and exit: remove what containers whose shim is gone left (processes, cgroups,
    /// veths, mounts, addresses, state directories), print what was done. Refused while a
    /// daemon runs on the same root; containers whose shim runs are kept.
    #[arg(long)]
    cleanup: bool,
}

fn init_logging(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log_format, &args.log_level);
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
    let driver_cfg = DriverConfig {
        root,
        shim_path: args.shim.clone().unwrap_or_else(default_shim_path),
        defaults: Defaults {
            cgroup_parent: args.cgroup_parent.clone(),
            cgroup_devices: execdriver_shim::cgroups::DeviceMode::parse(&args.cgroup_devices)
                .unwrap_or_default(),
            network,
        },
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
    let server_cfg = ServerConfig {
        socket: args.socket.clone(),
        allow_uids: args.allow_uids.clone(),
        allow_gid: args.allow_gid,
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
