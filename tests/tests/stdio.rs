//! Terminals, attach and logs: a container's stdio as an engine uses it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{
    attach_collect, bin, eventually, pb, run, Client, Daemon, TempDir, Terminal,
};
use tokio_stream::StreamExt;

#[test]
fn interactive_shell_under_a_terminal() {
    let d = Daemon::start();
    let (mut term, slave) = Terminal::open(30, 100);
    use nix::sys::termios::{tcgetattr, LocalFlags};
    let probe = slave.try_clone().unwrap();
    let modes = |fd: &std::os::fd::OwnedFd| {
        let t = tcgetattr(fd).unwrap();
        (
            t.input_flags,
            t.output_flags,
            t.local_flags,
            t.control_chars,
        )
    };
    let cooked = modes(&probe);
    assert!(cooked.2.contains(LocalFlags::ICANON | LocalFlags::ECHO));
    // setsid -c: a new session whose controlling terminal is the slave, as a user's shell has.
    let mut ctl = Command::new("setsid")
        .arg("-c")
        .arg(bin("execdriverctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["run", "-it", "--rm", "--rootfs"])
        .arg(&d.rootfs)
        .args(["--", "/bin/sh"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("execdriverctl");
    let mut at = term.expect(0, "# ");
    // Raw while the container has the terminal.
    let raw = modes(&probe).2;
    assert!(
        !raw.intersects(LocalFlags::ICANON | LocalFlags::ECHO),
        "{raw:?}"
    );
    term.send("echo hi\r");
    at = term.expect(at, "echo hi\nhi\n");
    term.send("stty size\r");
    at = term.expect(at, "30 100\n");
    term.resize(40, 120);
    std::thread::sleep(Duration::from_millis(300)); // SIGWINCH travels to the container
    term.send("stty size\r");
    at = term.expect(at, "40 120\n");
    term.send("sleep 100\r");
    std::thread::sleep(Duration::from_millis(300));
    term.send("\x03"); // Ctrl-C reaches the container's foreground process, not the shell
    at = term.expect(at, "^C");
    term.send("echo status $?\r");
    at = term.expect(at, "status 130\n");
    let _ = at;
    term.send("exit 7\r");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = ctl.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = ctl.kill();
            panic!("execdriverctl did not exit; terminal:\n{}", term.text());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(7), "{}", term.text());
    // The user's terminal is as it was.
    assert!(modes(&probe) == cooked, "the terminal was not restored");
}

#[tokio::test]
async fn tty_container_sees_its_terminal_and_initial_size() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["sh", "-c", "tty; stty size; ls -l /dev/console | cut -c1"]);
    let p = req.process.as_mut().unwrap();
    p.tty = true;
    p.console_size = Some(pb::ConsoleSize { rows: 33, cols: 77 });
    let out = run(&mut c, req).await;
    assert_eq!(out.stdout().replace('\r', ""), "/dev/pts/0\n33 77\nc\n");
    assert!(out.stderr.is_empty());
}

#[tokio::test]
async fn resize_pty_call_changes_the_size() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let sync = TempDir::new("edt-sync");
    let mut req = d.request(&[
        "sh",
        "-c",
        "stty size; while [ ! -e /sync/go ]; do sleep 0.05; done; stty size",
    ]);
    req.process.as_mut().unwrap().tty = true;
    req.mounts = vec![pb::Mount {
        source: sync.path.display().to_string(),
        destination: "/sync".into(),
        writable: true,
        private: false,
    }];
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let mut c2 = c.clone();
    let id2 = id.clone();
    let collector = tokio::spawn(async move { attach_collect(&mut c2, &id2, None, false).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.start(pb::StartRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    // Resize only once the first size is printed (and logged).
    let log = d.root.join(&id).join("log");
    eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("24 80"))
            .map(drop)
    })
    .await
    .expect("the first stty size");
    let size = Some(pb::ConsoleSize {
        rows: 50,
        cols: 132,
    });
    c.resize_pty(pb::ResizePtyRequest {
        id: id.clone(),
        size,
        ..Default::default()
    })
    .await
    .unwrap();
    std::fs::write(sync.path.join("go"), "").unwrap();
    let out = collector.await.unwrap();
    assert_eq!(out.stdout().replace('\r', ""), "24 80\n50 132\n");
    // Non-tty containers and bad sizes are refused.
    let err = c
        .resize_pty(pb::ResizePtyRequest {
            id: id.clone(),
            size: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
    let plain = d.request(&["sleep", "10"]);
    c.run(plain.clone()).await.unwrap();
    let size = Some(pb::ConsoleSize { rows: 10, cols: 10 });
    let err = c
        .resize_pty(pb::ResizePtyRequest {
            id: plain.id.clone(),
            size,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    c.delete(pb::DeleteRequest {
        id: plain.id,
        force: true,
    })
    .await
    .unwrap();
}

fn sha256(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Rebuilds a stream from the log files (oldest first) of a container.
fn reassemble_log(dir: &std::path::Path, stream: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for path in execdriver_driver::logs::log_files(dir, "log") {
        let data = std::fs::read(path).unwrap();
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let l = execdriver_spec::logline::parse_line(line).expect("a CRI log line");
            let s = if l.stream == execdriver_spec::protocol::Stream::Stderr {
                "stderr"
            } else {
                "stdout"
            };
            if s == stream {
                out.extend_from_slice(l.text);
                if l.full {
                    out.push(b'\n');
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn hundred_megabytes_arrive_intact_at_the_client_and_in_the_log() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&[
        "sh",
        "-c",
        "dd if=/dev/urandom of=/tmp/data bs=1M count=100 2>/dev/null; \
         sha256sum /tmp/data | cut -d' ' -f1 >&2; cat /tmp/data; rm /tmp/data",
    ]);
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.code(), 0);
    assert_eq!(out.stdout.len(), 100 << 20);
    let want = out.stderr().trim().to_owned();
    assert_eq!(
        want.len(),
        64,
        "stderr carries only the checksum: {:?}",
        out.stderr()
    );
    assert_eq!(
        sha256(&out.stdout),
        want,
        "the attached client got different bytes"
    );
    let dir = d.root.join(&id);
    assert_eq!(
        sha256(&reassemble_log(&dir, "stdout")),
        want,
        "the log holds different bytes"
    );
    assert_eq!(
        reassemble_log(&dir, "stderr"),
        format!("{want}\n").into_bytes()
    );
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

async fn logs(
    c: &mut Client,
    id: &str,
    since: Option<prost_types::Timestamp>,
    follow: bool,
) -> (String, String) {
    let req = pb::LogsRequest {
        id: id.to_owned(),
        since,
        follow,
        stdout: false,
        stderr: false,
        ..Default::default()
    };
    let mut stream = c.logs(req).await.unwrap().into_inner();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(msg) = stream.next().await {
        let chunk = msg.unwrap().chunk.unwrap();
        if chunk.stream == pb::Stream::Stderr as i32 {
            err.extend(chunk.data);
        } else {
            out.extend(chunk.data);
        }
    }
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[tokio::test]
async fn output_before_attach_is_in_the_log_and_late_clients_get_the_live_stream() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let sync = TempDir::new("edt-sync");
    let mut req = d.request(&[
        "sh",
        "-c",
        "echo early; echo early-err >&2; while [ ! -e /sync/go ]; do sleep 0.05; done; echo late",
    ]);
    req.mounts = vec![pb::Mount {
        source: sync.path.display().to_string(),
        destination: "/sync".into(),
        writable: true,
        private: false,
    }];
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let log = d.root.join(&id).join("log");
    eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("early-err"))
            .map(drop)
    })
    .await
    .expect("early output reaches the log with nobody attached");
    // Two clients attach late; both get the live output from then on, not the past.
    let (mut c1, mut c2) = (c.clone(), c.clone());
    let (id1, id2) = (id.clone(), id.clone());
    let a = tokio::spawn(async move { attach_collect(&mut c1, &id1, None, false).await });
    let b = tokio::spawn(async move { attach_collect(&mut c2, &id2, None, false).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(sync.path.join("go"), "").unwrap();
    for out in [a.await.unwrap(), b.await.unwrap()] {
        assert_eq!(out.stdout(), "late\n");
        assert_eq!(out.code(), 0);
    }
    // The log has it all; Logs reads it back, and `since` cuts the early part.
    let (out, err) = logs(&mut c, &id, None, false).await;
    assert_eq!(out, "early\nlate\n");
    assert_eq!(err, "early-err\n");
    let text = std::fs::read_to_string(&log).unwrap();
    let late_line = text.lines().find(|l| l.ends_with(" late")).unwrap();
    let ns = execdriver_spec::logline::parse_rfc3339(late_line.split(' ').next().unwrap()).unwrap();
    let since = Some(prost_types::Timestamp {
        seconds: ns / 1_000_000_000,
        nanos: (ns % 1_000_000_000) as i32,
    });
    let (out, err) = logs(&mut c, &id, since, false).await;
    assert_eq!((out.as_str(), err.as_str()), ("late\n", ""));
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

#[tokio::test]
async fn logs_follow_until_the_container_ends() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done; printf tail",
    ]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let (out, _) = tokio::time::timeout(Duration::from_secs(20), logs(&mut c, &id, None, true))
        .await
        .unwrap();
    assert_eq!(out, "line 1\nline 2\nline 3\nline 4\nline 5\ntail");
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_disconnecting_client_does_not_stop_the_container_and_close_stdin_ends_cat() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["cat"]);
    req.process.as_mut().unwrap().open_stdin = true;
    let id = req.id.clone();
    c.run(req).await.unwrap();
    // A client attaches, sends a line, and goes away mid-stream.
    {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let start = pb::AttachStart {
            id: id.clone(),
            stdin: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        tx.send(pb::AttachRequest {
            kind: Some(pb::attach_request::Kind::Start(start)),
        })
        .await
        .unwrap();
        tx.send(pb::AttachRequest {
            kind: Some(pb::attach_request::Kind::Stdin(b"one\n".to_vec())),
        })
        .await
        .unwrap();
        let mut stream = c
            .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let first = stream.next().await.unwrap().unwrap();
        match first.kind {
            Some(pb::attach_response::Kind::Output(o)) => assert_eq!(&o.data[..], b"one\n"),
            other => panic!("{other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let st = c
        .state(pb::StateRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap();
    assert_eq!(
        st.status,
        pb::Status::Running as i32,
        "the container must outlive its client"
    );
    // CloseStdin as a plain call: cat sees EOF and exits 0.
    c.close_stdin(pb::CloseStdinRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert_eq!(exit.exit_code, Some(0));
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

#[tokio::test]
async fn log_rotation_keeps_at_most_the_configured_size_and_files() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done",
    ]);
    req.log = Some(pb::LogConfig {
        max_size: 8192,
        max_files: 3,
    });
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.code(), 0);
    let dir = d.root.join(&id);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n == "log" || n.starts_with("log."))
        .collect();
    names.sort();
    assert_eq!(names, vec!["log", "log.1", "log.2"]);
    for n in &names {
        assert!(
            std::fs::metadata(dir.join(n)).unwrap().len() <= 8192,
            "{n} is too big"
        );
    }
    // What is kept is the newest output, in order.
    let kept = String::from_utf8(reassemble_log(&dir, "stdout")).unwrap();
    assert!(kept.ends_with("line 1999\n"));
    assert!(out.stdout().ends_with(&kept));
    // ReopenLog after an external move starts a new file.
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
    let mut req = d.request(&[
        "sh",
        "-c",
        "echo before; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo after",
    ]);
    req.log = None;
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let dir = d.root.join(&id);
    eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(dir.join("log"))
            .ok()
            .filter(|t| t.contains("before"))
    })
    .await
    .unwrap();
    std::fs::rename(dir.join("log"), dir.join("moved")).unwrap();
    c.reopen_log(pb::ReopenLogRequest { id: id.clone() })
        .await
        .unwrap();
    std::fs::write(d.rootfs.join("tmp/go"), "").unwrap();
    c.wait(pb::WaitRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(std::fs::read_to_string(dir.join("moved"))
        .unwrap()
        .contains(" before"));
    let new = std::fs::read_to_string(dir.join("log")).unwrap();
    assert!(new.contains(" after") && !new.contains("before"), "{new}");
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

/// The slow-client policy: a client that reads nothing holds the container back only until
/// the shim gives up on it (STALL_LIMIT); then the container runs on, the reading client and
/// the log get every byte, and the stuck client's stream ends without an exit.
#[tokio::test]
async fn a_stuck_client_is_dropped_and_the_others_get_everything() {
    const BYTES: usize = 64 << 20;
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&[
        "sh",
        "-c",
        "dd if=/dev/zero bs=64k count=1024 2>/dev/null; echo done >&2",
    ]);
    let id = req.id.clone();
    c.create(req).await.unwrap();
    // The stuck client: its own connection, attached, never read until the end.
    let mut stuck_client = d.client().await;
    let (stuck_tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(1);
    stuck_tx
        .send(pb::AttachRequest {
            kind: Some(pb::attach_request::Kind::Start(pb::AttachStart {
                id: id.clone(),
                stdout: true,
                stderr: true,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
    let mut stuck = stuck_client
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let t = Instant::now();
    let out = attach_collect(&mut c, &id, None, true).await;
    let took = t.elapsed();
    assert_eq!(out.code(), 0);
    assert_eq!(out.stdout.len(), BYTES);
    assert!(out.stdout.iter().all(|b| *b == 0));
    assert_eq!(out.stderr(), "done\n");
    assert!(
        took >= execdriver_spec::limits::STALL_LIMIT,
        "the stuck client did not hold the container back at all ({took:?}): the test \
         would not show the policy"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    let shim_log = std::fs::read_to_string(d.root.join(&id).join("shim.log")).unwrap();
    assert!(shim_log.contains("disconnecting a client"), "{shim_log}");
    // What the stuck client had been sent before it was dropped, then RESOURCE_EXHAUSTED,
    // and no exit.
    let mut got = 0usize;
    let mut exit = false;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), stuck.next()).await {
            Ok(Some(Ok(msg))) => match msg.kind {
                Some(pb::attach_response::Kind::Output(o)) => got += o.data.len(),
                Some(pb::attach_response::Kind::Exit(_)) => exit = true,
                None => {}
            },
            Ok(Some(Err(status))) => break Some(status),
            Ok(None) | Err(_) => break None,
        }
    };
    assert!(
        !exit && got < BYTES,
        "the stuck client got {got} bytes, exit {exit}"
    );
    let end = end.expect("the stuck client's stream ends with a status");
    assert_eq!(end.code(), tonic::Code::ResourceExhausted, "{end:?}");
    assert!(end.message().contains("read nothing"), "{end:?}");
    drop(stuck_tx);
    let dir = d.root.join(&id);
    assert_eq!(reassemble_log(&dir, "stdout").len(), BYTES);
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}
