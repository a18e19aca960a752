//! Network modes other than the bridge: host, none, a namespace shared with another
//! container, and a namespace joined by path.

use execdriver_tests::{attach_collect, pb, run, unique_ifname, Daemon, Netns, TempDir};
use tonic::Code;

use super::{allocations, bridge_daemon, create, delete, net_of, network, request};

#[tokio::test]
async fn shared_host_and_none_networks() {
    let (d, bridge) = bridge_daemon("198.18.3.0/24", &[]);
    let ns = d.netns();
    let mut c = d.client().await;

    let a = request(&d, &["sleep", "60"], network(pb::NetworkMode::Bridge));
    let a_id = a.id.clone();
    let a_st = create(&mut c, a).await;
    c.start(pb::StartRequest {
        id: a_id.clone(),
        ..Default::default()
    })
    .await
    .expect("start");
    let a_net = net_of(&a_st);

    // container:A sees A's eth0 and address.
    let mut shared = network(pb::NetworkMode::Container);
    shared.container_id = a_id.clone();
    let b = request(&d, &["ip", "-o", "addr", "show", "dev", "eth0"], shared);
    let b_id = b.id.clone();
    let b_st = create(&mut c, b).await;
    let b_net = net_of(&b_st);
    assert_eq!(b_net.mode, pb::NetworkMode::Container as i32);
    assert_eq!(b_net.container_id, a_id);
    assert_eq!(b_net.address, a_net.address);
    assert_eq!(b_net.mac_address, a_net.mac_address);
    assert_eq!(b_net.netns_path, format!("/proc/{}/ns/net", a_st.pid));
    let out = attach_collect(&mut c, &b_id, None, true).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert!(
        out.stdout().contains(&format!("inet {}", a_net.address)),
        "{}",
        out.stdout()
    );
    delete(&mut c, &b_id).await;

    // Host network: the test namespace's interfaces (its bridge, A's host end).
    let host = request(&d, &["ip", "-o", "link"], network(pb::NetworkMode::Host));
    let out = run(&mut c, host).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert!(out.stdout().contains(&bridge), "{}", out.stdout());
    assert!(
        out.stdout().contains(&a_net.host_interface),
        "{}",
        out.stdout()
    );
    // So without NEWNET in the namespaces.
    let mut no_newnet = d.request(&["ip", "-o", "link"]);
    no_newnet.namespaces = vec!["NEWNS".into(), "NEWUTS".into(), "NEWPID".into()];
    let id = no_newnet.id.clone();
    let st = create(&mut c, no_newnet).await;
    assert_eq!(net_of(&st).mode, pb::NetworkMode::Host as i32);
    let out = attach_collect(&mut c, &id, None, true).await;
    assert!(out.stdout().contains(&bridge), "{}", out.stdout());
    delete(&mut c, &id).await;
    let test_ns_links = ns.ip(&["-o", "link"]).lines().count();
    assert_eq!(
        out.stdout().lines().count(),
        test_ns_links,
        "the same interfaces as the test namespace"
    );

    // None: only lo, up.
    let none = request(&d, &["ip", "-o", "link"], network(pb::NetworkMode::None));
    let out = run(&mut c, none).await;
    let text = out.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("lo: <LOOPBACK,UP"), "{lines:?}");

    // Sharing a stopped or unknown container fails clearly and leaves nothing.
    let gone = request(&d, &["true"], network(pb::NetworkMode::Bridge));
    let gone_id = gone.id.clone();
    let _ = run(&mut c, gone).await;
    let mut shared = network(pb::NetworkMode::Container);
    shared.container_id = gone_id.clone();
    let err = c
        .create(request(&d, &["true"], shared.clone()))
        .await
        .expect_err("deleted container");
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    let stopped = request(&d, &["true"], network(pb::NetworkMode::None));
    let stopped_id = stopped.id.clone();
    create(&mut c, stopped).await;
    let _ = attach_collect(&mut c, &stopped_id, None, true).await;
    shared.container_id = stopped_id.clone();
    let err = c
        .create(request(&d, &["true"], shared))
        .await
        .expect_err("stopped container");
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(
        err.message().contains("network.container_id"),
        "{}",
        err.message()
    );
    delete(&mut c, &stopped_id).await;

    delete(&mut c, &a_id).await;
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(ns.veths().is_empty(), "{:?}", ns.veths());
    assert!(allocations(&d).is_empty());
}

/// A bind mount of a namespace file, as `ip netns add` makes under /var/run/netns; unmounted
/// on drop.
struct NsBind(std::path::PathBuf);

impl NsBind {
    fn new(source: &std::path::Path, target: std::path::PathBuf) -> NsBind {
        std::fs::write(&target, b"").expect("mount point");
        nix::mount::mount(
            Some(source),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind the netns");
        NsBind(target)
    }
}

impl Drop for NsBind {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn netns_mode_joins_a_namespace_by_path() {
    let d = Daemon::start_in_netns(&[], &[]);
    let mut c = d.client().await;
    let other = Netns::new();
    let marker = unique_ifname("edmark");
    other.ip(&["link", "add", &marker, "type", "bridge"]);
    let names = TempDir::new("edt-netns");
    let named = NsBind::new(&other.path, names.path.join("named"));

    for path in [
        named.0.display().to_string(),
        other.path.display().to_string(),
    ] {
        let mut n = network(pb::NetworkMode::Netns);
        n.netns_path = path.clone();
        let req = request(&d, &["ip", "-o", "link"], n);
        let id = req.id.clone();
        let st = create(&mut c, req).await;
        assert_eq!(net_of(&st).mode, pb::NetworkMode::Netns as i32);
        assert_eq!(net_of(&st).netns_path, path);
        let out = attach_collect(&mut c, &id, None, true).await;
        assert_eq!(out.code(), 0, "{}", out.stderr());
        assert!(out.stdout().contains(&marker), "{path}: {}", out.stdout());
        delete(&mut c, &id).await;
    }

    // A path that does not exist, or is no network namespace: clear errors, nothing left.
    let mut n = network(pb::NetworkMode::Netns);
    n.netns_path = names.path.join("missing").display().to_string();
    let err = c
        .create(request(&d, &["true"], n))
        .await
        .expect_err("missing netns");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("network.netns_path"),
        "{}",
        err.message()
    );
    let mut n = network(pb::NetworkMode::Netns);
    n.netns_path = "/proc/self/ns/uts".into();
    let err = c
        .create(request(&d, &["true"], n))
        .await
        .expect_err("not a netns");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(
        err.message().starts_with("network.netns_path")
            && err
                .message()
                .contains("is not a network namespace (it is uts:["),
        "{}",
        err.message()
    );
    // One the daemon may not enter says so (not "does not exist"). On these VMs pid 1's
    // namespaces belong to an outer user namespace; where root may open them, this is skipped.
    if std::fs::File::open("/proc/1/ns/net")
        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
    {
        let mut n = network(pb::NetworkMode::Netns);
        n.netns_path = "/proc/1/ns/net".into();
        let err = c
            .create(request(&d, &["true"], n))
            .await
            .expect_err("a netns the daemon may not enter");
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(
            err.message()
                .contains("cannot be joined: permission denied"),
            "{}",
            err.message()
        );
    }
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
    drop(named);
}
