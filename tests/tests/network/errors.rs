//! Network errors: bad requests are clear and leave nothing behind, the daemon's network
//! flags are checked, and a bridge flag naming another kind of link is refused and that
//! link left alone.

use execdriver_tests::{pb, unique_ifname, Daemon, Netns, TempDir};
use tonic::Code;

use super::{allocations, bridge_daemon, create, delete, ip_of, net_of, network, request};

#[tokio::test]
async fn network_errors_are_clear_and_leave_nothing_behind() {
    let (d, bridge) = bridge_daemon("198.18.7.0/24", &[]);
    let ns = d.netns();
    let mut c = d.client().await;
    let keep = request(&d, &["sleep", "60"], network(pb::NetworkMode::Bridge));
    let keep_id = keep.id.clone();
    let keep_ip = ip_of(&net_of(&create(&mut c, keep).await).address);

    let bridge_with = |f: &dyn Fn(&mut pb::NetworkConfig)| {
        let mut n = network(pb::NetworkMode::Bridge);
        f(&mut n);
        request(&d, &["true"], n)
    };
    let cases: Vec<(pb::CreateRequest, Code, &str)> = vec![
        (
            bridge_with(&|n| n.address = "198.18.8.5".into()),
            Code::InvalidArgument,
            "network.address",
        ),
        (
            bridge_with(&|n| n.address = "198.18.7.5/16".into()),
            Code::InvalidArgument,
            "network.address",
        ),
        (
            bridge_with(&|n| n.address = "198.18.7.5/24x".into()),
            Code::InvalidArgument,
            "network.address",
        ),
        (
            bridge_with(&|n| n.address = "not-an-address".into()),
            Code::InvalidArgument,
            "network.address",
        ),
        (
            bridge_with(&|n| n.address = keep_ip.clone()),
            Code::FailedPrecondition,
            "network.address",
        ),
        (
            bridge_with(&|n| n.mac_address = "03:00:00:00:00:01".into()),
            Code::InvalidArgument,
            "network.mac_address",
        ),
        (
            bridge_with(&|n| n.mtu = 67),
            Code::InvalidArgument,
            "network.mtu",
        ),
        (
            bridge_with(&|n| n.mode = 77),
            Code::InvalidArgument,
            "network.mode",
        ),
    ];
    for (req, code, field) in cases {
        let err = c.create(req).await.expect_err(field);
        assert_eq!(err.code(), code, "{}", err.message());
        assert!(err.message().starts_with(field), "{}", err.message());
    }

    // A create that fails after its veth was made (the command is looked up at Create, after
    // the network is set up): the veth and the address go with it.
    let err = c
        .create(request(
            &d,
            &["/no/such/command"],
            network(pb::NetworkMode::Bridge),
        ))
        .await
        .expect_err("missing command");
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert_eq!(
        ns.veths().len(),
        1,
        "only the kept container's: {:?}",
        ns.veths()
    );
    assert_eq!(allocations(&d).len(), 1, "{:?}", allocations(&d));

    // A bridge that went away: the shim refuses before making anything.
    ns.ip(&["link", "del", "dev", &bridge]);
    let err = c
        .create(bridge_with(&|_| {}))
        .await
        .expect_err("missing bridge");
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(
        err.message()
            .contains(&format!("bridge {bridge:?} does not exist")),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("networks[1].context.bridge"),
        "{}",
        err.message()
    );

    // Nothing left but the container that was kept.
    let dirs = d.state_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let cgroups = d.cgroup_dirs();
    assert!(cgroups.iter().all(|p| p.ends_with(&keep_id)), "{cgroups:?}");
    let allocs = allocations(&d);
    assert_eq!(allocs.len(), 1, "{allocs:?}");
    assert_eq!(
        ns.veths().len(),
        1,
        "the kept container's: {:?}",
        ns.veths()
    );
    delete(&mut c, &keep_id).await;
    assert!(allocations(&d).is_empty());
    assert!(ns.veths().is_empty(), "{:?}", ns.veths());

    // Bridge mode on a daemon without a bridge.
    let plain = Daemon::start_in_netns(&[], &[]);
    let mut pc = plain.client().await;
    let err = pc
        .create(request(&plain, &["true"], network(pb::NetworkMode::Bridge)))
        .await
        .expect_err("no bridge");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().starts_with("network.mode"),
        "{}",
        err.message()
    );
    assert!(plain.state_dirs().is_empty());
}

#[test]
fn daemon_network_flags_are_checked() {
    for (args, flag) in [
        (
            vec!["--bridge", "edbrx", "--subnet", "198.18.9.0/33"],
            "--subnet",
        ),
        (
            vec!["--bridge", "edbrx", "--subnet", "198.18.9.0"],
            "--subnet",
        ),
        (
            vec![
                "--bridge",
                "edbrx",
                "--subnet",
                "198.18.9.0/24",
                "--gateway",
                "198.18.10.1",
            ],
            "--gateway",
        ),
        (
            vec![
                "--bridge",
                "a-much-too-long-bridge-name",
                "--subnet",
                "198.18.9.0/24",
            ],
            "--bridge",
        ),
        (vec!["--bridge", "edbrx"], "--subnet"),
    ] {
        let dir = TempDir::new("edt-flags");
        let out = std::process::Command::new(execdriver_tests::bin("execdriverd"))
            .arg("--root")
            .arg(dir.path.join("root"))
            .arg("--socket")
            .arg(dir.path.join("d.sock"))
            .args(&args)
            .output()
            .expect("execdriverd");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(!dir.path.join("d.sock").exists());
    }
}

#[test]
fn a_bridge_flag_naming_another_kind_of_link_is_refused_and_left_alone() {
    let ns = Netns::new();
    let link = unique_ifname("edveth");
    let peer = unique_ifname("edpeer");
    ns.ip(&["link", "add", &link, "type", "veth", "peer", "name", &peer]);
    let dir = TempDir::new("edt-notbr");
    let out = ns
        .command(execdriver_tests::bin("execdriverd"))
        .arg("--root")
        .arg(dir.path.join("root"))
        .arg("--socket")
        .arg(dir.path.join("d.sock"))
        .args(["--bridge", &link, "--subnet", "198.18.11.0/24"])
        .output()
        .expect("execdriverd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a bridge"), "{err}");
    let addrs = ns.ip(&["-o", "addr", "show", "dev", &link]);
    assert!(!addrs.contains("198.18.11."), "{addrs}");
    let state = ns.ip(&["-o", "link", "show", "dev", &link]);
    assert!(!state.contains(",UP"), "{state}");
}
