//! Security: what a container cannot do, and who may talk to the driver. Each attack is tried
//! from inside a container and must fail; where it makes sense the same call is made where it
//! is allowed (a privileged container, a kept capability), to show the test can see success.
//!
//! Every attack is harmless should it succeed (see tests/helper/edtest-sys.rs): reboot with a
//! bad magic number, kexec_load with invalid flags, init_module of an empty image, writes to
//! sysctls only of the container's own UTS namespace, ptrace of a `sleep` the test started.
//!
//! This file holds what the topics share: a daemon whose rootfs has the helper, request
//! builders (`security`, `seccomp`, `privileged`, `sh`), the helper's syscall runner and its
//! results, exec and delete calls. The tests are in `privileges` (capability sets,
//! no_new_privs, rlimits and the calls capabilities guard), `seccomp` (the default and custom
//! filters), `filesystem` (masked and read-only paths, symlinks that must stay in the rootfs),
//! `host_handles` (descriptors and the shim binary), `user_namespace`, `requests` (the
//! security fields and flags, AppArmor, the defaults together), `access` (the socket and
//! ids), `restricted` (what the restricted policy refuses an admitted user, and what it lets
//! through) and `restricted_owners` (whose containers such a user may use).

use std::collections::HashMap;

use execdriver_spec::capabilities;
use execdriver_tests::{install_helper, parse_status, pb, run, Daemon};

mod access;
mod filesystem;
mod host_handles;
mod privileges;
mod requests;
mod restricted;
mod restricted_owners;
mod rootless;
mod seccomp;
mod user_namespace;

/// A daemon whose rootfs has the test helper.
fn daemon() -> Daemon {
    daemon_with(&[])
}

fn daemon_with(args: &[&str]) -> Daemon {
    let d = Daemon::start_with(args);
    install_helper(&d.rootfs);
    d
}

fn security(req: &mut pb::CreateRequest) -> &mut pb::SecurityConfig {
    req.security.get_or_insert_with(Default::default)
}

fn seccomp(profile: &str) -> Option<pb::SeccompConfig> {
    Some(pb::SeccompConfig {
        profile: profile.into(),
        ..Default::default()
    })
}

/// Every capability, no seccomp filter, no masked paths: what `--privileged` asks.
fn privileged(req: &mut pb::CreateRequest) {
    let s = security(req);
    s.capabilities = vec!["ALL".into()];
    s.seccomp = seccomp("unconfined");
    s.unmask_system_paths = true;
}

fn sh(d: &Daemon, script: &str) -> pb::CreateRequest {
    d.request(&["sh", "-c", script])
}

/// Runs `calls` of the helper in one container; returns "call" -> "ok N" / "err ENAME".
async fn syscalls(
    c: &mut execdriver_tests::Client,
    req: pb::CreateRequest,
    calls: &[&str],
) -> HashMap<String, String> {
    let script: Vec<String> = calls
        .iter()
        .map(|call| format!("echo \"{call}: $(edtest-sys {call} 2>&1)\""))
        .collect();
    let mut req = req;
    req.process.as_mut().unwrap().args = vec!["sh".into(), "-c".into(), script.join("; ")];
    let out = run(c, req).await;
    assert_eq!(out.code(), 0, "{} {}", out.stdout(), out.stderr());
    parse_results(&out.stdout())
}

fn parse_results(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

fn mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| capabilities::parse(n).expect(n).bitmask())
        .fold(0, |a, b| a | b)
}

fn cap_sets(status: &str) -> HashMap<&'static str, u64> {
    let s = parse_status(status);
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .into_iter()
        .map(|k| (k, u64::from_str_radix(&s[k], 16).expect(k)))
        .collect()
}

async fn exec_sync(c: &mut execdriver_tests::Client, id: &str, args: &[&str]) -> String {
    exec_sync_as(c, id, args, "").await
}

async fn exec_sync_as(
    c: &mut execdriver_tests::Client,
    id: &str,
    args: &[&str],
    user: &str,
) -> String {
    let r = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.into(),
            process: Some(pb::Process {
                args: args.iter().map(|s| s.to_string()).collect(),
                user: user.into(),
                ..Default::default()
            }),
            timeout_seconds: 30,
        })
        .await
        .expect("exec_sync")
        .into_inner();
    assert_eq!(
        r.exit.as_ref().map(|e| e.status_code),
        Some(0),
        "{} {}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    String::from_utf8_lossy(&r.stdout).into_owned()
}

/// Starts `req` (a long sleep) and returns its id.
async fn start(c: &mut execdriver_tests::Client, req: pb::CreateRequest) -> String {
    let id = req.id.clone();
    c.run(req).await.expect("run");
    id
}

async fn force_delete(c: &mut execdriver_tests::Client, id: &str) {
    c.delete(pb::DeleteRequest {
        id: id.into(),
        force: true,
    })
    .await
    .expect("delete");
}

fn assert_nothing_left(d: &Daemon) {
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());
}
