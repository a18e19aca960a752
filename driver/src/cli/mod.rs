//! The command lines of `execdriverd` (`daemon`) and `execdriverctl` (`ctl`): clap's
//! definitions, shared by the binaries and by `docgen` (man pages, shell completions).

pub mod ctl;
pub mod daemon;

/// `--version` of both: the version and the git commit built from (`build.rs`; "unknown"
/// outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("EXECDRIVER_GIT_COMMIT"),
    ")"
);
