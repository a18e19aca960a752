//! The `oci` section: execdriver as an OCI runtime (runc's command line, the binary
//! `execdriver-runc`) beside runc and crun: `RUNTIME run` of /bin/true on the same bundle, and
//! `docker run --rm` of /bin/true through a private dockerd with each runtime. Our rows are
//! left out (with the reason printed) when `execdriver-runc` is not built; the Docker table
//! when Debian's docker.io is not installed.

use std::process::Stdio;
use std::time::Instant;

use execdriver_tests::engines::{self, docker, Docker, Runtime};

use super::peers::{s, time_cmd, Env};
use super::report::{ms, Report, Row};
use super::{order, SETTLE};

pub(crate) fn oci(env: &mut Env, rounds: usize, report: &mut Report) {
    let ours = Runtime::execdriver();
    run_latency(env, ours.as_ref(), rounds, report);
    docker_latency(ours.as_ref(), rounds, report);
}

/// `RUNTIME --root R run -b BUNDLE ID` of /bin/true, with a network namespace.
fn run_latency(env: &mut Env, ours: Option<&Runtime>, rounds: usize, report: &mut Report) {
    if !env.runc {
        println!("oci: runc is missing; the runtime table is skipped");
        return;
    }
    let names = ["execdriver-runc run", "runc run", "crun run"];
    let mut rows: Vec<Row> = names.iter().map(|n| Row::new(*n, "ms")).collect();
    let bundle = env.path("bundle-net");
    for round in 0..rounds {
        for peer in order(round, names.len()) {
            std::thread::sleep(SETTLE);
            let sample = match peer {
                0 => ours.and_then(|rt| {
                    let root = env.path("execdriver-runc-root");
                    let id = format!("edb-oci-{round}");
                    time_cmd(&[
                        rt.path.display().to_string(),
                        "--root".into(),
                        root,
                        "run".into(),
                        "-b".into(),
                        bundle.clone(),
                        id,
                    ])
                }),
                1 => {
                    let id = format!("edb-oci-runc-{round}");
                    let root = env.path("runc-root");
                    time_cmd(&s(&["runc", "--root", &root, "run", "-b", &bundle, &id]))
                }
                2 => env.crun.as_mut().and_then(|r| {
                    let id = format!("edb-oci-crun-{round}");
                    let root = env.tmp.path.join("crun-root").display().to_string();
                    let (d, failed) = r.time(
                        "run",
                        1,
                        &s(&["crun", "--root", &root, "run", "-b", &bundle, &id]),
                    );
                    (failed == 0).then_some(d)
                }),
                _ => None,
            };
            if let Some(d) = sample {
                rows[peer].samples.push(ms(d));
            }
        }
    }
    let rows: Vec<Row> = rows.into_iter().filter(|r| !r.samples.is_empty()).collect();
    let base = ours.map(|_| names[0]);
    report.table(
        &format!(
            "OCI runtimes: `run` of /bin/true on one bundle ({rounds} rounds, shuffled, {} ms apart)",
            SETTLE.as_millis()
        ),
        &rows,
        base,
    );
}

/// `docker run --rm --runtime R IMAGE /bin/true` through one private dockerd.
fn docker_latency(ours: Option<&Runtime>, rounds: usize, report: &mut Report) {
    if engines::which("dockerd").is_none() {
        println!("oci: dockerd is missing (Debian's docker.io); the Docker table is skipped");
        return;
    }
    // Our runtime is registered as `edtest` when built; runc is dockerd's default `runc`.
    let registered = ours.cloned().unwrap_or_else(Runtime::runc);
    let d = Docker::start(&registered);
    let names = [
        "docker run --rm (execdriver-runc)",
        "docker run --rm (runc)",
    ];
    let mut rows: Vec<Row> = names.iter().map(|n| Row::new(*n, "ms")).collect();
    for round in 0..rounds {
        for peer in order(round, names.len()) {
            if peer == 0 && ours.is_none() {
                continue;
            }
            std::thread::sleep(SETTLE);
            let runtime = if peer == 0 { "edtest" } else { "runc" };
            let mut cmd = d.command();
            cmd.args([
                "run",
                "--rm",
                "--runtime",
                runtime,
                docker::IMAGE,
                "/bin/true",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            let t = Instant::now();
            if cmd.status().is_ok_and(|s| s.success()) {
                rows[peer].samples.push(ms(t.elapsed()));
            }
        }
    }
    drop(d);
    let rows: Vec<Row> = rows.into_iter().filter(|r| !r.samples.is_empty()).collect();
    report.table(
        &format!(
            "Docker: `docker run --rm` of /bin/true, private dockerd ({rounds} rounds, {} ms apart)",
            SETTLE.as_millis()
        ),
        &rows,
        ours.map(|_| names[0]),
    );
}
