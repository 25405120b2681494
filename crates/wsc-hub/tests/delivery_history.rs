//! The history seam: a shared `HistoryStore` numbers a user's messages across nodes and
//! lets a client resume on another node; a message numbered while a client registers is
//! replayed to it; a refused message takes no number; while the shared store cannot be
//! reached, messages leave unnumbered, stay out of the window and count as cluster errors.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::{contents, drain_messages, next_message, started};
use wsc_hub::codec::{self, UNNUMBERED};
use wsc_hub::{
    BoxFuture, HistoryStore, Hub, HubConfig, HubMessage, Identity, MemoryBackplane, MemoryHistory,
    NewEntry, SendError, StoreError, Window, WindowLimits,
};

fn seqs(frames: &[Value]) -> Vec<i64> {
    frames
        .iter()
        .map(|f| f["seq_no"].as_i64().unwrap_or(-1))
        .collect()
}

/// Two started hubs in one cluster sharing one history store.
fn two_nodes(history: Arc<dyn HistoryStore>) -> (Hub, Hub) {
    let backplane = MemoryBackplane::new();
    let node = |name: &str| {
        let mut config = HubConfig::default();
        config.node_id = name.to_owned();
        config.offline_enabled = false;
        let hub = Hub::new(config);
        hub.set_backplane(Arc::new(backplane.clone()));
        hub.set_history(history.clone());
        hub.start();
        hub
    };
    (node("a"), node("b"))
}

#[tokio::test]
async fn numbers_are_per_user_across_nodes_and_a_client_resumes_on_another_node() {
    let (a, b) = two_nodes(Arc::new(MemoryHistory::new()));
    let mut phone = a.register(Identity::new("alice")).await.unwrap();
    // One sender, one message at a time (a frame from another node takes a hop, so only
    // the order of one sender's sends is promised).
    let mut live = Vec::new();
    for (node, text) in [(&a, "one"), (&b, "two"), (&a, "three")] {
        node.send_to_user("alice", HubMessage::text(text))
            .await
            .unwrap();
        live.push(next_message(&mut phone).await);
    }
    assert_eq!(contents(&live), ["one", "two", "three"]);
    assert_eq!(
        seqs(&live),
        [1, 2, 3],
        "one counter for the user, whichever node sent"
    );
    drop(phone);

    // The phone saw seq 1 only, and reconnects to the other node.
    let mut again = b
        .register(Identity::new("alice").with_last_seq(1))
        .await
        .unwrap();
    let frames = drain_messages(&mut again);
    let (notice, replayed) = frames.split_last().unwrap();
    assert_eq!(contents(replayed), ["two", "three"]);
    assert_eq!(seqs(replayed), [2, 3]);
    assert_eq!(notice["message_type"], "recovered");
    assert_eq!(notice["data"]["recovered"], true);
    assert_eq!(notice["data"]["latest_seq"], 3);
}

/// A shared store in which another node numbers a message for the user right after the
/// first read of a resume, before the connection is admitted.
struct RacingHistory {
    inner: MemoryHistory,
    raced: AtomicBool,
}

impl HistoryStore for RacingHistory {
    fn append(
        &self,
        user_id: &str,
        entry: NewEntry,
        limits: WindowLimits,
    ) -> BoxFuture<Result<i64, StoreError>> {
        self.inner.append(user_id, entry, limits)
    }

    fn read(&self, user_id: &str, after: i64) -> BoxFuture<Result<Window, StoreError>> {
        let window = self.inner.read(user_id, after);
        if !self.raced.swap(true, Ordering::SeqCst) {
            let mut msg = HubMessage::text("numbered meanwhile");
            msg.message_id = "meanwhile".to_owned();
            msg.seq_no = UNNUMBERED;
            let entry = NewEntry::new("meanwhile", codec::encode(&msg).unwrap());
            let limits = WindowLimits::new(100, Duration::from_secs(60));
            // Ready at once: the in-memory store completes synchronously.
            drop(self.inner.append(user_id, entry, limits));
        }
        window
    }
}

#[tokio::test]
async fn a_message_numbered_while_the_client_registers_is_replayed_to_it() {
    let history = Arc::new(RacingHistory {
        inner: MemoryHistory::new(),
        raced: AtomicBool::new(true),
    });
    let (a, _b) = two_nodes(history.clone());
    a.send_to_user("alice", HubMessage::text("before"))
        .await
        .unwrap();
    history.raced.store(false, Ordering::SeqCst);

    let mut phone = a
        .register(Identity::new("alice").with_last_seq(1))
        .await
        .unwrap();
    let frames = drain_messages(&mut phone);
    let (notice, replayed) = frames.split_last().unwrap();
    assert_eq!(contents(replayed), ["numbered meanwhile"]);
    assert_eq!(seqs(replayed), [2]);
    assert_eq!(notice["data"]["recovered"], true);
    assert_eq!(notice["data"]["replayed"], 1);
    assert_eq!(notice["data"]["latest_seq"], 2);
}

#[tokio::test]
async fn a_user_message_too_large_for_its_number_is_refused_and_takes_no_number() {
    let limit = 4096;
    let hub = started(support::config(|c| c.max_outbound_message_size = limit));
    let mut phone = hub.register(Identity::new("alice")).await.unwrap();
    // Encoded without a number it would fit; with room for its `seq_no` it does not.
    let mut probe = HubMessage::text("");
    probe.id = "x".repeat(36);
    probe.message_id = probe.id.clone();
    probe.create_at = "2026-11-29T00:00:00Z".to_owned();
    probe.sender = "system".to_owned();
    probe.sender_type = "system".to_owned();
    probe.receiver = "alice".to_owned();
    probe.seq_no = UNNUMBERED;
    let overhead = codec::encode(&probe).unwrap().len();
    let mut big = probe.clone();
    big.seq_no = 0;
    big.content = "y".repeat(limit - overhead - codec::SEQ_ROOM + 1);
    let refused = hub.send_to_user("alice", big.clone()).await;
    assert!(
        matches!(refused, Err(SendError::TooLarge { size, .. }) if size == limit + 1),
        "{refused:?}"
    );
    big.content.pop();
    big.id = "y".repeat(36);
    big.message_id = big.id.clone();
    hub.send_to_user("alice", big).await.unwrap();
    let frames = drain_messages(&mut phone);
    assert_eq!(seqs(&frames), [1], "the refused message took no number");
    let raw = serde_json::to_string(&frames[0]).unwrap();
    assert!(
        raw.len() <= limit,
        "a delivered frame stays within the limit"
    );
}

/// A shared store that cannot be reached while `down` is set.
struct UnreachableHistory {
    inner: MemoryHistory,
    down: AtomicBool,
}

impl UnreachableHistory {
    fn unavailable<T: Send + 'static>(&self) -> Option<BoxFuture<Result<T, StoreError>>> {
        self.down.load(Ordering::SeqCst).then(|| {
            let refused: BoxFuture<Result<T, StoreError>> =
                Box::pin(async { Err(StoreError::Unavailable("connection refused".to_owned())) });
            refused
        })
    }
}

impl HistoryStore for UnreachableHistory {
    fn append(
        &self,
        user_id: &str,
        entry: NewEntry,
        limits: WindowLimits,
    ) -> BoxFuture<Result<i64, StoreError>> {
        self.unavailable()
            .unwrap_or_else(|| self.inner.append(user_id, entry, limits))
    }

    fn read(&self, user_id: &str, after: i64) -> BoxFuture<Result<Window, StoreError>> {
        self.unavailable()
            .unwrap_or_else(|| self.inner.read(user_id, after))
    }
}

#[tokio::test]
async fn with_the_shared_history_unreachable_messages_leave_unnumbered_and_count_as_cluster_errors()
{
    let history = Arc::new(UnreachableHistory {
        inner: MemoryHistory::new(),
        down: AtomicBool::new(false),
    });
    let (a, b) = two_nodes(history.clone());
    let mut phone = a.register(Identity::new("alice")).await.unwrap();
    a.send_to_user("alice", HubMessage::text("one"))
        .await
        .unwrap();

    history.down.store(true, Ordering::SeqCst);
    let report = a
        .send_to_user("alice", HubMessage::text("two"))
        .await
        .expect("local delivery goes on");
    assert_eq!(report.delivered, 1);
    assert_eq!(a.stats().cluster_errors, 1);
    history.down.store(false, Ordering::SeqCst);

    a.send_to_user("alice", HubMessage::text("three"))
        .await
        .unwrap();
    let live = drain_messages(&mut phone);
    assert_eq!(contents(&live), ["one", "two", "three"]);
    assert_eq!(seqs(&live), [1, 0, 2], "the unnumbered one took no number");
    assert_eq!(a.stats().cluster_errors, 1);
    drop(phone);

    // The window never held it: a resume from 0 on the other node replays the numbered ones.
    let mut again = b
        .register(Identity::new("alice").with_last_seq(0))
        .await
        .unwrap();
    let frames = drain_messages(&mut again);
    let (notice, replayed) = frames.split_last().unwrap();
    assert_eq!(contents(replayed), ["one", "three"]);
    assert_eq!(notice["data"]["recovered"], true, "{notice}");
    assert_eq!(notice["data"]["latest_seq"], 2, "{notice}");
    assert_eq!(b.stats().cluster_errors, 0);
}
