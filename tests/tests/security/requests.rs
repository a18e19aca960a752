//! The security fields of a request and the CLI's flags: what validation refuses (and that
//! nothing is created then), `execdriverctl`'s security flags, AppArmor profiles, and an
//! ordinary container working under every default.

use std::process::{Command, Stdio};

use execdriver_spec::capabilities;
use execdriver_tests::{bin, nofile_limits, parse_status, pb, run, unique, Output, TempDir};
use tonic::Code;

use super::{assert_nothing_left, cap_sets, daemon, daemon_with, mask, seccomp, security, sh};

#[tokio::test]
async fn security_fields_are_checked_and_nothing_is_created() {
    let d = daemon();
    let mut c = d.client().await;
    type M = Box<dyn Fn(&mut pb::CreateRequest)>;
    let rule = |names: &[&str], action: &str| pb::SeccompSyscall {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: action.into(),
        ..Default::default()
    };
    let custom = move |rules: Vec<pb::SeccompSyscall>| pb::SeccompConfig {
        default_action: "SCMP_ACT_ALLOW".into(),
        syscalls: rules,
        ..Default::default()
    };
    let cases: Vec<(M, &str)> = vec![
        (
            Box::new(|r| security(r).capabilities = vec!["CHOWN".into(), "CAP_BOGUS".into()]),
            "security.capabilities[1]",
        ),
        (
            Box::new(|r| {
                security(r).rlimits = vec![pb::Rlimit {
                    r#type: "RLIMIT_FILES".into(),
                    soft: 1,
                    hard: 1,
                }]
            }),
            "security.rlimits[0].type",
        ),
        (
            Box::new(|r| {
                security(r).rlimits = vec![pb::Rlimit {
                    r#type: "nofile".into(),
                    soft: 10,
                    hard: 5,
                }]
            }),
            "security.rlimits[0].soft",
        ),
        (
            Box::new(|r| security(r).oom_score_adj = Some(-1001)),
            "security.oom_score_adj",
        ),
        (
            Box::new(move |r| {
                let mut rules: Vec<_> = (0..3).map(|_| rule(&["read"], "SCMP_ACT_ALLOW")).collect();
                rules.push(rule(&["Keyctl!"], "SCMP_ACT_ERRNO"));
                security(r).seccomp = Some(custom(rules));
            }),
            "security.seccomp.syscalls[3].names[0]",
        ),
        (
            Box::new(move |r| {
                security(r).seccomp = Some(custom(vec![rule(&["keyctl"], "SCMP_ACT_NOTIFY")]))
            }),
            "security.seccomp.syscalls[0].action",
        ),
        (
            Box::new(|r| security(r).seccomp = seccomp("strict")),
            "security.seccomp.profile",
        ),
        (
            Box::new(|r| {
                security(r).seccomp = Some(pb::SeccompConfig {
                    profile: "custom".into(),
                    ..Default::default()
                })
            }),
            "security.seccomp.default_action",
        ),
        (
            Box::new(|r| security(r).masked_paths = vec!["relative".into()]),
            "security.masked_paths[0]",
        ),
        (
            Box::new(|r| {
                r.namespaces = ["NEWNS", "NEWPID", "NEWUSER"].map(String::from).to_vec();
            }),
            "security.uid_mappings",
        ),
        (
            Box::new(|r| {
                security(r).uid_mappings = vec![pb::IdMapping {
                    container_id: 0,
                    host_id: 100_000,
                    size: 10,
                }]
            }),
            "security.uid_mappings",
        ),
        (
            Box::new(|r| r.capabilities_mask = vec!["NOT_A_CAP".into()]),
            "capabilities_mask[0]",
        ),
    ];
    for (mutate, field) in cases {
        let mut req = d.request(&["true"]);
        mutate(&mut req);
        let err = c.create(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().starts_with(&format!("{field}: ")),
            "{field}: {}",
            err.message()
        );
    }
    assert_nothing_left(&d);
}

#[tokio::test]
async fn cli_security_flags() {
    let d = daemon();
    let ctl = |args: &[&str]| {
        let out = Command::new(bin("execdriverctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(["run", "--rm", "--rootfs"])
            .arg(&d.rootfs)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (soft, hard) = nofile_limits();
    let ulimit = format!("nofile={soft}:{hard}");
    let text = ctl(&[
        "--cap-add",
        "SYS_PTRACE",
        "--cap-drop",
        "NET_RAW",
        "--ulimit",
        &ulimit,
        "--oom-score-adj",
        "300",
        "--security-opt",
        "no-new-privileges=false",
        "--",
        "cat",
        "/proc/self/status",
        "/proc/self/limits",
        "/proc/self/oom_score_adj",
    ]);
    let sets = cap_sets(&text);
    let want = mask(&capabilities::DOCKER_DEFAULT) & !mask(&["NET_RAW"]) | mask(&["SYS_PTRACE"]);
    assert_eq!(sets["CapEff"], want, "{sets:x?}");
    assert_eq!(parse_status(&text)["NoNewPrivs"], "0");
    assert!(
        text.lines().any(|l| l.starts_with("Max open files")
            && l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(&format!("{soft} {hard}"))),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("300"));
    let text = ctl(&[
        "--userns-map",
        "0:100000:65536",
        "--",
        "cat",
        "/proc/self/uid_map",
    ]);
    let map: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    let text = ctl(&["--privileged", "--", "cat", "/proc/self/status"]);
    assert_eq!(parse_status(&text)["Seccomp"], "0");
    assert_eq!(cap_sets(&text)["CapEff"], cap_sets(&text)["CapBnd"]);
    assert!(cap_sets(&text)["CapEff"] & mask(&["SYS_ADMIN"]) != 0);
    let text = ctl(&[
        "--security-opt",
        "seccomp=unconfined",
        "--",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert!(text.ends_with("0\n"), "{text}");
    assert_nothing_left(&d);
}

#[tokio::test]
async fn apparmor_profiles_need_apparmor_or_an_explicit_opt_out() {
    let enabled = execdriver_shim::security::apparmor_enabled();
    let d = daemon();
    let mut c = d.client().await;
    let mut req = d.request(&["true"]);
    security(&mut req).apparmor_profile = if enabled {
        "edtest-no-such-profile".into()
    } else {
        "docker-default".into()
    };
    let err = c.create(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("apparmor_profile"),
        "{}",
        err.message()
    );
    assert_nothing_left(&d);
    // "unconfined" is always fine.
    let mut req = d.request(&["true"]);
    security(&mut req).apparmor_profile = "unconfined".into();
    assert_eq!(run(&mut c, req).await.code(), 0);
    if enabled {
        return; // the opt-out below is about kernels without AppArmor
    }
    assert!(
        err.message().contains("--allow-missing-apparmor"),
        "{err:?}"
    );

    // With the opt-out the container runs (unconfined) and the daemon says so.
    let d = daemon_with(&["--allow-missing-apparmor"]);
    let mut c = d.client().await;
    let mut req = d.request(&["true"]);
    security(&mut req).apparmor_profile = "docker-default".into();
    let id = req.id.clone();
    let out = run(&mut c, req).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let log = d.log();
    assert!(
        log.contains("AppArmor") && log.contains(&id) && log.contains("unconfined"),
        "{log}"
    );

    // The shim alone (the seed's nsinit-like use) refuses it too, naming container.json's field.
    let state = TempDir::new("edt-aa");
    let config = serde_json::json!({
        "namespaces": ["NEWNS", "NEWPID"],
        "context": {"apparmor_profile": "docker-default"},
        "rootfs": d.rootfs,
        "args": ["true"],
    });
    std::fs::write(
        state.path.join("container.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let out = Command::new(bin("execdriver-shim"))
        .args(["--id", &unique("aa"), "--state"])
        .arg(&state.path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let reply: execdriver_spec::protocol::Response =
        execdriver_spec::protocol::read_frame(&mut out.stdout.as_slice())
            .unwrap()
            .unwrap();
    match reply.kind {
        Some(execdriver_spec::protocol::response::Kind::Error(e)) => {
            assert!(
                e.message.starts_with("context.apparmor_profile: "),
                "{}",
                e.message
            );
            assert_eq!(
                e.code,
                execdriver_spec::protocol::ErrorCode::FailedPrecondition as i32
            );
        }
        other => panic!("{other:?}"),
    }
    // nsinit (the seed's CLI) follows the same policy.
    let nsinit = |extra: &[&str]| {
        Command::new(bin("nsinit"))
            .args(extra)
            .args(["exec", "true"])
            .current_dir(&state.path)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = nsinit(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("context.apparmor_profile: "), "{err}");
    let out = nsinit(&["--allow-missing-apparmor"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("running unconfined"), "{err}");
}

/// An ordinary container (with the --init reaper) works under every default.
#[tokio::test]
async fn an_ordinary_container_still_works_under_every_default() {
    let d = daemon();
    let mut c = d.client().await;
    let mut req = sh(
        &d,
        "echo hi > /tmp/f && cat /tmp/f && ls /dev && ps -o pid,comm | wc -l && \
         id -u; echo done",
    );
    req.init = true;
    let out: Output = run(&mut c, req).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let text = out.stdout();
    assert!(text.starts_with("hi\n"), "{text}");
    for dev in ["null", "zero", "urandom", "pts", "shm", "ptmx"] {
        assert!(text.contains(dev), "{dev}: {text}");
    }
    assert!(text.ends_with("done\n"), "{text}");
}
