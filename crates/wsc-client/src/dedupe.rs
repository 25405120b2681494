//! [`SeenIds`]: the message ids seen lately, so a frame the server resends (an ack that
//! crossed a resend, an offline copy of a message already received) reaches the
//! application once.

use std::collections::{HashSet, VecDeque};

/// A bounded set of message ids; the oldest is forgotten first.
#[derive(Debug)]
pub(crate) struct SeenIds {
    order: VecDeque<String>,
    ids: HashSet<String>,
    capacity: usize,
}

impl SeenIds {
    pub(crate) fn new(capacity: usize) -> Self {
        SeenIds {
            order: VecDeque::with_capacity(capacity.min(4096)),
            ids: HashSet::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
        }
    }

    /// Remembers `id`; false when it was seen already.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(id.to_owned());
        self.ids.insert(id.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_counts_once_until_it_is_forgotten() {
        let mut seen = SeenIds::new(2);
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"));
        assert!(seen.insert("b"));
        assert!(seen.insert("c"), "a is forgotten now");
        assert!(seen.insert("a"));
        assert!(!seen.insert("c"));
    }
}
