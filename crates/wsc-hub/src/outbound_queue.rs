//! One connection's outbound queue: bounded by frame count and by queued bytes, holding no
//! memory while empty, and waking its one reader through one stored waker.
//!
//! It takes the place of a bounded tokio mpsc channel. That channel allocates a
//! cache-padded header and a first block of 32 slots up front (about 1.5 KB), a quarter of
//! an idle connection's memory, for a queue that has exactly one reader and is empty almost
//! all the time.

use std::collections::VecDeque;
use std::task::{Poll, Waker};

use parking_lot::Mutex;

use crate::connection::Outbound;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds its capacity in frames, or the frame does not fit its byte bound.
    Full,
    /// The reader is gone: the connection's transport has ended.
    Closed,
}

/// A queue that grew past this many slots gives its memory back once drained, so one burst
/// does not stay with the connection for its whole life.
const KEEP_SLOTS: usize = 32;

/// The bounded queue between the hub (any number of writers) and a connection's transport
/// (one reader).
#[derive(Debug)]
pub(crate) struct OutboundQueue {
    state: Mutex<State>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Outbound>,
    /// Payload bytes queued. Kept under the same lock as the frames: a separate atomic
    /// would cost two more contended operations per delivery.
    bytes: usize,
    /// The reader waiting for a frame, if it is waiting.
    waker: Option<Waker>,
    closed: bool,
}

impl State {
    fn pop(&mut self) -> Option<Outbound> {
        let frame = self.frames.pop_front();
        self.bytes -= frame.as_ref().map_or(0, frame_bytes);
        self.release_burst();
        frame
    }

    fn release_burst(&mut self) {
        if self.frames.is_empty() && self.frames.capacity() > KEEP_SLOTS {
            self.frames = VecDeque::new();
        }
    }
}

impl OutboundQueue {
    /// An empty queue for at most `capacity` frames (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        OutboundQueue {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
        }
    }

    /// Queues `frame` without waiting, and wakes the reader. `max_bytes` bounds the payload
    /// bytes queued; a frame larger than the bound still goes into a queue that holds no
    /// payload bytes, so no message is too large to be delivered at all, and a keepalive
    /// (no payload) is bounded by the frame count only.
    pub(crate) fn push(&self, frame: Outbound, max_bytes: usize) -> Result<(), Refused> {
        let len = frame_bytes(&frame);
        let waker = {
            let mut state = self.state.lock();
            if state.closed {
                return Err(Refused::Closed);
            }
            let fits = len == 0 || state.bytes == 0 || state.bytes.saturating_add(len) <= max_bytes;
            if state.frames.len() >= self.capacity || !fits {
                return Err(Refused::Full);
            }
            state.bytes += len;
            state.frames.push_back(frame);
            state.waker.take()
        };
        // Woken outside the lock, so the reader does not wake into a held lock.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The next frame if one is queued.
    pub(crate) fn try_pop(&self) -> Option<Outbound> {
        self.state.lock().pop()
    }

    /// Moves up to `max` queued frames, oldest first, to the end of `into` under one lock: a
    /// writer taking its batch frame by frame would take the lock once per frame, and the
    /// lock's cache line would travel between the writer's core and the publisher's.
    pub(crate) fn pop_ready(&self, into: &mut Vec<Outbound>, max: usize) {
        let mut state = self.state.lock();
        let take = state.frames.len().min(max);
        let mut bytes = 0;
        into.extend(
            state
                .frames
                .drain(..take)
                .inspect(|frame| bytes += frame_bytes(frame)),
        );
        state.bytes -= bytes;
        state.release_burst();
    }

    /// The next frame, waiting for one; `None` once the queue is closed. Cancel-safe: a
    /// frame is taken only when the future completes.
    pub(crate) async fn pop(&self) -> Option<Outbound> {
        std::future::poll_fn(|cx| {
            let mut state = self.state.lock();
            if let Some(frame) = state.pop() {
                return Poll::Ready(Some(frame));
            }
            if state.closed {
                return Poll::Ready(None);
            }
            match &state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Refuses every later frame and drops the queued ones (the reader is gone).
    pub(crate) fn close(&self) {
        let (frames, waker) = {
            let mut state = self.state.lock();
            state.closed = true;
            state.bytes = 0;
            (std::mem::take(&mut state.frames), state.waker.take())
        };
        drop(frames);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Frames queued now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().frames.len()
    }
}

fn frame_bytes(frame: &Outbound) -> usize {
    match frame {
        Outbound::Message(payload) => payload.len(),
        Outbound::Keepalive => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Payload;

    fn frame(text: &str) -> Outbound {
        Outbound::Message(Payload::from_json(format!("{{\"t\":{text:?}}}")).unwrap())
    }

    fn text(frame: Option<Outbound>) -> String {
        match frame {
            Some(Outbound::Message(p)) => {
                let value: serde_json::Value = serde_json::from_str(p.as_str()).unwrap();
                value["t"].as_str().unwrap().to_owned()
            }
            Some(Outbound::Keepalive) => "keepalive".to_owned(),
            None => "none".to_owned(),
        }
    }

    #[test]
    fn frames_come_out_in_order_and_the_bound_refuses_the_next() {
        let queue = OutboundQueue::new(2);
        assert_eq!(queue.push(frame("a"), usize::MAX), Ok(()));
        assert_eq!(queue.push(frame("b"), usize::MAX), Ok(()));
        assert_eq!(queue.push(frame("c"), usize::MAX), Err(Refused::Full));
        assert_eq!(text(queue.try_pop()), "a");
        assert_eq!(queue.push(Outbound::Keepalive, usize::MAX), Ok(()));
        assert_eq!(text(queue.try_pop()), "b");
        assert_eq!(text(queue.try_pop()), "keepalive");
        assert_eq!(text(queue.try_pop()), "none");
    }

    #[test]
    fn the_byte_bound_refuses_what_does_not_fit_but_never_an_empty_queue() {
        let queue = OutboundQueue::new(100);
        let big = frame(&"x".repeat(100));
        let len = frame_bytes(&big);
        assert_eq!(
            queue.push(big.clone(), len / 2),
            Ok(()),
            "an empty queue takes it"
        );
        assert_eq!(queue.push(frame("a"), len / 2), Err(Refused::Full));
        assert_eq!(
            queue.push(Outbound::Keepalive, len / 2),
            Ok(()),
            "keepalives weigh nothing"
        );
        queue.try_pop();
        assert_eq!(queue.state.lock().bytes, 0);
        assert_eq!(queue.push(frame("a"), len / 2), Ok(()));
    }

    #[test]
    fn a_closed_queue_drops_what_it_held_and_refuses_more() {
        let queue = OutboundQueue::new(4);
        queue.push(frame("a"), usize::MAX).unwrap();
        queue.close();
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.push(frame("b"), usize::MAX), Err(Refused::Closed));
    }

    #[test]
    fn a_drained_queue_gives_back_the_memory_of_a_burst() {
        let queue = OutboundQueue::new(1000);
        for _ in 0..500 {
            queue.push(frame("x"), usize::MAX).unwrap();
        }
        while queue.try_pop().is_some() {}
        assert_eq!(queue.state.lock().frames.capacity(), 0);
    }

    #[test]
    fn a_batch_takes_the_oldest_frames_up_to_its_bound_and_frees_their_bytes() {
        let queue = OutboundQueue::new(10);
        for name in ["a", "b", "c"] {
            queue.push(frame(name), usize::MAX).unwrap();
        }
        queue.push(Outbound::Keepalive, usize::MAX).unwrap();
        let mut batch = vec![frame("first")];
        queue.pop_ready(&mut batch, 2);
        let names: Vec<_> = batch.into_iter().map(|f| text(Some(f))).collect();
        assert_eq!(names, ["first", "a", "b"]);
        let rest = frame_bytes(&frame("c"));
        assert_eq!(queue.state.lock().bytes, rest);
        let mut batch = Vec::new();
        queue.pop_ready(&mut batch, 64);
        assert_eq!(batch.len(), 2, "c and the keepalive");
        assert_eq!(queue.state.lock().bytes, 0);
        queue.pop_ready(&mut batch, 64);
        assert_eq!(batch.len(), 2, "nothing more");
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_a_push_and_by_close() {
        let queue = std::sync::Arc::new(OutboundQueue::new(4));
        let reader = tokio::spawn({
            let queue = queue.clone();
            async move { (text(queue.pop().await), text(queue.pop().await)) }
        });
        tokio::task::yield_now().await;
        queue.push(frame("a"), usize::MAX).unwrap();
        tokio::task::yield_now().await;
        queue.close();
        assert_eq!(reader.await.unwrap(), ("a".to_owned(), "none".to_owned()));
    }
}
