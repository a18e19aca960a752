//! The seed's sample container.json, as it is (paths adapted), runs under execdriver-shim:
//! without its network, and with it inside a test network namespace (docker0 replaced by a
//! test bridge).

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use execdriver_spec::protocol::{
    self, request, response, Attach, Empty, Request, Response, Status, Target,
};
use execdriver_tests::{
    bin, cgroups_under, make_rootfs, parse_status, unique, CgroupGuard, TempDir,
};

const SEED: &str = include_str!("../../shim/spec/testdata/seed-container.json");

/// Kills the shim (our child, by pid) if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The sample asks for AppArmor's docker-default: kept as it is where AppArmor is missing (the
/// shim runs it unconfined with --allow-missing-apparmor) or has that profile; elsewhere it is
/// adapted, like the paths.
fn keep_apparmor_where_possible(json: &mut serde_json::Value) {
    let profiles = std::fs::read_to_string("/sys/kernel/security/apparmor/profiles");
    if execdriver_shim::security::apparmor_enabled()
        && !profiles.is_ok_and(|p| p.lines().any(|l| l.starts_with("docker-default ")))
    {
        json["context"]["apparmor_profile"] = "unconfined".into();
    }
}

fn call(sock: &std::path::Path, kind: request::Kind) -> response::Kind {
    let mut s = UnixStream::connect(sock).unwrap();
    protocol::write_frame(&mut s, &Request::new(kind)).unwrap();
    let r: Response = protocol::read_frame(&mut s).unwrap().unwrap();
    r.kind.unwrap()
}

#[test]
fn seed_sample_container_json_runs() {
    let tmp = TempDir::new("edt-seed");
    let rootfs = tmp.path.join("rootfs");
    make_rootfs(&rootfs);
    let files = tmp.path.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
    std::fs::write(files.join("hostname"), "koye\n").unwrap();
    std::fs::write(files.join("hosts"), "127.0.0.1 localhost koye\n").unwrap();
    let state = tmp.path.join("state");
    std::fs::create_dir_all(&state).unwrap();

    // The sample, with its paths adapted: the docker paths point at our files, the cgroup name
    // is unique, the network is left out (seed_sample_with_its_network_runs has it); the rootfs
    // and command are ours.
    let mut json: serde_json::Value = serde_json::from_str(SEED).unwrap();
    json.as_object_mut().unwrap().remove("networks");
    let cgroup_name = unique("seed");
    let cgroup_parent = unique("edtest-seed");
    let _cleanup = CgroupGuard(cgroup_parent.clone());
    json["cgroups"]["parent"] = cgroup_parent.clone().into();
    json["cgroups"]["name"] = cgroup_name.clone().into();
    for m in json["mounts"].as_array_mut().unwrap() {
        let src = m["source"].as_str().unwrap().to_owned();
        let name = std::path::Path::new(&src)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        m["source"] = files.join(name).display().to_string().into();
    }
    json["rootfs"] = rootfs.display().to_string().into();
    keep_apparmor_where_possible(&mut json);
    json["args"] = serde_json::json!([
        "sh",
        "-c",
        "hostname; tty; cat /etc/resolv.conf; (echo x >> /etc/resolv.conf) 2>/dev/null || echo ro; echo $HOSTNAME; grep CapBnd /proc/self/status"
    ]);
    std::fs::write(
        state.join("container.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();

    let id = unique("seed");
    let shim = Command::new(bin("execdriver-shim"))
        .args(["--id", &id, "--allow-missing-apparmor", "--state"])
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut shim = KillOnDrop(shim);
    let mut report = shim.0.stdout.take().unwrap();
    let created: Response = protocol::read_frame(&mut report).unwrap().unwrap();
    let st = match created.kind.unwrap() {
        response::Kind::State(st) => st,
        other => panic!(
            "create failed: {other:?}\n{}",
            std::fs::read_to_string(state.join("shim.log")).unwrap_or_default()
        ),
    };
    assert_eq!(st.status, Status::Created as i32);
    assert_eq!(
        std::fs::read_to_string(state.join("pid")).unwrap(),
        st.pid.to_string()
    );

    let sock = state.join("shim.sock");
    let mut attach = UnixStream::connect(&sock).unwrap();
    protocol::write_frame(
        &mut attach,
        &Request::new(request::Kind::Attach(Attach {
            stdin: false,
            stdout: true,
            stderr: true,
            exec_id: String::new(),
        })),
    )
    .unwrap();
    let ok: Response = protocol::read_frame(&mut attach).unwrap().unwrap();
    assert!(matches!(ok.kind, Some(response::Kind::Ok(_))));
    assert!(matches!(
        call(&sock, request::Kind::Start(Target::init())),
        response::Kind::Ok(_)
    ));

    let mut output = Vec::new();
    let exit = loop {
        let r: Response = protocol::read_frame(&mut attach)
            .unwrap()
            .expect("stream ended without exit");
        match r.kind.unwrap() {
            response::Kind::Output(o) => output.extend_from_slice(&o.data),
            response::Kind::Exit(e) => break e,
            _ => {}
        }
    };
    assert_eq!(exit.exit_code, Some(0));
    let text = String::from_utf8_lossy(&output).replace('\r', "");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("koye"), "{text}");
    assert_eq!(
        lines.next(),
        Some("/dev/pts/0"),
        "tty: true gives a terminal: {text}"
    );
    assert_eq!(lines.next(), Some("nameserver 192.0.2.53"), "{text}");
    assert_eq!(
        lines.next(),
        Some("ro"),
        "writable: false mounts are read-only: {text}"
    );
    assert_eq!(
        lines.next(),
        Some("11bb30683fb0"),
        "environment from the sample: {text}"
    );
    let status = parse_status(lines.next().unwrap());
    let bnd = u64::from_str_radix(&status["CapBnd"], 16).unwrap();
    for (cap, bit) in [
        ("SYS_ADMIN", 21),
        ("NET_ADMIN", 12),
        ("MKNOD", 27),
        ("SETPCAP", 8),
        ("SYS_MODULE", 16),
    ] {
        assert_eq!(
            bnd & (1 << bit),
            0,
            "{cap} is in the capabilities_mask: {bnd:x}"
        );
    }
    assert!(
        !state.join("pid").exists(),
        "the pid file goes away with the container"
    );

    assert!(matches!(
        call(&sock, request::Kind::Shutdown(Empty {})),
        response::Kind::Released(_)
    ));
    let status = shim.0.wait().unwrap();
    assert!(status.success());
    let mut rest = Vec::new();
    let _ = report.read_to_end(&mut rest);
    assert!(
        cgroups_under(&cgroup_parent).is_empty(),
        "{:?}",
        cgroups_under(&cgroup_parent)
    );
}

/// The seed's sample with its network: the veth on bridge docker0 becomes a veth on a test
/// bridge (same addresses: 172.17.0.2/16 via 172.17.42.1, MTU 1500) in a network namespace of
/// the test's own, where the shim runs.
#[test]
fn seed_sample_with_its_network_runs() {
    let ns = execdriver_tests::Netns::new();
    let bridge = execdriver_tests::unique_ifname("edseed");
    ns.ip(&["link", "add", &bridge, "type", "bridge"]);
    ns.ip(&["addr", "add", "172.17.42.1/16", "dev", &bridge]);
    ns.ip(&["link", "set", &bridge, "up"]);

    let tmp = TempDir::new("edt-seednet");
    let rootfs = tmp.path.join("rootfs");
    make_rootfs(&rootfs);
    let files = tmp.path.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for (name, text) in [
        ("resolv.conf", "nameserver 192.0.2.53\n"),
        ("hostname", "koye\n"),
        ("hosts", "127.0.0.1 localhost koye\n"),
    ] {
        std::fs::write(files.join(name), text).unwrap();
    }
    let state = tmp.path.join("state");
    std::fs::create_dir_all(&state).unwrap();

    let mut json: serde_json::Value = serde_json::from_str(SEED).unwrap();
    assert_eq!(json["networks"][0]["context"]["bridge"], "docker0");
    json["networks"][0]["context"]["bridge"] = bridge.clone().into();
    let cgroup_parent = unique("edtest-seednet");
    let _cleanup = CgroupGuard(cgroup_parent.clone());
    json["cgroups"]["parent"] = cgroup_parent.clone().into();
    json["cgroups"]["name"] = unique("seednet").into();
    for m in json["mounts"].as_array_mut().unwrap() {
        let src = m["source"].as_str().unwrap().to_owned();
        let name = std::path::Path::new(&src).file_name().unwrap().to_owned();
        m["source"] = files.join(name).display().to_string().into();
    }
    json["rootfs"] = rootfs.display().to_string().into();
    keep_apparmor_where_possible(&mut json);
    json["args"] = serde_json::json!([
        "sh",
        "-c",
        "ip -o addr show dev eth0; ip -o link show dev eth0; ip -o link show dev lo; ip route; ping -c 3 -W 5 172.17.42.1"
    ]);
    std::fs::write(
        state.join("container.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();

    let id = unique("seednet");
    let shim = ns
        .command(bin("execdriver-shim"))
        .args(["--id", &id, "--allow-missing-apparmor", "--state"])
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut shim = KillOnDrop(shim);
    let mut report = shim.0.stdout.take().unwrap();
    let created: Response = protocol::read_frame(&mut report).unwrap().unwrap();
    match created.kind.unwrap() {
        response::Kind::State(_) => {}
        other => panic!(
            "create failed: {other:?}\n{}",
            std::fs::read_to_string(state.join("shim.log")).unwrap_or_default()
        ),
    }
    // The host end is on the test bridge.
    let links: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("network.json")).unwrap()).unwrap();
    let host_if = links[0]["name"].as_str().unwrap().to_owned();
    assert!(
        host_if.starts_with("veth") && host_if.len() <= 15,
        "{host_if}"
    );
    let detail = ns.ip(&["-d", "link", "show", "dev", &host_if]);
    assert!(detail.contains(&format!("master {bridge}")), "{detail}");
    assert!(detail.contains("mtu 1500"), "{detail}");

    let sock = state.join("shim.sock");
    let mut attach = UnixStream::connect(&sock).unwrap();
    protocol::write_frame(
        &mut attach,
        &Request::new(request::Kind::Attach(Attach {
            stdin: false,
            stdout: true,
            stderr: true,
            exec_id: String::new(),
        })),
    )
    .unwrap();
    let ok: Response = protocol::read_frame(&mut attach).unwrap().unwrap();
    assert!(matches!(ok.kind, Some(response::Kind::Ok(_))));
    assert!(matches!(
        call(&sock, request::Kind::Start(Target::init())),
        response::Kind::Ok(_)
    ));
    let mut output = Vec::new();
    let exit = loop {
        let r: Response = protocol::read_frame(&mut attach)
            .unwrap()
            .expect("stream ended without exit");
        match r.kind.unwrap() {
            response::Kind::Output(o) => output.extend_from_slice(&o.data),
            response::Kind::Exit(e) => break e,
            _ => {}
        }
    };
    let text = String::from_utf8_lossy(&output).replace('\r', "");
    assert_eq!(exit.exit_code, Some(0), "{text}");
    assert!(text.contains("inet 172.17.0.2/16"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("eth0") && l.contains("mtu 1500") && l.contains(",UP")),
        "{text}"
    );
    assert!(text.contains("lo: <LOOPBACK,UP"), "{text}");
    assert!(text.contains("default via 172.17.42.1 dev eth0"), "{text}");
    assert!(
        !text.contains(" 0 packets received"),
        "the test bridge answers: {text}"
    );
    // The container ended: its veth is gone.
    assert!(ns.veths().is_empty(), "{:?}", ns.veths());

    assert!(matches!(
        call(&sock, request::Kind::Shutdown(Empty {})),
        response::Kind::Released(_)
    ));
    assert!(shim.0.wait().unwrap().success());
    let mut rest = Vec::new();
    let _ = report.read_to_end(&mut rest);
    assert!(
        cgroups_under(&cgroup_parent).is_empty(),
        "{:?}",
        cgroups_under(&cgroup_parent)
    );
}
