//! Serve any `tokio_tungstenite::WebSocketStream` with the hub (feature `tungstenite`).
//!
//! One task per connection runs both directions: it waits on the close signal, the
//! outbound queue and the socket at once. Outbound frames are written in batches: every
//! frame that is ready is fed to the socket, then one flush (one syscall for many frames).
//!
//! ```no_run
//! use tokio::net::TcpListener;
//! use wsc_hub::{Hub, HubConfig, IdentityParams, tungstenite};
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = Hub::new(HubConfig::default());
//! hub.start();
//! let listener = TcpListener::bind("127.0.0.1:8081").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let hub = hub.clone();
//!     tokio::spawn(async move {
//!         let (ws, identity) =
//!             tungstenite::accept_with_identity(stream, &IdentityParams::default(), &hub.config())
//!                 .await?;
//!         let _ = tungstenite::accept(&hub, identity, ws).await;
//!         Ok::<_, tokio_tungstenite::tungstenite::Error>(())
//!     });
//! }
//! # }
//! ```

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::codec::FrameError;
use crate::config::HubConfig;
use crate::connection::{DisconnectReason, Outbound};
use crate::hub::{Hub, Registration};
use crate::identity::{Identity, IdentityParams};
use crate::report::RegisterError;
use crate::transport::{FrameSink, drain, with_deadline, write_batch};

pub use crate::inbound_meter::{InboundFlood, MeteredStream};

/// How long the server waits for the client's close reply after sending its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Room for a frame header and a close or ping frame beside the largest message.
const FRAME_OVERHEAD: usize = 1024;

/// The WebSocket settings the hub wants: small read/write buffers (they dominate idle memory
/// per connection), the inbound size limit from the config, and a write buffer bound that
/// always fits one maximum outbound message.
///
/// The hub's own frames do not pass through tungstenite's write buffer (see
/// [`serve`]: they are written straight from their payloads); the buffer holds the pong and
/// close replies tungstenite writes itself, and whatever an application sends through the
/// stream before handing it to [`serve`]. The bound still fits one maximum outbound message,
/// so such a send is never refused for its size, and it always exceeds `write_buffer_size`
/// (which tungstenite requires).
pub fn websocket_config(config: &HubConfig) -> WebSocketConfig {
    let max_in = config.limits.max_message_size;
    let max_write_buffer = match config.max_outbound_message_size {
        0 => usize::MAX,
        max_out => config
            .write_buffer_size
            .saturating_add(max_out)
            .saturating_add(FRAME_OVERHEAD),
    };
    WebSocketConfig::default()
        .read_buffer_size(config.read_buffer_size.max(256))
        .write_buffer_size(config.write_buffer_size)
        .max_write_buffer_size(max_write_buffer)
        .max_message_size(Some(max_in))
        .max_frame_size(Some(max_in))
}

/// Registers `identity` and serves the connection until it ends. When the registration is
/// refused, the client gets a close frame with the reason and the error is returned.
pub async fn accept<S>(
    hub: &Hub,
    identity: Identity,
    mut ws: WebSocketStream<S>,
) -> Result<(), RegisterError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match hub.register(identity).await {
        Ok(registration) => {
            serve(registration, ws).await;
            Ok(())
        }
        Err(error) => {
            close_with(&mut ws, error.close_code(), &error.to_string()).await;
            Err(error)
        }
    }
}

/// Performs the server handshake on a raw stream, reading the identity from the request.
/// A request without a valid identity is answered with HTTP 400 and a JSON error body.
// The error is tungstenite's own (large) type, passed through unchanged so callers can match
// on it as they would on `tokio_tungstenite::accept_async`.
#[allow(clippy::result_large_err)]
pub async fn accept_with_identity<S>(
    stream: S,
    params: &IdentityParams,
    config: &HubConfig,
) -> Result<(WebSocketStream<MeteredStream<S>>, Identity), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut identity = None;
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        match params.extract(request.uri(), request.headers()) {
            Ok(id) => {
                identity = Some(id);
                Ok(response)
            }
            Err(e) => {
                let body = serde_json::json!({"error": e.code(), "message": e.to_string()});
                let mut response = ErrorResponse::new(Some(body.to_string()));
                *response.status_mut() = http::StatusCode::BAD_REQUEST;
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Err(response)
            }
        }
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(
        MeteredStream::new(stream, config),
        callback,
        Some(websocket_config(config)),
    )
    .await?;
    match identity {
        Some(identity) => Ok((ws, identity)),
        None => Err(WsError::ConnectionClosed),
    }
}

/// Sends a close frame with `code` and `reason`, then waits briefly for the client's reply.
///
/// Whatever the client still sends in that time is read and discarded, even when the
/// WebSocket stream can no longer parse it (after a frame over the size limit): closing a
/// TCP socket with unread input makes the kernel answer with a reset, and the client would
/// then lose the close frame and its reason.
pub async fn close_with<S>(ws: &mut WebSocketStream<S>, code: u16, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(crate::close::truncate_utf8(
            reason.to_owned(),
            crate::close::MAX_REASON,
        )),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if ws.send(Message::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
            linger(ws.get_mut()).await;
        }
    })
    .await;
}

/// Ends our side of the stream (the peer sees the end right after our close frame), then
/// reads and discards raw input until the peer closes its side (or the caller's deadline).
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.shutdown().await;
    // On the heap, and only while closing: an array here would be part of every
    // connection's task for its whole life (async state is sized for its largest point).
    let mut sink = vec![0u8; 4096];
    loop {
        match stream.read(&mut sink).await {
            Ok(0) => break,
            Ok(_) => {}
            // Draining is what a closing connection does with its input: the inbound byte
            // budget (which says so once) does not end it early.
            Err(e) if InboundFlood::from_io(&e).is_some() => {}
            Err(_) => break,
        }
    }
}

enum Event {
    Closing,
    Outbound(Option<Outbound>),
    Inbound(Option<Result<Message, WsError>>),
}

/// Serves a registered connection until it ends, then unregisters it.
pub async fn serve<S>(mut registration: Registration, mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let conn = registration.connection().clone();
    let config = registration.hub().config();
    let (write_timeout, batch) = (config.write_timeout, config.write_batch.max(1));
    let mut client_closed = false;
    // One close waiter for the connection's whole life, not one per loop turn.
    let closed = conn.closed();
    tokio::pin!(closed);
    // When both directions are ready, they take turns: a turn writes at most `batch`
    // frames, so sustained outbound traffic cannot keep acks, pongs and close frames unread.
    let mut inbound_first = false;
    loop {
        inbound_first = !inbound_first;
        let event = if inbound_first {
            tokio::select! {
                biased;
                _ = &mut closed => Event::Closing,
                incoming = ws.next() => Event::Inbound(incoming),
                frame = registration.recv() => Event::Outbound(frame),
            }
        } else {
            tokio::select! {
                biased;
                _ = &mut closed => Event::Closing,
                frame = registration.recv() => Event::Outbound(frame),
                incoming = ws.next() => Event::Inbound(incoming),
            }
        };
        match event {
            Event::Closing | Event::Outbound(None) => break,
            Event::Outbound(Some(first)) => {
                let written = with_deadline(
                    write_timeout,
                    write_batch(&mut registration, &mut WsSink(&mut ws), first, batch),
                )
                .await;
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        conn.close(DisconnectReason::ConnectionLost {
                            error: e.to_string(),
                        });
                        break;
                    }
                    Err(_) => {
                        registration.write_timed_out();
                        break;
                    }
                }
            }
            Event::Inbound(None) => {
                conn.close(DisconnectReason::ConnectionLost {
                    error: "connection reset without close frame".to_owned(),
                });
                break;
            }
            Event::Inbound(Some(Ok(message))) => match message {
                Message::Text(text) => registration.handle_text(text.as_str()).await,
                Message::Binary(data) => {
                    registration.reject_frame(FrameError::BinaryNotSupported, data.len())
                }
                Message::Ping(_) | Message::Pong(_) => registration.control_frame(),
                Message::Frame(_) => registration.touch(),
                Message::Close(frame) => {
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                    conn.close(DisconnectReason::ClientClosed { code });
                    client_closed = true;
                    break;
                }
            },
            Event::Inbound(Some(Err(error))) => match error {
                // tokio-tungstenite ends the stream after any read error, and RFC 6455 asks
                // to fail the connection on invalid UTF-8: answer with the error frame, then
                // close with 1007.
                WsError::Utf8(_) => {
                    registration.reject_frame(FrameError::InvalidUtf8, 0);
                    conn.close(DisconnectReason::InvalidPayload);
                    break;
                }
                WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
                    conn.close(DisconnectReason::MessageTooLarge);
                    break;
                }
                WsError::Io(ref io) if InboundFlood::from_io(io).is_some() => {
                    conn.close(DisconnectReason::PolicyViolation {
                        detail: io.to_string(),
                    });
                    break;
                }
                WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
                | WsError::Io(_)
                | WsError::ConnectionClosed
                | WsError::AlreadyClosed => {
                    conn.close(DisconnectReason::ConnectionLost {
                        error: error.to_string(),
                    });
                    break;
                }
                WsError::Protocol(e) => {
                    conn.close(DisconnectReason::PolicyViolation {
                        detail: format!("protocol error: {e}"),
                    });
                    break;
                }
                other => {
                    conn.close(DisconnectReason::ConnectionLost {
                        error: other.to_string(),
                    });
                    break;
                }
            },
        }
    }
    let reason = registration.ending();
    if client_closed {
        // tungstenite queued the close reply while reading; make sure it goes out.
        let _ = tokio::time::timeout(CLOSE_GRACE, ws.flush()).await;
    } else if !matches!(reason, DisconnectReason::ConnectionLost { .. }) {
        if reason.drains_queue() {
            drain(&mut registration, &mut WsSink(&mut ws), write_timeout).await;
        }
        close_with(&mut ws, reason.close_code(), &reason.close_text()).await;
    }
    registration.finish(reason);
}

/// The WebSocket side of [`FrameSink`]: messages as text frames, keepalives as pings,
/// written straight from their payloads ([`ws_frames`](crate::ws_frames)).
struct WsSink<'a, S>(&'a mut WebSocketStream<S>);

impl<S> FrameSink for WsSink<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Error = WsError;

    async fn write(&mut self, items: &[Outbound]) -> Result<(), WsError> {
        // tungstenite may hold part of a pong or close reply it queued while reading: it goes
        // out first, whole, so the frames below never land inside it.
        SinkExt::flush(&mut *self.0).await?;
        crate::ws_frames::write_frames(self.0.get_mut(), items).await?;
        Ok(())
    }
}
