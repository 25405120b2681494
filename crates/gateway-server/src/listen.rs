//! Accepting TCP connections and serving HTTP/1.1 (with upgrades) on them, for the plain and
//! the TLS listeners alike.
//!
//! Two defences live here because they must hold before any handler runs:
//!
//! - **A deadline for the request head.** A connection must send its whole request head
//!   within `wsc.security.handshake_timeout` of being accepted (and of its previous response,
//!   on a kept-alive connection), or it is closed. Without it, a connection that never sends
//!   anything (half-open) or sends its headers a byte at a time (slowloris) holds a
//!   descriptor and a task forever; with it, an attacker holds at most what it can open in
//!   that window, and the handshake limiter bounds that per client.
//! - **A pause after a failed accept.** When the process runs out of descriptors, `accept`
//!   fails at once and keeps failing; retrying at once would spin a core. The loop waits
//!   [`ACCEPT_BACKOFF`] instead, while the open connections go on being served.
//!
//! Request heads are limited to [`MAX_HEAD`] (431 beyond), at most 100 headers (hyper's
//! default, 431 beyond).
//!
//! Every connection gets `TCP_NODELAY`: the WebSocket writer already batches frames per
//! flush, so Nagle's algorithm only adds delay (up to a delayed-ACK interval) to small frames.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::state::SharedPolicy;

/// The largest request head (request line and headers) read: a larger one is refused with
/// 431 before any handler runs. hyper's own default (about 400 KB) is not a strict bound: a
/// head that completes within one large read can pass it. Browsers send heads of a few KB;
/// the largest legitimate one here is a token in the query or a cookie.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// How long the accept loop waits after `accept` failed for a reason other than the one
/// connection (out of descriptors, out of memory).
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts on `listener` until `shutdown`; each connection goes to `then` on a task of its
/// own, tracked by `tracker` so that a stop waits for it.
pub(crate) fn accept_loop<F, Fut>(
    tracker: &TaskTracker,
    listener: TcpListener,
    shutdown: CancellationToken,
    then: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let connections = tracker.clone();
    tracker.spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    // A socket option that cannot be set only costs latency.
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(then(tcp, peer));
                }
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "a connection ended before it was accepted");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; pausing the listener briefly");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            }
        }
    });
}

/// Errors of one connection (the client gave up during the kernel's handshake), as opposed
/// to errors of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Serves plain HTTP/1.1 with `app` on `listener` until `shutdown`.
pub(crate) fn serve(
    tracker: &TaskTracker,
    listener: TcpListener,
    app: Router,
    policy: SharedPolicy,
    shutdown: CancellationToken,
) {
    let cancel = shutdown.clone();
    accept_loop(tracker, listener, shutdown, move |tcp, peer| {
        let head_timeout = head_timeout(&policy);
        serve_connection(tcp, peer, app.clone(), head_timeout, cancel.clone())
    });
}

/// The current deadline for a request head (it reloads with the policy).
pub(crate) fn head_timeout(policy: &SharedPolicy) -> Duration {
    policy
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .handshake_timeout
}

/// Serves one connection as HTTP/1.1 with upgrades until it ends or `shutdown` (then
/// gracefully: the request in flight is answered, nothing new is read).
pub(crate) async fn serve_connection<S>(
    io: S,
    peer: SocketAddr,
    app: Router,
    head_timeout: Duration,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` gives the handlers.
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            Ok::<_, Infallible>(
                app.oneshot(request.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|never| match never {}),
            )
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
