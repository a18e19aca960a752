//! Processes exec'd in a running container: Exec, and ExecSync (run to the end, output
//! collected).

use execdriver_proto as pb;
use execdriver_spec::protocol::{self, request, response, Target};
use tracing::info;

use super::Driver;
use crate::convert;
use crate::error::{Error, Result};
use crate::render::{exit_status, process_state, timestamp_ns};
use crate::shims;

impl Driver {
    /// Creates (and with `start`, starts) a process in a running container.
    pub async fn exec(&self, req: &pb::ExecRequest) -> Result<pb::ProcessState> {
        let spec = convert::exec_request(req)?;
        let exec_id = spec.exec_id.clone();
        let c = self.get(&req.id)?;
        let _op = c.op.lock().await;
        let kind = self.call_running(&c, request::Kind::Exec(spec)).await?;
        let response::Kind::State(st) = kind else {
            return Err(Error::Internal("unexpected reply from the shim".into()));
        };
        info!(id = %c.id, exec_id = %exec_id, pid = st.pid, "exec created");
        c.events.exec_added(&exec_id);
        if req.start {
            self.call_running(
                &c,
                request::Kind::Start(Target {
                    exec_id: exec_id.clone(),
                }),
            )
            .await?;
            let p = self.process_state(&c, &exec_id).await;
            let (pid, at) = p
                .as_ref()
                .map(|p| (p.pid, timestamp_ns(&p.started_at)))
                .unwrap_or((0, 0));
            c.events.exec_started(&exec_id, pid, at);
            return p;
        }
        Ok(process_state(&exec_id, &st))
    }

    /// Runs a process to its end (or its timeout) and returns what it wrote.
    pub async fn exec_sync(&self, req: &pb::ExecSyncRequest) -> Result<pb::ExecSyncResponse> {
        // Both streams together, so the reply stays within the message limit with room for
        // the rest of it.
        const LIMIT: usize = crate::server::MAX_MESSAGE - (64 << 10);
        let timeout = convert::timeout_seconds("timeout_seconds", req.timeout_seconds, 60, 3600)?;
        let mut process = req.process.clone();
        if let Some(p) = process.as_mut() {
            if p.tty || p.open_stdin {
                return Err(Error::invalid(
                    "process",
                    "ExecSync runs without a terminal or stdin",
                ));
            }
        }
        let exec_req = pb::ExecRequest {
            id: req.id.clone(),
            exec_id: String::new(),
            process,
            start: false,
        };
        let spec = convert::exec_request(&exec_req)?;
        let exec_id = spec.exec_id.clone();
        let c = self.get(&req.id)?;
        self.call_running(&c, request::Kind::Exec(spec)).await?;
        c.events.exec_added(&exec_id);
        let mut conn = self
            .attach(&pb::AttachStart {
                id: req.id.clone(),
                stdin: false,
                stdout: true,
                stderr: true,
                exec_id: exec_id.clone(),
            })
            .await?;
        self.call_running(
            &c,
            request::Kind::Start(Target {
                exec_id: exec_id.clone(),
            }),
        )
        .await?;
        match self.process_state(&c, &exec_id).await {
            Ok(p) => c
                .events
                .exec_started(&exec_id, p.pid, timestamp_ns(&p.started_at)),
            Err(_) => c.events.exec_started(&exec_id, 0, 0),
        }
        let mut out = pb::ExecSyncResponse::default();
        let deadline = tokio::time::Instant::now() + timeout;
        let exit = loop {
            let msg = match tokio::time::timeout_at(deadline, conn.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    out.timed_out = true;
                    let kill = protocol::Kill {
                        signal: libc::SIGKILL,
                        all: false,
                        exec_id: exec_id.clone(),
                    };
                    let _ = shims::call(&c.dir, request::Kind::Kill(kill)).await;
                    conn.recv().await
                }
            };
            match msg.map_err(Error::io("reading the exec's output"))? {
                Some(protocol::Response {
                    kind: Some(response::Kind::Output(o)),
                }) => {
                    let room = LIMIT.saturating_sub(out.stdout.len() + out.stderr.len());
                    let buf = if o.stream == protocol::Stream::Stderr as i32 {
                        &mut out.stderr
                    } else {
                        &mut out.stdout
                    };
                    if o.data.len() > room {
                        out.truncated = true;
                    }
                    buf.extend_from_slice(&o.data[..o.data.len().min(room)]);
                }
                Some(protocol::Response {
                    kind: Some(response::Kind::Exit(e)),
                }) => break exit_status(&e),
                Some(_) => {}
                None => break self.wait_on(&c, &exec_id).await?,
            }
        };
        out.exit = Some(exit);
        let _ = shims::call(&c.dir, request::Kind::Forget(Target { exec_id })).await;
        Ok(out)
    }
}
