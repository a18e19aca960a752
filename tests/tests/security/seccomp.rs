//! Seccomp: the calls Docker's default profile refuses (for the init and an exec'd process),
//! mknod of a disk, and a custom profile from the request and from the CLI.

use std::process::Command;

use execdriver_tests::{bin, pb, run};

use super::{
    assert_nothing_left, daemon, exec_sync, force_delete, parse_results, privileged, security, sh,
    start, syscalls,
};

/// The calls Docker's default profile refuses (with EPERM), as the helper makes them.
const REFUSED: [&str; 14] = [
    "keyctl",
    "add_key",
    "bpf",
    "kexec_load",
    "init_module",
    "finit_module",
    "reboot",
    "unshare-user",
    "clone-newuser",
    "setns",
    "mount /mnt",
    "umount /proc",
    "open_by_handle_at",
    "io_uring_setup",
];

#[tokio::test]
async fn seccomp_and_capabilities_refuse_what_breaks_out() {
    let d = daemon();
    let mut c = d.client().await;
    let mut calls = REFUSED.to_vec();
    calls.extend(["ptrace-child", "raw-socket", "vsock-socket"]);
    let results = syscalls(&mut c, d.request(&["true"]), &calls).await;
    for call in REFUSED {
        assert_eq!(results[call], "err EPERM", "{call}: {results:?}");
    }
    // Ordinary things still work: a debugger on its own child, a raw socket with NET_RAW.
    assert!(results["ptrace-child"].starts_with("ok"), "{results:?}");
    assert!(results["raw-socket"].starts_with("ok"), "{results:?}");
    assert_eq!(results["vsock-socket"], "err EPERM", "{results:?}");

    // busybox's own mount, umount and unshare fail the same way; ps and ls work.
    let out = run(
        &mut c,
        sh(
            &d,
            "mount -t tmpfs none /mnt 2>&1; echo mount=$?; umount /proc 2>&1; echo umount=$?; \
             unshare -U true 2>&1; echo unshare=$?; ls / > /dev/null; echo ls=$?; \
             ps > /dev/null; echo ps=$?",
        ),
    )
    .await;
    let text = out.stdout();
    for want in ["ls=0", "ps=0"] {
        assert!(text.contains(want), "{want}: {text}");
    }
    for refused in ["mount=0", "umount=0", "unshare=0"] {
        assert!(!text.contains(refused), "{refused}: {text}");
    }
    assert!(text.contains("Operation not permitted"), "{text}");

    // The same calls where they are allowed: none is refused with EPERM, so the test above
    // would have seen them succeed.
    let mut req = d.request(&["true"]);
    privileged(&mut req);
    let results = syscalls(&mut c, req, &REFUSED).await;
    for call in REFUSED {
        assert_ne!(results[call], "err EPERM", "{call}: {results:?}");
    }
    assert!(results["mount /mnt"].starts_with("ok"), "{results:?}");
    assert!(results["unshare-user"].starts_with("ok"), "{results:?}");
    assert!(results["keyctl"] != "err EPERM" && results["add_key"].starts_with("ok"));
    assert_eq!(results["reboot"], "err EINVAL", "bad magic: {results:?}");
}

#[tokio::test]
async fn exec_is_filtered_like_the_init() {
    let d = daemon();
    let mut c = d.client().await;
    let id = start(&mut c, d.request(&["sleep", "100"])).await;
    let script: Vec<String> = ["keyctl", "bpf", "unshare-user", "mount /mnt"]
        .iter()
        .map(|call| format!("echo \"{call}: $(edtest-sys {call})\""))
        .collect();
    let text = exec_sync(&mut c, &id, &["sh", "-c", &script.join("; ")]).await;
    let results = parse_results(&text);
    assert_eq!(results.len(), 4, "{text}");
    for (call, result) in &results {
        assert_eq!(result, "err EPERM", "{call}");
    }
    force_delete(&mut c, &id).await;
}

#[tokio::test]
async fn mknod_of_a_disk_is_refused() {
    let d = daemon();
    let mut c = d.client().await;
    let calls = ["mknod /tmp/sda b 8 0", "mknod /tmp/null c 1 3"];
    let results = syscalls(&mut c, d.request(&["true"]), &calls).await;
    assert_eq!(results[calls[0]], "err EPERM", "{results:?}");
    assert!(results[calls[1]].starts_with("ok"), "{results:?}");
    let text = run(&mut c, sh(&d, "mknod /tmp/disk b 8 0 2>&1; echo rc=$?")).await;
    assert!(text.stdout().contains("rc=1"), "{}", text.stdout());
}

#[tokio::test]
async fn custom_seccomp_profile_from_the_request_and_the_cli() {
    let d = daemon();
    let mut c = d.client().await;
    let profile = r#"{
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}
        ]
    }"#;
    let script = "mkdir /tmp/x 2>&1; echo mkdir=$?; touch /tmp/y; echo touch=$?; \
                  kill -USR1 $$ 2>&1; echo usr1=$?; keyctl=$(edtest-sys keyctl); echo $keyctl";
    let p: execdriver_spec::seccomp::Profile = serde_json::from_str(profile).unwrap();
    let mut req = sh(&d, script);
    security(&mut req).seccomp = Some(pb::SeccompConfig {
        profile: "custom".into(),
        default_action: p.default_action.clone(),
        architectures: p.architectures.clone(),
        syscalls: p
            .syscalls
            .iter()
            .map(|s| pb::SeccompSyscall {
                names: s.names.clone(),
                action: s.action.clone(),
                errno_ret: s.errno_ret,
                args: s
                    .args
                    .iter()
                    .map(|a| pb::SeccompArg {
                        index: a.index,
                        value: a.value,
                        value_two: a.value_two,
                        op: a.op.clone(),
                    })
                    .collect(),
            })
            .collect(),
        ..Default::default()
    });
    let text = run(&mut c, req).await.stdout();
    assert!(
        text.contains("Permission denied") && text.contains("mkdir=1"),
        "{text}"
    );
    assert!(text.contains("touch=0"), "{text}");
    assert!(text.contains("usr1=1"), "SIGUSR1 (10) refused: {text}");
    // keyctl is allowed by this profile (the kernel answers, not the filter).
    assert!(!text.contains("err EPERM"), "{text}");

    // The CLI reads the same JSON from a file.
    let file = d.dir.path.join("profile.json");
    std::fs::write(&file, profile).unwrap();
    let out = Command::new(bin("execdriverctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["run", "--rm", "--rootfs"])
        .arg(&d.rootfs)
        .arg(format!("--security-opt=seccomp={}", file.display()))
        .args(["--", "sh", "-c", "mkdir /tmp/z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_nothing_left(&d);
}
