//! The peers' set-up: OCI bundles for runc, crun and conmon on the shared rootfs, a private
//! containerd, and `Env`, everything a run measures (our daemon, the peers found, the
//! nsinit directories).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{make_rootfs, pb, unique, CgroupGuard, Daemon, TempDir};

use super::crun::{run_timed, CrunRunner};

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// An OCI bundle for runc/crun/conmon: `runc spec`, pointed at the shared rootfs.
fn make_bundle(dir: &Path, rootfs: &Path, args: &[&str], net: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(ok.success(), "runc spec");
    let path = dir.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(args);
    c["root"] = serde_json::json!({"path": rootfs, "readonly": false});
    if !net {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

/// A private containerd (its own root, state and socket; the CRI plugin off).
pub(crate) struct Containerd {
    child: Child,
    socket: PathBuf,
    namespace: String,
    /// containerd-shim-runc-v2 processes seen (they outlive containerd): ended on drop.
    pub(crate) shims: std::sync::Mutex<Vec<u32>>,
}

impl Containerd {
    fn start(dir: &Path) -> Option<Containerd> {
        if !have("containerd") || !have("ctr") {
            return None;
        }
        let socket = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \
             \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \
             \"io.containerd.snapshotter.v1.aufs\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n[debug]\n  level = \"error\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display()
        );
        std::fs::create_dir_all(dir).ok()?;
        std::fs::write(dir.join("config.toml"), config).ok()?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        Some(Containerd {
            child,
            socket,
            namespace: unique("edbench"),
            shims: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn ctr(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            "ctr".to_string(),
            "-a".into(),
            self.socket.display().to_string(),
            "-n".into(),
            self.namespace.clone(),
        ];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Its tasks die with the shims; the shims outlive containerd, so end them first.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for t in $(ctr -a {s} -n {n} task ls -q); do ctr -a {s} -n {n} task kill -s KILL $t; done; sleep 0.5; \
                 for t in $(ctr -a {s} -n {n} task ls -q); do ctr -a {s} -n {n} task delete -f $t; done; \
                 for c in $(ctr -a {s} -n {n} container ls -q); do ctr -a {s} -n {n} container delete $c; done",
                s = self.socket.display(),
                n = self.namespace
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A shim that is still there: ours if its command line names our namespace.
        for pid in self.shims.lock().map(|v| v.clone()).unwrap_or_default() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&self.namespace) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        execdriver_tests::remove_cgroup_parent(&self.namespace);
    }
}

pub(crate) fn time_cmd(argv: &[String]) -> Option<Duration> {
    let (d, failed) = run_timed("run", 1, argv);
    (failed == 0).then_some(d)
}

pub(crate) struct Env {
    pub(crate) tmp: TempDir,
    pub(crate) rootfs: PathBuf,
    pub(crate) daemon: Daemon,
    pub(crate) containerd: Option<Containerd>,
    pub(crate) crun: Option<CrunRunner>,
    pub(crate) runc: bool,
    pub(crate) conmon: bool,
    _cgroups: Vec<CgroupGuard>,
}

impl Env {
    pub(crate) fn new() -> Env {
        let tmp = TempDir::new("edbench");
        let rootfs = tmp.path.join("rootfs");
        make_rootfs(&rootfs);
        // BENCH_WHEN_LIMITED=memory,cpuset: the daemon's --cgroups-when-limited (the scale
        // figures are taken both ways).
        let daemon = match std::env::var("BENCH_WHEN_LIMITED") {
            Ok(list) if !list.is_empty() => Daemon::start_with(&["--cgroups-when-limited", &list]),
            _ => Daemon::start(),
        };
        let containerd = Containerd::start(&tmp.path.join("containerd"));
        let crun = have("crun").then(CrunRunner::start);
        let runc = have("runc");
        for (net, dir) in [(true, "bundle-net"), (false, "bundle-nonet")] {
            if runc {
                make_bundle(&tmp.path.join(dir), &rootfs, &["/bin/true"], net);
            }
        }
        if runc {
            make_bundle(
                &tmp.path.join("bundle-sleep"),
                &rootfs,
                &["sleep", "100000"],
                true,
            );
        }
        let conmon = have("conmon") && runc;
        let mut cgroups = Vec::new();
        for (net, dir) in [(true, "nsinit-net"), (false, "nsinit-nonet")] {
            let parent = unique("edbench-nsinit");
            let mut namespaces = vec!["NEWNS", "NEWUTS", "NEWIPC", "NEWPID"];
            if net {
                namespaces.push("NEWNET");
            }
            let config = serde_json::json!({
                "namespaces": namespaces,
                "cgroups": {"parent": parent, "name": "c"},
                "rootfs": rootfs,
                "environment": ["PATH=/bin"],
            });
            std::fs::create_dir_all(tmp.path.join(dir)).unwrap();
            std::fs::write(
                tmp.path.join(dir).join("container.json"),
                config.to_string(),
            )
            .unwrap();
            cgroups.push(CgroupGuard(parent));
        }
        Env {
            tmp,
            rootfs,
            daemon,
            containerd,
            crun,
            runc,
            conmon,
            _cgroups: cgroups,
        }
    }

    pub(crate) fn path(&self, p: &str) -> String {
        self.tmp.path.join(p).display().to_string()
    }

    pub(crate) fn our_request(&self, args: &[&str], net: bool) -> pb::CreateRequest {
        let mut req = self.daemon.request(args);
        req.rootfs = self.rootfs.display().to_string();
        if !net {
            req.namespaces = s(&["NEWNS", "NEWUTS", "NEWIPC", "NEWPID"]);
        }
        req
    }
}
