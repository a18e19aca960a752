//! The Kubernetes path: containerd's CRI runs a pod with the runtime under test as its
//! RuntimeClass handler, the test playing the kubelet over CRI (`runtime.v1`). The pod has its
//! own network namespace (CNI bridge in the test's own namespace) and hostname; two busybox
//! containers share its network and IPC namespaces: one serves on 127.0.0.1, the other
//! reaches it. Limits from the container config are in the kernel (and memory's enforced),
//! logs are where `log_path` says, stats and status are reported, and stop and removal leave
//! nothing running.

use std::time::{Duration, Instant};

use execdriver_tests::engines::cri::{api, Cri, RuntimeServiceClient};
use execdriver_tests::engines::Runtime;
use tonic::transport::Channel;

variants!(cri_pod);

const MIB: i64 = 1 << 20;

fn cri_pod(rt: &Runtime) {
    let cri = Cri::start(&[rt]);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(pod(&cri, rt.name));
}

async fn pod(cri: &Cri, handler: &str) {
    let mut c = cri.client().await;
    let v = c
        .version(api::VersionRequest {
            version: "v1".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("Version: {e}\n{}", cri.log()))
        .into_inner();
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    assert_eq!(v.runtime_api_version, "v1", "{v:?}");

    // The pod: ready, with the handler asked for and an address from the CNI bridge.
    let pod_config = cri.pod_config("edpod");
    let pod_id = c
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: handler.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", cri.log()))
        .into_inner()
        .pod_sandbox_id;
    let status = c
        .pod_sandbox_status(api::PodSandboxStatusRequest {
            pod_sandbox_id: pod_id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.state, api::PodSandboxState::SandboxReady as i32);
    assert_eq!(status.runtime_handler, handler);
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    assert!(ip.starts_with("10.88.7."), "pod address {ip:?}");

    // Two containers: a server with limits, a client.
    let mut server = cri.container_config(
        "server",
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo pong > /www/index.html && echo serving && \
             exec httpd -f -p 127.0.0.1:8080 -h /www",
        ],
    );
    if let Some(linux) = server.linux.as_mut() {
        linux.resources = Some(api::LinuxContainerResources {
            memory_limit_in_bytes: 64 * MIB,
            cpu_quota: 20_000,
            cpu_period: 100_000,
            ..Default::default()
        });
    }
    let client = cri.container_config("client", &["sleep", "1000"]);
    let mut ids = Vec::new();
    for config in [server, client] {
        let id = c
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", cri.log()))
            .into_inner()
            .container_id;
        c.start_container(api::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", cri.log()));
        ids.push(id);
    }
    let (server, client) = (ids[0].clone(), ids[1].clone());

    // The client reaches the server on the pod's 127.0.0.1; both have the pod's hostname.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = exec(&mut c, &client, &["wget", "-qO-", "http://127.0.0.1:8080/"]).await;
        if r.exit_code == 0 {
            assert_eq!(String::from_utf8_lossy(&r.stdout), "pong\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never answered: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in [&server, &client] {
        let r = exec(&mut c, id, &["hostname"]).await;
        assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "edpod");
    }
    // Seen from the host: the pod's network and IPC namespaces shared, PID namespaces not.
    let (sp, cp) = (pid_of(&mut c, &server).await, pid_of(&mut c, &client).await);
    let ns = |pid: i32, kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    assert_eq!(ns(sp, "net"), ns(cp, "net"));
    assert_eq!(ns(sp, "ipc"), ns(cp, "ipc"));
    assert_ne!(ns(sp, "pid"), ns(cp, "pid"));
    assert_ne!(ns(sp, "net"), ns(std::process::id() as i32, "net"));

    // The server's limits are in its cgroups, and memory's holds.
    assert_eq!(
        cgroup_file(sp, "memory", "memory.limit_in_bytes"),
        (64 * MIB).to_string()
    );
    assert_eq!(cgroup_file(sp, "cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(cgroup_file(sp, "cpu", "cpu.cfs_period_us"), "100000");
    let r = exec(
        &mut c,
        &server,
        &[
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    )
    .await;
    assert_ne!(r.exit_code, 0, "100 MB held under a 64 MiB limit: {r:?}");
    // A second of busy loop runs into the CPU quota: the kernel throttles the cgroup.
    exec(
        &mut c,
        &server,
        &["sh", "-c", "timeout 1 sh -c 'while :; do :; done'; true"],
    )
    .await;
    let throttled = cgroup_file(sp, "cpu", "cpu.stat");
    let periods = throttled
        .lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        periods > 0,
        "a busy loop under a 20% quota was never throttled: {throttled}"
    );

    // Status, stats, and the log where log_path says, in CRI's format.
    let st = status_of(&mut c, &server).await;
    assert_eq!(st.state, api::ContainerState::ContainerRunning as i32);
    let log_path = std::path::Path::new(&pod_config.log_directory).join("server.log");
    assert_eq!(st.log_path, log_path.display().to_string());
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(log.contains(" stdout F serving"), "{log}");
    let stats = c
        .container_stats(api::ContainerStatsRequest {
            container_id: server.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let cpu = stats
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value);
    assert!(cpu.unwrap_or(0) > 0, "{cpu:?}");
    let mem = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value);
    assert!(mem.is_some(), "no memory figures");

    // Stop: the grace period, then SIGKILL (`sleep`, pid 1, ignores SIGTERM).
    for id in [&client, &server] {
        c.stop_container(api::StopContainerRequest {
            container_id: id.clone(),
            timeout: 1,
        })
        .await
        .unwrap_or_else(|e| panic!("StopContainer: {e}\n{}", cri.log()));
        let st = status_of(&mut c, id).await;
        assert_eq!(st.state, api::ContainerState::ContainerExited as i32);
        assert!(st.finished_at > 0);
        assert_eq!(st.exit_code, 137, "{st:?}");
        c.remove_container(api::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    }
    c.stop_pod_sandbox(api::StopPodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", cri.log()));
    c.remove_pod_sandbox(api::RemovePodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .unwrap();
    let gone = c
        .pod_sandbox_status(api::PodSandboxStatusRequest {
            pod_sandbox_id: pod_id,
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone}");
    // Nothing of the pod runs, and its network namespace is unmounted.
    for pid in [sp, cp] {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} runs"
        );
    }
    let procs: Vec<_> = execdriver_tests::cgroups_under(&cri.scratch.cgroup_parent)
        .into_iter()
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(procs.is_empty(), "{procs:?}");
    let netns: Vec<String> = cri
        .scratch
        .mounts()
        .into_iter()
        .filter(|m| m.contains("netns"))
        .collect();
    assert!(netns.is_empty(), "{netns:?}");
}

async fn exec(
    c: &mut RuntimeServiceClient<Channel>,
    id: &str,
    cmd: &[&str],
) -> api::ExecSyncResponse {
    c.exec_sync(api::ExecSyncRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout: 20,
    })
    .await
    .unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}"))
    .into_inner()
}

async fn status_of(c: &mut RuntimeServiceClient<Channel>, id: &str) -> api::ContainerStatus {
    c.container_status(api::ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    })
    .await
    .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
    .into_inner()
    .status
    .unwrap_or_else(|| panic!("ContainerStatus {id}: no status"))
}

/// The container's host pid, from ContainerStatus's verbose `info`.
async fn pid_of(c: &mut RuntimeServiceClient<Channel>, id: &str) -> i32 {
    let info = c
        .container_status(api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner()
        .info;
    let v: serde_json::Value =
        serde_json::from_str(info.get("info").map(String::as_str).unwrap_or("{}")).unwrap();
    v["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid in {info:?}")) as i32
}

/// A file of `pid`'s cgroup in the v1 hierarchy of `controller`.
fn cgroup_file(pid: i32, controller: &str, file: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = text
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_owned())
        })
        .unwrap_or_else(|| panic!("{pid} has no {controller} cgroup: {text}"));
    let mount = execdriver_shim::cgroups::Layout::detect_host()
        .unwrap()
        .hierarchies
        .into_iter()
        .find(|h| h.controllers.iter().any(|c| c == controller))
        .unwrap()
        .mountpoint;
    std::fs::read_to_string(mount.join(path.trim_start_matches('/')).join(file))
        .unwrap_or_default()
        .trim()
        .to_owned()
}
