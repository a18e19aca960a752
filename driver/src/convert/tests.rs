//! Conversion tests: a request's fields become container.json's, and a bad value in each
//! field group is refused naming the request field.

use std::net::Ipv4Addr;

use super::*;
use execdriver_proto::{self as pb, NetworkConfig, NetworkMode, Process};
use execdriver_shim::security as shim_security;
use execdriver_spec::seccomp::Seccomp;

fn req() -> CreateRequest {
    CreateRequest {
        id: "c1".into(),
        rootfs: "/tmp".into(),
        process: Some(Process {
            args: vec!["/bin/true".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn field_of(r: CreateRequest) -> String {
    match create_request(&r, &Defaults::default(), 0) {
        Err(Error::InvalidArgument { field, .. }) => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn good_request_converts() {
    let (c, m) = create_request(&req(), &Defaults::default(), 5).unwrap();
    assert_eq!(c.namespaces, DEFAULT_NAMESPACES.to_vec());
    assert_eq!(c.hostname, "c1");
    assert_eq!(c.cgroups.unwrap().name, "c1");
    assert_eq!(m.created_at, 5);
}

#[test]
fn bad_ids() {
    for id in ["", "../x", "a/b", ".hidden", &"x".repeat(200), "a b", "ü"] {
        let mut r = req();
        r.id = id.into();
        assert_eq!(field_of(r), "id", "{id:?}");
    }
    for id in ["a", "A-1_2.3", &"x".repeat(64)] {
        validate_id(id).unwrap();
    }
}

#[test]
fn bad_fields_are_named() {
    let mut r = req();
    r.rootfs = "relative".into();
    assert_eq!(field_of(r), "rootfs");
    let mut r = req();
    r.rootfs = "/nonexistent-execdriver-rootfs".into();
    assert_eq!(field_of(r), "rootfs");
    let mut r = req();
    r.process = None;
    assert_eq!(field_of(r), "process");
    let mut r = req();
    r.process.as_mut().unwrap().args.clear();
    assert_eq!(field_of(r), "process.args");
    let mut r = req();
    r.process.as_mut().unwrap().env = vec!["NOEQ".into()];
    assert_eq!(field_of(r), "process.env[0]");
    let mut r = req();
    r.process.as_mut().unwrap().env = vec!["A=1".into(); 10_000];
    assert_eq!(field_of(r), "process.env");
    let mut r = req();
    r.process.as_mut().unwrap().cwd = "rel".into();
    assert_eq!(field_of(r), "process.cwd");
    let mut r = req();
    r.namespaces = vec!["NEWNS".into(), "NEWFOO".into()];
    assert_eq!(field_of(r), "namespaces[1]");
    let mut r = req();
    r.namespaces = vec!["NEWPID".into()];
    assert_eq!(field_of(r), "namespaces");
    let mut r = req();
    r.capabilities_mask = vec!["NET_ADMIN".into(), "BOGUS".into()];
    assert_eq!(field_of(r), "capabilities_mask[1]");
    let mut r = req();
    r.mounts = vec![ProtoMount {
        source: "/nonexistent-src".into(),
        destination: "/x".into(),
        ..Default::default()
    }];
    assert_eq!(field_of(r), "mounts[0].source");
    let mut r = req();
    r.mounts = vec![ProtoMount {
        source: "/tmp".into(),
        destination: "x".into(),
        ..Default::default()
    }];
    assert_eq!(field_of(r), "mounts[0].destination");
    let mut r = req();
    r.labels.insert(String::new(), "v".into());
    assert_eq!(field_of(r), "labels[\"\"]");
    let mut r = req();
    r.process.as_mut().unwrap().args = vec!["a\0b".into()];
    assert_eq!(field_of(r), "process.args[0]");
}

fn with_resources(f: impl Fn(&mut execdriver_proto::Resources)) -> CreateRequest {
    let mut r = req();
    let mut res = execdriver_proto::Resources::default();
    f(&mut res);
    r.resources = Some(res);
    r
}

#[test]
fn resources_convert_to_cgroups() {
    let r = with_resources(|r| {
        r.memory = 32 << 20;
        r.memory_swap = -1;
        r.cpu_shares = 512;
        r.cpu_quota = 20_000;
        r.cpu_period = 100_000;
        r.cpuset_cpus = "0".into();
        r.pids_limit = 20;
        r.devices = vec![execdriver_proto::DeviceRule {
            r#type: "c".into(),
            major: 10,
            minor: 229,
            ..Default::default()
        }];
    });
    let (c, _) = create_request(&r, &Defaults::default(), 0).unwrap();
    let cg = c.cgroups.unwrap();
    assert_eq!(cg.parent, "execdriver");
    assert_eq!(cg.name, "c1");
    assert_eq!(
        (cg.memory, cg.memory_swap, cg.cpu_shares),
        (32 << 20, -1, 512)
    );
    assert_eq!(
        (cg.cpu_quota, cg.cpu_period, cg.pids_limit),
        (20_000, 100_000, 20)
    );
    assert_eq!(cg.devices[0].cgroup_permissions, "rwm");
    assert_eq!(cg.devices[0].minor_number, 229);
    // A host node gives its type and numbers.
    let r = with_resources(|r| {
        r.devices = vec![execdriver_proto::DeviceRule {
            path: "/dev/null".into(),
            permissions: "rw".into(),
            ..Default::default()
        }];
        r.cgroup_parent = "engine/pods".into();
    });
    let (c, _) = create_request(&r, &Defaults::default(), 0).unwrap();
    let cg = c.cgroups.unwrap();
    assert_eq!(cg.parent, "engine/pods");
    let d = &cg.devices[0];
    assert_eq!(
        (d.kind.as_str(), d.major_number, d.minor_number),
        ("c", 1, 3)
    );
    assert_eq!(d.path, "/dev/null");
}

#[test]
fn bad_resources_name_the_field() {
    type Mutation = Box<dyn Fn(&mut execdriver_proto::Resources)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|r| r.memory = 100), "resources.memory"),
        (Box::new(|r| r.memory = -7), "resources.memory"),
        (
            Box::new(|r| r.memory_swap = 1 << 30),
            "resources.memory_swap",
        ),
        (Box::new(|r| r.cpu_shares = 1), "resources.cpu_shares"),
        (Box::new(|r| r.cpu_quota = 5), "resources.cpu_quota"),
        (Box::new(|r| r.cpu_period = 10), "resources.cpu_period"),
        (Box::new(|r| r.pids_limit = -9), "resources.pids_limit"),
        (Box::new(|r| r.blkio_weight = 1), "resources.blkio_weight"),
        (
            Box::new(|r| r.cpuset_cpus = "0-x".into()),
            "resources.cpuset_cpus",
        ),
        (
            Box::new(|r| r.cpuset_cpus = "4000".into()),
            "resources.cpuset_cpus",
        ),
        (
            Box::new(|r| r.cpuset_mems = "77".into()),
            "resources.cpuset_mems",
        ),
        (
            Box::new(|r| r.cgroup_parent = "../escape".into()),
            "resources.cgroup_parent",
        ),
        (
            Box::new(|r| r.cgroup_parent = "a/../../b".into()),
            "resources.cgroup_parent",
        ),
        (
            Box::new(|r| r.cgroup_parent = "/abs".into()),
            "resources.cgroup_parent",
        ),
        (
            Box::new(|r| r.freezer = "frozen".into()),
            "resources.freezer",
        ),
        (
            Box::new(|r| {
                r.devices = vec![execdriver_proto::DeviceRule {
                    path: "/etc/passwd".into(),
                    ..Default::default()
                }]
            }),
            "resources.devices[0].path",
        ),
        (
            Box::new(|r| {
                r.devices = vec![execdriver_proto::DeviceRule {
                    r#type: "c".into(),
                    major: 1,
                    minor: 3,
                    permissions: "rwx".into(),
                    ..Default::default()
                }]
            }),
            "resources.devices[0].permissions",
        ),
        (
            Box::new(|r| {
                r.devices = vec![execdriver_proto::DeviceRule {
                    r#type: "c".into(),
                    major: 99999,
                    minor: 3,
                    ..Default::default()
                }]
            }),
            "resources.devices[0].major",
        ),
        (
            Box::new(|r| {
                r.devices = vec![execdriver_proto::DeviceRule {
                    r#type: "c".into(),
                    major: 1,
                    minor: 3,
                    container_path: "/etc/x".into(),
                    ..Default::default()
                }]
            }),
            "resources.devices[0].container_path",
        ),
    ];
    for (mutate, field) in cases {
        assert_eq!(field_of(with_resources(mutate)), field);
    }
}

fn bridged() -> Defaults {
    Defaults {
        network: Some(BridgeNetwork::new("edbr0", "10.88.0.0/16", None, 0).unwrap()),
        ..Default::default()
    }
}

fn with_network(n: NetworkConfig) -> CreateRequest {
    CreateRequest {
        network: Some(n),
        ..req()
    }
}

fn bridge(f: impl FnOnce(&mut NetworkConfig)) -> CreateRequest {
    let mut n = NetworkConfig {
        mode: NetworkMode::Bridge as i32,
        ..Default::default()
    };
    f(&mut n);
    with_network(n)
}

fn net_error(r: CreateRequest, d: &Defaults) -> (String, String) {
    match create_request(&r, d, 0) {
        Err(Error::InvalidArgument { field, reason }) => (field, reason),
        Err(Error::FailedPrecondition(m)) => ("precondition".into(), m),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn security_converts_with_defaults_and_extras() {
    // Nothing asked: every default (Docker's capabilities, the default seccomp profile,
    // no_new_privs, Docker's masked paths) is container.json's "absent".
    let (c, _) = create_request(&req(), &Defaults::default(), 0).unwrap();
    assert_eq!(c.capabilities, None);
    assert!(c.seccomp.is_default());
    assert!(c.no_new_privs());
    assert_eq!(c.masked_paths, None);
    assert!(c.masked().contains(&"/proc/kcore".to_string()));
    assert!(c.context.is_empty());

    let mut r = req();
    r.namespaces = ["NEWNS", "NEWPID", "NEWUSER"].map(String::from).to_vec();
    let map = pb::IdMapping {
        container_id: 0,
        host_id: 100_000,
        size: 65536,
    };
    r.security = Some(pb::SecurityConfig {
        capabilities: vec!["CHOWN".into(), "CAP_KILL".into()],
        no_new_privileges: Some(false),
        rlimits: vec![pb::Rlimit {
            r#type: "nofile".into(),
            soft: 10,
            hard: 20,
        }],
        oom_score_adj: Some(-100),
        seccomp: Some(pb::SeccompConfig {
            profile: "unconfined".into(),
            ..Default::default()
        }),
        apparmor_profile: "unconfined".into(),
        uid_mappings: vec![map],
        gid_mappings: vec![map],
        masked_paths: vec!["/proc/extra".into()],
        readonly_paths: vec![],
        unmask_system_paths: false,
    });
    let (c, _) = create_request(&r, &Defaults::default(), 0).unwrap();
    assert_eq!(c.capabilities.as_deref().unwrap(), ["CHOWN", "CAP_KILL"]);
    assert_eq!(c.no_new_privileges, Some(false));
    assert_eq!(c.rlimits[0].kind, "RLIMIT_NOFILE");
    assert_eq!((c.rlimits[0].soft, c.rlimits[0].hard), (10, 20));
    assert_eq!(c.oom_score_adj, Some(-100));
    assert_eq!(c.seccomp, Seccomp::Unconfined);
    assert_eq!(c.context["apparmor_profile"], "unconfined");
    assert_eq!(c.uid_mappings[0].host_id, 100_000);
    let masked = c.masked_paths.clone().unwrap();
    assert!(masked.contains(&"/proc/kcore".to_string()) && masked.contains(&"/proc/extra".into()));
    assert_eq!(c.readonly_paths, None);
    // systempaths=unconfined: only what is asked.
    let mut r2 = req();
    r2.security = Some(pb::SecurityConfig {
        unmask_system_paths: true,
        ..Default::default()
    });
    let (c, _) = create_request(&r2, &Defaults::default(), 0).unwrap();
    assert_eq!(c.masked_paths, Some(vec![]));
    assert_eq!(c.readonly_paths, Some(vec![]));
}

#[test]
fn seccomp_profiles_are_checked() {
    let with = |s: pb::SeccompConfig| {
        let mut r = req();
        r.security = Some(pb::SecurityConfig {
            seccomp: Some(s),
            ..Default::default()
        });
        r
    };
    let rule = |name: &str| pb::SeccompSyscall {
        names: vec![name.into()],
        action: "SCMP_ACT_ERRNO".into(),
        ..Default::default()
    };
    // A profile without `profile: custom` is custom too.
    let (c, _) = create_request(
        &with(pb::SeccompConfig {
            default_action: "SCMP_ACT_ALLOW".into(),
            syscalls: vec![rule("keyctl")],
            ..Default::default()
        }),
        &Defaults::default(),
        0,
    )
    .unwrap();
    assert!(matches!(c.seccomp, Seccomp::Profile(ref p) if p.syscalls.len() == 1));
    assert_eq!(
        field_of(with(pb::SeccompConfig {
            profile: "unconfined".into(),
            syscalls: vec![rule("keyctl")],
            ..Default::default()
        })),
        "security.seccomp.profile"
    );
    assert_eq!(
        field_of(with(pb::SeccompConfig {
            default_action: "SCMP_ACT_ALLOW".into(),
            syscalls: vec![rule("read"), rule("")],
            ..Default::default()
        })),
        "security.seccomp.syscalls[1].names[0]"
    );
    // Too large a filter is refused before anything is made.
    let huge: Vec<pb::SeccompSyscall> = execdriver_spec::seccomp::tables::X86_64
        .iter()
        .enumerate()
        .map(|(i, (n, _))| pb::SeccompSyscall {
            names: vec![n.to_string()],
            action: "SCMP_ACT_ALLOW".into(),
            args: (0..6)
                .map(|a| pb::SeccompArg {
                    index: a,
                    value: i as u64,
                    op: "SCMP_CMP_GE".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    assert_eq!(
        field_of(with(pb::SeccompConfig {
            default_action: "SCMP_ACT_ERRNO".into(),
            syscalls: huge,
            ..Default::default()
        })),
        "security.seccomp.syscalls"
    );
}

#[test]
fn apparmor_without_apparmor_is_a_precondition_unless_allowed() {
    if shim_security::apparmor_enabled() {
        return; // this host can apply profiles
    }
    let mut r = req();
    r.security = Some(pb::SecurityConfig {
        apparmor_profile: "docker-default".into(),
        ..Default::default()
    });
    match create_request(&r, &Defaults::default(), 0) {
        Err(Error::FailedPrecondition(m)) => {
            assert!(m.starts_with("security.apparmor_profile: "), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let allowed = Defaults {
        allow_missing_apparmor: true,
        ..Defaults::default()
    };
    let (c, _) = create_request(&r, &allowed, 0).unwrap();
    assert_eq!(c.apparmor_profile(), Some("docker-default"));
}

#[test]
fn update_requests() {
    let up = |f: &dyn Fn(&mut execdriver_proto::Resources)| {
        let mut res = execdriver_proto::Resources::default();
        f(&mut res);
        update_request(&execdriver_proto::UpdateRequest {
            id: "c1".into(),
            resources: Some(res),
        })
    };
    let r = up(&|r| {
        r.memory = 128 << 20;
        r.memory_swap = 256 << 20;
        r.pids_limit = -1;
    })
    .unwrap();
    assert_eq!(
        (r.memory, r.memory_swap, r.pids_limit),
        (128 << 20, 256 << 20, -1)
    );
    // memory_swap alone is fine here (checked against the limit in force by the shim).
    up(&|r| r.memory_swap = 1 << 30).unwrap();
    let field = |e: Error| match e {
        Error::InvalidArgument { field, .. } => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field(up(&|r| r.memory = 5).unwrap_err()),
        "resources.memory"
    );
    assert_eq!(
        field(up(&|r| r.cgroup_parent = "x".into()).unwrap_err()),
        "resources.cgroup_parent"
    );
    assert_eq!(
        field(up(&|r| r.allow_all_devices = true).unwrap_err()),
        "resources.allow_all_devices"
    );
    assert_eq!(
        field(
            update_request(&execdriver_proto::UpdateRequest {
                id: "c1".into(),
                resources: None
            })
            .unwrap_err()
        ),
        "resources"
    );
}

#[test]
fn network_modes_convert() {
    // Default: bridge when the daemon has one, else none; host without NEWNET.
    let (c, m) = create_request(&req(), &bridged(), 0).unwrap();
    assert_eq!(m.network.mode, MODE_BRIDGE);
    assert_eq!(c.networks.len(), 1, "loopback now, the veth once addressed");
    assert!(c.has_namespace(Namespace::Net));
    let (_, m) = create_request(&req(), &Defaults::default(), 0).unwrap();
    assert_eq!(m.network.mode, MODE_NONE);
    let mut r = req();
    r.namespaces = vec!["NEWNS".into(), "NEWPID".into()];
    let (c, m) = create_request(&r, &bridged(), 0).unwrap();
    assert_eq!(m.network.mode, MODE_HOST);
    assert!(c.networks.is_empty());

    let host = NetworkConfig {
        mode: NetworkMode::Host as i32,
        ..Default::default()
    };
    let (c, m) = create_request(&with_network(host), &bridged(), 0).unwrap();
    assert_eq!(m.network.mode, MODE_HOST);
    assert!(!c.has_namespace(Namespace::Net));

    let netns = NetworkConfig {
        mode: NetworkMode::Netns as i32,
        netns_path: "/proc/self/ns/net".into(),
        ..Default::default()
    };
    let (c, m) = create_request(&with_network(netns), &Defaults::default(), 0).unwrap();
    assert_eq!(m.network.netns_path, "/proc/self/ns/net");
    assert!(!c.has_namespace(Namespace::Net));
    assert_eq!(c.networks[0].kind, "netns");
    assert_eq!(c.networks[0].context["nspath"], "/proc/self/ns/net");

    let r = bridge(|n| {
        n.address = "10.88.3.4/16".into();
        n.mac_address = "02:AA:bb:cc:dd:ee".into();
        n.mtu = 1400;
    });
    let (_, m) = create_request(&r, &bridged(), 0).unwrap();
    assert_eq!(m.network.address, "10.88.3.4");
    assert_eq!(m.network.mac_address, "02:aa:bb:cc:dd:ee");
    assert_eq!(m.network.mtu, 1400);
    let v = bridge_network(
        bridged().network.as_ref().unwrap(),
        "10.88.3.4".parse().unwrap(),
        &m.network,
    );
    assert_eq!(v.address, "10.88.3.4/16");
    assert_eq!(v.gateway, "10.88.0.1");
    assert_eq!(v.context["bridge"], "edbr0");
}

#[test]
fn slirp4netns_mode_converts() {
    let slirp = |mtu: u32| {
        with_network(NetworkConfig {
            mode: NetworkMode::Slirp4netns as i32,
            mtu,
            ..Default::default()
        })
    };
    // Also on a daemon with a bridge: nothing of the bridge is used.
    let (c, m) = create_request(&slirp(0), &bridged(), 0).unwrap();
    assert_eq!(m.network.mode, MODE_SLIRP4NETNS);
    assert_eq!(m.network.address, "10.0.2.100/24");
    assert_eq!(m.network.gateway, "10.0.2.2");
    assert_eq!(m.network.mtu, 65520);
    assert!(m.network.bridge.is_empty());
    assert!(c.has_namespace(Namespace::Net));
    let kinds: Vec<&str> = c.networks.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, ["loopback", "slirp4netns"]);
    assert_eq!(c.networks[1].mtu, 0);
    c.validate().unwrap();
    let (c, m) = create_request(&slirp(1500), &Defaults::default(), 0).unwrap();
    assert_eq!((m.network.mtu, c.networks[1].mtu), (1500, 1500));

    // The field each refusal names.
    let cases: Vec<(CreateRequest, &str)> = vec![
        (slirp(67), "network.mtu"),
        (slirp(65522), "network.mtu"),
        (
            with_network(NetworkConfig {
                mode: NetworkMode::Slirp4netns as i32,
                address: "10.0.2.100".into(),
                ..Default::default()
            }),
            "network.address",
        ),
        (
            with_network(NetworkConfig {
                mode: NetworkMode::Slirp4netns as i32,
                mac_address: "02:00:00:00:00:01".into(),
                ..Default::default()
            }),
            "network.mac_address",
        ),
        (
            CreateRequest {
                namespaces: vec!["NEWNS".into(), "NEWPID".into()],
                ..slirp(0)
            },
            "network.mode",
        ),
        (
            with_network(NetworkConfig {
                mode: NetworkMode::None as i32,
                mtu: 1500,
                ..Default::default()
            }),
            "network.mtu",
        ),
    ];
    for (r, field) in cases {
        let (got, reason) = net_error(r, &bridged());
        assert_eq!(got, field, "{reason}");
    }
}

#[test]
fn network_errors_name_the_field() {
    let d = bridged();
    let cases: Vec<(CreateRequest, &str)> = vec![
        (
            bridge(|n| n.address = "10.89.0.5".into()),
            "network.address",
        ),
        (
            bridge(|n| n.address = "10.88.0.5/8".into()),
            "network.address",
        ),
        (
            bridge(|n| n.address = "10.88.0.300".into()),
            "network.address",
        ),
        (bridge(|n| n.address = "fd00::5".into()), "network.address"),
        (
            bridge(|n| n.address = "10.88.0.1".into()),
            "network.address",
        ),
        (
            bridge(|n| n.address = "10.88.255.255".into()),
            "network.address",
        ),
        (
            bridge(|n| n.address = "10.88.0.0".into()),
            "network.address",
        ),
        (
            bridge(|n| n.mac_address = "ff:ff:ff:ff:ff:ff".into()),
            "network.mac_address",
        ),
        (
            bridge(|n| n.mac_address = "02:00:00".into()),
            "network.mac_address",
        ),
        (bridge(|n| n.mtu = 10), "network.mtu"),
        (bridge(|n| n.mtu = 100_000), "network.mtu"),
        (
            bridge(|n| n.container_id = "x".into()),
            "network.container_id",
        ),
        (
            bridge(|n| n.netns_path = "/proc/self/ns/net".into()),
            "network.netns_path",
        ),
        (bridge(|n| n.mode = 42), "network.mode"),
        (
            with_network(NetworkConfig {
                mode: NetworkMode::None as i32,
                address: "10.88.0.9".into(),
                ..Default::default()
            }),
            "network.address",
        ),
        (
            with_network(NetworkConfig {
                mode: NetworkMode::Netns as i32,
                netns_path: "/var/run/netns/no-such-execdriver-netns".into(),
                ..Default::default()
            }),
            "network.netns_path",
        ),
        (
            with_network(NetworkConfig {
                mode: NetworkMode::Netns as i32,
                netns_path: "relative/net".into(),
                ..Default::default()
            }),
            "network.netns_path",
        ),
        (
            with_network(NetworkConfig {
                mode: NetworkMode::Container as i32,
                ..Default::default()
            }),
            "network.container_id",
        ),
        (
            with_network(NetworkConfig {
                mode: NetworkMode::Container as i32,
                container_id: "../etc".into(),
                ..Default::default()
            }),
            "network.container_id",
        ),
        (
            CreateRequest {
                namespaces: vec!["NEWNS".into(), "NEWNET".into()],
                ..with_network(NetworkConfig {
                    mode: NetworkMode::Host as i32,
                    ..Default::default()
                })
            },
            "network.mode",
        ),
        (
            CreateRequest {
                namespaces: vec!["NEWNS".into()],
                ..bridge(|_| {})
            },
            "network.mode",
        ),
    ];
    for (r, field) in cases {
        let (got, reason) = net_error(r, &d);
        assert_eq!(got, field, "{reason}");
    }
    // Bridge mode on a daemon without a bridge is the daemon's state, not the request's.
    let (got, reason) = net_error(bridge(|_| {}), &Defaults::default());
    assert_eq!(got, "precondition");
    assert!(reason.starts_with("network.mode"), "{reason}");
}

#[test]
fn daemon_network_flags() {
    let n = BridgeNetwork::new("edbr0", "10.88.7.9/16", None, 0).unwrap();
    assert_eq!(n.subnet.to_string(), "10.88.0.0/16");
    assert_eq!(n.gateway, Ipv4Addr::new(10, 88, 0, 1));
    assert_eq!(n.first_host(), Ipv4Addr::new(10, 88, 0, 1));
    assert_eq!(n.last_host(), Ipv4Addr::new(10, 88, 255, 254));
    assert_eq!(n.gateway_cidr().to_string(), "10.88.0.1/16");
    let n = BridgeNetwork::new("edbr0", "10.88.0.0/24", Some("10.88.0.254"), 1400).unwrap();
    assert_eq!(n.gateway, Ipv4Addr::new(10, 88, 0, 254));
    let flag = |r: Result<BridgeNetwork>| match r {
        Err(Error::InvalidArgument { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        flag(BridgeNetwork::new("edbr0", "10.88.0.0", None, 0)),
        "--subnet"
    );
    assert_eq!(
        flag(BridgeNetwork::new("edbr0", "10.88.0.0/31", None, 0)),
        "--subnet"
    );
    assert_eq!(
        flag(BridgeNetwork::new("edbr0", "fd00::/64", None, 0)),
        "--subnet"
    );
    assert_eq!(
        flag(BridgeNetwork::new(
            "edbr0",
            "10.88.0.0/24",
            Some("10.88.1.1"),
            0
        )),
        "--gateway"
    );
    assert_eq!(
        flag(BridgeNetwork::new(
            "edbr0",
            "10.88.0.0/24",
            Some("10.88.0.255"),
            0
        )),
        "--gateway"
    );
    assert_eq!(
        flag(BridgeNetwork::new("a/b", "10.88.0.0/24", None, 0)),
        "--bridge"
    );
    assert_eq!(
        flag(BridgeNetwork::new("edbr0", "10.88.0.0/24", None, 9)),
        "--mtu"
    );
}

/// One vocabulary: a bad value in each field group is refused naming the request's field,
/// whether the conversion or a rule of the model (a typed `Field`, named in `names.rs`)
/// catches it.
#[test]
fn every_field_group_names_the_request_field() {
    type Mutation = Box<dyn Fn(&mut CreateRequest)>;
    let sec = |f: fn(&mut pb::SecurityConfig)| -> Mutation {
        Box::new(move |r: &mut CreateRequest| {
            let mut s = pb::SecurityConfig::default();
            f(&mut s);
            r.security = Some(s);
        })
    };
    let res = |f: fn(&mut execdriver_proto::Resources)| -> Mutation {
        Box::new(move |r: &mut CreateRequest| {
            let mut x = execdriver_proto::Resources::default();
            f(&mut x);
            r.resources = Some(x);
        })
    };
    let cases: Vec<(&str, Mutation)> = vec![
        // process
        (
            "process.user",
            Box::new(|r| r.process.as_mut().unwrap().user = "root".into()),
        ),
        // the container itself
        ("hostname", Box::new(|r| r.hostname = "a/b".into())),
        // mounts
        (
            "mounts[0].destination",
            Box::new(|r| {
                r.mounts = vec![ProtoMount {
                    source: "/tmp".into(),
                    destination: "/".into(),
                    ..Default::default()
                }]
            }),
        ),
        // resources
        ("resources.cpu_shares", res(|x| x.cpu_shares = 1)),
        ("resources.memory_swap", res(|x| x.memory_swap = 64 << 20)),
        ("resources.pids_limit", res(|x| x.pids_limit = -5)),
        (
            "resources.devices[0].major",
            res(|x| {
                x.devices = vec![pb::DeviceRule {
                    r#type: "c".into(),
                    major: 5000,
                    minor: 1,
                    permissions: "rw".into(),
                    ..Default::default()
                }]
            }),
        ),
        (
            "resources.devices[0].permissions",
            res(|x| {
                x.devices = vec![pb::DeviceRule {
                    r#type: "c".into(),
                    major: 1,
                    minor: 3,
                    permissions: "rx".into(),
                    ..Default::default()
                }]
            }),
        ),
        // security
        (
            "security.capabilities[0]",
            sec(|s| s.capabilities = vec!["BOGUS".into()]),
        ),
        (
            "security.rlimits[0].soft",
            sec(|s| {
                s.rlimits = vec![pb::Rlimit {
                    r#type: "RLIMIT_NOFILE".into(),
                    hard: 1,
                    soft: 2,
                }]
            }),
        ),
        (
            "security.oom_score_adj",
            sec(|s| s.oom_score_adj = Some(1001)),
        ),
        (
            "security.masked_paths[0]",
            sec(|s| s.masked_paths = vec!["relative".into()]),
        ),
        (
            "security.uid_mappings[1].container_id",
            sec(|s| {
                s.uid_mappings = vec![id_map(0, 100_000, 1000), id_map(10, 200_000, 10)];
                s.gid_mappings = vec![id_map(0, 100_000, 1000)];
            }),
        ),
    ];
    for (want, mutate) in cases {
        let mut r = req();
        if want.contains("_mappings") {
            r.namespaces = DEFAULT_NAMESPACES
                .iter()
                .map(|n| n.name().to_owned())
                .chain(["NEWUSER".to_owned()])
                .collect();
        }
        mutate(&mut r);
        match create_request(&r, &Defaults::default(), 0) {
            Err(Error::InvalidArgument { field, reason }) => {
                assert_eq!(field, want, "{reason}")
            }
            other => panic!("{want}: expected InvalidArgument, got {other:?}"),
        }
    }
    // network
    let (field, reason) = net_error(
        bridge(|n| n.mac_address = "01:00:00:00:00:01".into()),
        &bridged(),
    );
    assert_eq!(field, "network.mac_address", "{reason}");
}

fn id_map(container_id: u32, host_id: u32, size: u32) -> pb::IdMapping {
    pb::IdMapping {
        container_id,
        host_id,
        size,
    }
}
