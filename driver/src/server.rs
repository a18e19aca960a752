//! The daemon: the unix socket, who may use it, and serving until SIGTERM or SIGINT.
//!
//! The socket is created 0600 (umask set around bind, so it is never wider; `--allow-gid`
//! makes it 0660 owned by that group, `--allow-uid` 0666 so the uids it names can open it,
//! `--socket-mode` sets another mode: [`socket_mode`]), so the filesystem keeps everyone else
//! from connecting (EACCES); the daemon warns at start when a mode or a directory above the
//! socket would keep out users it admits. Every call then checks the peer's
//! credentials, read from the connection when it was accepted (SO_PEERCRED and
//! SO_PEERGROUPS): root, the daemon's own uid, the `--allow-uid` uids and members of the
//! `--allow-gid` group (primary or supplementary) are admitted; anyone else who could connect
//! gets PERMISSION_DENIED. An admitted call carries its [`Caller`] (uid, and whether the
//! restricted policy applies to it) in its extensions, for the service to ask `crate::policy`.
//! Stopping the daemon leaves every container and its shim running.
//!
//! Besides execdriver.v1 the socket serves gRPC health checking (grpc.health.v1: SERVING for
//! "" and "execdriver.v1.ExecDriver" while the daemon serves, NOT_SERVING once it is stopping;
//! open to whoever may connect to the socket) and server reflection (v1 and v1alpha, behind
//! the same peer check as the API), so generic tools can discover and call the API.
//!
//! Deadlines ([`crate::calls`]): a client's `grpc-timeout` ends its call with
//! DEADLINE_EXCEEDED (and drops the work) when it passes; a response stream ends then too.
//! There is no default timeout, so Attach, Logs, Events and Wait last as long as the client
//! wants.
//!
//! SIGTERM or SIGINT: health turns NOT_SERVING, Events streams end (UNAVAILABLE), new
//! connections are refused, and the daemon waits at most the shutdown grace for the other
//! calls (an attached client, say) before it exits anyway. Containers keep running.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use execdriver_proto::exec_driver_server::ExecDriverServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use tonic::transport::server::Connected;
use tonic::{Request, Status};
use tracing::{info, warn};

use crate::driver::{Driver, DriverConfig};
use crate::error::{Error, Result};
use crate::policy::{Caller, Policy};
use crate::service::Service;
pub use crate::service::FIRST_MESSAGE_TIMEOUT;

/// Largest gRPC message accepted (requests are small; this bounds a hostile client).
pub const MAX_MESSAGE: usize = 16 << 20;

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
    /// A gid whose members (primary or supplementary) are admitted; the socket is then owned
    /// by that group (and 0660 unless `allow_uids` makes it 0666).
    pub allow_gid: Option<u32>,
    /// The socket's permission bits instead of [`socket_mode`]'s default; at most 0666.
    /// Who may *use* the daemon is still decided by the credential check.
    pub socket_mode: Option<u32>,
    /// How long a stopping daemon waits for open calls (attached clients, log followers).
    pub shutdown_grace: Duration,
    /// What admitted callers may ask for (`--admitted-policy` and the restricted prefixes).
    pub policy: Policy,
}

/// Who is at the other end of a connection, read once when it was accepted.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// None when the kernel did not say.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Supplementary groups (empty when the kernel lacks SO_PEERGROUPS).
    pub groups: Vec<u32>,
}

/// An accepted connection, carrying its peer's credentials into every request's extensions.
pub struct PeerStream {
    inner: UnixStream,
    info: PeerInfo,
}

impl PeerStream {
    fn new(inner: UnixStream) -> PeerStream {
        use std::os::fd::AsFd;
        let cred = inner.peer_cred().ok();
        let info = PeerInfo {
            uid: cred.map(|c| c.uid()),
            gid: cred.map(|c| c.gid()),
            groups: execdriver_shim::sys::peer_groups(inner.as_fd()).unwrap_or_default(),
        };
        PeerStream { inner, info }
    }
}

impl Connected for PeerStream {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The default of [`ServerConfig::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Admits a peer by its credentials, and says under which policy it calls.
#[derive(Clone)]
pub struct PeerCheck {
    own_uid: u32,
    allow_uids: Vec<u32>,
    allow_gid: Option<u32>,
    policy: Arc<Policy>,
}

impl PeerCheck {
    pub fn new(own_uid: u32, allow_uids: Vec<u32>, allow_gid: Option<u32>) -> PeerCheck {
        PeerCheck {
            own_uid,
            allow_uids,
            allow_gid,
            policy: Arc::default(),
        }
    }

    /// Admitted callers get `policy` (default: the full one).
    pub fn with_policy(self, policy: Arc<Policy>) -> PeerCheck {
        PeerCheck { policy, ..self }
    }

    /// The caller a peer with `uid` is, once admitted.
    pub fn caller(&self, uid: u32) -> Caller {
        self.policy.caller(uid, self.own_uid)
    }

    pub fn admits(&self, uid: u32, gid: u32, groups: &[u32]) -> bool {
        uid == 0
            || uid == self.own_uid
            || self.allow_uids.contains(&uid)
            || self
                .allow_gid
                .is_some_and(|g| g == gid || groups.contains(&g))
    }

    #[allow(clippy::result_large_err)]
    pub fn check(&self, mut req: Request<()>) -> std::result::Result<Request<()>, Status> {
        let peer = req.extensions().get::<PeerInfo>();
        match peer.and_then(|p| Some((p.uid?, p.gid?, &p.groups))) {
            Some((uid, gid, groups)) if self.admits(uid, gid, groups) => {
                let caller = self.caller(uid);
                req.extensions_mut().insert(caller);
                Ok(req)
            }
            Some((uid, _, _)) => Err(Status::permission_denied(format!(
                "uid {uid} may not use this execdriverd (allowed: root, the daemon's uid, \
                 --allow-uid and members of --allow-gid)"
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
    // Bound under a temporary name, given its owner and mode, then renamed into place: the
    // socket appears with its final permissions (a client never finds it 0600 for a moment).
    // (A path too long for the temporary name is bound in place, as before.)
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.new", std::process::id()));
    let tmp = if tmp_name.len() < 108 {
        PathBuf::from(tmp_name)
    } else {
        path.clone()
    };
    let _ = std::fs::remove_file(&tmp);
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(&tmp);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(Error::io(format!("binding {}", tmp.display())))?;
    let mode = socket_mode(cfg);
    let placed = (|| {
        if let Some(gid) = cfg.allow_gid {
            nix::unistd::chown(&tmp, None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| Error::Internal(format!("chown {}: {e}", tmp.display())))?;
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(Error::io("chmod socket"))?;
        if &tmp != path {
            std::fs::rename(&tmp, path)
                .map_err(Error::io(format!("placing {}", path.display())))?;
        }
        Ok(())
    })();
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    for warning in unreachable_by_admitted(cfg, mode) {
        warn!("{warning}");
    }
    Ok(listener)
}

/// The socket's mode: `--socket-mode`; else 0666 when `--allow-uid` names anyone (with or
/// without `--allow-gid`: those uids need not be in any group the socket could be given to,
/// and the credential check on every call keeps everyone else out, PERMISSION_DENIED); else
/// 0660 with `--allow-gid` (the socket is that group's); else 0600.
pub fn socket_mode(cfg: &ServerConfig) -> u32 {
    match (cfg.socket_mode, cfg.allow_uids.is_empty(), cfg.allow_gid) {
        (Some(mode), _, _) => mode,
        (None, false, _) => 0o666,
        (None, true, Some(_)) => 0o660,
        (None, true, None) => 0o600,
    }
}

/// What keeps the users `--allow-uid` and `--allow-gid` admit from opening the socket
/// (`mode`, as [`socket_mode`] made it) or from reaching it (search permission on every
/// directory above it): the daemon would admit them, but connect(2) gives them EACCES.
pub fn unreachable_by_admitted(cfg: &ServerConfig, mode: u32) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let others_rw = mode & 0o006 == 0o006;
    let group_rw = mode & 0o060 == 0o060;
    if !cfg.allow_uids.is_empty() && !others_rw {
        let uids: Vec<String> = cfg.allow_uids.iter().map(u32::to_string).collect();
        let unless = match (cfg.allow_gid, group_rw) {
            (Some(gid), true) => format!(" unless they are members of group {gid}"),
            _ => String::new(),
        };
        out.push(format!(
            "--socket-mode {mode:o}: --allow-uid {} cannot open the socket{unless} (it needs \
             read and write for others, as 666, the default with --allow-uid)",
            uids.join(",")
        ));
    }
    if let Some(gid) = cfg.allow_gid {
        if !group_rw && !others_rw {
            out.push(format!(
                "--socket-mode {mode:o}: members of --allow-gid {gid} cannot open the socket (it \
                 needs read and write for the group, as 660, the default with --allow-gid)"
            ));
        }
    }
    if cfg.allow_uids.is_empty() && cfg.allow_gid.is_none() {
        return out;
    }
    let mut dir = cfg.socket.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(md) = std::fs::metadata(d) {
            let searchable = md.mode() & 0o001 != 0
                || (cfg.allow_gid == Some(md.gid()) && md.mode() & 0o010 != 0);
            if !searchable {
                out.push(format!(
                    "{} is mode {:o}: the users --allow-uid/--allow-gid admit cannot reach the \
                     socket below it (they need search permission, x, on every directory above \
                     it)",
                    d.display(),
                    md.mode() & 0o7777
                ));
            }
        }
        dir = d.parent();
    }
    out
}

/// Serves until SIGTERM or SIGINT, then waits up to the shutdown grace for calls in progress.
/// Containers are left running.
pub async fn serve(driver_cfg: DriverConfig, server_cfg: ServerConfig) -> Result<()> {
    if let Some(mode) = server_cfg.socket_mode {
        if mode & !0o666 != 0 {
            return Err(Error::invalid(
                "--socket-mode",
                format!("{mode:o}: only read and write bits (at most 0666)"),
            ));
        }
    }
    let driver = Arc::new(Driver::open(driver_cfg)?);
    driver.watch_containers();
    // The signal handlers exist before the socket does (so do the descriptors they need).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let listener = bind(&server_cfg)?;
    let watcher = tokio::spawn(driver.clone().watch_shims());
    let policy = Arc::new(server_cfg.policy.clone());
    let check = PeerCheck::new(
        nix::unistd::geteuid().as_raw(),
        server_cfg.allow_uids.clone(),
        server_cfg.allow_gid,
    )
    .with_policy(policy.clone());
    let svc = ExecDriverServer::new(Service {
        driver: driver.clone(),
        policy,
    })
    .max_decoding_message_size(MAX_MESSAGE)
    .max_encoding_message_size(MAX_MESSAGE);
    let reflection_check = check.clone();
    let svc =
        tonic::service::interceptor::InterceptedService::new(svc, move |req| check.check(req));
    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<ExecDriverServer<Service>>().await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(execdriver_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let check_v1 = reflection_check.clone();
    let reflection_v1 =
        tonic::service::interceptor::InterceptedService::new(reflection_v1, move |req| {
            check_v1.check(req)
        });
    let reflection_v1alpha =
        tonic::service::interceptor::InterceptedService::new(reflection_v1alpha, move |req| {
            reflection_check.check(req)
        });
    info!(socket = %server_cfg.socket.display(), "serving");
    let (stopping_tx, stopping) = tokio::sync::oneshot::channel::<()>();
    let events = driver.events.clone();
    let shutdown = async move {
        tokio::select! {
            _ = signalled(term.as_mut()) => {},
            _ = signalled(int.as_mut()) => {},
        }
        info!("shutting down; containers keep running");
        health.set_not_serving::<ExecDriverServer<Service>>().await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        events.close();
        let _ = stopping_tx.send(());
    };
    let calls = crate::calls::Calls::default();
    let open_calls = calls.clone();
    let server = tonic::transport::Server::builder()
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW * 2)
        .max_concurrent_streams(MAX_STREAMS)
        .layer(crate::calls::CallLayer(calls))
        .add_service(svc)
        .add_service(health_svc)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            UnixListenerStream::new(listener).map(|r| r.map(PeerStream::new)),
            shutdown,
        );
    let grace = server_cfg.shutdown_grace;
    // Open calls (an attached client, a log follower) hold their connections; the stop waits
    // for them at most the grace.
    // Connections without a call (a client keeping its channel, one that does not answer the
    // goodbye) are not waited for.
    let bounded = async move {
        match stopping.await {
            Ok(()) => {
                tokio::select! {
                    _ = tokio::time::sleep(grace) => {
                        warn!(open = open_calls.open(), "calls still open after {grace:?}; stopping anyway");
                    }
                    _ = open_calls.idle() => {}
                }
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        r = server => r.map_err(|e| Error::Internal(format!("serving: {e}")))?,
        _ = bounded => {}
    }
    watcher.abort();
    driver.pool.stop().await;
    let _ = std::fs::remove_file(&server_cfg.socket);
    Ok(())
}

/// Waits for a signal (for ever without a handler).
async fn signalled(s: Option<&mut tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_admitted_by_uid_and_group() {
        let check = PeerCheck::new(500, vec![1001], Some(4242));
        assert!(check.admits(0, 0, &[]));
        assert!(check.admits(500, 500, &[]));
        assert!(check.admits(1001, 1001, &[]));
        assert!(check.admits(1002, 4242, &[]), "primary group");
        assert!(check.admits(1003, 1003, &[27, 4242]), "supplementary group");
        assert!(!check.admits(1000, 1000, &[1000, 27]));
        let no_group = PeerCheck::new(0, vec![], None);
        assert!(!no_group.admits(1000, 1000, &[4242]));
    }

    #[test]
    fn admitted_callers_are_restricted_only_under_the_restricted_policy() {
        use crate::policy::Admitted;
        let full = PeerCheck::new(500, vec![1001], None);
        assert!(!full.caller(1001).restricted);
        let policy = Policy {
            admitted: Admitted::Restricted,
            ..Policy::default()
        };
        let restricted = full.with_policy(Arc::new(policy));
        assert!(restricted.caller(1001).restricted);
        assert!(!restricted.caller(0).restricted, "root never is");
        assert!(!restricted.caller(500).restricted, "nor the daemon's uid");
        let mut req = Request::new(());
        req.extensions_mut().insert(PeerInfo {
            uid: Some(1001),
            gid: Some(1001),
            groups: vec![],
        });
        let req = restricted.check(req).expect("admitted");
        assert_eq!(
            req.extensions().get::<Caller>(),
            Some(&Caller {
                uid: 1001,
                restricted: true
            })
        );
    }

    fn config(allow_uids: Vec<u32>, allow_gid: Option<u32>, mode: Option<u32>) -> ServerConfig {
        ServerConfig {
            socket: PathBuf::from("/run/execdriverd.sock"),
            allow_uids,
            allow_gid,
            socket_mode: mode,
            shutdown_grace: Duration::from_secs(1),
            policy: Policy::default(),
        }
    }

    #[test]
    fn the_socket_mode_lets_in_whom_the_flags_admit() {
        assert_eq!(socket_mode(&config(vec![], None, None)), 0o600);
        assert_eq!(socket_mode(&config(vec![], Some(4242), None)), 0o660);
        assert_eq!(socket_mode(&config(vec![1000], None, None)), 0o666);
        // Both: uid 1000 need not be in group 4242.
        assert_eq!(socket_mode(&config(vec![1000], Some(4242), None)), 0o666);
        assert_eq!(socket_mode(&config(vec![1000], None, Some(0o600))), 0o600);
        // The defaults never keep out whom the flags admit (/run is searchable by all).
        for cfg in [
            config(vec![], Some(4242), None),
            config(vec![1000], None, None),
            config(vec![1000], Some(4242), None),
        ] {
            assert!(
                unreachable_by_admitted(&cfg, socket_mode(&cfg)).is_empty(),
                "{cfg:?}"
            );
        }
        let warned = |cfg: &ServerConfig| unreachable_by_admitted(cfg, socket_mode(cfg));
        let w = warned(&config(vec![1000], None, Some(0o600)));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("--socket-mode 600: --allow-uid 1000 cannot open the socket ("),
            "{w:?}"
        );
        let w = warned(&config(vec![1000], Some(4242), Some(0o660)));
        assert!(
            w[0].contains("unless they are members of group 4242"),
            "{w:?}"
        );
        let w = warned(&config(vec![], Some(4242), Some(0o600)));
        assert!(
            w.len() == 1 && w[0].contains("members of --allow-gid 4242 cannot open"),
            "{w:?}"
        );
    }

    #[test]
    fn a_directory_above_the_socket_that_admitted_users_cannot_search_is_named() {
        let dir = std::env::temp_dir().join(format!("execdriver-sockdir-{}", std::process::id()));
        let inner = dir.join("private");
        std::fs::create_dir_all(&inner).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let mut cfg = config(vec![1000], None, None);
        cfg.socket = inner.join("d.sock");
        let w = unreachable_by_admitted(&cfg, socket_mode(&cfg));
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(&format!("{} is mode 700: ", inner.display())),
            "{w:?}"
        );
        // Nobody admitted besides root: nothing to say.
        cfg.allow_uids.clear();
        assert!(unreachable_by_admitted(&cfg, socket_mode(&cfg)).is_empty());
    }
}
