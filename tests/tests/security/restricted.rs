//! The restricted policy (`admitted-policy = "restricted"`): a daemon admitting uid 1000
//! under it, set up through its config file, refuses that uid every request that could break
//! out (PERMISSION_DENIED naming the field), runs its plain containers with host paths from
//! the allowed directories, and still lets root do what root may.
//!
//! This file owns the set-up the restricted tests share ([`Area`]: a nosuid,nodev tmpfs with
//! an image and data directories; [`restricted_daemon`]; [`client_as`], a client whose
//! connection belongs to another uid) and the tests of what a restricted caller may ask
//! for; `restricted_owners` tests which containers it may use.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use execdriver_tests::{bin, make_rootfs, parse_status, pb, run, run_as, Client, Daemon, TempDir};
use tonic::Code;

use super::{assert_nothing_left, privileged, seccomp, security, start};

/// The uid the daemon admits under the restricted policy.
pub const USER: u32 = 1000;

/// A tmpfs mounted nosuid,nodev (unmounted on drop, with everything below it): `images/busybox`
/// (a rootfs), `data/in` (with `msg`), `data/alias` -> `in`, `data/escape` -> `../outside`,
/// `data/abs` -> `/`, `data/plain` (a bind of a directory of an ordinary filesystem, where
/// setuid works), and `outside/secret`.
pub struct Area {
    dir: TempDir,
    pub root: PathBuf,
}

impl Area {
    pub fn new() -> Area {
        use nix::mount::{mount, MsFlags};
        let dir = TempDir::new("edt-area");
        let root = dir.path.join("area");
        std::fs::create_dir(&root).unwrap();
        mount(
            Some("tmpfs"),
            &root,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=755"),
        )
        .expect("mount the area's tmpfs");
        let area = Area { dir, root };
        make_rootfs(&area.path("images/busybox"));
        for d in ["data/in", "data/plain", "outside"] {
            std::fs::create_dir_all(area.path(d)).unwrap();
        }
        std::fs::write(area.path("data/in/msg"), "from the host\n").unwrap();
        std::fs::write(area.path("outside/secret"), "secret\n").unwrap();
        std::os::unix::fs::symlink("in", area.path("data/alias")).unwrap();
        std::os::unix::fs::symlink("../outside", area.path("data/escape")).unwrap();
        std::os::unix::fs::symlink("/", area.path("data/abs")).unwrap();
        let plain = area.dir.path.join("plain");
        std::fs::create_dir(&plain).unwrap();
        std::fs::write(plain.join("file"), "plain\n").unwrap();
        mount(
            Some(&plain),
            &area.path("data/plain"),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind the plain directory");
        area
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn s(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.root, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A daemon admitting [`USER`] under the restricted policy, from a config file: images under
/// `area/images`, mounts under `area/data`.
pub fn restricted_daemon(area: &Area) -> Daemon {
    let config = area.dir.path.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "allow-uid = [{USER}]\nadmitted-policy = \"restricted\"\n\
             restricted-rootfs-prefix = [{:?}]\nrestricted-mount-prefix = [{:?}]\n",
            area.s("images"),
            area.s("data"),
        ),
    )
    .unwrap();
    let d = Daemon::start_with(&["--config", config.to_str().unwrap()]);
    execdriver_tests::install_helper(&d.rootfs);
    d
}

/// A connection to `socket` made with `uid`'s credentials, which the daemon reads from it.
fn connect_as(socket: &Path, uid: u32) -> UnixStream {
    let socket = socket.to_owned();
    let stream = std::thread::spawn(move || {
        // The raw system calls change this thread's credentials only (libc's wrappers would
        // change every thread's); the thread ends once connected.
        // SAFETY: plain system calls on integers and a null list.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, uid, uid, uid), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
        }
        UnixStream::connect(&socket).expect("connect as another uid")
    })
    .join()
    .expect("the connecting thread");
    // Its uid change made the process undumpable; the rest of the tests run as before.
    nix::sys::prctl::set_dumpable(true).expect("PR_SET_DUMPABLE");
    stream
}

/// A client whose one connection belongs to `uid`.
pub async fn client_as(d: &Daemon, uid: u32) -> Client {
    let stream = connect_as(&d.socket, uid);
    stream.set_nonblocking(true).unwrap();
    let slot = Arc::new(Mutex::new(Some(stream)));
    let channel = tonic::transport::Endpoint::from_static("http://execdriverd.sock")
        .connect_with_connector(tower::service_fn(move |_| {
            let stream = slot.lock().unwrap().take();
            async move {
                let stream = stream.ok_or_else(|| std::io::Error::other("connection used"))?;
                let stream = tokio::net::UnixStream::from_std(stream)?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect");
    Client::new(channel)
}

/// A request of the restricted user's: `args` in the area's image.
pub fn user_request(d: &Daemon, area: &Area, args: &[&str]) -> pb::CreateRequest {
    pb::CreateRequest {
        rootfs: area.s("images/busybox"),
        ..d.request(args)
    }
}

fn bind(source: &str, destination: &str, writable: bool) -> pb::Mount {
    pb::Mount {
        source: source.into(),
        destination: destination.into(),
        writable,
        private: false,
    }
}

/// Asserts PERMISSION_DENIED naming `field` as the message's start.
#[track_caller]
pub fn assert_denied(r: Result<tonic::Response<impl std::fmt::Debug>, tonic::Status>, field: &str) {
    let e = r.expect_err("refused");
    assert_eq!(e.code(), Code::PermissionDenied, "{field}: {e:?}");
    assert!(
        e.message()
            .starts_with(&format!("{field}: refused by the restricted policy: ")),
        "{field}: {}",
        e.message()
    );
}

#[tokio::test]
async fn restricted_callers_are_refused_what_breaks_out_and_nothing_is_made() {
    let area = Area::new();
    let d = restricted_daemon(&area);
    let mut user = client_as(&d, USER).await;
    type M<'a> = Box<dyn Fn(&mut pb::CreateRequest) + 'a>;
    let daemon_adj: i32 =
        std::fs::read_to_string(format!("/proc/{}/oom_score_adj", d.pid().unwrap()))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    let daemon_nofile = parse_limits(d.pid().unwrap(), "Max open files");
    let netns = |path: &str| pb::NetworkConfig {
        mode: pb::NetworkMode::Netns as i32,
        netns_path: path.into(),
        ..Default::default()
    };
    let ns = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let a = |rel: &str| area.s(rel);
    let cases: Vec<(&str, M)> = vec![
        (
            "resources.allow_all_devices",
            Box::new(|r| {
                privileged(r);
                r.resources
                    .get_or_insert_with(Default::default)
                    .allow_all_devices = true;
            }),
        ),
        ("security.capabilities[0]", Box::new(privileged)),
        (
            "security.capabilities[14]",
            Box::new(|r| {
                let mut caps: Vec<String> = execdriver_spec::capabilities::DOCKER_DEFAULT
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
                caps.push("SYS_ADMIN".into());
                security(r).capabilities = caps;
            }),
        ),
        (
            "network.mode",
            Box::new(|r| {
                r.network = Some(pb::NetworkConfig {
                    mode: pb::NetworkMode::Host as i32,
                    ..Default::default()
                })
            }),
        ),
        (
            "namespaces",
            Box::new(move |r| r.namespaces = ns(&["NEWNS", "NEWUTS", "NEWIPC", "NEWPID"])),
        ),
        (
            "network.netns_path",
            Box::new(move |r| r.network = Some(netns("/proc/1/ns/net"))),
        ),
        (
            "namespaces",
            Box::new(move |r| r.namespaces = ns(&["NEWNS", "NEWUTS", "NEWIPC", "NEWNET"])),
        ),
        (
            "namespaces",
            Box::new(move |r| r.namespaces = ns(&["NEWNS", "NEWUTS", "NEWPID", "NEWNET"])),
        ),
        (
            "mounts[0].source",
            Box::new(|r| r.mounts = vec![bind("/", "/host", false)]),
        ),
        (
            "mounts[0].source",
            Box::new(|r| r.mounts = vec![bind("/etc", "/e", false)]),
        ),
        (
            "mounts[1].source",
            Box::new(move |r| {
                r.mounts = vec![
                    bind(&a("data/in"), "/in", false),
                    bind(&a("outside"), "/out", false),
                ]
            }),
        ),
        (
            "mounts[0].source",
            Box::new(move |r| r.mounts = vec![bind(&a("data/escape"), "/x", false)]),
        ),
        (
            "mounts[0].source",
            Box::new(move |r| r.mounts = vec![bind(&a("data/abs/etc"), "/x", false)]),
        ),
        (
            "mounts[0].source",
            Box::new(move |r| r.mounts = vec![bind(&a("data/../outside/secret"), "/x", false)]),
        ),
        (
            "mounts[0].source",
            Box::new(move |r| r.mounts = vec![bind(&a("data/plain"), "/p", true)]),
        ),
        ("rootfs", Box::new(move |r| r.rootfs = a("outside"))),
        ("rootfs", Box::new(|r| r.rootfs = "/".into())),
        (
            "resources.devices[0]",
            Box::new(|r| {
                r.resources.get_or_insert_with(Default::default).devices = vec![pb::DeviceRule {
                    r#type: "c".into(),
                    major: 1,
                    minor: 1,
                    ..Default::default()
                }]
            }),
        ),
        (
            "resources.cgroup_parent",
            Box::new(|r| {
                r.resources
                    .get_or_insert_with(Default::default)
                    .cgroup_parent = "elsewhere".into()
            }),
        ),
        (
            "security.seccomp.profile",
            Box::new(|r| security(r).seccomp = seccomp("unconfined")),
        ),
        (
            "security.seccomp.profile",
            Box::new(|r| {
                security(r).seccomp = Some(pb::SeccompConfig {
                    profile: "custom".into(),
                    default_action: "SCMP_ACT_ALLOW".into(),
                    ..Default::default()
                })
            }),
        ),
        (
            "security.no_new_privileges",
            Box::new(|r| security(r).no_new_privileges = Some(false)),
        ),
        (
            "security.unmask_system_paths",
            Box::new(|r| security(r).unmask_system_paths = true),
        ),
        (
            "security.uid_mappings[0].host_id",
            Box::new(move |r| {
                r.namespaces = ns(&["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"]);
                let map = pb::IdMapping {
                    container_id: 0,
                    host_id: 0,
                    size: 65536,
                };
                security(r).uid_mappings = vec![map];
                security(r).gid_mappings = vec![map];
            }),
        ),
        (
            "security.rlimits[0].hard",
            Box::new(move |r| {
                security(r).rlimits = vec![pb::Rlimit {
                    r#type: "nofile".into(),
                    soft: 1024,
                    hard: daemon_nofile + 1,
                }]
            }),
        ),
    ];
    for (field, change) in cases {
        let mut req = user_request(&d, &area, &["true"]);
        change(&mut req);
        assert_denied(user.create(req.clone()).await, field);
        assert_denied(user.run(req).await, field);
    }
    if daemon_adj > -1000 {
        let mut req = user_request(&d, &area, &["true"]);
        security(&mut req).oom_score_adj = Some(daemon_adj - 1);
        assert_denied(user.run(req).await, "security.oom_score_adj");
    }
    // The CLI says so too.
    let ctl = bin("execdriverctl");
    let out = run_as(
        USER,
        USER,
        &[],
        &[
            ctl.as_os_str(),
            "--socket".as_ref(),
            d.socket.as_os_str(),
            "run".as_ref(),
            "--rm".as_ref(),
            "--rootfs".as_ref(),
            area.path("images/busybox").as_os_str(),
            "--cap-add".as_ref(),
            "SYS_ADMIN".as_ref(),
            "--".as_ref(),
            "true".as_ref(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("security.capabilities[14]: refused by the restricted policy: SYS_ADMIN"),
        "{err}"
    );
    assert_nothing_left(&d);
    assert!(!area.path("images/busybox/host").exists());
}

/// A limit of process `pid` from /proc/PID/limits (its hard value).
fn parse_limits(pid: u32, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text.lines().find(|l| l.starts_with(name)).expect(name);
    let hard = line[name.len()..].split_whitespace().nth(1).expect(line);
    if hard == "unlimited" {
        u64::MAX
    } else {
        hard.parse().expect(line)
    }
}

#[tokio::test]
async fn restricted_callers_run_plain_containers_with_allowed_host_paths() {
    let area = Area::new();
    let d = restricted_daemon(&area);
    let mut user = client_as(&d, USER).await;
    // Writable data (reached through a symlink that stays inside), a read-only directory of
    // an ordinary filesystem, the image writable (its tmpfs is nosuid,nodev).
    let mut req = user_request(
        &d,
        &area,
        &[
            "sh",
            "-c",
            "cat /data/msg; echo written > /data/out; cat /plain/file; echo x > /plain/no \
             || echo read-only; echo w > /written-in-rootfs && echo rootfs-writable; \
             grep CapBnd /proc/self/status; id -u",
        ],
    );
    req.mounts = vec![
        bind(&area.s("data/alias"), "/data", true),
        bind(&area.s("data/plain"), "/plain", false),
    ];
    let id = req.id.clone();
    user.create(req).await.expect("create");
    // What the container was given: canonical paths, opened strictly, without MKNOD.
    let json = std::fs::read_to_string(d.root.join(&id).join("container.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(config["strict_host_paths"], true, "{json}");
    assert_eq!(config["mounts"][0]["source"], area.s("data/in"), "{json}");
    assert_eq!(config["capabilities_mask"], serde_json::json!(["MKNOD"]));
    let out = execdriver_tests::attach_collect(&mut user, &id, None, true).await;
    user.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .expect("delete");
    let text = out.stdout();
    assert_eq!(out.code(), 0, "{text} {}", out.stderr());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "from the host", "{text}");
    assert_eq!(lines[1], "plain", "{text}");
    assert_eq!(lines[2], "read-only", "{text}");
    assert_eq!(lines[3], "rootfs-writable", "{text}");
    let bounding = parse_status(lines[4])["CapBnd"].clone();
    let bounding = u64::from_str_radix(&bounding, 16).unwrap();
    let mknod = super::mask(&["MKNOD"]);
    assert_eq!(bounding & mknod, 0, "MKNOD dropped: {text}");
    assert_eq!(
        bounding,
        super::mask(&execdriver_spec::capabilities::DOCKER_DEFAULT) & !mknod
    );
    assert_eq!(lines[5], "0", "root inside: {text}");
    assert_eq!(
        std::fs::read_to_string(area.path("data/in/out")).unwrap(),
        "written\n"
    );
    // A read-only rootfs may be anywhere under the prefix; so may the caller's own exec.
    let mut req = user_request(&d, &area, &["sleep", "100"]);
    req.readonly_rootfs = true;
    let id = start(&mut user, req).await;
    let r = user
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: Some(pb::Process {
                args: vec!["sh".into(), "-c".into(), "echo hi > /x || echo ro".into()],
                ..Default::default()
            }),
            timeout_seconds: 30,
        })
        .await
        .expect("exec into its own container")
        .into_inner();
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "ro");
    super::force_delete(&mut user, &id).await;
    assert_nothing_left(&d);
}

#[tokio::test]
async fn root_on_the_same_daemon_is_not_restricted() {
    let area = Area::new();
    let d = restricted_daemon(&area);
    let mut root = d.client().await;
    // Privileged, every device, the host's / mounted, the rootfs anywhere.
    let mut req = super::sh(
        &d,
        "grep CapEff /proc/self/status; cat /host/etc/passwd >/dev/null && echo host-visible",
    );
    privileged(&mut req);
    req.resources
        .get_or_insert_with(Default::default)
        .allow_all_devices = true;
    req.mounts = vec![bind("/", "/host", false)];
    let out = run(&mut root, req).await;
    assert_eq!(out.code(), 0, "{} {}", out.stdout(), out.stderr());
    let text = out.stdout();
    // Every capability the daemon has (the host may hold some back from root).
    let daemon = std::fs::read_to_string(format!("/proc/{}/status", d.pid().unwrap())).unwrap();
    let effective = parse_status(text.lines().next().unwrap())["CapEff"].clone();
    assert_eq!(effective, parse_status(&daemon)["CapEff"], "{text}");
    assert_ne!(
        u64::from_str_radix(&effective, 16).unwrap(),
        super::mask(&execdriver_spec::capabilities::DOCKER_DEFAULT)
    );
    assert!(text.contains("host-visible"), "{text}");
    assert_nothing_left(&d);
}

/// What the driver asks of the shim for a restricted caller's container (`strict_host_paths`):
/// the rootfs and the mount sources are opened without following a symlink anywhere in their
/// paths, so a directory swapped for a symlink after the policy's check fails the create.
#[test]
fn strict_host_paths_follow_no_symlink() {
    let tmp = TempDir::new("edt-strict");
    let base = tmp.path.canonicalize().unwrap();
    make_rootfs(&base.join("real/rootfs"));
    std::os::unix::fs::symlink("real", base.join("link")).unwrap();
    std::fs::create_dir_all(base.join("data/dir")).unwrap();
    std::fs::write(base.join("data/dir/file"), "data\n").unwrap();
    std::os::unix::fs::symlink("data/dir", base.join("datalink")).unwrap();
    std::fs::hard_link(base.join("data/dir/file"), base.join("data/hard")).unwrap();
    let state = TempDir::new("edt-strict-state");
    let nsinit = |rootfs: &str, source: &str, strict: bool| {
        let config = serde_json::json!({
            "namespaces": ["NEWNS", "NEWPID"],
            "rootfs": base.join(rootfs),
            "mounts": [{"source": base.join(source), "destination": "/data"}],
            "strict_host_paths": strict,
        });
        std::fs::write(state.path.join("container.json"), config.to_string()).unwrap();
        let out = std::process::Command::new(bin("nsinit"))
            .args([
                "exec",
                "sh",
                "-c",
                "cat /data/file 2>/dev/null || cat /data",
            ])
            .current_dir(&state.path)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), text, err)
    };
    let (ok, text, err) = nsinit("real/rootfs", "data/dir", true);
    assert!(ok && text == "data\n", "{text} {err}");
    // Without strict_host_paths the symlinks are followed, as they always were.
    let (ok, text, err) = nsinit("link/rootfs", "datalink", false);
    assert!(ok && text == "data\n", "{text} {err}");
    // With it, a symlink anywhere (or a hard-linked file) fails, naming the field.
    let (ok, _, err) = nsinit("link/rootfs", "data/dir", true);
    assert!(
        !ok && err.contains("rootfs") && err.contains("symbolic links"),
        "{err}"
    );
    let (ok, _, err) = nsinit("real/rootfs", "datalink", true);
    assert!(
        !ok && err.contains("mounts[0].source") && err.contains("symbolic links"),
        "{err}"
    );
    let (ok, _, err) = nsinit("real/rootfs", "data/hard", true);
    assert!(
        !ok && err.contains("mounts[0].source") && err.contains("Too many links"),
        "{err}"
    );
}
