//! A container on the daemon's bridge: eth0 with its address, MTU, MAC and route, lo up;
//! two containers pinging each other and streaming 10 MB intact; and the BRADDIF ioctl
//! fallback for attaching the veth.

use std::time::Duration;

use execdriver_tests::{attach_collect, pb, run, unique, Daemon, Netns};

use super::{allocations, bridge_daemon, create, delete, ip_of, net_of, network, request};

const FORCE_IOCTL: &str = "EXECDRIVER_FORCE_BRADDIF_IOCTL";

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
