//! The HTTP server loop: hyper serving the router, with the limits a
//! multi-tenant service needs that `axum::serve` does not offer.
//!
//! - **Header-read timeout** (slowloris): a connection that does not finish
//!   sending a request's headers in time is closed.
//! - **Connection bound**: at most `max_connections` connections are served
//!   at once; beyond it the loop stops accepting (the kernel's backlog holds
//!   the rest) until one closes, so a flood of idle connections cannot take
//!   every file descriptor the sessions need.
//! - The peer address is attached to every request (`ConnectInfo`), for the
//!   per-address slowdown of failed authentication.
//! - Graceful drain: when `shutdown` resolves the loop stops accepting and
//!   waits for open connections to finish (the caller bounds the wait).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service as _;

use super::limits::HttpLimits;

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
///
/// # Cancel safety
/// Not cancel-safe: dropping the future stops accepting and drops open
/// connections without a drain.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout());
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: retrying at once
                    // would spin; the error clears as connections close.
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small writes (SSE events such as a new QR, short JSON answers) must
        // not wait for the peer's delayed ACK (Nagle).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
        let router = router.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().call(request)
        });
        let connection = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            // Errors here are the peer's (reset, timeout, bad request line).
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The address a request came from, when the server loop attached it (it
/// always does; router tests without a socket get `None`).
pub fn peer_of(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
