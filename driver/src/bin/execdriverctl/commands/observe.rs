//! The subcommands that look at the daemon and containers: info, logs, reopen-log, stats,
//! pids, events.

use std::process::ExitCode;

use execdriver_driver::events;
use execdriver_proto as pb;

use crate::client::{st, status, Client, Failure};
use crate::output::{
    describe_event, event_json, network_mode_name, print_json, print_stats, rfc3339, stats_json,
    RawOut,
};
use crate::request::parse_since;

pub async fn info(client: &mut Client, json: bool) -> Result<ExitCode, Failure> {
    let info: pb::InfoResponse = st(client.info(pb::InfoRequest {}).await)?;
    let modes: Vec<String> = info
        .network_modes
        .iter()
        .map(|m| network_mode_name(*m))
        .collect();
    if json {
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
            "default_namespaces": info.default_namespaces, "cpus": info.cpus,
        }));
    } else {
        let yes = |b: bool| if b { "yes" } else { "no" };
        println!("Version:     {}", info.version);
        println!("Kernel:      {}", info.kernel_version);
        println!("CPUs:        {}", info.cpus);
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
        if !info.rootless.is_empty() {
            println!("Rootless:    {}", info.rootless);
        }
        println!("Root:        {}", info.root);
        println!("Shim:        {}", info.shim_path);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a log as it was written (stdout to ours, stderr to ours), or with --json one object
/// per line; with --tail only its last lines (then with -f what comes).
pub async fn logs(
    client: &mut Client,
    json: bool,
    follow: bool,
    since: Option<String>,
    tail: Option<u32>,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, Failure> {
    let since = since.as_deref().map(parse_since).transpose()?;
    let exec_id = exec_id.unwrap_or_default();
    let req = pb::LogsRequest {
        id,
        since,
        follow,
        stdout: false,
        stderr: false,
        exec_id,
        tail,
    };
    let mut stream = st(client.logs(req).await)?;
    let mut out = RawOut::stdout();
    let mut err = RawOut::stderr();
    while let Some(msg) = stream.message().await.map_err(status)? {
        let Some(chunk) = msg.chunk else { continue };
        if json {
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
    Ok(ExitCode::SUCCESS)
}

pub async fn reopen_log(client: &mut Client, json: bool, id: String) -> Result<ExitCode, Failure> {
    st(client
        .reopen_log(pb::ReopenLogRequest { id: id.clone() })
        .await)?;
    if json {
        print_json(&serde_json::json!({"id": id}));
    }
    Ok(ExitCode::SUCCESS)
}

/// One sample, or with --stream one every interval until the container stops.
pub async fn stats(
    client: &mut Client,
    json: bool,
    stream: bool,
    interval: u32,
    id: String,
) -> Result<ExitCode, Failure> {
    if !stream {
        let resp: pb::StatsResponse = st(client.stats(pb::StatsRequest { id }).await)?;
        let s = resp.stats.unwrap_or_default();
        if json {
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
    while let Some(resp) = samples.message().await.map_err(status)? {
        let s = resp.stats.unwrap_or_default();
        if json {
            // One JSON object per line, so a reader can take them as they come.
            println!("{}", stats_json(&s));
        } else {
            println!("-- {}", rfc3339(&s.read_at).unwrap_or_default());
            print_stats(&s);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pids(client: &mut Client, json: bool, id: String) -> Result<ExitCode, Failure> {
    let resp: pb::PidsResponse = st(client.pids(pb::PidsRequest { id }).await)?;
    if json {
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
    Ok(ExitCode::SUCCESS)
}

/// Streams events until the daemon ends the stream (or we are interrupted).
pub async fn events(
    client: &mut Client,
    json: bool,
    ids: Vec<String>,
    types: Vec<String>,
    since: u64,
) -> Result<ExitCode, Failure> {
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
    while let Some(e) = stream.message().await.map_err(status)? {
        if json {
            println!("{}", event_json(&e));
        } else {
            println!("{}", describe_event(&e));
        }
    }
    Ok(ExitCode::SUCCESS)
}
