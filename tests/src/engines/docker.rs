//! A private Docker daemon (Debian's docker.io `dockerd`) with the runtime under test added as
//! `edtest`, and its client.
//!
//! dockerd runs with its own `--data-root`, `--exec-root`, `--pidfile`, socket and cgroup
//! parent; it starts its own containerd under the exec-root. By default it has no bridge and
//! touches no iptables (`--bridge=none --iptables=false --ip6tables=false --ip-masq=false
//! --ip-forward=false`); [`Docker::start_in_netns`] runs it inside a network namespace of the
//! test's own, where it makes its default bridge `docker0` (still without iptables). The image
//! `edtest/busybox:1` is `docker import` of the busybox tarball. The runtime is registered with
//! `--add-runtime edtest=PATH` (the default runtime stays runc); [`Docker::run`] passes
//! `--runtime edtest`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{
    busybox_tar, output, require, stop_child, try_output, wait_for_socket, Out, Runtime, Scratch,
};
use crate::Netns;

/// The image every test runs: the busybox rootfs, imported.
pub const IMAGE: &str = "edtest/busybox:1";

/// How long a client command may take before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Docker {
    child: Option<Child>,
    pub socket: PathBuf,
    pub runtime: Runtime,
    client: PathBuf,
    /// The test's network namespace dockerd runs in, if any (dropped after dockerd).
    netns: Option<Netns>,
    pub scratch: Scratch,
}

impl Docker {
    /// dockerd with no network but `none` and `host` (no bridge, no iptables).
    pub fn start(runtime: &Runtime) -> Docker {
        Docker::spawn(runtime, None)
    }

    /// dockerd inside a network namespace of the test's own, with its default bridge there.
    pub fn start_in_netns(runtime: &Runtime) -> Docker {
        Docker::spawn(runtime, Some(Netns::new()))
    }

    fn spawn(runtime: &Runtime, netns: Option<Netns>) -> Docker {
        let dockerd = require("dockerd", "docker.io");
        // The client of the same package (a newer docker on PATH would do too; this one's API
        // version matches the daemon).
        let client = dockerd
            .parent()
            .map(|d| d.join("docker"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| require("docker", "docker.io"));
        let scratch = Scratch::new("edeng-docker");
        let socket = scratch.path("docker.sock");
        let log = std::fs::File::create(scratch.path("dockerd.log")).expect("dockerd log");
        let mut cmd = match &netns {
            Some(ns) => ns.command(&dockerd),
            None => Command::new(&dockerd),
        };
        // A config file of its own, so /etc/docker/daemon.json (if the host has one) is not
        // read; it puts dockerd's identity key (otherwise /etc/docker/key.json) in the scratch
        // area.
        let config = serde_json::json!({"deprecated-key-path": scratch.path("key.json")});
        std::fs::write(scratch.path("daemon.json"), config.to_string()).expect("daemon.json");
        cmd.arg("--config-file")
            .arg(scratch.path("daemon.json"))
            .arg("--data-root")
            .arg(scratch.path("data"))
            .arg("--exec-root")
            .arg(scratch.path("exec"))
            .arg("--pidfile")
            .arg(scratch.path("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--cgroup-parent")
            .arg(format!("/{}", scratch.cgroup_parent))
            .arg("--add-runtime")
            .arg(format!("edtest={}", runtime.path.display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--userland-proxy=false",
                "--storage-driver=overlay2",
                "--log-level=warn",
            ]);
        if netns.is_none() {
            cmd.arg("--bridge=none");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut d = Docker {
            child: Some(child),
            socket,
            runtime: runtime.clone(),
            client,
            netns,
            scratch,
        };
        let log = d.scratch.path("dockerd.log");
        let child = d.child.as_mut().expect("dockerd");
        wait_for_socket(&d.socket, Duration::from_secs(60), child, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        let tar = busybox_tar(&d.scratch.dir.path);
        d.docker(&["import", &tar.display().to_string(), IMAGE])
            .ok();
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path("dockerd.log")).unwrap_or_default()
    }

    /// The test's network namespace dockerd runs in ([`Docker::start_in_netns`]).
    pub fn netns(&self) -> &Netns {
        self.netns
            .as_ref()
            .expect("dockerd was not started in a netns")
    }

    /// A `docker` client command for this daemon.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.client);
        c.arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.scratch.path("client"));
        c
    }

    /// `docker ARGS` to the end.
    pub fn docker(&self, args: &[&str]) -> Out {
        output(self.command().args(args), None, CLIENT_TIMEOUT)
    }

    /// `docker ARGS` with `input` on its stdin.
    pub fn docker_input(&self, args: &[&str], input: &[u8]) -> Out {
        output(self.command().args(args), Some(input), CLIENT_TIMEOUT)
    }

    /// `docker run --runtime edtest ARGS` (ARGS: options, the image, the command).
    pub fn run(&self, args: &[&str]) -> Out {
        let mut all = vec!["run", "--runtime", "edtest"];
        all.extend_from_slice(args);
        self.docker(&all)
    }

    /// `docker inspect -f FORMAT NAME`, trimmed.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.docker(&["inspect", "-f", format, name])
            .ok()
            .trim()
            .to_owned()
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Containers first (quickly, so dockerd's shutdown does not wait for them), then
            // dockerd, which stops its containerd.
            if matches!(child.try_wait(), Ok(None)) {
                let ids = try_output(
                    self.command().args(["ps", "-aq"]),
                    None,
                    Duration::from_secs(30),
                )
                .map(|o| o.stdout)
                .unwrap_or_default();
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids);
                    let _ = try_output(self.command().args(&args), None, Duration::from_secs(60));
                }
            }
            stop_child(&mut child, Duration::from_secs(20));
        }
        // Then `scratch` (a field) kills what is left, unmounts and removes the directory, and
        // `netns` goes.
    }
}
