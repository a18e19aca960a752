//! The `cri` section: Kubernetes' path through containerd's CRI, one private containerd with
//! two runtime handlers side by side (`execdriver`: `execdriver-runc` as the runc shim's
//! binary; `runc`: Debian's runc), alternating in a shuffled order, [`SETTLE`] apart: pod
//! start-to-ready (RunPodSandbox, which returns once the sandbox is ready) and container start
//! (CreateContainer + StartContainer of busybox `sleep`), as a kubelet times them. Skipped,
//! saying why, when `execdriver-runc` is not built.

use std::time::Instant;

use execdriver_tests::engines::cri::{api, Cri};
use execdriver_tests::engines::Runtime;

use super::report::{ms, Report, Row};
use super::{order, SETTLE};

pub(crate) async fn cri(rounds: usize, report: &mut Report) {
    let Some(ours) = Runtime::execdriver() else {
        println!("cri: execdriver-runc is not built; the CRI table is skipped");
        return;
    };
    let runc = Runtime::runc();
    let cri = Cri::start(&[&ours, &runc]);
    let mut c = cri.client().await;
    let handlers = [ours.name, runc.name];
    let mut pods: Vec<Row> = handlers
        .iter()
        .map(|h| Row::new(format!("pod ready ({h})"), "ms"))
        .collect();
    let mut starts: Vec<Row> = handlers
        .iter()
        .map(|h| Row::new(format!("container start ({h})"), "ms"))
        .collect();
    for round in 0..rounds {
        for i in order(round, handlers.len()) {
            std::thread::sleep(SETTLE);
            let pod_config = cri.pod_config("bench");
            let t = Instant::now();
            let pod = c
                .run_pod_sandbox(api::RunPodSandboxRequest {
                    config: Some(pod_config.clone()),
                    runtime_handler: handlers[i].into(),
                })
                .await
                .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", cri.log()))
                .into_inner()
                .pod_sandbox_id;
            pods[i].samples.push(ms(t.elapsed()));
            std::thread::sleep(SETTLE);
            let t = Instant::now();
            let id = c
                .create_container(api::CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(cri.container_config("c", &["sleep", "1000"])),
                    sandbox_config: Some(pod_config),
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
            starts[i].samples.push(ms(t.elapsed()));
            // Taken down outside the timings.
            let _ = c
                .stop_pod_sandbox(api::StopPodSandboxRequest {
                    pod_sandbox_id: pod.clone(),
                })
                .await;
            let _ = c
                .remove_pod_sandbox(api::RemovePodSandboxRequest {
                    pod_sandbox_id: pod,
                })
                .await;
        }
    }
    drop(c);
    drop(cri);
    let base = |rows: &[Row]| rows.first().map(|r| r.name.clone());
    report.table(
        &format!(
            "Kubernetes (CRI through containerd 1.6): RunPodSandbox to ready ({rounds} rounds, \
             handlers alternating, {} ms apart)",
            SETTLE.as_millis()
        ),
        &pods,
        base(&pods).as_deref(),
    );
    report.table(
        &format!(
            "Kubernetes (CRI through containerd 1.6): CreateContainer + StartContainer of \
             busybox sleep ({rounds} rounds, {} ms apart)",
            SETTLE.as_millis()
        ),
        &starts,
        base(&starts).as_deref(),
    );
}
