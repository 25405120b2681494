//! What every transport shares, so that WebSocket and SSE write the same way: the
//! [`FrameSink`] a transport implements, the batching writer (take every frame that is
//! ready under one lock, then one write: one syscall for many frames), the write deadline
//! and the drain of queued frames before a close.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::connection::Outbound;
use crate::hub::Registration;

/// Where a transport writes outbound items: a WebSocket (text frames and pings) or an
/// event stream (`data:` lines and comments).
pub trait FrameSink {
    /// The transport's write error.
    type Error: std::fmt::Display;

    /// Writes `items` in order and flushes them: one write for the whole batch where the
    /// transport allows it.
    fn write(&mut self, items: &[Outbound]) -> impl Future<Output = Result<(), Self::Error>>;
}

/// Writes `first` and then up to `batch - 1` more items that are ready, in one write, and
/// records what was written. A turn is bounded, so the caller can read between turns.
pub async fn write_batch<S: FrameSink>(
    registration: &mut Registration,
    sink: &mut S,
    first: Outbound,
    batch: usize,
) -> Result<(), S::Error> {
    let mut items = vec![first];
    registration.recv_ready(&mut items, batch.max(1) - 1);
    sink.write(&items).await?;
    record(registration, &items);
    Ok(())
}

/// Writes what is still queued (a kick notice, for example) before the transport closes,
/// within `limit`.
pub async fn drain<S: FrameSink>(registration: &mut Registration, sink: &mut S, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        let mut items = Vec::new();
        registration.recv_ready(&mut items, usize::MAX);
        if sink.write(&items).await.is_ok() {
            record(registration, &items);
        }
    })
    .await;
}

/// Counts the messages (not the keepalives) of a written batch.
fn record(registration: &mut Registration, items: &[Outbound]) {
    let (mut messages, mut bytes) = (0u64, 0u64);
    for item in items {
        if let Outbound::Message(payload) = item {
            messages += 1;
            bytes += payload.len() as u64;
        }
    }
    registration.record_written(messages, bytes);
}

/// The write did not finish within its time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the write did not finish in time")]
#[non_exhaustive]
pub struct DeadlinePassed;

/// Runs `work` with a deadline, arming the timer only when it does not finish at once: on a
/// healthy connection a batch is written in one poll, and a timer per batch would cost more
/// than the write.
pub fn with_deadline<F: Future>(limit: Duration, work: F) -> Deadline<F> {
    Deadline {
        work,
        timer: None,
        limit,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`with_deadline`]. A plain struct rather than an `async fn`: it holds
    /// `work` once, where an `async fn` that pins its argument holds it twice, and it lives
    /// in every connection's task.
    #[derive(Debug)]
    pub struct Deadline<F> {
        #[pin]
        work: F,
        #[pin]
        timer: Option<tokio::time::Sleep>,
        limit: Duration,
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Result<F::Output, DeadlinePassed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(output) = this.work.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep(*this.limit)));
        }
        match this.timer.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(DeadlinePassed)),
            _ => Poll::Pending,
        }
    }
}
