//! The ledger: every message the run sent (and what the API answered), every copy a client
//! received, and the counts each phase's line prints.
//!
//! It is the one place both sides write to, so that the invariants are computed from facts
//! recorded as they happened, never from what the run expected to happen. Senders record a
//! send before the request leaves and its outcome when the answer arrives; clients record
//! each copy of a message before they ack it, so an `acked` outcome always has a receipt.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// What the API answered for one acknowledged send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `200`, status `acked`: a client acked it.
    Acked,
    /// `200`, status `stored_offline`: not acked in time, or nobody had the user; kept for
    /// replay. The documented promise is that it still reaches the user.
    StoredOffline,
    /// `200` with another status (`timed_out`, `offline`): the API promised nothing.
    NotKept(String),
    /// An HTTP error status (`503 unavailable` while Redis is down): refused.
    Refused(u16, String),
    /// No answer at all (the request failed or timed out): unknown.
    Failed(String),
}

impl Outcome {
    /// Whether the API reported the message as acknowledged or kept: the messages the
    /// no-loss invariant covers.
    pub(crate) fn accepted(&self) -> bool {
        matches!(self, Outcome::Acked | Outcome::StoredOffline)
    }
}

/// One send.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    /// The user it was sent to.
    pub(crate) user: String,
    /// The phase it was sent in (an index into the run's phases).
    pub(crate) phase: usize,
    /// When the request left.
    pub(crate) at: Instant,
    /// What the API answered; `None` while the request is in flight.
    pub(crate) outcome: Option<Outcome>,
    /// `attempts` of the outcome (deliveries the origin made).
    pub(crate) attempts: u64,
    /// When the answer came.
    pub(crate) answered: Option<Instant>,
}

/// How a copy of a message reached a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Via {
    /// A live frame: the first delivery or a resend (the same `message_id` and `seq_no`).
    Live,
    /// Replayed from the offline store (`source: "offline"`).
    Offline,
    /// Replayed from the resume window after a connect with `last_seq`, before the
    /// `recovered` frame.
    Resume,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Live => "live",
            Via::Offline => "offline",
            Via::Resume => "resume",
        }
    }
}

/// One copy a client received.
#[derive(Debug, Clone)]
pub(crate) struct Copy {
    /// The user whose client received it.
    pub(crate) user: String,
    /// The node the client was connected to.
    pub(crate) node: String,
    /// The connection (the client's count of connections so far) it arrived on.
    pub(crate) connection: u32,
    /// How it came.
    pub(crate) via: Via,
    /// When it arrived.
    pub(crate) at: Instant,
    /// Its `receiver` field.
    pub(crate) receiver: String,
    /// Its `seq_no`.
    pub(crate) seq: i64,
}

/// Everything recorded so far.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// Sends by message id.
    pub(crate) sent: HashMap<String, Sent>,
    /// Copies by message id, in arrival order.
    pub(crate) received: HashMap<String, Vec<Copy>>,
    /// Message ids received only after the run closed the user's connection on purpose to
    /// get the offline replay (the user stayed connected, so nothing else would have
    /// brought them).
    pub(crate) needed_reconnect: HashMap<String, usize>,
    /// The first answer of each kind the API gave that promised nothing (`200 offline`,
    /// `503 unavailable`, ...), by phase and kind: shown as they came.
    pub(crate) samples: BTreeMap<(usize, String), String>,
}

/// The shared ledger.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger(Arc<Mutex<Records>>);

impl Ledger {
    /// The records, locked (never held across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Records> {
        // A panic while holding it leaves consistent data: every write is one insert.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A send is about to leave.
    pub(crate) fn sending(&self, id: &str, user: &str, phase: usize) {
        self.lock().sent.insert(
            id.to_owned(),
            Sent {
                user: user.to_owned(),
                phase,
                at: Instant::now(),
                outcome: None,
                attempts: 0,
                answered: None,
            },
        );
    }

    /// The API answered (or did not).
    pub(crate) fn answered(&self, id: &str, outcome: Outcome, attempts: u64) {
        if let Some(sent) = self.lock().sent.get_mut(id) {
            sent.outcome = Some(outcome);
            sent.attempts = attempts;
            sent.answered = Some(Instant::now());
        }
    }

    /// Keeps `answer` as the sample of `kind` in `phase` unless there is one.
    pub(crate) fn sample(&self, phase: usize, kind: String, answer: String) {
        self.lock().samples.entry((phase, kind)).or_insert(answer);
    }

    /// A client received a copy.
    pub(crate) fn received(&self, id: &str, copy: Copy) {
        self.lock()
            .received
            .entry(id.to_owned())
            .or_default()
            .push(copy);
    }
}

/// The counts of one phase (or of the whole run, with `phase: None`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    /// Requests made.
    pub(crate) sent: usize,
    /// Outcomes `acked`.
    pub(crate) acked: usize,
    /// Outcomes `stored_offline`.
    pub(crate) stored_offline: usize,
    /// Other `200` outcomes (`timed_out`, `offline`), by status.
    pub(crate) not_kept: BTreeMap<String, usize>,
    /// HTTP refusals, by status and error code.
    pub(crate) refused: BTreeMap<String, usize>,
    /// Requests without an answer.
    pub(crate) failed: usize,
    /// Sends still without an answer.
    pub(crate) in_flight: usize,
    /// Accepted messages (acked or stored offline) received at least once by their user.
    pub(crate) delivered: usize,
    /// Accepted messages never received by their user: the no-loss invariant is
    /// `lost == 0`.
    pub(crate) lost: Vec<String>,
    /// Copies beyond the first, by how the extra copy came.
    pub(crate) duplicates: BTreeMap<&'static str, usize>,
    /// Duplicates of a kind docs/delivery.md does not explain: copies of one message with
    /// different `seq_no`s (a resend, an offline replay and a resume all keep the number),
    /// or more live copies than the origin made attempts (each attempt is one delivery to
    /// each live connection, and a user has one connection here at a time).
    pub(crate) undocumented: Vec<String>,
    /// Copies received by a client of another user than the one sent to, or whose
    /// `receiver` names another user.
    pub(crate) misdelivered: Vec<String>,
    /// Messages that were not accepted and arrived anyway (allowed: the API promised
    /// nothing about them, either way).
    pub(crate) unpromised_delivered: usize,
    /// Accepted messages received only after a reconnect the run forced.
    pub(crate) needed_reconnect: usize,
}

impl Tally {
    /// All duplicate copies.
    pub(crate) fn duplicate_count(&self) -> usize {
        self.duplicates.values().sum()
    }

    /// `live=N,offline=N,resume=N` (only the kinds seen), or `-`.
    pub(crate) fn duplicate_kinds(&self) -> String {
        join_counts(self.duplicates.iter().map(|(k, v)| (*k, *v)))
    }

    /// `timed_out=N,...` and `503:unavailable=N,...` together, or `-`.
    pub(crate) fn refusals(&self) -> String {
        let not_kept = self.not_kept.iter().map(|(k, v)| (k.as_str(), *v));
        let refused = self.refused.iter().map(|(k, v)| (k.as_str(), *v));
        let failed = std::iter::once(("no_answer", self.failed)).filter(|(_, n)| *n > 0);
        join_counts(not_kept.chain(refused).chain(failed))
    }
}

fn join_counts<'a>(counts: impl Iterator<Item = (&'a str, usize)>) -> String {
    let mut out = String::new();
    for (name, count) in counts {
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{name}={count}");
    }
    if out.is_empty() { "-".to_owned() } else { out }
}

impl Records {
    /// The counts of the sends of `phase` (every phase with `None`).
    pub(crate) fn tally(&self, phase: Option<usize>) -> Tally {
        let mut tally = Tally::default();
        for (id, sent) in &self.sent {
            if phase.is_some_and(|p| p != sent.phase) {
                continue;
            }
            tally.sent += 1;
            match &sent.outcome {
                None => tally.in_flight += 1,
                Some(Outcome::Acked) => tally.acked += 1,
                Some(Outcome::StoredOffline) => tally.stored_offline += 1,
                Some(Outcome::NotKept(status)) => {
                    *tally.not_kept.entry(status.clone()).or_default() += 1
                }
                Some(Outcome::Refused(status, code)) => {
                    *tally.refused.entry(format!("{status}:{code}")).or_default() += 1
                }
                Some(Outcome::Failed(_)) => tally.failed += 1,
            }
            let copies = self.received.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let accepted = sent.outcome.as_ref().is_some_and(Outcome::accepted);
            let mut own = 0;
            for copy in copies {
                if copy.user != sent.user || copy.receiver != sent.user {
                    tally.misdelivered.push(format!(
                        "{id} (sent to {}) reached a client of {} with receiver {:?}",
                        sent.user, copy.user, copy.receiver
                    ));
                    continue;
                }
                own += 1;
                if own > 1 {
                    *tally.duplicates.entry(copy.via.name()).or_default() += 1;
                }
            }
            let own_copies = || copies.iter().filter(|c| c.user == sent.user);
            let seqs: std::collections::BTreeSet<i64> = own_copies().map(|c| c.seq).collect();
            if seqs.len() > 1 {
                tally
                    .undocumented
                    .push(format!("{id}: copies with different seq_no {seqs:?}"));
            }
            let live = own_copies().filter(|c| c.via == Via::Live).count() as u64;
            let counted = matches!(
                sent.outcome,
                Some(Outcome::Acked | Outcome::StoredOffline | Outcome::NotKept(_))
            );
            if counted && live > sent.attempts {
                tally.undocumented.push(format!(
                    "{id}: {live} live copies for {} attempts ({:?})",
                    sent.attempts, sent.outcome
                ));
            }
            match (accepted, own > 0) {
                (true, true) => {
                    tally.delivered += 1;
                    if self.needed_reconnect.contains_key(id) {
                        tally.needed_reconnect += 1;
                    }
                }
                (true, false) => tally.lost.push(id.clone()),
                (false, true) => tally.unpromised_delivered += 1,
                (false, false) => {}
            }
        }
        tally.lost.sort();
        tally
    }

    /// The accepted messages of `phase` that their user has not received yet, by user.
    pub(crate) fn missing(&self, phase: usize) -> BTreeMap<String, Vec<String>> {
        let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, sent) in &self.sent {
            let accepted = sent.outcome.as_ref().is_some_and(Outcome::accepted);
            if sent.phase != phase || !accepted {
                continue;
            }
            let arrived = self
                .received
                .get(id)
                .is_some_and(|copies| copies.iter().any(|c| c.user == sent.user));
            if !arrived {
                missing
                    .entry(sent.user.clone())
                    .or_default()
                    .push(id.clone());
            }
        }
        missing
    }

    /// Sends of `phase` made after `since` that were acked.
    pub(crate) fn acked_since(&self, phase: usize, since: Instant) -> usize {
        self.sent
            .values()
            .filter(|s| s.phase == phase && s.at > since && s.outcome == Some(Outcome::Acked))
            .count()
    }

    /// Whether any send of `phase` is still waiting for its answer.
    pub(crate) fn in_flight(&self, phase: usize) -> usize {
        self.sent
            .values()
            .filter(|s| s.phase == phase && s.outcome.is_none())
            .count()
    }

    /// Up to `limit` messages of `phase` that arrived more than once, one line each: the
    /// copies in arrival order, as `via@node#connection seq=N +ms`.
    pub(crate) fn duplicate_lines(
        &self,
        phase: usize,
        started: Instant,
        limit: usize,
    ) -> Vec<String> {
        let mut lines: Vec<(Instant, String)> = Vec::new();
        for (id, sent) in &self.sent {
            let Some(copies) = self.received.get(id) else {
                continue;
            };
            if sent.phase != phase || copies.len() < 2 {
                continue;
            }
            let mut line = format!("{id} ({:?}):", sent.outcome);
            for copy in copies {
                let _ = write!(
                    line,
                    " {}@{}#{} seq={} +{}ms",
                    copy.via.name(),
                    copy.node,
                    copy.connection,
                    copy.seq,
                    copy.at.duration_since(started).as_millis()
                );
            }
            lines.push((sent.at, line));
        }
        lines.sort_by_key(|(at, _)| *at);
        lines.into_iter().take(limit).map(|(_, l)| l).collect()
    }

    /// The messages of `phase` that arrived only after a forced reconnect, in send order.
    pub(crate) fn needed_reconnect_ids(&self, phase: usize) -> Vec<String> {
        let mut ids: Vec<(&Instant, &String)> = self
            .needed_reconnect
            .iter()
            .filter(|(_, p)| **p == phase)
            .filter_map(|(id, _)| self.sent.get(id).map(|s| (&s.at, id)))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id.clone()).collect()
    }

    /// What is known about one message: its send, its answer and its copies, times in ms
    /// since `started`.
    pub(crate) fn describe(&self, id: &str, started: Instant) -> String {
        let Some(sent) = self.sent.get(id) else {
            return format!("{id}: never sent");
        };
        let ms = |at: Instant| at.saturating_duration_since(started).as_millis();
        let mut line = format!(
            "{id}: to {} sent +{}ms, answered {} {:?} after {} attempts; copies:",
            sent.user,
            ms(sent.at),
            sent.answered
                .map_or("never".to_owned(), |at| format!("+{}ms", ms(at))),
            sent.outcome,
            sent.attempts
        );
        let copies = self.received.get(id).map(Vec::as_slice).unwrap_or(&[]);
        if copies.is_empty() {
            line.push_str(" none");
        }
        for copy in copies {
            let _ = write!(
                line,
                " {}@{}#{} seq={} +{}ms",
                copy.via.name(),
                copy.node,
                copy.connection,
                copy.seq,
                ms(copy.at)
            );
        }
        line
    }
}
