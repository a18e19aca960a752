//! A new time namespace for a container's init. CLONE_NEWTIME is no clone(2) flag, and a time
//! namespace applies to the children of the process that unshares it (`time_for_children`):
//! so the creating process (the shim, execdriver-runc) unshares it, writes the clock offsets
//! to /proc/self/timens_offsets while no process is in it yet, clones the init (born in it),
//! and then enters its own time namespace again, so that its later children (hooks, exec'd
//! processes before they join) are not in the container's. Its own clocks never change.
//! A time namespace joined by path is entered by the init like the others (`joined`).

use std::fs::File;
use std::io::Write;

use nix::sched::CloneFlags;

use crate::config::{Config, Field};
use crate::namespaces::{self, Namespace};

use super::sync::Error;

fn refuse(field: Field, reason: impl Into<String>) -> Error {
    Error::Namespace {
        field: field.json_path(),
        reason: reason.into(),
    }
}

/// The lines written to /proc/self/timens_offsets: `boottime 86400 0`.
pub fn offsets_text(config: &Config) -> String {
    config
        .time_offsets
        .iter()
        .map(|(clock, o)| format!("{clock} {} {}\n", o.secs, o.nanos))
        .collect()
}

/// Runs `clone` with a new time namespace for children (when the config makes one), then
/// comes back to ours in the parent.
pub fn around_clone<T>(
    config: &Config,
    clone: impl FnOnce() -> Result<nix::Result<T>, Error>,
    is_parent: impl Fn(&T) -> bool,
) -> Result<nix::Result<T>, Error> {
    let makes = config.has_namespace(Namespace::Time)
        && !config.namespace_paths.contains_key(&Namespace::Time);
    if !makes {
        return clone();
    }
    if !namespaces::available(Namespace::Time) {
        return Err(refuse(
            Field::Namespaces,
            "this kernel has no time namespaces (NEWTIME, Linux 5.6)",
        ));
    }
    let flag = namespaces::clone_flag(Namespace::Time);
    let ours = File::open("/proc/self/ns/time").map_err(Error::Join)?;
    nix::sched::unshare(flag).map_err(|e| refuse(Field::Namespaces, format!("NEWTIME: {e}")))?;
    let back = || nix::sched::setns(&ours, flag).map_err(|e| Error::Join(e.into()));
    let text = offsets_text(config);
    if !text.is_empty() {
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/timens_offsets")
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            back()?;
            let field = config
                .time_offsets
                .keys()
                .next()
                .map(|k| Field::TimeOffset(k.clone()))
                .unwrap_or(Field::Namespaces);
            return Err(refuse(field, format!("setting the clock offsets: {e}")));
        }
    }
    let forked = clone();
    let parent = match &forked {
        Ok(Ok(t)) => is_parent(t),
        _ => true,
    };
    if parent {
        // Failing to come back would put every later child of ours in the container's clocks.
        back()?;
    }
    forked
}

/// The time namespace is never a clone flag.
pub fn strip(flags: CloneFlags) -> CloneFlags {
    flags - namespaces::clone_flag(Namespace::Time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use execdriver_spec::config::TimeOffset;

    #[test]
    fn offsets_are_lines_per_clock() {
        let mut c = Config::default();
        c.time_offsets.insert(
            "boottime".into(),
            TimeOffset {
                secs: 86400,
                nanos: 5,
            },
        );
        c.time_offsets
            .insert("monotonic".into(), TimeOffset { secs: -3, nanos: 0 });
        assert_eq!(offsets_text(&c), "boottime 86400 5\nmonotonic -3 0\n");
    }

    #[test]
    fn never_a_clone_flag() {
        let all = namespaces::clone_flags(&namespaces::ALL);
        assert!(!strip(all).contains(namespaces::clone_flag(Namespace::Time)));
        assert!(strip(all).contains(CloneFlags::CLONE_NEWNS));
    }
}
