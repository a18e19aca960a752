//! The gRPC service: thin. Each call asks `crate::policy` whether its caller (put in the
//! request's extensions by the peer check) may make it, then hands its request to [`Driver`]
//! and its error to `From<Error> for Status`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use execdriver_proto as pb;
use execdriver_proto::exec_driver_server::ExecDriver;
use execdriver_shim::cgroups::Layout;
use execdriver_shim::namespaces;
use execdriver_spec::namespaces::ALL as ALL_NAMESPACES;
use execdriver_spec::protocol::{request, response, Response};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response as TonicResponse, Status, Streaming};
use tracing::{debug, instrument, Instrument};

use crate::driver::Driver;
use crate::error::Error;
use crate::events::Filter;
use crate::policy::{Caller, Limits, Policy};
use crate::render::exit_status;

pub struct Service {
    pub driver: Arc<Driver>,
    pub policy: Arc<Policy>,
}

/// The caller the peer check found (none: the call did not come through it, and is refused).
fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .copied()
        .ok_or_else(|| Status::permission_denied("the caller is unknown"))
}

impl Service {
    /// The policy's word on a call naming container `id`.
    fn admit(&self, caller: &Caller, id: &str) -> Result<(), Status> {
        if caller.restricted {
            let owner = self.driver.owner_of(id)?;
            self.policy.container(caller, id, owner)?;
        }
        Ok(())
    }

    /// The policy's word on a call naming the container `id` of `req`.
    fn admit_call<T>(&self, req: &Request<T>, id: &str) -> Result<(), Status> {
        self.admit(&caller(req)?, id)
    }

    /// Create and Run: the policy checks (and for a restricted caller rewrites) the request,
    /// then the driver creates the container, recording its owner.
    async fn create_as(
        &self,
        req: Request<pb::CreateRequest>,
        start: bool,
    ) -> Result<pb::ContainerState, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let driver = self.driver.clone();
        self.policy.create(
            &caller,
            &mut r,
            &move |id| driver.owner_of(id),
            &Limits::of_daemon(),
        )?;
        let owner = caller.owner();
        detached(&self.driver, r, move |d, r| async move {
            d.create(&r, start, owner).await
        })
        .await
    }
}

type Reply<T> = Result<TonicResponse<T>, Status>;

/// Runs `op` in a task of its own and waits for it: a client that hangs up (or whose deadline
/// passes) mid-call does not cut a Create or Delete in half; it completes (or rolls back) as
/// if the client had stayed. The task stays in the call's span (the container's id).
async fn detached<R, T, F, Fut>(driver: &Arc<Driver>, req: R, op: F) -> Result<T, Status>
where
    R: Send + 'static,
    T: Send + 'static,
    F: FnOnce(Arc<Driver>, R) -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<T>> + Send + 'static,
{
    tokio::spawn(op(driver.clone(), req).in_current_span())
        .await
        .map_err(|e| Status::internal(format!("the call's task failed: {e}")))?
        .map_err(Status::from)
}

fn ok<T>(t: T) -> Reply<T> {
    Ok(TonicResponse::new(t))
}

/// How long a client has to send the first message of an Attach stream.
pub const FIRST_MESSAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The initial metadata key of an Events response: the last sequence number before it.
pub const LAST_SEQUENCE_HEADER: &str = "execdriver-last-sequence";

/// The client's deadline (`grpc-timeout`), when it set one.
pub fn grpc_timeout(md: &tonic::metadata::MetadataMap) -> Option<Duration> {
    parse_grpc_timeout(md.get("grpc-timeout")?.to_str().ok()?)
}

/// Parses a `grpc-timeout` value: at most 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (num, unit) = v.split_at(v.len() - 1);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A response stream that ends with DEADLINE_EXCEEDED when the client's deadline passes:
/// tonic's server enforces `grpc-timeout` only until the response headers, and a stream
/// (Attach, Logs, StatsStream, Events) must end by the client's deadline, not by any default.
pub struct Deadline<S> {
    inner: S,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl<S> Deadline<S> {
    pub fn new(inner: S, timeout: Option<Duration>) -> Deadline<S> {
        Deadline {
            inner,
            sleep: timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            done: false,
        }
    }
}

impl<T, S: Stream<Item = Result<T, Status>> + Unpin> Stream for Deadline<S> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            self.done = item.is_none();
            return Poll::Ready(item);
        }
        if let Some(sleep) = self.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                self.done = true;
                return Poll::Ready(Some(Err(Status::deadline_exceeded(
                    "the client's deadline passed",
                ))));
            }
        }
        Poll::Pending
    }
}

/// Boxes a response stream with the client's deadline on it.
fn deadline_stream<T: Send + 'static>(
    md: &tonic::metadata::MetadataMap,
    inner: impl Stream<Item = Result<T, Status>> + Send + Unpin + 'static,
) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>> {
    Box::pin(Deadline::new(inner, grpc_timeout(md)))
}

#[tonic::async_trait]
impl ExecDriver for Service {
    async fn info(&self, _req: Request<pb::InfoRequest>) -> Reply<pb::InfoResponse> {
        let layout = Layout::detect_host().unwrap_or_default();
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        ok(pb::InfoResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            kernel_version: kernel,
            cgroup_mode: layout.mode().into(),
            namespaces: ALL_NAMESPACES
                .iter()
                .filter(|n| namespaces::available(**n))
                .map(|n| n.name().to_owned())
                .collect(),
            root: self.driver.config.root.display().to_string(),
            shim_path: self.driver.config.shim_path.display().to_string(),
            cgroup_controllers: crate::info::cgroup_controllers(&layout),
            seccomp: crate::info::seccomp(),
            apparmor: crate::info::apparmor(),
            user_namespaces: crate::info::user_namespaces()
                && namespaces::available(execdriver_spec::namespaces::Namespace::User),
            default_capabilities: crate::info::default_capabilities(),
            default_namespaces: crate::info::default_namespaces(),
            cpus: crate::info::online_cpus(),
            rootless: self
                .driver
                .config
                .defaults
                .rootless
                .as_ref()
                .map(|r| r.describe())
                .unwrap_or_default(),
            network_modes: {
                let mut modes = vec![
                    pb::NetworkMode::None as i32,
                    pb::NetworkMode::Host as i32,
                    pb::NetworkMode::Container as i32,
                    pb::NetworkMode::Netns as i32,
                ];
                if self.driver.config.defaults.network.is_some() {
                    modes.insert(0, pb::NetworkMode::Bridge as i32);
                }
                // The program is there and the tun device open to the daemon's user.
                if execdriver_shim::slirp4netns::available() {
                    modes.push(pb::NetworkMode::Slirp4netns as i32);
                }
                modes
            },
            event_history: self.driver.events.capacity() as u32,
            last_event_sequence: self.driver.events.last_sequence(),
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
        let st = self.create_as(req, false).await?;
        ok(pb::CreateResponse {
            container: Some(st),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn run(&self, req: Request<pb::CreateRequest>) -> Reply<pb::CreateResponse> {
        let st = self.create_as(req, true).await?;
        ok(pb::CreateResponse {
            container: Some(st),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id, exec_id = %req.get_ref().exec_id))]
    async fn start(&self, req: Request<pb::StartRequest>) -> Reply<pb::StartResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        let r = req.get_ref();
        let (container, process) = self.driver.start(&r.id, &r.exec_id).await?;
        ok(pb::StartResponse {
            container: Some(container),
            process,
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id, exec_id = %req.get_ref().exec_id))]
    async fn state(&self, req: Request<pb::StateRequest>) -> Reply<pb::StateResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        let r = req.get_ref();
        let (container, process) = self.driver.state(&r.id, &r.exec_id).await?;
        ok(pb::StateResponse {
            container: Some(container),
            process,
        })
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Reply<pb::ListResponse> {
        let caller = caller(&req)?;
        let filter = req.into_inner().label_filter.into_iter().collect();
        let containers = self.driver.list(&filter, &|o| caller.sees(o)).await?;
        ok(pb::ListResponse { containers })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id, exec_id = %req.get_ref().exec_id))]
    async fn wait(&self, req: Request<pb::WaitRequest>) -> Reply<pb::WaitResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        let r = req.get_ref();
        let exit = self.driver.wait(&r.id, &r.exec_id).await?;
        ok(pb::WaitResponse { exit: Some(exit) })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id, exec_id = %req.get_ref().exec_id, signal = req.get_ref().signal))]
    async fn kill(&self, req: Request<pb::KillRequest>) -> Reply<pb::KillResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        let r = req.get_ref();
        self.driver.kill(&r.id, r.signal, r.all, &r.exec_id).await?;
        ok(pb::KillResponse {})
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id, exec_id = %req.get_ref().exec_id))]
    async fn exec(&self, req: Request<pb::ExecRequest>) -> Reply<pb::ExecResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        let process = self.driver.exec(req.get_ref()).await?;
        ok(pb::ExecResponse {
            process: Some(process),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn exec_sync(&self, req: Request<pb::ExecSyncRequest>) -> Reply<pb::ExecSyncResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        ok(self.driver.exec_sync(req.get_ref()).await?)
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn stop(&self, req: Request<pb::StopRequest>) -> Reply<pb::StopResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        ok(self.driver.stop(req.get_ref()).await?)
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Reply<pb::DeleteResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        ok(detached(&self.driver, req.into_inner(), |d, r| async move {
            d.delete(&r.id, r.force).await
        })
        .await?)
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id, exec_id = %req.get_ref().exec_id))]
    async fn resize_pty(&self, req: Request<pb::ResizePtyRequest>) -> Reply<pb::ResizePtyResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        let r = req.get_ref();
        let size = r.size.unwrap_or_default();
        self.driver
            .resize(&r.id, &r.exec_id, size.rows, size.cols)
            .await?;
        ok(pb::ResizePtyResponse {})
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id, exec_id = %req.get_ref().exec_id))]
    async fn close_stdin(
        &self,
        req: Request<pb::CloseStdinRequest>,
    ) -> Reply<pb::CloseStdinResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        self.driver
            .close_stdin(&req.get_ref().id, &req.get_ref().exec_id)
            .await?;
        ok(pb::CloseStdinResponse {})
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn reopen_log(&self, req: Request<pb::ReopenLogRequest>) -> Reply<pb::ReopenLogResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        self.driver.reopen_log(&req.get_ref().id).await?;
        ok(pb::ReopenLogResponse {})
    }

    type LogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogsResponse, Status>> + Send>>;

    #[instrument(skip_all, fields(id = %req.get_ref().id, exec_id = %req.get_ref().exec_id))]
    async fn logs(&self, req: Request<pb::LogsRequest>) -> Reply<Self::LogsStream> {
        self.admit_call(&req, &req.get_ref().id)?;
        let md = req.metadata().clone();
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
            tail: r.tail,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(crate::logs::stream(dir, name, r.exec_id, query, tx).in_current_span());
        ok(deadline_stream(
            &md,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn pause(&self, req: Request<pb::PauseRequest>) -> Reply<pb::PauseResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        let st = self.driver.pause(&req.get_ref().id).await?;
        ok(pb::PauseResponse {
            container: Some(st),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn resume(&self, req: Request<pb::ResumeRequest>) -> Reply<pb::ResumeResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        let st = self.driver.resume(&req.get_ref().id).await?;
        ok(pb::ResumeResponse {
            container: Some(st),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn stats(&self, req: Request<pb::StatsRequest>) -> Reply<pb::StatsResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        let stats = self.driver.stats(&req.get_ref().id).await?;
        ok(pb::StatsResponse { stats: Some(stats) })
    }

    type StatsStreamStream = Pin<Box<dyn Stream<Item = Result<pb::StatsResponse, Status>> + Send>>;

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn stats_stream(
        &self,
        req: Request<pb::StatsStreamRequest>,
    ) -> Reply<Self::StatsStreamStream> {
        self.admit_call(&req, &req.get_ref().id)?;
        let r = req.get_ref();
        let rx = self.driver.stats_stream(&r.id, r.interval_ms).await?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|s| {
            s.map(|stats| pb::StatsResponse { stats: Some(stats) })
                .map_err(Status::from)
        });
        ok(deadline_stream(req.metadata(), stream))
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn update(&self, req: Request<pb::UpdateRequest>) -> Reply<pb::UpdateResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        let resources = self.driver.update(req.get_ref()).await?;
        ok(pb::UpdateResponse {
            resources: Some(resources),
        })
    }

    #[instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn pids(&self, req: Request<pb::PidsRequest>) -> Reply<pb::PidsResponse> {
        self.admit_call(&req, &req.get_ref().id)?;
        ok(self.driver.pids(&req.get_ref().id).await?)
    }

    type AttachStream = Pin<Box<dyn Stream<Item = Result<pb::AttachResponse, Status>> + Send>>;

    async fn attach(
        &self,
        req: Request<Streaming<pb::AttachRequest>>,
    ) -> Reply<Self::AttachStream> {
        let md = req.metadata().clone();
        let caller = caller(&req)?;
        let mut incoming = req.into_inner();
        let first = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, incoming.next())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no `start` message within {:?}",
                    FIRST_MESSAGE_TIMEOUT
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
        self.admit(&caller, &start.id)?;
        let span = tracing::info_span!("attach", id = %start.id, exec_id = %start.exec_id);
        let conn = self.driver.attach(&start).instrument(span.clone()).await?;
        let (mut from_shim, mut to_shim) = conn.stream.into_split();
        let id = start.id.clone();
        let exec_id = start.exec_id.clone();
        // Dropping the write half would shut the socket's sending side down, and the shim
        // would take that for the client leaving: a client that half-closes its stream (all
        // stdin sent) must still get the output. The output side keeps it until it ends.
        let (keep_tx, keep_rx) = tokio::sync::oneshot::channel();

        // Client -> shim: stdin bytes and close-stdin, until the client stops sending.
        tokio::spawn(
            async move {
                while let Some(Ok(msg)) = incoming.next().await {
                    let kind = match msg.kind {
                        Some(pb::attach_request::Kind::Stdin(data)) => request::Kind::Stdin(data),
                        Some(pb::attach_request::Kind::CloseStdin(_)) => {
                            request::Kind::CloseStdin(execdriver_spec::protocol::Target::init())
                        }
                        Some(pb::attach_request::Kind::Resize(r)) => {
                            request::Kind::Resize(execdriver_spec::protocol::Resize {
                                rows: r.rows,
                                cols: r.cols,
                                exec_id: exec_id.clone(),
                            })
                        }
                        _ => continue,
                    };
                    let frame = execdriver_spec::protocol::Request::new(kind);
                    if crate::shims::write_frame(&mut to_shim, &frame)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                debug!(id = %id, "attach client stopped sending");
                let _ = keep_tx.send(to_shim);
            }
            .instrument(span.clone()),
        );

        // Shim -> client: output in order, then the exit. A client that hangs up ends this at
        // once (and with it the connection to the shim), output or not.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::AttachResponse, Status>>(64);
        let driver = self.driver.clone();
        let (wait_id, wait_exec) = (start.id.clone(), start.exec_id.clone());
        tokio::spawn(
            async move {
                let _keep = keep_rx;
                loop {
                    // A client that goes away ends this at once, output or not.
                    let frame = tokio::select! {
                        f = crate::shims::read_frame::<Response>(&mut from_shim) => f,
                        _ = tx.closed() => break,
                    };
                    let msg = match frame {
                        Ok(Some(Response { kind: Some(k) })) => k,
                        Ok(_) | Err(_) => {
                            drop(from_shim);
                            if driver.shim_runs(&wait_id) {
                                // A live shim ends an attach without the exit only when the
                                // client read nothing for STALL_LIMIT (the slow-client policy):
                                // say so, rather than an exit after a gap in the output.
                                let _ = tx
                                    .send(Err(Status::resource_exhausted(format!(
                                        "this client read nothing for {:?} and was disconnected; \
                                     the container runs on and its output is in the log",
                                        execdriver_spec::limits::STALL_LIMIT
                                    ))))
                                    .await;
                                break;
                            }
                            // The shim went away without sending the exit: it died. Say how
                            // the process ended as the driver knows it.
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
            }
            .instrument(span),
        );
        ok(deadline_stream(
            &md,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
    }

    type EventsStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

    async fn events(&self, req: Request<pb::EventsRequest>) -> Reply<Self::EventsStream> {
        let md = req.metadata().clone();
        let caller = caller(&req)?;
        let r = req.into_inner();
        for (i, id) in r.ids.iter().enumerate() {
            crate::convert::validate_id(id).map_err(|e| match e {
                Error::InvalidArgument { reason, .. } => {
                    Error::invalid(format!("ids[{i}]"), reason)
                }
                e => e,
            })?;
        }
        for (i, t) in r.types.iter().enumerate() {
            match pb::EventType::try_from(*t) {
                Ok(pb::EventType::Unspecified) | Err(_) => {
                    return Err(Error::invalid(
                        format!("types[{i}]"),
                        format!("{t} is not an event type"),
                    )
                    .into())
                }
                Ok(_) => {}
            }
        }
        let sub = self.driver.events.subscribe(r.since_sequence);
        let last = sub.last_sequence;
        let filter = Filter {
            ids: r.ids,
            types: r.types,
            owner: caller.owner(),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(self.driver.events.clone().stream(sub, filter, tx));
        let mut resp = TonicResponse::new(deadline_stream(
            &md,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        if let Ok(v) = last.to_string().parse() {
            resp.metadata_mut().insert(LAST_SEQUENCE_HEADER, v);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("200m"), Some(Duration::from_millis(200)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        for bad in ["", "m", "12", "123456789m", "1x", "-1m"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_stream_ends_at_its_deadline() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<u8, Status>>(1);
        let mut s = Deadline::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            Some(Duration::from_millis(20)),
        );
        let first = s.next().await.expect("an item");
        assert_eq!(first.unwrap_err().code(), tonic::Code::DeadlineExceeded);
        assert!(s.next().await.is_none());
    }
}
