//! Property tests ("fuzzing" on stable Rust) of the request-to-config conversion: whatever a
//! client sends, `convert` never panics, every refusal names a field, and whatever it accepts
//! is a container.json the shim accepts too (it validates, and survives a write and a read).
//!
//! A bounded number of cases runs with `cargo test`; for a longer run:
//! `PROPTEST_CASES=200000 cargo test -p execdriver-driver --test fuzz_convert --release`.
//! Inputs that ever broke something are kept as plain tests at the end of this file.

use execdriver_driver::convert::{self, BridgeNetwork, Defaults};
use execdriver_driver::error::Error;
use execdriver_proto as pb;
use execdriver_spec::config::Config;
use proptest::prelude::*;

fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("/".to_owned()),
        Just("/tmp".to_owned()),
        Just("/dev/null".to_owned()),
        Just("/proc/self/ns/net".to_owned()),
        Just("..".to_owned()),
        Just("a/b".to_owned()),
        Just("../../etc".to_owned()),
        Just("relative".to_owned()),
        Just("a\0b".to_owned()),
        Just("é🙂\u{202e}".to_owned()),
        Just("x".repeat(70_000)),
        Just("c1".to_owned()),
        Just("0-1".to_owned()),
        Just("0-4294967295".to_owned()),
        Just("-1".to_owned()),
        Just("1000:1000".to_owned()),
        Just("A=1".to_owned()),
        Just("=x".to_owned()),
        Just("SYS_ADMIN".to_owned()),
        Just("NEWNET".to_owned()),
        Just("10.88.0.7".to_owned()),
        Just("10.88.0.7/16".to_owned()),
        Just("02:00:00:00:00:01".to_owned()),
        Just("ff:ff:ff:ff:ff:ff".to_owned()),
        "[a-zA-Z0-9_./:=-]{0,24}",
        any::<String>(),
    ]
}

fn nasty_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(-1),
        Just(1),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(4096),
        Just(1 << 30),
        -2i64..300_000,
        any::<i64>(),
    ]
}

fn nasty_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(65_535),
        Just(65_536),
        any::<u32>()
    ]
}

fn strings(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(nasty_string(), 0..max)
}

/// Mostly `good`, sometimes anything: so that both acceptance and each refusal are reached.
fn mostly<T: std::fmt::Debug + Clone + 'static>(
    good: impl Strategy<Value = T> + 'static,
    wild: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![6 => good, 1 => wild].boxed()
}

fn process() -> impl Strategy<Value = Option<pb::Process>> {
    let p = (
        prop_oneof![
            Just(vec!["/bin/true".to_owned()]),
            Just(vec!["sh".to_owned(), "-c".to_owned(), "echo".to_owned()]),
            strings(4),
        ],
        mostly(Just(vec!["A=1".to_owned()]), strings(4)),
        mostly(Just(String::new()), nasty_string()),
        mostly(Just(String::new()), nasty_string()),
        any::<bool>(),
        any::<bool>(),
        mostly(Just(None), prop::option::of((nasty_u32(), nasty_u32()))),
    )
        .prop_map(
            |(args, env, cwd, user, tty, open_stdin, size)| pb::Process {
                args,
                env,
                cwd,
                user,
                tty,
                open_stdin,
                console_size: size.map(|(rows, cols)| pb::ConsoleSize { rows, cols }),
            },
        );
    prop_oneof![1 => Just(None), 8 => p.prop_map(Some)]
}

fn resources() -> impl Strategy<Value = Option<pb::Resources>> {
    let device = (
        prop_oneof![
            Just(String::new()),
            Just("c".to_owned()),
            Just("b".to_owned()),
            Just("a".to_owned()),
            nasty_string()
        ],
        nasty_string(),
        nasty_string(),
        nasty_i64(),
        nasty_i64(),
        prop_oneof![Just(String::new()), Just("rwm".to_owned()), nasty_string()],
    )
        .prop_map(
            |(t, path, container_path, major, minor, permissions)| pb::DeviceRule {
                r#type: t,
                path,
                container_path,
                major,
                minor,
                permissions,
            },
        );
    let r = (
        prop::collection::vec(mostly(Just(0i64), nasty_i64()), 8),
        mostly(Just(String::new()), nasty_string()),
        mostly(Just(String::new()), nasty_string()),
        mostly(Just(vec![]), prop::collection::vec(device, 0..3)),
        any::<bool>(),
        mostly(Just(String::new()), nasty_string()),
        prop_oneof![
            Just(String::new()),
            Just("FROZEN".to_owned()),
            Just("THAWED".to_owned()),
            nasty_string()
        ],
    )
        .prop_map(
            |(n, cpus, mems, devices, all, parent, freezer)| pb::Resources {
                memory: n[0],
                memory_reservation: n[1],
                memory_swap: n[2],
                cpu_shares: n[3],
                cpu_quota: n[4],
                cpu_period: n[5],
                blkio_weight: n[6],
                pids_limit: n[7],
                cpuset_cpus: cpus,
                cpuset_mems: mems,
                devices,
                allow_all_devices: all,
                cgroup_parent: parent,
                freezer,
            },
        );
    mostly(Just(None), r.prop_map(Some))
}

fn network() -> impl Strategy<Value = Option<pb::NetworkConfig>> {
    let n = (
        prop_oneof![0i32..6, any::<i32>()],
        nasty_string(),
        nasty_string(),
        nasty_u32(),
        nasty_string(),
        nasty_string(),
    )
        .prop_map(
            |(mode, address, mac_address, mtu, container_id, netns_path)| pb::NetworkConfig {
                mode,
                address,
                mac_address,
                mtu,
                container_id,
                netns_path,
            },
        );
    mostly(Just(None), n.prop_map(Some))
}

fn security() -> impl Strategy<Value = Option<pb::SecurityConfig>> {
    let caps = prop::collection::vec(
        prop_oneof![
            Just("ALL".to_string()),
            Just("NET_ADMIN".to_string()),
            Just("cap_chown".to_string()),
            nasty_string()
        ],
        0..4,
    );
    let rlimit = (
        prop_oneof![
            Just("RLIMIT_NOFILE".to_string()),
            Just("nproc".to_string()),
            nasty_string()
        ],
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(r#type, soft, hard)| pb::Rlimit { r#type, soft, hard });
    let arg = (
        0u32..8,
        any::<u64>(),
        any::<u64>(),
        prop_oneof![
            Just("SCMP_CMP_EQ".to_string()),
            Just("SCMP_CMP_MASKED_EQ".to_string()),
            nasty_string()
        ],
    )
        .prop_map(|(index, value, value_two, op)| pb::SeccompArg {
            index,
            value,
            value_two,
            op,
        });
    let syscall = (
        prop::collection::vec(
            prop_oneof![
                Just("keyctl".to_string()),
                Just("clone".to_string()),
                nasty_string()
            ],
            0..3,
        ),
        prop_oneof![
            Just("SCMP_ACT_ERRNO".to_string()),
            Just("SCMP_ACT_ALLOW".to_string()),
            nasty_string()
        ],
        prop::option::of(any::<u32>()),
        prop::collection::vec(arg, 0..3),
    )
        .prop_map(|(names, action, errno_ret, args)| pb::SeccompSyscall {
            names,
            action,
            errno_ret,
            args,
        });
    let seccomp = (
        prop_oneof![
            Just(String::new()),
            Just("default".to_string()),
            Just("unconfined".to_string()),
            Just("custom".to_string()),
            nasty_string()
        ],
        prop_oneof![
            Just(String::new()),
            Just("SCMP_ACT_ERRNO".to_string()),
            nasty_string()
        ],
        prop::collection::vec(syscall, 0..3),
    )
        .prop_map(|(profile, default_action, syscalls)| pb::SeccompConfig {
            profile,
            default_action,
            syscalls,
            ..Default::default()
        });
    let mapping =
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(container_id, host_id, size)| {
            pb::IdMapping {
                container_id,
                host_id,
                size,
            }
        });
    prop::option::of(
        (
            caps,
            prop::option::of(any::<bool>()),
            prop::collection::vec(rlimit, 0..3),
            prop::option::of(any::<i32>()),
            prop::option::of(seccomp),
            prop_oneof![
                Just(String::new()),
                Just("unconfined".to_string()),
                nasty_string()
            ],
            prop::collection::vec(mapping.clone(), 0..2),
            prop::collection::vec(mapping, 0..2),
            prop::collection::vec(nasty_string(), 0..2),
            any::<bool>(),
        )
            .prop_map(
                |(
                    capabilities,
                    no_new_privileges,
                    rlimits,
                    oom_score_adj,
                    seccomp,
                    apparmor_profile,
                    uid_mappings,
                    gid_mappings,
                    masked_paths,
                    unmask_system_paths,
                )| {
                    pb::SecurityConfig {
                        capabilities,
                        no_new_privileges,
                        rlimits,
                        oom_score_adj,
                        seccomp,
                        apparmor_profile,
                        uid_mappings,
                        gid_mappings,
                        masked_paths,
                        readonly_paths: Vec::new(),
                        unmask_system_paths,
                    }
                },
            ),
    )
}

fn create_request() -> impl Strategy<Value = pb::CreateRequest> {
    (
        (
            mostly(Just("c1".to_owned()), nasty_string()),
            mostly(Just("/tmp".to_owned()), nasty_string()),
            process(),
            mostly(Just(String::new()), nasty_string()),
            mostly(
                Just(vec![]),
                prop::collection::vec(
                    prop_oneof![
                        Just("NEWNS".to_owned()),
                        Just("NEWUTS".to_owned()),
                        Just("NEWIPC".to_owned()),
                        Just("NEWPID".to_owned()),
                        Just("NEWNET".to_owned()),
                        nasty_string(),
                    ],
                    0..6,
                ),
            ),
        ),
        (
            mostly(
                Just(vec![]),
                prop::collection::vec(
                    (nasty_string(), nasty_string(), any::<bool>(), any::<bool>()).prop_map(
                        |(source, destination, writable, private)| pb::Mount {
                            source,
                            destination,
                            writable,
                            private,
                        },
                    ),
                    0..3,
                ),
            ),
            any::<bool>(),
            mostly(Just(vec![]), strings(3)),
            mostly(
                Just(Default::default()),
                prop::collection::hash_map(nasty_string(), nasty_string(), 0..3),
            ),
            mostly(
                Just(None),
                prop::option::of(
                    (any::<u64>(), nasty_u32()).prop_map(|(max_size, max_files)| pb::LogConfig {
                        max_size,
                        max_files,
                    }),
                ),
            ),
            any::<bool>(),
            resources(),
            network(),
            security(),
        ),
    )
        .prop_map(
            |(
                (id, rootfs, process, hostname, namespaces),
                (
                    mounts,
                    readonly_rootfs,
                    capabilities_mask,
                    labels,
                    log,
                    init,
                    resources,
                    network,
                    security,
                ),
            )| pb::CreateRequest {
                id,
                rootfs,
                process,
                hostname,
                namespaces,
                mounts,
                readonly_rootfs,
                capabilities_mask,
                labels,
                log,
                init,
                resources,
                network,
                security,
            },
        )
}

fn bridged() -> Defaults {
    Defaults {
        network: Some(BridgeNetwork::new("edbr0", "10.88.0.0/16", None, 0).unwrap()),
        ..Default::default()
    }
}

/// The property: no panic; a refusal names a field; an acceptance is a valid container.json.
fn check(req: &pb::CreateRequest, defaults: &Defaults) -> Result<(), TestCaseError> {
    match convert::create_request(req, defaults, 1) {
        Ok((config, meta)) => {
            prop_assert_eq!(&meta.id, &req.id);
            config.validate().map_err(|e| {
                TestCaseError::fail(format!("accepted, but container.json is invalid: {e:?}"))
            })?;
            let bytes = serde_json::to_vec_pretty(&config).unwrap();
            let back: Config = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &config);
            back.validate().unwrap();
            let meta_bytes = serde_json::to_vec(&meta).unwrap();
            let meta_back: convert::Meta = serde_json::from_slice(&meta_bytes).unwrap();
            prop_assert_eq!(meta_back, meta);
        }
        Err(Error::InvalidArgument { field, reason }) => {
            prop_assert!(!field.is_empty() && !reason.is_empty());
        }
        Err(Error::FailedPrecondition(m)) => prop_assert!(!m.is_empty()),
        Err(other) => {
            return Err(TestCaseError::fail(format!(
                "unexpected error kind: {other:?}"
            )));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn create_requests_never_panic(req in create_request()) {
        check(&req, &Defaults::default())?;
    }

    #[test]
    fn create_requests_on_a_bridged_daemon_never_panic(req in create_request()) {
        check(&req, &bridged())?;
    }

    /// Arbitrary bytes decoded as a request (as the server would), then converted.
    #[test]
    fn decoded_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        use prost::Message;
        if let Ok(req) = pb::CreateRequest::decode(bytes.as_slice()) {
            check(&req, &Defaults::default())?;
        }
    }

    #[test]
    fn exec_requests_never_panic(id in nasty_string(), exec_id in nasty_string(), p in process()) {
        let req = pb::ExecRequest { id, exec_id, process: p, start: false };
        match convert::exec_request(&req) {
            Ok(spec) => {
                prop_assert!(!spec.exec_id.is_empty());
                prop_assert!(!spec.args.is_empty());
            }
            Err(Error::InvalidArgument { field, .. }) => prop_assert!(!field.is_empty()),
            Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
    }

    #[test]
    fn update_requests_never_panic(id in nasty_string(), r in resources()) {
        let req = pb::UpdateRequest { id, resources: r };
        match convert::update_request(&req) {
            Ok(_) => {}
            Err(Error::InvalidArgument { field, .. }) => prop_assert!(!field.is_empty()),
            Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
    }

    #[test]
    fn timeouts_and_ids_never_panic(s in any::<String>(), v in any::<u32>(), d in any::<u32>(), m in any::<u32>()) {
        let _ = convert::validate_id(&s);
        let _ = convert::validate_exec_id(&s);
        let _ = convert::timeout_seconds("t", v, d, m);
    }
}

// Inputs found by the properties above are kept here as plain tests.

/// The properties reach both sides: a fair share of generated requests is accepted (so the
/// "accepted means valid container.json" half is exercised), and a fair share refused.
#[test]
fn the_generator_reaches_acceptance_and_refusal() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = create_request();
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..1000 {
        let req = strategy.new_tree(&mut runner).unwrap().current();
        match convert::create_request(&req, &Defaults::default(), 1) {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    eprintln!("{ok} accepted, {refused} refused of 1000");
    assert!(ok >= 50, "{ok} accepted of 1000");
    assert!(refused >= 50, "{refused} refused of 1000");
}
