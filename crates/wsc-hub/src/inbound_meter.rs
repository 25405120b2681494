//! [`MeteredStream`]: a byte budget on what a WebSocket connection reads from its socket,
//! below the WebSocket parser.
//!
//! The rate limits of the hub count messages, which the parser yields only when one is
//! complete. A client can send frames that never complete a message (an endless run of
//! empty continuation frames) and keep the parser, and a core, busy without any limit
//! seeing a frame. This wrapper counts the raw bytes read, in one-second windows, against
//! `max_inbound_bytes_per_second` plus one largest message plus [`SLACK`] (so that framing
//! overhead and control frames of a client within its limits never reach it). Past it, the
//! read fails once with [`InboundFlood`], which the transport turns into close 1008 with the
//! byte-rate reason; later reads pass through, so the close handshake can still drain the
//! socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::config::HubConfig;

/// Room beside the byte limit and one message: frame headers and control frames.
pub(crate) const SLACK: u64 = 64 * 1024;

const WINDOW: Duration = Duration::from_secs(1);

/// The error a [`MeteredStream`] read fails with when the budget is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded: more than {per_second} bytes per second")]
pub struct InboundFlood {
    /// The configured byte rate (`max_inbound_bytes_per_second`), named in the close reason.
    pub per_second: usize,
}

impl InboundFlood {
    /// The flood behind an I/O error, if that is what it is.
    pub fn from_io(error: &io::Error) -> Option<InboundFlood> {
        error.get_ref()?.downcast_ref::<InboundFlood>().copied()
    }
}

/// A stream whose reads are counted against a byte budget per second.
#[derive(Debug)]
pub struct MeteredStream<S> {
    inner: S,
    /// Raw bytes allowed per window; `None` when the byte rate is unlimited.
    budget: Option<u64>,
    per_second: usize,
    window_start: Option<Instant>,
    used: u64,
    tripped: bool,
}

impl<S> MeteredStream<S> {
    /// Meters `inner` with the limits of `config` (none when the byte rate is unlimited).
    pub fn new(inner: S, config: &HubConfig) -> Self {
        let per_second = config.max_inbound_bytes_per_second;
        let budget = (per_second > 0).then(|| {
            (per_second as u64)
                .saturating_add(config.limits.max_message_size as u64)
                .saturating_add(SLACK)
        });
        MeteredStream {
            inner,
            budget,
            per_second,
            window_start: None,
            used: 0,
            tripped: false,
        }
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Counts `n` bytes just read; true when they break the budget (the first time only).
    fn count(&mut self, n: usize) -> bool {
        let Some(budget) = self.budget else {
            return false;
        };
        if self.tripped || n == 0 {
            return false;
        }
        let now = Instant::now();
        match self.window_start {
            Some(start) if now.duration_since(start) < WINDOW => {}
            _ => {
                self.window_start = Some(now);
                self.used = 0;
            }
        }
        self.used = self.used.saturating_add(n as u64);
        if self.used > budget {
            self.tripped = true;
            return true;
        }
        false
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MeteredStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        if self.count(n) {
            let flood = InboundFlood {
                per_second: self.per_second,
            };
            return Poll::Ready(Err(io::Error::other(flood)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MeteredStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn config(per_second: usize, max_message: usize) -> HubConfig {
        let mut config = HubConfig {
            max_inbound_bytes_per_second: per_second,
            ..HubConfig::default()
        };
        config.limits.max_message_size = max_message;
        config
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_trips_once_within_a_second_and_refills_in_the_next() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let budget = 1000 + 1000 + SLACK as usize;
        let mut metered = MeteredStream::new(server, &config(1000, 1000));
        let mut client = client;
        let mut buf = vec![0u8; 1 << 20];
        // Exactly the budget passes.
        client.write_all(&vec![1; budget]).await.unwrap();
        let mut read = 0;
        while read < budget {
            read += metered.read(&mut buf).await.expect("within the budget");
        }
        // A new second: the budget is whole again.
        tokio::time::advance(WINDOW).await;
        client.write_all(&vec![1; budget]).await.unwrap();
        let mut read = 0;
        while read < budget {
            read += metered
                .read(&mut buf)
                .await
                .expect("within the next budget");
        }
        // One more byte in the same second trips it, once.
        client.write_all(&[1, 2]).await.unwrap();
        let error = metered
            .read(&mut buf[..1])
            .await
            .expect_err("over the budget");
        assert_eq!(
            InboundFlood::from_io(&error),
            Some(InboundFlood { per_second: 1000 })
        );
        assert_eq!(metered.read(&mut buf).await.expect("passes after"), 1);
    }

    #[tokio::test]
    async fn an_unlimited_byte_rate_meters_nothing() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut metered = MeteredStream::new(server, &config(0, 1000));
        client.write_all(&vec![1; 500_000]).await.unwrap();
        drop(client);
        let mut all = Vec::new();
        metered.read_to_end(&mut all).await.expect("no budget");
        assert_eq!(all.len(), 500_000);
    }
}
