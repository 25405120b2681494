//! The hub's outbound WebSocket frames written straight from their shared payloads.
//!
//! A fan-out hands every recipient the same encoded [`Payload`] (a refcount). tungstenite
//! would copy each frame into the connection's write buffer and write when the buffer is
//! full, so a 4 KiB buffer meant one syscall per nine 430-byte frames, and a larger buffer
//! stayed allocated after the burst. Here a batch of frames is written with one vectored
//! write: a few header bytes per frame and the payload bytes themselves, no copy and no
//! buffer that outlives the write. Reading, control replies (pong, close) and the close
//! handshake stay with tungstenite; the caller flushes tungstenite's buffer before each
//! batch, so the bytes of two writers never interleave.
//!
//! Server frames are unmasked (RFC 6455 section 5.1) and this hub negotiates no extension,
//! so a frame is its header (2, 4 or 10 bytes) and the payload.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;

use tokio::io::AsyncWrite;

use crate::connection::Outbound;

/// Linux refuses a vectored write of more than 1024 buffers (`IOV_MAX`); a batch larger than
/// that is written in several calls.
const MAX_SLICES: usize = 1024;

/// The longest frame header: opcode byte, length marker and a 64-bit length.
const MAX_HEADER: usize = 10;

/// FIN with the text opcode.
const TEXT: u8 = 0x81;

/// FIN with the ping opcode.
const PING: u8 = 0x89;

/// The header of one unmasked, final frame and how many of its bytes are used.
fn header(opcode: u8, len: usize) -> ([u8; MAX_HEADER], usize) {
    let mut head = [0u8; MAX_HEADER];
    head[0] = opcode;
    let used = if len < 126 {
        // The length fits the second byte (the cast cannot truncate below 126).
        head[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        head[1] = 126;
        head[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (head, used)
}

/// The header and body of one outbound item.
fn frame(item: &Outbound) -> (([u8; MAX_HEADER], usize), &[u8]) {
    match item {
        Outbound::Message(payload) => (header(TEXT, payload.len()), payload.bytes()),
        Outbound::Keepalive => (header(PING, 0), &[]),
    }
}

/// Writes `items` as WebSocket frames, in order, with as few writes as the stream allows:
/// one vectored write per batch on a stream that supports them (a TCP socket), one write
/// of a joined copy otherwise. Returns when every byte is written or the stream fails.
pub(crate) async fn write_frames<W>(io: &mut W, items: &[Outbound]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if items.is_empty() {
        return Ok(());
    }
    let heads: Vec<_> = items.iter().map(frame).collect();
    if !io.is_write_vectored() {
        let total = heads.iter().map(|((_, n), body)| n + body.len()).sum();
        let mut joined = Vec::with_capacity(total);
        for ((head, n), body) in &heads {
            joined.extend_from_slice(&head[..*n]);
            joined.extend_from_slice(body);
        }
        return write_all(io, &mut [IoSlice::new(&joined)]).await;
    }
    let mut slices = Vec::with_capacity(heads.len() * 2);
    for ((head, n), body) in &heads {
        slices.push(IoSlice::new(&head[..*n]));
        if !body.is_empty() {
            slices.push(IoSlice::new(body));
        }
    }
    write_all(io, &mut slices).await
}

/// Writes every byte of `slices`, resuming after partial writes.
async fn write_all<W>(io: &mut W, mut slices: &mut [IoSlice<'_>]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    while !slices.is_empty() {
        let window = &slices[..slices.len().min(MAX_SLICES)];
        let written = poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, window)).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};

    use futures_util::StreamExt;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;
    use crate::codec::Payload;

    fn text(len: usize) -> Outbound {
        let body = format!("{{\"content\":\"{}\"}}", "x".repeat(len - 14));
        Outbound::Message(Payload::from_json(body).expect("a JSON object"))
    }

    /// A stream that takes at most `step` bytes per write (vectored or not), so every frame
    /// boundary and header is split somewhere.
    struct Trickle {
        written: Vec<u8>,
        step: usize,
        vectored: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            assert!(
                bufs.len() <= MAX_SLICES,
                "{} slices in one write",
                bufs.len()
            );
            let mut left = self.step;
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(left);
                self.written.extend_from_slice(&buf[..take]);
                (left, n) = (left - take, n + take);
                if left == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Reads what was written with tungstenite as a client would (its pong replies go
    /// nowhere).
    async fn read_back(bytes: Vec<u8>) -> Vec<Message> {
        let stream = tokio::io::join(std::io::Cursor::new(bytes), tokio::io::sink());
        let mut ws = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
        let mut messages = Vec::new();
        while let Some(Ok(message)) = ws.next().await {
            messages.push(message);
        }
        messages
    }

    #[tokio::test]
    async fn every_length_class_reads_back_in_order_whatever_the_writes_take() {
        // Short (7-bit length), medium (16-bit) and long (64-bit) frames and a ping.
        let items = vec![
            text(20),
            text(125),
            text(126),
            Outbound::Keepalive,
            text(70_000),
        ];
        for (step, vectored) in [(1, true), (3, true), (7, false), (1 << 20, true)] {
            let mut io = Trickle {
                written: Vec::new(),
                step,
                vectored,
            };
            write_frames(&mut io, &items).await.expect("written");
            let read = read_back(io.written).await;
            assert_eq!(read.len(), items.len(), "step {step}");
            for (item, message) in items.iter().zip(&read) {
                match (item, message) {
                    (Outbound::Message(payload), Message::Text(text)) => {
                        assert_eq!(text.as_str(), payload.as_str(), "step {step}")
                    }
                    (Outbound::Keepalive, Message::Ping(data)) => assert!(data.is_empty()),
                    other => panic!("step {step}: {other:?}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_system_limit_is_split_into_several_writes() {
        let items: Vec<_> = (0..700).map(|_| text(30)).collect();
        let mut io = Trickle {
            written: Vec::new(),
            step: usize::MAX,
            vectored: true,
        };
        write_frames(&mut io, &items).await.expect("written");
        assert_eq!(read_back(io.written).await.len(), 700);
    }

    #[tokio::test]
    async fn a_stream_that_takes_nothing_is_an_error_not_a_spin() {
        let mut io = Trickle {
            written: Vec::new(),
            step: 0,
            vectored: true,
        };
        let error = write_frames(&mut io, &[text(20)]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WriteZero);
    }
}
