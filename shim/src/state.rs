//! The state directory in the shim: its layout and records are the spec crate's
//! ([`execdriver_spec::state`], re-exported here); this module adds what needs the kernel:
//! finding and detaching mounts left below a state directory.

use std::fs;
use std::path::{Path, PathBuf};

pub use execdriver_spec::state::*;

/// The mount points in this process's mount table at or below `dir`, deepest first (octal
/// escapes in mountinfo decoded).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    out.dedup();
    out
}

/// Detaches every mount at or below `dir` (a state directory: the driver mounts nothing
/// there, so anything found is a leftover). Returns what was unmounted.
pub fn unmount_under(dir: &Path) -> Vec<PathBuf> {
    let mut done = Vec::new();
    for m in mounts_under(dir) {
        if nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH).is_ok() {
            done.push(m);
        }
    }
    done
}

/// Decodes mountinfo's `\NNN` octal escapes (space, tab, newline, backslash).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(
                (b[i + 1] - b'0').wrapping_mul(64) + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'),
            );
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
