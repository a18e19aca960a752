//! Limits the kernel enforces: memory (and the OOM kill reported), pids (a fork loop that
//! leaves the host alone) and cpu quota.

use std::process::Command;
use std::time::{Duration, Instant};

use execdriver_tests::{attach_collect, bin, eventually, pb, run, unique, Daemon};

use super::{cgroup_file, force_delete, state, stats, with_resources, MIB};

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
