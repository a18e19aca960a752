//! Unit tests of the container.json model and its checks.

use super::*;

const SEED_SAMPLE: &str = include_str!("../../testdata/seed-container.json");

#[test]
fn seed_sample_parses_and_validates() {
    let c: Config = serde_json::from_str(SEED_SAMPLE).unwrap();
    assert_eq!(c.hostname, "koye");
    assert_eq!(c.networks[0].kind, "veth");
    assert_eq!(c.networks[0].context["bridge"], "docker0");
    assert_eq!(c.networks[0].mtu, 1500);
    assert_eq!(c.cgroups.as_ref().unwrap().parent, "docker");
    assert!(c.tty);
    assert_eq!(c.capabilities_mask.len(), 15);
    assert_eq!(c.context["apparmor_profile"], "docker-default");
    assert_eq!(c.mounts.len(), 3);
    assert!(!c.mounts[0].writable);
    assert!(c.mounts[0].private);
    assert_eq!(c.namespaces, DEFAULT_NAMESPACES.to_vec());
    c.validate().unwrap();
}

#[test]
fn round_trip_keeps_seed_field_names() {
    let c: Config = serde_json::from_str(SEED_SAMPLE).unwrap();
    let v: serde_json::Value = serde_json::to_value(&c).unwrap();
    for key in [
        "hostname",
        "networks",
        "cgroups",
        "tty",
        "environment",
        "capabilities_mask",
        "context",
        "mounts",
        "namespaces",
    ] {
        assert!(v.get(key).is_some(), "{key} missing from serialized config");
    }
    let back: Config = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
}

fn valid() -> Config {
    Config {
        namespaces: DEFAULT_NAMESPACES.to_vec(),
        args: vec!["/bin/true".into()],
        ..Default::default()
    }
}

#[test]
fn errors_name_the_field() {
    type Mutation = Box<dyn Fn(&mut Config)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|c| c.capabilities_mask = vec!["SYS_BOGUS".into()]),
            "capabilities_mask[0]",
        ),
        (
            Box::new(|c| c.namespaces.retain(|n| *n != Namespace::Mount)),
            "namespaces",
        ),
        (
            Box::new(|c| c.namespaces.push(Namespace::Pid)),
            "namespaces[5]",
        ),
        (
            Box::new(|c| {
                c.mounts = vec![Mount {
                    source: "rel".into(),
                    destination: "/x".into(),
                    ..Default::default()
                }]
            }),
            "mounts[0].source",
        ),
        (
            Box::new(|c| {
                c.mounts = vec![Mount {
                    source: "/a".into(),
                    destination: "/x/../../etc".into(),
                    ..Default::default()
                }]
            }),
            "mounts[0].destination",
        ),
        (
            Box::new(|c| c.environment = vec!["NOEQUALS".into()]),
            "environment[0]",
        ),
        (Box::new(|c| c.user = "root".into()), "user"),
        (Box::new(|c| c.working_dir = "tmp".into()), "working_dir"),
        (Box::new(|c| c.hostname = "x".repeat(65)), "hostname"),
        (
            Box::new(|c| {
                c.cgroups = Some(Cgroups {
                    parent: "../x".into(),
                    name: "a".into(),
                    ..Default::default()
                })
            }),
            "cgroups.parent",
        ),
        (Box::new(|c| c.args = vec!["a\0b".into()]), "args[0]"),
    ];
    for (mutate, field) in cases {
        let mut c = valid();
        mutate(&mut c);
        let err = c.validate().unwrap_err();
        assert_eq!(err.field.json_path(), field, "{err}");
    }
    valid().validate().unwrap();
}

fn veth() -> Network {
    Network {
        kind: "veth".into(),
        address: "172.17.0.2/16".into(),
        gateway: "172.17.42.1".into(),
        mtu: 1500,
        context: BTreeMap::from([
            ("bridge".to_string(), "docker0".to_string()),
            ("prefix".to_string(), "veth".to_string()),
        ]),
        ..Default::default()
    }
}

#[test]
fn network_errors_name_the_field() {
    type Mutation = Box<dyn Fn(&mut Network)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|n| n.kind = "macvlan".into()), "networks[1].type"),
        (Box::new(|n| n.kind.clear()), "networks[1].type"),
        (
            Box::new(|n| n.address = "172.17.0.2".into()),
            "networks[1].address",
        ),
        (
            Box::new(|n| n.address = "172.17.0.300/16".into()),
            "networks[1].address",
        ),
        (Box::new(|n| n.address.clear()), "networks[1].address"),
        (
            Box::new(|n| n.address = "127.0.0.2/8".into()),
            "networks[1].address",
        ),
        (
            Box::new(|n| n.gateway = "10.0.0.1".into()),
            "networks[1].gateway",
        ),
        (
            Box::new(|n| n.gateway = "localhost".into()),
            "networks[1].gateway",
        ),
        (
            Box::new(|n| n.gateway = "172.17.0.2".into()),
            "networks[1].gateway",
        ),
        (Box::new(|n| n.mtu = 20), "networks[1].mtu"),
        (Box::new(|n| n.mtu = 70000), "networks[1].mtu"),
        (
            Box::new(|n| n.mac_address = "01:00:5e:00:00:01".into()),
            "networks[1].mac_address",
        ),
        (
            Box::new(|n| n.mac_address = "nope".into()),
            "networks[1].mac_address",
        ),
        (
            Box::new(|n| {
                n.context.remove("bridge");
            }),
            "networks[1].context.bridge",
        ),
        (
            Box::new(|n| {
                n.context.insert("bridge".into(), "x".repeat(16));
            }),
            "networks[1].context.bridge",
        ),
        (
            Box::new(|n| {
                n.context.insert("prefix".into(), "toolongprefix".into());
            }),
            "networks[1].context.prefix",
        ),
    ];
    let lo = Network {
        kind: "loopback".into(),
        address: "127.0.0.1/0".into(),
        gateway: "localhost".into(),
        mtu: 1500,
        ..Default::default()
    };
    for (mutate, field) in cases {
        let mut c = valid();
        let mut n = veth();
        mutate(&mut n);
        c.networks = vec![lo.clone(), n];
        let err = c.validate().unwrap_err();
        assert_eq!(err.field.json_path(), field, "{err}");
    }
    // The seed era's loopback entry (address 127.0.0.1/0, gateway "localhost") is fine.
    let mut c = valid();
    c.networks = vec![lo.clone(), veth()];
    c.validate().unwrap();

    // veth and loopback need NEWNET; netns needs a path and stands alone.
    let mut c = valid();
    c.namespaces.retain(|n| *n != Namespace::Net);
    c.networks = vec![veth()];
    assert_eq!(
        c.validate().unwrap_err().field.json_path(),
        "networks[0].type"
    );
    c.networks = vec![lo.clone()];
    assert_eq!(
        c.validate().unwrap_err().field.json_path(),
        "networks[0].type"
    );
    let netns = |p: &str| Network {
        kind: "netns".into(),
        context: BTreeMap::from([("nspath".to_string(), p.to_string())]),
        ..Default::default()
    };
    c.networks = vec![netns("/var/run/netns/x")];
    c.validate().unwrap();
    c.networks = vec![netns("relative")];
    assert_eq!(
        c.validate().unwrap_err().field.json_path(),
        "networks[0].context.nspath"
    );
    let mut c = valid();
    c.networks = vec![netns("/proc/1/ns/net"), veth()];
    assert_eq!(
        c.validate().unwrap_err().field.json_path(),
        "networks[0].type"
    );
    c.networks = vec![netns("/proc/1/ns/net"), netns("/proc/2/ns/net")];
    assert_eq!(
        c.validate().unwrap_err().field.json_path(),
        "networks[0].type"
    );
    // One default route per family.
    let mut second = veth();
    second.address = "172.17.0.3/16".into();
    c.networks = vec![veth(), second];
    assert_eq!(
        c.validate().unwrap_err().field.json_path(),
        "networks[1].gateway"
    );
}

#[test]
fn slirp4netns_networks_are_checked() {
    let slirp = || Network {
        kind: "slirp4netns".into(),
        ..Default::default()
    };
    let lo = Network {
        kind: "loopback".into(),
        ..Default::default()
    };
    let mut c = valid();
    c.networks = vec![lo.clone(), slirp()];
    c.validate().unwrap();
    assert_eq!(c.slirp4netns().map(|(i, _)| i), Some(1));
    for mtu in [MIN_MTU, 1500, 65520, 65521] {
        let mut n = slirp();
        n.mtu = mtu;
        c.networks = vec![lo.clone(), n];
        c.validate().unwrap();
    }

    type Mutation = Box<dyn Fn(&mut Network)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|n| n.address = "10.0.2.100/24".into()),
            "networks[1].address",
        ),
        (
            Box::new(|n| n.gateway = "10.0.2.2".into()),
            "networks[1].gateway",
        ),
        (
            Box::new(|n| n.mac_address = "02:00:00:00:00:01".into()),
            "networks[1].mac_address",
        ),
        (
            Box::new(|n| {
                n.context.insert("bridge".into(), "br0".into());
            }),
            "networks[1].context",
        ),
        (Box::new(|n| n.mtu = 67), "networks[1].mtu"),
        (Box::new(|n| n.mtu = 65522), "networks[1].mtu"),
    ];
    for (mutate, field) in cases {
        let mut n = slirp();
        mutate(&mut n);
        c.networks = vec![lo.clone(), n];
        let err = c.validate().unwrap_err();
        assert_eq!(err.field.json_path(), field, "{err}");
    }

    // At most one; never with a veth or a joined namespace; only with NEWNET.
    c.networks = vec![slirp(), slirp()];
    let err = c.validate().unwrap_err();
    assert_eq!(err.field.json_path(), "networks[0].type", "{err}");
    assert!(err.reason.contains("at most one"), "{err}");
    c.networks = vec![slirp(), veth()];
    assert_eq!(
        c.validate().unwrap_err().field.json_path(),
        "networks[0].type"
    );
    c.networks = vec![
        Network {
            kind: "netns".into(),
            context: BTreeMap::from([("nspath".to_string(), "/proc/1/ns/net".to_string())]),
            ..Default::default()
        },
        slirp(),
    ];
    assert_eq!(
        c.validate().unwrap_err().field.json_path(),
        "networks[0].type"
    );
    c.namespaces.retain(|n| *n != Namespace::Net);
    c.networks = vec![slirp()];
    let err = c.validate().unwrap_err();
    assert_eq!(err.field.json_path(), "networks[0].type", "{err}");
    assert!(err.reason.contains("NEWNET"), "{err}");
}

#[test]
fn unknown_fields_and_namespaces_are_rejected() {
    assert!(serde_json::from_str::<Config>(r#"{"capabilites_mask": []}"#).is_err());
    assert!(serde_json::from_str::<Config>(r#"{"namespaces": ["NEWFOO"]}"#).is_err());
}

#[test]
fn user_parsing() {
    assert_eq!(User::parse("").unwrap(), User { uid: 0, gid: 0 });
    assert_eq!(
        User::parse("1000").unwrap(),
        User {
            uid: 1000,
            gid: 1000
        }
    );
    assert_eq!(User::parse("1000:5").unwrap(), User { uid: 1000, gid: 5 });
    assert!(User::parse("1000:").is_err());
    assert!(User::parse("-1").is_err());
}

fn with_cgroups(f: impl Fn(&mut Cgroups)) -> Config {
    let mut cg = Cgroups {
        parent: "p".into(),
        name: "n".into(),
        ..Default::default()
    };
    f(&mut cg);
    Config {
        cgroups: Some(cg),
        ..valid()
    }
}

#[test]
fn cgroup_resources_are_checked_and_errors_name_the_field() {
    type Mutation = Box<dyn Fn(&mut Cgroups)>;
    let bad: Vec<(Mutation, &str)> = vec![
        (Box::new(|c| c.memory = 1000), "cgroups.memory"),
        (Box::new(|c| c.memory = -2), "cgroups.memory"),
        (
            Box::new(|c| c.memory_swap = 64 << 20),
            "cgroups.memory_swap",
        ),
        (
            Box::new(|c| {
                c.memory = 64 << 20;
                c.memory_swap = 32 << 20
            }),
            "cgroups.memory_swap",
        ),
        (
            Box::new(|c| c.memory_reservation = -5),
            "cgroups.memory_reservation",
        ),
        (
            Box::new(|c| {
                c.share_parent = vec!["memory".into()];
                c.memory = 64 << 20
            }),
            "cgroups.share_parent",
        ),
        (
            Box::new(|c| {
                c.share_parent = vec!["memory".into()];
                c.unified.insert("memory.high".into(), "1G".into());
            }),
            "cgroups.share_parent",
        ),
        (
            Box::new(|c| {
                c.share_parent = vec!["cpuset".into()];
                c.cpuset_cpus = "0".into();
            }),
            "cgroups.share_parent",
        ),
        (
            Box::new(|c| c.share_parent = vec!["pids".into()]),
            "cgroups.share_parent",
        ),
        (Box::new(|c| c.cpu_shares = 1), "cgroups.cpu_shares"),
        (Box::new(|c| c.cpu_shares = 300_000), "cgroups.cpu_shares"),
        (Box::new(|c| c.cpu_period = 999), "cgroups.cpu_period"),
        (Box::new(|c| c.cpu_quota = 10), "cgroups.cpu_quota"),
        (
            Box::new(|c| c.cpuset_cpus = "0-".into()),
            "cgroups.cpuset_cpus",
        ),
        (
            Box::new(|c| c.cpuset_mems = "3-1".into()),
            "cgroups.cpuset_mems",
        ),
        (Box::new(|c| c.blkio_weight = 5), "cgroups.blkio_weight"),
        (Box::new(|c| c.pids_limit = -3), "cgroups.pids_limit"),
        (
            Box::new(|c| c.pids_limit = MAX_PIDS + 1),
            "cgroups.pids_limit",
        ),
        (Box::new(|c| c.freezer = "frozen".into()), "cgroups.freezer"),
        (
            Box::new(|c| {
                c.devices = vec![Device {
                    kind: "x".into(),
                    cgroup_permissions: "rwm".into(),
                    ..Default::default()
                }]
            }),
            "cgroups.devices[0].type",
        ),
        (
            Box::new(|c| {
                c.devices = vec![Device {
                    kind: "c".into(),
                    major_number: 1,
                    minor_number: 3,
                    cgroup_permissions: "rwx".into(),
                    ..Default::default()
                }]
            }),
            "cgroups.devices[0].cgroup_permissions",
        ),
        (
            Box::new(|c| {
                c.devices = vec![Device {
                    kind: "c".into(),
                    path: "/etc/passwd".into(),
                    major_number: 1,
                    minor_number: 3,
                    cgroup_permissions: "rw".into(),
                    ..Default::default()
                }]
            }),
            "cgroups.devices[0].path",
        ),
        (
            Box::new(|c| {
                c.devices = vec![Device {
                    kind: "c".into(),
                    major_number: -7,
                    minor_number: 3,
                    cgroup_permissions: "rw".into(),
                    ..Default::default()
                }]
            }),
            "cgroups.devices[0].major_number",
        ),
    ];
    for (mutate, field) in bad {
        let err = with_cgroups(mutate).validate().unwrap_err();
        assert_eq!(err.field.json_path(), field, "{err}");
    }
    with_cgroups(|c| {
        c.memory = 32 << 20;
        c.memory_swap = -1;
        c.memory_reservation = 16 << 20;
        c.cpu_shares = 512;
        c.cpu_quota = 20_000;
        c.cpu_period = 100_000;
        c.cpuset_cpus = "0".into();
        c.cpuset_mems = "0".into();
        c.blkio_weight = 500;
        c.pids_limit = 20;
        c.freezer = "FROZEN".into();
        c.devices = vec![Device {
            kind: "c".into(),
            path: "/dev/fuse".into(),
            major_number: 10,
            minor_number: 229,
            cgroup_permissions: "rwm".into(),
            file_mode: 0o600,
            ..Default::default()
        }];
    })
    .validate()
    .unwrap();
}

#[test]
fn cgroup_fields_keep_libcontainer_names() {
    let json = r#"{"parent": "docker", "name": "x", "memory": 33554432, "memory_swap": -1,
        "cpu_shares": 512, "cpu_quota": 20000, "cpu_period": 100000, "cpuset_cpus": "0",
        "memory_reservation": 1048576, "cpuset_mems": "0", "blkio_weight": 300,
        "pids_limit": 20, "device_access": false, "freezer": "THAWED",
        "devices": [{"type": "c", "major_number": 10, "minor_number": 229,
                     "cgroup_permissions": "rwm", "path": "/dev/fuse"}]}"#;
    let cg: Cgroups = serde_json::from_str(json).unwrap();
    assert_eq!(cg.memory, 32 << 20);
    assert_eq!(cg.devices[0].minor_number, 229);
    let back = serde_json::to_value(&cg).unwrap();
    for key in [
        "memory",
        "memory_swap",
        "cpu_shares",
        "cpu_quota",
        "pids_limit",
        "devices",
    ] {
        assert!(back.get(key).is_some(), "{key}");
    }
    assert!(serde_json::from_str::<Cgroups>(r#"{"name": "x", "memory_limit": 1}"#).is_err());
}

#[test]
fn cpu_lists() {
    assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
    assert_eq!(parse_cpu_list("1,1").unwrap(), vec![1]);
    assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
    for bad in ["a", "1-", "-1", "3-1", "0,,1", "99999"] {
        assert!(parse_cpu_list(bad).is_err(), "{bad}");
    }
}

#[test]
fn what_the_kernel_would_refuse_is_refused_up_front() {
    type Mutation = Box<dyn Fn(&mut Config)>;
    let cases: Vec<(Mutation, &str)> = vec![
        // 200 variables of 60 KB: execve's E2BIG.
        (
            Box::new(|c| c.environment = vec![format!("A={}", "x".repeat(60_000)); 200]),
            "environment[17]",
        ),
        (
            Box::new(|c| c.environment = vec![format!("A={}", "x".repeat(200_000))]),
            "environment[0]",
        ),
        (
            Box::new(|c| c.args = vec!["/bin/echo".into(), "x".repeat(131_072)]),
            "args[1]",
        ),
        (Box::new(|c| c.user = "4294967295".into()), "user"),
        (Box::new(|c| c.user = "0:4294967295".into()), "user"),
        (
            Box::new(|c| {
                c.mounts = vec![Mount {
                    source: "/tmp".into(),
                    destination: "/dev".into(),
                    ..Default::default()
                }]
            }),
            "mounts[0].destination",
        ),
        (
            Box::new(|c| {
                c.mounts = vec![Mount {
                    source: "/proc".into(),
                    destination: "/proc/".into(),
                    ..Default::default()
                }]
            }),
            "mounts[0].destination",
        ),
        (
            Box::new(|c| {
                c.mounts = vec![Mount {
                    source: "/proc/1".into(),
                    destination: "/proc/1".into(),
                    ..Default::default()
                }]
            }),
            "mounts[0].destination",
        ),
    ];
    for (mutate, field) in cases {
        let mut c = valid();
        mutate(&mut c);
        let err = c.validate().unwrap_err();
        assert_eq!(err.field.json_path(), field, "{err}");
    }
    // What lxcfs provides may be bound below /proc; a big but possible environment passes.
    let mut c = valid();
    c.mounts = vec![Mount {
        source: "/proc/meminfo".into(),
        destination: "/proc/meminfo".into(),
        ..Default::default()
    }];
    c.environment = vec![format!("A={}", "x".repeat(60_000)); 10];
    c.validate().unwrap();
}
