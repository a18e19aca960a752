//! The daemon: the unix socket, who may use it, and serving until SIGTERM or SIGINT.
//!
//! The socket is created 0600 (umask set around bind, so it is never wider), and every call
//! checks the peer's credentials (SO_PEERCRED): root, the daemon's own uid, and any uids or
//! gid given with `--allow-uid` / `--allow-gid` are admitted; anyone else gets
//! PERMISSION_DENIED. Stopping the daemon leaves every container and its shim running.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use execdriver_proto::exec_driver_server::ExecDriverServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};
use tracing::{info, warn};

use crate::driver::{Driver, DriverConfig};
use crate::error::{Error, Result};
use crate::service::Service;

/// Largest gRPC message accepted (requests are small; this bounds a hostile client).
pub const MAX_MESSAGE: usize = 16 << 20;

/// How long a stopping daemon waits for its clients' calls and connections to end before it
/// stops regardless (long streams such as Attach, Logs and Wait would otherwise hold it).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a client has to send the first message of an Attach stream.
pub const FIRST_MESSAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Concurrent calls per client connection (HTTP/2 streams).
pub const MAX_STREAMS: u32 = 1024;

/// HTTP/2 flow-control window per stream: large enough that an attached client streaming a
/// container's output is not held to a round trip per 64 KiB (the protocol's default).
pub const WINDOW: u32 = 4 << 20;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub socket: PathBuf,
    /// Uids admitted besides root and the daemon's own.
    pub allow_uids: Vec<u32>,
    /// A gid whose members (by primary gid of the peer) are admitted; the socket is then 0660
    /// and owned by that group.
    pub allow_gid: Option<u32>,
}

/// Admits a peer by its credentials.
#[derive(Clone)]
pub struct PeerCheck {
    own_uid: u32,
    allow_uids: Vec<u32>,
    allow_gid: Option<u32>,
}

impl PeerCheck {
    pub fn admits(&self, uid: u32, gid: u32) -> bool {
        uid == 0
            || uid == self.own_uid
            || self.allow_uids.contains(&uid)
            || self.allow_gid == Some(gid)
    }

    #[allow(clippy::result_large_err)]
    pub fn check(&self, req: Request<()>) -> std::result::Result<Request<()>, Status> {
        let cred = req
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|i| i.peer_cred);
        match cred {
            Some(c) if self.admits(c.uid(), c.gid()) => Ok(req),
            Some(c) => Err(Status::permission_denied(format!(
                "uid {} may not use this execdriverd (allowed: root and the daemon's uid)",
                c.uid()
            ))),
            None => Err(Status::permission_denied("peer credentials unavailable")),
        }
    }
}

/// Binds the socket with no window in which it is wider than its final mode.
fn bind(cfg: &ServerConfig) -> Result<UnixListener> {
    let path = &cfg.socket;
    if path.as_os_str().len() >= 108 {
        return Err(Error::invalid(
            "--socket",
            format!(
                "{} is longer than a unix socket path may be",
                path.display()
            ),
        ));
    }
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if !md.file_type().is_socket() {
            return Err(Error::invalid(
                "--socket",
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::FailedPrecondition(format!(
                "another daemon is serving {}",
                path.display()
            )));
        }
        std::fs::remove_file(path)
            .map_err(Error::io(format!("removing stale {}", path.display())))?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(Error::io(format!("creating {}", parent.display())))?;
    }
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(Error::io(format!("binding {}", path.display())))?;
    if let Some(gid) = cfg.allow_gid {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|e| Error::Internal(format!("chown {}: {e}", path.display())))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(Error::io("chmod socket"))?;
    }
    Ok(listener)
}

/// Serves until SIGTERM or SIGINT, then waits up to [`SHUTDOWN_GRACE`] for calls in progress.
/// Containers are left running.
pub async fn serve(driver_cfg: DriverConfig, server_cfg: ServerConfig) -> Result<()> {
    let driver = Arc::new(Driver::open(driver_cfg)?);
    let listener = bind(&server_cfg)?;
    let watcher = tokio::spawn(driver.clone().watch_shims());
    let check = PeerCheck {
        own_uid: nix::unistd::geteuid().as_raw(),
        allow_uids: server_cfg.allow_uids.clone(),
        allow_gid: server_cfg.allow_gid,
    };
    let svc = ExecDriverServer::new(Service { driver })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let svc =
        tonic::service::interceptor::InterceptedService::new(svc, move |req| check.check(req));
    info!(socket = %server_cfg.socket.display(), "serving");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signalled = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        info!("shutting down; containers keep running");
    };
    let server = tonic::transport::Server::builder()
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW * 2)
        .max_concurrent_streams(MAX_STREAMS)
        .add_service(svc)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);
    let served = tokio::select! {
        r = &mut server => r,
        _ = signalled => {
            // Stop accepting, let calls in progress finish, but not for ever: an attached
            // client or an idle connection would hold the daemon up.
            let _ = stop_tx.send(());
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    warn!("calls still open after {SHUTDOWN_GRACE:?}; stopping regardless");
                    Ok(())
                }
            }
        }
    };
    watcher.abort();
    let _ = std::fs::remove_file(&server_cfg.socket);
    served.map_err(|e| Error::Internal(format!("serving: {e}")))?;
    Ok(())
}

/// Connects a client to a daemon's socket.
pub async fn connect(
    socket: &Path,
) -> std::result::Result<tonic::transport::Channel, tonic::transport::Error> {
    let socket = socket.to_owned();
    tonic::transport::Endpoint::from_static("http://execdriverd.sock")
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW * 2)
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}
