//! `execdriver-runc`, the OCI runtime with runc's command line, driven as an engine drives
//! runc: a bundle (a busybox rootfs and the config.json `execdriver-runc spec` writes, edited)
//! and a `--root` of each test's own. The topics: `lifecycle` (create, start, run, state,
//! kill, delete and the errors of wrong transitions), `exec`, `hooks` (each point, the state
//! on stdin, failures) and `verbs` (ps, pause, resume, list, events, update, features, spec,
//! checkpoint, the log).
//!
//! An [`Oci`] removes its containers (`delete --force`) and its directory when dropped.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{bin, make_rootfs, TempDir};
use serde_json::Value;

mod exec;
mod hooks;
mod kernel;
mod lifecycle;
mod rootless;
mod verbs;

/// A test's runtime root and bundle.
pub struct Oci {
    pub dir: TempDir,
    pub root: PathBuf,
    pub bundle: PathBuf,
}

impl Oci {
    /// A bundle whose config.json is `execdriver-runc spec`'s, without a terminal and with a
    /// writable rootfs, then `edit`ed.
    pub fn new(edit: impl FnOnce(&mut Value)) -> Oci {
        let dir = TempDir::new("oci");
        let root = dir.path.join("root");
        let bundle = dir.path.join("bundle");
        make_rootfs(&bundle.join("rootfs"));
        let out = Command::new(bin("execdriver-runc"))
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .output()
            .expect("spec");
        assert!(out.status.success(), "spec: {out:?}");
        let path = bundle.join("config.json");
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        config["process"]["terminal"] = Value::Bool(false);
        config["root"]["readonly"] = Value::Bool(false);
        edit(&mut config);
        std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
        Oci { dir, root, bundle }
    }

    /// A bundle running `sh -c script`.
    pub fn sh(script: &str) -> Oci {
        Oci::new(|c| c["process"]["args"] = serde_json::json!(["sh", "-c", script]))
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin("execdriver-runc"));
        c.arg("--root").arg(&self.root);
        c
    }

    /// Runs a verb to its end, its output collected.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("execdriver-runc")
    }

    /// Runs a verb that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a verb that must fail with status 1; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Where a container's stdout and stderr go (the init keeps create's stdio).
    pub fn out_path(&self, id: &str) -> PathBuf {
        self.dir.path.join(format!("{id}.out"))
    }

    /// `create ID --bundle B --pid-file P` with the container's output to a file, plus
    /// `extra` flags.
    pub fn create(&self, id: &str, extra: &[&str]) -> Output {
        let out = File::create(self.out_path(id)).expect("out file");
        let err = out.try_clone().expect("dup");
        self.cmd()
            .arg("create")
            .arg("--bundle")
            .arg(&self.bundle)
            .arg("--pid-file")
            .arg(self.dir.path.join(format!("{id}.pid")))
            .args(extra)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .output()
            .expect("create")
    }

    pub fn create_ok(&self, id: &str) {
        let out = self.create(id, &[]);
        assert!(out.status.success(), "create: {out:?} {}", self.output(id));
    }

    /// What the container wrote so far.
    pub fn output(&self, id: &str) -> String {
        std::fs::read_to_string(self.out_path(id)).unwrap_or_default()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state json")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_owned()
    }

    /// Waits (up to 20 s) until the container's status is `want`.
    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Not there yet (a `run` still creating it) reads as "".
            let out = self.run(&["state", id]);
            let s = serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v["status"].as_str().map(String::from))
                .unwrap_or_default();
            if s == want {
                return;
            }
            assert!(Instant::now() < deadline, "{id} is {s}, not {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to 20 s) until the container's output contains `text`.
    pub fn wait_output(&self, id: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = self.output(id);
            if o.contains(text) {
                return o;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never wrote {text:?}: {o:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Oci {
    fn drop(&mut self) {
        let ids = self.run(&["list", "-q"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.run(&["delete", "--force", id]);
        }
    }
}
