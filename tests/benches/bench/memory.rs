//! The `memory` section: RSS and PSS (smaps_rollup) of each supervisor (our shim,
//! containerd's shim, conmon) and of the driver with 0 and 100 containers.

use std::process::{Command, Stdio};
use std::time::Duration;

use execdriver_tests::pb;

use super::peers::{time_cmd, Env};
use super::report::{Report, Row};

fn smaps(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (field("Rss:") / 1024.0, field("Pss:") / 1024.0)
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

pub(crate) async fn memory(env: &mut Env, report: &mut Report) {
    let mut c = env.daemon.client().await;
    let mut rows = Vec::new();
    let add = |name: &str, (rss, pss): (f64, f64), rows: &mut Vec<Row>| {
        let mut r = Row::new(format!("{name}: RSS"), "MiB");
        r.samples.push(rss);
        rows.push(r);
        let mut r = Row::new(format!("{name}: PSS"), "MiB");
        r.samples.push(pss);
        rows.push(r);
    };
    // Our shim, for an idle container.
    let req = env.our_request(&["sleep", "100000"], true);
    let id = req.id.clone();
    let st = c.run(req).await.unwrap().into_inner().container.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ours = smaps(st.shim_pid as u32);
    add("execdriver-shim (idle sleep container)", ours, &mut rows);
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
    // containerd's shim.
    let mut shim_v2 = (f64::NAN, f64::NAN);
    if let Some(ctrd) = &env.containerd {
        let argv = ctrd.ctr(&[
            "run",
            "-d",
            "--rootfs",
            env.rootfs.to_str().unwrap(),
            "edb-idle",
            "/bin/sleep",
            "100000",
        ]);
        if time_cmd(&argv).is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let out = Command::new(&argv[0])
                .args(&ctrd.ctr(&["task", "ls"])[1..])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let pid: Option<u32> = text
                .lines()
                .find(|l| l.starts_with("edb-idle"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
            if let Some(shim) = pid.and_then(ppid) {
                if let Ok(mut v) = ctrd.shims.lock() {
                    v.push(shim);
                }
                shim_v2 = smaps(shim);
                add(
                    "containerd-shim-runc-v2 (idle sleep container)",
                    shim_v2,
                    &mut rows,
                );
            }
        }
    }
    // conmon supervising runc.
    let mut conmon = (f64::NAN, f64::NAN);
    if env.conmon {
        let dir = env.tmp.path.join("conmon");
        std::fs::create_dir_all(dir.join("exits")).unwrap();
        std::fs::create_dir_all(dir.join("socks")).unwrap();
        let runc_root = env.path("runc-root");
        let bundle = env.path("bundle-sleep");
        let ok = Command::new("conmon")
            .args([
                "--api-version",
                "1",
                "-c",
                "edb-conmon",
                "-u",
                "edb-conmon",
                "-r",
            ])
            .arg(which("runc"))
            .args(["-b", &bundle, "-p"])
            .arg(dir.join("pid"))
            .args(["-n", "edb-conmon", "--exit-dir"])
            .arg(dir.join("exits"))
            .arg("--socket-dir-path")
            .arg(dir.join("socks"))
            .arg("-l")
            .arg(format!("k8s-file:{}", dir.join("log").display()))
            .args(["--log-level", "error", "--conmon-pidfile"])
            .arg(dir.join("conmon.pid"))
            .arg(format!("--runtime-arg=--root={runc_root}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            let _ = Command::new("runc")
                .args(["--root", &runc_root, "start", "edb-conmon"])
                .status();
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Some(pid) = std::fs::read_to_string(dir.join("conmon.pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                conmon = smaps(pid);
                add("conmon (idle sleep container, runc)", conmon, &mut rows);
            }
            let _ = Command::new("runc")
                .args(["--root", &runc_root, "delete", "-f", "edb-conmon"])
                .status();
        }
    }
    // The driver with 0 and 100 containers.
    let daemon_pid = env.daemon.pid().unwrap();
    add(
        "execdriverd with 0 containers",
        smaps(daemon_pid),
        &mut rows,
    );
    let mut ids = Vec::new();
    for _ in 0..100 {
        let req = env.our_request(&["sleep", "100000"], true);
        ids.push(req.id.clone());
        c.run(req).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    add(
        "execdriverd with 100 running containers",
        smaps(daemon_pid),
        &mut rows,
    );
    for id in ids {
        c.delete(pb::DeleteRequest { id, force: true })
            .await
            .unwrap();
    }
    report.table(
        "Memory per running container (the supervisor's footprint) and the driver's",
        &rows,
        None,
    );
    if shim_v2.0.is_finite() {
        report.target(
            "execdriver-shim RSS / containerd-shim-runc-v2 RSS",
            ours.0 / shim_v2.0,
            1.0 / 3.0,
            true,
        );
    }
    if conmon.0.is_finite() {
        report.target(
            "execdriver-shim RSS / conmon RSS",
            ours.0 / conmon.0,
            1.0,
            true,
        );
    }
    let mut bars = vec![("execdriver-shim".to_string(), ours.0)];
    if conmon.0.is_finite() {
        bars.push(("conmon".into(), conmon.0));
    }
    if shim_v2.0.is_finite() {
        bars.push(("containerd-shim-runc-v2".into(), shim_v2.0));
    }
    report.charts.push((
        "Supervisor RSS per idle container, MiB — lower is better".into(),
        bars,
        "MiB",
    ));
}

fn which(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
