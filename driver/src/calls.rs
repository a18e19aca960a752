//! What the server does to every call: counts it while in flight, from the request's arrival
//! until its response body ends (a streamed answer such as Attach, Events or a followed log
//! counts until its stream ends), so that a stopping daemon waits for calls, not for idle
//! connections a client keeps open; and ends a unary call with DEADLINE_EXCEEDED when the
//! client's `grpc-timeout` passes, dropping its work (tonic's own timeout answers CANCELLED;
//! this one fires first).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// The count of calls in flight, shared by the layer and the shutdown.
#[derive(Clone, Default)]
pub struct Calls {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    open: AtomicUsize,
    idle: Notify,
}

impl Calls {
    /// A call starts; it ends when the guard is dropped.
    fn enter(&self) -> CallGuard {
        self.shared.open.fetch_add(1, Ordering::SeqCst);
        CallGuard(self.clone())
    }

    /// How many calls are open.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Resolves once no call is open.
    pub async fn idle(&self) {
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            // Registered before the count is read: a call ending in between still wakes us.
            notified.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct CallGuard(Calls);

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.0.shared.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.shared.idle.notify_waiters();
        }
    }
}

/// How much earlier than the deadline the call is ended (a tenth of the timeout, at most
/// this), so that the DEADLINE_EXCEEDED answer reaches the client before its own timer fires
/// (tonic's client, and tonic's server layer, treat an expired timer as CANCELLED).
const DEADLINE_MARGIN: Duration = Duration::from_millis(20);

/// Counts every call of the services it wraps in [`Calls`] and gives it its deadline.
#[derive(Clone)]
pub struct CallLayer(pub Calls);

impl<S> tower::Layer<S> for CallLayer {
    type Service = CallService<S>;

    fn layer(&self, inner: S) -> CallService<S> {
        CallService {
            inner,
            calls: self.0.clone(),
        }
    }
}

/// See [`CallLayer`].
#[derive(Clone)]
pub struct CallService<S> {
    inner: S,
    calls: Calls,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for CallService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let guard = self.calls.enter();
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::service::parse_grpc_timeout);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = match timeout {
                None => fut.await?,
                Some(t) => {
                    match tokio::time::timeout(t - (t / 10).min(DEADLINE_MARGIN), fut).await {
                        Ok(r) => r?,
                        Err(_) => tonic::Status::deadline_exceeded("the client's deadline passed")
                            .into_http(),
                    }
                }
            };
            Ok(res.map(|body| {
                tonic::body::Body::new(Guarded {
                    body,
                    _guard: guard,
                })
            }))
        })
    }
}

/// A response body that holds its call open until it ends or is dropped.
struct Guarded {
    body: tonic::body::Body,
    _guard: CallGuard,
}

impl Body for Guarded {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_for_the_last_call() {
        let calls = Calls::default();
        calls.idle().await;
        let a = calls.enter();
        let b = calls.enter();
        assert_eq!(calls.open(), 2);
        let waiter = tokio::spawn({
            let calls = calls.clone();
            async move { calls.idle().await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(calls.open(), 0);
    }
}
