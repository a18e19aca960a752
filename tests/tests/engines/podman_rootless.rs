//! Rootless Podman (an ordinary user, made for the test) with `--runtime execdriver-runc`:
//! the runtime runs inside Podman's user namespace (the user's uid as root, its subordinate
//! ids beyond), without cgroups of its own, its state under the user's `XDG_RUNTIME_DIR`.

use std::ffi::OsStr;

use execdriver_tests::engines::{busybox_tar, require, which};
use execdriver_tests::{bin, TempDir, TestUser};

const IMAGE: &str = "localhost/edrootless:1";

#[test]
fn rootless_podman_runs_containers_with_execdriver_runc() {
    let podman = require("podman", "podman");
    if which("newuidmap").is_none() {
        panic!("newuidmap is missing: install Debian's uidmap (scripts/test.sh does)");
    }
    let user = TestUser::new(true);
    let work = TempDir::new("edt-podman-rootless");
    std::fs::set_permissions(
        &work.path,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let runtime_dir = work.path.join("xdg");
    user.own_dir(&runtime_dir);
    let mine = work.path.join("podman");
    user.own_dir(&mine);
    let tar = busybox_tar(&mine);
    std::os::unix::fs::chown(&tar, Some(user.uid), Some(user.gid)).unwrap();
    let runtime = bin("execdriver-runc");
    let xdg = runtime_dir.display().to_string();
    let podman_as = |args: &[&str]| {
        let storage = mine.join("storage").display().to_string();
        let run = mine.join("run").display().to_string();
        let mut argv: Vec<&OsStr> = vec![podman.as_os_str()];
        let fixed = [
            "--root",
            &storage,
            "--runroot",
            &run,
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--runtime",
        ];
        argv.extend(fixed.iter().map(OsStr::new));
        argv.push(runtime.as_os_str());
        argv.extend(args.iter().map(OsStr::new));
        user.run(&mine, &[("XDG_RUNTIME_DIR", &xdg)], &argv)
    };
    let out = podman_as(&["import", "--quiet", &tar.display().to_string(), IMAGE]);
    assert!(out.status.success(), "{out:?}");
    let run = |script: &str| {
        podman_as(&[
            "run",
            "--rm",
            "--network",
            "none",
            IMAGE,
            "sh",
            "-c",
            script,
        ])
    };
    let out = run("id -u; head -n 1 /proc/self/uid_map; echo pid $$");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    user.assert_root_inside(&stdout.lines().collect::<Vec<_>>());
    // The exit code comes back, and the runtime kept its state where the user may write.
    let out = run("exit 3");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(runtime_dir.join("execdriver-runc").is_dir());
}
