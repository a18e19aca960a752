//! Reliability: driver restarts (SIGKILL and SIGTERM), shim deaths, crashes mid-create, many
//! concurrent clients, bad input, and `execdriverd --cleanup`. Nothing is lost and nothing
//! leaks.
//!
//! This file holds what the topics share: the daemons they start, the census of what a
//! daemon's containers could leak, and small calls (state, exec, logs, attach, delete). The
//! tests are in `restart` (driver restarts and crashes), `shim_death` (killed, other-user and
//! stuck shims), `load` (many concurrent containers and clients), `bad_input` (malformed and
//! out-of-range requests) and `cleanup` (`execdriverd --cleanup`).

use std::path::Path;
use std::time::Duration;

use execdriver_tests::*;
use tokio_stream::StreamExt;

mod bad_input;
mod cleanup;
mod delete_force;
mod fd_pressure;
mod load;
mod restart;
mod shim_death;
mod two_daemons;
mod up_front;

fn bridge_daemon(subnet: &str) -> Daemon {
    let bridge = unique_ifname("edbr");
    Daemon::start_in_netns(&["--bridge", &bridge, "--subnet", subnet], &[])
}

fn bridged(d: &Daemon, args: &[&str]) -> pb::CreateRequest {
    pb::CreateRequest {
        network: Some(pb::NetworkConfig {
            mode: pb::NetworkMode::Bridge as i32,
            ..Default::default()
        }),
        ..d.request(args)
    }
}

fn alive(pid: i32) -> bool {
    // A zombie (dead, not yet reaped by whoever its parent is now) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

async fn wait_gone(pid: i32, timeout: Duration) -> bool {
    eventually(timeout, || (!alive(pid)).then_some(()))
        .await
        .is_some()
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("pid")
}

/// Open descriptors of a process.
pub(crate) fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// Processes whose working directory is under `root`: the daemon's shims (each works in its
/// container's state directory).
fn shims_under(root: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| {
                    std::fs::read_link(format!("/proc/{pid}/cwd"))
                        .is_ok_and(|cwd| cwd.starts_with(root) && !execdriver_tests::is_pool(&cwd))
                })
                .filter(|pid| alive(*pid))
                .collect()
        })
        .unwrap_or_default()
}

/// Every process in the daemon's cgroups.
fn container_processes(d: &Daemon) -> Vec<i32> {
    let mut out = Vec::new();
    for dir in d.cgroup_dirs() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Everything of a daemon's containers that could leak, counted.
#[derive(Debug, PartialEq, Eq)]
struct Census {
    shims: usize,
    processes: usize,
    cgroups: usize,
    state_dirs: usize,
    mounts: usize,
    veths: usize,
    daemon_fds: usize,
}

/// A census once the daemon is quiet: connections the harness opened to see it come up (and
/// closed) may still be open in the daemon for a moment.
async fn settled_census(d: &Daemon, with_netns: bool) -> Census {
    let mut last = census(d, with_netns);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = census(d, with_netns);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn census(d: &Daemon, with_netns: bool) -> Census {
    Census {
        shims: shims_under(&d.root).len(),
        processes: container_processes(d).len(),
        cgroups: d.cgroup_dirs().len(),
        state_dirs: d.state_dirs().len(),
        mounts: host_mounts_under(&d.dir.path).len(),
        veths: if with_netns {
            d.netns().veths().len()
        } else {
            0
        },
        daemon_fds: fd_count(d.pid().expect("daemon runs")),
    }
}

async fn state(c: &mut Client, id: &str) -> pb::ContainerState {
    c.state(pb::StateRequest {
        id: id.to_owned(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("state {id}: {e:?}"))
    .into_inner()
    .container
    .expect("container")
}

async fn exec_echo(c: &mut Client, id: &str, text: &str) -> pb::ExecSyncResponse {
    c.exec_sync(pb::ExecSyncRequest {
        id: id.to_owned(),
        process: Some(pb::Process {
            args: vec!["echo".into(), text.into()],
            ..Default::default()
        }),
        timeout_seconds: 20,
    })
    .await
    .unwrap_or_else(|e| panic!("exec in {id}: {e:?}"))
    .into_inner()
}

async fn logs(c: &mut Client, id: &str) -> Vec<u8> {
    let mut stream = c
        .logs(pb::LogsRequest {
            id: id.to_owned(),
            ..Default::default()
        })
        .await
        .expect("logs")
        .into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.next().await {
        out.extend_from_slice(&m.expect("logs stream").chunk.expect("chunk").data);
    }
    out
}

async fn delete(c: &mut Client, id: &str, force: bool) {
    c.delete(pb::DeleteRequest {
        id: id.to_owned(),
        force,
    })
    .await
    .unwrap_or_else(|e| panic!("delete {id}: {e:?}"));
}
