//! Parked shims (`execdriverd --shim-pool N`): a create adopts one, its init is born in cgroups
//! made ahead and renamed to the container's, in a network namespace made ahead; nothing of
//! the pool shows in the container; the pool refills; a stopped daemon leaves none of it, and
//! a parked shim (or its nursery alone) killed by hand costs no create and nothing after a
//! restart.

use std::path::Path;
use std::time::Duration;

use execdriver_tests::{eventually, pb, run, Daemon};

use super::{cgroup_dir, force_delete, state, unconfined, with_resources, MIB};

/// The pool sets of `d` (their names), once it has `n` of them.
async fn pool_of(d: &Daemon, n: usize) -> Vec<String> {
    let names = || {
        let mut v: Vec<String> = d
            .pool_cgroup_dirs()
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    eventually(Duration::from_secs(10), || {
        let v = names();
        (v.len() == n).then_some(v)
    })
    .await
    .unwrap_or_else(|| panic!("the pool never had {n} sets: {:?}\n{}", names(), d.log()))
}

/// The processes working in the pool directory of `root`: parked shims and their nurseries
/// (a nursery that pivoted ahead works in the host's tree below its staging root, `/old`).
fn parked_shims(root: &Path) -> Vec<i32> {
    let pool = root.join(".pool");
    let staged = Path::new("/old").join(pool.strip_prefix("/").unwrap());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|cwd| cwd.starts_with(&pool) || cwd.starts_with(&staged))
        })
        .collect()
}

fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn a_create_adopts_a_parked_shim_and_its_container_sees_only_its_own() {
    let mut d = Daemon::start_with(&["--shim-pool", "2"]);
    let mut c = d.client().await;
    let before = pool_of(&d, 2).await;

    let mut req = with_resources(&d, &["sleep", "1000"], |r| {
        r.pids_limit = 3;
        r.memory = 64 * MIB;
    });
    let id = req.id.clone();
    req.hostname = "pooled".into();
    c.run(req).await.expect("run");
    let st = state(&mut c, &id).await;
    let shim_log = std::fs::read_to_string(d.root.join(&id).join("shim.log")).unwrap();
    assert!(shim_log.contains("made from a parked shim"), "{shim_log}");

    // Its cgroups are named after it, in every hierarchy, the v2 one included, and hold its
    // init alone (the nursery is gone); the pool set it came from is no more.
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", st.pid)).unwrap();
    for line in cgroup.lines() {
        assert!(
            line.ends_with(&format!("/{}/{id}", d.cgroup_parent)),
            "{cgroup}"
        );
    }
    for controller in ["cpu", "memory", "pids", "freezer", "v2"] {
        if let Some(dir) = cgroup_dir(&d.cgroup_parent, &id, controller) {
            assert_eq!(procs(&dir), vec![st.pid as i32], "{}", dir.display());
        }
    }
    let after: Vec<String> = d
        .pool_cgroup_dirs()
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    assert!(
        before.iter().any(|b| !after.contains(b)),
        "{before:?} {after:?}"
    );
    // Its limits are its own: the pids limit (written once the nursery left) and memory.
    let pids = cgroup_dir(&d.cgroup_parent, &id, "pids").unwrap();
    assert_eq!(
        std::fs::read_to_string(pids.join("pids.max"))
            .unwrap()
            .trim(),
        "3"
    );
    let mem = cgroup_dir(&d.cgroup_parent, &id, "memory").unwrap();
    assert_eq!(
        std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        (64 * MIB).to_string()
    );
    assert_eq!(
        std::fs::read_to_string(mem.join("memory.failcnt"))
            .unwrap()
            .trim(),
        "0"
    );
    // It is the shim's child, pid 1 of its namespace, with its hostname; its network
    // namespace holds `lo` alone, up.
    let status = execdriver_tests::parse_status(
        &std::fs::read_to_string(format!("/proc/{}/status", st.pid)).unwrap(),
    );
    assert_eq!(status["PPid"], st.shim_pid.to_string());
    let r = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: Some(pb::Process {
                args: [
                    "sh",
                    "-c",
                    "hostname; ls /sys/class/net; cat /sys/class/net/lo/flags",
                ]
                .map(String::from)
                .to_vec(),
                ..Default::default()
            }),
            timeout_seconds: 10,
        })
        .await
        .unwrap()
        .into_inner();
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pooled", "{out}");
    assert_eq!(lines[1], "lo", "{out}");
    let flags = u32::from_str_radix(lines[2].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is not up: {out}");
    force_delete(&mut c, &id).await;

    // The pool refills, with new sets.
    let refilled = pool_of(&d, 2).await;
    assert!(refilled.iter().any(|r| !before.contains(r)));

    // A stopped daemon leaves no parked shim, pool set or pool directory.
    d.stop_daemon(libc::SIGTERM);
    assert!(
        d.pool_cgroup_dirs().is_empty(),
        "{:?}",
        d.pool_cgroup_dirs()
    );
    assert!(!d.root.join(".pool").exists());
    assert!(parked_shims(&d.root).is_empty());
}

/// A parked shim's nursery pivots ahead (`rootfs::staging`): its container is entered without
/// `pivot_root` (whose cost grows with every thread on the host), and that shows in nothing a
/// container relies on: its mount table starts at its rootfs, a user namespace can be made
/// inside (the kernel does not count it chrooted), and a chroot escape by its root reaches its
/// own root, as after a pivot_root, never the staging root or the host's tree.
#[tokio::test]
async fn a_parked_shims_container_is_entered_without_pivot_root_and_hides_the_host() {
    let d = Daemon::start_with(&["--shim-pool", "2"]);
    let mut c = d.client().await;
    pool_of(&d, 2).await;
    eventually(Duration::from_secs(10), || {
        (parked_shims(&d.root).len() == 4).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("two shims and their nurseries: {}", d.log()));
    execdriver_tests::install_helper(&d.rootfs);
    let req = d.request(&[
        "sh",
        "-c",
        "head -1 /proc/self/mountinfo; cut -d' ' -f1 /proc/self/mountinfo | tr '\\n' ' '; echo; \
         unshare -U -r id -u; ls / | tr '\\n' ' '; echo; edtest-sys escape",
    ]);
    let req = unconfined(req);
    let id = req.id.clone();
    c.create(req).await.expect("create");
    let out = execdriver_tests::attach_collect(&mut c, &id, None, true).await;
    let shim_log = std::fs::read_to_string(d.root.join(&id).join("shim.log")).unwrap_or_default();
    assert!(shim_log.contains("made from a parked shim"), "{shim_log}");
    let text = out.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(out.exit.exit_code, Some(0), "{text}{}", out.stderr());
    assert_eq!(lines.len(), 6, "{text}{}", out.stderr());
    // The first mount is the rootfs at "/"; its parent (the staging root) is not in the table.
    let root: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(root[4], "/", "{text}");
    let ids: Vec<&str> = lines[1].split_whitespace().collect();
    assert!(
        !ids.contains(&root[1]),
        "the root's parent is listed: {text}"
    );
    assert_eq!(
        lines[2],
        "0",
        "a user namespace inside: {text}{}",
        out.stderr()
    );
    // The escape climbs no higher than after a pivot_root: the rootfs sits on the staging
    // root's own "/", which has no parent, so ".." stops at the container's root.
    let own: Vec<&str> = lines[3].split_whitespace().collect();
    let reached: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(reached, own, "{text}");
    assert!(own.contains(&"bin") && !own.contains(&"old"), "{text}");
    force_delete(&mut c, &id).await;
}

/// Parked shims killed by hand: the next create starts its own shim and succeeds; a restart
/// removes the cgroups they left.
#[tokio::test]
async fn killed_parked_shims_cost_no_create_and_leave_nothing_after_a_restart() {
    let mut d = Daemon::start_with(&["--shim-pool", "2"]);
    let mut c = d.client().await;
    pool_of(&d, 2).await;
    // The sets are made before the nursery is forked into them: wait for all four.
    let parked = eventually(Duration::from_secs(10), || {
        let p = parked_shims(&d.root);
        (p.len() == 4).then_some(p)
    })
    .await
    .unwrap_or_else(|| panic!("two shims and their nurseries: {:?}", parked_shims(&d.root)));
    for pid in &parked {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let out = run(&mut c, d.request(&["echo", "still here"])).await;
    assert_eq!(out.stdout(), "still here\n", "{}", d.log());
    assert_eq!(out.exit.exit_code, Some(0));
    d.restart_with(&["--shim-pool", "0"]);
    let _c = d.client().await;
    assert!(
        eventually(Duration::from_secs(5), || d
            .pool_cgroup_dirs()
            .is_empty()
            .then_some(()))
        .await
        .is_some(),
        "{:?}",
        d.pool_cgroup_dirs()
    );
    assert!(!d.root.join(".pool").exists());
    assert!(parked_shims(&d.root).is_empty());
}

/// A parked shim whose nursery alone was killed costs no create either: the shim notices
/// and goes (the pool refills), and one adopted before it noticed makes its container as
/// without a pool. Nothing of theirs is left.
#[tokio::test]
async fn parked_shims_whose_nurseries_were_killed_cost_no_create() {
    let d = Daemon::start_with(&["--shim-pool", "2"]);
    let mut c = d.client().await;
    let before = pool_of(&d, 2).await;
    let is_nursery = |pid: &i32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "execdriver-nurs")
    };
    // Both parked (a nursery names itself just after its fork).
    let parked = eventually(Duration::from_secs(10), || {
        let p = parked_shims(&d.root);
        (p.len() == 4 && p.iter().filter(|pid| is_nursery(pid)).count() == 2).then_some(p)
    })
    .await
    .unwrap_or_else(|| panic!("two shims and their nurseries: {:?}", parked_shims(&d.root)));
    let nurseries: Vec<i32> = parked.iter().copied().filter(is_nursery).collect();
    for pid in &nurseries {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    // Dead (a zombie until its shim reaps it), so its socket is closed; then at once, while
    // their shims may still be parked. (A nursery killed while it bears is another case: the
    // create that used it fails.)
    let dead = |pid: &i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    };
    assert!(
        eventually(Duration::from_secs(5), || nurseries
            .iter()
            .all(dead)
            .then_some(()))
        .await
        .is_some(),
        "the nurseries did not die"
    );
    let out = run(&mut c, d.request(&["echo", "still here"])).await;
    assert_eq!(out.stdout(), "still here\n", "{}", d.log());
    assert_eq!(out.exit.exit_code, Some(0));
    // The pool is whole again, none of it the shims whose nurseries were killed.
    let refilled = eventually(Duration::from_secs(10), || {
        let p = parked_shims(&d.root);
        (p.len() == 4 && !p.iter().any(|pid| parked.contains(pid))).then_some(p)
    })
    .await;
    assert!(
        refilled.is_some(),
        "{:?}\n{}",
        parked_shims(&d.root),
        d.log()
    );
    let now = pool_of(&d, 2).await;
    assert!(
        now.iter().all(|s| !before.contains(s)),
        "{before:?} {now:?}"
    );
}

/// With no pool (`--shim-pool 0`) nothing is parked and creates work as ever.
#[tokio::test]
async fn without_a_pool_nothing_is_parked() {
    let d = Daemon::start_with(&["--shim-pool", "0"]);
    let mut c = d.client().await;
    let out = run(&mut c, d.request(&["echo", "ok"])).await;
    assert_eq!(out.stdout(), "ok\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(d.pool_cgroup_dirs().is_empty());
    assert!(parked_shims(&d.root).is_empty());
}

/// A daemon sweeps only its own parked shims' sets at its start, also where another daemon
/// (another root) was given the same cgroup parent: that one's parked shims stay usable.
#[tokio::test]
async fn a_daemon_sweeps_only_its_own_pool_sets() {
    let a = Daemon::start_with(&["--shim-pool", "2"]);
    let before = pool_of(&a, 2).await;
    let mut b = Daemon::start_with(&["--shim-pool", "0"]);
    b.cgroup_parent = a.cgroup_parent.clone();
    b.restart_with(&["--shim-pool", "0"]);
    let _b_client = b.client().await;
    let mut now: Vec<String> = a
        .pool_cgroup_dirs()
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    now.sort();
    now.dedup();
    assert_eq!(now, before, "{}", b.log());
    let mut c = a.client().await;
    let req = a.request(&["sleep", "1000"]);
    let id = req.id.clone();
    c.run(req).await.expect("run");
    let shim_log = std::fs::read_to_string(a.root.join(&id).join("shim.log")).unwrap();
    assert!(shim_log.contains("made from a parked shim"), "{shim_log}");
    force_delete(&mut c, &id).await;
    drop(b);
}

/// A create refused by the shim before its cgroups are made (its bridge was deleted behind
/// the daemon's back) leaves no pool set behind: the parked set it took is removed.
#[tokio::test]
async fn a_create_refused_early_leaves_no_pool_set() {
    let br = execdriver_tests::unique_ifname("edpb");
    let d = Daemon::start_in_netns(
        &[
            "--bridge",
            &br,
            "--subnet",
            "10.233.0.0/24",
            "--shim-pool",
            "2",
        ],
        &[],
    );
    let mut c = d.client().await;
    let before = pool_of(&d, 2).await;
    d.netns().ip(&["link", "del", &br]);
    let err = c.create(d.request(&["true"])).await.unwrap_err();
    assert!(err.message().contains(&br), "{err:?}");
    // The pool refills to two; the set the failed create took is gone.
    let after = eventually(Duration::from_secs(10), || {
        let now: Vec<String> = d
            .pool_cgroup_dirs()
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        (now.len() == 2 && before.iter().any(|b| !now.contains(b))).then_some(now)
    })
    .await;
    assert!(
        after.is_some(),
        "{before:?} {:?}\n{}",
        d.pool_cgroup_dirs(),
        d.log()
    );
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}
