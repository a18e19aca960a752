//! What the documentation is generated from, so it cannot drift from the code: the man pages
//! and shell completions of every binary (from their clap definitions), and the gRPC API's
//! reference (from the proto's comments). `execdriver-docgen` writes them; `scripts/docs.sh`
//! and `scripts/install.sh` run it.

mod api;

use std::io;
use std::path::Path;

use clap::CommandFactory;

pub use api::api_reference;

/// The clap definitions of the four binaries a user runs: `execdriverd`, `execdriverctl`,
/// `execdriver-runc` and `nsinit` (the shim is started by the daemon, never by hand).
pub fn commands() -> Vec<clap::Command> {
    vec![
        crate::cli::daemon::Args::command(),
        crate::cli::ctl::Cli::command(),
        execdriver_shim::runtime::Cli::command(),
        execdriver_shim::nsinit::Cli::command(),
    ]
}

/// Writes `NAME.1` for every binary, and `NAME-SUBCOMMAND.1` for each of its subcommands, into
/// `dir` (made if missing).
pub fn man_pages(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for cmd in commands() {
        clap_mangen::generate_to(cmd, dir)?;
    }
    Ok(())
}

/// Writes the completions of every binary into `dir`: `bash/NAME`, `zsh/_NAME` and
/// `fish/NAME.fish`, the names those shells look for in their completion directories.
pub fn completions(dir: &Path) -> io::Result<()> {
    use clap_complete::Shell;
    for (shell, sub) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let out = dir.join(sub);
        std::fs::create_dir_all(&out)?;
        for mut cmd in commands() {
            let name = cmd.get_name().to_owned();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, &name, &mut text);
            let file = match shell {
                Shell::Zsh => format!("_{name}"),
                Shell::Fish => format!("{name}.fish"),
                _ => name,
            };
            std::fs::write(out.join(file), text)?;
        }
    }
    Ok(())
}

/// Every long flag (`--name`) of `cmd` and of its subcommands, sorted, without `--help` and
/// `--version` (clap's own).
pub fn long_flags(cmd: &clap::Command) -> Vec<String> {
    let mut flags = Vec::new();
    collect_flags(cmd, &mut flags);
    flags.sort();
    flags.dedup();
    flags
}

fn collect_flags(cmd: &clap::Command, flags: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            if long != "help" && long != "version" {
                flags.push(format!("--{long}"));
            }
        }
    }
    for sub in cmd.get_subcommands() {
        collect_flags(sub, flags);
    }
}
