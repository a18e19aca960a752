//! Cgroups for real: limits the kernel enforces (memory and the OOM killer, pids, cpu quota,
//! devices through v1 and through the eBPF filter), pause/resume, live update, stats, pids,
//! and that nothing is left in any hierarchy afterwards.
//!
//! This machine has cgroup v1 (or hybrid); the v2 writers are unit-tested over a tempdir in the
//! shim (`cgroups::v2`), and the v2 eBPF device filter runs here for real on a hybrid host.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_shim::cgroups::Layout;
use execdriver_tests::{attach_collect, bin, eventually, pb, run, unique, CgroupGuard, Daemon};
use tonic::Code;

const MIB: i64 = 1 << 20;

/// The directory of the container `id` in the v1 hierarchy of `controller` (or the unified one
/// for "v2").
fn cgroup_dir(parent: &str, id: &str, controller: &str) -> Option<PathBuf> {
    let layout = Layout::detect().ok()?;
    let h = layout.hierarchies.iter().find(|h| {
        if controller == "v2" {
            h.v2
        } else {
            !h.v2 && h.controllers.iter().any(|c| c == controller)
        }
    })?;
    Some(h.mountpoint.join(parent).join(id))
}

fn cgroup_file(d: &Daemon, id: &str, controller: &str, file: &str) -> String {
    let dir = cgroup_dir(&d.cgroup_parent, id, controller)
        .unwrap_or_else(|| panic!("no {controller} hierarchy on this host"));
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_owned()
}

fn has_v1(controller: &str) -> bool {
    Layout::detect()
        .map(|l| {
            l.hierarchies
                .iter()
                .any(|h| !h.v2 && h.controllers.iter().any(|c| c == controller))
        })
        .unwrap_or(false)
}

fn with_resources(
    d: &Daemon,
    args: &[&str],
    f: impl FnOnce(&mut pb::Resources),
) -> pb::CreateRequest {
    let mut req = d.request(args);
    let mut r = pb::Resources::default();
    f(&mut r);
    req.resources = Some(r);
    req
}

async fn state(c: &mut execdriver_tests::Client, id: &str) -> pb::ContainerState {
    c.state(pb::StateRequest {
        id: id.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .container
    .unwrap()
}

async fn stats(c: &mut execdriver_tests::Client, id: &str) -> pb::ContainerStats {
    c.stats(pb::StatsRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap()
}

async fn force_delete(c: &mut execdriver_tests::Client, id: &str) {
    c.delete(pb::DeleteRequest {
        id: id.into(),
        force: true,
    })
    .await
    .unwrap();
}

/// A process this test started; killed (by its pid) and reaped on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn memory_limit_oom_kill_is_reported() {
    let d = Daemon::start();
    let mut c = d.client().await;
    // dd's 64 MiB buffer (it is the init, by exec) does not fit in 32 MiB.
    let req = with_resources(
        &d,
        &[
            "sh",
            "-c",
            "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
        ],
        |r| r.memory = 32 * MIB,
    );
    let id = req.id.clone();
    c.create(req).await.unwrap();
    assert_eq!(
        cgroup_file(&d, &id, "memory", "memory.limit_in_bytes"),
        (32 * MIB).to_string()
    );
    let out = attach_collect(&mut c, &id, None, true).await;
    assert!(out.exit.oom_killed, "{:?} {}", out.exit, out.stderr());
    assert_eq!(out.exit.signal, Some(9), "{:?}", out.exit);
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .exit
        .unwrap();
    assert!(exit.oom_killed);
    let st = state(&mut c, &id).await;
    assert_eq!(st.status, pb::Status::Stopped as i32);
    assert!(st.exit.unwrap().oom_killed);
    // `execdriverctl state --json` shows it.
    let json = Command::new(bin("execdriverctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["state", "--json", &id])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["oom_killed"], true, "{v}");
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .unwrap();

    // The same command with room enough ends normally, not OOM-killed.
    let req = with_resources(
        &d,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=16M", "count=1"],
        |r| r.memory = 64 * MIB,
    );
    let out = run(&mut c, req).await;
    assert_eq!(out.exit.exit_code, Some(0), "{}", out.stderr());
    assert!(!out.exit.oom_killed);
}

#[tokio::test]
async fn pids_limit_stops_a_fork_loop_and_the_host_is_unaffected() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let errfile = format!("/tmp/{}", unique("forkerr"));
    // A bounded fork loop (100 sleeps) in a subshell, which may die of a failed fork; the init
    // then sleeps without forking.
    let script = format!(
        "(for i in $(seq 1 100); do sleep 60 & done) 2>{errfile}; echo done >> {errfile}; exec sleep 60"
    );
    let req = with_resources(&d, &["sh", "-c", &script], |r| r.pids_limit = 20);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let host_err = d.rootfs.join(errfile.trim_start_matches('/'));
    let text = eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(&host_err)
            .ok()
            .filter(|t| t.contains("done"))
    })
    .await
    .expect("the fork loop did not finish");
    assert!(
        text.contains("fork") || text.contains("Resource temporarily unavailable"),
        "forks should have failed: {text}"
    );
    assert_eq!(cgroup_file(&d, &id, "pids", "pids.max"), "20");
    let current: u64 = cgroup_file(&d, &id, "pids", "pids.current")
        .parse()
        .unwrap();
    assert!(current <= 20, "pids.current {current}");
    assert!(
        current >= 10,
        "the loop should have filled the limit: {current}"
    );
    let s = stats(&mut c, &id).await;
    let pids = s.pids.unwrap();
    assert_eq!(pids.limit, 20);
    assert!(pids.current <= 20);
    let listed = c
        .pids(pb::PidsRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !listed.pids.is_empty() && listed.pids.len() <= 20,
        "{listed:?}"
    );
    // The host can still fork.
    for _ in 0..5 {
        assert!(Command::new("true").status().unwrap().success());
    }
    force_delete(&mut c, &id).await;
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

#[tokio::test]
async fn cpu_quota_holds_a_busy_loop_near_a_fifth_of_a_cpu() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = with_resources(&d, &["sh", "-c", "while :; do :; done"], |r| {
        r.cpu_quota = 20_000;
        r.cpu_period = 100_000;
    });
    let id = req.id.clone();
    c.run(req).await.unwrap();
    assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.cfs_period_us"), "100000");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let usage = || -> u64 {
        cgroup_file(&d, &id, "cpuacct", "cpuacct.usage")
            .parse()
            .unwrap()
    };
    let (u0, t0, s0) = (usage(), Instant::now(), stats(&mut c, &id).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (u1, t1, s1) = (usage(), Instant::now(), stats(&mut c, &id).await);
    let share = (u1 - u0) as f64 / (t1 - t0).as_nanos() as f64;
    eprintln!("busy loop under a 0.2 CPU quota used {share:.3} of a CPU");
    assert!(
        (0.05..=0.32).contains(&share),
        "expected about 0.2 CPU, got {share:.3}"
    );
    let (c0, c1) = (s0.cpu.unwrap(), s1.cpu.unwrap());
    assert!(c1.usage_ns > c0.usage_ns);
    assert!(c1.throttled_periods > c0.throttled_periods, "{c0:?} {c1:?}");
    assert!(c1.throttled_ns > 0);
    force_delete(&mut c, &id).await;
}

#[tokio::test]
async fn pause_freezes_a_counter_and_resume_continues_it() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let counter = format!("/tmp/{}", unique("counter"));
    let script = format!("i=0; while :; do i=$((i+1)); echo $i >> {counter}; usleep 20000; done");
    let req = d.request(&["sh", "-c", &script]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let file = d.rootfs.join(counter.trim_start_matches('/'));
    let read = || -> u64 {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .next_back()
            .unwrap_or(0)
    };
    eventually(Duration::from_secs(5), || (read() >= 3).then_some(()))
        .await
        .expect("the counter does not run");

    let st = c
        .pause(pb::PauseRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap();
    assert_eq!(st.status, pb::Status::Paused as i32);
    assert_eq!(state(&mut c, &id).await.status, pb::Status::Paused as i32);
    if has_v1("freezer") {
        assert_eq!(cgroup_file(&d, &id, "freezer", "freezer.state"), "FROZEN");
    }
    let frozen_at = read();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(read(), frozen_at, "the counter advanced while paused");
    // Stats and Pids still answer while paused; Pause and Start do not.
    assert!(stats(&mut c, &id).await.pids.unwrap().current >= 1);
    let err = c
        .pause(pb::PauseRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = c
        .start(pb::StartRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // Delete without force refuses a paused container.
    let err = c
        .delete(pb::DeleteRequest {
            id: id.clone(),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    let st = c
        .resume(pb::ResumeRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap();
    assert_eq!(st.status, pb::Status::Running as i32);
    eventually(Duration::from_secs(5), || {
        (read() > frozen_at + 2).then_some(())
    })
    .await
    .expect("the counter did not continue after Resume");
    let err = c
        .resume(pb::ResumeRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // SIGKILL reaches a paused container (it is thawed after the signal).
    c.pause(pb::PauseRequest { id: id.clone() }).await.unwrap();
    c.kill(pb::KillRequest {
        id: id.clone(),
        signal: 9,
        all: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let exit = tokio::time::timeout(
        Duration::from_secs(10),
        c.wait(pb::WaitRequest {
            id: id.clone(),
            ..Default::default()
        }),
    )
    .await
    .expect("a killed paused container should end")
    .unwrap()
    .into_inner()
    .exit
    .unwrap();
    assert_eq!(exit.signal, Some(9));
    assert!(!exit.oom_killed);
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .unwrap();

    // A forced delete of a paused container works too.
    let req = d.request(&["sleep", "100"]);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    c.pause(pb::PauseRequest { id: id.clone() }).await.unwrap();
    force_delete(&mut c, &id).await;
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

#[tokio::test]
async fn update_changes_limits_of_a_running_container() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let req = with_resources(&d, &["sleep", "100"], |r| {
        r.memory = 64 * MIB;
        r.memory_swap = 64 * MIB;
        r.pids_limit = 50;
        r.cpu_shares = 512;
    });
    let id = req.id.clone();
    c.run(req).await.unwrap();
    assert_eq!(
        cgroup_file(&d, &id, "memory", "memory.limit_in_bytes"),
        (64 * MIB).to_string()
    );

    let r = c
        .update(pb::UpdateRequest {
            id: id.clone(),
            resources: Some(pb::Resources {
                memory: 128 * MIB,
                memory_swap: 256 * MIB,
                pids_limit: 100,
                cpu_quota: 50_000,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .resources
        .unwrap();
    assert_eq!(r.memory, 128 * MIB);
    assert_eq!(r.pids_limit, 100);
    assert_eq!(r.cpu_shares, 512, "untouched limits stay");
    for (ctrl, file, want) in [
        ("memory", "memory.limit_in_bytes", (128 * MIB).to_string()),
        (
            "memory",
            "memory.memsw.limit_in_bytes",
            (256 * MIB).to_string(),
        ),
        ("pids", "pids.max", "100".into()),
        ("cpu", "cpu.cfs_quota_us", "50000".into()),
        ("cpu", "cpu.shares", "512".into()),
    ] {
        let path = cgroup_dir(&d.cgroup_parent, &id, ctrl).map(|p| p.join(file));
        if file.contains("memsw") && !path.is_some_and(|p| p.exists()) {
            continue; // no swap accounting on this kernel
        }
        assert_eq!(cgroup_file(&d, &id, ctrl, file), want, "{file}");
    }
    // The limits in force are what container.json says now.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.root.join(&id).join("container.json")).unwrap())
            .unwrap();
    assert_eq!(json["cgroups"]["memory"], 128 * MIB);
    assert_eq!(json["cgroups"]["pids_limit"], 100);
    // Lifting a limit.
    c.update(pb::UpdateRequest {
        id: id.clone(),
        resources: Some(pb::Resources {
            pids_limit: -1,
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    assert_eq!(cgroup_file(&d, &id, "pids", "pids.max"), "max");

    // Bad values name the field.
    for (res, field) in [
        (
            pb::Resources {
                memory: 10,
                ..Default::default()
            },
            "resources.memory",
        ),
        (
            pb::Resources {
                cpu_shares: 1,
                ..Default::default()
            },
            "resources.cpu_shares",
        ),
        (
            pb::Resources {
                cpuset_cpus: "4095".into(),
                ..Default::default()
            },
            "resources.cpuset_cpus",
        ),
        (
            // Below the memory limit in force (128 MiB): checked by the shim.
            pb::Resources {
                memory_swap: 100 * MIB,
                ..Default::default()
            },
            "resources.memory_swap",
        ),
    ] {
        let err = c
            .update(pb::UpdateRequest {
                id: id.clone(),
                resources: Some(res),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().starts_with(&format!("{field}:")),
            "{:?} should name {field}",
            err.message()
        );
    }
    assert_eq!(
        cgroup_file(&d, &id, "memory", "memory.limit_in_bytes"),
        (128 * MIB).to_string(),
        "a refused update changes nothing"
    );

    force_delete(&mut c, &id).await;
    let err = c
        .update(pb::UpdateRequest {
            id: id.clone(),
            resources: Some(pb::Resources {
                memory: 64 * MIB,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn stats_move_as_the_container_works_and_pids_match_ps() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let tag = unique("work");
    let (go, ps, done) = (
        format!("/tmp/{tag}.go"),
        format!("/tmp/{tag}.ps"),
        format!("/tmp/{tag}.done"),
    );
    // Two background sleeps; ps as the container sees it; then, once told to, cpu work,
    // memory, loopback traffic; then the init becomes a sleep (exec keeps pid 1).
    let script = format!(
        "sleep 1000 & sleep 1000 & ps -o pid,comm > {ps}; \
         while [ ! -e {go} ]; do usleep 20000; done; \
         i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; \
         x=$(head -c 4000000 /dev/zero | tr '\\0' a); \
         ping -c 3 -i 0.2 127.0.0.1 > /dev/null; \
         dd if=/dev/zero of=/tmp/{tag}.blk bs=1M count=4 oflag=direct 2>/dev/null; \
         echo ok > {done}; exec sleep 1000"
    );
    let req = with_resources(&d, &["sh", "-c", &script], |r| r.memory = 256 * MIB);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let host = |p: &str| d.rootfs.join(p.trim_start_matches('/'));
    let ps_text = eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(host(&ps))
            .ok()
            .filter(|t| t.lines().count() >= 4)
    })
    .await
    .expect("ps output");
    let s0 = stats(&mut c, &id).await;
    std::fs::write(host(&go), "").unwrap();
    eventually(Duration::from_secs(30), || {
        host(&done).exists().then_some(())
    })
    .await
    .expect("the work did not finish");
    let s1 = stats(&mut c, &id).await;

    assert_eq!(s1.id, id);
    assert!(s1.read_at.unwrap().seconds >= s0.read_at.unwrap().seconds);
    let (c0, c1) = (s0.cpu.unwrap(), s1.cpu.unwrap());
    assert!(
        c1.usage_ns > c0.usage_ns + 10_000_000,
        "cpu: {c0:?} -> {c1:?}"
    );
    let (m0, m1) = (s0.memory.unwrap(), s1.memory.unwrap());
    assert!(m1.usage > 0 && m0.usage > 0);
    assert_eq!(m1.limit, 256 << 20);
    assert!(
        m1.max_usage > m0.max_usage,
        "the 4 MB string raises the peak: {m0:?} -> {m1:?}"
    );
    let p1 = s1.pids.unwrap();
    assert_eq!(p1.current, 3, "init and two sleeps");
    assert_eq!(p1.limit, 0);
    let lo = |s: &pb::ContainerStats| {
        s.networks
            .iter()
            .find(|n| n.name == "lo")
            .cloned()
            .expect("lo in the container's netns")
    };
    let (l0, l1) = (lo(&s0), lo(&s1));
    assert!(l1.rx_bytes > l0.rx_bytes && l1.tx_packets >= l0.tx_packets + 3);
    // Only the container's own interfaces (its netns): no host interface.
    assert_eq!(s1.networks.len(), 1, "{:?}", s1.networks);
    // Block I/O: what the cgroup file says (recent kernels count v1 I/O only on disks
    // with blk-throttle configured, so this may stay 0).
    let io = s1.blkio.unwrap();
    if let Some(dir) = cgroup_dir(&d.cgroup_parent, &id, "blkio") {
        let text = std::fs::read_to_string(dir.join("blkio.throttle.io_service_bytes_recursive"))
            .unwrap_or_default();
        let parsed = execdriver_shim::cgroups::stats::parse_v1_blkio(&text);
        assert_eq!(io.write_bytes, parsed.write_bytes);
    }

    // Pids: what ps saw inside (minus ps itself) is what Pids lists.
    let mut seen: Vec<i32> = ps_text
        .lines()
        .skip(1)
        .filter(|l| !l.ends_with(" ps"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    seen.sort_unstable();
    let listed = c
        .pids(pb::PidsRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let mut inside = listed.container_pids.clone();
    inside.sort_unstable();
    assert_eq!(inside, seen, "{ps_text}");
    assert_eq!(listed.pids.len(), 3);
    let st = state(&mut c, &id).await;
    assert!(listed.pids.contains(&st.pid));
    assert_eq!(
        listed.container_pids[listed.pids.iter().position(|p| *p == st.pid).unwrap()],
        1
    );

    // The stream: samples at the interval, ending when the container stops.
    let mut stream = c
        .stats_stream(pb::StatsStreamRequest {
            id: id.clone(),
            interval_ms: 200,
        })
        .await
        .unwrap()
        .into_inner();
    let mut times = Vec::new();
    for _ in 0..3 {
        let s = stream.message().await.unwrap().unwrap().stats.unwrap();
        let t = s.read_at.unwrap();
        times.push(t.seconds as i128 * 1_000_000_000 + t.nanos as i128);
    }
    assert!(
        times.windows(2).all(|w| w[1] - w[0] >= 100_000_000),
        "{times:?}"
    );
    c.kill(pb::KillRequest {
        id: id.clone(),
        signal: 9,
        all: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = stream.message().await.transpose() {
            m.unwrap();
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream should end when the container stops"
    );
    let err = c
        .stats(pb::StatsRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = c
        .stats_stream(pb::StatsStreamRequest {
            id: id.clone(),
            interval_ms: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .unwrap();
}

/// The default seccomp profile refuses mknod of a block device before the devices cgroup sees
/// it (tests/security.rs); the device checks run without it, to test the cgroup alone.
fn cgroup_only(mut req: pb::CreateRequest) -> pb::CreateRequest {
    req.security = Some(pb::SecurityConfig {
        seccomp: Some(pb::SeccompConfig {
            profile: "unconfined".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    req
}

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
    let out = run(&mut c, cgroup_only(d.request(&["sh", "-c", DEVICE_SCRIPT]))).await;
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
    let out = run(&mut c, cgroup_only(req)).await;
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

#[tokio::test]
async fn delete_empties_and_removes_every_cgroup() {
    let d = Daemon::start();
    let mut c = d.client().await;
    // Without NEWPID nothing ends the init's children when it exits: the cgroup does.
    let marker = format!("/tmp/{}", unique("escaped"));
    let mut req = d.request(&[
        "sh",
        "-c",
        &format!("sleep 1000 & echo $! > {marker}; exit 0"),
    ]);
    req.namespaces = ["NEWNS", "NEWUTS", "NEWIPC", "NEWNET"]
        .map(String::from)
        .to_vec();
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.exit.exit_code, Some(0));
    let pid: i32 = std::fs::read_to_string(d.rootfs.join(marker.trim_start_matches('/')))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eventually(Duration::from_secs(5), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await
    .expect("the init's orphan should be killed through the cgroup");
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .unwrap();
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());

    // A process left in the cgroups after the init died (as one escaping PID-namespace
    // teardown would be) is killed by Delete, and every directory goes.
    let req = d.request(&["true"]);
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.exit.exit_code, Some(0));
    let straggler = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut straggler = ChildGuard(straggler);
    let layout = Layout::detect().unwrap();
    let mut dirs = Vec::new();
    for h in &layout.hierarchies {
        let dir = h.mountpoint.join(&d.cgroup_parent).join(&id);
        assert!(dir.is_dir(), "{} missing before Delete", dir.display());
        std::fs::write(dir.join("cgroup.procs"), straggler.0.id().to_string()).unwrap();
        dirs.push(dir);
    }
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        force: false,
    })
    .await
    .unwrap();
    let status = straggler.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    for dir in &dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

#[tokio::test]
async fn bad_resources_are_invalid_argument_and_create_nothing() {
    let d = Daemon::start();
    let mut c = d.client().await;
    type Case = (Box<dyn Fn(&mut pb::Resources)>, &'static str);
    let cases: Vec<Case> = vec![
        (Box::new(|r| r.memory = 1000), "resources.memory"),
        (Box::new(|r| r.memory = -5), "resources.memory"),
        (
            Box::new(|r| r.memory_swap = 64 * MIB),
            "resources.memory_swap",
        ),
        (
            Box::new(|r| r.cpu_shares = 1_000_000),
            "resources.cpu_shares",
        ),
        (Box::new(|r| r.cpu_quota = 1), "resources.cpu_quota"),
        (Box::new(|r| r.cpu_period = 5), "resources.cpu_period"),
        (Box::new(|r| r.pids_limit = -2), "resources.pids_limit"),
        (
            Box::new(|r| r.blkio_weight = 5000),
            "resources.blkio_weight",
        ),
        (
            Box::new(|r| r.cpuset_cpus = "4000-4001".into()),
            "resources.cpuset_cpus",
        ),
        (
            Box::new(|r| r.cpuset_cpus = "zero".into()),
            "resources.cpuset_cpus",
        ),
        (
            Box::new(|r| r.cpuset_mems = "63".into()),
            "resources.cpuset_mems",
        ),
        (
            Box::new(|r| r.cgroup_parent = "../escape".into()),
            "resources.cgroup_parent",
        ),
        (
            Box::new(|r| r.cgroup_parent = "ok/../../up".into()),
            "resources.cgroup_parent",
        ),
        (
            Box::new(|r| {
                r.devices = vec![pb::DeviceRule {
                    r#type: "x".into(),
                    ..Default::default()
                }]
            }),
            "resources.devices[0].type",
        ),
        (
            Box::new(|r| {
                r.devices = vec![pb::DeviceRule {
                    path: "/no/such/device".into(),
                    ..Default::default()
                }]
            }),
            "resources.devices[0].path",
        ),
    ];
    for (mutate, field) in cases {
        let req = with_resources(&d, &["true"], mutate);
        let id = req.id.clone();
        let err = c.create(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().starts_with(&format!("{field}:")),
            "{:?} should name {field}",
            err.message()
        );
        // Nothing named for it anywhere.
        for h in Layout::detect().unwrap().hierarchies {
            assert!(!h.mountpoint.join(&d.cgroup_parent).join(&id).exists());
            assert!(!h.mountpoint.join("escape").exists());
            assert!(!h.mountpoint.join("up").exists());
        }
    }
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
    // A good cpuset still works.
    let req = with_resources(&d, &["cat", "/proc/self/status"], |r| {
        r.cpuset_cpus = "0".into();
        r.cpuset_mems = "0".into();
    });
    let out = run(&mut c, req).await;
    let allowed = out.stdout().lines().find_map(|l| {
        l.strip_prefix("Cpus_allowed_list:")
            .map(|v| v.trim().to_owned())
    });
    assert_eq!(allowed.as_deref(), Some("0"), "{}", out.stdout());
}

#[tokio::test]
async fn cgroup_parent_can_be_chosen_per_container() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let parent = format!("{}/nested", unique("edtest-parent"));
    // Dropped in reverse: the nested parent first, then the top.
    let _top = CgroupGuard(parent.split('/').next().unwrap().to_owned());
    let _nested = CgroupGuard(parent.clone());
    let req = with_resources(&d, &["cat", "/proc/self/cgroup"], |r| {
        r.cgroup_parent = parent.clone()
    });
    let id = req.id.clone();
    let out = run(&mut c, req).await;
    assert!(
        out.stdout().contains(&format!("/{parent}/{id}")),
        "{}",
        out.stdout()
    );
    for h in Layout::detect().unwrap().hierarchies {
        assert!(!h.mountpoint.join(&parent).join(&id).exists());
    }
}

#[tokio::test]
async fn cli_limit_flags_and_subcommands() {
    let d = Daemon::start();
    let ctl = |args: &[&str]| {
        let out = Command::new(bin("execdriverctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "execdriverctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let id = unique("cli");
    let rootfs = d.rootfs.display().to_string();
    ctl(&[
        "run",
        "-d",
        "--id",
        &id,
        "--rootfs",
        &rootfs,
        "--memory",
        "48m",
        "--memory-swap",
        "-1",
        "--cpu-shares",
        "256",
        "--cpus",
        "0.5",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "30",
        "--device",
        "c 1:11 w",
        "--",
        "sleep",
        "100",
    ]);
    assert_eq!(
        cgroup_file(&d, &id, "memory", "memory.limit_in_bytes"),
        (48 * MIB).to_string()
    );
    assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.shares"), "256");
    assert_eq!(cgroup_file(&d, &id, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(cgroup_file(&d, &id, "pids", "pids.max"), "30");
    assert!(cgroup_file(&d, &id, "devices", "devices.list").contains("c 1:11 w"));

    let stats: serde_json::Value = serde_json::from_str(&ctl(&["stats", "--json", &id])).unwrap();
    assert_eq!(stats["memory"]["limit"], 48 * MIB, "{stats}");
    assert_eq!(stats["pids"]["limit"], 30);
    let pids: serde_json::Value = serde_json::from_str(&ctl(&["pids", "--json", &id])).unwrap();
    assert_eq!(pids["container_pids"], serde_json::json!([1]), "{pids}");
    ctl(&["pause", &id]);
    let st: serde_json::Value = serde_json::from_str(&ctl(&["state", "--json", &id])).unwrap();
    assert_eq!(st["status"], "paused");
    assert_eq!(st["oom_killed"], false);
    ctl(&["resume", &id]);
    let r: serde_json::Value = serde_json::from_str(&ctl(&[
        "update",
        "--json",
        "--memory",
        "96m",
        "--pids-limit",
        "-1",
        &id,
    ]))
    .unwrap();
    assert_eq!(r["memory"], 96 * MIB);
    assert_eq!(cgroup_file(&d, &id, "pids", "pids.max"), "max");
    // Two samples from the stream, one JSON object per line.
    let mut child = ChildGuard(
        Command::new(bin("execdriverctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(["stats", "--stream", "--json", "--interval", "200", &id])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(child.0.stdout.take().unwrap()));
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], id.as_str());
    }
    drop(child);
    ctl(&["delete", "-f", &id]);
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}

/// A shim run on a container.json written by hand (as nsinit users would): the seed format's
/// flat `cgroups` fields, `freezer: FROZEN` starting the container paused.
#[test]
fn container_json_limits_and_frozen_start_through_the_shim() {
    use execdriver_spec::protocol::{self, request, response, Empty, Request, Response, Status};
    use std::os::unix::net::UnixStream;

    let tmp = execdriver_tests::TempDir::new("edt-cgjson");
    let rootfs = tmp.path.join("rootfs");
    execdriver_tests::make_rootfs(&rootfs);
    let state = tmp.path.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let parent = unique("edtest-json");
    let _cleanup = CgroupGuard(parent.clone());
    let name = unique("c");
    let config = serde_json::json!({
        "hostname": "frozen",
        "cgroups": {
            "parent": parent, "name": name, "freezer": "FROZEN",
            "memory": 48 * MIB, "pids_limit": 16, "cpu_shares": 256,
        },
        "namespaces": ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"],
        "rootfs": rootfs,
        "args": ["sleep", "100"],
    });
    std::fs::write(
        state.join("container.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    let shim = Command::new(bin("execdriver-shim"))
        .args(["--id", &name, "--state"])
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut shim = ChildGuard(shim);
    let created: Response = protocol::read_frame(&mut shim.0.stdout.take().unwrap())
        .unwrap()
        .unwrap();
    assert!(
        matches!(created.kind, Some(response::Kind::State(_))),
        "{created:?} {}",
        std::fs::read_to_string(state.join("shim.log")).unwrap_or_default()
    );
    let sock = state.join("shim.sock");
    let call = |kind: request::Kind| -> response::Kind {
        let mut s = UnixStream::connect(&sock).unwrap();
        protocol::write_frame(&mut s, &Request::new(kind)).unwrap();
        let r: Response = protocol::read_frame(&mut s).unwrap().unwrap();
        r.kind.unwrap()
    };
    let status = |k: response::Kind| match k {
        response::Kind::State(st) => st.status,
        other => panic!("{other:?}"),
    };
    let file = |ctrl: &str, f: &str| {
        std::fs::read_to_string(cgroup_dir(&parent, &name, ctrl).unwrap().join(f))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(
        file("memory", "memory.limit_in_bytes"),
        (48 * MIB).to_string()
    );
    assert_eq!(file("pids", "pids.max"), "16");
    assert_eq!(file("cpu", "cpu.shares"), "256");
    assert!(matches!(
        call(request::Kind::Start(
            execdriver_spec::protocol::Target::init()
        )),
        response::Kind::Ok(_)
    ));
    assert_eq!(
        status(call(request::Kind::State(
            execdriver_spec::protocol::Target::init()
        ))),
        Status::Paused as i32
    );
    if has_v1("freezer") {
        assert_eq!(file("freezer", "freezer.state"), "FROZEN");
    }
    assert!(matches!(
        call(request::Kind::Resume(Empty {})),
        response::Kind::Ok(_)
    ));
    assert_eq!(
        status(call(request::Kind::State(
            execdriver_spec::protocol::Target::init()
        ))),
        Status::Running as i32
    );
    match call(request::Kind::Stats(Empty {})) {
        response::Kind::Stats(s) => assert_eq!(s.pids.unwrap().limit, 16),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        call(request::Kind::Kill(protocol::Kill {
            exec_id: String::new(),
            signal: 9,
            all: false
        })),
        response::Kind::Ok(_)
    ));
    match call(request::Kind::Wait(
        execdriver_spec::protocol::Target::init(),
    )) {
        response::Kind::Exit(e) => assert_eq!(e.signal, Some(9)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        call(request::Kind::Shutdown(Empty {})),
        response::Kind::Ok(_)
    ));
    assert!(shim.0.wait().unwrap().success());
    for h in Layout::detect().unwrap().hierarchies {
        assert!(!h.mountpoint.join(&parent).join(&name).exists());
    }
}

/// What only the kernel can refuse (a cpuset naming a CPU the host lacks, which container.json
/// validation cannot know) fails the shim's create with INVALID_ARGUMENT, and every cgroup
/// directory it made is gone.
#[test]
fn shim_create_refused_by_the_kernel_leaves_no_cgroup() {
    use execdriver_spec::protocol::{self, response, ErrorCode, Response};
    if !has_v1("cpuset") {
        eprintln!("skipped: no v1 cpuset controller on this host");
        return;
    }
    let tmp = execdriver_tests::TempDir::new("edt-cgbad");
    let rootfs = tmp.path.join("rootfs");
    execdriver_tests::make_rootfs(&rootfs);
    let state = tmp.path.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let parent = unique("edtest-bad");
    let _cleanup = CgroupGuard(parent.clone());
    let name = unique("c");
    let config = serde_json::json!({
        "cgroups": {"parent": parent, "name": name, "cpuset_cpus": "4000", "memory": 64 * MIB},
        "namespaces": ["NEWNS", "NEWPID"],
        "rootfs": rootfs,
        "args": ["true"],
    });
    std::fs::write(state.join("container.json"), config.to_string()).unwrap();
    let mut shim = ChildGuard(
        Command::new(bin("execdriver-shim"))
            .args(["--id", &name, "--state"])
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let report: Response = protocol::read_frame(&mut shim.0.stdout.take().unwrap())
        .unwrap()
        .unwrap();
    match report.kind {
        Some(response::Kind::Error(e)) => {
            assert_eq!(e.code, ErrorCode::InvalidArgument as i32, "{e:?}");
            assert!(e.message.contains("cpuset.cpus"), "{e:?}");
        }
        other => panic!("the create should fail: {other:?}"),
    }
    assert!(!shim.0.wait().unwrap().success());
    for h in Layout::detect().unwrap().hierarchies {
        assert!(
            !h.mountpoint.join(&parent).join(&name).exists(),
            "{} left behind",
            h.mountpoint.display()
        );
    }
}

/// resources.freezer FROZEN: the container starts paused (libcontainer's freezer field
/// through the API); Resume lets it run; Update cannot set it.
#[tokio::test]
async fn a_frozen_start_is_paused_until_resume() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let marker = format!("/tmp/{}", unique("thawed"));
    let script = format!("usleep 100000; echo yes > {marker}; sleep 1000");
    let mut req = d.request(&["sh", "-c", &script]);
    let id = req.id.clone();
    req.resources = Some(pb::Resources {
        freezer: "FROZEN".into(),
        ..Default::default()
    });
    c.run(req).await.unwrap();
    assert_eq!(state(&mut c, &id).await.status, pb::Status::Paused as i32);
    if has_v1("freezer") {
        assert_eq!(cgroup_file(&d, &id, "freezer", "freezer.state"), "FROZEN");
    }
    let file = d.rootfs.join(marker.trim_start_matches('/'));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!file.exists(), "the command ran while frozen");
    let err = c
        .update(pb::UpdateRequest {
            id: id.clone(),
            resources: Some(pb::Resources {
                freezer: "THAWED".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("resources.freezer"), "{err:?}");
    c.resume(pb::ResumeRequest { id: id.clone() })
        .await
        .unwrap();
    assert_eq!(state(&mut c, &id).await.status, pb::Status::Running as i32);
    eventually(Duration::from_secs(5), || file.exists().then_some(()))
        .await
        .expect("the command did not run after Resume");
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
}
