//! The `many` section: 100 containers one after another and all at once, ours and the
//! peers'.

use std::time::{Duration, Instant};

use execdriver_tests::{pb, Client};

use super::api_phases;
use super::crun::run_timed;
use super::peers::{s, Env};
use super::report::{ms, Report, Row};

/// Run, Wait, Delete through the API.
async fn api_run_to_exit(c: &mut Client, req: pb::CreateRequest) -> Duration {
    api_phases(c, req).await.iter().sum()
}

pub(crate) async fn many(env: &mut Env, n: usize, report: &mut Report) {
    let c = env.daemon.client().await;
    let mut rows = Vec::new();
    // Ours, one after another and all at once.
    let t = Instant::now();
    let mut cc = c.clone();
    for _ in 0..n {
        api_run_to_exit(&mut cc, env.our_request(&["/bin/true"], true)).await;
    }
    let seq = t.elapsed();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut cc = c.clone();
        let req = env.our_request(&["/bin/true"], true);
        tasks.push(tokio::spawn(
            async move { api_run_to_exit(&mut cc, req).await },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let par = t.elapsed();
    let mut row = |name: &str, d: Duration| {
        let mut r = Row::new(format!("{name}: total"), "ms");
        r.samples.push(ms(d));
        rows.push(r);
        let mut r = Row::new(format!("{name}: per container"), "ms");
        r.samples.push(ms(d) / n as f64);
        rows.push(r);
    };
    row(&format!("execdriver gRPC, {n} in a row"), seq);
    row(&format!("execdriver gRPC, {n} at once"), par);
    let bundle = env.path("bundle-net");
    if env.runc {
        let argv = s(&[
            "runc",
            "--root",
            &env.path("runc-root"),
            "run",
            "-b",
            &bundle,
            "edb-many-{i}",
        ]);
        let (d, _) = run_timed("seq", n, &argv);
        row(&format!("runc run, {n} in a row"), d);
        let (d, _) = run_timed("par", n, &argv);
        row(&format!("runc run, {n} at once"), d);
    }
    let crun_root = env.path("crun-root");
    if let Some(r) = env.crun.as_mut() {
        let argv = s(&[
            "crun",
            "--root",
            &crun_root,
            "run",
            "-b",
            &bundle,
            "edb-many-{i}",
        ]);
        let (d, _) = r.time("seq", n, &argv);
        row(&format!("crun run, {n} in a row"), d);
        let (d, _) = r.time("par", n, &argv);
        row(&format!("crun run, {n} at once"), d);
    }
    report.table(
        &format!("{n} containers of /bin/true, one after another and all at once (with NEWNET)"),
        &rows,
        None,
    );
}
