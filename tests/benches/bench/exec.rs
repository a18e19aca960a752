//! The `exec` section: latency of an exec of /bin/true into a running container, for us
//! and every peer.

use std::process::{Command, Stdio};
use std::time::Instant;

use execdriver_tests::{pb, Client};

use super::peers::{s, time_cmd, Env};
use super::report::{ms, Report, Row};
use super::{order, SETTLE};

/// Exec of /bin/true into container `id` and Wait for it, through the API; ms.
async fn api_exec(c: &mut Client, id: &str) -> f64 {
    let process = Some(pb::Process {
        args: s(&["/bin/true"]),
        ..Default::default()
    });
    let t = Instant::now();
    let p = c
        .exec(pb::ExecRequest {
            id: id.to_owned(),
            exec_id: String::new(),
            process,
            start: true,
        })
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap();
    c.wait(pb::WaitRequest {
        id: id.to_owned(),
        exec_id: p.exec_id,
    })
    .await
    .unwrap();
    ms(t.elapsed())
}

pub(crate) async fn exec_latency(env: &mut Env, rounds: usize, report: &mut Report) {
    let mut c = env.daemon.client().await;
    let names = ["execdriver: gRPC Exec+Wait", "runc exec", "crun exec"];
    let mut rows: Vec<Row> = names.iter().map(|n| Row::new(*n, "ms")).collect();
    let req = env.our_request(&["sleep", "100000"], true);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let runc_root = env.path("runc-root");
    let crun_root = env.path("crun-root");
    let sleep_bundle = env.path("bundle-sleep");
    if env.runc {
        let _ = Command::new("runc")
            .args([
                "--root",
                &runc_root,
                "run",
                "-d",
                "-b",
                &sleep_bundle,
                "edb-runc-idle",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    if let Some(r) = env.crun.as_mut() {
        r.time(
            "run",
            1,
            &s(&[
                "crun",
                "--root",
                &crun_root,
                "run",
                "-d",
                "-b",
                &sleep_bundle,
                "edb-crun-idle",
            ]),
        );
    }
    for round in 0..rounds {
        for peer in order(round, names.len()) {
            tokio::time::sleep(SETTLE).await;
            match peer {
                0 => rows[0].samples.push(api_exec(&mut c, &id).await),
                1 if env.runc => {
                    if let Some(d) = time_cmd(&s(&[
                        "runc",
                        "--root",
                        &runc_root,
                        "exec",
                        "edb-runc-idle",
                        "/bin/true",
                    ])) {
                        rows[1].samples.push(ms(d));
                    }
                }
                2 => {
                    if let Some(r) = env.crun.as_mut() {
                        let (d, failed) = r.time(
                            "run",
                            1,
                            &s(&[
                                "crun",
                                "--root",
                                &crun_root,
                                "exec",
                                "edb-crun-idle",
                                "/bin/true",
                            ]),
                        );
                        if failed == 0 {
                            rows[2].samples.push(ms(d));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
    if env.runc {
        let _ = Command::new("runc")
            .args(["--root", &runc_root, "delete", "-f", "edb-runc-idle"])
            .status();
    }
    if let Some(r) = env.crun.as_mut() {
        r.time(
            "run",
            1,
            &s(&[
                "crun",
                "--root",
                &crun_root,
                "delete",
                "-f",
                "edb-crun-idle",
            ]),
        );
    }
    report.table(
        &format!(
            "Exec of /bin/true into a running container ({rounds} rounds, shuffled, {} ms apart)",
            SETTLE.as_millis()
        ),
        &rows,
        Some(names[0]),
    );
    report.charts.push((
        "Exec latency, median ms — lower is better".into(),
        rows.iter()
            .filter(|r| !r.samples.is_empty())
            .map(|r| (r.name.clone(), r.median()))
            .collect(),
        "ms",
    ));
}
