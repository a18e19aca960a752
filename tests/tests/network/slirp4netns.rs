//! The user-mode network (`NETWORK_MODE_SLIRP4NETNS`) with a root daemon: tap0 with
//! slirp4netns's address, route and MTU; the daemon namespace's 127.0.0.1 reached through
//! 10.0.2.2; slirp4netns ended with the container's init and after a failed create. The daemon
//! runs in the test's own network namespace, so slirp4netns's sockets (and all traffic) stay
//! in it. Without slirp4netns installed these tests fail, saying so.

use std::time::{Duration, Instant};

use execdriver_tests::{attach_collect, pb, require_slirp4netns, Daemon, Netns};

use super::{create, delete, net_of, network, request};

/// Waits (bounded) until no slirp4netns runs in `ns`; the ones still there.
fn slirps_gone(ns: &Netns) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = ns.processes_named("slirp4netns");
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_slirp4netns_container_has_tap0_and_reaches_the_daemons_loopback() {
    require_slirp4netns();
    let d = Daemon::start_in_netns(&[], &[]);
    let ns = d.netns();
    let server = ns.serve_loopback();
    let mut c = d.client().await;
    let info = c.info(pb::InfoRequest {}).await.expect("info").into_inner();
    assert!(
        info.network_modes
            .contains(&(pb::NetworkMode::Slirp4netns as i32)),
        "{:?}",
        info.network_modes
    );

    let script = format!(
        "ls /sys/class/net | tr '\\n' ' '; echo; ip -o -4 addr show dev tap0; ip route; \
         cat /sys/class/net/tap0/mtu; echo hello | nc -w 5 10.0.2.2 {}",
        server.port
    );
    let req = request(
        &d,
        &["sh", "-c", &script],
        network(pb::NetworkMode::Slirp4netns),
    );
    let id = req.id.clone();
    let st = create(&mut c, req).await;
    let net = net_of(&st);
    assert_eq!(net.mode, pb::NetworkMode::Slirp4netns as i32);
    assert_eq!(net.address, "10.0.2.100/24");
    assert_eq!(net.gateway, "10.0.2.2");
    assert_eq!(net.mtu, 65520);
    assert!(net.bridge.is_empty() && net.host_interface.is_empty());
    // Created: slirp4netns runs already (the command will start with its network), one,
    // for this init, in the daemon's namespace.
    let slirps = ns.processes_named("slirp4netns");
    assert_eq!(slirps.len(), 1, "{slirps:?}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", slirps[0])).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(args.contains(&st.pid.to_string()), "{args:?}");
    assert!(args.contains(&"--configure".to_owned()), "{args:?}");
    assert!(!args.iter().any(|a| a.contains("disable-host-loopback")));
    // None of slirp4netns's descriptors reached the container: the init holds its stdio and
    // nothing of the shim's pipes.
    let init_fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", st.pid))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let slirp_fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", slirps[0]))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| p.display().to_string())
                .filter(|p| p.starts_with("pipe:"))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !init_fds.iter().any(|f| slirp_fds.contains(f)),
        "init {init_fds:?}, slirp4netns {slirp_fds:?}"
    );

    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout(), out.stderr());
    let text = out.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 5, "{text}");
    let mut links: Vec<&str> = lines[0].split_whitespace().collect();
    links.sort();
    assert_eq!(links, ["lo", "tap0"], "{text}");
    assert!(lines[1].contains("inet 10.0.2.100/24"), "{text}");
    assert!(text.contains("default via 10.0.2.2 dev tap0"), "{text}");
    assert!(lines.contains(&"65520"), "{text}");
    assert!(text.contains("pong hello"), "{text}");
    assert_eq!(server.finish(), ["hello"]);

    // The init has exited: its slirp4netns is gone, before any delete.
    assert_eq!(slirps_gone(ns), Vec::<i32>::new());
    delete(&mut c, &id).await;
    assert_eq!(slirps_gone(ns), Vec::<i32>::new());

    // A running container deleted by force: the same.
    let mut n = network(pb::NetworkMode::Slirp4netns);
    n.mtu = 1500;
    let req = request(&d, &["sleep", "60"], n);
    let id = req.id.clone();
    let st = create(&mut c, req).await;
    assert_eq!(net_of(&st).mtu, 1500);
    c.start(pb::StartRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .expect("start");
    assert_eq!(ns.processes_named("slirp4netns").len(), 1);
    delete(&mut c, &id).await;
    assert_eq!(slirps_gone(ns), Vec::<i32>::new());
}

#[tokio::test]
async fn a_failed_slirp4netns_create_leaves_no_slirp4netns() {
    require_slirp4netns();
    let d = Daemon::start_in_netns(&[], &[]);
    let ns = d.netns();
    let mut c = d.client().await;
    // The init fails after slirp4netns made its network (the working directory is entered
    // after the shim's network setup): a working directory that is a file.
    let mut req = request(&d, &["true"], network(pb::NetworkMode::Slirp4netns));
    if let Some(p) = req.process.as_mut() {
        p.cwd = "/etc/passwd".into();
    }
    let err = c
        .create(req)
        .await
        .expect_err("a file as the working directory");
    assert!(
        err.message().contains("passwd") || err.message().contains("cwd"),
        "{err:?}"
    );
    assert_eq!(slirps_gone(ns), Vec::<i32>::new());
    // Refused by the request's checks, naming the field.
    let mut n = network(pb::NetworkMode::Slirp4netns);
    n.mtu = 65522;
    let err = c
        .create(request(&d, &["true"], n))
        .await
        .expect_err("mtu above slirp4netns's");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("network.mtu"), "{err:?}");
}

#[tokio::test]
async fn a_slirp4netns_container_with_a_user_namespace_of_a_root_daemon() {
    require_slirp4netns();
    let d = Daemon::start_in_netns(&[], &[]);
    let ns = d.netns();
    let server = ns.serve_loopback();
    let mut c = d.client().await;
    let script = format!(
        "cat /proc/self/uid_map; ip -o -4 addr show dev tap0; echo userns | nc -w 5 10.0.2.2 {}",
        server.port
    );
    let mut req = request(
        &d,
        &["sh", "-c", &script],
        network(pb::NetworkMode::Slirp4netns),
    );
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"]
        .map(String::from)
        .to_vec();
    // The rootfs stays root's: readable and executable by the mapped root as by anyone.
    let map = pb::IdMapping {
        container_id: 0,
        host_id: 100_000,
        size: 65536,
    };
    let s = req.security.get_or_insert_with(Default::default);
    s.uid_mappings = vec![map];
    s.gid_mappings = vec![map];
    let id = req.id.clone();
    create(&mut c, req).await;
    // slirp4netns joined the container's user namespace, which owns its network namespace.
    let slirps = ns.processes_named("slirp4netns");
    assert_eq!(slirps.len(), 1, "{slirps:?}");
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", slirps[0])).unwrap();
    assert!(cmdline.contains("--userns-path=/proc/"), "{cmdline:?}");
    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout(), out.stderr());
    let text = out.stdout();
    assert!(text.contains("100000"), "{text}");
    assert!(text.contains("inet 10.0.2.100/24"), "{text}");
    assert!(text.contains("pong userns"), "{text}");
    assert_eq!(server.finish(), ["userns"]);
    delete(&mut c, &id).await;
    assert_eq!(slirps_gone(ns), Vec::<i32>::new());
}

#[tokio::test]
async fn slirp4netns_ends_with_a_killed_shim() {
    require_slirp4netns();
    let d = Daemon::start_in_netns(&[], &[]);
    let ns = d.netns();
    let mut c = d.client().await;
    let req = request(&d, &["sleep", "60"], network(pb::NetworkMode::Slirp4netns));
    let id = req.id.clone();
    let st = create(&mut c, req).await;
    assert_eq!(ns.processes_named("slirp4netns").len(), 1);
    assert!(st.shim_pid > 0, "{st:?}");
    // The test's own shim, by the pid its daemon reported.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(st.shim_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the shim");
    assert_eq!(slirps_gone(ns), Vec::<i32>::new());
    delete(&mut c, &id).await;
}
