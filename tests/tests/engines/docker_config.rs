//! Docker options that become parts of the runtime's config.json, each checked from inside the
//! container: bind mounts and tmpfs, devices, rlimits, sysctls, oom_score_adj, seccomp, every
//! capability, the cpu quota, a live `docker update` (the runtime's `update`), `--init`
//! (a bind-mounted init), `docker top` (the runtime's `ps`) and `docker exec -it`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use execdriver_tests::engines::docker::IMAGE;
use execdriver_tests::engines::{Docker, Runtime};
use execdriver_tests::{parse_status, unique, TempDir, Terminal};

use super::{lines, wait_for_size};

variants!(
    mounts_and_devices,
    limits_and_kernel_settings,
    seccomp_and_capabilities,
    update_top_init,
    exec_tty,
);

fn mounts_and_devices(rt: &Runtime) {
    let d = Docker::start(rt);
    let host = TempDir::new("edeng-vol");
    std::fs::write(host.path.join("in"), "from the host\n").expect("write");
    let rw = format!("{}:/data", host.path.display());
    let ro = format!("type=bind,src={},dst=/ro,readonly", host.path.display());
    let script = "cat /data/in; echo from-the-container > /data/out; \
                  touch /ro/x 2>&1; \
                  grep -E ' /scratch ' /proc/mounts; \
                  head -c 3 /dev/myzero | od -An -tx1";
    let out = d.run(&[
        "--rm",
        "-v",
        &rw,
        "--mount",
        &ro,
        "--tmpfs",
        "/scratch:size=1m,mode=1770",
        "--device",
        "/dev/zero:/dev/myzero",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let l = lines(&out.stdout);
    assert_eq!(l[0], "from the host", "{out:?}");
    assert!(l[1].contains("Read-only file system"), "{out:?}");
    assert!(l[2].starts_with("tmpfs /scratch tmpfs"), "{out:?}");
    assert!(l[2].contains("size=1024k"), "{out:?}");
    assert_eq!(l[3], "00 00 00", "{out:?}");
    let written = std::fs::read_to_string(host.path.join("out")).unwrap_or_default();
    assert_eq!(written, "from-the-container\n");
}

fn limits_and_kernel_settings(rt: &Runtime) {
    let d = Docker::start(rt);
    let script = "ulimit -n; ulimit -Hn; cat /proc/sys/kernel/shmmax; \
                  cat /proc/self/oom_score_adj; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us";
    let out = d.run(&[
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "--sysctl",
        "kernel.shmmax=123456789",
        "--oom-score-adj",
        "300",
        "--cpus",
        "0.5",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        lines(&out.stdout),
        ["100", "200", "123456789", "300", "50000"],
        "{out:?}"
    );
}

fn seccomp_and_capabilities(rt: &Runtime) {
    let d = Docker::start(rt);
    let status = |opts: &[&str]| {
        let mut args = vec!["--rm"];
        args.extend_from_slice(opts);
        args.extend([IMAGE, "cat", "/proc/self/status"]);
        let out = d.run(&args);
        assert_eq!(out.code, 0, "{out:?}");
        parse_status(&out.stdout)
    };
    // Docker's default profile is a filter (mode 2); unconfined is none.
    assert_eq!(status(&[])["Seccomp"], "2");
    assert_eq!(
        status(&["--security-opt", "seccomp=unconfined"])["Seccomp"],
        "0"
    );
    // Every capability Docker knows but CAP_SYS_RESOURCE (24: this machine's bounding set
    // lacks it, which is also why `--privileged` fails here, with runc too), all five sets alike.
    let all = status(&["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE"]);
    let eff = u64::from_str_radix(&all["CapEff"], 16).unwrap_or(0);
    assert_eq!(all["CapPrm"], all["CapEff"]);
    assert_eq!(all["CapBnd"], all["CapEff"]);
    assert_eq!(eff & (1 << 24), 0, "CAP_SYS_RESOURCE in {eff:x}");
    assert_eq!(
        eff & 0xfe_ffff,
        0xfe_ffff,
        "capabilities 0-23 but one missing: {eff:x}"
    );
    assert_ne!(eff & (1 << 21), 0, "no CAP_SYS_ADMIN in {eff:x}");
}

fn update_top_init(rt: &Runtime) {
    let d = Docker::start(rt);
    let name = unique("ed");
    d.run(&[
        "-d", "--init", "--name", &name, "--memory", "64m", IMAGE, "sleep", "1000",
    ])
    .ok();
    // --init: Docker's init (tini) is pid 1, bind-mounted into the container.
    let out = d.docker(&["exec", &name, "cat", "/proc/1/comm"]);
    assert_eq!(out.stdout.trim(), "docker-init", "{out:?}");
    // docker update: the runtime's `update` changes the running container's cgroup.
    let limit = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
    assert_eq!(
        d.docker(&["exec", &name, "cat", limit]).ok().trim(),
        "67108864"
    );
    d.docker(&["update", "--memory", "96m", "--memory-swap", "192m", &name])
        .ok();
    assert_eq!(
        d.docker(&["exec", &name, "cat", limit]).ok().trim(),
        "100663296"
    );
    let out = d.docker(&["update", "--pids-limit", "50", &name]);
    assert_eq!(out.code, 0, "{out:?}");
    let pids = d.docker(&["exec", &name, "cat", "/sys/fs/cgroup/pids/pids.max"]);
    assert_eq!(pids.ok().trim(), "50");
    // docker top: the container's processes (the shim asks the runtime's `ps`).
    let top = d.docker(&["top", &name]).ok();
    assert!(top.contains("sleep 1000"), "{top}");
    d.docker(&["rm", "-f", &name]).ok();
}

fn exec_tty(rt: &Runtime) {
    let d = Docker::start(rt);
    let name = unique("ed");
    d.run(&["-d", "--name", &name, IMAGE, "sleep", "1000"]).ok();
    let (mut term, slave) = Terminal::open(40, 120);
    let slave = std::fs::File::from(slave);
    let mut child = d
        .command()
        .args(["exec", "-it", &name, "sh"])
        .stdin(Stdio::from(slave.try_clone().expect("pty")))
        .stdout(Stdio::from(slave.try_clone().expect("pty")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("docker exec -it");
    let at = wait_for_size(&mut term, 40, 120);
    // The marker is quoted so the terminal's echo of the line does not match it.
    term.send("tty; echo 'en''d'\n");
    let end = term.expect(at, "end\n");
    let text = term.text();
    assert!(text[at..end].contains("/dev/pts/"), "{text}");
    term.send("exit 9\n");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("docker exec -it did not end: {}", term.text());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(9), "{}", term.text());
    d.docker(&["rm", "-f", &name]).ok();
}
