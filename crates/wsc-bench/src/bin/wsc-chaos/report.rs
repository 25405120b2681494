//! What the run prints: one line of counts per phase with the details under it (notes,
//! sample answers, duplicates, late and lost messages with the user's connections), the
//! clients' histories, and the summary with the verdict.
//!
//! Everything printed is computed from the ledger and the clients' logs, so a reader can
//! check a verdict against the ids and times it rests on.

use std::time::Instant;

use crate::Chaos;
use crate::checks;
use crate::cluster::NODE_IDS;
use crate::faults::{Fault, PhaseResult};

/// How many examples of each kind a phase shows (all are counted).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown {
    /// Messages that arrived more than once.
    pub(crate) duplicates: usize,
    /// Messages that arrived only after a forced reconnect.
    pub(crate) late: usize,
}

/// What a phase's report found.
#[derive(Debug, Default)]
pub(crate) struct Printed {
    /// Broken invariants (the phase's own and the ones the counts show).
    pub(crate) failures: Vec<String>,
    /// Messages not replayed to a connection registered while they were sent.
    pub(crate) registration_misses: usize,
}

/// Prints phase `phase` (its line and details) and returns its failures.
pub(crate) fn phase(
    chaos: &Chaos,
    phase: usize,
    fault: Fault,
    result: PhaseResult,
    begun: Instant,
    shown: Shown,
) -> Printed {
    let mut printed = Printed {
        failures: result.failures,
        ..Printed::default()
    };
    let misses = checks::registration_misses(chaos, phase);
    let records = chaos.ledger.lock();
    let tally = records.tally(Some(phase));
    println!(
        "fault={} sent={} acked={} stored_offline={} delivered={} lost={} duplicates={} \
         presence_converged_ms={} duplicate_kinds={} not_promised={} needed_reconnect={} \
         elapsed_ms={}",
        fault.name(),
        tally.sent,
        tally.acked,
        tally.stored_offline,
        tally.delivered,
        tally.lost.len(),
        tally.duplicate_count(),
        result
            .presence_ms
            .map_or_else(|| "none".to_owned(), |ms| ms.to_string()),
        tally.duplicate_kinds(),
        tally.refusals(),
        tally.needed_reconnect,
        begun.elapsed().as_millis(),
    );
    for note in &result.notes {
        println!("  note: {note}");
    }
    if tally.unpromised_delivered > 0 {
        println!(
            "  note: {} messages the API did not report as kept arrived anyway",
            tally.unpromised_delivered
        );
    }
    let samples = records.samples.iter().filter(|((p, _), _)| *p == phase);
    for ((_, kind), answer) in samples {
        println!("  answer ({kind}, first of its kind): {answer}");
    }
    for line in records.duplicate_lines(phase, chaos.started, shown.duplicates) {
        println!("  duplicate: {line}");
    }
    // Messages only a forced reconnect brought: the docs promise them on the next connect,
    // but a client whose connection is healthy has no reason to make one.
    let late = records.needed_reconnect_ids(phase);
    for id in late.iter().take(shown.late) {
        println!("  late: {}", records.describe(id, chaos.started));
    }
    if late.len() > shown.late {
        println!("  late: ... and {} more", late.len() - shown.late);
    }
    for line in &misses {
        println!("  REGISTRATION REPLAY MISSED: {line}");
    }
    for id in &tally.lost {
        println!("  LOST: {}", records.describe(id, chaos.started));
    }
    for line in &tally.misdelivered {
        println!("  MISDELIVERED: {line}");
    }
    for line in &tally.undocumented {
        println!("  UNDOCUMENTED DUPLICATE: {line}");
    }
    // The connections of every user with a late or lost message, to read the times above
    // against.
    let mut users: Vec<&str> = late
        .iter()
        .chain(&tally.lost)
        .filter_map(|id| records.sent.get(id).map(|s| s.user.as_str()))
        .collect();
    users.sort_unstable();
    users.dedup();
    for client in chaos
        .clients
        .iter()
        .filter(|c| users.contains(&c.user.as_str()))
    {
        let timeline = client.state().timeline(chaos.started);
        println!("  connections of {}: {timeline}", client.user);
    }
    if !misses.is_empty() {
        printed.failures.push(format!(
            "{} messages sent while their user's connection was being registered were not \
             replayed to it (docs/delivery.md, Sequence numbers and resume)",
            misses.len()
        ));
    }
    if !tally.lost.is_empty() {
        printed
            .failures
            .push(format!("{} accepted messages lost", tally.lost.len()));
    }
    if !tally.misdelivered.is_empty() {
        printed.failures.push(format!(
            "{} copies reached the wrong user",
            tally.misdelivered.len()
        ));
    }
    if !tally.undocumented.is_empty() {
        printed.failures.push(format!(
            "{} messages duplicated in a way docs/delivery.md does not allow",
            tally.undocumented.len()
        ));
    }
    for failure in &printed.failures {
        println!("  FAILED: {failure}");
    }
    printed.registration_misses = misses.len();
    printed
}

/// Prints the clients' histories and the summary (every phase's messages counted again: a
/// later phase may add copies, and must not lose what an earlier one delivered); returns
/// whether every invariant held.
pub(crate) fn summary(chaos: &Chaos, failures: &mut Vec<String>, misses: usize) -> bool {
    let total = chaos.ledger.lock().tally(None);
    for client in &chaos.clients {
        let state = client.state();
        println!(
            "client {} (home {}): connections={} recovered_false={} error_frames={:?} \
             acks_unsent={} endings={:?}",
            client.user,
            NODE_IDS[client.home],
            state.connections,
            state.recovered_false,
            state.error_frames,
            state.acks_unsent,
            state.endings,
        );
        if let Some(why) = state.gave_up {
            failures.push(format!("client {} gave up: {why}", client.user));
        }
    }
    if !total.lost.is_empty() {
        failures.push(format!(
            "{} accepted messages lost in all",
            total.lost.len()
        ));
    }
    if !total.undocumented.is_empty() || !total.misdelivered.is_empty() {
        failures.push(format!(
            "in all: {} messages with undocumented duplicates, {} copies to the wrong user",
            total.undocumented.len(),
            total.misdelivered.len()
        ));
    }
    let ok = failures.is_empty();
    println!(
        "summary phases={} sent={} acked={} stored_offline={} delivered={} lost={} \
         duplicates={} duplicate_kinds={} undocumented_duplicates={} not_promised={} \
         misdelivered={} needed_reconnect={} registration_replay_missed={misses} \
         elapsed_s={:.1} result={}",
        Fault::ALL.len(),
        total.sent,
        total.acked,
        total.stored_offline,
        total.delivered,
        total.lost.len(),
        total.duplicate_count(),
        total.duplicate_kinds(),
        total.undocumented.len(),
        total.refusals(),
        total.misdelivered.len(),
        total.needed_reconnect,
        chaos.started.elapsed().as_secs_f64(),
        if ok { "ok" } else { "FAILED" },
    );
    for failure in failures.iter() {
        println!("  reason: {failure}");
    }
    ok
}
