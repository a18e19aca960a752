//! Container networking: loopback, veth on a bridge, sharing and joining network namespaces,
//! the daemon's bridge and addresses, and what is left behind (nothing).
//!
//! Every test runs its daemon inside a network namespace of its own (`Daemon::start_in_netns`),
//! so bridges, veths, addresses and traffic never leave it; the subnets are from the
//! benchmarking range 198.18.0.0/15.
//!
//! This file holds what the topics share: a daemon with a bridge in its own netns, network
//! configs and requests, create/state/delete calls, and readers of the addresses a container
//! got and the daemon allocated. The tests are in `bridge` (a container on the bridge, traffic
//! between two), `modes` (host, none, shared and joined namespaces), `addresses` (allocation,
//! release, restart), `errors` (bad requests and daemon flags) and `slirp4netns` (the user-mode
//! network).

use execdriver_tests::{pb, unique_ifname, Client, Daemon};

mod addresses;
mod bridge;
mod errors;
mod modes;
mod slirp4netns;

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
