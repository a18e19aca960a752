//! Addresses and what is left behind: fifty containers leave no veth, address or route,
//! and allocations survive a daemon restart and are released on delete.

use std::collections::BTreeSet;

use execdriver_tests::pb;
use tonic::Code;

use super::{allocations, bridge_daemon, create, delete, ip_of, net_of, network, request, state};

#[tokio::test]
async fn fifty_containers_leave_no_veth_address_or_route() {
    let (d, _bridge) = bridge_daemon("198.18.4.0/24", &[]);
    let ns = d.netns();
    let c = d.client().await;
    // The IPv4 routes of every table, but for the bridge's carrier ("linkdown" while it has
    // no ports): what they must return to.
    let routes = || {
        ns.ip(&["-4", "route", "show", "table", "all"])
            .replace(" linkdown", "")
    };
    let routes_before = routes();

    // Created ten at a time, concurrently: every address is handed out once.
    let mut ids = Vec::new();
    let mut addresses = BTreeSet::new();
    for _ in 0..5 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let mut c = c.clone();
            let req = request(&d, &["sleep", "60"], network(pb::NetworkMode::Bridge));
            set.spawn(async move { create(&mut c, req).await });
        }
        while let Some(st) = set.join_next().await {
            let st = st.expect("create task");
            assert!(
                addresses.insert(net_of(&st).address.clone()),
                "{} handed out twice",
                net_of(&st).address
            );
            ids.push(st.id);
        }
    }
    assert_eq!(ids.len(), 50);
    assert_eq!(allocations(&d).len(), 50);
    assert_eq!(ns.veths().len(), 50, "{:?}", ns.veths());

    // Half run (and are killed by Delete), half are deleted while created.
    let mut c = c.clone();
    for id in ids.iter().step_by(2) {
        c.start(pb::StartRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("start");
    }
    for id in &ids {
        delete(&mut c, id).await;
    }
    assert!(ns.veths().is_empty(), "{:?}", ns.veths());
    assert!(allocations(&d).is_empty(), "{:?}", allocations(&d));
    assert_eq!(routes(), routes_before);
    let all_routes = ns.ip(&["route", "show", "table", "all"]);
    assert!(!all_routes.contains("veth"), "{all_routes}");
    for a in &addresses {
        let ip = ip_of(a);
        assert!(
            !all_routes
                .split_whitespace()
                .any(|w| w == ip || w.starts_with(&format!("{ip}/"))),
            "{a}: {all_routes}"
        );
    }
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

#[tokio::test]
async fn addresses_survive_a_daemon_restart_and_are_released_on_delete() {
    let (mut d, _bridge) = bridge_daemon("198.18.6.0/24", &[]);
    let mut c = d.client().await;
    let a = request(&d, &["sleep", "60"], network(pb::NetworkMode::Bridge));
    let a_id = a.id.clone();
    let a_net = net_of(&create(&mut c, a).await);
    let a_ip = ip_of(&a_net.address);

    // The daemon dies (SIGTERM would wait for this runtime's idle connection to close).
    // While it is down, a stale record of a container that is gone appears.
    drop(c);
    d.stop_daemon(libc::SIGKILL);
    let path = d.root.join("ipam.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["allocations"]["198.18.6.200"] = "ghost".into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    d.spawn();
    let mut c = d.client().await;
    // The restarted daemon reports A's network as before.
    assert_eq!(net_of(&state(&mut c, &a_id).await), a_net);

    // A keeps its address: not handed out again, not even when asked for.
    let b = request(&d, &["sleep", "60"], network(pb::NetworkMode::Bridge));
    let b_id = b.id.clone();
    let b_ip = ip_of(&net_of(&create(&mut c, b).await).address);
    assert_ne!(a_ip, b_ip);
    let mut want_a = network(pb::NetworkMode::Bridge);
    want_a.address = a_ip.clone();
    let err = c
        .create(request(&d, &["true"], want_a.clone()))
        .await
        .expect_err("in use");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().starts_with("network.address") && err.message().contains("in use"),
        "{}",
        err.message()
    );
    // The ghost's address was released at start.
    let allocs = allocations(&d);
    assert!(!allocs.contains_key("198.18.6.200"), "{allocs:?}");
    assert_eq!(allocs[&a_ip], a_id.as_str());
    assert_eq!(allocs[&b_ip], b_id.as_str());
    let mut ghost = network(pb::NetworkMode::Bridge);
    ghost.address = "198.18.6.200".into();
    let g = request(&d, &["true"], ghost);
    let g_id = g.id.clone();
    create(&mut c, g).await;
    delete(&mut c, &g_id).await;

    // Deleting A frees its address.
    delete(&mut c, &a_id).await;
    let reuse = request(&d, &["true"], want_a);
    let reuse_id = reuse.id.clone();
    let st = create(&mut c, reuse).await;
    assert_eq!(ip_of(&net_of(&st).address), a_ip);
    delete(&mut c, &reuse_id).await;
    delete(&mut c, &b_id).await;
    assert!(allocations(&d).is_empty());
}
