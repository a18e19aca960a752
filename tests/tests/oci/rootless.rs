//! `execdriver-runc` run by an ordinary user (rootless): a bundle made by `spec --rootless`
//! runs in a user namespace with the user as root inside, without cgroups of its own (the
//! user may write none here), and a bundle asking for a limit is refused, naming it.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use execdriver_tests::{bin, make_rootfs, unique, TempDir, TestUser};

/// `execdriver-runc ARGS` as `user`, in `cwd`.
fn runc_as(user: &TestUser, cwd: &Path, args: &[&str]) -> Output {
    let runc = bin("execdriver-runc");
    let mut argv: Vec<&OsStr> = vec![runc.as_os_str()];
    argv.extend(args.iter().map(OsStr::new));
    user.run(cwd, &[], &argv)
}

/// The user's own directory for a bundle and the runtime's state.
fn user_dir(user: &TestUser) -> TempDir {
    let dir = TempDir::new("edt-rootless");
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    make_rootfs(&dir.path.join("rootfs"));
    std::os::unix::fs::chown(&dir.path, Some(user.uid), Some(user.gid)).unwrap();
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

#[test]
fn a_rootless_bundle_runs_as_its_user() {
    let user = TestUser::new(false);
    let dir = user_dir(&user);
    let out = runc_as(&user, &dir.path, &["spec", "--rootless"]);
    assert!(out.status.success(), "{out:?}");
    edit_config(&dir.path, |c| {
        c["process"]["terminal"] = false.into();
        c["process"]["args"] = serde_json::json!([
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; echo pid $$; touch /proc/sysrq-trigger 2>&1 || echo denied"
        ]);
    });
    let state = dir.path.join("state").display().to_string();
    let out = runc_as(&user, &dir.path, &["--root", &state, "run", &unique("rl")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    // Root inside, the user outside, pid 1 of its own namespace.
    user.assert_root_inside(&stdout.lines().collect::<Vec<_>>());
    // No host privilege: a host file the user may not write stays unwritable.
    assert!(
        stdout.contains("denied") || !stdout.contains("sysrq"),
        "{stdout}"
    );
    // Nothing is left in the runtime's state.
    let list = runc_as(&user, &dir.path, &["--root", &state, "list", "-q"]);
    assert!(list.status.success(), "{list:?}");
    assert!(String::from_utf8_lossy(&list.stdout).trim().is_empty());
}

#[test]
fn a_rootless_bundle_asking_for_a_limit_is_refused_naming_it() {
    let user = TestUser::new(false);
    let dir = user_dir(&user);
    assert!(runc_as(&user, &dir.path, &["spec", "--rootless"])
        .status
        .success());
    edit_config(&dir.path, |c| {
        c["process"]["terminal"] = false.into();
        c["process"]["args"] = serde_json::json!(["true"]);
        c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 64 << 20});
    });
    let state = dir.path.join("state").display().to_string();
    let out = runc_as(&user, &dir.path, &["--root", &state, "run", &unique("rl")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("linux.resources.memory.limit"), "{stderr}");
    assert!(stderr.contains("rootless"), "{stderr}");
}
