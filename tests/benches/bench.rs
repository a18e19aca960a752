//! execdriver's benchmarks. `scripts/bench.sh` builds everything in release mode and runs this
//! (`cargo bench -p execdriver-tests --bench bench -- [NAME...]`).
//!
//! Each figure is measured in one run, side by side with its baseline, and reported as a
//! ratio. Benchmarks are not tests: nothing here asserts a speed.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use execdriver_tests::{pb, Daemon};
use tokio_stream::StreamExt;

const THROUGHPUT_BYTES: u64 = 1 << 30;
/// Writes THROUGHPUT_BYTES to stdout in 64 KiB writes (busybox, on the host and inside).
const PRODUCER: &str = "dd if=/dev/zero bs=64k count=16384 2>/dev/null";

/// Reads everything a command writes to stdout through a plain pipe; returns bytes per second.
fn host_pipe(rootfs: &std::path::Path) -> f64 {
    let start = Instant::now();
    let mut child = Command::new(rootfs.join("bin/busybox"))
        .args(["sh", "-c", PRODUCER])
        .stdout(Stdio::piped())
        .spawn()
        .expect("busybox head");
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
    total as f64 / start.elapsed().as_secs_f64()
}

/// Streams the same output from a container to an attached gRPC client; bytes per second.
async fn container_attach(d: &Daemon, c: &mut execdriver_tests::Client) -> f64 {
    let req = d.request(&["sh", "-c", PRODUCER]);
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
    total as f64 / secs
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn throughput(rounds: usize) -> Vec<Row> {
    let d = Daemon::start();
    let mut c = d.client().await;
    let (mut pipe, mut attach) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        pipe.push(host_pipe(&d.rootfs) / 1e6);
        attach.push(container_attach(&d, &mut c).await / 1e6);
    }
    let row = |name: &str, v: &mut Vec<f64>| Row {
        name: name.to_owned(),
        unit: "MB/s",
        median: median(v),
        min: v.iter().cloned().fold(f64::MAX, f64::min),
        max: v.iter().cloned().fold(f64::MIN, f64::max),
    };
    vec![
        row("stdout: host pipe (baseline)", &mut pipe),
        row("stdout: container -> attached gRPC client", &mut attach),
    ]
}

struct Row {
    name: String,
    unit: &'static str,
    median: f64,
    min: f64,
    max: f64,
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "| {:<45} | {:>10} | {:>10} | {:>10} | {:>8} |",
        "what", "median", "min", "max", "vs first"
    );
    println!(
        "|{:-<47}|{:->12}|{:->12}|{:->12}|{:->10}|",
        "", "", "", "", ""
    );
    let base = rows.first().map(|r| r.median).unwrap_or(1.0);
    for r in rows {
        println!(
            "| {:<45} | {:>10.1} | {:>10.1} | {:>10.1} | {:>7.2}x |",
            format!("{} ({})", r.name, r.unit),
            r.median,
            r.min,
            r.max,
            r.median / base
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if want("throughput") {
        let rows = rt.block_on(throughput(5));
        print_table(
            &format!(
                "stdout throughput, {} MiB per run, 5 runs",
                THROUGHPUT_BYTES >> 20
            ),
            &rows,
        );
    }
}
