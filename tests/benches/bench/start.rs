//! The `start` section: what the kernel charges for a cgroup migration, and start-to-exit
//! latency of a container for us and every peer (with and without a network namespace).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{unique, CgroupGuard};

use super::peers::{s, time_cmd, Env};
use super::report::{ms, Report, Row};
use super::{api_phases, order, SETTLE};

/// What the kernel charges for moving a process into a cgroup (the v1 cpu hierarchy), right
/// after another move and after SETTLE: the part of every start that no runtime here avoids.
pub(crate) fn migration_cost(rounds: usize, report: &mut Report) {
    let Some(cpu) = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
        .iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.procs").exists())
    else {
        return;
    };
    let parent = unique("edbench-mig");
    let _guard = CgroupGuard(parent.clone());
    let (a, b) = (cpu.join(&parent).join("a"), cpu.join(&parent).join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id().to_string();
    let mut warm = Row::new("move right after another move", "ms");
    let mut cold = Row::new(format!("move after {} ms idle", SETTLE.as_millis()), "ms");
    for i in 0..rounds {
        for (row, pause) in [(&mut cold, SETTLE), (&mut warm, Duration::ZERO)] {
            std::thread::sleep(pause);
            let to = if i % 2 == 0 { &a } else { &b };
            let t = Instant::now();
            std::fs::write(to.join("cgroup.procs"), &pid).unwrap();
            row.samples.push(ms(t.elapsed()));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    report.table(
        &format!(
            "The kernel: moving a process into a cgroup (v1 cpu, write to cgroup.procs), {rounds} rounds"
        ),
        &[warm, cold],
        None,
    );
}

pub(crate) async fn start_latency(env: &mut Env, rounds: usize, report: &mut Report) {
    let mut c = env.daemon.client().await;
    let ctl = execdriver_tests::bin("execdriverctl").display().to_string();
    let socket = env.daemon.socket.display().to_string();
    // After a pause (every start pays the kernel's grace period, as on a quiet host) and back
    // to back (as under a burst of starts).
    for (net, pause) in [
        (true, SETTLE),
        (false, SETTLE),
        (true, Duration::ZERO),
        (false, Duration::ZERO),
    ] {
        let tag = match (net, pause.is_zero()) {
            (true, false) => "with NEWNET".to_owned(),
            (false, false) => "without NEWNET".to_owned(),
            (true, true) => "with NEWNET, back to back".to_owned(),
            (false, true) => "without NEWNET, back to back".to_owned(),
        };
        let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
        let names = [
            "execdriver: gRPC Run+Wait+Delete",
            "execdriver: nsinit exec",
            "runc run",
            "crun run",
            "ctr run --rm (containerd+shim+runc)",
            "unshare --fork ... chroot (lower bound)",
            "execdriver: execdriverctl run --rm (the CLI)",
        ];
        for n in names {
            rows.insert(n, Row::new(n, "ms"));
        }
        let bundle = env.path(if net { "bundle-net" } else { "bundle-nonet" });
        let mut phases = [
            Row::new("execdriver: Run (create+start)", "ms"),
            Row::new("execdriver: Wait", "ms"),
            Row::new("execdriver: Delete", "ms"),
        ];
        let nsinit_dir = env.path(if net { "nsinit-net" } else { "nsinit-nonet" });
        let nsinit = execdriver_tests::bin("nsinit").display().to_string();
        for round in 0..rounds {
            // Peers in a shuffled order, each after the same pause (see SETTLE).
            for peer in order(round, names.len()) {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                let sample = match peer {
                    0 => {
                        let p = api_phases(&mut c, env.our_request(&["/bin/true"], net)).await;
                        for (row, d) in phases.iter_mut().zip(p) {
                            row.samples.push(ms(d));
                        }
                        Some(p.iter().sum())
                    }
                    1 => {
                        let mut cmd = Command::new(&nsinit);
                        cmd.args(["--root", &nsinit_dir, "exec", "/bin/true"])
                            .current_dir(&env.rootfs);
                        let t = Instant::now();
                        let ok = cmd
                            .stdout(Stdio::null())
                            .status()
                            .is_ok_and(|s| s.success());
                        ok.then(|| t.elapsed())
                    }
                    2 if env.runc => {
                        let id = format!("edb-runc-{round}");
                        time_cmd(&s(&[
                            "runc",
                            "--root",
                            &env.path("runc-root"),
                            "run",
                            "-b",
                            &bundle,
                            &id,
                        ]))
                    }
                    3 => env.crun.as_mut().and_then(|r| {
                        let id = format!("edb-crun-{round}");
                        let root = env.tmp.path.join("crun-root").display().to_string();
                        let (d, failed) = r.time(
                            "run",
                            1,
                            &s(&["crun", "--root", &root, "run", "-b", &bundle, &id]),
                        );
                        (failed == 0).then_some(d)
                    }),
                    4 => env.containerd.as_ref().and_then(|ctrd| {
                        let id = format!("edb-ctr-{round}");
                        // `--rootfs` is a switch: the rootfs path comes where an image would.
                        let mut args = vec!["run", "--rm"];
                        if !net {
                            args.push("--net-host");
                        }
                        args.extend([
                            "--rootfs",
                            env.rootfs.to_str().unwrap(),
                            id.as_str(),
                            "/bin/true",
                        ]);
                        time_cmd(&ctrd.ctr(&args))
                    }),
                    5 => {
                        let mut argv =
                            s(&["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc"]);
                        if net {
                            argv.push("--net".into());
                        }
                        argv.extend(s(&["chroot", env.rootfs.to_str().unwrap(), "/bin/true"]));
                        time_cmd(&argv)
                    }
                    6 => {
                        let network = if net { "none" } else { "host" };
                        time_cmd(&s(&[
                            &ctl,
                            "--socket",
                            &socket,
                            "run",
                            "--rm",
                            "--network",
                            network,
                            "--rootfs",
                            env.rootfs.to_str().unwrap(),
                            "--",
                            "/bin/true",
                        ]))
                    }
                    _ => None,
                };
                if let Some(d) = sample {
                    rows.get_mut(names[peer]).unwrap().samples.push(ms(d));
                }
            }
        }
        let rows: Vec<Row> = names.iter().map(|n| rows[n].clone()).collect();
        let spacing = if pause.is_zero() {
            "back to back".to_owned()
        } else {
            format!("{} ms apart", pause.as_millis())
        };
        report.table(
            &format!(
                "Start to exit of /bin/true, {tag} ({rounds} rounds, peers in a shuffled order, \
                 {spacing})"
            ),
            &rows,
            Some(names[0]),
        );
        report.table(
            &format!("execdriver's Run+Wait+Delete by call ({tag})"),
            &phases,
            None,
        );
        let api = rows[0].median();
        if !rows[3].samples.is_empty() {
            report.target(
                &format!("gRPC / crun run ({tag})"),
                api / rows[3].median(),
                1.0,
                true,
            );
        }
        report.target(
            &format!("gRPC / unshare lower bound ({tag})"),
            api / rows[5].median(),
            2.5,
            true,
        );
        if !rows[3].samples.is_empty() && !rows[6].samples.is_empty() {
            report.target(
                &format!("execdriverctl run --rm / crun run ({tag})"),
                rows[6].median() / rows[3].median(),
                1.0,
                true,
            );
        }
        if !rows[4].samples.is_empty() {
            report.target(
                &format!("containerd path / gRPC ({tag})"),
                rows[4].median() / api,
                5.0,
                false,
            );
        }
        if net && !pause.is_zero() {
            report.charts.push((
                format!("Start to exit of /bin/true ({tag}), median ms — lower is better"),
                rows.iter()
                    .filter(|r| !r.samples.is_empty())
                    .map(|r| (r.name.clone(), r.median()))
                    .collect(),
                "ms",
            ));
        }
    }
}
