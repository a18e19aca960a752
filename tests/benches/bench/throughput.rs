//! The `throughput` section: 1 GiB of stdout through a host pipe (the bound), to an
//! attached client, and to the log with nobody attached.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use execdriver_tests::{pb, Client};
use tokio_stream::StreamExt;

use super::api_phases;
use super::peers::Env;
use super::report::{Report, Row};

const THROUGHPUT_BYTES: u64 = 1 << 30;
/// Writes THROUGHPUT_BYTES to stdout in 64 KiB writes (busybox, on the host and inside).
const PRODUCER: &str = "dd if=/dev/zero bs=64k count=16384 2>/dev/null";

/// Reads everything a command writes to stdout through a plain pipe; returns MB/s.
fn host_pipe(rootfs: &Path) -> f64 {
    let start = Instant::now();
    let mut child = Command::new(rootfs.join("bin/busybox"))
        .args(["sh", "-c", PRODUCER])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    child.wait().unwrap();
    assert_eq!(total, THROUGHPUT_BYTES);
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// The same output from a container to an attached gRPC client; MB/s.
async fn container_attach(env: &Env, c: &mut Client) -> f64 {
    let req = env.our_request(&["sh", "-c", PRODUCER], true);
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let start_msg = pb::AttachStart {
        id: id.clone(),
        stdin: false,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Start(start_msg)),
    })
    .await
    .unwrap();
    let mut stream = c
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let start = Instant::now();
    c.start(pb::StartRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut total = 0u64;
    while let Some(msg) = stream.next().await {
        match msg.unwrap().kind {
            Some(pb::attach_response::Kind::Output(o)) => total += o.data.len() as u64,
            Some(pb::attach_response::Kind::Exit(_)) => break,
            None => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(tx);
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
    assert_eq!(total, THROUGHPUT_BYTES);
    total as f64 / secs / 1e6
}

/// The same output from a container with nobody attached: the shim writes it to the log only.
async fn container_log(env: &Env, c: &mut Client) -> f64 {
    let req = env.our_request(&["sh", "-c", PRODUCER], true);
    let start = Instant::now();
    let [_, _, _] = api_phases(c, req).await;
    THROUGHPUT_BYTES as f64 / start.elapsed().as_secs_f64() / 1e6
}

pub(crate) async fn throughput(env: &mut Env, rounds: usize, report: &mut Report) {
    let mut c = env.daemon.client().await;
    let mut pipe = Row::new("plain host pipe", "MB/s");
    let mut attach = Row::new(
        "container -> shim -> driver -> attached gRPC client (and the log)",
        "MB/s",
    );
    let mut log = Row::new("container -> shim -> log (nobody attached)", "MB/s");
    for _ in 0..rounds {
        pipe.samples.push(host_pipe(&env.rootfs));
        log.samples.push(container_log(env, &mut c).await);
        attach.samples.push(container_attach(env, &mut c).await);
    }
    let rows = vec![pipe, log, attach];
    report.table(
        &format!(
            "stdout throughput, {} MiB per run, {rounds} runs",
            THROUGHPUT_BYTES >> 20
        ),
        &rows,
        None,
    );
    report.target(
        "attached client / plain pipe",
        rows[2].median() / rows[0].median(),
        0.5,
        false,
    );
    report.charts.push((
        "stdout throughput, median MB/s — higher is better".into(),
        vec![
            ("plain host pipe".into(), rows[0].median()),
            ("execdriver, log only".into(), rows[1].median()),
            ("execdriver attach".into(), rows[2].median()),
        ],
        "MB/s",
    ));
}
