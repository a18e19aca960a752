//! The shim alone on a container.json written by hand: the seed format's flat `cgroups`
//! fields and a frozen start, and a create only the kernel can refuse leaving no cgroup.

use std::process::{Command, Stdio};

use execdriver_shim::cgroups::Layout;
use execdriver_tests::{bin, unique, CgroupGuard};

use super::{cgroup_dir, has_v1, ChildGuard, MIB};

/// A shim run on a container.json written by hand (as nsinit users would): the seed format's
/// flat `cgroups` fields, `freezer: FROZEN` starting the container paused.
#[test]
fn container_json_limits_and_frozen_start_through_the_shim() {
    use execdriver_spec::protocol::{self, request, response, Empty, Request, Response, Status};
    use std::os::unix::net::UnixStream;

    let tmp = execdriver_tests::TempDir::new("edt-cgjson");
    let rootfs = tmp.path.join("rootfs");
    execdriver_tests::make_rootfs(&rootfs);
    let state = tmp.path.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let parent = unique("edtest-json");
    let _cleanup = CgroupGuard(parent.clone());
    let name = unique("c");
    let config = serde_json::json!({
        "hostname": "frozen",
        "cgroups": {
            "parent": parent, "name": name, "freezer": "FROZEN",
            "memory": 48 * MIB, "pids_limit": 16, "cpu_shares": 256,
        },
        "namespaces": ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"],
        "rootfs": rootfs,
        "args": ["sleep", "100"],
    });
    std::fs::write(
        state.join("container.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    let shim = Command::new(bin("execdriver-shim"))
        .args(["--id", &name, "--state"])
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut shim = ChildGuard(shim);
    let created: Response = protocol::read_frame(&mut shim.0.stdout.take().unwrap())
        .unwrap()
        .unwrap();
    assert!(
        matches!(created.kind, Some(response::Kind::State(_))),
        "{created:?} {}",
        std::fs::read_to_string(state.join("shim.log")).unwrap_or_default()
    );
    let sock = state.join("shim.sock");
    let call = |kind: request::Kind| -> response::Kind {
        let mut s = UnixStream::connect(&sock).unwrap();
        protocol::write_frame(&mut s, &Request::new(kind)).unwrap();
        let r: Response = protocol::read_frame(&mut s).unwrap().unwrap();
        r.kind.unwrap()
    };
    let status = |k: response::Kind| match k {
        response::Kind::State(st) => st.status,
        other => panic!("{other:?}"),
    };
    let file = |ctrl: &str, f: &str| {
        std::fs::read_to_string(cgroup_dir(&parent, &name, ctrl).unwrap().join(f))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(
        file("memory", "memory.limit_in_bytes"),
        (48 * MIB).to_string()
    );
    assert_eq!(file("pids", "pids.max"), "16");
    assert_eq!(file("cpu", "cpu.shares"), "256");
    assert!(matches!(
        call(request::Kind::Start(
            execdriver_spec::protocol::Target::init()
        )),
        response::Kind::Ok(_)
    ));
    assert_eq!(
        status(call(request::Kind::State(
            execdriver_spec::protocol::Target::init()
        ))),
        Status::Paused as i32
    );
    if has_v1("freezer") {
        assert_eq!(file("freezer", "freezer.state"), "FROZEN");
    }
    assert!(matches!(
        call(request::Kind::Resume(Empty {})),
        response::Kind::Ok(_)
    ));
    assert_eq!(
        status(call(request::Kind::State(
            execdriver_spec::protocol::Target::init()
        ))),
        Status::Running as i32
    );
    match call(request::Kind::Stats(Empty {})) {
        response::Kind::Stats(s) => assert_eq!(s.pids.unwrap().limit, 16),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        call(request::Kind::Kill(protocol::Kill {
            exec_id: String::new(),
            signal: 9,
            all: false
        })),
        response::Kind::Ok(_)
    ));
    match call(request::Kind::Wait(
        execdriver_spec::protocol::Target::init(),
    )) {
        response::Kind::Exit(e) => assert_eq!(e.signal, Some(9)),
        other => panic!("{other:?}"),
    }
    // Released: every cgroup it made is gone (checked below), nothing left for the driver.
    assert!(matches!(
        call(request::Kind::Shutdown(Empty {})),
        response::Kind::Released(_)
    ));
    assert!(shim.0.wait().unwrap().success());
    for h in Layout::detect().unwrap().hierarchies {
        assert!(!h.mountpoint.join(&parent).join(&name).exists());
    }
}

/// What only the kernel can refuse (a cpuset naming a CPU the host lacks, which container.json
/// validation cannot know) fails the shim's create with INVALID_ARGUMENT, and every cgroup
/// directory it made is gone.
#[test]
fn shim_create_refused_by_the_kernel_leaves_no_cgroup() {
    use execdriver_spec::protocol::{self, response, ErrorCode, Response};
    if !has_v1("cpuset") {
        eprintln!("skipped: no v1 cpuset controller on this host");
        return;
    }
    let tmp = execdriver_tests::TempDir::new("edt-cgbad");
    let rootfs = tmp.path.join("rootfs");
    execdriver_tests::make_rootfs(&rootfs);
    let state = tmp.path.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let parent = unique("edtest-bad");
    let _cleanup = CgroupGuard(parent.clone());
    let name = unique("c");
    let config = serde_json::json!({
        "cgroups": {"parent": parent, "name": name, "cpuset_cpus": "4000", "memory": 64 * MIB},
        "namespaces": ["NEWNS", "NEWPID"],
        "rootfs": rootfs,
        "args": ["true"],
    });
    std::fs::write(state.join("container.json"), config.to_string()).unwrap();
    let mut shim = ChildGuard(
        Command::new(bin("execdriver-shim"))
            .args(["--id", &name, "--state"])
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = shim.0.stdout.take().unwrap();
    let report: Response = protocol::read_frame(&mut out).unwrap().unwrap();
    match report.kind {
        Some(response::Kind::Error(e)) => {
            assert_eq!(e.code, ErrorCode::InvalidArgument as i32, "{e:?}");
            assert!(e.message.contains("cpuset.cpus"), "{e:?}");
        }
        other => panic!("the create should fail: {other:?}"),
    }
    // The shim detaches (double fork); the process started exits with the create's outcome
    // once the shim has cleaned up and exited.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut out, &mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the error report");
    assert!(!shim.0.wait().unwrap().success());
    for h in Layout::detect().unwrap().hierarchies {
        assert!(
            !h.mountpoint.join(&parent).join(&name).exists(),
            "{} left behind",
            h.mountpoint.display()
        );
    }
}
