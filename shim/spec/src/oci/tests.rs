//! OCI config.json: parsed as engines write it, converted with OCI's meanings, and refused
//! naming the JSON path.

use std::path::Path;

use super::*;

const RUNC_SPEC: &str = include_str!("../../testdata/oci-config.json");

fn spec() -> Spec {
    Spec::parse(RUNC_SPEC.as_bytes()).unwrap()
}

fn convert(s: &Spec) -> Result<Converted, OciError> {
    to_config(s, "c1", Path::new("/bundle"), false)
}

fn path_of(s: &Spec) -> String {
    match convert(s) {
        Err(e) => e.path,
        Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn runcs_spec_converts_with_oci_meanings() {
    let c = convert(&spec()).unwrap().config;
    assert_eq!(c.rootfs.as_deref(), Some(Path::new("/bundle/rootfs")));
    assert!(c.readonly_fs);
    assert!(c.tty);
    assert_eq!(c.hostname, "runc");
    assert_eq!(c.args, ["sh"]);
    assert_eq!(c.user, "0:0");
    assert_eq!(c.namespaces.len(), 6);
    let sets = c.capability_sets.clone().unwrap();
    assert_eq!(
        sets.bounding,
        ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    );
    assert!(sets.inheritable.is_empty());
    // Nothing added: no seccomp filter, masked paths exactly as given, the mounts as listed.
    assert_eq!(c.seccomp, crate::seccomp::Seccomp::Unconfined);
    assert_eq!(c.masked_paths.as_ref().unwrap().len(), 10);
    let fs = c.filesystems.as_ref().unwrap();
    assert_eq!(fs.len(), 7);
    assert_eq!(fs[1].kind, "tmpfs");
    assert_eq!(
        fs[1].options,
        ["nosuid", "strictatime", "mode=755", "size=65536k"]
    );
    let cg = c.cgroups.as_ref().unwrap();
    assert_eq!(
        (cg.parent.as_str(), cg.name.as_str()),
        ("execdriver-runc", "c1")
    );
    assert!(cg.devices_exact);
    // The leading deny-all is implied; the standard devices are allowed after the config's
    // rules, as every OCI runtime does.
    assert_eq!(cg.devices.len(), convert::DEFAULT_ALLOWED_DEVICES.len());
    assert!(cg.devices.iter().all(|d| !d.deny));
    assert_eq!(c.no_new_privileges, Some(true));
}

#[test]
fn unknown_fields_are_ignored_and_null_is_absent() {
    let mut v: serde_json::Value = serde_json::from_str(RUNC_SPEC).unwrap();
    v["somethingNew"] = serde_json::json!({"x": 1});
    v["process"]["futureField"] = serde_json::json!(true);
    v["linux"]["maskedPaths"] = serde_json::Value::Null;
    v["process"]["env"] = serde_json::Value::Null;
    let s: Spec = serde_json::from_value(v).unwrap();
    let c = convert(&s).unwrap().config;
    assert!(c.environment.is_empty());
    assert_eq!(c.masked_paths, Some(vec![]));
}

#[test]
fn cgroups_paths() {
    let mut s = spec();
    s.linux.as_mut().unwrap().cgroups_path = "/docker/abc".into();
    let cg = convert(&s).unwrap().config.cgroups.unwrap();
    assert_eq!((cg.parent.as_str(), cg.name.as_str()), ("docker", "abc"));
    s.linux.as_mut().unwrap().cgroups_path = "system.slice:docker:abc".into();
    let e = convert(&s).unwrap_err();
    assert_eq!(e.path, "linux.cgroupsPath");
    assert!(e.reason.contains("systemd"), "{e}");
    let cg = to_config(&s, "c1", Path::new("/b"), true)
        .unwrap()
        .config
        .cgroups
        .unwrap();
    assert_eq!(
        (cg.parent.as_str(), cg.name.as_str()),
        ("system.slice", "docker-abc.scope")
    );
}

#[test]
fn resources_and_devices_convert() {
    let mut s = spec();
    let l = s.linux.as_mut().unwrap();
    l.resources = Some(Resources {
        memory: Some(Memory {
            limit: Some(64 << 20),
            swappiness: Some(10),
            ..Default::default()
        }),
        cpu: Some(Cpu {
            shares: Some(512),
            quota: Some(50_000),
            period: Some(100_000),
            ..Default::default()
        }),
        pids: Some(Pids { limit: 20 }),
        devices: vec![
            DeviceRule {
                allow: false,
                access: Some("rwm".into()),
                ..Default::default()
            },
            DeviceRule {
                allow: true,
                kind: Some("c".into()),
                major: Some(1),
                minor: Some(3),
                access: Some("rw".into()),
            },
        ],
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 1 << 30,
        }],
        ..Default::default()
    });
    l.devices = vec![LinuxDevice {
        path: "/dev/fuse".into(),
        kind: "c".into(),
        major: 10,
        minor: 229,
        file_mode: Some(0o666),
        uid: Some(0),
        gid: Some(0),
    }];
    let cg = convert(&s).unwrap().config.cgroups.unwrap();
    assert_eq!(cg.memory, 64 << 20);
    assert_eq!(cg.memory_swappiness, Some(10));
    assert_eq!(
        (cg.cpu_shares, cg.cpu_quota, cg.cpu_period),
        (512, 50_000, 100_000)
    );
    assert_eq!(cg.pids_limit, 20);
    let n = convert::DEFAULT_ALLOWED_DEVICES.len();
    assert_eq!(cg.devices.len(), 2 + n);
    assert_eq!(cg.devices[0].major_number, 1);
    assert_eq!(cg.devices[1 + n].path, "/dev/fuse");
    assert_eq!(cg.hugepage_limits[0].limit, 1 << 30);
}

#[test]
fn errors_name_the_json_path() {
    type M = Box<dyn Fn(&mut Spec)>;
    let cases: Vec<(M, &str)> = vec![
        (Box::new(|s| s.oci_version = "2.0.0".into()), "ociVersion"),
        (Box::new(|s| s.root = None), "root"),
        (
            Box::new(|s| s.process.as_mut().unwrap().args.clear()),
            "process.args",
        ),
        (
            Box::new(|s| s.process.as_mut().unwrap().cwd = "rel".into()),
            "process.cwd",
        ),
        (
            Box::new(|s| s.process.as_mut().unwrap().env = vec!["NOEQ".into()]),
            "process.env[0]",
        ),
        (
            Box::new(|s| {
                s.process
                    .as_mut()
                    .unwrap()
                    .capabilities
                    .as_mut()
                    .unwrap()
                    .effective[2] = "CAP_BOGUS".into()
            }),
            "process.capabilities.effective[2]",
        ),
        (
            Box::new(|s| s.process.as_mut().unwrap().rlimits[0].soft = 4096),
            "process.rlimits[0].soft",
        ),
        (
            Box::new(|s| s.mounts[3].destination = "dev/shm".into()),
            "mounts[3].destination",
        ),
        (
            Box::new(|s| {
                s.linux.as_mut().unwrap().namespaces.push(LinuxNamespace {
                    kind: "clock".into(),
                    path: String::new(),
                })
            }),
            "linux.namespaces[6].type",
        ),
        (
            Box::new(|s| {
                let linux = s.linux.as_mut().unwrap();
                linux.namespaces.push(LinuxNamespace {
                    kind: "time".into(),
                    path: String::new(),
                });
                linux
                    .time_offsets
                    .insert("realtime".into(), Default::default());
            }),
            "linux.timeOffsets.realtime",
        ),
        (
            Box::new(|s| {
                s.mounts[0].uid_mappings = vec![IdMapping {
                    container_id: 0,
                    host_id: 1000,
                    size: 1,
                }]
            }),
            "mounts[0].options",
        ),
        (
            Box::new(|s| s.linux.as_mut().unwrap().namespaces[1].path = "net".into()),
            "linux.namespaces[1].path",
        ),
        (
            Box::new(|s| {
                s.linux.as_mut().unwrap().resources.as_mut().unwrap().memory = Some(Memory {
                    limit: Some(4096),
                    ..Default::default()
                })
            }),
            "linux.resources.memory.limit",
        ),
        (
            Box::new(|s| {
                s.linux
                    .as_mut()
                    .unwrap()
                    .sysctl
                    .insert("vm.swappiness".into(), "1".into());
            }),
            "linux.sysctl.vm.swappiness",
        ),
        (
            Box::new(|s| s.linux.as_mut().unwrap().rootfs_propagation = "sideways".into()),
            "linux.rootfsPropagation",
        ),
        (
            Box::new(|s| {
                s.linux.as_mut().unwrap().seccomp = Some(Seccomp {
                    default_action: "SCMP_ACT_ERRNO".into(),
                    listener_path: "/run/agent.sock".into(),
                    ..Default::default()
                })
            }),
            "linux.seccomp.listenerPath",
        ),
        (
            Box::new(|s| {
                s.linux.as_mut().unwrap().seccomp = Some(Seccomp {
                    default_action: "SCMP_ACT_BOGUS".into(),
                    ..Default::default()
                })
            }),
            "linux.seccomp.defaultAction",
        ),
        (
            Box::new(|s| {
                s.linux.as_mut().unwrap().devices = vec![LinuxDevice {
                    path: "/etc/passwd".into(),
                    kind: "c".into(),
                    major: 1,
                    minor: 3,
                    ..Default::default()
                }]
            }),
            "linux.devices[0].path",
        ),
        (
            Box::new(|s| {
                s.hooks = Some(Hooks {
                    create_runtime: vec![Hook {
                        path: "relative/hook".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            }),
            "hooks.createRuntime[0].path",
        ),
        (
            Box::new(|s| {
                s.linux.as_mut().unwrap().uid_mappings = vec![IdMapping {
                    container_id: 0,
                    host_id: 1000,
                    size: 1,
                }]
            }),
            "linux.uidMappings",
        ),
    ];
    for (mutate, want) in cases {
        let mut s = spec();
        mutate(&mut s);
        assert_eq!(path_of(&s), want);
    }
}

#[test]
fn state_and_features_serialize_as_the_spec_names_them() {
    let st = State::new("c1", Status::Created, 42, "/b");
    let v = serde_json::to_value(&st).unwrap();
    assert_eq!(v["ociVersion"], OCI_VERSION);
    assert_eq!(v["status"], "created");
    assert_eq!(v["pid"], 42);
    let f = features(&["pid", "mount"], &["CAP_KILL".into()], true, true, false);
    let v = serde_json::to_value(&f).unwrap();
    assert_eq!(v["ociVersionMax"], OCI_VERSION);
    assert_eq!(v["linux"]["cgroup"]["v1"], true);
    assert!(v["hooks"].as_array().unwrap().len() == 6);
}
