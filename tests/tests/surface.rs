//! The engine-facing surface: health checking, reflection, Info, deadlines, the daemon's config
//! file, --version, the graceful stop, the CLI's coverage of the API, and the Python harness.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, pb, unique, unique_ifname, Daemon, TempDir};
use prost::Message;
use tokio_stream::StreamExt;
use tonic::Code;

async fn channel(socket: &Path) -> tonic::transport::Channel {
    execdriver_driver::server::connect(socket)
        .await
        .expect("connect")
}

#[tokio::test]
async fn health_reports_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let d = Daemon::start();
    let mut h = HealthClient::new(channel(&d.socket).await);
    for service in ["", "execdriver.v1.ExecDriver"] {
        let r = h
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of {service:?}: {e}"))
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let err = h
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_and_describes_the_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let d = Daemon::start();
    let mut r = ServerReflectionClient::new(channel(&d.socket).await);
    let ask = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    let reqs = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "execdriver.v1.ExecDriver.Events".into(),
        )),
    ];
    let mut answers = r
        .server_reflection_info(tokio_stream::iter(reqs))
        .await
        .expect("reflection")
        .into_inner();
    let list = answers.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = list.message_response else {
        panic!("{list:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"execdriver.v1.ExecDriver"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    let file = answers.next().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = file.message_response else {
        panic!("{file:?}");
    };
    let fd = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
        .expect("a file descriptor");
    assert_eq!(fd.package(), "execdriver.v1");
    let svc = &fd.service[0];
    assert!(svc.method.iter().any(|m| m.name() == "Events"));
    assert!(svc.method.iter().any(|m| m.name() == "Create"));
}

#[tokio::test]
async fn info_says_what_the_host_can_do() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let i = c.info(pb::InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(i.version, env!("CARGO_PKG_VERSION"));
    let uname = Command::new("uname").arg("-r").output().unwrap();
    assert_eq!(
        i.kernel_version,
        String::from_utf8_lossy(&uname.stdout).trim()
    );
    assert!(["v1", "v2", "hybrid"].contains(&i.cgroup_mode.as_str()));
    for ns in ["NEWNS", "NEWPID", "NEWNET", "NEWUTS", "NEWIPC"] {
        assert!(i.namespaces.iter().any(|n| n == ns), "{:?}", i.namespaces);
    }
    for ctl in ["memory", "pids", "cpu"] {
        assert!(
            i.cgroup_controllers.iter().any(|c| c == ctl),
            "{:?}",
            i.cgroup_controllers
        );
    }
    assert!(!i.cgroup_controllers.iter().any(|c| c.starts_with("name=")));
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        i.seccomp,
        status.contains("Seccomp:") && Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
    );
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    assert_eq!(i.apparmor, apparmor);
    let max_userns: u64 = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    assert_eq!(i.user_namespaces, max_userns > 0);
    assert_eq!(
        i.default_capabilities,
        execdriver_spec::capabilities::DOCKER_DEFAULT
    );
    assert_eq!(
        i.default_namespaces,
        ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"]
    );
    use pb::NetworkMode as M;
    let mut modes = [M::None, M::Host, M::Container, M::Netns]
        .map(|m| m as i32)
        .to_vec();
    // The user-mode network where slirp4netns is installed (scripts/test.sh installs it).
    if execdriver_shim::slirp4netns::available() {
        modes.push(M::Slirp4netns as i32);
    }
    assert_eq!(i.network_modes, modes, "no bridge without --bridge");
    assert_eq!(i.event_history, 4096);
    assert_eq!(i.root, d.root.display().to_string());

    // With a bridge, BRIDGE is on offer.
    let br = unique_ifname("edbi");
    let d = Daemon::start_in_netns(&["--bridge", &br, "--subnet", "10.231.0.0/24"], &[]);
    let mut c = d.client().await;
    let i = c.info(pb::InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(
        i.network_modes[0],
        M::Bridge as i32,
        "{:?}",
        i.network_modes
    );
    assert_eq!(i.network_modes.len(), modes.len() + 1);
}

#[tokio::test]
async fn a_deadline_ends_the_call_and_the_daemon_serves_on() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let mut wait = tonic::Request::new(pb::WaitRequest {
        id: id.clone(),
        ..Default::default()
    });
    wait.set_timeout(Duration::from_millis(200));
    let t = Instant::now();
    let err = c.wait(wait).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // A stream ends at its deadline too (Logs with follow would run until the container ends).
    let mut logs = tonic::Request::new(pb::LogsRequest {
        id: id.clone(),
        follow: true,
        ..Default::default()
    });
    logs.set_timeout(Duration::from_millis(300));
    let mut s = c.logs(logs).await.unwrap().into_inner();
    let t = Instant::now();
    let end = loop {
        match s.next().await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("the stream ended without the deadline error"),
        }
    };
    assert_eq!(end.code(), Code::DeadlineExceeded);
    assert!(t.elapsed() < Duration::from_secs(5));

    // The daemon is fine, the container untouched, and a call without deadline waits as long
    // as it takes.
    let st = c
        .state(pb::StateRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.container.unwrap().status, pb::Status::Running as i32);
    let mut c2 = c.clone();
    let id2 = id.clone();
    let waiter = tokio::spawn(async move {
        c2.wait(pb::WaitRequest {
            id: id2,
            ..Default::default()
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished());
    c.kill(pb::KillRequest {
        id: id.clone(),
        signal: 9,
        ..Default::default()
    })
    .await
    .unwrap();
    let exit = waiter.await.unwrap().unwrap().into_inner().exit.unwrap();
    assert_eq!(exit.signal, Some(9));
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn an_attached_client_that_half_closes_still_gets_the_output() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut req = d.request(&["sh", "-c", "read l; sleep 0.2; echo \"got $l\"; exit 2"]);
    req.process.as_mut().unwrap().open_stdin = true;
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let msgs = vec![
        pb::AttachRequest {
            kind: Some(pb::attach_request::Kind::Start(pb::AttachStart {
                id: id.clone(),
                stdin: true,
                stdout: true,
                stderr: true,
                exec_id: String::new(),
            })),
        },
        pb::AttachRequest {
            kind: Some(pb::attach_request::Kind::Stdin(b"x\n".to_vec())),
        },
    ];
    // The request stream ends after these: the client half-closes at once.
    let mut s = c
        .attach(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    c.start(pb::StartRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut out = Vec::new();
    let exit = loop {
        match s
            .next()
            .await
            .expect("the stream ended early")
            .unwrap()
            .kind
        {
            Some(pb::attach_response::Kind::Output(o)) => out.extend(o.data),
            Some(pb::attach_response::Kind::Exit(e)) => break e,
            None => {}
        }
    };
    assert_eq!(String::from_utf8_lossy(&out), "got x\n");
    assert_eq!(exit.exit_code, Some(2));
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

/// A daemon started by hand, killed and cleaned on drop.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_socket(socket: &Path, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "the daemon did not come up: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn config_file_sets_options_and_flags_win() {
    let dir = TempDir::new("edt-cfg");
    let parent = unique("edtest");
    let _cg = execdriver_tests::CgroupGuard(parent.clone());
    let socket = dir.path.join("cfg.sock");
    let root = dir.path.join("state");
    let config = dir.path.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "# execdriverd config\nroot = {:?}\nsocket = {:?}\ncgroup-parent = {parent:?}\n\
             log-format = \"json\"\nlog-level = \"info\"\nevent-history = 7\n\
             allow-uid = [1000, 1001]\nshutdown-grace = 2\n",
            root.display().to_string(),
            socket.display().to_string(),
        ),
    )
    .unwrap();
    let log = dir.path.join("daemon.log");
    let daemon = Proc(
        Command::new(bin("execdriverd"))
            .arg("--config")
            .arg(&config)
            .args(["--event-history", "9"])
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&socket, &log);
    let mut c = pb::exec_driver_client::ExecDriverClient::new(channel(&socket).await);
    let i = c.info(pb::InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(i.root, root.display().to_string(), "root from the file");
    assert_eq!(i.event_history, 9, "the flag wins over the file's 7");
    drop(c);
    drop(daemon);
    // The log is JSON, one object per line.
    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().expect("a log line");
    let v: serde_json::Value = serde_json::from_str(first).expect(first);
    assert!(v.get("level").is_some(), "{v}");

    // The example in contrib/ is a valid config (paths given as flags, so nothing of the
    // host's is touched).
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/config.toml");
    let socket2 = dir.path.join("example.sock");
    let root2 = dir.path.join("state2");
    let log2 = dir.path.join("daemon2.log");
    let daemon = Proc(
        Command::new(bin("execdriverd"))
            .arg("--config")
            .arg(&example)
            .arg("--root")
            .arg(&root2)
            .arg("--socket")
            .arg(&socket2)
            .args(["--cgroup-parent", &parent])
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log2).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&socket2, &log2);
    let mut c = pb::exec_driver_client::ExecDriverClient::new(channel(&socket2).await);
    let i = c.info(pb::InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(i.root, root2.display().to_string());
    assert_eq!(i.event_history, 4096);
    drop((c, daemon));

    // A misspelt option is refused, naming it.
    std::fs::write(&config, "cgroup_parnet = \"x\"\n").unwrap();
    let out = Command::new(bin("execdriverd"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cgroup_parnet"), "{err}");
}

/// `--version`: the version and the git commit built from ("unknown" outside a checkout).
#[test]
fn version_flags() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let version = env!("CARGO_PKG_VERSION");
    for b in ["execdriverd", "execdriverctl", "nsinit"] {
        let out = Command::new(bin(b)).arg("--version").output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{b} {version} (commit {commit})")
        );
    }
    // As runc prints it: the version, the commit, the runtime-spec version.
    let out = Command::new(bin("execdriver-runc"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("execdriver-runc version {version}\ncommit: {commit}\nspec: 1.2.0")
    );
}

#[tokio::test]
async fn sigterm_stops_within_the_grace_and_leaves_containers_running() {
    let mut d = Daemon::start_with(&["--shutdown-grace", "1"]);
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    let st = c.run(req).await.unwrap().into_inner().container.unwrap();
    let pid = st.pid;
    // An events subscriber and an attached client keep connections open.
    let mut events = c
        .events(pb::EventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let (_attach_tx, rx) = tokio::sync::mpsc::channel(1);
    _attach_tx
        .send(pb::AttachRequest {
            kind: Some(pb::attach_request::Kind::Start(pb::AttachStart {
                id: id.clone(),
                stdout: true,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
    let _attach = c
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap();
    let t = Instant::now();
    let daemon_pid = d.pid().unwrap();
    let stopper = std::thread::spawn(move || {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon_pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    });
    stopper.join().unwrap();
    // The events stream ends with UNAVAILABLE.
    let end = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the events stream ended");
    assert_eq!(end.unwrap().unwrap_err().code(), Code::Unavailable);
    d.stop_daemon(libc::SIGTERM); // reaps it (already stopping)
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "the stop took {:?}",
        t.elapsed()
    );
    assert!(d.log().contains("shutting down"), "{}", d.log());
    // The container lives on, and the restarted daemon finds it running.
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());
    d.spawn();
    let mut c = d.client().await;
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
    assert_eq!(st.status, pb::Status::Running as i32);
    assert_eq!(st.pid, pid);
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

/// With no call in flight, SIGTERM ends the daemon at once (not after its shutdown grace), its
/// log is plain text for journald and files (no terminal colour codes), and the container lives on.
#[tokio::test]
async fn sigterm_without_calls_exits_at_once_and_logs_plain_text() {
    let mut d = Daemon::start_with(&["--shutdown-grace", "30"]);
    let mut c = d.client().await;
    let req = d.request(&["sleep", "1000"]);
    let id = req.id.clone();
    let pid = c
        .run(req)
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap()
        .pid;
    c.list(pb::ListRequest::default()).await.unwrap();
    drop(c);
    let t = Instant::now();
    d.stop_daemon(libc::SIGTERM);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    let log = d.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is no terminal: {log:?}"
    );
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());
    d.spawn();
    let mut c = d.client().await;
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}

#[test]
fn execdriverctl_has_a_subcommand_for_every_rpc() {
    let set = prost_types::FileDescriptorSet::decode(pb::v1::FILE_DESCRIPTOR_SET).unwrap();
    let svc = set
        .file
        .iter()
        .flat_map(|f| &f.service)
        .find(|s| s.name() == "ExecDriver")
        .unwrap();
    let help = Command::new(bin("execdriverctl"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for m in &svc.method {
        // The CLI name of an RPC: kebab case; a few are folded into another command.
        let name = match m.name() {
            "StatsStream" => "stats", // stats --stream
            "ResizePty" => "resize",
            n => &kebab(n),
        };
        assert!(
            commands.contains(&name),
            "no execdriverctl command for rpc {} (looked for {name} in {commands:?})",
            m.name()
        );
    }
}

fn kebab(s: &str) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[tokio::test]
async fn execdriverctl_events_and_info_in_json() {
    let d = Daemon::start();
    let ctl = |args: &[&str]| {
        Command::new(bin("execdriverctl"))
            .arg("--socket")
            .arg(&d.socket)
            .arg("--json")
            .args(args)
            .output()
            .unwrap()
    };
    let info: serde_json::Value = serde_json::from_slice(&ctl(&["info"]).stdout).unwrap();
    assert_eq!(info["event_history"], 4096);
    assert!(info["default_capabilities"].as_array().unwrap().len() == 14);
    let rootfs = d.rootfs.display().to_string();
    let out = ctl(&[
        "run", "-d", "--id", "ctlev", "--rootfs", &rootfs, "--", "sh", "-c", "exit 6",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ctl(&["wait", "ctlev"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(ctl(&["delete", "ctlev"]).status.success());
    // Replay from the start of the history: one JSON object per line.
    let mut ev = Command::new(bin("execdriverctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["--json", "events", "--id", "ctlev", "--since", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = ev.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .take(3)
            .map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap())
            .collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(20), lines)
        .await
        .expect("three events")
        .unwrap();
    let _ = ev.kill();
    let _ = ev.wait();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    // The created event had sequence 1, before --since: started, exited, deleted follow.
    assert_eq!(types, ["started", "exited", "deleted"], "{lines:?}");
    assert_eq!(lines[1]["exit"]["exit_code"], 6);
}

#[tokio::test]
async fn the_python_harness_passes() {
    execdriver_tests::foreign::require_python("grpc, grpc_tools");
    let d = Daemon::start();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut child = Command::new("python3")
        .arg(repo.join("examples/python/harness.py"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("--rootfs")
        .arg(&d.rootfs)
        .arg("--proto")
        .arg(repo.join("proto"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "the Python harness failed ({}):\n{stdout}\n{}\ndaemon log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert!(stdout.contains("events in order"), "{stdout}");
    assert!(
        d.state_dirs().is_empty(),
        "the harness deleted its container"
    );
}

/// The CLI as a user types it: run with the backbone's flags (exit code, output, stderr),
/// --user, --readonly-rootfs, run --json (JSON lines), attach and logs -f on a running
/// container, exec with --env and its code, kill and wait (128+9), delete -f.
#[tokio::test]
async fn execdriverctl_run_attach_logs_exec_kill_as_typed() {
    let d = Daemon::start();
    let ctl = |args: &[&str]| {
        Command::new(bin("execdriverctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .output()
            .unwrap()
    };
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let rootfs = d.rootfs.display().to_string();
    let data = TempDir::new("edt-ctl");
    std::fs::write(data.path.join("f"), "from-host").unwrap();
    let mount = format!("{}:/data:ro", data.path.display());
    let out = ctl(&[
        "run",
        "--rm",
        "--rootfs",
        &rootfs,
        "--hostname",
        "typed",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--mount",
        &mount,
        "--cap-drop",
        "CHOWN",
        "--",
        "sh",
        "-c",
        "hostname; echo $FOO; pwd; cat /data/f; echo; touch /data/x 2>/dev/null || echo ro; \
         grep CapEff /proc/self/status; echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let lines: Vec<String> = text(&out).lines().map(str::to_owned).collect();
    assert_eq!(
        lines[..5],
        ["typed", "bar", "/tmp", "from-host", "ro"],
        "{lines:?}"
    );
    let cap_eff = u64::from_str_radix(lines[5].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(cap_eff & 1, 0, "CHOWN was dropped: {lines:?}");
    assert_ne!(cap_eff, 0, "{lines:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let out = ctl(&[
        "run",
        "--rm",
        "--rootfs",
        &rootfs,
        "--user",
        "1000:1001",
        "--readonly-rootfs",
        "--",
        "sh",
        "-c",
        "id -u; id -g; touch /x 2>/dev/null || echo rofs",
    ]);
    assert_eq!(text(&out), "1000\n1001\nrofs\n", "{out:?}");
    // --json: one object per line, the exit last.
    let out = ctl(&[
        "--json",
        "run",
        "--rm",
        "--rootfs",
        &rootfs,
        "--",
        "sh",
        "-c",
        "echo j; exit 2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let objs: Vec<serde_json::Value> = text(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(objs[0]["data"], "j\n", "{objs:?}");
    assert_eq!(objs.last().unwrap()["exit"]["exit_code"], 2, "{objs:?}");

    // attach and logs -f on a running container, both until it ends.
    let id = unique("ctl");
    let out = ctl(&[
        "run",
        "-d",
        "--id",
        &id,
        "--rootfs",
        &rootfs,
        "--",
        "sh",
        "-c",
        "echo early; sleep 1; echo late; exit 4",
    ]);
    assert!(out.status.success(), "{out:?}");
    let spawn = |args: &[&str]| {
        Command::new(bin("execdriverctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let attach = spawn(&["attach", &id]);
    let follow = spawn(&["logs", "-f", &id]);
    let (attach, follow) = tokio::task::spawn_blocking(move || {
        (
            attach.wait_with_output().unwrap(),
            follow.wait_with_output().unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(attach.status.code(), Some(4), "{attach:?}");
    assert!(text(&attach).ends_with("late\n"), "{attach:?}");
    assert!(follow.status.success(), "{follow:?}");
    assert_eq!(text(&follow), "early\nlate\n");
    assert_eq!(text(&ctl(&["logs", &id])), "early\nlate\n");
    assert!(ctl(&["delete", &id]).status.success());

    // exec with its own env, and its exit code; kill -s KILL; wait gives 128+9.
    let id = unique("ctl");
    let out = ctl(&[
        "run", "-d", "--id", &id, "--rootfs", &rootfs, "--", "sleep", "1000",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&[
        "exec",
        "--env",
        "K=V",
        &id,
        "--",
        "sh",
        "-c",
        "echo $K; exit 5",
    ]);
    assert_eq!(
        (out.status.code(), text(&out).as_str()),
        (Some(5), "V\n"),
        "{out:?}"
    );
    assert!(ctl(&["kill", "-s", "KILL", &id]).status.success());
    assert_eq!(ctl(&["wait", &id]).status.code(), Some(137));
    let out = ctl(&["--json", "state", &id]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (st["status"].as_str(), st["signal"].as_i64()),
        (Some("stopped"), Some(9)),
        "{st}"
    );
    assert!(ctl(&["delete", "-f", &id]).status.success());
    assert!(ctl(&["state", &id]).status.code() != Some(0));
}
