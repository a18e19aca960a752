//! create → created → start → running → stopped → delete, `run` with exit statuses, and the
//! errors of wrong transitions, with what the container sees (hostname, pid 1).

use super::Oci;

#[test]
fn create_start_stop_delete() {
    let oci = Oci::sh("mkfifo /tmp/go; echo host=$(hostname) pid=$$; read x < /tmp/go; exit 0");
    let id = "life";
    oci.create_ok(id);
    let state = oci.state(id);
    assert_eq!(state["status"], "created", "{state}");
    assert_eq!(state["id"], id);
    assert_eq!(state["ociVersion"], "1.2.0");
    assert_eq!(
        state["bundle"].as_str(),
        Some(
            oci.bundle
                .canonicalize()
                .expect("bundle")
                .to_str()
                .expect("utf8")
        )
    );
    let pid = state["pid"].as_i64().expect("pid");
    let pid_file =
        std::fs::read_to_string(oci.dir.path.join(format!("{id}.pid"))).expect("pid file");
    assert_eq!(pid_file.trim(), pid.to_string());
    // Created: the command has not run.
    assert_eq!(oci.output(id), "");
    let list = oci.ok(&["list"]);
    assert!(list.contains(id) && list.contains("created"), "{list}");

    oci.ok(&["start", id]);
    let out = oci.wait_output(id, "pid=");
    assert!(out.contains("host=runc pid=1"), "{out}");
    assert_eq!(oci.status(id), "running");
    // Let it finish: a fifo write from the host through an exec.
    oci.ok(&["exec", id, "sh", "-c", "echo go > /tmp/go"]);
    oci.wait_status(id, "stopped");
    assert!(oci.state(id).get("pid").is_none());

    oci.ok(&["delete", id]);
    let err = oci.fails(&["state", id]);
    assert!(err.contains("container does not exist"), "{err}");
    assert!(!oci.root.join(id).exists());
}

#[test]
fn wrong_transitions_are_refused_as_runc_does() {
    let oci = Oci::sh("sleep 60");
    let id = "wrong";
    let err = oci.fails(&["state", "nosuch"]);
    assert!(err.contains("container does not exist"), "{err}");
    let err = oci.fails(&["start", "nosuch"]);
    assert!(err.contains("container does not exist"), "{err}");
    let err = oci.fails(&["state", "../x"]);
    assert!(err.contains("invalid container id"), "{err}");

    oci.create_ok(id);
    let out = oci.create(id, &[]);
    assert!(!out.status.success());
    assert!(oci.output(id).contains("container with id exists: wrong"));

    oci.ok(&["start", id]);
    let err = oci.fails(&["start", id]);
    assert!(
        err.contains("cannot start an already running container"),
        "{err}"
    );
    let err = oci.fails(&["delete", id]);
    assert!(
        err.contains("cannot delete container wrong that is not stopped: running"),
        "{err}"
    );
    oci.ok(&["kill", id, "KILL"]);
    oci.wait_status(id, "stopped");
    let err = oci.fails(&["kill", id]);
    assert!(err.contains("container not running"), "{err}");
    let err = oci.fails(&["start", id]);
    assert!(
        err.contains("cannot start a container that has stopped"),
        "{err}"
    );
    oci.ok(&["delete", id]);
    // runc: deleting what is not there with --force is no error.
    oci.ok(&["delete", "--force", id]);
}

#[test]
fn delete_kills_a_created_container_and_force_a_running_one() {
    let oci = Oci::sh("sleep 60");
    oci.create_ok("c");
    let pid = oci.state("c")["pid"].as_i64().expect("pid");
    oci.ok(&["delete", "c"]);
    assert!(!oci.root.join("c").exists());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "init {pid} survived delete"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    oci.create_ok("r");
    oci.ok(&["start", "r"]);
    oci.ok(&["delete", "--force", "r"]);
    let err = oci.fails(&["state", "r"]);
    assert!(err.contains("container does not exist"), "{err}");
}

#[test]
fn run_returns_the_exit_status_and_removes_the_container() {
    let oci = Oci::sh("echo ran; exit 3");
    let b = oci.bundle.to_str().expect("utf8").to_owned();
    let out = oci.run(&["run", "--bundle", &b, "r3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    let err = oci.fails(&["state", "r3"]);
    assert!(err.contains("container does not exist"), "{err}");

    // --keep leaves it, stopped.
    let out = oci.run(&["run", "--keep", "-b", &b, "kept"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(oci.status("kept"), "stopped");
    oci.ok(&["delete", "kept"]);

    // Killed: 128 + the signal, as a shell reports it.
    let sig = Oci::sh("echo up; sleep 60");
    let child = sig
        .cmd()
        .args(["run", "--bundle"])
        .arg(&sig.bundle)
        .arg("sig")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    sig.wait_status("sig", "running");
    sig.ok(&["kill", "sig", "9"]);
    let out = child.wait_with_output().expect("run");
    assert_eq!(out.status.code(), Some(137), "{out:?}");
}

#[test]
fn run_detached_then_kill() {
    let oci = Oci::sh("trap 'echo got TERM; exit 0' TERM; echo up; while :; do sleep 0.1; done");
    let out = std::fs::File::create(oci.out_path("d")).expect("out");
    let status = oci
        .cmd()
        .args(["run", "-d", "--bundle"])
        .arg(&oci.bundle)
        .arg("d")
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .status()
        .expect("run -d");
    assert!(status.success());
    oci.wait_output("d", "up");
    assert_eq!(oci.status("d"), "running");
    oci.ok(&["kill", "d"]); // SIGTERM by default
    oci.wait_output("d", "got TERM");
    oci.wait_status("d", "stopped");
    oci.ok(&["delete", "d"]);
}

#[test]
fn bad_config_and_flags_are_refused_naming_them() {
    let oci = Oci::new(|c| c["linux"]["resources"]["memory"] = serde_json::json!({"limit": -5}));
    let out = oci.create("bad", &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = oci.output("bad");
    assert!(text.contains("linux.resources.memory"), "{text}");
    assert!(!oci.root.join("bad").exists());

    let ok = Oci::sh("true");
    let out = ok.create("np", &["--no-pivot"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(ok.output("np").contains("--no-pivot"));

    let tty = Oci::new(|c| c["process"]["terminal"] = serde_json::json!(true));
    let out = tty.create("t", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        tty.output("t").contains("console socket"),
        "{}",
        tty.output("t")
    );

    if !std::path::Path::new("/run/systemd/system").exists() {
        let err = ok.fails(&["--systemd-cgroup", "list"]);
        assert!(err.contains("does not run systemd"), "{err}");
    }
}

#[test]
fn preserve_fds_passes_descriptors_to_the_container() {
    let oci = Oci::sh("if echo via-fd3 >&3; then echo wrote; else echo closed; fi 2>/dev/null");
    let shared = oci.dir.path.join("fd3.txt");
    // The shell opens descriptor 3 for execdriver-runc, as an engine would.
    let run = |flags: &str, id: &str| {
        let script = format!(
            "exec 3>{}; exec {} --root {} run {flags} --bundle {} {id}",
            shared.display(),
            execdriver_tests::bin("execdriver-runc").display(),
            oci.root.display(),
            oci.bundle.display()
        );
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .output()
            .expect("sh");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run("--preserve-fds 1", "pfd"), "wrote\n");
    assert_eq!(
        std::fs::read_to_string(&shared).expect("fd3 file"),
        "via-fd3\n"
    );
    // Without the flag the container does not get it.
    assert_eq!(run("", "nofd"), "closed\n");
    assert_eq!(std::fs::read_to_string(&shared).expect("fd3 file"), "");
}

#[test]
fn kill_all_signals_every_process() {
    let oci = Oci::sh("sleep 60 & sleep 61 & echo up; wait");
    oci.create_ok("all");
    oci.ok(&["start", "all"]);
    oci.wait_output("all", "up");
    let pids: Vec<i64> = serde_json::from_str(&oci.ok(&["ps", "-f", "json", "all"])).expect("json");
    assert_eq!(pids.len(), 3, "{pids:?}");
    oci.ok(&["kill", "--all", "all", "SIGKILL"]);
    oci.wait_status("all", "stopped");
}

#[test]
fn foreground_run_forwards_signals_and_relays_a_terminal() {
    let oci = Oci::sh("trap 'echo got-term; exit 5' TERM; echo up; while :; do sleep 0.1; done");
    let out_path = oci.out_path("fg");
    let out = std::fs::File::create(&out_path).expect("out");
    let mut child = oci
        .cmd()
        .args(["run", "--bundle"])
        .arg(&oci.bundle)
        .arg("fg")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .spawn()
        .expect("run");
    oci.wait_output("fg", "up");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(5), "{}", oci.output("fg"));
    assert!(oci.output("fg").contains("got-term"));

    // A terminal without --console-socket: relayed to run's stdout.
    let tty = Oci::new(|c| {
        c["process"]["terminal"] = serde_json::json!(true);
        c["process"]["args"] = serde_json::json!(["sh", "-c", "tty; echo on-tty"]);
    });
    let out = tty
        .cmd()
        .args(["run", "--bundle"])
        .arg(&tty.bundle)
        .arg("tty")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("/dev/pts/0") && text.contains("on-tty"),
        "{text:?}"
    );
    // exec -t in the foreground, relayed the same way.
    let keep = Oci::new(|c| {
        c["process"]["args"] = serde_json::json!(["sleep", "60"]);
    });
    keep.create_ok("k");
    keep.ok(&["start", "k"]);
    let out = keep.run(&["exec", "-t", "k", "sh", "-c", "tty; exit 2"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"),
        "{out:?}"
    );
}
