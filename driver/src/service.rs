//! The gRPC service: thin. Each call hands its request to [`Driver`] and its error to
//! `From<Error> for Status`.

use std::pin::Pin;
use std::sync::Arc;

use execdriver_proto as pb;
use execdriver_proto::exec_driver_server::ExecDriver;
use execdriver_shim::cgroups::Layout;
use execdriver_shim::namespaces;
use execdriver_shim::protocol::{request, response, Response};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response as TonicResponse, Status, Streaming};
use tracing::{debug, instrument};

use crate::driver::{exit_status, Driver};
use crate::error::Error;

pub struct Service {
    pub driver: Arc<Driver>,
}

type Reply<T> = Result<TonicResponse<T>, Status>;

/// Runs `op` in a task of its own and waits for it: a client that hangs up (or whose deadline
/// passes) mid-call does not cut a Create or Delete in half; it completes (or rolls back) as
/// if the client had stayed.
async fn detached<R, T, F, Fut>(driver: &Arc<Driver>, req: R, op: F) -> Result<T, Status>
where
    R: Send + 'static,
    T: Send + 'static,
    F: FnOnce(Arc<Driver>, R) -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<T>> + Send + 'static,
{
    tokio::spawn(op(driver.clone(), req))
        .await
        .map_err(|e| Status::internal(format!("the call's task failed: {e}")))?
        .map_err(Status::from)
}

fn ok<T>(t: T) -> Reply<T> {
    Ok(TonicResponse::new(t))
}

#[tonic::async_trait]
impl ExecDriver for Service {
    async fn info(&self, _req: Request<pb::InfoRequest>) -> Reply<pb::InfoResponse> {
        let layout = Layout::detect().unwrap_or_default();
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        ok(pb::InfoResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            kernel_version: kernel,
            cgroup_mode: layout.mode().into(),
            namespaces: namespaces::ALL
                .iter()
                .filter(|n| n.available())
                .map(|n| n.name().to_owned())
                .collect(),
            root: self.driver.config.root.display().to_string(),
            shim_path: self.driver.config.shim_path.display().to_string(),
            cgroup_hierarchies: layout
                .hierarchies
                .iter()
                .map(|h| {
                    if h.v2 {
                        "v2".to_owned()
                    } else {
                        format!("v1:{}", h.controllers.join(","))
                    }
                })
                .collect(),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn create(&self, req: Request<pb::CreateRequest>) -> Reply<pb::CreateResponse> {
        let st = detached(&self.driver, req.into_inner(), |d, r| async move {
            d.create(&r, false).await
        })
        .await?;
        ok(pb::CreateResponse {
            container: Some(st),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn run(&self, req: Request<pb::CreateRequest>) -> Reply<pb::CreateResponse> {
        let st = detached(&self.driver, req.into_inner(), |d, r| async move {
            d.create(&r, true).await
        })
        .await?;
        ok(pb::CreateResponse {
            container: Some(st),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn start(&self, req: Request<pb::StartRequest>) -> Reply<pb::StartResponse> {
        let r = req.get_ref();
        let (container, process) = self.driver.start(&r.id, &r.exec_id).await?;
        ok(pb::StartResponse {
            container: Some(container),
            process,
        })
    }

    async fn state(&self, req: Request<pb::StateRequest>) -> Reply<pb::StateResponse> {
        let r = req.get_ref();
        let (container, process) = self.driver.state(&r.id, &r.exec_id).await?;
        ok(pb::StateResponse {
            container: Some(container),
            process,
        })
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Reply<pb::ListResponse> {
        let filter = req.into_inner().label_filter.into_iter().collect();
        let containers = self.driver.list(&filter).await?;
        ok(pb::ListResponse { containers })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn wait(&self, req: Request<pb::WaitRequest>) -> Reply<pb::WaitResponse> {
        let r = req.get_ref();
        let exit = self.driver.wait(&r.id, &r.exec_id).await?;
        ok(pb::WaitResponse { exit: Some(exit) })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id, signal = req.get_ref().signal))]
    async fn kill(&self, req: Request<pb::KillRequest>) -> Reply<pb::KillResponse> {
        let r = req.get_ref();
        self.driver.kill(&r.id, r.signal, r.all, &r.exec_id).await?;
        ok(pb::KillResponse {})
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn exec(&self, req: Request<pb::ExecRequest>) -> Reply<pb::ExecResponse> {
        let process = self.driver.exec(req.get_ref()).await?;
        ok(pb::ExecResponse {
            process: Some(process),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn exec_sync(&self, req: Request<pb::ExecSyncRequest>) -> Reply<pb::ExecSyncResponse> {
        ok(self.driver.exec_sync(req.get_ref()).await?)
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn stop(&self, req: Request<pb::StopRequest>) -> Reply<pb::StopResponse> {
        ok(self.driver.stop(req.get_ref()).await?)
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Reply<pb::DeleteResponse> {
        let exit = detached(&self.driver, req.into_inner(), |d, r| async move {
            d.delete(&r.id, r.force).await
        })
        .await?;
        ok(pb::DeleteResponse { exit })
    }

    async fn resize_pty(&self, req: Request<pb::ResizePtyRequest>) -> Reply<pb::ResizePtyResponse> {
        let r = req.get_ref();
        let size = r.size.unwrap_or_default();
        self.driver
            .resize(&r.id, &r.exec_id, size.rows, size.cols)
            .await?;
        ok(pb::ResizePtyResponse {})
    }

    async fn close_stdin(
        &self,
        req: Request<pb::CloseStdinRequest>,
    ) -> Reply<pb::CloseStdinResponse> {
        self.driver
            .close_stdin(&req.get_ref().id, &req.get_ref().exec_id)
            .await?;
        ok(pb::CloseStdinResponse {})
    }

    async fn reopen_log(&self, req: Request<pb::ReopenLogRequest>) -> Reply<pb::ReopenLogResponse> {
        self.driver.reopen_log(&req.get_ref().id).await?;
        ok(pb::ReopenLogResponse {})
    }

    type LogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogsResponse, Status>> + Send>>;

    async fn logs(&self, req: Request<pb::LogsRequest>) -> Reply<Self::LogsStream> {
        let r = req.into_inner();
        let (dir, name) = self.driver.log_of(&r.id, &r.exec_id)?;
        let both = !r.stdout && !r.stderr;
        let since_ns = r
            .since
            .map(|t| {
                t.seconds
                    .saturating_mul(1_000_000_000)
                    .saturating_add(t.nanos as i64)
            })
            .unwrap_or(0);
        let query = crate::logs::Query {
            since_ns,
            follow: r.follow,
            stdout: r.stdout || both,
            stderr: r.stderr || both,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(crate::logs::stream(dir, name, r.exec_id, query, tx));
        ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn pause(&self, req: Request<pb::PauseRequest>) -> Reply<pb::PauseResponse> {
        let st = self.driver.pause(&req.get_ref().id).await?;
        ok(pb::PauseResponse {
            container: Some(st),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn resume(&self, req: Request<pb::ResumeRequest>) -> Reply<pb::ResumeResponse> {
        let st = self.driver.resume(&req.get_ref().id).await?;
        ok(pb::ResumeResponse {
            container: Some(st),
        })
    }

    async fn stats(&self, req: Request<pb::StatsRequest>) -> Reply<pb::StatsResponse> {
        let stats = self.driver.stats(&req.get_ref().id).await?;
        ok(pb::StatsResponse { stats: Some(stats) })
    }

    type StatsStreamStream = Pin<Box<dyn Stream<Item = Result<pb::StatsResponse, Status>> + Send>>;

    async fn stats_stream(
        &self,
        req: Request<pb::StatsStreamRequest>,
    ) -> Reply<Self::StatsStreamStream> {
        let r = req.get_ref();
        let rx = self.driver.stats_stream(&r.id, r.interval_ms).await?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|s| {
            s.map(|stats| pb::StatsResponse { stats: Some(stats) })
                .map_err(Status::from)
        });
        ok(Box::pin(stream))
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn update(&self, req: Request<pb::UpdateRequest>) -> Reply<pb::UpdateResponse> {
        let resources = self.driver.update(req.get_ref()).await?;
        ok(pb::UpdateResponse {
            resources: Some(resources),
        })
    }

    async fn pids(&self, req: Request<pb::PidsRequest>) -> Reply<pb::PidsResponse> {
        ok(self.driver.pids(&req.get_ref().id).await?)
    }

    type AttachStream = Pin<Box<dyn Stream<Item = Result<pb::AttachResponse, Status>> + Send>>;

    async fn attach(
        &self,
        req: Request<Streaming<pb::AttachRequest>>,
    ) -> Reply<Self::AttachStream> {
        let mut incoming = req.into_inner();
        let first = tokio::time::timeout(crate::server::FIRST_MESSAGE_TIMEOUT, incoming.next())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no `start` message within {:?}",
                    crate::server::FIRST_MESSAGE_TIMEOUT
                ))
            })?;
        let start = match first {
            Some(Ok(pb::AttachRequest {
                kind: Some(pb::attach_request::Kind::Start(s)),
            })) => s,
            Some(Err(e)) => return Err(e),
            _ => {
                return Err(
                    Error::invalid("start", "the first attach message must be `start`").into(),
                )
            }
        };
        let conn = self.driver.attach(&start).await?;
        let (mut from_shim, mut to_shim) = conn.stream.into_split();
        let id = start.id.clone();
        let exec_id = start.exec_id.clone();

        // Client -> shim: stdin bytes and close-stdin, until the client stops sending.
        tokio::spawn(async move {
            while let Some(Ok(msg)) = incoming.next().await {
                let kind = match msg.kind {
                    Some(pb::attach_request::Kind::Stdin(data)) => request::Kind::Stdin(data),
                    Some(pb::attach_request::Kind::CloseStdin(_)) => {
                        request::Kind::CloseStdin(execdriver_shim::protocol::Target::init())
                    }
                    Some(pb::attach_request::Kind::Resize(r)) => {
                        request::Kind::Resize(execdriver_shim::protocol::Resize {
                            rows: r.rows,
                            cols: r.cols,
                            exec_id: exec_id.clone(),
                        })
                    }
                    _ => continue,
                };
                let frame = execdriver_shim::protocol::Request::new(kind);
                if crate::shims::write_frame(&mut to_shim, &frame)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            debug!(id = %id, "attach client stopped sending");
        });

        // Shim -> client: output in order, then the exit. A client that hangs up ends this at
        // once (and with it the connection to the shim), output or not.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::AttachResponse, Status>>(64);
        let driver = self.driver.clone();
        let (wait_id, wait_exec) = (start.id.clone(), start.exec_id.clone());
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    f = crate::shims::read_frame::<Response>(&mut from_shim) => f,
                    _ = tx.closed() => break,
                };
                let msg = match frame {
                    Ok(Some(Response { kind: Some(k) })) => k,
                    Ok(_) | Err(_) => {
                        // The shim went away without sending the exit: it died. Say how the
                        // process ended as the driver knows it.
                        drop(from_shim);
                        let exit = tokio::select! {
                            e = driver.wait(&wait_id, &wait_exec) => e,
                            _ = tx.closed() => break,
                        };
                        let msg = exit.map_err(Status::from).map(|e| pb::AttachResponse {
                            kind: Some(pb::attach_response::Kind::Exit(e)),
                        });
                        let _ = tx.send(msg).await;
                        break;
                    }
                };
                let out = match msg {
                    response::Kind::Output(o) => {
                        pb::attach_response::Kind::Output(pb::OutputChunk {
                            stream: o.stream,
                            data: o.data,
                        })
                    }
                    response::Kind::Exit(e) => pb::attach_response::Kind::Exit(exit_status(&e)),
                    _ => continue,
                };
                let last = matches!(out, pb::attach_response::Kind::Exit(_));
                if tx
                    .send(Ok(pb::AttachResponse { kind: Some(out) }))
                    .await
                    .is_err()
                    || last
                {
                    break;
                }
            }
        });
        ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}
