//! The backbone: create, start, wait, kill, state, list, delete of real containers, and what
//! a process inside sees.

use std::time::{Duration, Instant};

use execdriver_tests::{
    attach_collect, host_mounts_under, parse_status, pb, run, unique, Daemon, TempDir,
};
use tonic::Code;

#[tokio::test]
async fn inside_view_hostname_pid1_ps_and_rootfs() {
    let d = Daemon::start();
    let mut c = d.client().await;
    std::fs::write(d.rootfs.join("marker"), "in-rootfs").unwrap();
    let mut req = d.request(&[
        "sh",
        "-c",
        "hostname; echo pid=$$; ps -o pid,comm | tail -n +2 | wc -l; cat /marker; echo; cat /proc/self/mountinfo",
    ]);
    req.hostname = "koye".into();
    let out = run(&mut c, req).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let text = out.stdout();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("koye"));
    assert_eq!(lines.next(), Some("pid=1"));
    // sh, ps, tail, wc: a handful of processes, none of the host's.
    let procs: usize = lines.next().unwrap().trim().parse().unwrap();
    assert!(procs <= 5, "ps saw {procs} processes");
    assert_eq!(lines.next(), Some("in-rootfs"));
    // The host's own mount points (e.g. /work, the rootfs path itself) are not visible.
    let mountinfo: Vec<&str> = lines.collect();
    let points: Vec<&str> = mountinfo
        .iter()
        .filter_map(|l| l.split(' ').nth(4))
        .collect();
    assert!(points.contains(&"/"), "{mountinfo:?}");
    // Besides the masked and read-only paths (see tests/tests/security/filesystem.rs).
    use execdriver_spec::security::{DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};
    for p in &points {
        assert!(
            [
                "/",
                "/proc",
                "/sys",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue"
            ]
            .contains(p)
                || DEFAULT_MASKED_PATHS.contains(p)
                || DEFAULT_READONLY_PATHS.contains(p),
            "unexpected mount {p} in {mountinfo:?}"
        );
    }
}

#[tokio::test]
async fn env_cwd_and_user_are_as_asked() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["sh", "-c", "echo $FOO; pwd; id -u; id -g"]);
    let p = req.process.as_mut().unwrap();
    p.env = vec!["FOO=bar baz".into()];
    p.cwd = "/tmp".into();
    p.user = "1000:1001".into();
    let out = run(&mut c, req).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert_eq!(out.stdout(), "bar baz\n/tmp\n1000\n1001\n");
}

#[tokio::test]
async fn bind_mounts_read_only_and_writable() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let ro = TempDir::new("edt-ro");
    let rw = TempDir::new("edt-rw");
    let mut req = d.request(&[
        "sh",
        "-c",
        "touch /ro/x 2>&1; echo ro=$?; echo hello > /rw/file; echo rw=$?",
    ]);
    req.mounts = vec![
        pb::Mount {
            source: ro.path.display().to_string(),
            destination: "/ro".into(),
            writable: false,
            private: false,
        },
        pb::Mount {
            source: rw.path.display().to_string(),
            destination: "/rw".into(),
            writable: true,
            private: true,
        },
    ];
    let out = run(&mut c, req).await;
    let text = out.stdout();
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(text.contains("ro=1"), "{text}");
    assert!(text.contains("rw=0"), "{text}");
    assert_eq!(
        std::fs::read_to_string(rw.path.join("file")).unwrap(),
        "hello\n"
    );
    assert!(!ro.path.join("x").exists());
}

#[tokio::test]
async fn dropped_capability_is_gone() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["cat", "/proc/self/status"]);
    req.capabilities_mask = vec!["NET_RAW".into(), "SYS_ADMIN".into()];
    let out = run(&mut c, req).await;
    let status = parse_status(&out.stdout());
    for set in ["CapEff", "CapBnd", "CapPrm"] {
        let mask = u64::from_str_radix(&status[set], 16).unwrap();
        assert_eq!(mask & (1 << 13), 0, "{set} still has NET_RAW: {mask:x}");
        assert_eq!(mask & (1 << 21), 0, "{set} still has SYS_ADMIN: {mask:x}");
        if set == "CapBnd" {
            assert_ne!(mask & (1 << 0), 0, "CHOWN should remain in {set}");
        }
    }
}

#[tokio::test]
async fn exit_codes_and_signals() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let out = run(&mut c, d.request(&["sh", "-c", "exit 3"])).await;
    assert_eq!(out.exit.exit_code, Some(3));
    assert_eq!(out.exit.signal, None);

    let req = d.request(&["sleep", "100"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    c.kill(pb::KillRequest {
        id: id.clone(),
        signal: 9,
        all: false,
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
    assert_eq!(exit.signal, Some(9));
    assert_eq!(exit.exit_code, None);
    assert_eq!(exit.status_code, 137);
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
    assert_eq!(st.status, pb::Status::Stopped as i32);
    assert_eq!(st.exit.unwrap().signal, Some(9));
    assert!(st.finished_at.is_some());
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

#[tokio::test]
async fn wait_returns_at_once_when_done_and_blocks_while_running() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sh", "-c", "sleep 1; exit 5"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let t = Instant::now();
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
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "Wait returned before the container ended"
    );
    assert_eq!(exit.exit_code, Some(5));
    let t = Instant::now();
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
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(exit.exit_code, Some(5));
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

#[tokio::test]
async fn create_then_start() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sh", "-c", "touch /tmp/ran; echo started; sleep 100"]);
    let id = req.id.clone();
    let st = c.create(req).await.unwrap().into_inner().container.unwrap();
    assert_eq!(st.status, pb::Status::Created as i32);
    assert!(st.pid > 0);
    let pid_file = d.root.join(&id).join("pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        st.pid.to_string()
    );
    // The init exists, in its own namespaces, but has not run the command.
    let host_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let init_ns = std::fs::read_link(format!("/proc/{}/ns/pid", st.pid)).unwrap();
    assert_ne!(host_ns, init_ns);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !d.rootfs.join("tmp/ran").exists(),
        "the command ran before Start"
    );
    // Its cgroup holds it already.
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", st.pid)).unwrap();
    assert!(cg.contains(&format!("/{}/{id}", d.cgroup_parent)), "{cg}");

    let mut c2 = c.clone();
    let out = attach_collect(&mut c2, &id, None, false);
    let start = c.start(pb::StartRequest {
        id: id.clone(),
        ..Default::default()
    });
    let (out, started) = tokio::join!(tokio::time::timeout(Duration::from_secs(2), out), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        start.await
    });
    assert!(out.is_err(), "sleep 100 should still run");
    let st = started.unwrap().into_inner().container.unwrap();
    assert_eq!(st.status, pb::Status::Running as i32);
    assert!(st.started_at.is_some());
    assert!(d.rootfs.join("tmp/ran").exists());
    // Start twice is refused.
    let err = c
        .start(pb::StartRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // Delete of a running container is refused unless forced.
    let err = c
        .delete(pb::DeleteRequest {
            id: id.clone(),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("running"), "{}", err.message());
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: true,
    })
    .await
    .unwrap();
    assert!(!d.root.join(&id).exists(), "state directory left behind");
    assert!(
        host_mounts_under(&d.rootfs).is_empty(),
        "{:?}",
        host_mounts_under(&d.rootfs)
    );
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
    assert!(!std::path::Path::new(&format!("/proc/{}", st.pid)).exists());
    let err = c
        .state(pb::StateRequest {
            id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn list_and_labels() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut a = d.request(&["sleep", "100"]);
    a.labels.insert("app".into(), "web".into());
    let mut b = d.request(&["true"]);
    b.labels.insert("app".into(), "db".into());
    c.run(a.clone()).await.unwrap();
    c.create(b.clone()).await.unwrap();
    let all = c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(
        all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![a.id.as_str(), b.id.as_str()]
    );
    assert_eq!(all[0].status, pb::Status::Running as i32);
    assert_eq!(all[1].status, pb::Status::Created as i32);
    let mut filter = std::collections::HashMap::new();
    filter.insert("app".to_string(), "db".to_string());
    let some = c
        .list(pb::ListRequest {
            label_filter: filter,
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].id, b.id);
    assert_eq!(some[0].labels["app"], "db");
    for id in [a.id, b.id] {
        c.delete(pb::DeleteRequest { id, force: true })
            .await
            .unwrap();
    }
    assert!(c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers
        .is_empty());
}

#[tokio::test]
async fn output_separates_stdout_and_stderr_and_stdin_reaches_cat() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["sh", "-c", "cat; echo to-err >&2"]);
    req.process.as_mut().unwrap().open_stdin = true;
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let out = attach_collect(&mut c, &id, Some(b"from stdin\n".to_vec()), true).await;
    assert_eq!(out.stdout(), "from stdin\n");
    assert_eq!(out.stderr(), "to-err\n");
    assert_eq!(out.code(), 0);
    // Everything is in the log too.
    let log = std::fs::read_to_string(d.root.join(&id).join("log")).unwrap();
    assert!(log.contains(" stdout F from stdin\n"), "{log}");
    assert!(log.contains(" stderr F to-err\n"), "{log}");
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

#[tokio::test]
async fn failed_creates_leave_nothing_behind() {
    let d = Daemon::start();
    let mut c = d.client().await;
    // A binary the rootfs does not have.
    let err = c.create(d.request(&["/no/such/binary"])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("/no/such/binary"),
        "{}",
        err.message()
    );
    // A working directory that cannot be made (one that is only missing is made, as Docker
    // does): under a regular file.
    let mut req = d.request(&["true"]);
    req.process.as_mut().unwrap().cwd = "/etc/passwd/sub".into();
    let err = c.create(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("/etc/passwd/sub"),
        "{}",
        err.message()
    );
    // A bind mount the shim cannot make: its destination lies under a regular file.
    let src = TempDir::new("edt-badmnt");
    let mut req = d.request(&["true"]);
    req.mounts = vec![pb::Mount {
        source: src.path.display().to_string(),
        destination: "/bin/busybox/inside".into(),
        writable: true,
        private: false,
    }];
    let err = c.create(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("mounts[0].destination"),
        "{}",
        err.message()
    );
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
    assert!(host_mounts_under(&d.rootfs).is_empty());
    assert!(host_mounts_under(&src.path).is_empty());
    // No shim or container process is left (none has its cwd in the daemon's root).
    let left: Vec<_> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_link(e.path().join("cwd"))
                .is_ok_and(|cwd| cwd.starts_with(&d.root) && !execdriver_tests::is_pool(&cwd))
        })
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "processes left: {left:?}");
    // The daemon still works.
    let out = run(&mut c, d.request(&["echo", "ok"])).await;
    assert_eq!(out.stdout(), "ok\n");
}

#[tokio::test]
async fn bad_input_gets_the_right_code_and_names_the_field() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let base = d.request(&["true"]);
    type Case = (
        &'static str,
        Box<dyn Fn(&mut pb::CreateRequest)>,
        Code,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "empty id",
            Box::new(|r| r.id = String::new()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "dotdot id",
            Box::new(|r| r.id = "../x".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "long id",
            Box::new(|r| r.id = "x".repeat(200)),
            Code::InvalidArgument,
            "id",
        ),
        (
            "missing rootfs",
            Box::new(|r| r.rootfs = "/no/such/rootfs".into()),
            Code::InvalidArgument,
            "rootfs",
        ),
        (
            "relative rootfs",
            Box::new(|r| r.rootfs = "rootfs".into()),
            Code::InvalidArgument,
            "rootfs",
        ),
        (
            "relative cwd",
            Box::new(|r| r.process.as_mut().unwrap().cwd = "tmp".into()),
            Code::InvalidArgument,
            "process.cwd",
        ),
        (
            "relative mount",
            Box::new(|r| {
                r.mounts = vec![pb::Mount {
                    source: "tmp".into(),
                    destination: "/x".into(),
                    ..Default::default()
                }]
            }),
            Code::InvalidArgument,
            "mounts[0].source",
        ),
        (
            "unknown namespace",
            Box::new(|r| r.namespaces = vec!["NEWNS".into(), "NEWFOO".into()]),
            Code::InvalidArgument,
            "namespaces[1]",
        ),
        (
            "unknown capability",
            Box::new(|r| r.capabilities_mask = vec!["SYS_BOGUS".into()]),
            Code::InvalidArgument,
            "capabilities_mask[0]",
        ),
        (
            "empty args",
            Box::new(|r| r.process.as_mut().unwrap().args.clear()),
            Code::InvalidArgument,
            "process.args",
        ),
        (
            "no process",
            Box::new(|r| r.process = None),
            Code::InvalidArgument,
            "process",
        ),
        (
            "bad user",
            Box::new(|r| r.process.as_mut().unwrap().user = "root".into()),
            Code::InvalidArgument,
            "process.user",
        ),
    ];
    for (name, mutate, code, field) in cases {
        let mut r = base.clone();
        r.id = unique("bad");
        mutate(&mut r);
        let err = c.create(r).await.unwrap_err();
        assert_eq!(err.code(), code, "{name}: {err:?}");
        assert!(
            err.message().starts_with(&format!("{field}:")),
            "{name}: message {:?} should name {field}",
            err.message()
        );
    }
    // A duplicate id.
    let req = d.request(&["sleep", "100"]);
    c.create(req.clone()).await.unwrap();
    let err = c.create(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&req.id));
    // Unknown ids.
    for err in [
        c.state(pb::StateRequest {
            id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        c.start(pb::StartRequest {
            id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        c.delete(pb::DeleteRequest {
            id: "nope".into(),
            force: true,
        })
        .await
        .unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
    }
    let err = c
        .state(pb::StateRequest {
            id: "../etc".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    c.delete(pb::DeleteRequest {
        id: req.id,
        force: true,
    })
    .await
    .unwrap();
    // Nothing was left behind by the failures.
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

/// Host mounts a test made, unmounted (last first) when it ends, also on failure.
struct Unmount(Vec<std::path::PathBuf>);

impl Drop for Unmount {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(p)
                .status();
        }
    }
}

fn host_sh(script: &str) {
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mount propagation: the container's tree is private (what the host mounts under the rootfs
/// after the start does not appear inside; what the container mounts never reaches the host);
/// a bind mount with `private: false` stays a slave of its source (the host's later mounts
/// under it appear inside), one with `private: true` does not.
#[tokio::test]
async fn mount_propagation_is_private_and_private_is_honoured() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let src = TempDir::new("edt-prop");
    let (s, r) = (src.path.display(), d.rootfs.display());
    let mut mounted = Unmount(Vec::new());
    // This host's / is private: shared mounts of the test's own to propagate from.
    host_sh(&format!(
        "mount -t tmpfs edt-prop {s} && mount --make-shared {s} && mkdir {s}/sub"
    ));
    mounted.0.push(src.path.clone());
    host_sh(&format!(
        "mount --bind {r} {r} && mount --make-shared {r} && mkdir -p {r}/probe"
    ));
    mounted.0.push(d.rootfs.clone());

    let mut req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    let sec = req.security.get_or_insert_with(Default::default);
    sec.capabilities = vec!["ALL".into()];
    sec.seccomp = Some(pb::SeccompConfig {
        profile: "unconfined".into(),
        ..Default::default()
    });
    for (dest, private) in [("/slave", false), ("/private", true)] {
        req.mounts.push(pb::Mount {
            source: src.path.display().to_string(),
            destination: dest.into(),
            writable: true,
            private,
        });
    }
    c.run(req).await.unwrap();

    host_sh(&format!(
        "mount -t tmpfs edt-sub {s}/sub && echo x > {s}/sub/marker && \
         mount -t tmpfs edt-probe {r}/probe && echo x > {r}/probe/marker"
    ));
    mounted.0.push(src.path.join("sub"));
    mounted.0.push(d.rootfs.join("probe"));
    let script = "ls /slave/sub; echo -; ls /private/sub; echo -; ls /probe; echo -; \
                  mkdir -p /slave/inner && mount -t tmpfs edt-inner /slave/inner && echo mounted";
    let out = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: Some(pb::Process {
                args: vec!["sh".into(), "-c".into(), script.into()],
                ..Default::default()
            }),
            timeout_seconds: 10,
        })
        .await
        .unwrap()
        .into_inner();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "marker\n-\n-\n-\nmounted\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The container's own mount stays in the container.
    assert!(src.path.join("inner").is_dir());
    assert_eq!(
        host_mounts_under(&src.path.join("inner")),
        Vec::<String>::new()
    );
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

/// The shim leads a session of its own, under its own name (so the driver's terminal, session and process group
/// can go without a signal reaching it), and is no process group of the daemon's.
#[tokio::test]
async fn the_shim_runs_in_its_own_session() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    let st = c.run(req).await.unwrap().into_inner().container.unwrap();
    let stat_of = |pid: i64| -> Vec<i64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // After the command (in parentheses): state, ppid, pgrp, session.
        let rest = stat.rsplit_once(')').unwrap().1;
        rest.split_whitespace()
            .skip(1)
            .take(3)
            .map(|f| f.parse().unwrap())
            .collect()
    };
    let shim = stat_of(st.shim_pid.into());
    // Named as itself, though started from a sealed copy (/proc/self/fd/N).
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{}/comm", st.shim_pid)).unwrap(),
        "execdriver-shim\n"
    );
    assert_eq!(shim[1], st.shim_pid as i64, "pgrp: {shim:?}");
    assert_eq!(shim[2], st.shim_pid as i64, "session: {shim:?}");
    let daemon = stat_of(d.pid().unwrap().into());
    assert_ne!(shim[2], daemon[2]);
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}
