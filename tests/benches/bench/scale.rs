//! The `scale` section: thousands of idle containers on one daemon. Levels 0, 1000 and 10000
//! by default (`BENCH_SCALE=0,1000` for others). Idle `sleep` containers are started one after
//! another through the API up to each level; at each level, once the host has settled (its
//! CPUs 85% idle over a second, at most a minute): the kernel's unreclaimable slab, a new
//! container's Run+Wait+Delete (API) and `execdriverctl run --rm` (the CLI a user types) in
//! turns, the kernel's lower bound and crun, List, State and Info, the
//! daemon's memory and descriptors, the shims' PSS, and that Events delivers each exit once.
//! At the top level the daemon is restarted (SIGTERM, start) and the time until List shows
//! every container again is taken; then every container is deleted (`delete -f`), each timed.
//!
//! 10,000 containers need about 20,000 pids (kernel.pid_max), 10,000 descriptors in the
//! daemon (it raises its soft limit to the hard limit) and, with the static shim, about
//! 1.1 GiB of shim memory plus the kernel's per-cgroup memory.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, pb, Client};
use tokio_stream::StreamExt;

use super::peers::{s, time_cmd, Env};
use super::report::{ms, Report, Row};
use super::{api_phases, SETTLE};

fn levels() -> Vec<usize> {
    std::env::var("BENCH_SCALE")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![0, 1000, 10_000])
}

/// The daemon's RSS (KiB) and open descriptors.
fn daemon_footprint(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as f64)
        .unwrap_or(f64::NAN);
    (rss, fds)
}

/// A shim's PSS, KiB.
fn pss(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> f64 {
    let t = Instant::now();
    f.await;
    ms(t.elapsed())
}

/// Waits (at most a minute) until the host's CPUs were at least 85% idle over a second;
/// returns the seconds waited and the last second's idle share.
async fn settle() -> (f64, f64) {
    fn idle_total() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // idle and iowait, of everything.
        Some((v.get(3)? + v.get(4)?, v.iter().sum()))
    }
    let t = Instant::now();
    let mut share = f64::NAN;
    while t.elapsed() < Duration::from_secs(60) {
        let Some((i0, t0)) = idle_total() else { break };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some((i1, t1)) = idle_total() else { break };
        share = (i1 - i0) as f64 / (t1 - t0).max(1) as f64;
        if share >= 0.85 {
            break;
        }
    }
    (t.elapsed().as_secs_f64(), share)
}

/// The kernel's unreclaimable slab (/proc/meminfo SUnreclaim), MiB.
fn unreclaimable_slab_mib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("SUnreclaim:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// How many exit events each id got on `events` within `wait`.
async fn exits_seen(
    events: &mut tonic::Streaming<pb::Event>,
    ids: &[String],
    wait: Duration,
) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = ids.iter().map(|id| (id.clone(), 0)).collect();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(ev))) = tokio::time::timeout_at(deadline, events.next()).await {
        if ev.r#type == pb::EventType::Exited as i32 && ev.exec_id.is_empty() {
            if let Some(n) = seen.get_mut(&ev.id) {
                *n += 1;
            }
        }
        if seen.values().all(|n| *n >= 1) && tokio::time::Instant::now() + SETTLE > deadline {
            break;
        }
    }
    seen
}

pub(crate) async fn scale(env: &mut Env, report: &mut Report) {
    let levels = levels();
    let top = levels.iter().copied().max().unwrap_or(0);
    let mut c = env.daemon.client().await;
    let ctl = bin("execdriverctl");
    let socket = env.daemon.socket.display().to_string();
    let rootfs = env.rootfs.display().to_string();
    let mut idle: Vec<String> = Vec::new();
    let mut idle_shims: Vec<u32> = Vec::new();
    let mut rows = Vec::new();
    let mut at: Vec<(usize, f64, f64, f64)> = Vec::new(); // level, api, cli, rss
                                                          // At each level: the lower bound as the API's and as the CLI's, crun (NaN without it).
    let mut bounds: Vec<(f64, f64, f64)> = Vec::new();
    let mut events = c
        .events(pb::EventsRequest::default())
        .await
        .expect("events")
        .into_inner();
    for &n in &levels {
        let from = idle.len();
        let mut grow = Row::new(format!("run -d of an idle container, {from} -> {n}"), "ms");
        while idle.len() < n {
            let req = env.our_request(&["sleep", "1000000"], false);
            let id = req.id.clone();
            let t = Instant::now();
            let st = c
                .run(req)
                .await
                .expect("run")
                .into_inner()
                .container
                .unwrap();
            grow.samples.push(ms(t.elapsed()));
            idle.push(id);
            idle_shims.push(st.shim_pid as u32);
        }
        if !grow.samples.is_empty() {
            rows.push(grow);
        }
        // Started one after another, 10,000 leave the kernel busy for a while (cgroup and
        // namespace work deferred to its workers): the figures at a level are those of a
        // host at rest with that many idle containers.
        let (waited, idle_share) = settle().await;
        report.line(&format!(
            "- at {n}: waited {waited:.1} s for the host to settle ({:.0}% idle over the last second)",
            idle_share * 100.0
        ));
        report.line(&format!(
            "- at {n}: kernel unreclaimable slab {:.0} MiB",
            unreclaimable_slab_mib()
        ));
        // A new container's whole life, through the API and through the CLI, in turns (a
        // drift of the host's moves both alike).
        let mut api = Row::new(format!("at {n}: gRPC Run+Wait+Delete of /bin/true"), "ms");
        let mut cli = Row::new(format!("at {n}: execdriverctl run --rm /bin/true"), "ms");
        let mut ran = Vec::new();
        // 30 CLI samples: a process start each, so ten medians moved by a quarter between runs.
        for round in 0..30 {
            if round < 20 {
                tokio::time::sleep(SETTLE).await;
                let req = env.our_request(&["/bin/true"], false);
                ran.push(req.id.clone());
                api.samples
                    .push(ms(api_phases(&mut c, req).await.iter().sum()));
            }
            tokio::time::sleep(SETTLE).await;
            let t = Instant::now();
            let ok = Command::new(&ctl)
                .args(["--socket", &socket, "run", "--rm", "--network", "none"])
                .args(["--rootfs", &rootfs, "--", "/bin/true"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "execdriverctl run --rm failed");
            cli.samples.push(ms(t.elapsed()));
        }
        // The kernel's own part at this level: the lower bound of the start table (namespaces,
        // fork, chroot, exec, exit), with the API probe's namespaces and with the CLI's.
        let mut lower = Row::new(
            format!("at {n}: unshare --fork ... chroot (lower bound, as the API's)"),
            "ms",
        );
        let mut lower_net = Row::new(
            format!("at {n}: unshare --fork ... --net chroot (lower bound, as the CLI's)"),
            "ms",
        );
        // And a peer that pivots as execdriver does (the lower bound only chroots).
        let mut crun = Row::new(format!("at {n}: crun run /bin/true (as the API's)"), "ms");
        let bundle = env.path("bundle-nonet");
        let crun_root = env.path("crun-root");
        for round in 0..10 {
            if let Some(r) = env.crun.as_mut() {
                tokio::time::sleep(SETTLE).await;
                let id = format!("edb-crun-scale-{n}-{round}");
                let argv = s(&["crun", "--root", &crun_root, "run", "-b", &bundle, &id]);
                if let (d, 0) = r.time("run", 1, &argv) {
                    crun.samples.push(ms(d));
                }
            }
            for (row, net) in [(&mut lower, false), (&mut lower_net, true)] {
                tokio::time::sleep(SETTLE).await;
                let mut argv = s(&["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc"]);
                if net {
                    argv.push("--net".into());
                }
                argv.extend(s(&["chroot", &rootfs, "/bin/true"]));
                if let Some(d) = time_cmd(&argv) {
                    row.samples.push(ms(d));
                }
            }
        }
        let seen = exits_seen(&mut events, &ran, Duration::from_secs(5)).await;
        let once = seen.values().filter(|n| **n == 1).count();
        report.line(&format!(
            "- at {n}: Events delivered the exit of {once} of {} containers exactly once",
            ran.len()
        ));
        let mut list = Row::new(format!("at {n}: List (API)"), "ms");
        let mut list_cli = Row::new(format!("at {n}: execdriverctl list"), "ms");
        let mut state = Row::new(format!("at {n}: State (API)"), "ms");
        let mut info = Row::new(format!("at {n}: Info (API)"), "ms");
        let probe = idle.get(idle.len() / 2).cloned();
        for _ in 0..10 {
            list.samples.push(
                timed(async {
                    let l = c.list(pb::ListRequest::default()).await.expect("list");
                    assert_eq!(l.into_inner().containers.len(), n);
                })
                .await,
            );
            info.samples
                .push(timed(async { c.info(pb::InfoRequest {}).await.expect("info") }).await);
            if let Some(id) = &probe {
                state.samples.push(
                    timed(async {
                        c.state(pb::StateRequest {
                            id: id.clone(),
                            ..Default::default()
                        })
                        .await
                        .expect("state")
                    })
                    .await,
                );
            }
        }
        for _ in 0..5 {
            let t = Instant::now();
            let _ = Command::new(&ctl)
                .args(["--socket", &socket, "list"])
                .stdout(Stdio::null())
                .status();
            list_cli.samples.push(ms(t.elapsed()));
        }
        let (rss, fds) = daemon_footprint(env.daemon.pid().expect("daemon"));
        let mut r = Row::new(format!("at {n}: daemon RSS"), "MiB");
        r.samples.push(rss / 1024.0);
        let mut f = Row::new(format!("at {n}: daemon open descriptors"), "count");
        f.samples.push(fds);
        let mut shim = Row::new(format!("at {n}: shim PSS (each idle shim)"), "KiB");
        shim.samples = idle_shims.iter().filter_map(|p| pss(*p)).collect();
        at.push((n, api.median(), cli.median(), rss));
        bounds.push((lower.median(), lower_net.median(), crun.median()));
        rows.extend([api, cli, lower, lower_net]);
        if !crun.samples.is_empty() {
            rows.push(crun);
        }
        rows.extend([list, list_cli, state, info, r, f]);
        if !shim.samples.is_empty() {
            rows.push(shim);
        }
    }
    // A restart re-adopts them all.
    let mut restart = Row::new(
        format!("at {top}: daemon restart until List shows all"),
        "ms",
    );
    env.daemon.stop_daemon(libc::SIGTERM);
    let t = Instant::now();
    env.daemon.spawn();
    let mut c2: Client = env.daemon.client().await;
    loop {
        let l = c2.list(pb::ListRequest::default()).await;
        if l.is_ok_and(|l| l.into_inner().containers.len() == idle.len()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    restart.samples.push(ms(t.elapsed()));
    rows.push(restart);
    let mut del = Row::new(format!("delete -f of an idle container, {top} -> 0"), "ms");
    for id in idle.drain(..) {
        let t = Instant::now();
        c2.delete(pb::DeleteRequest { id, force: true })
            .await
            .expect("delete");
        del.samples.push(ms(t.elapsed()));
    }
    rows.push(del);
    report.table(
        &format!(
            "Scale: idle containers on one daemon ({}), a new container at each level (100 ms apart)",
            levels
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" / ")
        ),
        &rows,
        None,
    );
    if let (Some(first), Some(last)) = (at.first(), at.last()) {
        if last.0 > first.0 {
            let per = (last.3 - first.3) / (last.0 - first.0) as f64;
            report.target(
                &format!(
                    "daemon memory per container, {} -> {} (KiB)",
                    first.0, last.0
                ),
                per,
                10.0,
                true,
            );
            report.target(
                &format!("gRPC start at {} / at {}", last.0, first.0),
                last.1 / first.1,
                1.2,
                true,
            );
            report.target(
                &format!("execdriverctl run --rm at {} / at {}", last.0, first.0),
                last.2 / first.2,
                1.2,
                true,
            );
            // How much of that growth is the kernel's own: the lower bound's at the same
            // levels, and what is above it (the part of the start that is execdriver's).
            if let (Some(b0), Some(b1)) = (bounds.first(), bounds.last()) {
                let (from, to) = (first.0, last.0);
                report.line(&format!(
                    "- the lower bound at {to} / at {from}: {:.2} (as the API's), {:.2} (as the CLI's, with NEWNET)",
                    b1.0 / b0.0,
                    b1.1 / b0.1
                ));
                if b0.2.is_finite() && b1.2.is_finite() {
                    report.line(&format!(
                        "- crun run at {to} / at {from}: {:.2} ({:.2} -> {:.2} ms; it pivots as execdriver does)",
                        b1.2 / b0.2,
                        b0.2,
                        b1.2
                    ));
                }
                report.line(&format!(
                    "- above the lower bound, at {to} / at {from}: gRPC {:.2} ({:.2} -> {:.2} ms), CLI {:.2} ({:.2} -> {:.2} ms)",
                    (last.1 - b1.0) / (first.1 - b0.0),
                    first.1 - b0.0,
                    last.1 - b1.0,
                    (last.2 - b1.1) / (first.2 - b0.1),
                    first.2 - b0.1,
                    last.2 - b1.1
                ));
            }
        }
    }
}
