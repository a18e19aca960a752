//! Handles on the host a container could inherit: no descriptor of the daemon or the shim
//! reaches its processes (init, exec, the --init reaper), and the shim binary cannot be
//! reached or written through /proc/PID/exe (a sealed in-memory copy).

use execdriver_spec::capabilities;
use execdriver_tests::{bin, pb, run};

use super::{daemon, exec_sync, force_delete, security, sh, start};

/// The descriptors a process has: "0=/dev/null 1=pipe:[..] 2=pipe:[..]" -> ["0", "1", "2"].
fn fd_numbers(line: &str) -> Vec<String> {
    line.split_whitespace()
        .filter_map(|e| e.split_once('=').map(|(n, _)| n.to_owned()))
        .collect()
}

#[tokio::test]
async fn no_host_descriptor_reaches_the_container() {
    let d = daemon();
    let mut c = d.client().await;
    let three = ["0", "1", "2"];
    let out = run(&mut c, d.request(&["edtest-sys", "fds"])).await;
    assert_eq!(fd_numbers(&out.stdout()), three, "{}", out.stdout());
    // With a stdin pipe and with a terminal.
    let mut req = d.request(&["edtest-sys", "fds"]);
    req.process.as_mut().unwrap().open_stdin = true;
    let out = run(&mut c, req).await;
    assert_eq!(fd_numbers(&out.stdout()), three, "{}", out.stdout());
    let mut req = d.request(&["edtest-sys", "fds"]);
    req.process.as_mut().unwrap().tty = true;
    let out = run(&mut c, req).await;
    assert_eq!(fd_numbers(&out.stdout()), three, "{}", out.stdout());
    // An exec'd process, in a container whose shim has clients and other pipes open.
    let mut req = d.request(&["sleep", "100"]);
    req.init = true;
    // SYS_PTRACE lets it read PID 1's descriptors below.
    security(&mut req).capabilities = capabilities::DOCKER_DEFAULT
        .iter()
        .map(|s| s.to_string())
        .chain(["SYS_PTRACE".to_string()])
        .collect();
    let id = start(&mut c, req).await;
    let text = exec_sync(&mut c, &id, &["edtest-sys", "fds"]).await;
    assert_eq!(fd_numbers(&text), three, "{text}");
    // The --init reaper (PID 1, the shim's code, never exec'd): its stdio and its own
    // signalfd, nothing of the shim's.
    let text = exec_sync(
        &mut c,
        &id,
        &[
            "sh",
            "-c",
            "for f in /proc/1/fd/*; do echo \"${f##*/} $(readlink $f)\"; done",
        ],
    )
    .await;
    let fds: Vec<&str> = text.lines().collect();
    assert!(fds.len() >= 3, "{text}");
    for l in &fds {
        let (n, target) = l.split_once(' ').unwrap();
        let n: u32 = n.parse().unwrap();
        assert!(
            n <= 2 || target == "anon_inode:[signalfd]",
            "PID 1 holds {l}: {text}"
        );
    }
    force_delete(&mut c, &id).await;
}

/// F_SEAL_WRITE
const SEAL_WRITE: i64 = 0x8;

#[tokio::test]
async fn the_shim_binary_cannot_be_reached_through_proc_exe() {
    let d = daemon();
    let mut c = d.client().await;

    // An exec'd process's /proc/self/exe is the container's binary, busy while it runs.
    let out = run(
        &mut c,
        sh(
            &d,
            "readlink /proc/self/exe; edtest-sys open-write /proc/self/exe",
        ),
    )
    .await;
    assert_eq!(out.stdout(), "/bin/busybox\nerr ETXTBSY\n");

    // The --init reaper stays the shim's image. Without CAP_SYS_PTRACE it is out of reach
    // (non-dumpable) ...
    let mut req = d.request(&["sleep", "100"]);
    req.init = true;
    let id = start(&mut c, req).await;
    let text = exec_sync(
        &mut c,
        &id,
        &[
            "sh",
            "-c",
            "edtest-sys open-read /proc/1/exe; readlink /proc/1/exe; true",
        ],
    )
    .await;
    assert_eq!(text, "err EACCES\n", "{text}");
    // ... and an exec'd process that has not exec'd yet (the shim's image too) as well.
    let created = c
        .exec(pb::ExecRequest {
            id: id.clone(),
            exec_id: "waiting".into(),
            process: Some(pb::Process {
                args: vec!["true".into()],
                ..Default::default()
            }),
            start: false,
        })
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap();
    assert!(created.pid > 0);
    let text = exec_sync(
        &mut c,
        &id,
        &[
            "sh",
            "-c",
            "for p in /proc/[0-9]*; do echo \"${p#/proc/} $(edtest-sys open-write $p/exe)\"; done",
        ],
    )
    .await;
    assert!(!text.contains("ok"), "{text}");
    let refused = text.lines().filter(|l| l.ends_with("err EACCES")).count();
    assert!(refused >= 2, "PID 1 and the waiting exec: {text}");
    force_delete(&mut c, &id).await;

    // With CAP_SYS_PTRACE it can be opened, but it is a sealed in-memory copy: no write
    // reaches the host's binary, now or after the shims have exited.
    let mut req = d.request(&["sleep", "100"]);
    req.init = true;
    security(&mut req).capabilities = capabilities::DOCKER_DEFAULT
        .iter()
        .map(|s| s.to_string())
        .chain(["SYS_PTRACE".to_string()])
        .collect();
    let id = start(&mut c, req).await;
    let text = exec_sync(
        &mut c,
        &id,
        &[
            "sh",
            "-c",
            "readlink /proc/1/exe; edtest-sys seals /proc/1/exe; edtest-sys open-write /proc/1/exe; true",
        ],
    )
    .await;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("/memfd:execdriver-shim"), "{text}");
    let seals: i64 = lines[1].strip_prefix("seals ").unwrap().parse().unwrap();
    assert_ne!(seals & SEAL_WRITE, 0, "{text}");
    assert!(lines[2].starts_with("err "), "{text}");
    assert!(lines[3].starts_with("err "), "{text}");
    // The shim itself runs from the sealed copy too.
    let st = c
        .state(pb::StateRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap();
    let exe = std::fs::read_link(format!("/proc/{}/exe", st.shim_pid)).unwrap();
    assert!(
        exe.to_string_lossy().starts_with("/memfd:execdriver-shim"),
        "{exe:?}"
    );
    force_delete(&mut c, &id).await;
    let shim = bin("execdriver-shim");
    assert!(std::fs::metadata(&shim).unwrap().len() > 0);
}
