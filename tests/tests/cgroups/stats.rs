//! Stats: counters that move as the container works, and pids that match `ps`.

use std::time::Duration;

use execdriver_tests::{eventually, pb, unique, Daemon};
use tonic::Code;

use super::{cgroup_dir, state, stats, with_resources, MIB};

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
    for c in [&c0, &c1] {
        assert!(
            c.user_ns + c.system_ns <= c.usage_ns,
            "cpu parts exceed the total: {c:?}"
        );
    }
    assert!(c1.user_ns + c1.system_ns > 0, "{c1:?}");
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
