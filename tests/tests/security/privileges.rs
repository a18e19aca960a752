//! What a container's processes hold: capability sets (default, keep list, mask, non-root,
//! exec), no_new_privs, rlimits and oom_score_adj for the init and an exec, and the calls
//! a missing capability refuses (sethostname, raw sockets without NET_RAW, ptrace of a host
//! process).

use std::process::{Child, Command, Stdio};

use execdriver_spec::capabilities;
use execdriver_tests::{nofile_limits, parse_status, pb, run};

use super::{
    cap_sets, daemon, exec_sync, force_delete, mask, privileged, seccomp, security, sh, start,
    syscalls,
};

/// A process this test started (on the host); killed by its pid and reaped on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn capabilities_default_keep_list_mask_and_non_root() {
    let d = daemon();
    let mut c = d.client().await;
    let docker = mask(&capabilities::DOCKER_DEFAULT);

    // Default: Docker's set in the bounding, permitted and effective sets; nothing inherited.
    let out = run(&mut c, d.request(&["cat", "/proc/self/status"])).await;
    let sets = cap_sets(&out.stdout());
    assert_eq!(sets["CapBnd"], docker, "{sets:x?}");
    assert_eq!(sets["CapPrm"], docker);
    assert_eq!(sets["CapEff"], docker);
    assert_eq!(sets["CapInh"], 0);
    assert_eq!(sets["CapAmb"], 0);

    // A keep list, minus the mask.
    let mut req = d.request(&["cat", "/proc/self/status"]);
    security(&mut req).capabilities = vec!["CHOWN".into(), "KILL".into(), "SYS_PTRACE".into()];
    req.capabilities_mask = vec!["KILL".into()];
    let sets = cap_sets(&run(&mut c, req).await.stdout());
    let want = mask(&["CHOWN", "SYS_PTRACE"]);
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(sets[set], want, "{set}: {sets:x?}");
    }

    // A non-root user has the bounding set only (Docker's semantics).
    let mut req = d.request(&["cat", "/proc/self/status"]);
    req.process.as_mut().unwrap().user = "1000:1000".into();
    let sets = cap_sets(&run(&mut c, req).await.stdout());
    assert_eq!(sets["CapBnd"], docker);
    for set in ["CapPrm", "CapEff", "CapInh", "CapAmb"] {
        assert_eq!(sets[set], 0, "{set}: {sets:x?}");
    }

    // An exec'd process gets the container's sets too.
    let mut req = d.request(&["sleep", "100"]);
    req.capabilities_mask = vec!["NET_RAW".into()];
    let id = start(&mut c, req).await;
    let sets = cap_sets(&exec_sync(&mut c, &id, &["cat", "/proc/self/status"]).await);
    let want = docker & !mask(&["NET_RAW"]);
    assert_eq!(sets["CapBnd"], want);
    assert_eq!(sets["CapEff"], want);
    assert_eq!(sets["CapInh"] | sets["CapAmb"], 0);
    force_delete(&mut c, &id).await;
}

#[tokio::test]
async fn no_new_privs_seccomp_rlimits_and_oom_score_adj_for_init_and_exec() {
    let d = daemon();
    let mut c = d.client().await;
    let script = "cat /proc/self/status /proc/self/limits /proc/self/oom_score_adj";
    let check = |text: &str, nnp: &str, seccomp_mode: &str| {
        let st = parse_status(text);
        assert_eq!(st["NoNewPrivs"], nnp, "{text}");
        assert_eq!(st["Seccomp"], seccomp_mode, "{text}");
    };

    // Defaults: no_new_privs on, the seccomp filter loaded.
    let out = run(&mut c, sh(&d, script)).await;
    check(&out.stdout(), "1", "2");

    let (soft, hard) = nofile_limits();
    let nofile = format!("{soft} {hard}");
    let mut req = d.request(&["sleep", "100"]);
    let s = security(&mut req);
    s.rlimits = vec![
        pb::Rlimit {
            r#type: "RLIMIT_NOFILE".into(),
            soft,
            hard,
        },
        pb::Rlimit {
            r#type: "nproc".into(),
            soft: 500,
            hard: 600,
        },
    ];
    s.oom_score_adj = Some(500);
    s.no_new_privileges = Some(false);
    s.seccomp = seccomp("unconfined");
    let id = start(&mut c, req).await;
    let pid = c
        .state(pb::StateRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap()
        .pid;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert!(line("Max open files").contains(&nofile), "{limits}");
    assert!(line("Max processes").contains("500 600"), "{limits}");
    let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    assert_eq!(adj.trim(), "500");
    // The same for an exec'd process.
    let text = exec_sync(&mut c, &id, &["sh", "-c", script]).await;
    check(&text, "0", "0");
    assert!(
        text.lines().any(|l| l.starts_with("Max open files")
            && l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(&nofile)),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("500"), "{text}");
    force_delete(&mut c, &id).await;
}

#[tokio::test]
async fn sethostname_is_refused_and_the_host_keeps_its_name() {
    let d = daemon();
    let mut c = d.client().await;
    let host_before = nix::unistd::gethostname().unwrap();
    let mut req = sh(
        &d,
        "hostname edtest-changed 2>&1; echo rc=$?; edtest-sys sethostname edtest-x; hostname",
    );
    req.hostname = "inside".into();
    let text = run(&mut c, req).await.stdout();
    assert!(text.contains("rc=1"), "{text}");
    assert!(text.contains("err EPERM"), "{text}");
    assert!(text.ends_with("inside\n"), "{text}");
    // Allowed (CAP_SYS_ADMIN, no filter), it changes the container's own UTS namespace only.
    let mut req = sh(&d, "hostname edtest-changed && hostname");
    req.hostname = "inside".into();
    privileged(&mut req);
    assert_eq!(run(&mut c, req).await.stdout(), "edtest-changed\n");
    assert_eq!(nix::unistd::gethostname().unwrap(), host_before);
}

#[tokio::test]
async fn raw_sockets_need_net_raw() {
    let d = daemon();
    let mut c = d.client().await;
    let calls = ["raw-socket", "packet-socket"];
    let mut req = d.request(&["true"]);
    req.capabilities_mask = vec!["NET_RAW".into()];
    let results = syscalls(&mut c, req, &calls).await;
    for call in calls {
        assert_eq!(results[call], "err EPERM", "{call}: {results:?}");
    }
    let results = syscalls(&mut c, d.request(&["true"]), &calls).await;
    for call in calls {
        assert!(results[call].starts_with("ok"), "{call}: {results:?}");
    }
    let mut req = sh(&d, "ping -c 1 -W 1 127.0.0.1 2>&1; echo rc=$?");
    req.capabilities_mask = vec!["NET_RAW".into()];
    let text = run(&mut c, req).await.stdout();
    assert!(!text.contains("rc=0"), "{text}");
}

#[tokio::test]
async fn ptrace_of_a_host_process_is_refused() {
    let d = daemon();
    let mut c = d.client().await;
    let sleeper = ChildGuard(
        Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = sleeper.0.id();
    // Without NEWPID the host's processes are visible: ptrace needs CAP_SYS_PTRACE.
    let mut req = d.request(&["true"]);
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWNET"]
        .map(String::from)
        .to_vec();
    let call = format!("ptrace-attach {pid}");
    let results = syscalls(&mut c, req, &[&call]).await;
    assert_eq!(results[&call], "err EPERM", "{results:?}");
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(
        !state.contains(") t ") && !state.contains(") T "),
        "{state}"
    );
    // With its own PID namespace the host process does not even exist for it.
    let results = syscalls(&mut c, d.request(&["true"]), &[&call]).await;
    assert_eq!(results[&call], "err ESRCH", "{results:?}");
}
