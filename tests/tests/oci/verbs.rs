//! ps, pause, resume, list, events --stats, update, features, spec, checkpoint/restore and the
//! JSON log an engine reads.

use serde_json::{json, Value};

use super::Oci;

fn running(id: &str) -> Oci {
    let oci = Oci::sh("sleep 60");
    oci.create_ok(id);
    oci.ok(&["start", id]);
    oci
}

#[test]
fn ps_lists_the_containers_processes() {
    let oci = running("ps");
    let pid = oci.state("ps")["pid"].as_i64().expect("pid");
    let pids: Vec<i64> = serde_json::from_str(&oci.ok(&["ps", "-f", "json", "ps"])).expect("json");
    assert_eq!(pids, vec![pid]);
    let table = oci.ok(&["ps", "ps"]);
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.contains("PID") && h.contains("CMD")),
        "{table}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(
        rows[0].contains(&pid.to_string()) && rows[0].contains("sleep 60"),
        "{table}"
    );
}

#[test]
fn pause_and_resume_freeze_the_container() {
    let oci = running("fz");
    oci.ok(&["pause", "fz"]);
    assert_eq!(oci.status("fz"), "paused");
    let err = oci.fails(&["exec", "fz", "true"]);
    assert!(err.contains("paused"), "{err}");
    let err = oci.fails(&["pause", "fz"]);
    assert!(err.contains("already paused"), "{err}");
    oci.ok(&["resume", "fz"]);
    assert_eq!(oci.status("fz"), "running");
    let err = oci.fails(&["resume", "fz"]);
    assert!(err.contains("not paused"), "{err}");
    assert_eq!(oci.ok(&["exec", "fz", "echo", "alive"]), "alive\n");
    // A paused container can be deleted with --force.
    oci.ok(&["pause", "fz"]);
    oci.ok(&["delete", "--force", "fz"]);
}

#[test]
fn list_in_table_json_and_quiet() {
    let oci = Oci::sh("sleep 60");
    oci.create_ok("a");
    oci.create_ok("b");
    oci.ok(&["start", "b"]);
    assert_eq!(oci.ok(&["list", "-q"]), "a\nb\n");
    let rows: Vec<Value> =
        serde_json::from_str(&oci.ok(&["list", "--format", "json"])).expect("json");
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(got, vec![("a", "created"), ("b", "running")]);
    assert!(rows[0]["created"]
        .as_str()
        .is_some_and(|c| c.ends_with('Z')));
    let table = oci.ok(&["list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
}

#[test]
fn events_stats_reports_the_cgroup() {
    let oci = running("ev");
    let out = oci.ok(&["events", "--stats", "ev"]);
    let ev: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(
        (ev["type"].as_str(), ev["id"].as_str()),
        (Some("stats"), Some("ev")),
        "{ev}"
    );
    assert_eq!(ev["data"]["pids"]["current"], 1, "{ev}");
    assert!(
        ev["data"]["memory"]["usage"]["usage"]
            .as_u64()
            .is_some_and(|u| u > 0),
        "{ev}"
    );
    // Without --stats: one event per interval until it stops.
    let child = oci
        .cmd()
        .args(["events", "--interval", "100ms", "ev"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("events");
    std::thread::sleep(std::time::Duration::from_millis(500));
    oci.ok(&["kill", "ev", "KILL"]);
    let out = child.wait_with_output().expect("events");
    assert!(out.status.success());
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(n >= 2, "{n} events");
}

/// The container's cgroup directory of `controller` (v1) or the unified one, from the init's
/// /proc/PID/cgroup.
fn cgroup_file(pid: i64, controller: &str, file: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == controller) {
            return std::path::Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'))
                .join(file);
        }
        if ctrls.is_empty() && std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return std::path::Path::new("/sys/fs/cgroup")
                .join(path.trim_start_matches('/'))
                .join(file);
        }
    }
    panic!("no {controller} cgroup in {text}");
}

#[test]
fn update_changes_the_limits() {
    let oci = running("up");
    let pid = oci.state("up")["pid"].as_i64().expect("pid");
    oci.ok(&["update", "--memory", "64m", "--pids-limit", "37", "up"]);
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (mem, pids) = if v2 {
        (
            cgroup_file(pid, "memory", "memory.max"),
            cgroup_file(pid, "pids", "pids.max"),
        )
    } else {
        (
            cgroup_file(pid, "memory", "memory.limit_in_bytes"),
            cgroup_file(pid, "pids", "pids.max"),
        )
    };
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("read").trim().to_owned();
    assert_eq!(read(&mem), (64u64 << 20).to_string());
    assert_eq!(read(&pids), "37");
    // --resources: OCI LinuxResources JSON, merged into what the container has.
    let res = oci.dir.path.join("res.json");
    std::fs::write(&res, json!({"pids": {"limit": 41}}).to_string()).expect("write");
    oci.ok(&["update", "--resources", res.to_str().expect("utf8"), "up"]);
    assert_eq!(read(&pids), "41");
    assert_eq!(read(&mem), (64u64 << 20).to_string());
    // `--resources -`: from stdin, as containerd sends it.
    let mut child = oci
        .cmd()
        .args(["update", "--resources", "-", "up"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("update");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        json!({"pids": {"limit": 43}}).to_string().as_bytes(),
    )
    .expect("write");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
    assert_eq!(read(&pids), "43");
    // Checked as config.json is.
    let err = oci.fails(&["update", "--memory", "-5", "up"]);
    assert!(err.contains("linux.resources.memory"), "{err}");
    assert_eq!(read(&mem), (64u64 << 20).to_string());
}

#[test]
fn features_spec_and_refusals() {
    let oci = Oci::sh("true");
    let f: Value = serde_json::from_str(&oci.ok(&["features"])).expect("json");
    assert_eq!(f["ociVersionMax"], "1.2.0");
    assert!(f["hooks"].as_array().is_some_and(|h| h.len() == 6), "{f}");
    assert!(f["linux"]["namespaces"]
        .as_array()
        .is_some_and(|n| n.contains(&json!("pid")) && n.contains(&json!("time"))));
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);

    let dir = execdriver_tests::TempDir::new("oci-spec");
    let d = dir.path.to_str().expect("utf8");
    oci.ok(&["spec", "--bundle", d]);
    let spec: Value =
        serde_json::from_slice(&std::fs::read(dir.path.join("config.json")).expect("read"))
            .expect("json");
    assert_eq!(spec["process"]["args"], json!(["sh"]));
    assert_eq!(spec["root"]["path"], "rootfs");
    let err = oci.fails(&["spec", "--bundle", d]);
    assert!(err.contains("File config.json exists"), "{err}");
    std::fs::remove_file(dir.path.join("config.json")).expect("rm");
    oci.ok(&["spec", "--rootless", "-b", d]);
    let spec: Value =
        serde_json::from_slice(&std::fs::read(dir.path.join("config.json")).expect("read"))
            .expect("json");
    assert!(spec["linux"]["namespaces"]
        .as_array()
        .is_some_and(|n| n.contains(&json!({"type": "user"}))));
    assert!(spec["linux"]["uidMappings"].is_array());

    for verb in ["checkpoint", "restore"] {
        let err = oci.fails(&[verb, "x"]);
        assert!(
            err.contains("checkpoint is not supported by execdriver-runc (no CRIU support)"),
            "{err}"
        );
    }
}

#[test]
fn json_log_has_the_last_error() {
    let oci = Oci::sh("true");
    let log = oci.dir.path.join("log.json");
    let l = log.to_str().expect("utf8");
    let err = oci.fails(&["--log", l, "--log-format", "json", "kill", "nosuch", "KILL"]);
    assert_eq!(err.trim(), "container does not exist");
    let text = std::fs::read_to_string(&log).expect("log");
    let last: Value = serde_json::from_str(text.lines().last().expect("a line")).expect("json");
    assert_eq!(last["level"], "error");
    assert_eq!(last["msg"], "container does not exist");
    assert!(
        last["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{last}"
    );
    // Text format on stderr without --log, as runc's.
    let err = oci.fails(&["state", "nosuch"]);
    assert!(
        err.contains("level=error msg=\"container does not exist\""),
        "{err}"
    );
}
