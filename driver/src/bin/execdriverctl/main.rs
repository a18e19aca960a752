//! `execdriverctl`: a command-line client for execdriverd, one subcommand per RPC.
//!
//! This file connects and hands the parsed command line to `commands`. Beside it: `args` (the
//! command line); `request`, `resources` and `security` (flags to requests, with the daemon's
//! defaults where a flag starts from them); `commands` (one function per subcommand); `attach`
//! (streaming a container's stdio); `output` (what is printed); `terminal` (our terminal's
//! size and raw mode); `client` (the RPC client).

mod args;
mod attach;
mod client;
mod commands;
mod output;
mod request;
mod resources;
mod security;
mod terminal;

use std::process::ExitCode;

use clap::Parser;
use execdriver_driver::server::connect;
use execdriver_proto::exec_driver_client::ExecDriverClient;

use crate::args::Cli;

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

async fn run(cli: Cli) -> Result<ExitCode, String> {
    let channel = connect(&cli.socket)
        .await
        .map_err(|e| format!("connecting to {}: {}", cli.socket.display(), causes(&e)))?;
    // Up to what the daemon sends (ExecSync's output, big Info/List replies).
    let mut client = ExecDriverClient::new(channel)
        .max_decoding_message_size(execdriver_driver::server::MAX_MESSAGE)
        .max_encoding_message_size(execdriver_driver::server::MAX_MESSAGE);
    commands::run(&mut client, cli.cmd, cli.json).await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("execdriverctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // A read of our stdin may still be blocked in a runtime thread; do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("execdriverctl: {msg}");
            ExitCode::from(125)
        }
    }
}
