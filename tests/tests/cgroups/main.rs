//! Cgroups for real: limits the kernel enforces (memory and the OOM killer, pids, cpu quota,
//! devices through v1 and through the eBPF filter), pause/resume, live update, stats, pids,
//! and that nothing is left in any hierarchy afterwards.
//!
//! This machine has cgroup v1 (or hybrid); the v2 writers are unit-tested over a tempdir in the
//! shim (`cgroups::v2`), and the v2 eBPF device filter runs here for real on a hybrid host.
//!
//! This file holds what the topics share: where a container's cgroup files are, requests with
//! resources, and state, stats and delete calls. The tests are in `limits` (memory, pids, cpu),
//! `freezer` (pause, resume, a frozen start), `pool` (parked shims), `update`, `stats`, `devices`, `hierarchy` (the
//! cgroup parent, delete), `requests` (bad resources, the CLI) and `shim` (the shim alone on a
//! container.json).

use std::path::PathBuf;
use std::process::Child;

use execdriver_shim::cgroups::Layout;
use execdriver_tests::{pb, Daemon};

mod devices;
mod freezer;
mod hierarchy;
mod limits;
mod pool;
mod requests;
mod shim;
mod stats;
mod update;
mod when_limited;

const MIB: i64 = 1 << 20;

/// The directory of the container `id` in the v1 hierarchy of `controller` (or the unified one
/// for "v2").
fn cgroup_dir(parent: &str, id: &str, controller: &str) -> Option<PathBuf> {
    let layout = Layout::detect().ok()?;
    let h = layout.hierarchies.iter().find(|h| {
        if controller == "v2" {
            h.v2
        } else {
            !h.v2 && h.controllers.iter().any(|c| c == controller)
        }
    })?;
    Some(h.mountpoint.join(parent).join(id))
}

fn cgroup_file(d: &Daemon, id: &str, controller: &str, file: &str) -> String {
    let dir = cgroup_dir(&d.cgroup_parent, id, controller)
        .unwrap_or_else(|| panic!("no {controller} hierarchy on this host"));
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_owned()
}

fn has_v1(controller: &str) -> bool {
    Layout::detect()
        .map(|l| {
            l.hierarchies
                .iter()
                .any(|h| !h.v2 && h.controllers.iter().any(|c| c == controller))
        })
        .unwrap_or(false)
}

fn with_resources(
    d: &Daemon,
    args: &[&str],
    f: impl FnOnce(&mut pb::Resources),
) -> pb::CreateRequest {
    let mut req = d.request(args);
    let mut r = pb::Resources::default();
    f(&mut r);
    req.resources = Some(r);
    req
}

/// `req` without a seccomp filter: the default profile refuses mknod of a block device before
/// the devices cgroup sees it (tests/tests/security/seccomp.rs), and unshare(CLONE_NEWUSER)
/// without CAP_SYS_ADMIN, as Docker's does.
fn unconfined(mut req: pb::CreateRequest) -> pb::CreateRequest {
    req.security = Some(pb::SecurityConfig {
        seccomp: Some(pb::SeccompConfig {
            profile: "unconfined".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    req
}

async fn state(c: &mut execdriver_tests::Client, id: &str) -> pb::ContainerState {
    c.state(pb::StateRequest {
        id: id.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .container
    .unwrap()
}

async fn stats(c: &mut execdriver_tests::Client, id: &str) -> pb::ContainerStats {
    c.stats(pb::StatsRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap()
}

async fn force_delete(c: &mut execdriver_tests::Client, id: &str) {
    c.delete(pb::DeleteRequest {
        id: id.into(),
        force: true,
    })
    .await
    .unwrap();
}

/// A process this test started; killed (by its pid) and reaped on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
