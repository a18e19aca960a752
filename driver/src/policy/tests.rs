//! The policy's decisions, rule by rule, on requests over a scratch tree of host paths (the
//! nosuid,nodev answer faked: the integration tests mount a real one).

use std::path::{Path, PathBuf};

use execdriver_proto::{self as pb, NetworkMode};

use super::create::{Limits, Rules};
use super::*;

/// A scratch tree: `allowed/` (the prefix: `rootfs/`, `data/` with a file, a directory, links
/// out, a hard-linked file), `outside/` (a secret), `safe` marks what counts as nosuid,nodev.
struct Tree {
    base: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Tree {
        let base = std::env::temp_dir().join(format!(
            "execdriver-policy-{name}-{}-{}",
            std::process::id(),
            execdriver_spec::state::now_ns()
        ));
        for d in [
            "allowed/rootfs",
            "allowed/safe/data/dir",
            "allowed/plain",
            "outside",
        ] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("allowed/safe/data/file"), "x").unwrap();
        std::fs::write(base.join("outside/secret"), "s").unwrap();
        std::os::unix::fs::symlink(base.join("outside"), base.join("allowed/safe/data/out"))
            .unwrap();
        std::os::unix::fs::symlink("../../../outside", base.join("allowed/safe/data/rel")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), base.join("allowed/rootlink")).unwrap();
        std::fs::hard_link(
            base.join("outside/secret"),
            base.join("allowed/safe/data/hard"),
        )
        .unwrap();
        Tree { base }
    }

    fn p(&self, rel: &str) -> String {
        self.base.join(rel).display().to_string()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

thread_local! {
    static SAFE: std::cell::RefCell<PathBuf> = const { std::cell::RefCell::new(PathBuf::new()) };
}

/// What counts as nosuid,nodev: everything under the current tree's `allowed/safe`, and the
/// rootfs directory.
fn fake_fs(p: &Path) -> nix::Result<bool> {
    Ok(SAFE.with(|s| {
        let base = s.borrow();
        p.starts_with(base.join("allowed/safe")) || p.starts_with(base.join("allowed/rootfs"))
    }))
}

const ME: Caller = Caller {
    uid: 1000,
    restricted: true,
};

fn limits() -> Limits {
    Limits {
        rlimits: vec![("RLIMIT_NOFILE", 4096), ("RLIMIT_CORE", u64::MAX)],
        oom_score_adj: 0,
    }
}

/// Runs the rules on `req` as ME, with containers "mine" (ME's) and "roots" (no owner).
fn check(t: &Tree, req: &mut pb::CreateRequest) -> Result<()> {
    SAFE.with(|s| *s.borrow_mut() = t.base.clone());
    let owner_of = |id: &str| match id {
        "mine" => Ok(Some(ME.uid)),
        "roots" => Ok(None),
        other => Err(Error::NotFound(other.into())),
    };
    let l = limits();
    let rules = Rules {
        caller: &ME,
        rootfs_prefixes: vec![t.base.join("allowed")],
        mount_prefixes: vec![t.base.join("allowed/safe"), t.base.join("allowed/plain")],
        owner_of: &owner_of,
        limits: &l,
        nosuid_nodev: fake_fs,
    };
    rules.check(req)
}

fn request(t: &Tree) -> pb::CreateRequest {
    pb::CreateRequest {
        id: "c1".into(),
        rootfs: t.p("allowed/rootfs"),
        process: Some(pb::Process {
            args: vec!["true".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(source: &str, writable: bool) -> pb::Mount {
    pb::Mount {
        source: source.into(),
        destination: "/data".into(),
        writable,
        private: false,
    }
}

/// The field a refusal names (panics on anything but a refusal).
fn refused(t: &Tree, change: impl FnOnce(&mut pb::CreateRequest)) -> String {
    let mut req = request(t);
    change(&mut req);
    match check(t, &mut req) {
        Err(Error::Denied { field, rule }) => {
            assert!(!rule.is_empty());
            field
        }
        other => panic!("not refused: {other:?} for {req:?}"),
    }
}

fn sec(req: &mut pb::CreateRequest) -> &mut pb::SecurityConfig {
    req.security.get_or_insert_with(Default::default)
}

fn res(req: &mut pb::CreateRequest) -> &mut pb::Resources {
    req.resources.get_or_insert_with(Default::default)
}

fn net(mode: NetworkMode) -> Option<pb::NetworkConfig> {
    Some(pb::NetworkConfig {
        mode: mode as i32,
        ..Default::default()
    })
}

#[test]
fn a_plain_request_passes_with_canonical_paths_and_without_mknod() {
    let t = Tree::new("plain");
    let mut req = request(&t);
    req.rootfs = t.p("allowed/safe/../rootfs");
    req.mounts = vec![
        mount(&t.p("allowed/safe/data/dir"), true),
        mount(&t.p("allowed/plain"), false),
        mount(&t.p("allowed/safe/data/file"), false),
    ];
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"]
        .map(String::from)
        .to_vec();
    let s = sec(&mut req);
    s.capabilities = vec!["chown".into(), "CAP_NET_RAW".into()];
    s.rlimits = vec![pb::Rlimit {
        r#type: "nofile".into(),
        soft: 1024,
        hard: 4096,
    }];
    s.oom_score_adj = Some(500);
    s.seccomp = Some(pb::SeccompConfig {
        profile: "default".into(),
        ..Default::default()
    });
    s.uid_mappings = vec![pb::IdMapping {
        container_id: 0,
        host_id: 100000,
        size: 65536,
    }];
    s.masked_paths = vec!["/secret".into()];
    check(&t, &mut req).expect("allowed");
    let canonical = |rel: &str| t.base.canonicalize().unwrap().join(rel);
    assert_eq!(PathBuf::from(&req.rootfs), canonical("allowed/rootfs"));
    assert_eq!(
        PathBuf::from(&req.mounts[0].source),
        canonical("allowed/safe/data/dir")
    );
    assert_eq!(req.capabilities_mask, ["MKNOD"]);
    // Masked already (or everything is): not added twice.
    let mut req = request(&t);
    req.capabilities_mask = vec!["ALL".into()];
    check(&t, &mut req).unwrap();
    assert_eq!(req.capabilities_mask, ["ALL"]);
    // Bridge, none, and the network of one of its own containers.
    for n in [
        net(NetworkMode::Bridge),
        net(NetworkMode::None),
        Some(pb::NetworkConfig {
            mode: NetworkMode::Container as i32,
            container_id: "mine".into(),
            ..Default::default()
        }),
    ] {
        let mut req = request(&t);
        req.network = n;
        check(&t, &mut req).expect("allowed network");
    }
}

#[test]
fn privileges_capabilities_and_protections_are_refused() {
    let t = Tree::new("privileges");
    let privileged = refused(&t, |r| {
        let s = sec(r);
        s.capabilities = vec!["ALL".into()];
        s.seccomp = Some(pb::SeccompConfig {
            profile: "unconfined".into(),
            ..Default::default()
        });
        s.unmask_system_paths = true;
    });
    assert_eq!(privileged, "security.capabilities[0]");
    type Change = Box<dyn FnOnce(&mut pb::CreateRequest)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "security.capabilities[1]",
            Box::new(|r| sec(r).capabilities = vec!["CHOWN".into(), "SYS_ADMIN".into()]),
        ),
        (
            "security.capabilities[0]",
            Box::new(|r| sec(r).capabilities = vec!["cap_sys_ptrace".into()]),
        ),
        (
            "security.no_new_privileges",
            Box::new(|r| sec(r).no_new_privileges = Some(false)),
        ),
        (
            "security.rlimits[1].hard",
            Box::new(|r| {
                sec(r).rlimits = ["core", "RLIMIT_NOFILE"]
                    .map(|n| pb::Rlimit {
                        r#type: n.into(),
                        soft: 1,
                        hard: 8192,
                    })
                    .to_vec()
            }),
        ),
        (
            "security.oom_score_adj",
            Box::new(|r| sec(r).oom_score_adj = Some(-1000)),
        ),
        (
            "security.seccomp.profile",
            Box::new(|r| {
                sec(r).seccomp = Some(pb::SeccompConfig {
                    profile: "unconfined".into(),
                    ..Default::default()
                })
            }),
        ),
        (
            "security.seccomp.profile",
            Box::new(|r| {
                sec(r).seccomp = Some(pb::SeccompConfig {
                    default_action: "SCMP_ACT_ALLOW".into(),
                    ..Default::default()
                })
            }),
        ),
        (
            "security.unmask_system_paths",
            Box::new(|r| sec(r).unmask_system_paths = true),
        ),
        (
            "security.gid_mappings[1].host_id",
            Box::new(|r| {
                let m = |c, h| pb::IdMapping {
                    container_id: c,
                    host_id: h,
                    size: 1,
                };
                sec(r).uid_mappings = vec![m(0, 100000)];
                sec(r).gid_mappings = vec![m(0, 100000), m(1, 0)];
            }),
        ),
        (
            "resources.devices[0]",
            Box::new(|r| {
                res(r).devices = vec![pb::DeviceRule {
                    path: "/dev/fuse".into(),
                    ..Default::default()
                }]
            }),
        ),
        (
            "resources.allow_all_devices",
            Box::new(|r| res(r).allow_all_devices = true),
        ),
        (
            "resources.cgroup_parent",
            Box::new(|r| res(r).cgroup_parent = "system.slice".into()),
        ),
    ];
    for (want, change) in cases {
        assert_eq!(refused(&t, change), want);
    }
    // Unknown names are the conversion's to refuse (INVALID_ARGUMENT), not the policy's.
    let mut req = request(&t);
    sec(&mut req).capabilities = vec!["NOT_A_CAP".into()];
    check(&t, &mut req).expect("left to the conversion");
}

#[test]
fn host_namespaces_are_refused() {
    let t = Tree::new("namespaces");
    let listed = |names: &[&str]| {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        move |r: &mut pb::CreateRequest| r.namespaces = names
    };
    for names in [
        &["NEWNS", "NEWUTS", "NEWIPC", "NEWNET"][..],
        &["NEWNS", "NEWUTS", "NEWPID", "NEWNET"],
        &["NEWUTS", "NEWIPC", "NEWPID", "NEWNET"],
        &["NEWNS", "NEWIPC", "NEWPID", "NEWNET"],
        &["NEWNS", "NEWUTS", "NEWIPC", "NEWPID"],
    ] {
        assert_eq!(refused(&t, listed(names)), "namespaces", "{names:?}");
    }
    assert_eq!(
        refused(&t, |r| r.network = net(NetworkMode::Host)),
        "network.mode"
    );
    assert_eq!(
        refused(&t, |r| r.network = net(NetworkMode::Slirp4netns)),
        "network.mode"
    );
    assert_eq!(
        refused(&t, |r| {
            r.network = Some(pb::NetworkConfig {
                mode: NetworkMode::Netns as i32,
                netns_path: "/proc/1/ns/net".into(),
                ..Default::default()
            })
        }),
        "network.netns_path"
    );
    assert_eq!(
        refused(&t, |r| {
            r.network = Some(pb::NetworkConfig {
                mode: NetworkMode::Container as i32,
                container_id: "roots".into(),
                ..Default::default()
            })
        }),
        "network.container_id"
    );
}

#[test]
fn host_paths_must_resolve_under_a_prefix() {
    let t = Tree::new("paths");
    for (rootfs, why) in [
        ("/".to_owned(), "the host's root"),
        (t.p("outside"), "outside the prefix"),
        (t.p("allowed/rootlink"), "a symlink out of the prefix"),
        (t.p("allowed/../outside"), "'..' out of the prefix"),
    ] {
        assert_eq!(refused(&t, |r| r.rootfs = rootfs), "rootfs", "{why}");
    }
    for (source, why) in [
        ("/".to_owned(), "the host's root"),
        ("/etc".to_owned(), "a host directory"),
        (t.p("outside/secret"), "outside the prefix"),
        (t.p("allowed/rootfs"), "under the rootfs prefix only"),
        (t.p("allowed/safe/data/out"), "an absolute symlink out"),
        (
            t.p("allowed/safe/data/rel/secret"),
            "a relative symlink out",
        ),
        (t.p("allowed/safe/../../outside"), "'..' out"),
        (
            t.p("allowed/safe/data/hard"),
            "a hard link to an outside file",
        ),
    ] {
        let mut req = request(&t);
        req.mounts = vec![mount(&t.p("allowed/plain"), false), mount(&source, false)];
        match check(&t, &mut req) {
            Err(Error::Denied { field, .. }) => assert_eq!(field, "mounts[1].source", "{why}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    // Writable only where the filesystem is nosuid,nodev; read-only anywhere allowed.
    assert_eq!(
        refused(&t, |r| r.mounts = vec![mount(&t.p("allowed/plain"), true)]),
        "mounts[0].source"
    );
    let mut req = request(&t);
    req.rootfs = t.p("allowed");
    assert!(matches!(check(&t, &mut req), Err(Error::Denied { field, .. }) if field == "rootfs"));
    req.readonly_rootfs = true;
    check(&t, &mut req).expect("a read-only rootfs anywhere under the prefix");
    // Malformed or missing: INVALID_ARGUMENT naming the field.
    for bad in ["", "relative/path", &t.p("allowed/missing")] {
        let mut req = request(&t);
        req.mounts = vec![mount(bad, false)];
        assert!(
            matches!(check(&t, &mut req), Err(Error::InvalidArgument { field, .. }) if field == "mounts[0].source"),
            "{bad:?}"
        );
    }
}

#[test]
fn the_policy_applies_only_to_restricted_callers() {
    let policy = Policy::new(
        Admitted::Restricted,
        vec!["/srv/{uid}/images".into()],
        vec!["/srv/data".into()],
    )
    .unwrap();
    assert_eq!(policy.caller(1000, 500), ME);
    assert!(!policy.caller(0, 500).restricted);
    assert!(!policy.caller(500, 500).restricted);
    assert!(!Policy::default().caller(1000, 500).restricted);
    // An unrestricted caller's request passes untouched, privileged or not.
    let mut req = pb::CreateRequest {
        rootfs: "/".into(),
        security: Some(pb::SecurityConfig {
            capabilities: vec!["ALL".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let before = req.clone();
    let root = policy.caller(0, 500);
    policy
        .create(&root, &mut req, &|_| Ok(None), &limits())
        .unwrap();
    assert_eq!(req, before);
    // `{uid}` is the caller's uid.
    let t = Tree::new("uid");
    std::fs::create_dir_all(t.base.join("1000/rootfs")).unwrap();
    let policy = Policy::new(
        Admitted::Restricted,
        vec![format!("{}/{{uid}}", t.base.display())],
        vec![],
    )
    .unwrap();
    let mut req = request(&t);
    req.rootfs = t.p("1000/rootfs");
    req.readonly_rootfs = true;
    policy
        .create(&ME, &mut req, &|_| Ok(None), &limits())
        .expect("under /base/1000");
    let other = Caller { uid: 1001, ..ME };
    assert!(matches!(
        policy.create(&other, &mut req, &|_| Ok(None), &limits()),
        Err(Error::Denied { .. })
    ));
}

#[test]
fn restricted_callers_use_only_their_own_containers() {
    let policy = Policy::default();
    assert!(policy.container(&ME, "c", Some(1000)).is_ok());
    for owner in [None, Some(1001)] {
        match policy.container(&ME, "c", owner) {
            Err(Error::Denied { field, .. }) => assert_eq!(field, "id"),
            other => panic!("{other:?}"),
        }
    }
    let root = Caller {
        uid: 0,
        restricted: false,
    };
    assert!(policy.container(&root, "c", Some(1000)).is_ok());
    assert!(ME.sees(Some(1000)) && !ME.sees(None) && root.sees(None));
}

#[test]
fn prefixes_are_checked_at_start() {
    for bad in ["relative", "/", "/srv/../etc", "/srv/{user}"] {
        let e = Policy::new(Admitted::Restricted, vec![], vec![bad.into()]).unwrap_err();
        assert!(
            e.to_string().starts_with("--restricted-mount-prefix: "),
            "{bad}: {e}"
        );
    }
    let p = Policy::new(Admitted::Restricted, vec![], vec![]).unwrap();
    let w = p.warnings(false).join("\n");
    assert!(
        w.contains("no --allow-uid") && w.contains("cannot create"),
        "{w}"
    );
    assert_eq!(Admitted::parse("restricted"), Some(Admitted::Restricted));
    assert_eq!(Admitted::parse("none"), None);
}
