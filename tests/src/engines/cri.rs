//! containerd's CRI plugin, reached as a kubelet reaches it: a private containerd (Debian's
//! 1.6) whose CRI serves runtime handlers of the test's choice (each the runc shim type,
//! `io.containerd.runc.v2`, with an OCI runtime binary as `BinaryName`), running inside a
//! network namespace of the test's own with a CNI configuration for Debian's
//! containernetworking-plugins (bridge + host-local, and loopback), so pod networking never
//! touches the host's. Images are built here and imported into containerd's `k8s.io`
//! namespace: the busybox image of the other engines, and a pause image whose one file is the
//! static program tests/helper/edtest-pause.rs. The client is tonic over containerd's socket
//! with the `runtime.v1` subset in tests/proto/runtime/v1/api.proto.
//!
//! `restrict_oom_score_adj` keeps the sandbox's OOM score adjustment (-998 as a kubelet asks)
//! no lower than containerd's own: this kind of machine gives root no CAP_SYS_RESOURCE, which
//! lowering it takes, so every runtime would fail the pod otherwise.
//!
//! Pods get a cgroup parent under the scratch area's, their network namespaces are mounted
//! under containerd's state directory (`netns_mounts_under_state_dir`), and everything is
//! removed on drop, also when a test fails half-way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use tonic::transport::Channel;

use super::containerd::{image_archive, oci_archive, spawn, IMAGE};
use super::{layer_tar, output, require, stop_child, wait_for_socket, Out, Runtime, Scratch};
use crate::{pause_helper, unique, Netns};

/// The generated `runtime.v1` messages and client.
#[allow(clippy::all, missing_docs)]
pub mod api {
    tonic::include_proto!("runtime.v1");
}

pub use api::runtime_service_client::RuntimeServiceClient;

/// The sandbox ("pause") image the CRI plugin is configured with.
pub const PAUSE_IMAGE: &str = "docker.io/edtest/pause:1";
/// The busybox image containers run.
pub const BUSYBOX_IMAGE: &str = IMAGE;
/// Where CNI's plugins are on Debian (containernetworking-plugins).
const CNI_BIN: &str = "/usr/lib/cni";
/// The pods' subnet, on the bridge `edcni0` inside the test's network namespace.
pub const POD_SUBNET: &str = "10.88.7.0/24";

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Cri {
    child: Option<Child>,
    pub socket: PathBuf,
    ctr: PathBuf,
    /// The network namespace containerd (and so CNI's bridge) runs in.
    pub netns: Netns,
    pub scratch: Scratch,
}

impl Cri {
    /// Starts containerd with a CRI runtime handler per runtime (named as the runtime: `runc`,
    /// `execdriver`), and imports the images.
    pub fn start(runtimes: &[&Runtime]) -> Cri {
        let containerd = require("containerd", "containerd");
        let ctr = require("ctr", "containerd");
        require("containerd-shim-runc-v2", "containerd");
        for plugin in ["bridge", "host-local", "loopback"] {
            assert!(
                Path::new(CNI_BIN).join(plugin).is_file(),
                "{CNI_BIN}/{plugin} is missing: install Debian's containernetworking-plugins \
                 (scripts/test.sh does)"
            );
        }
        let scratch = Scratch::new("edeng-cri");
        let socket = scratch.path("containerd.sock");
        let netns = Netns::new();
        let confdir = scratch.path("cni/net.d");
        std::fs::create_dir_all(&confdir).expect("cni conf dir");
        let cni = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": "edtest-pods",
            "plugins": [{
                "type": "bridge",
                "bridge": "edcni0",
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": scratch.path("cni/ipam").display().to_string(),
                },
            }],
        });
        std::fs::write(confdir.join("10-edtest.conflist"), cni.to_string()).expect("conflist");
        let mut runtimes_toml = String::new();
        for rt in runtimes {
            let key = format!(
                "plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{}",
                rt.name
            );
            runtimes_toml.push_str(&format!(
                "[{key}]\n  runtime_type = \"io.containerd.runc.v2\"\n\
                 [{key}.options]\n  BinaryName = \"{}\"\n  Root = \"{}\"\n  SystemdCgroup = false\n",
                rt.path.display(),
                scratch.path(&format!("{}-root", rt.name)).display(),
            ));
        }
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             [grpc]\n  address = \"{socket}\"\n\
             [ttrpc]\n  address = \"\"\n\
             [debug]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n\
             [{cri}]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n  netns_mounts_under_state_dir = true\n\
             \x20 stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n\
             \x20 disable_apparmor = true\n  restrict_oom_score_adj = true\n\
             [{cri}.containerd]\n  default_runtime_name = \"{default}\"\n  snapshotter = \"overlayfs\"\n\
             {runtimes_toml}\
             [{cri}.cni]\n  bin_dir = \"{CNI_BIN}\"\n  conf_dir = \"{confdir}\"\n  max_conf_num = 1\n",
            root = scratch.path("root").display(),
            state = scratch.path("state").display(),
            socket = socket.display(),
            opt = scratch.path("opt").display(),
            default = runtimes.first().map(|r| r.name).unwrap_or("runc"),
            confdir = confdir.display(),
        );
        let child = spawn(netns.command(containerd), &scratch, &config);
        let mut c = Cri {
            child: Some(child),
            socket,
            ctr,
            netns,
            scratch,
        };
        let log = c.scratch.path("containerd.log");
        let child = c.child.as_mut().expect("containerd");
        wait_for_socket(&c.socket, Duration::from_secs(60), child, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        let busybox = oci_archive(&c.scratch.dir.path, BUSYBOX_IMAGE);
        let pause = pause_archive(&c.scratch.dir.path);
        for archive in [busybox, pause] {
            c.ctr(&[
                "-n",
                "k8s.io",
                "images",
                "import",
                &archive.display().to_string(),
            ])
            .ok();
        }
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address SOCKET ARGS`.
    pub fn ctr(&self, args: &[&str]) -> Out {
        output(
            Command::new(&self.ctr)
                .arg("--address")
                .arg(&self.socket)
                .args(args),
            None,
            CLIENT_TIMEOUT,
        )
    }

    /// A CRI client over containerd's socket.
    pub async fn client(&self) -> RuntimeServiceClient<Channel> {
        let socket = self.socket.clone();
        let channel = tonic::transport::Endpoint::from_static("http://containerd.sock")
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .expect("connect to containerd's CRI");
        RuntimeServiceClient::new(channel)
    }

    /// A pod's config as a kubelet makes it: a unique name and uid, `hostname`, a log
    /// directory and a cgroup parent in the scratch area, its own network namespace (POD),
    /// its containers' PID namespaces their own (CONTAINER), IPC shared (POD).
    pub fn pod_config(&self, hostname: &str) -> api::PodSandboxConfig {
        let uid = unique("poduid");
        let logs = self.scratch.path(&format!("logs/{uid}"));
        std::fs::create_dir_all(&logs).expect("pod log directory");
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: unique("pod"),
                uid: uid.clone(),
                namespace: "edtest".into(),
                attempt: 0,
            }),
            hostname: hostname.into(),
            log_directory: logs.display().to_string(),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}/pod-{uid}", self.scratch.cgroup_parent),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(api::NamespaceOption {
                        network: api::NamespaceMode::Pod as i32,
                        pid: api::NamespaceMode::Container as i32,
                        ipc: api::NamespaceMode::Pod as i32,
                        target_id: String::new(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A busybox container's config: `name`, the command, its log at `<name>.log` in the
    /// pod's log directory, the pod's namespaces.
    pub fn container_config(&self, name: &str, command: &[&str]) -> api::ContainerConfig {
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: BUSYBOX_IMAGE.into(),
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(api::LinuxContainerConfig {
                resources: Some(Default::default()),
                security_context: Some(api::LinuxContainerSecurityContext {
                    namespace_options: Some(api::NamespaceOption {
                        network: api::NamespaceMode::Pod as i32,
                        pid: api::NamespaceMode::Container as i32,
                        ipc: api::NamespaceMode::Pod as i32,
                        target_id: String::new(),
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Duration::from_secs(10));
        }
        // `scratch` then kills the shims and pods left (their command lines name our
        // directory; the pods are in our cgroup parent), unmounts the pods' rootfs and network
        // namespaces (under the state directory) and removes the directory; `netns` ends with
        // its holder.
    }
}

/// The pause image: one layer holding /pause (tests/helper/edtest-pause.rs), its entrypoint.
fn pause_archive(dir: &Path) -> PathBuf {
    let rootfs = dir.join("pause-rootfs");
    std::fs::create_dir_all(&rootfs).expect("pause rootfs");
    std::fs::copy(pause_helper(), rootfs.join("pause")).expect("copy the pause program");
    let tar = layer_tar(&rootfs, &dir.join("pause.tar"));
    let config = serde_json::json!({"Entrypoint": ["/pause"]});
    image_archive(dir, PAUSE_IMAGE, &tar, config, "pause-oci.tar")
}
