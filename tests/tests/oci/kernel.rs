//! What config.json asks of newer kernels: a time namespace with clock offsets (seen by the
//! init and by exec'd processes, the host's clocks untouched) and idmapped bind mounts (file
//! owners seen through the mapping, files created through it owned by the mapped id).

use std::os::unix::fs::MetadataExt;

use serde_json::{json, Value};

use super::Oci;

fn host_uptime() -> f64 {
    let s = std::fs::read_to_string("/proc/uptime").expect("uptime");
    first_number(&s)
}

fn first_number(s: &str) -> f64 {
    s.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {s:?}"))
}

/// `clock secs nanos` lines of /proc/PID/timens_offsets as (clock, secs).
fn offsets(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.parse().ok()?))
        })
        .collect()
}

fn with_time(c: &mut Value) {
    let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
    ns.push(json!({"type": "time"}));
    c["linux"]["timeOffsets"] = json!({
        "boottime": {"secs": 86400, "nanosecs": 0},
        "monotonic": {"secs": 3600},
    });
}

#[test]
fn time_namespace_offsets_the_boot_clock_of_init_and_exec() {
    let oci = Oci::new(|c| {
        c["process"]["args"] = json!(["sh", "-c", "cat /proc/uptime; sleep 60"]);
        with_time(c);
    });
    let before = host_uptime();
    oci.create_ok("t");
    oci.ok(&["start", "t"]);
    let inside = first_number(&oci.wait_output("t", "."));
    let after = host_uptime();
    assert!(
        inside >= before + 86400.0 && inside <= after + 86400.0 + 1.0,
        "uptime {inside} inside, {before}..{after} outside"
    );
    // The runtime's own clocks (and so ours) are untouched.
    assert!(after < before + 60.0);
    let exec = oci.ok(&[
        "exec",
        "t",
        "cat",
        "/proc/uptime",
        "/proc/self/timens_offsets",
    ]);
    let uptime = first_number(&exec);
    assert!(uptime >= before + 86400.0, "exec sees {uptime}");
    let mut got = offsets(&exec);
    got.sort();
    assert_eq!(
        got,
        [
            ("boottime".to_owned(), 86400),
            ("monotonic".to_owned(), 3600)
        ]
    );
}

#[test]
fn without_a_time_namespace_the_clocks_are_the_hosts() {
    let oci = Oci::sh("cat /proc/uptime /proc/self/timens_offsets");
    let b = oci.bundle.display().to_string();
    let before = host_uptime();
    let out = oci.run(&["run", "--bundle", &b, "nt"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let inside = first_number(&text);
    assert!(inside >= before && inside < host_uptime() + 1.0, "{text}");
    assert!(offsets(&text).iter().all(|(_, s)| *s == 0), "{text}");
}

#[test]
fn bad_time_offsets_are_refused_naming_them() {
    let oci = Oci::new(|c| {
        with_time(c);
        c["linux"]["timeOffsets"]["realtime"] = json!({"secs": 1});
    });
    let out = oci.create("bad", &[]);
    assert!(!out.status.success());
    assert!(
        oci.output("bad").contains("linux.timeOffsets.realtime"),
        "{}",
        oci.output("bad")
    );
}

fn idmapped(source: &str) -> impl FnOnce(&mut Value) {
    let source = source.to_owned();
    move |c: &mut Value| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "stat -c %u:%g /data && touch /data/made && stat -c %u:%g /data/made"
        ]);
        let map = json!([{"containerID": 1000, "hostID": 0, "size": 1}]);
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/data",
            "type": "bind",
            "source": source,
            "options": ["rbind"],
            "uidMappings": map,
            "gidMappings": map,
        }));
    }
}

#[test]
fn idmapped_mount_shows_the_mapped_owner_and_creates_as_the_source_id() {
    let host = execdriver_tests::TempDir::new("idmap");
    let dir = host.path.join("data");
    std::fs::create_dir(&dir).expect("dir");
    std::os::unix::fs::chown(&dir, Some(1000), Some(1000)).expect("chown");
    let oci = Oci::new(idmapped(&dir.display().to_string()));
    let b = oci.bundle.display().to_string();
    let out = oci.run(&["run", "--bundle", &b, "im"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    // Host uid 1000 on disk is root through the mount; root's new file is 1000's on disk.
    assert_eq!(text, "0:0\n0:0\n");
    let made = std::fs::metadata(dir.join("made")).expect("made");
    assert_eq!((made.uid(), made.gid()), (1000, 1000));
}

#[test]
fn a_filesystem_that_cannot_be_idmapped_is_refused_naming_the_mount() {
    let oci = Oci::new(idmapped("/proc"));
    let n = oci.bundle.join("config.json");
    let config: Value = serde_json::from_slice(&std::fs::read(n).expect("read")).expect("json");
    let i = config["mounts"].as_array().expect("mounts").len() - 1;
    let out = oci.create("noidmap", &[]);
    assert!(!out.status.success());
    let err = oci.output("noidmap");
    assert!(
        err.contains(&format!("mounts[{i}]")) && err.contains("cannot be idmapped"),
        "{err}"
    );
}
