//! `nsinit`'s command line (clap): `nsinit [--root DIR] [--allow-missing-apparmor] exec CMD
//! [ARG...]`, the seed's, with `--help` and `--version`. The man page and the shell
//! completions are generated from it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `--version`: the version and the git commit built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("EXECDRIVER_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "nsinit",
    version = VERSION,
    about = "Run the container.json of the current directory in the foreground (the seed's CLI)"
)]
pub struct Cli {
    /// Read container.json from DIR and keep the pid file there (default: the current
    /// directory; the rootfs is still the current directory unless container.json names one).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Run a container that asks for an AppArmor profile on a kernel without AppArmor,
    /// unconfined (with a warning); without it such a container is refused.
    #[arg(long)]
    pub allow_missing_apparmor: bool,
    #[command(subcommand)]
    pub command: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Start the container in the foreground and run CMD as its init, or, while the container
    /// of the pid file lives, run CMD in it (joining its namespaces and cgroups).
    Exec {
        /// The command and its arguments ("--" before it is optional).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
}
