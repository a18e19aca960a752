//! `execdriverctl`: a command-line client for execdriverd, one subcommand per RPC.
//!
//! This file connects (saying so when no daemon listens) and hands the parsed command line to
//! `commands`; it exits with the command's code or the failure's (see `client`). Beside it:
//! `args` (the command line, `execdriver_driver::cli::ctl`); `request`, `resources` and `security` (flags to requests, with
//! the daemon's defaults where a flag starts from them); `commands` (one function per
//! subcommand); `attach` (streaming a container's stdio); `output` (what is printed) and
//! `format` (--format templates); `terminal` (our terminal: -it's check, size, raw mode);
//! `client` (the RPC client, failures and their exit codes).

mod attach;
mod client;
mod commands;
mod format;
mod output;
mod request;
mod resources;
mod security;
mod terminal;

/// The command line's definitions live in the library (`execdriver_driver::cli`), where the man
/// pages and shell completions are generated from them too.
use execdriver_driver::cli::ctl as args;

/// The command line as parsed, for the tests of `request` and `security`.
#[cfg(test)]
mod parsed {
    use clap::Parser;

    use crate::args::{Cli, Cmd, CreateArgs};

    pub fn parse(args: &[&str]) -> Cmd {
        let argv = std::iter::once("execdriverctl").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().cmd
    }

    /// `create --rootfs /rootfs FLAGS... -- true` as parsed.
    pub fn create_args(flags: &[&str]) -> CreateArgs {
        let args: Vec<&str> = ["create", "--rootfs", "/rootfs"]
            .iter()
            .chain(flags)
            .chain(&["--", "true"])
            .copied()
            .collect();
        match parse(&args) {
            Cmd::Create(a) => a,
            other => panic!("{other:?}"),
        }
    }
}

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use execdriver_driver::server::connect;
use execdriver_proto::exec_driver_client::ExecDriverClient;

use crate::args::Cli;
use crate::client::{Failure, FAILED};

/// An error and its causes: "transport error: Permission denied (os error 13)".
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(&format!(": {part}"));
        }
        source = s.source();
    }
    text
}

/// Why we could not connect: with a hint when no daemon listens on the socket.
fn connect_failure(socket: &Path, e: &(dyn std::error::Error + 'static)) -> String {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return connect_io_failure(socket, io);
        }
        source = s.source();
    }
    format!("connecting to {}: {}", socket.display(), causes(e))
}

fn connect_io_failure(socket: &Path, io: &std::io::Error) -> String {
    use std::io::ErrorKind;
    // "No such file or directory (os error 2)": the words without the number.
    let text = io.to_string();
    let words = text.split(" (os error").next().unwrap_or(&text);
    match io.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => format!(
            "is execdriverd running? socket {}: {words}",
            socket.display()
        ),
        ErrorKind::PermissionDenied => format!(
            "socket {}: {words} (its owner, group and mode let in root and whom execdriverd's \
             --allow-uid, --allow-gid and --socket-mode admit)",
            socket.display()
        ),
        _ => format!("connecting to {}: {words}", socket.display()),
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    // What needs no daemon is refused before asking one.
    commands::check(&cli.cmd)?;
    let channel = connect(&cli.socket)
        .await
        .map_err(|e| connect_failure(&cli.socket, &e))?;
    // Up to what the daemon sends (ExecSync's output, big Info/List replies).
    let mut client = ExecDriverClient::new(channel)
        .max_decoding_message_size(execdriver_driver::server::MAX_MESSAGE)
        .max_encoding_message_size(execdriver_driver::server::MAX_MESSAGE);
    commands::run(&mut client, cli.cmd, cli.json).await
}

fn main() -> ExitCode {
    // Usage errors exit 2 (clap's); everything else below is ours.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("execdriverctl: {e}");
            return ExitCode::from(FAILED);
        }
    };
    let result = runtime.block_on(run(cli));
    // A read of our stdin may still be blocked in a runtime thread; do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("execdriverctl: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_daemon_is_named() {
        let sock = Path::new("/run/execdriverd.sock");
        let missing = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            connect_io_failure(sock, &missing),
            "is execdriverd running? socket /run/execdriverd.sock: No such file or directory"
        );
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert!(connect_io_failure(sock, &refused).starts_with("is execdriverd running?"));
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        assert!(connect_io_failure(sock, &denied).contains("--allow-gid"));
    }
}
