//! Container networking: loopback, veth on a bridge, sharing and joining network namespaces,
//! the daemon's bridge and addresses, and what is left behind (nothing).
//!
//! Every test runs its daemon inside a network namespace of its own (`Daemon::start_in_netns`),
//! so bridges, veths, addresses and traffic never leave it; the subnets are from the
//! benchmarking range 198.18.0.0/15.

use std::collections::BTreeSet;
use std::time::Duration;

use execdriver_tests::{
    attach_collect, pb, run, unique, unique_ifname, Client, Daemon, Netns, TempDir,
};
use tonic::Code;

const FORCE_IOCTL: &str = "EXECDRIVER_FORCE_BRADDIF_IOCTL";

/// A daemon in its own netns with bridge `edbr…` on `subnet`.
fn bridge_daemon(subnet: &str, env: &[(&str, &str)]) -> (Daemon, String) {
    let bridge = unique_ifname("edbr");
    let d = Daemon::start_in_netns(&["--bridge", &bridge, "--subnet", subnet], env);
    (d, bridge)
}

fn network(mode: pb::NetworkMode) -> pb::NetworkConfig {
    pb::NetworkConfig {
        mode: mode as i32,
        ..Default::default()
    }
}

fn request(d: &Daemon, args: &[&str], n: pb::NetworkConfig) -> pb::CreateRequest {
    pb::CreateRequest {
        network: Some(n),
        ..d.request(args)
    }
}

async fn create(c: &mut Client, req: pb::CreateRequest) -> pb::ContainerState {
    c.create(req)
        .await
        .expect("create")
        .into_inner()
        .container
        .expect("container state")
}

async fn state(c: &mut Client, id: &str) -> pb::ContainerState {
    c.state(pb::StateRequest {
        id: id.into(),
        ..Default::default()
    })
    .await
    .expect("state")
    .into_inner()
    .container
    .expect("container state")
}

async fn delete(c: &mut Client, id: &str) {
    c.delete(pb::DeleteRequest {
        id: id.into(),
        force: true,
    })
    .await
    .expect("delete");
}

fn net_of(st: &pb::ContainerState) -> pb::NetworkStatus {
    st.network.clone().expect("network status")
}

/// The address part of a CIDR.
fn ip_of(cidr: &str) -> String {
    cidr.split('/').next().unwrap_or("").to_owned()
}

/// The daemon's address allocations (address -> container id).
fn allocations(d: &Daemon) -> serde_json::Map<String, serde_json::Value> {
    let data = std::fs::read(d.root.join("ipam.json")).expect("ipam.json");
    let v: serde_json::Value = serde_json::from_slice(&data).expect("ipam.json is JSON");
    v["allocations"].as_object().cloned().unwrap_or_default()
}

/// The number in busybox ping's "N packets received".
fn received(ping_output: &str) -> u32 {
    ping_output
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// The host end of a container's veth as the shim recorded it (network.json).
fn host_link(d: &Daemon, id: &str) -> serde_json::Value {
    let data = std::fs::read(d.root.join(id).join("network.json")).expect("network.json");
    let v: serde_json::Value = serde_json::from_slice(&data).expect("network.json is JSON");
    v[0].clone()
}

/// Checks that `host_if` is on `bridge` as the kernel sees it, with `ip -d link` and sysfs.
fn assert_on_bridge(ns: &Netns, host_if: &str, bridge: &str) {
    let detail = ns.ip(&["-d", "link", "show", "dev", host_if]);
    assert!(
        detail.contains(&format!("master {bridge}")),
        "ip -d link: {detail}"
    );
    assert!(detail.contains("bridge_slave"), "ip -d link: {detail}");
    let sysfs = ns.with_sysfs(&format!(
        "ls /sys/class/net/{bridge}/brif; readlink /sys/class/net/{host_if}/master"
    ));
    let mut lines = sysfs.lines();
    assert!(
        sysfs.lines().any(|l| l == host_if),
        "{host_if} not in brif: {sysfs}"
    );
    assert!(
        lines.any(|l| l.ends_with(&format!("/{bridge}"))),
        "master link: {sysfs}"
    );
}

#[tokio::test]
async fn bridge_container_gets_eth0_with_address_mtu_mac_route_and_lo_up() {
    let (d, bridge) = bridge_daemon("198.18.1.0/24", &[]);
    let ns = d.netns();
    // The daemon made the bridge, with the gateway address, up.
    let br = ns.ip(&["-d", "-o", "addr", "show", "dev", &bridge]);
    assert!(br.contains("inet 198.18.1.1/24"), "{br}");
    let br_link = ns.ip(&["-d", "link", "show", "dev", &bridge]);
    assert!(br_link.contains("bridge "), "{br_link}");
    assert!(br_link.contains(",UP"), "{br_link}");

    let mut c = d.client().await;
    let mut n = network(pb::NetworkMode::Bridge);
    n.address = "198.18.1.7".into();
    n.mac_address = "02:00:c6:12:01:07".into();
    n.mtu = 1400;
    let req = request(
        &d,
        &[
            "sh",
            "-c",
            "ip -o addr show dev eth0; ip -o link show dev eth0; ip -o link show dev lo; \
             ip route; ping -c 3 -W 5 198.18.1.1",
        ],
        n,
    );
    let id = req.id.clone();
    let st = create(&mut c, req).await;
    let net = net_of(&st);
    assert_eq!(net.mode, pb::NetworkMode::Bridge as i32);
    assert_eq!(net.address, "198.18.1.7/24");
    assert_eq!(net.gateway, "198.18.1.1");
    assert_eq!(net.mac_address, "02:00:c6:12:01:07");
    assert_eq!(net.mtu, 1400);
    assert_eq!(net.bridge, bridge);
    let host_if = net.host_interface.clone();
    assert!(
        host_if.starts_with("veth") && host_if.len() <= 15,
        "{host_if}"
    );

    // Created, not started: the host end is on the bridge, with the MTU, up.
    assert_on_bridge(ns, &host_if, &bridge);
    let link = ns.ip(&["-o", "link", "show", "dev", &host_if]);
    assert!(link.contains("mtu 1400"), "{link}");
    assert!(link.contains(",UP"), "{link}");
    assert_eq!(
        host_link(&d, &id)["attach"],
        "netlink",
        "the kernel honours IFLA_MASTER"
    );

    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout(), out.stderr());
    let text = out.stdout();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.contains(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
            .to_owned()
    };
    assert!(
        line("inet ").contains("inet 198.18.1.7/24"),
        "address: {text}"
    );
    let eth0 = line("link/ether");
    assert!(eth0.contains("mtu 1400"), "mtu: {eth0}");
    assert!(eth0.contains("link/ether 02:00:c6:12:01:07"), "mac: {eth0}");
    assert!(eth0.contains(",UP"), "up: {eth0}");
    assert!(line(": lo").contains("LOOPBACK,UP"), "lo up: {text}");
    assert!(
        line("default").starts_with("default via 198.18.1.1 dev eth0"),
        "route: {text}"
    );
    assert!(received(&text) >= 1, "the gateway answers: {text}");

    // It exited: its veth is gone before Delete; its address is held until Delete.
    assert!(ns.veths().is_empty(), "veths after exit: {:?}", ns.veths());
    assert!(allocations(&d).contains_key("198.18.1.7"));
    delete(&mut c, &id).await;
    assert!(allocations(&d).is_empty(), "{:?}", allocations(&d));
}

#[tokio::test]
async fn two_containers_ping_each_other_and_stream_10_mb_intact() {
    let (d, _bridge) = bridge_daemon("198.18.2.0/24", &[]);
    let mut c = d.client().await;

    // A: receives one TCP stream and sends back its checksum.
    let a = request(
        &d,
        &["nc", "-l", "-p", "5001", "-e", "md5sum"],
        network(pb::NetworkMode::Bridge),
    );
    let a_id = a.id.clone();
    let a_id2 = a_id.clone();
    let a_ip = ip_of(&net_of(&create(&mut c, a).await).address);
    let mut ca = c.clone();
    let a_task = tokio::spawn(async move { attach_collect(&mut ca, &a_id, None, true).await });

    // B: pings A, then sends it 10 MB of random bytes (retrying until A listens), printing
    // their checksum and then A's.
    let file = format!("/tmp/{}", unique("data"));
    let script = format!(
        "ping -c 3 -W 5 {a_ip} || exit 3; \
         dd if=/dev/urandom of={file} bs=1048576 count=10 2>/dev/null; md5sum < {file}; \
         i=0; until nc {a_ip} 5001 < {file}; do i=$((i+1)); [ $i -ge 100 ] && exit 4; sleep 0.1; done"
    );
    let b = request(&d, &["sh", "-c", &script], network(pb::NetworkMode::Bridge));
    let b_out = tokio::time::timeout(Duration::from_secs(120), run(&mut c, b))
        .await
        .expect("B finished within 120 s");
    let a_out = tokio::time::timeout(Duration::from_secs(60), a_task)
        .await
        .expect("A finished within 60 s")
        .expect("A's task");
    assert_eq!(b_out.code(), 0, "{}\n{}", b_out.stdout(), b_out.stderr());
    assert_eq!(a_out.code(), 0, "{}\n{}", a_out.stdout(), a_out.stderr());
    delete(&mut c, &a_id2).await;
    let b_text = b_out.stdout();
    assert!(received(&b_text) >= 1, "A answers B's ping: {b_text}");
    let sums: Vec<&str> = b_text.lines().filter(|l| l.ends_with("  -")).collect();
    assert_eq!(sums.len(), 2, "B's checksum and A's: {b_text}");
    assert_eq!(sums[0], sums[1], "10 MB arrived intact");
    let _ = std::fs::remove_file(d.rootfs.join(file.trim_start_matches('/')));

    // The test namespace (the host side) reaches a container too.
    let c2 = request(&d, &["sleep", "30"], network(pb::NetworkMode::Bridge));
    let c2_id = c2.id.clone();
    let c2_ip = ip_of(&net_of(&create(&mut c, c2).await).address);
    c.start(pb::StartRequest {
        id: c2_id.clone(),
        ..Default::default()
    })
    .await
    .expect("start");
    let ping = d
        .netns()
        .run("busybox", &["ping", "-c", "2", "-W", "5", &c2_ip]);
    assert!(received(&ping) >= 1, "{ping}");
    delete(&mut c, &c2_id).await;
    assert!(d.netns().veths().is_empty());
    assert!(allocations(&d).is_empty());
}

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
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(
        err.message().contains("not a network namespace"),
        "{}",
        err.message()
    );
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
    drop(named);
}

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

#[tokio::test]
async fn braddif_ioctl_fallback_attaches_the_veth() {
    let (d, bridge) = bridge_daemon("198.18.10.0/24", &[(FORCE_IOCTL, "1")]);
    let ns = d.netns();
    let mut c = d.client().await;
    let req = request(
        &d,
        &["ping", "-c", "3", "-W", "5", "198.18.10.1"],
        network(pb::NetworkMode::Bridge),
    );
    let id = req.id.clone();
    let st = create(&mut c, req).await;
    let host_if = net_of(&st).host_interface;
    assert_eq!(
        host_link(&d, &id)["attach"],
        "ioctl",
        "the forced fallback was taken"
    );
    assert_on_bridge(ns, &host_if, &bridge);
    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout(), out.stderr());
    assert!(received(&out.stdout()) >= 1, "{}", out.stdout());
    delete(&mut c, &id).await;
    assert!(ns.veths().is_empty());
}
