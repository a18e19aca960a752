//! The container subcommands: create, run, start, state, list, wait, kill, stop, delete,
//! pause, resume, update. kill, stop and delete take several ids: each is reported, and the
//! exit is non-zero when any failed.

use std::io::Write;
use std::process::ExitCode;

use execdriver_driver::driver::status_name;
use execdriver_proto as pb;

use crate::args::{CreateArgs, LimitArgs, RunArgs};
use crate::attach::{attach_and_stream, attach_json, proxy_signals};
use crate::client::{st, Client, Failure, FAILED};
use crate::format::Format;
use crate::output::{
    describe_exit, exit_code, print_json, print_state, resources_json, rfc3339, ProcessJson,
    StateJson,
};
use crate::request::{create_request, key_values, parse_signal};
use crate::resources::{check_cpus, resources};
use crate::security::{check_capabilities, needs_defaults, Defaults};

/// Prints a container as its id, or with --json all of its state.
fn print_container(json: bool, c: &pb::ContainerState) {
    if json {
        print_json(&StateJson::from(c));
    } else {
        println!("{}", c.id);
    }
}

/// The daemon's Info as what flags start from or are checked against.
async fn defaults(client: &mut Client) -> Result<Defaults, Failure> {
    let info = st(client.info(pb::InfoRequest {}).await)
        .map_err(|e| e.context("asking the daemon for its defaults (Info)"))?;
    Ok(Defaults::from(info))
}

/// The request of create/run, with the daemon's defaults (its Info) asked for only when a
/// flag starts from them or is checked against the host (--cpus).
async fn request(client: &mut Client, a: &CreateArgs) -> Result<pb::CreateRequest, Failure> {
    check_capabilities(&a.security, &a.cap_drop)?;
    let defaults = if needs_defaults(a) {
        let d = defaults(client).await?;
        check_cpus(&a.limits, d.cpus)?;
        Some(d)
    } else {
        None
    };
    Ok(create_request(a, defaults.as_ref())?)
}

pub async fn create(client: &mut Client, json: bool, a: CreateArgs) -> Result<ExitCode, Failure> {
    let req = request(client, &a).await?;
    let resp: pb::CreateResponse = st(client.create(req).await)?;
    print_container(json, &resp.container.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

/// Create and start; without -d, show the output (attached before the start) and exit with
/// the container's code.
pub async fn run(client: &mut Client, json: bool, a: RunArgs) -> Result<ExitCode, Failure> {
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
    let deleted = if a.rm {
        let r = st(client
            .delete(pb::DeleteRequest {
                id: id.clone(),
                force: true,
            })
            .await);
        if let Ok(resp) = &r {
            warn_leftovers(&id, &resp.leftovers);
        }
        Some(r.map(|_| ()))
    } else {
        None
    };
    let exit = rm_outcome(&id, result, deleted)?;
    if json && !as_json {
        print_json(
            &serde_json::json!({"id": id, "exit_code": exit.exit_code, "signal": exit.signal, "status_code": exit.status_code}),
        );
    }
    Ok(exit_code(&exit))
}

/// What `run --rm` ends with: the container's exit, unless it or the delete failed. A delete
/// that fails is said, never swallowed (the container is left behind), and is a failure even
/// when the container succeeded.
fn rm_outcome(
    id: &str,
    result: Result<pb::ExitStatus, Failure>,
    deleted: Option<Result<(), Failure>>,
) -> Result<pb::ExitStatus, Failure> {
    let Some(Err(e)) = deleted else {
        return result;
    };
    let e = e.context(format!(
        "--rm: deleting {id} failed, it is left behind (`execdriverctl delete -f {id}`)"
    ));
    match result {
        // Both said; the exit code is the first failure's.
        Err(first) => {
            eprintln!("execdriverctl: {e}");
            Err(first)
        }
        Ok(_) => Err(Failure::new(e.message)),
    }
}

pub async fn start(
    client: &mut Client,
    json: bool,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, Failure> {
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
    format: Option<Format>,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, Failure> {
    let exec_id = exec_id.unwrap_or_default();
    let resp: pb::StateResponse = st(client.state(pb::StateRequest { id, exec_id }).await)?;
    let value = match &resp.process {
        Some(p) => serde_json::to_value(ProcessJson::from(p)),
        None => serde_json::to_value(StateJson::from(&resp.container.clone().unwrap_or_default())),
    }
    .map_err(|e| e.to_string())?;
    match (&resp.process, format) {
        (_, Some(f)) => println!("{}", f.render(&value)?),
        (Some(p), None) => {
            let j = ProcessJson::from(p);
            println!("Exec:     {}", j.exec_id);
            println!("Status:   {}", j.status);
            println!("Pid:      {}", j.pid);
            if let Some(e) = &p.exit {
                println!("Exit:     {}", describe_exit(e));
            }
        }
        (None, None) => print_state(&resp.container.unwrap_or_default()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists containers: a table, the ids alone (-q), or each through --format (json: an array).
pub async fn list(
    client: &mut Client,
    format: Option<Format>,
    quiet: bool,
    labels: Vec<String>,
) -> Result<ExitCode, Failure> {
    let label_filter = key_values("--label", &labels)?.into_iter().collect();
    let resp: pb::ListResponse = st(client.list(pb::ListRequest { label_filter }).await)?;
    // One buffer for all the lines (10,000 containers: one write, not one per line); a reader
    // that goes away early (`| head`) ends the output, not the command.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    // The table and -q straight from the reply: at 10,000 containers a JSON copy of each was
    // half the command's time (its allocations' page faults).
    if quiet {
        for c in &resp.containers {
            let _ = writeln!(out, "{}", c.id);
        }
        let _ = out.flush();
        return Ok(ExitCode::SUCCESS);
    }
    let json = || resp.containers.iter().map(StateJson::from);
    match format {
        Some(Format::Json) => {
            let states: Vec<StateJson> = json().collect();
            let text = serde_json::to_string_pretty(&states).unwrap_or_default();
            let _ = writeln!(out, "{text}");
        }
        Some(f) => {
            // Every line made before any is printed: a bad field prints nothing.
            let lines = json()
                .map(|s| f.render(&serde_json::to_value(&s).unwrap_or_default()))
                .collect::<Result<Vec<_>, _>>()?;
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
        None => {
            let _ = writeln!(out, "{:<24} {:<9} {:>8}  CREATED", "ID", "STATUS", "PID");
            for c in &resp.containers {
                let _ = writeln!(
                    out,
                    "{:<24} {:<9} {:>8}  {}",
                    c.id,
                    status_name(c.status),
                    c.pid,
                    rfc3339(&c.created_at).unwrap_or_default()
                );
            }
        }
    }
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

pub async fn wait(
    client: &mut Client,
    json: bool,
    exec_id: Option<String>,
    id: String,
) -> Result<ExitCode, Failure> {
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

/// Reports what one id of several came to: a failure on stderr (naming the id unless the
/// message does), counted in `failed`.
fn report<T>(id: &str, r: Result<T, Failure>, failed: &mut usize) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            if e.message.contains(id) {
                eprintln!("execdriverctl: {e}");
            } else {
                eprintln!("execdriverctl: {id}: {e}");
            }
            *failed += 1;
            None
        }
    }
}

/// The end of a command over several ids: with --json the objects of those that worked (one
/// id: the object, several: an array), and a non-zero exit if any failed.
fn finish(
    json: bool,
    ids: usize,
    objects: Vec<serde_json::Value>,
    failed: usize,
) -> Result<ExitCode, Failure> {
    if json {
        match (ids, objects.first()) {
            (1, Some(o)) => print_json(o),
            (1, None) => {}
            _ => print_json(&objects),
        }
    }
    if failed > 0 {
        return Err(Failure::said(FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn kill(
    client: &mut Client,
    json: bool,
    signal: String,
    all: bool,
    exec_id: Option<String>,
    ids: Vec<String>,
) -> Result<ExitCode, Failure> {
    let signal = parse_signal(&signal)?;
    let exec_id = exec_id.unwrap_or_default();
    let (mut objects, mut failed) = (Vec::new(), 0);
    for id in &ids {
        let r = st(client
            .kill(pb::KillRequest {
                id: id.clone(),
                signal,
                all,
                exec_id: exec_id.clone(),
            })
            .await);
        if report(id, r, &mut failed).is_some() {
            if json {
                objects.push(serde_json::json!({"id": id, "exec_id": exec_id, "signal": signal}));
            } else {
                println!("{id}");
            }
        }
    }
    finish(json, ids.len(), objects, failed)
}

pub async fn stop(
    client: &mut Client,
    json: bool,
    signal: String,
    time: u32,
    ids: Vec<String>,
) -> Result<ExitCode, Failure> {
    let signal = parse_signal(&signal)?;
    let (mut objects, mut failed) = (Vec::new(), 0);
    for id in &ids {
        let req = pb::StopRequest {
            id: id.clone(),
            signal,
            timeout_seconds: time,
        };
        let Some(resp) = report(id, st(client.stop(req).await), &mut failed) else {
            continue;
        };
        let e = resp.exit.unwrap_or_default();
        if json {
            objects.push(serde_json::json!({"id": id, "exit_code": e.exit_code,
                "signal": e.signal, "status_code": e.status_code, "killed": resp.killed}));
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
    }
    finish(json, ids.len(), objects, failed)
}

pub async fn delete(
    client: &mut Client,
    json: bool,
    force: bool,
    ids: Vec<String>,
) -> Result<ExitCode, Failure> {
    let (mut objects, mut failed) = (Vec::new(), 0);
    for id in &ids {
        let r = st(client
            .delete(pb::DeleteRequest {
                id: id.clone(),
                force,
            })
            .await);
        let Some(resp) = report(id, r, &mut failed) else {
            continue;
        };
        warn_leftovers(id, &resp.leftovers);
        if json {
            let e = resp.exit.unwrap_or_default();
            objects.push(serde_json::json!({"id": id, "exit_code": e.exit_code,
                "signal": e.signal, "leftovers": resp.leftovers}));
        } else {
            println!("{id}");
        }
    }
    finish(json, ids.len(), objects, failed)
}

/// What a delete could not remove from the host, on stderr: the container is gone, these
/// are retried by the daemon.
fn warn_leftovers(id: &str, leftovers: &[String]) {
    for l in leftovers {
        eprintln!("execdriverctl: warning: {id} is deleted but {l} is left; the daemon retries");
    }
}

pub async fn pause(client: &mut Client, json: bool, id: String) -> Result<ExitCode, Failure> {
    let resp: pb::PauseResponse = st(client.pause(pb::PauseRequest { id }).await)?;
    print_container(json, &resp.container.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

pub async fn resume(client: &mut Client, json: bool, id: String) -> Result<ExitCode, Failure> {
    let resp: pb::ResumeResponse = st(client.resume(pb::ResumeRequest { id }).await)?;
    print_container(json, &resp.container.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

pub async fn update(
    client: &mut Client,
    json: bool,
    limits: LimitArgs,
    id: String,
) -> Result<ExitCode, Failure> {
    if limits.cpus.is_some() {
        check_cpus(&limits, defaults(client).await?.cpus)?;
    }
    let r = resources(&limits)?;
    let resp: pb::UpdateResponse = st(client
        .update(pb::UpdateRequest {
            id: id.clone(),
            resources: Some(r),
        })
        .await)
    .map_err(|e| swap_hint(&limits, e))?;
    if json {
        print_json(&resources_json(&resp.resources.unwrap_or_default()));
    } else {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A --memory above the memory+swap limit set before: Docker's advice with the daemon's words.
fn swap_hint(limits: &LimitArgs, e: Failure) -> Failure {
    if limits.memory.is_some()
        && limits.memory_swap.is_none()
        && e.message.contains("resources.memory_swap")
    {
        let message = format!(
            "{}; the memory limit must stay within the memory+swap limit set before: give \
             --memory-swap with --memory",
            e.message
        );
        return Failure { message, ..e };
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_above_the_swap_limit_asks_for_memory_swap() {
        let said = || Failure::new("resources.memory_swap: 536870912 is below memory (1073741824)");
        let memory = LimitArgs {
            memory: Some("1g".into()),
            ..Default::default()
        };
        let f = swap_hint(&memory, said());
        assert!(
            f.message.ends_with("give --memory-swap with --memory"),
            "{}",
            f.message
        );
        assert_eq!(f.code, FAILED);
        let both = LimitArgs {
            memory_swap: Some("2g".into()),
            ..memory
        };
        assert_eq!(swap_hint(&both, said()), said());
        assert_eq!(swap_hint(&LimitArgs::default(), said()), said());
    }

    #[test]
    fn run_rm_whose_delete_fails_fails() {
        let exit = |code| pb::ExitStatus {
            exit_code: Some(code),
            status_code: code,
            ..Default::default()
        };
        // No --rm, or a delete that worked: the container's exit.
        assert_eq!(rm_outcome("c", Ok(exit(3)), None), Ok(exit(3)));
        assert_eq!(rm_outcome("c", Ok(exit(0)), Some(Ok(()))), Ok(exit(0)));
        // The delete failed: never 0, and it says why.
        let f = rm_outcome("c", Ok(exit(0)), Some(Err(Failure::new("unavailable")))).unwrap_err();
        assert_eq!(f.code, FAILED);
        assert!(
            f.message.starts_with("--rm: deleting c failed"),
            "{}",
            f.message
        );
        assert!(f.message.ends_with(": unavailable"), "{}", f.message);
        // Both failed: the first failure's code (a command not found stays 127).
        let first = Failure {
            message: "exec: \"x\": executable file not found in $PATH".into(),
            code: crate::client::NOT_FOUND,
        };
        let f = rm_outcome("c", Err(first), Some(Err(Failure::new("gone")))).unwrap_err();
        assert_eq!(f.code, 127);
    }
}
