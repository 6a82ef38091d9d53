//! The accept loop: HTTP/1.1 with a header read timeout, a header size
//! limit and a connection limit.
//!
//! `axum::serve` sets no timer, so a client could hold a connection open by
//! sending its headers one byte at a time. Here hyper closes a connection
//! whose request headers (or, on a kept-alive connection, whose next request)
//! do not arrive within the header timeout; the proxy bounds the body itself.
//! What one connection may make the broker hold is bounded by the header
//! size limit (hyper's read buffer, 431 past it), and how many connections
//! are open at once by the connection limit: past it, the next connection
//! waits in the listen backlog until one closes. With TLS, the handshake
//! too must end within the header timeout, holding its connection slot.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a stop waits for requests in flight before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long request headers may take to arrive.
    pub header_timeout: Duration,
    /// Largest request line and headers, in bytes (hyper's minimum is 8192).
    pub max_header_bytes: usize,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown`
/// completes, then lets requests in flight finish. `refused` learns of each
/// connection the HTTP layer ended on its own (headers too large or too
/// slow, a malformed request).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    refused: impl Fn(&hyper::Error) + Clone + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (router, refused, watcher) = (router.clone(), refused.clone(), graceful.watcher());
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, router, limits, watcher, refused).await,
                Some(tls) => {
                    match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, router, limits, watcher, refused).await;
                        }
                        Ok(Err(err)) => tracing::debug!(error = %err, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake too slow; connection closed"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the grace period; closing them");
    }
    Ok(())
}

/// Serves HTTP/1.1 requests on one connection until it closes.
async fn serve_connection(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    router: Router,
    limits: Limits,
    watcher: Watcher,
    refused: impl Fn(&hyper::Error),
) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        async move {
            Ok::<_, Infallible>(
                router
                    .oneshot(request.map(Body::new))
                    .await
                    .unwrap_or_else(|never| match never {}),
            )
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(err) = watcher.watch(connection).await {
        tracing::debug!(error = %err, "connection ended with an error");
        refused(&err);
    }
}
