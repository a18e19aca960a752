//! Exec into a live container, ExecSync, Stop, Kill of all processes, the init reaper, what
//! happens when PID 1 dies, and the seed's nsinit CLI.
//!
//! This file holds what the topics share: exec requests, an exec that collects its output, and
//! the state call. The tests are in `exec_process` (Exec and ExecSync), `stop_kill` (Stop,
//! Kill of all processes, the reaper, the death of PID 1) and `nsinit` (the seed's CLI).

use execdriver_tests::{attach_collect_exec, pb, unique, Client};

mod exec_process;
mod nsinit;
mod stop_kill;

fn exec_req(id: &str, args: &[&str]) -> pb::ExecRequest {
    pb::ExecRequest {
        id: id.to_owned(),
        exec_id: unique("e"),
        process: Some(pb::Process {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        start: false,
    }
}

/// Execs `args` in container `id` and collects what it prints until it ends.
async fn exec_collect(c: &mut Client, id: &str, args: &[&str]) -> execdriver_tests::Output {
    let req = exec_req(id, args);
    let exec_id = req.exec_id.clone();
    let p = c
        .exec(req)
        .await
        .expect("exec")
        .into_inner()
        .process
        .unwrap();
    assert_eq!(p.status, pb::Status::Created as i32);
    attach_collect_exec(c, id, &exec_id, None, true).await
}

async fn state(c: &mut Client, id: &str) -> pb::ContainerState {
    c.state(pb::StateRequest {
        id: id.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .container
    .unwrap()
}
