//! Exec and ExecSync into a live container: the container's namespaces, cgroups and
//! exit codes, terminals (size, resize, stdin), output capture and timeouts, errors.

use std::time::{Duration, Instant};

use execdriver_tests::{attach_collect, attach_collect_exec, bin, pb, run, unique, Daemon};
use tonic::Code;

use super::{exec_collect, exec_req, state};

#[tokio::test]
async fn exec_shares_the_containers_world_and_returns_its_code() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["sleep", "1000"]);
    req.hostname = "inside".into();
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let init = state(&mut c, &id).await;
    let view = "hostname; ps -o pid,comm | grep -c sleep; \
                for n in mnt net uts ipc pid; do readlink /proc/1/ns/$n; done; \
                for n in mnt net uts ipc pid; do readlink /proc/self/ns/$n; done; \
                cat /proc/self/cgroup | sort; ip -o link | cut -d: -f2; exit 7";
    let out = exec_collect(&mut c, &id, &["sh", "-c", view]).await;
    assert_eq!(out.exit.exit_code, Some(7), "{}", out.stderr());
    let text = out.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "inside");
    assert_eq!(lines[1], "1", "ps inside shows the init's sleep: {text}");
    assert_eq!(
        lines[2..7],
        lines[7..12],
        "the exec is in the init's namespaces: {text}"
    );
    // Same cgroups as the init.
    let init_cgroup: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_to_string(format!("/proc/{}/cgroup", init.pid))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    for l in &init_cgroup {
        assert!(text.contains(l.as_str()), "exec lacks cgroup {l}: {text}");
    }
    assert!(text.contains(" lo"), "{text}");

    // Wait and State by exec id; the exec's exit stays readable.
    let req = exec_req(&id, &["sh", "-c", "exit 3"]);
    let exec_id = req.exec_id.clone();
    let mut req = req;
    req.start = true;
    c.exec(req).await.unwrap();
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            exec_id: exec_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert_eq!(exit.exit_code, Some(3));
    let st = c
        .state(pb::StateRequest {
            id: id.clone(),
            exec_id: exec_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let p = st.process.unwrap();
    assert_eq!(p.status, pb::Status::Stopped as i32);
    assert_eq!(p.exit.unwrap().exit_code, Some(3));
    // Unknown exec ids and a duplicate.
    let err = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            exec_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut dup = exec_req(&id, &["true"]);
    dup.exec_id = exec_id.clone();
    let err = c.exec(dup).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = c.exec(exec_req(&id, &["/no/such"])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // Kill an exec'd process by its id.
    let mut req = exec_req(&id, &["sleep", "100"]);
    req.start = true;
    let exec_id = req.exec_id.clone();
    c.exec(req).await.unwrap();
    c.kill(pb::KillRequest {
        id: id.clone(),
        signal: 9,
        all: false,
        exec_id: exec_id.clone(),
    })
    .await
    .unwrap();
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            exec_id,
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert_eq!(exit.signal, Some(9));
    assert_eq!(
        state(&mut c, &id).await.status,
        pb::Status::Running as i32,
        "the init lives on"
    );
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn exec_with_a_terminal_and_stdin() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let mut r = exec_req(&id, &["sh", "-c", "tty; stty size"]);
    let p = r.process.as_mut().unwrap();
    p.tty = true;
    p.console_size = Some(pb::ConsoleSize { rows: 20, cols: 60 });
    let exec_id = r.exec_id.clone();
    c.exec(r).await.unwrap();
    let out = attach_collect_exec(&mut c, &id, &exec_id, None, true).await;
    assert_eq!(out.stdout().replace('\r', ""), "/dev/pts/0\n20 60\n");
    let mut r = exec_req(&id, &["cat"]);
    r.process.as_mut().unwrap().open_stdin = true;
    let exec_id = r.exec_id.clone();
    c.exec(r).await.unwrap();
    let out = attach_collect_exec(&mut c, &id, &exec_id, Some(b"typed\n".to_vec()), true).await;
    assert_eq!(out.stdout(), "typed\n");
    assert_eq!(out.code(), 0);
    // The exec's output is in its own log.
    let logs = c
        .logs(pb::LogsRequest {
            id: id.clone(),
            exec_id: exec_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    use tokio_stream::StreamExt;
    let chunks: Vec<_> = logs.collect().await;
    let text: Vec<u8> = chunks
        .into_iter()
        .flat_map(|m| m.unwrap().chunk.unwrap().data)
        .collect();
    assert_eq!(text, b"typed\n");
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn exec_sync_captures_output_and_its_timeout_kills() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let process = |args: &[&str]| {
        Some(pb::Process {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    };
    let r = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: process(&["sh", "-c", "echo out; echo err >&2; exit 2"]),
            timeout_seconds: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    assert_eq!(r.exit.unwrap().exit_code, Some(2));
    assert!(!r.timed_out);
    let t = Instant::now();
    let r = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: process(&["sh", "-c", "echo started; exec sleep 100"]),
            timeout_seconds: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.timed_out);
    assert_eq!(r.stdout, b"started\n");
    assert_eq!(r.exit.unwrap().signal, Some(9));
    assert!(t.elapsed() < Duration::from_secs(10));
    let ps = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: process(&["ps", "-o", "comm"]),
            timeout_seconds: 5,
        })
        .await
        .unwrap()
        .into_inner();
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert_eq!(
        ps.matches("sleep").count(),
        1,
        "the timed-out sleep is gone: {ps}"
    );
    let err = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: process(&["true"]),
            timeout_seconds: 99_999,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("timeout_seconds"));
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn exec_errors() {
    let d = Daemon::start();
    let mut c = d.client().await;
    // A created (not started) container cannot be exec'd into, nor a stopped one.
    let req = d.request(&["true"]);
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let err = c.exec(exec_req(&id, &["true"])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    c.start(pb::StartRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.wait(pb::WaitRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let err = c.exec(exec_req(&id, &["true"])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let mut bad = exec_req(&id, &["true"]);
    bad.exec_id = "../x".into();
    let err = c.exec(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("exec_id"));
    let mut bad = exec_req(&id, &["true"]);
    bad.process = None;
    let err = c.exec(bad).await.unwrap_err();
    assert!(err.message().starts_with("process"), "{err:?}");
    let err = c
        .exec(exec_req("no-such-ctr", &["true"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
    let _ = run; // the harness's run() is for inits; execs use exec_collect
    let _ = attach_collect;
}

/// NEWCGROUP: the container sees its own cgroups as the root, and an exec'd process joins
/// that cgroup namespace too (not the host's).
#[tokio::test]
async fn exec_joins_the_cgroup_namespace() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["sleep", "1000"]);
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWCGROUP"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let script = "readlink /proc/1/ns/cgroup; readlink /proc/self/ns/cgroup; \
                  grep -E ':(memory|pids):' /proc/self/cgroup | cut -d: -f3";
    let out = exec_collect(&mut c, &id, &["sh", "-c", script]).await;
    assert_eq!(out.exit.exit_code, Some(0), "{}", out.stderr());
    let text = out.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], lines[1],
        "the exec is in the init's cgroup namespace: {text}"
    );
    let host = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    assert_ne!(lines[0], host.to_string_lossy(), "{text}");
    assert!(lines.len() >= 3, "{text}");
    for l in &lines[2..] {
        assert_eq!(*l, "/", "its own cgroup is its root: {text}");
    }
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

/// An exec'd process with its own terminal: its initial size is the one asked for, and
/// ResizePty with its exec id changes it (not the init's).
#[tokio::test]
async fn an_exec_terminal_has_its_size_and_resizes() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let go = unique("go");
    let script = format!("stty size; while [ ! -e /tmp/{go} ]; do sleep 0.05; done; stty size");
    let mut req = exec_req(&id, &["sh", "-c", &script]);
    let exec_id = req.exec_id.clone();
    let process = req.process.as_mut().unwrap();
    process.tty = true;
    process.console_size = Some(pb::ConsoleSize {
        rows: 30,
        cols: 100,
    });
    c.exec(req).await.unwrap();
    let mut c2 = c.clone();
    let (id2, exec2) = (id.clone(), exec_id.clone());
    let collector =
        tokio::spawn(async move { attach_collect_exec(&mut c2, &id2, &exec2, None, true).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.resize_pty(pb::ResizePtyRequest {
        id: id.clone(),
        size: Some(pb::ConsoleSize {
            rows: 50,
            cols: 132,
        }),
        exec_id: exec_id.clone(),
    })
    .await
    .unwrap();
    std::fs::write(d.rootfs.join("tmp").join(&go), "").unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), collector)
        .await
        .expect("the exec ends")
        .unwrap();
    assert_eq!(out.exit.exit_code, Some(0));
    assert_eq!(out.stdout().replace('\r', ""), "30 100\n50 132\n");
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

/// ExecSync's output is cut to fit its reply, never an OUT_OF_RANGE error: stdout and stderr
/// together up to 16 MiB less 64 KiB, `truncated` set; and the CLI takes replies that big.
#[tokio::test]
async fn exec_sync_output_is_truncated_to_fit_the_reply() {
    let d = Daemon::start();
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    let channel = execdriver_driver::server::connect(&d.socket).await.unwrap();
    let limit = execdriver_driver::server::MAX_MESSAGE;
    let mut c =
        pb::exec_driver_client::ExecDriverClient::new(channel).max_decoding_message_size(limit);
    c.run(req).await.unwrap();
    let sync = |script: &str| pb::ExecSyncRequest {
        id: id.clone(),
        process: Some(pb::Process {
            args: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }),
        timeout_seconds: 60,
    };
    let kept = limit - (64 << 10);
    for script in [
        "head -c 17000000 /dev/zero",
        "head -c 9000000 /dev/zero; head -c 9000000 /dev/zero >&2",
    ] {
        let r = c.exec_sync(sync(script)).await.unwrap().into_inner();
        assert!(r.truncated, "{script}");
        assert_eq!(r.stdout.len() + r.stderr.len(), kept, "{script}");
        assert_eq!(r.exit.unwrap().exit_code, Some(0), "{script}");
    }
    let r = c
        .exec_sync(sync("head -c 1000 /dev/zero"))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.truncated);
    assert_eq!(r.stdout.len(), 1000);

    // The CLI receives what the daemon sends (its default limit was 4 MiB).
    let out = std::process::Command::new(bin("execdriverctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args([
            "exec-sync",
            &id,
            "--",
            "sh",
            "-c",
            "head -c 6000000 /dev/zero",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), 6_000_000);
    let _ = c
        .delete(pb::DeleteRequest {
            id: id.clone(),
            force: true,
        })
        .await;
}
