//! The abuse suite (`wsc_bench::abuse`) in the test command: every attack against the real
//! `gateway-server` binary, each in a fresh process, with its expected outcome checked by the
//! attack and, around it, the server still serving a canary and a newcomer, its connections
//! and descriptors back to where they were. `cargo xtask abuse` runs the same attacks against
//! the release binary and prints the memory table of docs/security.md.

use std::path::Path;

async fn attack(name: &str) {
    let attack = wsc_bench::abuse::named(name).unwrap_or_else(|| panic!("no attack {name}"));
    let binary = Path::new(env!("CARGO_BIN_EXE_gateway-server"));
    let finding = wsc_bench::abuse::run(binary, &attack)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        finding.after.fds <= finding.before.fds,
        "{name}: {} descriptors after, {} before",
        finding.after.fds,
        finding.before.fds
    );
}

macro_rules! attacks {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                attack(stringify!($name)).await;
            }
        )*

        /// A new attack in the suite must be listed here too.
        #[test]
        fn every_attack_of_the_suite_runs_here() {
            let here = [$(stringify!($name)),*];
            let suite: Vec<_> = wsc_bench::abuse::all().iter().map(|a| a.name).collect();
            assert_eq!(here.to_vec(), suite);
        }
    };
}

attacks!(
    fragment_flood,
    empty_fragment_flood,
    ping_flood,
    control_frame_over_125_bytes,
    unmasked_client_frame,
    reserved_opcode,
    reserved_control_opcode,
    rsv_bits,
    length_2_pow_63,
    message_flood,
    never_reads,
    never_answers_close,
    half_open_connections,
    slowloris_handshake,
    descriptor_exhaustion,
    huge_query_string,
    huge_header,
    too_many_headers,
    token_with_1mb_claim,
    token_with_40kb_claim,
    spoofed_sender_fields,
    relay_to_a_user_not_allowed,
    sse_oversized_frame,
    sse_frame_flood,
    sse_spoofed_sender,
    sse_never_reads,
);
