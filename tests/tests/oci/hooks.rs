//! OCI hooks at each point, each given the state JSON on stdin (written to a file by the hook
//! and checked here), and what a failing hook does: prestart, createRuntime, createContainer
//! and startContainer fail their operation (and leave nothing), poststart and poststop only
//! warn.

use serde_json::{json, Value};

use super::Oci;

/// A hook that saves its stdin to `path`, then exits with `code`.
fn saver(path: &str, code: i32) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {path}; exit {code}")]})
}

fn read_state(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn hooks_run_at_each_point_with_the_state() {
    let host = execdriver_tests::TempDir::new("oci-hooks");
    let at = |name: &str| host.path.join(name).to_str().expect("utf8").to_owned();
    let (pre, cr, cc, ps, post) = (
        at("prestart"),
        at("createRuntime"),
        at("createContainer"),
        at("poststart"),
        at("poststop"),
    );
    let oci = Oci::new(|c| {
        c["process"]["args"] = json!(["sleep", "60"]);
        c["hooks"] = json!({
            "prestart": [saver(&pre, 0)],
            "createRuntime": [saver(&cr, 0)],
            // Runs in the container's mount namespace before pivot_root: the host's paths
            // are still there.
            "createContainer": [saver(&cc, 0)],
            // Runs in the container after pivot_root: its own /dev/shm.
            "startContainer": [saver("/dev/shm/startContainer", 0)],
            "poststart": [saver(&ps, 0)],
            "poststop": [saver(&post, 0)],
        });
    });
    oci.create_ok("h");
    let pid = oci.state("h")["pid"].as_i64().expect("pid");
    for path in [&pre, &cr] {
        let s = read_state(std::path::Path::new(path));
        assert_eq!(s["id"], "h", "{s}");
        assert_eq!(s["status"], "creating", "{s}");
        assert_eq!(s["pid"], pid, "{s}");
        assert!(
            s["bundle"].as_str().is_some_and(|b| b.ends_with("/bundle")),
            "{s}"
        );
    }
    let s = read_state(std::path::Path::new(&cc));
    assert_eq!(
        (s["id"].as_str(), s["status"].as_str()),
        (Some("h"), Some("creating")),
        "{s}"
    );
    assert!(
        !std::path::Path::new(&ps).exists(),
        "poststart ran before start"
    );

    oci.ok(&["start", "h"]);
    let s = read_state(std::path::Path::new(&ps));
    assert_eq!(
        (s["status"].as_str(), s["pid"].as_i64()),
        (Some("running"), Some(pid)),
        "{s}"
    );
    let inside = oci.ok(&["exec", "h", "cat", "/dev/shm/startContainer"]);
    let s: Value = serde_json::from_str(&inside).expect("json");
    assert_eq!(
        (s["id"].as_str(), s["status"].as_str()),
        (Some("h"), Some("created")),
        "{s}"
    );
    // In the container's pid namespace the hook's parent is pid 1.
    assert_eq!(s["pid"], 1, "{s}");

    assert!(!std::path::Path::new(&post).exists());
    oci.ok(&["delete", "--force", "h"]);
    let s = read_state(std::path::Path::new(&post));
    assert_eq!(
        (s["id"].as_str(), s["status"].as_str()),
        (Some("h"), Some("stopped")),
        "{s}"
    );
}

#[test]
fn failing_create_hooks_fail_create_and_leave_nothing() {
    for point in ["prestart", "createRuntime", "createContainer"] {
        let oci = Oci::new(|c| {
            c["process"]["args"] = json!(["sleep", "60"]);
            c["hooks"] = json!({point: [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 9"]}]});
        });
        let out = oci.create("f", &[]);
        assert_eq!(out.status.code(), Some(1), "{point}");
        let text = oci.output("f");
        assert!(
            text.contains(&format!("{point} hook /bin/sh: exited with status 9: nope")),
            "{point}: {text}"
        );
        assert!(!oci.root.join("f").exists(), "{point}: state left");
        let err = oci.fails(&["state", "f"]);
        assert!(err.contains("container does not exist"), "{err}");
    }
}

#[test]
fn failing_start_container_hook_fails_start() {
    let oci = Oci::new(|c| {
        c["process"]["args"] = json!(["sh", "-c", "echo should-not-run"]);
        c["hooks"] = json!({"startContainer": [{"path": "/bin/false"}]});
    });
    oci.create_ok("s");
    let err = oci.fails(&["start", "s"]);
    assert!(
        err.contains("startContainer hook /bin/false: exited with status 1"),
        "{err}"
    );
    oci.wait_status("s", "stopped");
    assert!(!oci.output("s").contains("should-not-run"));
}

#[test]
fn failing_post_hooks_only_warn_and_timeouts_kill() {
    let host = execdriver_tests::TempDir::new("oci-hooks");
    let log = host.path.join("log.json");
    let oci = Oci::new(|c| {
        c["process"]["args"] = json!(["sleep", "60"]);
        c["hooks"] = json!({
            "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 30"], "timeout": 1}],
            "poststop": [{"path": "/bin/false"}],
        });
    });
    oci.create_ok("w");
    let l = log.to_str().expect("utf8");
    let started = std::time::Instant::now();
    oci.ok(&["--log", l, "--log-format", "json", "start", "w"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    oci.ok(&["--log", l, "--log-format", "json", "delete", "--force", "w"]);
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "warning"
            && l["msg"].as_str().is_some_and(
                |m| m.contains("poststart hook /bin/sh: killed after its timeout of 1s")
            )),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "warning"
            && l["msg"]
                .as_str()
                .is_some_and(|m| m.contains("poststop hook /bin/false: exited with status 1"))),
        "{text}"
    );
}
