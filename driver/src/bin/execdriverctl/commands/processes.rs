//! The process and stdio subcommands: exec, exec-sync, attach, resize, close-stdin.

use std::process::ExitCode;

use execdriver_proto as pb;

use crate::args::ExecArgs;
use crate::attach::{attach_and_stream, attach_json};
use crate::client::{st, Client, Failure, TIMED_OUT};
use crate::output::{exit_code, print_json, ProcessJson, RawOut};
use crate::request::exec_request;

/// Exec and, unless detached, attach and start it; exits with its code.
pub async fn exec(client: &mut Client, json: bool, a: ExecArgs) -> Result<ExitCode, Failure> {
    let req = exec_request(&a);
    let resp: pb::ExecResponse = st(client.exec(req).await)?;
    let p = resp.process.unwrap_or_default();
    if a.detach {
        if json {
            print_json(&ProcessJson::from(&p));
        } else {
            println!("{}", p.exec_id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let exit = if json {
        attach_json(client, &a.id, &p.exec_id, true).await?
    } else {
        attach_and_stream(client, &a.id, &p.exec_id, a.interactive, a.tty, true).await?
    };
    Ok(exit_code(&exit))
}

/// Runs a process to its end and prints what it wrote; exits with its code.
pub async fn exec_sync(
    client: &mut Client,
    json: bool,
    req: pb::ExecSyncRequest,
) -> Result<ExitCode, Failure> {
    let timeout = req.timeout_seconds;
    let resp: pb::ExecSyncResponse = st(client.exec_sync(req).await)?;
    let e = resp.exit.clone().unwrap_or_default();
    if json {
        print_json(&serde_json::json!({
            "stdout": String::from_utf8_lossy(&resp.stdout),
            "stderr": String::from_utf8_lossy(&resp.stderr),
            "exit_code": e.exit_code, "signal": e.signal, "status_code": e.status_code,
            "timed_out": resp.timed_out, "truncated": resp.truncated,
        }));
    } else {
        let _ = RawOut::stdout().write_all(&resp.stdout);
        let _ = RawOut::stderr().write_all(&resp.stderr);
    }
    if resp.timed_out {
        let after = match timeout {
            0 => "the daemon's default timeout (60 s)".to_owned(),
            t => format!("--timeout {t} s"),
        };
        return Err(Failure {
            message: format!("exec-sync: timed out after {after}; the command was killed"),
            code: TIMED_OUT,
        });
    }
    Ok(exit_code(&e))
}

pub async fn attach(
    client: &mut Client,
    json: bool,
    interactive: bool,
    tty: bool,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, Failure> {
    let exec_id = exec_id.unwrap_or_default();
    let exit = if json {
        attach_json(client, &id, &exec_id, false).await?
    } else {
        attach_and_stream(client, &id, &exec_id, interactive, tty, false).await?
    };
    Ok(exit_code(&exit))
}

pub async fn resize(
    client: &mut Client,
    json: bool,
    rows: u32,
    cols: u32,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, Failure> {
    let exec_id = exec_id.unwrap_or_default();
    st(client
        .resize_pty(pb::ResizePtyRequest {
            id: id.clone(),
            size: Some(pb::ConsoleSize { rows, cols }),
            exec_id: exec_id.clone(),
        })
        .await)?;
    if json {
        print_json(&serde_json::json!({"id": id, "exec_id": exec_id, "rows": rows, "cols": cols}));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn close_stdin(
    client: &mut Client,
    json: bool,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, Failure> {
    let exec_id = exec_id.unwrap_or_default();
    st(client
        .close_stdin(pb::CloseStdinRequest {
            id: id.clone(),
            exec_id: exec_id.clone(),
        })
        .await)?;
    if json {
        print_json(&serde_json::json!({"id": id, "exec_id": exec_id}));
    }
    Ok(ExitCode::SUCCESS)
}
