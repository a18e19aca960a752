//! Resources in requests: bad values are INVALID_ARGUMENT and create nothing, and
//! `execdriverctl`'s limit flags and subcommands.

use std::process::{Command, Stdio};

use execdriver_shim::cgroups::Layout;
use execdriver_tests::{bin, pb, run, unique, Daemon};
use tonic::Code;

use super::{cgroup_file, with_resources, ChildGuard, MIB};

#[tokio::test]
async fn bad_resources_are_invalid_argument_and_create_nothing() {
    let d = Daemon::start();
    let mut c = d.client().await;
    type Case = (Box<dyn Fn(&mut pb::Resources)>, &'static str);
    let cases: Vec<Case> = vec![
        (Box::new(|r| r.memory = 1000), "resources.memory"),
        (Box::new(|r| r.memory = -5), "resources.memory"),
        (
            Box::new(|r| r.memory_swap = 64 * MIB),
            "resources.memory_swap",
        ),
        (
            Box::new(|r| r.cpu_shares = 1_000_000),
            "resources.cpu_shares",
        ),
        (Box::new(|r| r.cpu_quota = 1), "resources.cpu_quota"),
        (Box::new(|r| r.cpu_period = 5), "resources.cpu_period"),
        (Box::new(|r| r.pids_limit = -2), "resources.pids_limit"),
        (
            Box::new(|r| r.blkio_weight = 5000),
            "resources.blkio_weight",
        ),
        (
            Box::new(|r| r.cpuset_cpus = "4000-4001".into()),
            "resources.cpuset_cpus",
        ),
        (
            Box::new(|r| r.cpuset_cpus = "zero".into()),
            "resources.cpuset_cpus",
        ),
        (
            Box::new(|r| r.cpuset_mems = "63".into()),
            "resources.cpuset_mems",
        ),
        (
            Box::new(|r| r.cgroup_parent = "../escape".into()),
            "resources.cgroup_parent",
        ),
        (
            Box::new(|r| r.cgroup_parent = "ok/../../up".into()),
            "resources.cgroup_parent",
        ),
        (
            Box::new(|r| {
                r.devices = vec![pb::DeviceRule {
                    r#type: "x".into(),
                    ..Default::default()
                }]
            }),
            "resources.devices[0].type",
        ),
        (
            Box::new(|r| {
                r.devices = vec![pb::DeviceRule {
                    path: "/no/such/device".into(),
                    ..Default::default()
                }]
            }),
            "resources.devices[0].path",
        ),
    ];
    for (mutate, field) in cases {
        let req = with_resources(&d, &["true"], mutate);
        let id = req.id.clone();
        let err = c.create(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().starts_with(&format!("{field}:")),
            "{:?} should name {field}",
            err.message()
        );
        // Nothing named for it anywhere.
        for h in Layout::detect().unwrap().hierarchies {
            assert!(!h.mountpoint.join(&d.cgroup_parent).join(&id).exists());
            assert!(!h.mountpoint.join("escape").exists());
            assert!(!h.mountpoint.join("up").exists());
        }
    }
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
    // A good cpuset still works.
    let req = with_resources(&d, &["cat", "/proc/self/status"], |r| {
        r.cpuset_cpus = "0".into();
        r.cpuset_mems = "0".into();
    });
    let out = run(&mut c, req).await;
    let allowed = out.stdout().lines().find_map(|l| {
        l.strip_prefix("Cpus_allowed_list:")
            .map(|v| v.trim().to_owned())
    });
    assert_eq!(allowed.as_deref(), Some("0"), "{}", out.stdout());
}

#[tokio::test]
async fn cli_limit_flags_and_subcommands() {
    let d = Daemon::start();
    let ctl = |args: &[&str]| {
        let out = Command::new(bin("execdriverctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "execdriverctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let id = unique("cli");
    let rootfs = d.rootfs.display().to_string();
    ctl(&[
        "run",
        "-d",
        "--id",
        &id,
        "--rootfs",
        &rootfs,
        "--memory",
        "48m",
        "--memory-swap",
        "-1",
        "--cpu-shares",
        "256",
        "--cpus",
        "0.5",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "30",
        "--device",
        "c 1:11 w",
        "--",
        "sleep",
        "100",
    ]);
    assert_eq!(
        cgroup_file(&d, &id, "memory", "memory.limit_in_bytes"),
        (48 * MIB).to_string()
    );
    assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.shares"), "256");
    assert_eq!(cgroup_file(&d, &id, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(cgroup_file(&d, &id, "pids", "pids.max"), "30");
    assert!(cgroup_file(&d, &id, "devices", "devices.list").contains("c 1:11 w"));

    let stats: serde_json::Value = serde_json::from_str(&ctl(&["stats", "--json", &id])).unwrap();
    assert_eq!(stats["memory"]["limit"], 48 * MIB, "{stats}");
    assert_eq!(stats["pids"]["limit"], 30);
    let pids: serde_json::Value = serde_json::from_str(&ctl(&["pids", "--json", &id])).unwrap();
    assert_eq!(pids["container_pids"], serde_json::json!([1]), "{pids}");
    ctl(&["pause", &id]);
    let st: serde_json::Value = serde_json::from_str(&ctl(&["state", "--json", &id])).unwrap();
    assert_eq!(st["status"], "paused");
    assert_eq!(st["oom_killed"], false);
    ctl(&["resume", &id]);
    let r: serde_json::Value = serde_json::from_str(&ctl(&[
        "update",
        "--json",
        "--memory",
        "96m",
        "--pids-limit",
        "-1",
        &id,
    ]))
    .unwrap();
    assert_eq!(r["memory"], 96 * MIB);
    assert_eq!(cgroup_file(&d, &id, "pids", "pids.max"), "max");
    // Two samples from the stream, one JSON object per line.
    let mut child = ChildGuard(
        Command::new(bin("execdriverctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(["stats", "--stream", "--json", "--interval", "200", &id])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(child.0.stdout.take().unwrap()));
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], id.as_str());
    }
    drop(child);
    ctl(&["delete", "-f", &id]);
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

/// Docker's 0 for --memory, --pids-limit and --cpus: no limit, in run and in update (where 0
/// used to mean "unchanged", so a limit could not be lifted that way).
#[test]
fn cli_zero_means_unlimited_as_dockers() {
    let d = Daemon::start();
    let ctl = |args: &[&str]| {
        let out = Command::new(bin("execdriverctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "execdriverctl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let unlimited = |id: &str| {
        let mem: u64 = cgroup_file(&d, id, "memory", "memory.limit_in_bytes")
            .parse()
            .unwrap();
        assert!(mem > 1 << 60, "memory.limit_in_bytes {mem}");
        assert_eq!(cgroup_file(&d, id, "pids", "pids.max"), "max");
        assert_eq!(cgroup_file(&d, id, "cpu", "cpu.cfs_quota_us"), "-1");
    };
    let rootfs = d.rootfs.display().to_string();
    let zeros = ["--memory", "0", "--pids-limit", "0", "--cpus", "0"];
    let id = unique("zero");
    let mut args = vec!["run", "-d", "--name", &id, "--rootfs", &rootfs];
    args.extend(zeros);
    args.extend(["sleep", "100"]);
    ctl(&args);
    unlimited(&id);
    ctl(&[
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "10",
        "--cpus",
        "0.5",
        &id,
    ]);
    assert_eq!(
        cgroup_file(&d, &id, "memory", "memory.limit_in_bytes"),
        (64 * MIB).to_string()
    );
    assert_eq!(cgroup_file(&d, &id, "pids", "pids.max"), "10");
    assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.cfs_quota_us"), "50000");
    let mut args = vec!["update"];
    args.extend(zeros);
    args.push(&id);
    ctl(&args);
    unlimited(&id);
    ctl(&["delete", "-f", &id]);
}
