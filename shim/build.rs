// The git commit the binaries are built from, for `--version`: `EXECDRIVER_GIT_COMMIT` is
// `git rev-parse --short HEAD`, or "unknown" where there is no git or no repository (a source
// tarball). The driver's build.rs includes this file.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=EXECDRIVER_GIT_COMMIT={commit}");
    // Built again when HEAD moves: a checkout (HEAD) or a commit (the branch's ref).
    if let Some(path) = git(&["rev-parse", "--git-path", "HEAD"]) {
        if PathBuf::from(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &head_ref]) {
            if PathBuf::from(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
