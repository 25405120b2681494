//! [`Readiness`]: whether every pub/sub connection of a node is subscribed, as one watched
//! value. On one Redis a node has one connection; on a cluster one per channel, each
//! following its own shard, and the node counts as subscribed only while all of them are:
//! a node that misses either channel must not announce itself.

use parking_lot::Mutex;
use tokio::sync::watch;

/// The subscribed state of each part, and whether all are subscribed.
#[derive(Debug)]
pub(crate) struct Readiness {
    parts: Mutex<Vec<bool>>,
    all: watch::Sender<bool>,
}

impl Readiness {
    /// `parts` parts, none subscribed yet, and a receiver of "all subscribed".
    pub(crate) fn new(parts: usize) -> (Self, watch::Receiver<bool>) {
        let (all, receiver) = watch::channel(false);
        let readiness = Readiness {
            parts: Mutex::new(vec![false; parts]),
            all,
        };
        (readiness, receiver)
    }

    /// Records the state of part `part`.
    pub(crate) fn set(&self, part: usize, subscribed: bool) {
        let mut parts = self.parts.lock();
        parts[part] = subscribed;
        // Sent under the lock, so that two parts changing at once cannot publish their
        // conclusions in the wrong order.
        self.all.send_replace(parts.iter().all(|s| *s));
    }
}

#[cfg(test)]
mod tests {
    use super::Readiness;

    #[test]
    fn subscribed_only_while_every_part_is() {
        let (readiness, all) = Readiness::new(2);
        assert!(!*all.borrow());
        readiness.set(0, true);
        assert!(!*all.borrow());
        readiness.set(1, true);
        assert!(*all.borrow());
        readiness.set(0, false);
        assert!(!*all.borrow());
        readiness.set(0, true);
        assert!(*all.borrow());
    }
}
