//! `exec`: the args form and `--process`, its exit status, `--env`/`--cwd`/`--user`, `-d` with
//! a pid file, and `-t` with the terminal's master received on a console socket.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use super::Oci;

fn running(script: &str, id: &str) -> Oci {
    let oci = Oci::sh(script);
    oci.create_ok(id);
    oci.ok(&["start", id]);
    oci
}

#[test]
fn exec_args_form_joins_the_container() {
    let oci = running("sleep 60", "e");
    let out = oci.ok(&[
        "exec",
        "e",
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert_eq!(out, "runc\nsleep 60 ");
    let out = oci.run(&["exec", "e", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let out = oci.ok(&[
        "exec",
        "--env",
        "A=b",
        "--cwd",
        "/tmp",
        "--user",
        "65534:65534",
        "e",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u):$(id -g)",
    ]);
    assert_eq!(out, "b /tmp 65534:65534\n");
    let err = oci.fails(&["exec", "e", "no-such-binary"]);
    assert!(err.contains("no-such-binary"), "{err}");
    let err = oci.fails(&["exec", "nosuch", "true"]);
    assert!(err.contains("container does not exist"), "{err}");
}

#[test]
fn exec_process_json() {
    let oci = running("sleep 60", "p");
    let path = oci.dir.path.join("process.json");
    std::fs::write(
        &path,
        serde_json::json!({
            "args": ["sh", "-c", "echo $X $(pwd) $(id -u); exit 4"],
            "env": ["PATH=/bin", "X=fromjson"],
            "cwd": "/etc",
            "user": {"uid": 65534, "gid": 65534},
        })
        .to_string(),
    )
    .expect("write");
    let out = oci.run(&["exec", "--process", path.to_str().expect("utf8"), "p"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fromjson /etc 65534\n"
    );
}

#[test]
fn exec_detached_leaves_the_process_running() {
    let oci = running("sleep 60", "d");
    let pid_file = oci.dir.path.join("exec.pid");
    let status = oci
        .cmd()
        .args(["exec", "-d", "--pid-file"])
        .arg(&pid_file)
        .args(["d", "sleep", "30"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("exec -d");
    assert!(status.success());
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    // It outlived `exec` and is in the container's pid namespace.
    std::thread::sleep(Duration::from_millis(200));
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).expect("alive");
    assert_eq!(cmdline, "sleep\u{0}30\u{0}");
    let ps: Vec<i32> = serde_json::from_str(&oci.ok(&["ps", "--format", "json", "d"])).expect("ps");
    assert!(ps.contains(&pid), "{ps:?} {pid}");
}

/// Receives the master a runtime sends over `listener`.
fn recv_master(listener: &UnixListener) -> std::fs::File {
    let (conn, _) = listener.accept().expect("accept");
    let mut buf = [0u8; 256];
    let (_, fd) = execdriver_shim::sys::recv_with_fd(conn.as_fd(), &mut buf).expect("recvmsg");
    std::fs::File::from(fd.expect("a descriptor"))
}

/// Reads from a terminal master until `text` shows up (or 20 s pass).
fn read_until(master: &mut std::fs::File, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = String::new();
    let mut buf = [0u8; 1024];
    while !got.contains(text) {
        assert!(Instant::now() < deadline, "no {text:?} in {got:?}");
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    got
}

#[test]
fn terminals_go_to_the_console_socket() {
    let oci = Oci::new(|c| {
        c["process"]["terminal"] = serde_json::json!(true);
        c["process"]["args"] = serde_json::json!(["sh", "-c", "tty; echo init-tty; sleep 60"]);
    });
    let sock = oci.dir.path.join("console.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    let out = oci.create("t", &["--console-socket", sock.to_str().expect("utf8")]);
    assert!(out.status.success(), "{out:?} {}", oci.output("t"));
    let mut master = recv_master(&listener);
    oci.ok(&["start", "t"]);
    let got = read_until(&mut master, "init-tty");
    assert!(
        got.contains("/dev/pts/0") || got.contains("/dev/console"),
        "{got:?}"
    );

    // exec -t: a terminal of its own, on the socket too.
    let mut child = oci
        .cmd()
        .args(["exec", "-t", "--console-socket"])
        .arg(&sock)
        .args(["t", "sh", "-c", "tty; echo exec-tty"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("exec -t");
    let mut master = recv_master(&listener);
    let got = read_until(&mut master, "exec-tty");
    assert!(got.contains("/dev/pts/"), "{got:?}");
    assert!(child.wait().expect("wait").success());
}
