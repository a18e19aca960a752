//! One function per subcommand, each sending its request(s) and printing the reply; `run`
//! picks the one the command line names, after `check` refused what cannot work without
//! asking the daemon. Grouped by what they act on: `containers` (their life cycle and
//! limits), `processes` (exec'd processes and stdio) and `observe` (Info, logs, stats, pids,
//! events).

mod containers;
mod observe;
mod processes;

use std::process::ExitCode;

use crate::args::Cmd;
use crate::client::{Client, Failure};
use crate::format::Format;
use crate::terminal::check_tty_input;

/// What is refused before the daemon is asked: -it without a terminal (Docker's words), a
/// --format that does not parse.
pub fn check(cmd: &Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::Run(a) if !a.detach => check_tty_input(a.create.interactive, a.create.tty)?,
        Cmd::Exec(a) if !a.detach => check_tty_input(a.interactive, a.tty)?,
        Cmd::Attach {
            interactive, tty, ..
        } => check_tty_input(*interactive, *tty)?,
        Cmd::List {
            format: Some(f), ..
        }
        | Cmd::State {
            format: Some(f), ..
        } => {
            Format::parse(f)?;
        }
        _ => {}
    }
    Ok(())
}

/// A --format (`json` when --json), if either was given.
fn format_of(format: Option<String>, json: bool) -> Result<Option<Format>, Failure> {
    match format {
        Some(f) => Ok(Some(Format::parse(&f)?)),
        None if json => Ok(Some(Format::Json)),
        None => Ok(None),
    }
}

/// Runs one subcommand; the exit code is the container's or process's where it has one.
pub async fn run(client: &mut Client, cmd: Cmd, json: bool) -> Result<ExitCode, Failure> {
    match cmd {
        Cmd::Info => observe::info(client, json).await,
        Cmd::Run(a) => containers::run(client, json, a).await,
        Cmd::Create(a) => containers::create(client, json, a).await,
        Cmd::Start { exec_id, id } => containers::start(client, json, exec_id, id).await,
        Cmd::State {
            exec_id,
            format,
            id,
        } => containers::state(client, format_of(format, json)?, exec_id, id).await,
        Cmd::List {
            labels,
            quiet,
            format,
        } => containers::list(client, format_of(format, json)?, quiet, labels).await,
        Cmd::Wait { exec_id, id } => containers::wait(client, json, exec_id, id).await,
        Cmd::Kill {
            signal,
            all,
            exec_id,
            ids,
        } => containers::kill(client, json, signal, all, exec_id, ids).await,
        Cmd::Stop { signal, time, ids } => containers::stop(client, json, signal, time, ids).await,
        Cmd::Exec(a) => processes::exec(client, json, a).await,
        Cmd::Delete { force, ids } => containers::delete(client, json, force, ids).await,
        Cmd::Attach {
            interactive,
            tty,
            exec_id,
            id,
        } => processes::attach(client, json, interactive, tty, exec_id, id).await,
        Cmd::Logs {
            follow,
            since,
            tail,
            exec_id,
            id,
        } => {
            let tail = crate::request::parse_tail(&tail)?;
            observe::logs(client, json, follow, since, tail, exec_id, id).await
        }
        Cmd::Pause { id } => containers::pause(client, json, id).await,
        Cmd::Resume { id } => containers::resume(client, json, id).await,
        Cmd::Stats {
            stream,
            interval,
            id,
        } => observe::stats(client, json, stream, interval, id).await,
        Cmd::Update { limits, id } => containers::update(client, json, limits, id).await,
        Cmd::Pids { id } => observe::pids(client, json, id).await,
        Cmd::Events { ids, types, since } => observe::events(client, json, ids, types, since).await,
        Cmd::ExecSync {
            timeout,
            env,
            user,
            cwd,
            id,
            command,
        } => {
            let req = crate::request::exec_sync_request(timeout, env, user, cwd, id, command);
            processes::exec_sync(client, json, req).await
        }
        Cmd::Resize {
            rows,
            cols,
            exec_id,
            id,
        } => processes::resize(client, json, rows, cols, exec_id, id).await,
        Cmd::CloseStdin { exec_id, id } => processes::close_stdin(client, json, exec_id, id).await,
        Cmd::ReopenLog { id } => observe::reopen_log(client, json, id).await,
    }
}
