//! The container subcommands: create, run, start, state, list, wait, kill, stop, delete,
//! pause, resume, update.

use std::process::ExitCode;

use execdriver_proto as pb;

use crate::args::{CreateArgs, LimitArgs, RunArgs};
use crate::attach::{attach_and_stream, attach_json, proxy_signals};
use crate::client::{st, Client};
use crate::output::{
    describe_exit, exit_code, print_json, print_state, resources_json, ProcessJson, StateJson,
};
use crate::request::{create_request, key_values, parse_signal};
use crate::resources::resources;
use crate::security::{needs_defaults, Defaults};

/// Prints a container as its id, or with --json all of its state.
fn print_container(json: bool, c: &pb::ContainerState) {
    if json {
        print_json(&StateJson::from(c));
    } else {
        println!("{}", c.id);
    }
}

/// The request of create/run, with the daemon's defaults (its Info) asked for only when a
/// flag starts from them.
async fn request(client: &mut Client, a: &CreateArgs) -> Result<pb::CreateRequest, String> {
    let defaults = if needs_defaults(a) {
        let info = st(client.info(pb::InfoRequest {}).await)
            .map_err(|e| format!("asking the daemon for its defaults (Info): {e}"))?;
        Some(Defaults::from(info))
    } else {
        None
    };
    create_request(a, defaults.as_ref())
}

pub async fn create(client: &mut Client, json: bool, a: CreateArgs) -> Result<ExitCode, String> {
    let req = request(client, &a).await?;
    let resp: pb::CreateResponse = st(client.create(req).await)?;
    print_container(json, &resp.container.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

/// Create and start; without -d, show the output (attached before the start) and exit with
/// the container's code.
pub async fn run(client: &mut Client, json: bool, a: RunArgs) -> Result<ExitCode, String> {
    let req = request(client, &a.create).await?;
    let id = req.id.clone();
    if a.detach {
        let resp: pb::CreateResponse = st(client.run(req).await)?;
        print_container(json, &resp.container.unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    st(client.create(req).await)?;
    if !a.create.tty {
        proxy_signals(client.clone(), id.clone());
    }
    // --json without a terminal or stdin: the output as JSON lines, as `attach --json`.
    let as_json = json && !a.create.tty && !a.create.interactive;
    let result = if as_json {
        attach_json(client, &id, "", true).await
    } else {
        attach_and_stream(client, &id, "", a.create.interactive, a.create.tty, true).await
    };
    if a.rm {
        // A delete that fails is said, not swallowed: the container would be left behind.
        let resp: pb::DeleteResponse = st(client
            .delete(pb::DeleteRequest {
                id: id.clone(),
                force: true,
            })
            .await)
        .map_err(|e| format!("--rm: deleting {id}: {e}"))?;
        warn_leftovers(&id, &resp.leftovers);
    }
    let exit = result?;
    if json && !as_json {
        print_json(
            &serde_json::json!({"id": id, "exit_code": exit.exit_code, "signal": exit.signal, "status_code": exit.status_code}),
        );
    }
    Ok(exit_code(&exit))
}

pub async fn start(
    client: &mut Client,
    json: bool,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, String> {
    let exec_id = exec_id.unwrap_or_default();
    let resp: pb::StartResponse = st(client.start(pb::StartRequest { id, exec_id }).await)?;
    if json {
        match &resp.process {
            Some(p) => print_json(&ProcessJson::from(p)),
            None => print_json(&StateJson::from(&resp.container.unwrap_or_default())),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn state(
    client: &mut Client,
    json: bool,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, String> {
    let exec_id = exec_id.unwrap_or_default();
    let resp: pb::StateResponse = st(client.state(pb::StateRequest { id, exec_id }).await)?;
    match (&resp.process, json) {
        (Some(p), true) => print_json(&ProcessJson::from(p)),
        (Some(p), false) => {
            let j = ProcessJson::from(p);
            println!("Exec:     {}", j.exec_id);
            println!("Status:   {}", j.status);
            println!("Pid:      {}", j.pid);
            if let Some(e) = &p.exit {
                println!("Exit:     {}", describe_exit(e));
            }
        }
        (None, true) => print_json(&StateJson::from(&resp.container.unwrap_or_default())),
        (None, false) => print_state(&resp.container.unwrap_or_default()),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(
    client: &mut Client,
    json: bool,
    labels: Vec<String>,
) -> Result<ExitCode, String> {
    let label_filter = key_values("--label", &labels)?.into_iter().collect();
    let resp: pb::ListResponse = st(client.list(pb::ListRequest { label_filter }).await)?;
    if json {
        print_json(
            &resp
                .containers
                .iter()
                .map(StateJson::from)
                .collect::<Vec<_>>(),
        );
    } else {
        println!("{:<24} {:<9} {:>8}  CREATED", "ID", "STATUS", "PID");
        for c in &resp.containers {
            let j = StateJson::from(c);
            println!(
                "{:<24} {:<9} {:>8}  {}",
                j.id,
                j.status,
                j.pid,
                j.created_at.unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn wait(
    client: &mut Client,
    json: bool,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, String> {
    let exec_id = exec_id.unwrap_or_default();
    let resp: pb::WaitResponse = st(client.wait(pb::WaitRequest { id, exec_id }).await)?;
    let e = resp.exit.unwrap_or_default();
    if json {
        print_json(
            &serde_json::json!({"exit_code": e.exit_code, "signal": e.signal, "oom_killed": e.oom_killed, "status_code": e.status_code, "reason": e.reason}),
        );
    } else {
        println!("{}", e.status_code);
    }
    Ok(exit_code(&e))
}

pub async fn kill(
    client: &mut Client,
    json: bool,
    signal: String,
    all: bool,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, String> {
    let signal = parse_signal(&signal)?;
    let exec_id = exec_id.unwrap_or_default();
    st(client
        .kill(pb::KillRequest {
            id: id.clone(),
            signal,
            all,
            exec_id: exec_id.clone(),
        })
        .await)?;
    if json {
        print_json(&serde_json::json!({"id": id, "exec_id": exec_id, "signal": signal}));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn stop(
    client: &mut Client,
    json: bool,
    signal: String,
    time: u32,
    id: String,
) -> Result<ExitCode, String> {
    let signal = parse_signal(&signal)?;
    let req = pb::StopRequest {
        id: id.clone(),
        signal,
        timeout_seconds: time,
    };
    let resp: pb::StopResponse = st(client.stop(req).await)?;
    let e = resp.exit.unwrap_or_default();
    if json {
        print_json(
            &serde_json::json!({"id": id, "exit_code": e.exit_code, "signal": e.signal,
            "status_code": e.status_code, "killed": resp.killed}),
        );
    } else {
        println!(
            "{id}: {}{}",
            describe_exit(&e),
            if resp.killed {
                " (SIGKILL after the grace period)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(
    client: &mut Client,
    json: bool,
    force: bool,
    id: String,
) -> Result<ExitCode, String> {
    let resp: pb::DeleteResponse = st(client
        .delete(pb::DeleteRequest {
            id: id.clone(),
            force,
        })
        .await)?;
    warn_leftovers(&id, &resp.leftovers);
    if json {
        let e = resp.exit.unwrap_or_default();
        print_json(
            &serde_json::json!({"id": id, "exit_code": e.exit_code, "signal": e.signal, "leftovers": resp.leftovers}),
        );
    } else {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What a delete could not remove from the host, on stderr: the container is gone, these
/// are retried by the daemon.
fn warn_leftovers(id: &str, leftovers: &[String]) {
    for l in leftovers {
        eprintln!("execdriverctl: warning: {id} is deleted but {l} is left; the daemon retries");
    }
}

pub async fn pause(client: &mut Client, json: bool, id: String) -> Result<ExitCode, String> {
    let resp: pb::PauseResponse = st(client.pause(pb::PauseRequest { id }).await)?;
    print_container(json, &resp.container.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

pub async fn resume(client: &mut Client, json: bool, id: String) -> Result<ExitCode, String> {
    let resp: pb::ResumeResponse = st(client.resume(pb::ResumeRequest { id }).await)?;
    print_container(json, &resp.container.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

pub async fn update(
    client: &mut Client,
    json: bool,
    limits: LimitArgs,
    id: String,
) -> Result<ExitCode, String> {
    let r = resources(&limits)?;
    let resp: pb::UpdateResponse = st(client
        .update(pb::UpdateRequest {
            id: id.clone(),
            resources: Some(r),
        })
        .await)?;
    if json {
        print_json(&resources_json(&resp.resources.unwrap_or_default()));
    } else {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}
