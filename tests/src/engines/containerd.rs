//! A private containerd (Debian's containerd + ctr) and `ctr run` with the runtime under test.
//!
//! containerd runs from a config.toml of its own: root, state and the gRPC socket in the scratch
//! area, no ttrpc or debug socket, the CRI plugin disabled. The image is an OCI image layout
//! built here (one uncompressed layer: the busybox tarball; a config; a manifest; an index
//! naming it `docker.io/edtest/busybox:1`), archived and `ctr images import`ed. Containers run
//! through containerd-shim-runc-v2 with `--runc-binary PATH`, their runtime state under
//! `--runc-root` in the scratch area and their cgroup under the scratch area's parent.
//! (containerd 1.6's shims put their sockets in /run/containerd/s, named by a hash of our
//! socket's path, and remove them when they exit.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{
    busybox_tar, output, require, sha256_file, stop_child, wait_for_socket, Out, Runtime, Scratch,
};

/// The image every test runs.
pub const IMAGE: &str = "docker.io/edtest/busybox:1";

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Containerd {
    child: Option<Child>,
    pub socket: PathBuf,
    ctr: PathBuf,
    pub runtime: Runtime,
    pub scratch: Scratch,
}

impl Containerd {
    pub fn start(runtime: &Runtime) -> Containerd {
        let containerd = require("containerd", "containerd");
        let ctr = require("ctr", "containerd");
        require("containerd-shim-runc-v2", "containerd");
        let scratch = Scratch::new("edeng-ctrd");
        let socket = scratch.path("containerd.sock");
        let config = format!(
            "version = 2\n\
             root = \"{}\"\n\
             state = \"{}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{}\"\n\
             [ttrpc]\n  address = \"\"\n\
             [debug]\n  address = \"\"\n",
            scratch.path("root").display(),
            scratch.path("state").display(),
            socket.display()
        );
        let child = spawn(Command::new(containerd), &scratch, &config);
        let mut c = Containerd {
            child: Some(child),
            socket,
            ctr,
            runtime: runtime.clone(),
            scratch,
        };
        let log = c.scratch.path("containerd.log");
        let child = c.child.as_mut().expect("containerd");
        wait_for_socket(&c.socket, Duration::from_secs(60), child, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        let archive = oci_archive(&c.scratch.dir.path, IMAGE);
        c.ctr(&["images", "import", &archive.display().to_string()])
            .ok();
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path("containerd.log")).unwrap_or_default()
    }

    /// A `ctr` command for this containerd.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.ctr);
        c.arg("--address").arg(&self.socket);
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Out {
        output(self.command().args(args), None, CLIENT_TIMEOUT)
    }

    /// `ctr run --runc-binary PATH --runc-root R --cgroup P/ID OPTIONS IMAGE ID ARGS...`.
    pub fn run(&self, options: &[&str], id: &str, args: &[&str]) -> Out {
        let binary = self.runtime.path.display().to_string();
        let root = self.scratch.path("runc").display().to_string();
        let cgroup = format!("/{}/{id}", self.scratch.cgroup_parent);
        let mut all = vec![
            "run",
            "--runc-binary",
            &binary,
            "--runc-root",
            &root,
            "--cgroup",
            &cgroup,
        ];
        all.extend_from_slice(options);
        all.push(IMAGE);
        all.push(id);
        all.extend_from_slice(args);
        self.ctr(&all)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Duration::from_secs(10));
        }
        // `scratch` then kills the shims left (their command lines name our socket), the
        // containers (in our cgroup parent), unmounts and removes the directory.
    }
}

/// Starts containerd (`cmd`, its program) with `config` as scratch/config.toml, logging (warn
/// and up) to scratch/containerd.log.
pub fn spawn(mut cmd: Command, scratch: &Scratch, config: &str) -> Child {
    std::fs::write(scratch.path("config.toml"), config).expect("config.toml");
    let log = std::fs::File::create(scratch.path("containerd.log")).expect("log");
    cmd.arg("--config")
        .arg(scratch.path("config.toml"))
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start containerd")
}

/// Writes `data` as a blob of the layout at `dir`; returns (digest, size).
fn blob(dir: &Path, data: &[u8]) -> (String, usize) {
    let tmp = dir.join("blobs/tmp");
    std::fs::write(&tmp, data).expect("write blob");
    let digest = sha256_file(&tmp);
    std::fs::rename(&tmp, dir.join("blobs/sha256").join(&digest)).expect("blob");
    (digest, data.len())
}

/// An OCI image archive (a tar of an image layout) of the busybox rootfs, named `name`, in
/// `dir`; returns its path.
pub fn oci_archive(dir: &Path, name: &str) -> PathBuf {
    let tar = busybox_tar(dir);
    let config = serde_json::json!({"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]});
    image_archive(dir, name, &tar, config, "busybox-oci.tar")
}

/// An OCI image archive in `dir` (file `archive`) of one uncompressed layer (the tarball
/// `tar`, moved into it) with the image config `config` (`Env`, `Cmd`, `Entrypoint`), named
/// `name`; returns its path.
pub fn image_archive(
    dir: &Path,
    name: &str,
    tar: &Path,
    config: serde_json::Value,
    archive: &str,
) -> PathBuf {
    let layout = dir.join(format!("{archive}.layout"));
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("layout");
    let layer = sha256_file(tar);
    let layer_size = std::fs::metadata(tar).expect("layer").len();
    std::fs::rename(tar, layout.join("blobs/sha256").join(&layer)).expect("layer blob");
    let config = serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer}")]},
    });
    let (config, config_size) = blob(&layout, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config}"),
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{layer}"),
            "size": layer_size,
        }],
    });
    let (manifest, manifest_size) = blob(&layout, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest}"),
            "size": manifest_size,
            "annotations": {"io.containerd.image.name": name},
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index.json");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let archive = dir.join(archive);
    let status = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of the OCI layout failed");
    let _ = std::fs::remove_dir_all(&layout);
    archive
}
