//! execdriver's benchmarks, side by side with the peers a user would pick instead: runc, crun,
//! containerd (ctr + containerd-shim-runc-v2 + runc) and conmon, and the `unshare` lower bound.
//!
//! `scripts/bench.sh` installs the peers (Debian packages), builds everything in release mode
//! and runs this: `cargo bench -p execdriver-tests --bench bench -- [NAME...]` with NAME among
//! start, exec, many, memory, throughput, oci, scale (default: all). Every peer is measured in the same
//! run, alternating round by round, on the same busybox rootfs and the same namespaces. The
//! tables go to stdout and `bench-results.md`, the chart to `docs/src/bench.svg`.
//!
//! crun refuses hybrid cgroup hosts (a cgroup2 mount beside the v1 hierarchies), which these
//! machines are. It is run from a helper process (this binary with `--crun-runner`) in a
//! private mount namespace where /sys/fs/cgroup/unified is unmounted, so crun sees a v1 host;
//! the helper times each crun command itself.
//!
//! Benchmarks are not tests: nothing here asserts a speed.
//!
//! This file holds `main` (which sections run, the report's heading, where the results go)
//! and what the sections share: the pause before each sample, the order of the peers in a
//! round, and Run/Wait/Delete through the API, timed. The rest: `report` (rows, tables, the
//! chart), `crun` (the crun helper), `peers` (the peers' set-up: bundles, a private
//! containerd, the shared environment), and one module per section: `start`, `exec`,
//! `many`, `memory`, `throughput`, `oci` (execdriver-runc beside runc and crun, and under
//! `docker run`), `scale` (thousands of idle containers on one daemon).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use execdriver_tests::{pb, Client};

mod cri;
mod crun;
mod exec;
mod many;
mod memory;
mod oci;
mod peers;
mod report;
mod scale;
mod start;
mod throughput;

use cri::cri;
use crun::crun_runner;
use exec::exec_latency;
use many::many;
use memory::memory;
use oci::oci;
use peers::Env;
use report::{svg, Report};
use scale::scale;
use start::{migration_cost, start_latency};
use throughput::throughput;

/// The pause before each latency sample. Every runtime measured here moves a process into
/// cgroups (v1: a write to cgroup.procs), which takes the kernel's cgroup_threadgroup_rwsem
/// for writing; a grace period or two after the last such move the lock is back in its fast
/// mode, and the next move waits a full RCU grace period (6-8 ms on these machines, see the
/// kernel table). Run back to back, a peer would skip that wait when the one before it had
/// just paid it; after this pause every sample starts from the same quiet kernel, as when an
/// engine starts one container on an idle host.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);

/// The order of the peers in round `round`: a fixed shuffle per round (xorshift), so no peer
/// always follows the same other one.
fn order(round: usize, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (round as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// Run, Wait and Delete through the API, each timed.
async fn api_phases(c: &mut Client, req: pb::CreateRequest) -> [Duration; 3] {
    let id = req.id.clone();
    let t = Instant::now();
    c.run(req).await.expect("run");
    let run = t.elapsed();
    let t = Instant::now();
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("wait")
        .into_inner();
    let wait = t.elapsed();
    let t = Instant::now();
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .expect("delete");
    let delete = t.elapsed();
    assert_eq!(exit.exit.and_then(|e| e.exit_code), Some(0));
    [run, wait, delete]
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--crun-runner") {
        crun_runner();
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut env = Env::new();
    let mut report = Report {
        text: String::new(),
        charts: Vec::new(),
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    report.line(&format!(
        "# execdriver benchmarks\n\nKernel {}, {cpus} CPUs. Peers: {}.",
        kernel.trim(),
        ["runc", "crun", "containerd", "conmon"]
            .iter()
            .map(|p| {
                let v = Command::new(p).arg("--version").output().ok().map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned()
                });
                format!("{p} ({})", v.unwrap_or_else(|| "missing".into()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if want("start") {
        migration_cost(rounds, &mut report);
        rt.block_on(start_latency(&mut env, rounds, &mut report));
    }
    if want("exec") {
        rt.block_on(exec_latency(&mut env, rounds, &mut report));
    }
    if want("many") {
        rt.block_on(many(&mut env, 100, &mut report));
    }
    if want("memory") {
        rt.block_on(memory(&mut env, &mut report));
    }
    if want("throughput") {
        rt.block_on(throughput(&mut env, 5, &mut report));
    }
    if want("oci") {
        oci(&mut env, rounds, &mut report);
    }
    if want("cri") {
        rt.block_on(cri(rounds, &mut report));
    }
    if want("scale") {
        rt.block_on(scale(&mut env, &mut report));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::write(root.join("bench-results.md"), &report.text).unwrap();
    // The chart the book shows is redrawn only by a run of every section.
    if args.is_empty() && !report.charts.is_empty() {
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/src/bench.svg"), svg(&report.charts)).unwrap();
        println!("\nchart: docs/src/bench.svg; tables: bench-results.md");
    } else {
        println!("\ntables: bench-results.md (the chart is drawn by a run of every section)");
    }
    drop(env);
}
