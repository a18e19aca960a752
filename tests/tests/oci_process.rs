//! The process fields an OCI config gives, run through `nsinit exec` with a container.json
//! that has them, each asserted from inside the container: the domain name, supplementary
//! groups, umask, the five capability sets of a non-root user with ambient capabilities,
//! sysctls (and the host's left alone), the LINUX32 personality, the I/O priority, and
//! namespaces joined by path (another container's network, IPC, UTS and PID namespaces).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, make_rootfs, TempDir};

const NAMESPACES: [&str; 5] = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"];

/// A directory with a busybox rootfs and `config` (completed with the usual namespaces and a
/// PATH unless it has its own) as container.json.
fn container_dir(mut config: serde_json::Value) -> TempDir {
    let dir = TempDir::new("edt-ociproc");
    make_rootfs(&dir.path);
    let obj = config.as_object_mut().expect("an object");
    obj.entry("namespaces")
        .or_insert_with(|| serde_json::json!(NAMESPACES));
    obj.entry("environment")
        .or_insert_with(|| serde_json::json!(["PATH=/bin"]));
    std::fs::write(dir.path.join("container.json"), config.to_string()).unwrap();
    dir
}

/// Runs `sh -c script` as a new container in `dir`.
fn run_in(dir: &Path, script: &str) -> Output {
    Command::new(bin("nsinit"))
        .args(["--allow-missing-apparmor", "exec", "sh", "-c", script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("nsinit")
}

/// Runs `script` in a new container of `config`; its stdout, after asserting it succeeded.
fn run_ok(config: serde_json::Value, script: &str) -> String {
    let dir = container_dir(config);
    let out = run_in(&dir.path, script);
    assert!(
        out.status.success(),
        "nsinit failed ({:?}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` in a new container of `config`, which must fail; its stderr.
fn run_refused(config: serde_json::Value, script: &str) -> String {
    let dir = container_dir(config);
    let out = run_in(&dir.path, script);
    assert!(
        !out.status.success(),
        "nsinit succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn domain_name_groups_and_umask() {
    let out = run_ok(
        serde_json::json!({
            "hostname": "ocibox",
            "domainname": "oci.example",
            "user": "1000:1000",
            "additional_gids": [10, 20],
            "umask": 0o027,
        }),
        "hostname; cat /proc/sys/kernel/domainname; id -u; id -G; umask",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["ocibox", "oci.example", "1000", "1000 10 20", "0027"],
        "{out}"
    );
    // Without a umask: 0022, whatever the caller's; without groups: only the gid.
    let out = run_ok(serde_json::json!({"user": "1000:1000"}), "id -G");
    assert_eq!(out.trim(), "1000");
    let dir = container_dir(serde_json::json!({}));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 0077; exec {} --allow-missing-apparmor exec sh -c umask",
            bin("nsinit").display()
        ))
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0022");
}

/// The line `key:\t<hex>` of /proc/self/status output.
fn cap_line<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(":"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

#[test]
fn capability_sets_of_a_non_root_user_with_ambient_capabilities() {
    let out = run_ok(
        serde_json::json!({
            "user": "1000:1000",
            "capability_sets": {
                "bounding": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_KILL"],
                "effective": ["CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
                "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
                "ambient": ["CAP_NET_BIND_SERVICE"],
            },
            // Replaced by the sets.
            "capabilities": ["SYS_ADMIN"],
        }),
        "grep ^Cap /proc/self/status",
    );
    // CAP_CHOWN is bit 0, CAP_KILL bit 5, CAP_NET_BIND_SERVICE bit 10. After exec a non-root
    // process without file capabilities keeps its inheritable set, and its ambient set as
    // permitted and effective.
    assert_eq!(cap_line(&out, "CapBnd"), "0000000000000421", "{out}");
    assert_eq!(cap_line(&out, "CapInh"), "0000000000000420", "{out}");
    assert_eq!(cap_line(&out, "CapPrm"), "0000000000000400", "{out}");
    assert_eq!(cap_line(&out, "CapEff"), "0000000000000400", "{out}");
    assert_eq!(cap_line(&out, "CapAmb"), "0000000000000400", "{out}");

    // An ambient capability that is not inheritable cannot be raised: the kernel refuses it,
    // and it is left out, as runc does (`runc spec`'s default config asks exactly that).
    let out = run_ok(
        serde_json::json!({
            "user": "1000:1000",
            "capability_sets": {
                "bounding": ["CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_NET_BIND_SERVICE"],
            },
        }),
        "grep ^Cap /proc/self/status",
    );
    assert_eq!(cap_line(&out, "CapAmb"), "0000000000000000", "{out}");
    assert_eq!(cap_line(&out, "CapPrm"), "0000000000000000", "{out}");
}

#[test]
fn sysctls_are_the_containers_own() {
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let host_port = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start");
    let out = run_ok(
        serde_json::json!({
            "sysctl": {
                "kernel.shmmax": "123456789",
                "net.ipv4.ip_unprivileged_port_start": "500",
            },
        }),
        "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_unprivileged_port_start",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["123456789", "500"]);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").ok(),
        host_port.ok()
    );
    // A key this kernel does not have is refused, named.
    let err = run_refused(
        serde_json::json!({"sysctl": {"net.ipv4.no_such_parameter": "1"}}),
        "true",
    );
    assert!(
        err.contains("sysctl.net.ipv4.no_such_parameter: no such kernel parameter"),
        "{err}"
    );
}

#[test]
fn linux32_personality_and_io_priority() {
    let out = run_ok(
        serde_json::json!({
            "personality": "LINUX32",
            "io_priority": {"class": "IOPRIO_CLASS_BE", "priority": 6},
        }),
        "uname -m; ionice -p $$",
    );
    let lines: Vec<&str> = out.lines().collect();
    let expect_machine: &[&str] = match std::env::consts::ARCH {
        "x86_64" => &["i686"],
        "aarch64" => &["armv7l", "armv8l"],
        _ => &[],
    };
    if !expect_machine.is_empty() {
        assert!(expect_machine.contains(&lines[0]), "{out}");
    }
    assert_eq!(lines[1], "best-effort: prio 6", "{out}");
    let out = run_ok(
        serde_json::json!({"io_priority": {"class": "IOPRIO_CLASS_IDLE"}}),
        "uname -m; ionice -p $$",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [std::env::consts::ARCH, "idle"]
    );
}

/// A container started by nsinit in the background, killed (nsinit, then its init by the
/// parent-death signal) on drop.
struct Background {
    child: Child,
    dir: TempDir,
}

impl Background {
    fn start(config: serde_json::Value, script: &str) -> Background {
        Background::start_in(container_dir(config), script)
    }

    fn start_in(dir: TempDir, script: &str) -> Background {
        let child = Command::new(bin("nsinit"))
            .args(["--allow-missing-apparmor", "exec", "sh", "-c", script])
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("nsinit");
        Background { child, dir }
    }

    /// The container's init on the host, once its pid file is there.
    fn pid(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = std::fs::read_to_string(self.dir.path.join("pid")) {
                if let Ok(pid) = s.trim().parse() {
                    return pid;
                }
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the container exited"
            );
            assert!(Instant::now() < deadline, "no pid file");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ns_link(pid: u32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn joins_another_containers_namespaces_by_path() {
    let mut first = Background::start(serde_json::json!({"hostname": "alpha"}), "exec sleep 60");
    let pid = first.pid();
    let path = |ns: &str| PathBuf::from(format!("/proc/{pid}/ns/{ns}"));
    let out = run_ok(
        serde_json::json!({
            "namespace_paths": {
                "NEWNET": path("net"),
                "NEWIPC": path("ipc"),
                "NEWUTS": path("uts"),
                "NEWPID": path("pid"),
            },
        }),
        "hostname; for n in net ipc uts pid mnt; do readlink /proc/self/ns/$n; done; \
         tr '\\0' ' ' < /proc/1/cmdline; echo",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert_eq!(lines[0], "alpha", "{out}");
    assert_eq!(lines[1], ns_link(pid, "net"));
    assert_eq!(lines[2], ns_link(pid, "ipc"));
    assert_eq!(lines[3], ns_link(pid, "uts"));
    assert_eq!(lines[4], ns_link(pid, "pid"));
    // Its own mount namespace; its /proc is the joined PID namespace's: PID 1 is the first
    // container's init.
    assert_ne!(lines[5], ns_link(pid, "mnt"));
    assert_eq!(lines[6].trim(), "sleep 60", "{out}");
}

#[test]
fn namespace_files_are_checked_before_the_clone() {
    let err = run_refused(
        serde_json::json!({"namespace_paths": {"NEWNET": "/proc/self/ns/uts"}}),
        "true",
    );
    assert!(err.contains("namespace_paths.NEWNET"), "{err}");
    assert!(err.contains("another kind"), "{err}");
    let err = run_refused(
        serde_json::json!({"namespace_paths": {"NEWIPC": "/etc/hostname"}}),
        "true",
    );
    assert!(err.contains("namespace_paths.NEWIPC"), "{err}");
    assert!(err.contains("not a namespace file"), "{err}");
    let err = run_refused(
        serde_json::json!({
            "namespaces": ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"],
            "uid_mappings": [{"container_id": 0, "host_id": 100000, "size": 65536}],
            "gid_mappings": [{"container_id": 0, "host_id": 100000, "size": 65536}],
            "namespace_paths": {"NEWNET": "/proc/self/ns/net"},
        }),
        "true",
    );
    assert!(err.contains("namespace_paths.NEWNET"), "{err}");
    assert!(err.contains("new user namespace"), "{err}");
}

#[test]
fn an_exec_into_the_container_gets_the_same_process_settings() {
    let config = serde_json::json!({
        "user": "1000:1000",
        "additional_gids": [10],
        "umask": 0o007,
        "personality": "LINUX32",
        "io_priority": {"class": "IOPRIO_CLASS_BE", "priority": 3},
        "capability_sets": {
            "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
            "effective": ["CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"],
        },
    });
    let mut first = Background::start(config, "exec sleep 60");
    let pid = first.pid();
    // nsinit in the same directory joins the live container.
    let out = run_in(
        &first.dir.path,
        "id -G; umask; uname -m; ionice -p $$; grep -E '^Cap(Bnd|Amb)' /proc/self/status; \
         readlink /proc/self/ns/pid",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1000 10", "{text}");
    assert_eq!(lines[1], "0007", "{text}");
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(lines[2], "i686", "{text}");
    }
    assert_eq!(lines[3], "best-effort: prio 3", "{text}");
    assert_eq!(cap_line(&text, "CapBnd"), "0000000000000420", "{text}");
    assert_eq!(cap_line(&text, "CapAmb"), "0000000000000400", "{text}");
    // It was a join, not a second container.
    assert_eq!(
        lines.last().copied(),
        Some(ns_link(pid, "pid").as_str()),
        "{text}"
    );
}

fn chown_tree(dir: &Path, id: u32) {
    std::os::unix::fs::lchown(dir, Some(id), Some(id)).unwrap();
    if dir.is_dir() && !dir.is_symlink() {
        for e in std::fs::read_dir(dir).unwrap() {
            chown_tree(&e.unwrap().path(), id);
        }
    }
}

#[test]
fn joins_another_containers_user_namespace_and_makes_the_rest_in_it() {
    let map = serde_json::json!([{"container_id": 0, "host_id": 100000, "size": 65536}]);
    let all = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"];
    let dir = container_dir(serde_json::json!({
        "namespaces": all,
        "uid_mappings": map,
        "gid_mappings": map,
    }));
    chown_tree(&dir.path, 100_000);
    let mut first = Background::start_in(dir, "exec sleep 60");
    let pid = first.pid();
    let path = |ns: &str| PathBuf::from(format!("/proc/{pid}/ns/{ns}"));
    let second = container_dir(serde_json::json!({
        "namespaces": all,
        "uid_mappings": map,
        "gid_mappings": map,
        "hostname": "beta",
        "namespace_paths": {"NEWUSER": path("user"), "NEWPID": path("pid")},
    }));
    chown_tree(&second.path, 100_000);
    let out = run_in(
        &second.path,
        "hostname; for n in user pid uts net; do readlink /proc/self/ns/$n; done; \
         cat /proc/self/uid_map",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "beta", "{text}");
    assert_eq!(lines[1], ns_link(pid, "user"), "{text}");
    assert_eq!(lines[2], ns_link(pid, "pid"), "{text}");
    // Its own UTS and network namespaces, made inside the joined user namespace.
    assert_ne!(lines[3], ns_link(pid, "uts"), "{text}");
    assert_ne!(lines[4], ns_link(pid, "net"), "{text}");
    assert_eq!(
        lines[5].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{text}"
    );
}
