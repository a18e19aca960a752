//! The devices cgroup: the allow list through v1 and through the v2 eBPF filter.

use execdriver_shim::cgroups::Layout;
use execdriver_tests::{pb, run, Daemon};

use super::{cgroup_file, force_delete, has_v1, unconfined, with_resources};

/// The device checks both enforcement paths run: /dev/sda's numbers may be made (mknod is
/// allowed, as Docker does) but not opened; /dev/null works; /dev/kmsg (1:11) opens only when
/// requested.
const DEVICE_SCRIPT: &str = "mknod /dev/sdx b 8 0 && echo mknod-ok; \
     head -c 1 /dev/sdx > /dev/null 2>&1 && echo sdx-open || echo sdx-refused; \
     echo x > /dev/null && echo null-ok; \
     [ -c /dev/kmsg ] || mknod /dev/kmsg c 1 11; \
     (: > /dev/kmsg) 2>/dev/null && echo kmsg-open || echo kmsg-refused";

async fn check_devices(d: &Daemon) {
    let mut c = d.client().await;
    let out = run(&mut c, unconfined(d.request(&["sh", "-c", DEVICE_SCRIPT]))).await;
    let text = out.stdout();
    for want in ["mknod-ok", "sdx-refused", "null-ok", "kmsg-refused"] {
        assert!(
            text.contains(want),
            "{want} missing in {text:?} {}",
            out.stderr()
        );
    }
    // Requested as a rule ...
    let req = with_resources(d, &["sh", "-c", DEVICE_SCRIPT], |r| {
        r.devices = vec![pb::DeviceRule {
            r#type: "c".into(),
            major: 1,
            minor: 11,
            permissions: "w".into(),
            ..Default::default()
        }]
    });
    let out = run(&mut c, unconfined(req)).await;
    let text = out.stdout();
    assert!(text.contains("kmsg-open"), "{text:?} {}", out.stderr());
    assert!(text.contains("sdx-refused"), "{text:?}");
    // ... or as a host node, made in the container's /dev.
    let req = with_resources(
        d,
        &[
            "sh",
            "-c",
            "ls -l /dev/kmsg; (: > /dev/kmsg) && echo kmsg-open",
        ],
        |r| {
            r.devices = vec![pb::DeviceRule {
                path: "/dev/kmsg".into(),
                permissions: "w".into(),
                ..Default::default()
            }]
        },
    );
    let out = run(&mut c, req).await;
    let text = out.stdout();
    assert!(text.starts_with('c'), "a character node: {text:?}");
    assert!(
        text.contains("1,  11") || text.contains("1, 11"),
        "{text:?}"
    );
    assert!(text.contains("kmsg-open"), "{text:?} {}", out.stderr());
    // Every device.
    let req = with_resources(d, &["sh", "-c", DEVICE_SCRIPT], |r| {
        r.allow_all_devices = true
    });
    let text = run(&mut c, req).await.stdout();
    assert!(text.contains("kmsg-open"), "{text:?}");
}

#[tokio::test]
async fn devices_outside_the_allow_list_are_refused_v1() {
    if !has_v1("devices") {
        eprintln!("skipped: no v1 devices controller on this host");
        return;
    }
    let d = Daemon::start();
    check_devices(&d).await;
    // The v1 list is the default allow list, nothing else.
    let mut c = d.client().await;
    let req = d.request(&["sleep", "100"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let list = cgroup_file(&d, &id, "devices", "devices.list");
    assert!(
        list.contains("c 1:3 rwm") && list.contains("c 136:* rwm"),
        "{list}"
    );
    assert!(!list.contains("a *:*"), "{list}");
    force_delete(&mut c, &id).await;
}

#[tokio::test]
async fn devices_through_the_v2_ebpf_filter() {
    let has_v2 = Layout::detect()
        .map(|l| l.hierarchies.iter().any(|h| h.v2))
        .unwrap_or(false);
    if !has_v2 {
        eprintln!("skipped: no cgroup v2 hierarchy on this host");
        return;
    }
    let d = Daemon::start_with(&["--cgroup-devices", "bpf"]);
    check_devices(&d).await;
    if has_v1("devices") {
        // Hybrid: the v1 devices cgroup is left open; the eBPF program alone refused.
        let mut c = d.client().await;
        let req = d.request(&["sleep", "100"]);
        let id = req.id.clone();
        c.run(req).await.unwrap();
        assert_eq!(cgroup_file(&d, &id, "devices", "devices.list"), "a *:* rwm");
        force_delete(&mut c, &id).await;
    }
}
