//! `execdriverctl`: a command-line client for execdriverd, one subcommand per RPC.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use execdriver_driver::driver::status_name;
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
    /// Start a created container.
    Start { id: String },
    /// Show a container's state.
    State { id: String },
    /// List containers.
    #[command(alias = "ls")]
    List {
        /// Only containers with this label (KEY=VALUE).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Wait for a container to end; prints its exit code and exits with it.
    Wait { id: String },
    /// Send a signal (name or number; default TERM).
    Kill {
        #[arg(short, long, default_value = "TERM")]
        signal: String,
        /// Signal every process of the container.
        #[arg(long)]
        all: bool,
        id: String,
    },
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
        id: String,
    },
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
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
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
            console_size: None,
        }),
        hostname: a.hostname.clone().unwrap_or_default(),
        namespaces: a.namespaces.clone(),
        mounts: a
            .mounts
            .iter()
            .map(|m| parse_mount(m))
            .collect::<Result<_, _>>()?,
        readonly_rootfs: a.readonly_rootfs,
        capabilities_mask: a.cap_drop.clone(),
        labels: key_values("--label", &a.labels)?.into_iter().collect(),
        network: network_config(a)?,
    })
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
        execdriver_shim::logfile::rfc3339_nanos(t.seconds * 1_000_000_000 + t.nanos as i64)
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

/// Streams a container's output to ours until it ends; returns its exit status.
async fn attach_and_stream(
    client: &mut Client,
    id: &str,
    stdin: bool,
    start_after_attach: bool,
) -> Result<pb::ExitStatus, String> {
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(16);
    let start = pb::AttachStart {
        id: id.to_owned(),
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
    if start_after_attach {
        st(client.start(pb::StartRequest { id: id.to_owned() }).await)?;
    }
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    loop {
        let msg = stream.message().await.map_err(|s| s.message().to_owned())?;
        let Some(msg) = msg else {
            return Err("the attach stream ended without an exit status".into());
        };
        match msg.kind {
            Some(pb::attach_response::Kind::Output(chunk)) => {
                if chunk.stream == pb::Stream::Stderr as i32 {
                    let _ = err.write_all(&chunk.data);
                    let _ = err.flush();
                } else {
                    let _ = out.write_all(&chunk.data);
                    let _ = out.flush();
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

fn exit_code(e: &pb::ExitStatus) -> ExitCode {
    ExitCode::from(e.status_code.clamp(0, 255) as u8)
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    let channel = connect(&cli.socket)
        .await
        .map_err(|e| format!("connecting to {}: {e}", cli.socket.display()))?;
    let mut client = ExecDriverClient::new(channel);
    match cli.cmd {
        Cmd::Info => {
            let info: pb::InfoResponse = st(client.info(pb::InfoRequest {}).await)?;
            if cli.json {
                print_json(&serde_json::json!({
                    "version": info.version, "kernel_version": info.kernel_version,
                    "cgroup_mode": info.cgroup_mode, "cgroup_hierarchies": info.cgroup_hierarchies,
                    "namespaces": info.namespaces, "root": info.root, "shim_path": info.shim_path,
                }));
            } else {
                println!("Version:     {}", info.version);
                println!("Kernel:      {}", info.kernel_version);
                println!(
                    "Cgroups:     {} ({})",
                    info.cgroup_mode,
                    info.cgroup_hierarchies.join(" ")
                );
                println!("Namespaces:  {}", info.namespaces.join(" "));
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
            proxy_signals(client.clone(), id.clone());
            let result = attach_and_stream(&mut client, &id, a.create.interactive, true).await;
            if a.rm {
                let _ = client
                    .delete(pb::DeleteRequest {
                        id: id.clone(),
                        force: true,
                    })
                    .await;
            }
            let exit = result?;
            if cli.json {
                print_json(
                    &serde_json::json!({"id": id, "exit_code": exit.exit_code, "signal": exit.signal, "status_code": exit.status_code}),
                );
            }
            return Ok(exit_code(&exit));
        }
        Cmd::Start { id } => {
            let resp: pb::StartResponse = st(client.start(pb::StartRequest { id }).await)?;
            let c = resp.container.unwrap_or_default();
            if cli.json {
                print_json(&StateJson::from(&c));
            }
        }
        Cmd::State { id } => {
            let resp: pb::StateResponse = st(client.state(pb::StateRequest { id }).await)?;
            let c = resp.container.unwrap_or_default();
            if cli.json {
                print_json(&StateJson::from(&c));
            } else {
                print_state(&c);
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
        Cmd::Wait { id } => {
            let resp: pb::WaitResponse = st(client.wait(pb::WaitRequest { id }).await)?;
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
        Cmd::Kill { signal, all, id } => {
            let signal = parse_signal(&signal)?;
            st(client.kill(pb::KillRequest { id, signal, all }).await)?;
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
        Cmd::Attach { interactive, id } => {
            let exit = attach_and_stream(&mut client, &id, interactive, false).await?;
            return Ok(exit_code(&exit));
        }
    }
    Ok(ExitCode::SUCCESS)
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
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("execdriverctl: {msg}");
            ExitCode::from(125)
        }
    }
}
