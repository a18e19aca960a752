//! Recovery and garbage collection: what the driver finds in its root when it starts (or when
//! `execdriverd --cleanup` runs), and the removal of what containers whose shim is gone left on
//! the host.
//!
//! Every container directory is classified by two facts: does its shim run (`shim.pid` names a
//! live process whose working directory is this directory: the shim's, see
//! [`shims::shim_alive`]), and was the container ever created (`meta.json` is readable and the
//! shim got as far as writing `shim.pid`, or an exit record exists):
//!
//! | shim | created | what it is | startup pass | `--cleanup` |
//! |---|---|---|---|---|
//! | runs | yes | a live container | loaded | kept |
//! | runs | no | a create of a dead daemon still finishing (its shim abandons it) | left alone | left alone |
//! | gone | yes | a container that ended while nobody watched, or whose shim died | leftovers removed, exit recorded, loaded | leftovers and directory removed |
//! | gone | no | a create or a delete that never finished | leftovers and directory removed | same |
//!
//! Leftovers are the container's processes (killed through its cgroups, thawed first), its
//! cgroup directories, the host ends of its veths (`network.json`), anything mounted under its
//! state directory, temp files of interrupted writes, and its address in `ipam.json`. A
//! container whose shim runs is never touched.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use execdriver_shim::cgroups::{self, DeviceMode, Layout};
use execdriver_shim::network as shim_net;
use execdriver_spec::config::{Cgroups, Config as ContainerConfig};
use execdriver_spec::state::{self, ExitRecord};

use crate::convert::{self, Meta};
use crate::shims;

/// What was removed for one container whose shim is gone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Released {
    /// Processes killed through the container's cgroups.
    pub killed: Vec<i32>,
    /// Cgroup directories removed.
    pub cgroups: Vec<PathBuf>,
    /// Host ends of veths deleted.
    pub veths: Vec<String>,
    /// Mount points detached under the state directory.
    pub mounts: Vec<PathBuf>,
    /// Temp files of interrupted writes removed.
    pub temp_files: Vec<PathBuf>,
    /// What could not be removed (a cgroup directory, a veth, a mount), each with why.
    pub left: Vec<String>,
}

impl Released {
    pub fn is_empty(&self) -> bool {
        *self == Released::default()
    }
}

impl fmt::Display for Released {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.killed.is_empty() {
            parts.push(format!("killed pids {:?}", self.killed));
        }
        if !self.cgroups.is_empty() {
            parts.push(format!("removed {} cgroup directories", self.cgroups.len()));
        }
        if !self.veths.is_empty() {
            parts.push(format!("deleted veths {}", self.veths.join(",")));
        }
        if !self.mounts.is_empty() {
            let m: Vec<String> = self
                .mounts
                .iter()
                .map(|m| m.display().to_string())
                .collect();
            parts.push(format!("unmounted {}", m.join(",")));
        }
        if !self.temp_files.is_empty() {
            parts.push(format!("removed {} temp files", self.temp_files.len()));
        }
        if !self.left.is_empty() {
            parts.push(format!("could not remove: {}", self.left.join("; ")));
        }
        if parts.is_empty() {
            parts.push("nothing was left".into());
        }
        f.write_str(&parts.join("; "))
    }
}

/// The cgroups section of a container: from its container.json, or (when that is unreadable)
/// the daemon's parent and the container's id, where the driver would have put them.
fn cgroups_of(dir: &Path, id: &str, fallback_parent: &str) -> Option<Cgroups> {
    match ContainerConfig::load(&dir.join(state::CONFIG)) {
        Ok(config) => config.cgroups,
        Err(_) => {
            (convert::validate_id(id).is_ok() && !fallback_parent.is_empty()).then(|| Cgroups {
                parent: fallback_parent.to_owned(),
                name: id.to_owned(),
                ..Default::default()
            })
        }
    }
}

/// Removes what a container whose shim is gone left on the host: its processes (killed through
/// its cgroups), its cgroups, its host veths, mounts under its state directory and temp files in
/// it. The state directory itself stays. Idempotent; blocking (cgroup removal waits for the
/// killed processes to leave).
pub fn release(dir: &Path, fallback_parent: &str) -> Released {
    let id = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    release_as(dir, &id, fallback_parent)
}

/// As [`release`], for the container `id` whose directory (parked) has another name.
pub fn release_as(dir: &Path, id: &str, fallback_parent: &str) -> Released {
    let mut out = Released::default();
    if let Some(cg) = cgroups_of(dir, id, fallback_parent) {
        match Layout::detect().and_then(|l| cgroups::open(&l, &cg, DeviceMode::Auto)) {
            Err(e) => out
                .left
                .push(format!("cgroups {}/{}: {e}", cg.parent, cg.name)),
            Ok(manager) => {
                let existing: Vec<PathBuf> = manager
                    .cgroup()
                    .dirs
                    .iter()
                    .map(|(_, d)| d.clone())
                    .filter(|d| d.exists())
                    .collect();
                if !existing.is_empty() {
                    out.killed = manager.pids().iter().map(|p| p.as_raw()).collect();
                    if let Err(e) = manager.destroy() {
                        tracing::warn!(dir = %dir.display(), error = %e, "removing cgroups");
                        out.left.push(e.to_string());
                    }
                    out.cgroups = existing.into_iter().filter(|d| !d.exists()).collect();
                }
            }
        }
    }
    release_links(dir, &mut out);
    out.mounts = execdriver_shim::state::unmount_under(dir);
    for m in execdriver_shim::state::mounts_under(dir) {
        out.left.push(format!("mount {}", m.display()));
    }
    out.temp_files = remove_temp_files(dir);
    out
}

/// What is left of a container whose shim removed its cgroups and ended (it answered Shutdown
/// with `released`): the host ends of its veths, when the init's end did not remove them, and
/// temp files. Its cgroups and mounts are not looked for.
pub fn release_after_shutdown(dir: &Path) -> Released {
    let mut out = Released::default();
    release_links(dir, &mut out);
    out.temp_files = remove_temp_files(dir);
    out
}

/// Deletes the host veths `network.json` lists that still exist (by index and name).
fn release_links(dir: &Path, out: &mut Released) {
    let links = shim_net::load_host_links(dir);
    if !links.is_empty() {
        match shim_net::Netlink::open() {
            Ok(mut nl) => {
                for l in &links {
                    match nl.link_by_index(l.index) {
                        Ok(Some(link)) if link.name == l.name => match nl.delete_link(l.index) {
                            Ok(()) => out.veths.push(l.name.clone()),
                            Err(e) => out.left.push(format!("veth {}: {e}", l.name)),
                        },
                        Ok(_) => {}
                        Err(e) => out.left.push(format!("veth {}: {e}", l.name)),
                    }
                }
            }
            Err(e) => out.left.push(format!("veths: {e}")),
        }
    }
}

/// Removes `.NAME.tmp` files (interrupted atomic writes) from `dir`.
pub fn remove_temp_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') && name.ends_with(".tmp") && e.path().is_file()
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .map(|e| e.path())
        .collect()
}

/// The record of a container whose shim is gone: its own exit.json when the shim wrote one;
/// otherwise one written now (so every later report agrees) saying what happened. `killed`
/// holds the pids that [`release`] killed: when the init is among them, it died of SIGKILL.
pub fn record_exit(dir: &Path, shim_pid: Option<i32>, killed: &[i32]) -> ExitRecord {
    if let Ok(rec) = ExitRecord::load(dir) {
        return rec;
    }
    let pid = state::read_pid(&dir.join(state::PID)).unwrap_or(0);
    let shim = match shim_pid {
        Some(p) => format!("the shim (pid {p})"),
        None => "the shim".to_owned(),
    };
    let killed_init = pid > 0 && killed.contains(&pid);
    let reason = if killed_init {
        format!("{shim} died; the container was killed through its cgroup")
    } else if killed.is_empty() {
        format!("{shim} died and the container ended with it; how it ended is unknown")
    } else {
        format!(
            "{shim} died and the container's init ended with it (how is unknown); {} remaining processes were killed through its cgroup",
            killed.len()
        )
    };
    let rec = ExitRecord {
        pid,
        exit_code: None,
        signal: killed_init.then_some(libc::SIGKILL),
        oom_killed: false,
        started_at: 0,
        finished_at: state::now_ns(),
        reason,
    };
    if let Err(e) = rec.save(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "writing the exit record");
    }
    let _ = std::fs::remove_file(dir.join(state::PID));
    let _ = std::fs::remove_file(dir.join(state::SOCKET));
    rec
}

/// How a container directory was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Its shim runs.
    Live { meta: Box<Meta>, shim_pid: i32 },
    /// A shim runs in a directory without a finished create (no `meta.json` or no `shim.pid`):
    /// a create of a daemon that died; its shim abandons it. Left alone.
    Busy { shim_pid: i32 },
    /// Created, and its shim is gone.
    Dead { meta: Box<Meta> },
    /// Never finished (or half deleted), and no shim runs.
    Incomplete,
}

/// One directory in the root.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: String,
    pub dir: PathBuf,
    pub kind: Kind,
}

/// Classifies every container directory under `root` (names that are not container ids are
/// skipped).
pub fn scan(root: &Path) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<Found> = entries
        .flatten()
        .filter_map(|entry| {
            let id = entry.file_name().to_str()?.to_owned();
            let dir = entry.path();
            if !dir.is_dir() || convert::validate_id(&id).is_err() {
                return None;
            }
            let kind = classify(&id, &dir);
            Some(Found { id, dir, kind })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Classifies one container directory (see the module's table).
pub fn classify(id: &str, dir: &Path) -> Kind {
    let meta = std::fs::read(dir.join(state::META))
        .ok()
        .and_then(|d| serde_json::from_slice::<Meta>(&d).ok())
        .filter(|m| m.id == id);
    let created =
        meta.is_some() && (dir.join(state::SHIM_PID).exists() || dir.join(state::EXIT).exists());
    match (shims::shim_alive(dir), meta) {
        (Some(shim_pid), Some(meta)) if created => Kind::Live {
            meta: Box::new(meta),
            shim_pid,
        },
        (Some(shim_pid), _) => Kind::Busy { shim_pid },
        (None, Some(meta)) if created => Kind::Dead {
            meta: Box::new(meta),
        },
        (None, _) => Kind::Incomplete,
    }
}

/// What a startup pass or `--cleanup` did.
#[derive(Debug, Default)]
pub struct Report {
    /// One line per thing done or left, for the log or the terminal.
    pub lines: Vec<String>,
    /// Containers loaded (startup) or kept (`--cleanup`), by id.
    pub kept: BTreeSet<String>,
    /// State directories removed.
    pub removed_dirs: Vec<PathBuf>,
}

impl Report {
    fn note(&mut self, line: String) {
        self.lines.push(line);
    }
}

/// Removes `dir` so that a crash part-way leaves it incomplete (no meta.json: the next pass
/// removes the rest), not a half container.
pub fn remove_state_dir(dir: &Path) -> std::io::Result<()> {
    // Not synced: a crash of the daemon sees the removal in order; after a crash of the host
    // (whose containers ended with it) a journalling filesystem keeps the order too, and at
    // worst the container is found again, stopped.
    match std::fs::remove_file(dir.join(state::META)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::remove_dir_all(dir)
}

/// The pass over `root`: leftovers of containers whose shim is gone are removed, incomplete
/// directories too; with `remove_dead` (`--cleanup`), the state directories of containers
/// whose shim is gone as well (their exit is in the report). Returns what it did and the
/// containers to load (Live, and Dead unless removed).
pub fn pass(root: &Path, fallback_parent: &str, remove_dead: bool) -> (Report, Vec<Found>) {
    let mut report = Report::default();
    let mut load = Vec::new();
    let temp = remove_temp_files(root);
    if !temp.is_empty() {
        report.note(format!(
            "root: removed {} temp files of interrupted writes",
            temp.len()
        ));
    }
    for found in scan(root) {
        let id = found.id.clone();
        match &found.kind {
            Kind::Live { shim_pid, .. } => {
                report.note(format!("{id}: running (shim pid {shim_pid}); kept"));
                report.kept.insert(id);
                load.push(found);
            }
            Kind::Busy { shim_pid } => {
                report.note(format!(
                    "{id}: a create that never finished; its shim (pid {shim_pid}) still runs and abandons it; left alone"
                ));
            }
            Kind::Dead { .. } => {
                let shim_pid = state::read_pid(&found.dir.join(state::SHIM_PID)).ok();
                let released = release(&found.dir, fallback_parent);
                let rec = record_exit(&found.dir, shim_pid, &released.killed);
                let how = exit_text(&rec);
                if remove_dead {
                    match remove_state_dir(&found.dir) {
                        Ok(()) => {
                            report.note(format!(
                                "{id}: stopped ({how}); shim gone; {released}; state directory removed"
                            ));
                            report.removed_dirs.push(found.dir.clone());
                        }
                        Err(e) => report.note(format!(
                            "{id}: stopped ({how}); {released}; removing {}: {e}",
                            found.dir.display()
                        )),
                    }
                } else {
                    if released.is_empty() {
                        report.note(format!("{id}: stopped ({how}); shim gone; kept"));
                    } else {
                        report.note(format!(
                            "{id}: stopped ({how}); shim gone; {released}; kept"
                        ));
                    }
                    report.kept.insert(id);
                    load.push(found);
                }
            }
            Kind::Incomplete => {
                let released = release(&found.dir, fallback_parent);
                match remove_state_dir(&found.dir) {
                    Ok(()) => {
                        report.note(format!(
                            "{id}: incomplete create or delete; {released}; state directory removed"
                        ));
                        report.removed_dirs.push(found.dir.clone());
                    }
                    Err(e) => report.note(format!(
                        "{id}: incomplete; {released}; removing {}: {e}",
                        found.dir.display()
                    )),
                }
            }
        }
    }
    (report, load)
}

/// Removes cgroup directories under `parent` (in every hierarchy) that belong to no kept
/// container and hold no process: containers whose state directory is gone. One with
/// processes is reported and left (its shim may be alive). For `--cleanup` only: at a normal
/// start another daemon sharing the parent could be creating one.
pub fn orphan_cgroups(parent: &str, kept: &BTreeSet<String>, report: &mut Report) {
    let Ok(layout) = Layout::detect() else {
        return;
    };
    let mut names = BTreeSet::new();
    for h in &layout.hierarchies {
        let Ok(entries) = std::fs::read_dir(h.mountpoint.join(parent.trim_matches('/'))) else {
            continue;
        };
        for e in entries.flatten() {
            if let Some(name) = e.file_name().to_str() {
                if e.path().is_dir() && convert::validate_id(name).is_ok() && !kept.contains(name) {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    for name in names {
        let cg = Cgroups {
            parent: parent.to_owned(),
            name: name.clone(),
            ..Default::default()
        };
        let Ok(manager) = cgroups::open(&layout, &cg, DeviceMode::Auto) else {
            continue;
        };
        let pids = manager.pids();
        if !pids.is_empty() {
            report.note(format!(
                "cgroup {parent}/{name}: no state directory, but processes {:?} run in it; left alone",
                pids.iter().map(|p| p.as_raw()).collect::<Vec<_>>()
            ));
            continue;
        }
        match manager.destroy() {
            Ok(()) => report.note(format!(
                "cgroup {parent}/{name}: no state directory and no process; removed"
            )),
            Err(e) => report.note(format!("cgroup {parent}/{name}: {e}")),
        }
    }
}

/// "exit code 3", "killed by signal 9", "exit unknown", with the reason when there is one.
pub fn exit_text(rec: &ExitRecord) -> String {
    let base = match (rec.exit_code, rec.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => "exit unknown".to_owned(),
    };
    if rec.reason.is_empty() {
        base
    } else {
        format!("{base}: {}", rec.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::process::{Child, Command};

    fn tmp() -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "execdriver-gc-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn container_dir(root: &Path, id: &str, meta_id: Option<&str>) -> PathBuf {
        let dir = root.join(id);
        std::fs::create_dir(&dir).unwrap();
        if let Some(m) = meta_id {
            let meta = Meta {
                id: m.to_owned(),
                ..Default::default()
            };
            std::fs::write(dir.join(state::META), serde_json::to_vec(&meta).unwrap()).unwrap();
        }
        dir
    }

    /// A process standing in for a shim: its working directory is `dir`.
    fn fake_shim(dir: &Path) -> Child {
        let child = Command::new("sleep")
            .arg("30")
            .current_dir(dir)
            .spawn()
            .unwrap();
        std::fs::write(dir.join(state::SHIM_PID), child.id().to_string()).unwrap();
        child
    }

    struct Reap(Vec<Child>);
    impl Drop for Reap {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    #[test]
    fn every_crash_point_is_classified_and_the_pass_loads_or_cleans() {
        let root = tmp();
        // A create that crashed before meta.json, one before the shim got going, a meta.json
        // cut short, one naming another container.
        let inc1 = container_dir(&root, "inc1", None);
        std::fs::write(inc1.join(state::CONFIG), b"{\"hostname\": \"x").unwrap();
        let inc2 = container_dir(&root, "inc2", Some("inc2"));
        let inc3 = container_dir(&root, "inc3", None);
        std::fs::write(inc3.join(state::META), b"{\"id\": \"inc").unwrap();
        std::fs::write(inc3.join(state::SHIM_PID), b"1").unwrap();
        let inc4 = container_dir(&root, "inc4", Some("other"));
        // A shim that died (its pid is no process of this directory), a container that ended
        // and whose shim then died, a live one, a create still finishing.
        let dead1 = container_dir(&root, "dead1", Some("dead1"));
        let mut gone = Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        std::fs::write(dead1.join(state::SHIM_PID), gone.id().to_string()).unwrap();
        std::fs::write(dead1.join(state::PID), b"999999").unwrap();
        std::fs::write(dead1.join(".exit.json.tmp"), b"{").unwrap();
        let dead2 = container_dir(&root, "dead2", Some("dead2"));
        let ended = ExitRecord {
            pid: 5,
            exit_code: Some(3),
            ..Default::default()
        };
        ended.save(&dead2).unwrap();
        let live = container_dir(&root, "live", Some("live"));
        let busy = container_dir(&root, "busy", None);
        let _reap = Reap(vec![fake_shim(&live), fake_shim(&busy)]);
        std::fs::create_dir(root.join(".not-an-id")).unwrap();
        std::fs::write(root.join(".ipam.json.tmp"), b"{").unwrap();

        let kinds: BTreeMap<String, Kind> =
            scan(&root).into_iter().map(|f| (f.id, f.kind)).collect();
        let name = |id: &str| match &kinds[id] {
            Kind::Live { .. } => "live",
            Kind::Busy { .. } => "busy",
            Kind::Dead { .. } => "dead",
            Kind::Incomplete => "incomplete",
        };
        assert_eq!(kinds.len(), 8, "{kinds:?}");
        for id in ["inc1", "inc2", "inc3", "inc4"] {
            assert_eq!(name(id), "incomplete", "{id}");
        }
        assert_eq!(name("dead1"), "dead");
        assert_eq!(name("dead2"), "dead");
        assert_eq!(name("live"), "live");
        assert_eq!(name("busy"), "busy");

        let (report, load) = pass(&root, "", false);
        let loaded: Vec<&str> = load.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(loaded, ["dead1", "dead2", "live"], "{:?}", report.lines);
        for d in [&inc1, &inc2, &inc3, &inc4] {
            assert!(!d.exists(), "{}", d.display());
        }
        assert!(busy.exists() && live.join(state::META).exists());
        assert!(!root.join(".ipam.json.tmp").exists());
        assert!(!dead1.join(".exit.json.tmp").exists());
        // The dead shim's container now has a record saying so; the ended one keeps its own.
        let rec = ExitRecord::load(&dead1).unwrap();
        assert!(
            rec.reason
                .contains(&format!("the shim (pid {})", gone.id())),
            "{rec:?}"
        );
        assert_eq!(rec.status_code(), 255);
        assert!(!dead1.join(state::PID).exists());
        assert_eq!(ExitRecord::load(&dead2).unwrap(), ended);
        assert_eq!(report.removed_dirs.len(), 4, "{:?}", report.lines);
        assert!(
            report
                .lines
                .iter()
                .any(|l| l.starts_with("busy:") && l.contains("left alone")),
            "{:?}",
            report.lines
        );

        // Again: nothing changes (the pass is idempotent).
        let (_, again) = pass(&root, "", false);
        assert_eq!(again.len(), 3);
        assert_eq!(ExitRecord::load(&dead1).unwrap(), rec);

        // --cleanup removes the dead ones' directories too.
        let (report, load) = pass(&root, "", true);
        assert_eq!(load.len(), 1);
        assert!(!dead1.exists() && !dead2.exists());
        assert!(live.exists() && busy.exists());
        assert_eq!(report.kept, BTreeSet::from(["live".to_string()]));
        drop(_reap);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_state_dir_is_removed_meta_first() {
        let root = tmp();
        let dir = container_dir(&root, "x", Some("x"));
        std::fs::write(dir.join("log"), b"line").unwrap();
        remove_state_dir(&dir).unwrap();
        assert!(!dir.exists());
        // Already gone: an error the caller sees, nothing removed elsewhere.
        assert!(remove_state_dir(&dir).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn exit_texts() {
        let mut r = ExitRecord {
            exit_code: Some(7),
            ..Default::default()
        };
        assert_eq!(exit_text(&r), "exit code 7");
        r.exit_code = None;
        r.signal = Some(9);
        r.reason = "why".into();
        assert_eq!(exit_text(&r), "killed by signal 9: why");
    }
}
