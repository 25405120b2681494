//! What the hub does with a client frame before it goes anywhere: server-owned fields are
//! reset, only acks that match a delivery are exempt from the frame rate limit, and the
//! relay policy of `HubConfig::relay` applies wherever the hub runs.

mod support;

use serde_json::json;
use support::{config, contents, drain_messages, started};
use wsc_hub::{DisconnectReason, HubConfig, HubMessage, Identity};

#[tokio::test]
async fn a_relayed_frame_loses_client_chosen_seq_no_source_and_require_ack() {
    let hub = started(HubConfig::default());
    let mut alice = hub.register(Identity::new("alice")).await.unwrap();
    let mut bob = hub.register(Identity::new("bob")).await.unwrap();

    let forged = json!({
        "type": "read", "to": "bob", "seq_no": 999_999, "source": "offline",
        "require_ack": true, "content": "seen"
    });
    alice.handle_text(&forged.to_string()).await;
    let frames = drain_messages(&mut bob);
    assert_eq!(frames.len(), 1, "{frames:?}");
    let relayed = &frames[0];
    assert_eq!(relayed["message_type"], "read");
    assert_eq!(relayed["sender"], "alice");
    assert_eq!(
        relayed["seq_no"], 0,
        "a client cannot number bob's messages"
    );
    assert!(relayed.get("source").is_none(), "{relayed}");
    assert!(relayed.get("require_ack").is_none(), "{relayed}");

    // Bob's real sequence is untouched: his next message is number 1 and a resume from
    // it is complete.
    let report = hub
        .send_to_user("bob", HubMessage::text("first"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(drain_messages(&mut bob)[0]["seq_no"], 1);
    drop(alice);
}

#[tokio::test]
async fn unknown_acks_count_against_the_frame_rate_limit() {
    let hub = started(config(|c| c.max_inbound_per_second = 5));
    let mut client = hub.register(Identity::new("u")).await.unwrap();
    for i in 0..10 {
        client
            .handle_text(
                &json!({"message_type": "ack", "message_id": format!("nope-{i}")}).to_string(),
            )
            .await;
    }
    assert!(
        matches!(
            client.connection().disconnect_reason(),
            Some(DisconnectReason::PolicyViolation { .. })
        ),
        "a flood of unknown acks must hit the rate limit"
    );
}

#[tokio::test]
async fn acks_that_match_a_delivery_stay_exempt_from_the_frame_rate_limit() {
    let hub = started(config(|c| c.max_inbound_per_second = 5));
    let mut client = hub.register(Identity::new("u")).await.unwrap();
    let mut sends = Vec::new();
    for i in 0..10 {
        let hub = hub.clone();
        sends.push(tokio::spawn(async move {
            hub.send_to_user_with_ack(
                "u",
                HubMessage::text(format!("m{i}")),
                std::time::Duration::from_secs(30),
                0,
            )
            .await
        }));
    }
    let mut frames = Vec::new();
    while frames.len() < 10 {
        frames.extend(drain_messages(&mut client));
        tokio::task::yield_now().await;
    }
    for frame in &frames {
        let ack = json!({"message_type": "ack", "message_id": frame["message_id"]});
        client.handle_text(&ack.to_string()).await;
    }
    assert!(client.connection().disconnect_reason().is_none());
    for send in sends {
        let report = send.await.unwrap().unwrap();
        assert!(matches!(
            report.outcomes[0].status,
            wsc_hub::AckStatus::Acked { .. }
        ));
    }
}

fn relay_hub() -> wsc_hub::Hub {
    started(config(|c| c.relay.enabled = true))
}

#[tokio::test]
async fn the_relay_policy_sends_to_a_bound_ticket_and_refuses_another() {
    let hub = relay_hub();
    let mut customer = hub
        .register(
            Identity::new("cust")
                .with_user_type("customer")
                .with_tickets(["t1"]),
        )
        .await
        .unwrap();
    let mut agent = hub
        .register(
            Identity::new("agent")
                .with_user_type("agent")
                .with_tickets(["t1", "t2"]),
        )
        .await
        .unwrap();

    customer
        .handle_text(&json!({"id": "m1", "ticket_id": "t1", "content": "help"}).to_string())
        .await;
    assert_eq!(contents(&drain_messages(&mut agent)), ["help"]);

    customer
        .handle_text(&json!({"id": "m2", "ticket_id": "t2", "content": "sneak"}).to_string())
        .await;
    let refusal = drain_messages(&mut customer);
    assert_eq!(refusal.len(), 1, "{refusal:?}");
    assert_eq!(refusal[0]["data"]["code"], "rejected");
    assert_eq!(refusal[0]["reply_to_msg_id"], "m2");
    assert!(
        refusal[0]["content"]
            .as_str()
            .unwrap()
            .contains("relay_denied")
    );
    assert!(drain_messages(&mut agent).is_empty());
}

#[tokio::test]
async fn the_relay_policy_lets_only_user_targets_types_address_users() {
    let hub = relay_hub();
    let mut agent = hub
        .register(Identity::new("agent").with_user_type("agent"))
        .await
        .unwrap();
    let mut customer = hub
        .register(Identity::new("cust").with_user_type("customer"))
        .await
        .unwrap();
    agent
        .handle_text(&json!({"receiver": "cust", "content": "hello"}).to_string())
        .await;
    assert_eq!(contents(&drain_messages(&mut customer)), ["hello"]);
    customer
        .handle_text(&json!({"id": "u2", "receiver": "agent", "content": "hi"}).to_string())
        .await;
    assert!(drain_messages(&mut agent).is_empty());
    let refusal = drain_messages(&mut customer);
    assert!(
        refusal[0]["content"]
            .as_str()
            .unwrap()
            .contains("relay_denied")
    );
}

#[tokio::test]
async fn with_the_relay_off_a_targeted_client_message_reaches_nobody() {
    let hub = started(HubConfig::default());
    let mut customer = hub
        .register(Identity::new("cust").with_tickets(["t1"]))
        .await
        .unwrap();
    let mut agent = hub
        .register(Identity::new("agent").with_tickets(["t1"]))
        .await
        .unwrap();
    customer
        .handle_text(&json!({"ticket_id": "t1", "content": "help"}).to_string())
        .await;
    assert!(drain_messages(&mut agent).is_empty());
    assert!(drain_messages(&mut customer).is_empty());
}
