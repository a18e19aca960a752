//! Security: what a container cannot do, and who may talk to the driver. Each attack is tried
//! from inside a container and must fail; where it makes sense the same call is made where it
//! is allowed (a privileged container, a kept capability), to show the test can see success.
//!
//! Every attack is harmless should it succeed (see tests/helper/edtest-sys.rs): reboot with a
//! bad magic number, kexec_load with invalid flags, init_module of an empty image, writes to
//! sysctls only of the container's own UTS namespace, ptrace of a `sleep` the test started.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use execdriver_spec::capabilities;
use execdriver_tests::{
    attach_collect, bin, install_helper, parse_status, pb, run, run_as, unique, Daemon, Output,
    TempDir,
};
use tonic::Code;

/// A daemon whose rootfs has the test helper.
fn daemon() -> Daemon {
    daemon_with(&[])
}

fn daemon_with(args: &[&str]) -> Daemon {
    let d = Daemon::start_with(args);
    install_helper(&d.rootfs);
    d
}

fn security(req: &mut pb::CreateRequest) -> &mut pb::SecurityConfig {
    req.security.get_or_insert_with(Default::default)
}

fn seccomp(profile: &str) -> Option<pb::SeccompConfig> {
    Some(pb::SeccompConfig {
        profile: profile.into(),
        ..Default::default()
    })
}

/// Every capability, no seccomp filter, no masked paths: what `--privileged` asks.
fn privileged(req: &mut pb::CreateRequest) {
    let s = security(req);
    s.capabilities = vec!["ALL".into()];
    s.seccomp = seccomp("unconfined");
    s.unmask_system_paths = true;
}

fn sh(d: &Daemon, script: &str) -> pb::CreateRequest {
    d.request(&["sh", "-c", script])
}

/// Runs `calls` of the helper in one container; returns "call" -> "ok N" / "err ENAME".
async fn syscalls(
    c: &mut execdriver_tests::Client,
    req: pb::CreateRequest,
    calls: &[&str],
) -> HashMap<String, String> {
    let script: Vec<String> = calls
        .iter()
        .map(|call| format!("echo \"{call}: $(edtest-sys {call} 2>&1)\""))
        .collect();
    let mut req = req;
    req.process.as_mut().unwrap().args = vec!["sh".into(), "-c".into(), script.join("; ")];
    let out = run(c, req).await;
    assert_eq!(out.code(), 0, "{} {}", out.stdout(), out.stderr());
    parse_results(&out.stdout())
}

fn parse_results(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

fn mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| capabilities::parse(n).expect(n).bitmask())
        .fold(0, |a, b| a | b)
}

fn cap_sets(status: &str) -> HashMap<&'static str, u64> {
    let s = parse_status(status);
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .into_iter()
        .map(|k| (k, u64::from_str_radix(&s[k], 16).expect(k)))
        .collect()
}

async fn exec_sync(c: &mut execdriver_tests::Client, id: &str, args: &[&str]) -> String {
    exec_sync_as(c, id, args, "").await
}

async fn exec_sync_as(
    c: &mut execdriver_tests::Client,
    id: &str,
    args: &[&str],
    user: &str,
) -> String {
    let r = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.into(),
            process: Some(pb::Process {
                args: args.iter().map(|s| s.to_string()).collect(),
                user: user.into(),
                ..Default::default()
            }),
            timeout_seconds: 30,
        })
        .await
        .expect("exec_sync")
        .into_inner();
    assert_eq!(
        r.exit.as_ref().map(|e| e.status_code),
        Some(0),
        "{} {}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    String::from_utf8_lossy(&r.stdout).into_owned()
}

/// Starts `req` (a long sleep) and returns its id.
async fn start(c: &mut execdriver_tests::Client, req: pb::CreateRequest) -> String {
    let id = req.id.clone();
    c.run(req).await.expect("run");
    id
}

async fn force_delete(c: &mut execdriver_tests::Client, id: &str) {
    c.delete(pb::DeleteRequest {
        id: id.into(),
        force: true,
    })
    .await
    .expect("delete");
}

fn assert_nothing_left(d: &Daemon) {
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

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

    let mut req = d.request(&["sleep", "100"]);
    let s = security(&mut req);
    s.rlimits = vec![
        pb::Rlimit {
            r#type: "RLIMIT_NOFILE".into(),
            soft: 1024,
            hard: 2048,
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
    assert!(line("Max open files").contains("1024 2048"), "{limits}");
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
                .contains("1024 2048")),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("500"), "{text}");
    force_delete(&mut c, &id).await;
}

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
async fn proc_and_sys_are_masked_and_read_only() {
    let d = daemon();
    let mut c = d.client().await;
    let script = "for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do \
                    if [ -e $p ]; then echo \"$p $(cat $p | wc -c)\"; else echo \"$p absent\"; fi; done; \
                  echo \"/sys/firmware $(ls -A /sys/firmware | wc -l)\"; \
                  echo \"/proc/scsi $(ls -A /proc/scsi 2>/dev/null | wc -l)\"; \
                  echo edtest > /proc/sys/kernel/hostname 2>/dev/null; echo sysctl=$?; \
                  echo h > /proc/sysrq-trigger 2>/dev/null; echo sysrq=$?; \
                  hostname; grep -E ' /proc/(sys|irq|bus|sysrq-trigger) ' /proc/self/mountinfo";
    let mut req = sh(&d, script);
    req.hostname = "inside".into();
    let text = run(&mut c, req).await.stdout();
    let host_has = |p: &str| Path::new(p).exists();
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ] {
        let want = if host_has(p) {
            format!("{p} 0\n")
        } else {
            format!("{p} absent\n")
        };
        assert!(text.contains(&want), "{want}: {text}");
    }
    assert!(text.contains("/sys/firmware 0\n"), "{text}");
    assert!(text.contains("/proc/scsi 0\n"), "{text}");
    assert!(
        text.contains("sysctl=") && !text.contains("sysctl=0"),
        "{text}"
    );
    // Read-only where the kernel has it ("h" only prints the help, should it get through);
    // where it has not, procfs cannot create it either.
    assert!(
        text.contains("sysrq=") && !text.contains("sysrq=0"),
        "{text}"
    );
    assert!(
        text.contains("inside\n"),
        "the hostname sysctl took a write: {text}"
    );
    let ro_mounts: Vec<&str> = text.lines().filter(|l| l.contains(" /proc/")).collect();
    for p in ["/proc/sys", "/proc/irq", "/proc/bus", "/proc/sysrq-trigger"] {
        if host_has(p) {
            let line = ro_mounts
                .iter()
                .find(|l| l.split(' ').nth(4) == Some(p))
                .unwrap_or_else(|| panic!("{p} is not a mount: {text}"));
            assert!(line.split(' ').nth(5).unwrap().starts_with("ro"), "{line}");
        }
    }
    // Without the masks the same script sees the host's files and writes the (namespaced)
    // hostname sysctl: the test would have noticed.
    let mut req = sh(&d, script);
    req.hostname = "inside".into();
    privileged(&mut req);
    let text = run(&mut c, req).await.stdout();
    assert!(text.contains("sysctl=0"), "{text}");
    assert!(text.contains("edtest\n"), "{text}");
    if std::fs::read_to_string("/proc/timer_list").is_ok_and(|t| !t.is_empty()) {
        assert!(!text.contains("/proc/timer_list 0\n"), "{text}");
    }
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

/// A host directory a rootfs symlink points at; a marker shows if anything lands in it.
fn host_target() -> TempDir {
    let t = TempDir::new("edt-host");
    std::fs::write(t.path.join("host-marker"), "host").unwrap();
    t
}

/// The path of the host directory `host` as seen inside `rootfs` (where a link to it leads).
fn inside(rootfs: &Path, host: &Path) -> std::path::PathBuf {
    rootfs.join(host.strip_prefix("/").unwrap())
}

#[tokio::test]
async fn symlinked_mount_destination_stays_in_the_rootfs() {
    let d = daemon();
    let mut c = d.client().await;
    let host = host_target();
    let src = TempDir::new("edt-src");
    std::fs::write(src.path.join("data"), "from the bind mount").unwrap();
    // The rootfs's /etc is a symlink to a host path, /up climbs with '..', /abs names a
    // directory that exists on the host.
    std::fs::remove_dir_all(d.rootfs.join("etc")).unwrap();
    std::os::unix::fs::symlink(&host.path, d.rootfs.join("etc")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", d.rootfs.join("up")).unwrap();
    let mut req = sh(
        &d,
        "cat /etc/conf/data; echo; cat /up/mnt2/data; echo; cat /etc/file.conf; echo; \
         ls /etc",
    );
    let bind = |dest: &str, source: &Path| pb::Mount {
        source: source.display().to_string(),
        destination: dest.into(),
        writable: false,
        private: false,
    };
    req.mounts = vec![
        bind("/etc/conf", &src.path),
        bind("/up/mnt2", &src.path),
        bind("/etc/file.conf", &src.path.join("data")),
    ];
    let out = run(&mut c, req).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let text = out.stdout();
    assert_eq!(
        text.lines().take(3).collect::<Vec<_>>(),
        ["from the bind mount"; 3],
        "{text}"
    );
    assert!(
        !text.contains("host-marker"),
        "the host dir was reached: {text}"
    );
    // Nothing was made or mounted on the host; everything landed inside the rootfs.
    let mut host_entries: Vec<_> = std::fs::read_dir(&host.path)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    host_entries.sort();
    assert_eq!(host_entries, ["host-marker"]);
    assert!(execdriver_tests::host_mounts_under(&host.path).is_empty());
    let within = inside(&d.rootfs, &host.path);
    assert!(within.join("conf").is_dir() && within.join("file.conf").is_file());
    assert!(d.rootfs.join("mnt2").is_dir());
    assert!(execdriver_tests::host_mounts_under(&d.rootfs).is_empty());
}

/// Unmounts a mount this test made (lazily) when dropped.
struct MountGuard(std::path::PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test]
async fn read_only_bind_mounts_are_read_only_throughout() {
    let d = daemon();
    let mut c = d.client().await;
    // A source with a mount below it (a tmpfs this test makes under its own directory).
    let src = TempDir::new("edt-rro");
    let sub = src.path.join("sub");
    std::fs::create_dir(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    let _unmount = MountGuard(sub.clone());
    let script = "touch /m/top 2>&1; echo top=$?; touch /m/sub/below 2>&1; echo below=$?";
    let with = |writable: bool| {
        let mut req = sh(&d, script);
        req.mounts = vec![pb::Mount {
            source: src.path.display().to_string(),
            destination: "/m".into(),
            writable,
            private: false,
        }];
        req
    };
    let text = run(&mut c, with(false)).await.stdout();
    assert!(text.contains("top=1") && text.contains("below=1"), "{text}");
    assert!(!sub.join("below").exists());
    let text = run(&mut c, with(true)).await.stdout();
    assert!(text.contains("top=0") && text.contains("below=0"), "{text}");
    assert!(sub.join("below").exists());
}

#[tokio::test]
async fn symlinked_cwd_stays_in_the_rootfs() {
    let d = daemon();
    let mut c = d.client().await;
    let host = host_target();
    std::os::unix::fs::symlink(&host.path, d.rootfs.join("link")).unwrap();
    // The link names a host directory; inside, the same path in the rootfs is meant.
    let within = inside(&d.rootfs, &host.path);
    std::fs::create_dir_all(&within).unwrap();
    std::fs::write(within.join("inside-marker"), "inside").unwrap();
    let mut req = d.request(&["sh", "-c", "pwd -P; ls"]);
    req.process.as_mut().unwrap().cwd = "/link".into();
    let text = run(&mut c, req).await.stdout();
    assert!(text.contains("inside-marker"), "{text}");
    assert!(!text.contains("host-marker"), "{text}");
    // An exec'd process's cwd resolves inside too.
    let id = start(&mut c, d.request(&["sleep", "100"])).await;
    let r = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: Some(pb::Process {
                args: vec!["ls".into()],
                cwd: "/link".into(),
                ..Default::default()
            }),
            timeout_seconds: 30,
        })
        .await
        .unwrap()
        .into_inner();
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.contains("inside-marker") && !text.contains("host-marker"),
        "{text}"
    );
    force_delete(&mut c, &id).await;
}

#[tokio::test]
async fn failed_symlinked_cwd_is_a_create_error() {
    let d = daemon();
    let mut c = d.client().await;
    let host = host_target();
    std::os::unix::fs::symlink(&host.path, d.rootfs.join("link")).unwrap();
    let mut req = d.request(&["ls"]);
    req.process.as_mut().unwrap().cwd = "/link".into();
    let err = c.create(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("working directory /link"), "{err:?}");
    assert_nothing_left(&d);
}

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

/// Gives `dir` and everything under it to `uid`:`gid` (what an engine does to an image for a
/// user namespace, so the container's root owns its files).
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).unwrap();
    if std::fs::symlink_metadata(dir).unwrap().is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

#[tokio::test]
async fn user_namespace_root_is_an_unprivileged_host_uid() {
    let d = daemon();
    let mut c = d.client().await;
    chown_tree(&d.rootfs, 100_000, 100_000);
    let data = TempDir::new("edt-userns");
    std::fs::set_permissions(&data.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = TempDir::new("edt-secret");
    std::fs::write(secret.path.join("secret"), "host root only").unwrap();
    std::fs::set_permissions(
        secret.path.join("secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let map = pb::IdMapping {
        container_id: 0,
        host_id: 100_000,
        size: 65536,
    };
    let mut req = sh(
        &d,
        "id -u; id -g; cat /proc/self/uid_map; touch /data/by-root; \
         cat /secret/secret 2>&1; exec sleep 100",
    );
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"]
        .map(String::from)
        .to_vec();
    let s = security(&mut req);
    s.uid_mappings = vec![map];
    s.gid_mappings = vec![map];
    req.mounts = vec![
        pb::Mount {
            source: data.path.display().to_string(),
            destination: "/data".into(),
            writable: true,
            private: false,
        },
        pb::Mount {
            source: secret.path.display().to_string(),
            destination: "/secret".into(),
            writable: false,
            private: false,
        },
    ];
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let mut c2 = c.clone();
    let id2 = id.clone();
    let out = tokio::spawn(async move { attach_collect(&mut c2, &id2, None, false).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.start(pb::StartRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    // The file appears once the script got there.
    let made = execdriver_tests::eventually(Duration::from_secs(10), || {
        std::fs::metadata(data.path.join("by-root")).ok()
    })
    .await
    .expect("the container made no file");
    assert_eq!((made.uid(), made.gid()), (100_000, 100_000));
    // The init as the host sees it.
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
    let status = parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap());
    assert!(status["Uid"].starts_with("100000"), "{status:?}");
    // An exec joins the user namespace: root inside, the mapped uid outside; uid 1000 inside
    // is 101000 outside.
    let text = exec_sync(&mut c, &id, &["sh", "-c", "id -u; touch /data/by-exec"]).await;
    assert_eq!(text, "0\n");
    let text = exec_sync_as(
        &mut c,
        &id,
        &["sh", "-c", "id -u; touch /data/by-user"],
        "1000",
    )
    .await;
    assert_eq!(text, "1000\n");
    assert_eq!(
        std::fs::metadata(data.path.join("by-exec")).unwrap().uid(),
        100_000
    );
    assert_eq!(
        std::fs::metadata(data.path.join("by-user")).unwrap().uid(),
        101_000
    );
    force_delete(&mut c, &id).await;
    let out = out.await.unwrap();
    let text = out.stdout();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "{text}");
    assert_eq!(lines.next(), Some("0"), "{text}");
    let map_line: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map_line, ["0", "100000", "65536"]);
    // Root of the container is nobody special on the host: a root-only host file stays shut.
    assert!(text.contains("Permission denied"), "{text}");

    // Without a network namespace of its own the kernel refuses it a new sysfs: it gets the
    // host's, read-only through and through (its submounts too).
    let mut req = sh(
        &d,
        "id -u; ls /sys/class > /dev/null && echo sys-ok; touch /sys/x 2>&1; \
         grep -c ' /sys[ /]' /proc/self/mountinfo; \
         grep ' /sys[ /]' /proc/self/mountinfo | awk '{print $6}' | grep -vc '^ro'",
    );
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWUSER"]
        .map(String::from)
        .to_vec();
    let s = security(&mut req);
    s.uid_mappings = vec![map];
    s.gid_mappings = vec![map];
    let out = run(&mut c, req).await;
    let text = out.stdout();
    assert!(text.starts_with("0\nsys-ok\n"), "{text} {}", out.stderr());
    assert!(text.contains("Read-only file system"), "{text}");
    let counts: Vec<u32> = text
        .lines()
        .rev()
        .take(2)
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(counts[0], 0, "a mount under /sys is writable: {text}");
    assert!(counts[1] >= 1, "{text}");
}

#[tokio::test]
async fn ids_cannot_escape_the_state_directory() {
    let d = daemon();
    let mut c = d.client().await;
    for id in ["../escape", "..", "a/../../b", "/abs", ".hidden"] {
        let mut req = d.request(&["true"]);
        req.id = id.into();
        let err = c.create(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id}");
        let err = c
            .state(pb::StateRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id}");
        let err = c
            .delete(pb::DeleteRequest {
                id: id.into(),
                force: true,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id}");
    }
    let id = start(&mut c, d.request(&["sleep", "100"])).await;
    for exec_id in ["../../x", "a/b", ".."] {
        let err = c
            .exec(pb::ExecRequest {
                id: id.clone(),
                exec_id: exec_id.into(),
                process: Some(pb::Process {
                    args: vec!["true".into()],
                    ..Default::default()
                }),
                start: true,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{exec_id}");
        assert!(err.message().starts_with("exec_id"), "{err:?}");
    }
    force_delete(&mut c, &id).await;
    // Nothing was made beside the root.
    let mut beside: Vec<String> = std::fs::read_dir(&d.dir.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(beside, ["d.sock", "daemon.log", "root", "rootfs"]);
    assert_nothing_left(&d);
}

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
    let text = ctl(&[
        "--cap-add",
        "SYS_PTRACE",
        "--cap-drop",
        "NET_RAW",
        "--ulimit",
        "nofile=1024:2048",
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
                .contains("1024 2048")),
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

fn ctl_as(d: &Daemon, uid: u32, gid: u32, groups: &[u32]) -> (bool, String) {
    let ctl = bin("execdriverctl");
    let out = run_as(
        uid,
        gid,
        groups,
        &[
            ctl.as_os_str(),
            OsStr::new("--socket"),
            d.socket.as_os_str(),
            OsStr::new("info"),
        ],
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_socket_admits_only_permitted_users() {
    // Default: 0600, root's. Another user cannot even connect.
    let d = Daemon::start();
    let md = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(md.mode() & 0o777, 0o600);
    let (ok, err) = ctl_as(&d, 1000, 1000, &[]);
    assert!(
        !ok && err.contains("Permission denied (os error 13)"),
        "{err}"
    );
    let (ok, err) = ctl_as(&d, 0, 0, &[]);
    assert!(ok, "{err}");
    drop(d);

    // A socket everyone may open: the credential check refuses uid 1000 on every call.
    let d = Daemon::start_with(&["--socket-mode", "666"]);
    assert_eq!(std::fs::metadata(&d.socket).unwrap().mode() & 0o777, 0o666);
    let (ok, err) = ctl_as(&d, 1000, 1000, &[]);
    assert!(
        !ok && err.contains("uid 1000 may not use this execdriverd"),
        "{err}"
    );
    drop(d);
    // ... unless it is allowed.
    let d = Daemon::start_with(&["--socket-mode", "666", "--allow-uid", "1000"]);
    let (ok, err) = ctl_as(&d, 1000, 1000, &[]);
    assert!(ok, "{err}");
    let (ok, err) = ctl_as(&d, 1001, 1001, &[]);
    assert!(!ok && err.contains("may not use"), "{err}");
    drop(d);

    // A group: the socket is 0660 and that group's; members (also supplementary) get in.
    let group = 4242 + std::process::id() % 1000;
    let d = Daemon::start_with(&["--allow-gid", &group.to_string()]);
    let md = std::fs::metadata(&d.socket).unwrap();
    assert_eq!((md.mode() & 0o777, md.gid()), (0o660, group));
    let (ok, err) = ctl_as(&d, 1000, 1000, &[group]);
    assert!(ok, "supplementary member: {err}");
    let (ok, err) = ctl_as(&d, 1001, group, &[]);
    assert!(ok, "primary member: {err}");
    let (ok, err) = ctl_as(&d, 1002, 1002, &[]);
    assert!(
        !ok && err.contains("Permission denied (os error 13)"),
        "{err}"
    );
    drop(d);
    let d = Daemon::start_with(&["--allow-gid", &group.to_string(), "--socket-mode", "666"]);
    let (ok, err) = ctl_as(&d, 1002, 1002, &[]);
    assert!(!ok && err.contains("may not use"), "{err}");
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
