//! Podman (Debian's podman + conmon) on private paths with the runtime under test.
//!
//! Podman has no daemon: every command gets the same global options, `--root`, `--runroot`,
//! `--tmpdir` (its events log and exit files live there), `--network-config-dir`,
//! `--runtime PATH`, `--cgroup-manager cgroupfs`, `--events-backend file`,
//! `--storage-driver overlay`, and a private containers.conf (`CONTAINERS_CONF`) and
//! storage.conf (`CONTAINERS_STORAGE_CONF`) so the host's are not read. That containers.conf
//! sets `default_ulimits` (nofile, nproc): Podman's default raises them to the host's hard
//! limits, which needs CAP_SYS_RESOURCE, absent from some machines' bounding sets. Containers
//! run with `--network none` and `--cgroup-parent` of the scratch area (conmon goes to
//! `<parent>/conmon`). The image `localhost/edtest/busybox:1` is `podman import` of the busybox
//! tarball.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{busybox_tar, output, require, try_output, Out, Runtime, Scratch};

/// The image every test runs.
pub const IMAGE: &str = "localhost/edtest/busybox:1";

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Podman {
    podman: PathBuf,
    pub runtime: Runtime,
    pub scratch: Scratch,
}

impl Podman {
    pub fn start(runtime: &Runtime) -> Podman {
        let podman = require("podman", "podman");
        require("conmon", "conmon");
        let scratch = Scratch::new("edeng-podman");
        std::fs::create_dir_all(scratch.path("cni")).expect("cni dir");
        std::fs::write(
            scratch.path("containers.conf"),
            "[containers]\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n",
        )
        .expect("containers.conf");
        std::fs::write(
            scratch.path("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                scratch.path("run").display(),
                scratch.path("root").display()
            ),
        )
        .expect("storage.conf");
        let p = Podman {
            podman,
            runtime: runtime.clone(),
            scratch,
        };
        let tar = busybox_tar(&p.scratch.dir.path);
        p.podman(&["import", "--quiet", &tar.display().to_string(), IMAGE])
            .ok();
        p
    }

    /// A `podman` command with this instance's global options.
    pub fn command(&self) -> Command {
        let s = &self.scratch;
        let mut c = Command::new(&self.podman);
        c.env("CONTAINERS_CONF", s.path("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", s.path("storage.conf"))
            .arg("--root")
            .arg(s.path("root"))
            .arg("--runroot")
            .arg(s.path("run"))
            .arg("--tmpdir")
            .arg(s.path("tmp"))
            .arg("--network-config-dir")
            .arg(s.path("cni"))
            .arg("--runtime")
            .arg(&self.runtime.path)
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--storage-driver",
                "overlay",
            ]);
        c
    }

    /// `podman ARGS` to the end.
    pub fn podman(&self, args: &[&str]) -> Out {
        output(self.command().args(args), None, CLIENT_TIMEOUT)
    }

    /// `podman run --network none --cgroup-parent P ARGS`.
    pub fn run(&self, args: &[&str]) -> Out {
        let parent = format!("/{}", self.scratch.cgroup_parent);
        let mut all = vec!["run", "--network", "none", "--cgroup-parent", &parent];
        all.extend_from_slice(args);
        self.podman(&all)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers first (conmon's exit commands clean up after them); then `scratch` kills
        // whatever is left, unmounts and removes the directory.
        let _ = try_output(
            self.command()
                .args(["rm", "--all", "--force", "--time", "0"]),
            None,
            Duration::from_secs(60),
        );
    }
}
