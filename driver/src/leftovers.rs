//! What a delete could not remove from the host (a cgroup that stays busy, a veth, a mount),
//! kept until it can be.
//!
//! A delete always ends its container and frees its id; what it could not remove stays listed
//! in `<root>/.leftovers/<stamp>-<id>`: the container's state directory, moved there whole
//! (one rename), so its container.json and network.json still say where each thing is. The
//! daemon retries every [`RETRY_INTERVAL`] and at its start, `execdriverd --cleanup` once;
//! each retry is [`gc::release_as`], and a directory whose leftovers are all gone is removed.
//! Until then a new container of the same id is refused (its cgroup exists:
//! FAILED_PRECONDITION), never mixed with the old one's.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::gc;

/// The directory under the daemon's root.
pub const DIR: &str = ".leftovers";

/// How often the daemon retries.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// Moves the state directory `dir` of container `id` under `<root>/.leftovers`; returns where.
pub fn park(root: &Path, dir: &Path, id: &str) -> std::io::Result<PathBuf> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dest = root.join(DIR).join(format!("{stamp}-{id}"));
    // A retry that found nothing parked may remove the (empty) holder meanwhile: once more.
    let mut attempt = 0;
    loop {
        std::fs::create_dir_all(root.join(DIR))?;
        match std::fs::rename(dir, &dest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt == 0 => attempt += 1,
            r => return r.map(|_| dest),
        }
    }
}

/// Every parked directory, with the id of its container.
fn parked(root: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(root.join(DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let (_, id) = name.split_once('-')?;
            Some((e.path(), id.to_owned()))
        })
        .collect();
    out.sort();
    out
}

/// Whether anything is parked (cheap: the daemon's periodic retry skips when not).
pub fn any(root: &Path) -> bool {
    std::fs::read_dir(root.join(DIR)).is_ok_and(|mut d| d.next().is_some())
}

/// One retry over every parked directory; one line per directory, for the log or the terminal.
/// Blocking.
pub fn retry(root: &Path, fallback_parent: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for (dir, id) in parked(root) {
        let released = gc::release_as(&dir, &id, fallback_parent);
        if !released.left.is_empty() {
            lines.push(format!(
                "leftovers of {id}: {released}; kept for the next try"
            ));
            continue;
        }
        match gc::remove_state_dir(&dir) {
            Ok(()) => lines.push(format!("leftovers of {id}: {released}; all removed")),
            Err(e) => lines.push(format!(
                "leftovers of {id}: {released}; removing {}: {e}",
                dir.display()
            )),
        }
    }
    // Only when empty.
    let _ = std::fs::remove_dir(root.join(DIR));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_directories_are_removed_once_nothing_is_left() {
        let root =
            std::env::temp_dir().join(format!("execdriver-leftovers-{}", std::process::id()));
        let dir = root.join("c1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meta.json"), "{}").unwrap();
        assert!(!any(&root));
        let parked_at = park(&root, &dir, "c1").unwrap();
        assert!(!dir.exists());
        assert!(parked_at.join("meta.json").exists());
        assert_eq!(parked(&root), vec![(parked_at, "c1".to_owned())]);
        assert!(any(&root));
        // No container.json and an empty fallback parent: nothing of the host to release.
        let lines = retry(&root, "");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("all removed"), "{lines:?}");
        assert!(!any(&root));
        assert!(!root.join(DIR).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
