//! Property tests ("fuzzing" on stable Rust) of the container.json parser and its validation:
//! whatever bytes or structure come in, parsing and validating never panic, and a config that
//! validates survives a write and a read unchanged.
//!
//! A bounded number of cases runs with `cargo test`; for a longer run:
//! `PROPTEST_CASES=200000 cargo test -p execdriver-shim --test fuzz_config --release`.
//! Inputs that ever broke something are kept as plain tests at the end of this file.

use execdriver_spec::config::{self, Config};
use proptest::prelude::*;
use serde_json::{json, Value};

const SEED: &str = include_str!("../testdata/seed-container.json");

/// What the shim does with container.json: parse, then validate. Must not panic.
fn parse_and_validate(bytes: &[u8]) -> Option<Config> {
    let config: Config = serde_json::from_slice(bytes).ok()?;
    config.validate().ok()?;
    Some(config)
}

/// A valid config written and read back is the same and still valid.
fn round_trips(config: &Config) {
    let bytes = serde_json::to_vec_pretty(config).expect("a config serializes");
    let again: Config = serde_json::from_slice(&bytes).expect("what was written parses");
    assert_eq!(&again, config);
    again.validate().expect("what validated validates again");
}

/// Strings that tend to break things: empty, huge, unicode, NUL, slashes, dots, numbers.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("/".to_owned()),
        Just("..".to_owned()),
        Just("../../etc".to_owned()),
        Just("/proc/self/ns/net".to_owned()),
        Just("a\0b".to_owned()),
        Just("é🙂\u{202e}".to_owned()),
        Just("x".repeat(70_000)),
        Just("0-4294967295".to_owned()),
        Just("4294967296".to_owned()),
        Just("-1".to_owned()),
        Just("c *:* rwm".to_owned()),
        Just("SYS_ADMIN".to_owned()),
        Just("NEWPID".to_owned()),
        Just("KEY=VALUE".to_owned()),
        Just("65534:65534".to_owned()),
        Just("FROZEN".to_owned()),
        Just("veth".to_owned()),
        Just("10.0.0.2/24".to_owned()),
        "[a-zA-Z0-9_./:=, -]{0,40}",
        any::<String>(),
    ]
}

fn nasty_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1)),
        Just(json!(i64::MIN)),
        Just(json!(i64::MAX)),
        Just(json!(u64::MAX)),
        Just(json!(u32::MAX)),
        Just(json!(1.5)),
        Just(json!(-1e300)),
        any::<i64>().prop_map(|n| json!(n)),
        (0i64..300_000).prop_map(|n| json!(n)),
    ]
}

/// Any JSON value, small.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        nasty_number(),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(nasty_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value for a field: usually of the right shape, sometimes anything.
fn field(right: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![8 => right, 1 => any_value()].boxed()
}

/// Mostly `good`, sometimes `wild`: so that valid configs and each refusal are reached.
fn mostly(good: Value, wild: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![5 => Just(good), 1 => wild].boxed()
}

fn text() -> BoxedStrategy<Value> {
    nasty_string().prop_map(Value::String).boxed()
}

fn strings(max: usize) -> impl Strategy<Value = Value> {
    prop::collection::vec(nasty_string().prop_map(Value::String), 0..max).prop_map(Value::Array)
}

fn network() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("loopback".to_owned()),
            Just("veth".to_owned()),
            Just("netns".to_owned()),
            nasty_string()
        ],
        nasty_string(),
        nasty_string(),
        nasty_number(),
        prop::collection::btree_map(
            prop_oneof![
                Just("bridge".to_owned()),
                Just("prefix".to_owned()),
                Just("nspath".to_owned()),
                nasty_string()
            ],
            nasty_string(),
            0..3,
        ),
    )
        .prop_map(|(kind, address, gateway, mtu, context)| {
            json!({"type": kind, "address": address, "gateway": gateway, "mtu": mtu, "context": context})
        })
}

fn device() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("c"), Just("b"), Just("a"), Just("x")],
        nasty_string(),
        nasty_number(),
        nasty_number(),
        prop_oneof![Just("rwm".to_owned()), Just("r".to_owned()), nasty_string()],
        nasty_number(),
    )
        .prop_map(|(t, path, major, minor, perms, mode)| {
            json!({"type": t, "path": path, "major_number": major, "minor_number": minor,
                   "cgroup_permissions": perms, "file_mode": mode})
        })
}

fn cgroups() -> impl Strategy<Value = Value> {
    let numbers = prop::collection::vec(mostly(json!(0), nasty_number()), 9);
    (
        mostly(json!("execdriver"), text()),
        mostly(json!("c1"), text()),
        numbers,
        mostly(json!(""), text()),
        mostly(json!(""), text()),
        mostly(
            json!([]),
            prop::collection::vec(device(), 0..3).prop_map(Value::Array),
        ),
        mostly(json!(""), text()),
        any::<bool>(),
    )
        .prop_map(|(parent, name, n, cpus, mems, devices, freezer, all)| {
            json!({
                "parent": parent, "name": name, "device_access": all,
                "memory": n[0], "memory_reservation": n[1], "memory_swap": n[2],
                "cpu_shares": n[3], "cpu_quota": n[4], "cpu_period": n[5],
                "blkio_weight": n[6], "pids_limit": n[7],
                "cpuset_cpus": cpus, "cpuset_mems": mems, "devices": devices, "freezer": freezer,
            })
        })
}

fn mount() -> impl Strategy<Value = Value> {
    (nasty_string(), nasty_string(), any::<bool>(), any::<bool>()).prop_map(
        |(s, d, w, p)| json!({"source": s, "destination": d, "writable": w, "private": p}),
    )
}

/// A container.json of the right shape with wild values (and now and then a wrong type).
fn structured() -> impl Strategy<Value = Value> {
    let namespaces = prop::collection::vec(
        prop_oneof![
            Just("NEWNS".to_owned()),
            Just("NEWUTS".to_owned()),
            Just("NEWIPC".to_owned()),
            Just("NEWPID".to_owned()),
            Just("NEWNET".to_owned()),
            Just("NEWUSER".to_owned()),
            Just("NEWCGROUP".to_owned()),
            nasty_string(),
        ]
        .prop_map(Value::String),
        0..7,
    )
    .prop_map(Value::Array);
    (
        (
            mostly(json!("box"), field(text())),
            mostly(
                json!([{"type": "loopback"}]),
                field(prop::collection::vec(network(), 0..3).prop_map(Value::Array)),
            ),
            field(cgroups()),
            field(any::<bool>().prop_map(Value::Bool)),
            mostly(json!(["A=1"]), field(strings(4))),
            mostly(json!(["SYS_ADMIN"]), field(strings(3))),
        ),
        (
            mostly(
                json!([]),
                field(prop::collection::vec(mount(), 0..3).prop_map(Value::Array)),
            ),
            mostly(
                json!(["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"]),
                field(namespaces),
            ),
            mostly(json!(""), field(text())),
            mostly(json!(""), field(text())),
            mostly(json!("/tmp"), field(text())),
            mostly(json!(["sh"]), field(strings(4))),
            prop::collection::btree_map(nasty_string(), nasty_string(), 0..2),
        ),
        prop::collection::vec(prop::bool::weighted(0.85), 13),
    )
        .prop_map(
            |(
                (hostname, networks, cgroups, tty, env, caps),
                (mounts, ns, user, cwd, rootfs, args, context),
                keep,
            )| {
                let all = [
                    ("hostname", hostname),
                    ("networks", networks),
                    ("cgroups", cgroups),
                    ("tty", tty),
                    ("environment", env),
                    ("capabilities_mask", caps),
                    ("mounts", mounts),
                    ("namespaces", ns),
                    ("user", user),
                    ("working_dir", cwd),
                    ("rootfs", rootfs),
                    ("args", args),
                    ("context", json!(context)),
                ];
                let mut obj = serde_json::Map::new();
                for ((k, v), keep) in all.into_iter().zip(keep) {
                    if keep {
                        obj.insert(k.to_owned(), v);
                    }
                }
                Value::Object(obj)
            },
        )
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let tokens = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        Just(b"\"".to_vec()),
        Just(b"{".to_vec()),
        Just(b"]".to_vec()),
        Just(b"-9223372036854775809".to_vec()),
        Just(b"1e999".to_vec()),
        Just(b"\\u0000".to_vec()),
        Just(b"\\ud800".to_vec()),
        Just(b"null".to_vec()),
        Just(b",".to_vec()),
    ];
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), tokens).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..6)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len().max(1);
        match e {
            Edit::Flip(i, b) if !bytes.is_empty() => bytes[i % len] ^= b,
            Edit::Insert(i, t) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, t.iter().copied());
            }
            Edit::Delete(i, n) if !bytes.is_empty() => {
                let at = i % len;
                let end = (at + n).min(bytes.len());
                bytes.drain(at..end);
            }
            Edit::Truncate(i) => bytes.truncate(i % len),
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary bytes.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Some(c) = parse_and_validate(&bytes) {
            round_trips(&c);
        }
    }

    /// The seed's sample, edited a few bytes at a time: mostly near-valid JSON.
    #[test]
    fn edited_seed_sample_never_panics(e in edits()) {
        let bytes = apply(SEED.as_bytes().to_vec(), &e);
        if let Some(c) = parse_and_validate(&bytes) {
            round_trips(&c);
        }
    }

    /// Structured configs with wild values: the validation's arithmetic and string handling.
    #[test]
    fn structured_configs_never_panic(v in structured()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        if let Some(c) = parse_and_validate(&bytes) {
            round_trips(&c);
            // What validated is within the limits the kernel calls need.
            prop_assert!(c.hostname.len() <= 64 && !c.hostname.contains('\0'));
            for e in &c.environment {
                prop_assert!(e.contains('=') && !e.contains('\0'));
            }
            if let Some(cg) = &c.cgroups {
                prop_assert!(cg.validate_resources().is_ok());
                prop_assert!(!cg.name.is_empty() && !cg.name.contains('/'));
            }
        }
    }

    /// The kernel's list format parser.
    #[test]
    fn cpu_lists_never_panic(s in prop_oneof!["[0-9,-]{0,24}", any::<String>()]) {
        if let Ok(list) = config::parse_cpu_list(&s) {
            prop_assert!(list.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(list.iter().all(|c| *c < 8192));
        }
    }

    /// `uid[:gid]`.
    #[test]
    fn users_never_panic(s in any::<String>()) {
        let _ = config::User::parse(&s);
    }
}

// Inputs found by the properties above are kept here as plain tests.

#[test]
fn the_seed_sample_parses_and_validates() {
    let c = parse_and_validate(SEED.as_bytes()).expect("the seed's sample");
    round_trips(&c);
}

/// The structured property reaches valid configs (so the round trip is exercised) as well as
/// refusals.
#[test]
fn the_generator_reaches_valid_and_invalid_configs() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = structured();
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..1000 {
        let v = strategy.new_tree(&mut runner).unwrap().current();
        match parse_and_validate(&serde_json::to_vec(&v).unwrap()) {
            Some(_) => ok += 1,
            None => refused += 1,
        }
    }
    eprintln!("{ok} valid, {refused} refused of 1000");
    assert!(ok >= 25, "{ok} valid of 1000");
    assert!(refused >= 25, "{refused} refused of 1000");
}
