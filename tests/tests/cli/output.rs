//! `list -q`, `list` and `state` `--format` (a template or json), `logs --tail N`.

use std::process::{Command, Stdio};
use std::time::Duration;

use execdriver_tests::{bin, unique, Daemon};

use super::{ctl, ok, stderr, stdout, wait_within};

#[test]
fn list_quiet_and_format_list_and_state() {
    let d = Daemon::start();
    let rootfs = d.rootfs.display().to_string();
    let (a, b) = (unique("fa"), unique("fb"));
    ok(
        &d,
        &[
            "run", "-d", "--name", &a, "--label", "app=web", "--rootfs", &rootfs, "sleep", "1000",
        ],
    );
    ok(
        &d,
        &[
            "create", "--name", &b, "--label", "app=db", "--rootfs", &rootfs, "true",
        ],
    );
    let sorted = |s: String| {
        let mut l: Vec<String> = s.lines().map(str::to_owned).collect();
        l.sort();
        l
    };
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(sorted(ok(&d, &["ls", "-q"])), both);
    assert_eq!(
        ok(&d, &["list", "--quiet", "--label", "app=db"]),
        format!("{b}\n")
    );
    let mut want = vec![format!("{a}\trunning\tweb"), format!("{b}\tcreated\tdb")];
    want.sort();
    assert_eq!(
        sorted(ok(
            &d,
            &["ls", "--format", "{{.ID}}\\t{{.Status}}\\t{{.Labels.app}}"]
        )),
        want
    );
    let all: serde_json::Value =
        serde_json::from_str(&ok(&d, &["ls", "--format", "json"])).unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    // state: a field, JSON of one, the whole as json; case and underscores do not matter.
    let pid = ok(&d, &["state", "--format", "{{.Pid}}", &a]);
    assert!(pid.trim().parse::<u32>().unwrap() > 1, "{pid}");
    assert_eq!(
        ok(
            &d,
            &["state", "--format", "{{.status}} {{json .Labels}}", &a]
        ),
        "running {\"app\":\"web\"}\n"
    );
    assert_eq!(
        ok(&d, &["state", "--format", "[{{.ExitCode}}]", &a]),
        "[]\n"
    );
    let st: serde_json::Value =
        serde_json::from_str(&ok(&d, &["state", "--format", "json", &b])).unwrap();
    assert_eq!(st["status"], "created", "{st}");
    // A field that is none is refused, naming those there are; nothing printed.
    for args in [
        &["ls", "--format", "{{.Nope}}"][..],
        &["state", "--format", "{{.Nope}}", &a],
    ] {
        let o = ctl(&d, args);
        assert_eq!(o.status.code(), Some(125), "{o:?}");
        assert!(stdout(&o).is_empty(), "{o:?}");
        let err = stderr(&o);
        assert!(
            err.contains("no field \"Nope\"") && err.contains("status"),
            "{err}"
        );
    }
    let o = ctl(&d, &["ls", "--format", "{{.ID"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    let o = ctl(&d, &["ls", "-q", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2), "-q and --format conflict: {o:?}");
    ok(&d, &["rm", "-f", &a, &b]);
}

#[test]
fn logs_tail_prints_the_last_lines() {
    let d = Daemon::start();
    let rootfs = d.rootfs.display().to_string();
    let id = unique("tail");
    // 20 lines, the last one without a newline (the order of stdout and stderr lines in the
    // log is the order the shim read them in: across both streams, see the unit test).
    let script = "for i in $(seq 1 19); do echo line$i; done; printf last";
    let o = ctl(
        &d,
        &[
            "run", "--name", &id, "--rootfs", &rootfs, "sh", "-c", script,
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let both = |args: &[&str]| {
        let o = ctl(&d, args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        (stdout(&o), stderr(&o))
    };
    assert_eq!(
        both(&["logs", "--tail", "3", &id]),
        ("line18\nline19\nlast".into(), String::new())
    );
    assert_eq!(
        both(&["logs", "-n", "1", &id]),
        ("last".into(), String::new())
    );
    assert_eq!(
        both(&["logs", "--tail", "0", &id]),
        (String::new(), String::new())
    );
    let (all_out, all_err) = both(&["logs", &id]);
    assert_eq!(
        both(&["logs", "--tail", "all", &id]),
        (all_out.clone(), all_err.clone())
    );
    assert_eq!(
        both(&["logs", "--tail", "1000", &id]),
        (all_out.clone(), all_err)
    );
    assert!(all_out.starts_with("line1\nline2\n"), "{all_out}");
    let o = ctl(&d, &["logs", "--tail", "-1", &id]);
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    let o = ctl(&d, &["logs", "--tail", "some", &id]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(stderr(&o).contains("--tail"), "{o:?}");
    ok(&d, &["rm", &id]);

    // With -f: the last lines of the past, then what comes, until the container ends.
    let id = unique("tailf");
    let script = "for i in 1 2 3 4 5; do echo past$i; done; read x; echo new; exit 0";
    ok(
        &d,
        &[
            "run", "-d", "-i", "--name", &id, "--rootfs", &rootfs, "sh", "-c", script,
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ok(&d, &["logs", &id]).contains("past5") {
        assert!(
            std::time::Instant::now() < deadline,
            "no output: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let follow = Command::new(bin("execdriverctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["logs", "-f", "--tail", "2", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The container's stdin gets a line; it says "new" and ends.
    let sh = format!(
        "echo go | {} --socket {} attach -i {}",
        bin("execdriverctl").display(),
        d.socket.display(),
        id
    );
    let o = super::output_within(
        Command::new("sh").args(["-c", &sh]),
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{o:?}");
    let o = wait_within(follow, Duration::from_secs(30), "logs -f --tail 2");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "past4\npast5\nnew\n");
    ok(&d, &["rm", &id]);
}
