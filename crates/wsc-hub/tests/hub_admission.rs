//! Admission and route eligibility: repeated and too many ticket/group ids, closing
//! connections as targets, refused registrations leaving no trace, admission ordered with
//! `stop`, and blank ids refused by every operation that takes one.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{contents, drain_messages, started};
use tokio::sync::{Notify, oneshot};
use wsc_hub::{
    AckStatus, DisconnectReason, GroupError, HubConfig, HubMessage, Identity, IdentityError,
    InvalidId, RegisterError, SendError,
};

#[tokio::test]
async fn a_repeated_ticket_id_binds_the_connection_once() {
    let hub = started(HubConfig::default());
    let mut agent = hub
        .register(Identity::new("agent").with_tickets(["t1", "t1", "t2", "t1"]))
        .await
        .unwrap();
    assert_eq!(agent.connection().identity().ticket_ids, ["t1", "t2"]);

    let report = hub
        .send_to_ticket("t1", HubMessage::text("once"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(contents(&drain_messages(&mut agent)), ["once"]);
}

#[tokio::test]
async fn a_repeated_group_id_binds_the_connection_once() {
    let hub = started(HubConfig::default());
    let mut member = hub
        .register(Identity::new("m").with_groups(["g", "g"]))
        .await
        .unwrap();
    let report = hub
        .send_to_group("g", HubMessage::text("once"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(drain_messages(&mut member).len(), 1);
}

#[tokio::test]
async fn an_acknowledged_ticket_send_to_a_repeated_ticket_id_is_one_delivery() {
    let hub = started(HubConfig::default());
    let mut agent = hub
        .register(Identity::new("agent").with_tickets(["t1", "t1"]))
        .await
        .unwrap();
    let send = {
        let hub = hub.clone();
        tokio::spawn(async move {
            hub.send_to_ticket_with_ack("t1", HubMessage::text("ack me"), Duration::from_secs(5), 0)
                .await
        })
    };
    let frames = loop {
        let frames = drain_messages(&mut agent);
        if !frames.is_empty() {
            break frames;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(frames.len(), 1, "sent once: {frames:?}");
    let id = frames[0]["message_id"].as_str().unwrap().to_owned();
    agent
        .handle_text(&serde_json::json!({"message_type": "ack", "message_id": id}).to_string())
        .await;
    let report = send.await.unwrap().unwrap();
    assert_eq!(report.outcomes.len(), 1);
    assert!(matches!(report.outcomes[0].status, AckStatus::Acked { .. }));
}

#[tokio::test]
async fn too_many_group_or_ticket_ids_are_refused_with_the_limit() {
    let hub = started(support::config(|c| {
        c.max_group_ids = 3;
        c.max_ticket_ids = 2;
    }));
    let groups: Vec<String> = (0..4).map(|i| format!("g{i}")).collect();
    let err = hub
        .register(Identity::new("u").with_groups(groups))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RegisterError::Identity(IdentityError::TooMany {
            field: "group_id",
            count: 4,
            limit: 3
        })
    );
    assert_eq!(err.code(), "too_many_ids");
    let err = hub
        .register(Identity::new("u").with_tickets(["a", "b", "c"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 2"), "{err}");
    // Repeated ids count once: three mentions of two ids are within the limit.
    let _allowed = hub
        .register(Identity::new("u").with_tickets(["a", "b", "a"]))
        .await
        .expect("two distinct tickets are allowed");
    assert_eq!(hub.connection_count(), 1);
}

#[tokio::test]
async fn a_send_to_a_user_whose_only_connection_is_closing_is_stored_offline() {
    let hub = started(HubConfig::default());
    let closing = hub.register(Identity::new("u")).await.unwrap();
    // Closing (timed out, slow, rate-limited...) but its transport has not finished yet.
    closing.connection().close(DisconnectReason::Timeout);

    let report = hub
        .send_to_user("u", HubMessage::text("keep me"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 0);
    assert!(
        report.stored_offline,
        "the message must not be lost: {report:?}"
    );
    drop(closing);

    let mut next = hub.register(Identity::new("u")).await.unwrap();
    assert_eq!(contents(&drain_messages(&mut next)), ["keep me"]);
}

#[tokio::test]
async fn closing_connections_are_not_targets_of_any_route() {
    let hub = started(HubConfig::default());
    let closing = hub
        .register(
            Identity::new("u")
                .with_client_id("c1")
                .with_tickets(["t"])
                .with_groups(["g"]),
        )
        .await
        .unwrap();
    closing.connection().close(DisconnectReason::SlowConsumer);
    let sends = [
        hub.send_to_ticket("t", HubMessage::text("x"))
            .await
            .unwrap(),
        hub.send_to_group("g", HubMessage::text("x")).await.unwrap(),
        hub.send_to_connection("c1", HubMessage::text("x"))
            .await
            .unwrap(),
        hub.broadcast(HubMessage::text("x"), Default::default())
            .await
            .unwrap(),
    ];
    for report in sends {
        assert_eq!(
            (report.delivered, report.failures.len()),
            (0, 0),
            "{report:?}"
        );
    }
    assert!(hub.connection("c1").is_none());
}

#[tokio::test]
async fn a_refused_registration_leaves_no_pending_ack_and_no_replay_count() {
    let hub = started(HubConfig::default());
    // A message that needs an ack waits offline for bob.
    let report = hub
        .send_to_user_with_ack(
            "bob",
            HubMessage::text("ack me"),
            Duration::from_millis(10),
            0,
        )
        .await
        .unwrap();
    assert_eq!(report.outcomes[0].status, AckStatus::StoredOffline);
    let _mallory = hub
        .register(Identity::new("mallory").with_client_id("shared"))
        .await
        .unwrap();

    for _ in 0..3 {
        let refused = hub
            .register(Identity::new("bob").with_client_id("shared"))
            .await
            .unwrap_err();
        assert_eq!(refused, RegisterError::ClientIdInUse);
    }
    let stats = hub.stats();
    assert_eq!(stats.acks_pending, 0, "refusals leaked pending acks");
    assert_eq!(stats.offline_replayed, 0, "refusals counted replays");

    let mut bob = hub.register(Identity::new("bob")).await.unwrap();
    assert_eq!(contents(&drain_messages(&mut bob)), ["ack me"]);
    let stats = hub.stats();
    assert_eq!((stats.acks_pending, stats.offline_replayed), (1, 1));
}

#[tokio::test]
async fn a_registration_refused_as_node_full_replays_and_counts_nothing() {
    let hub = started(support::config(|c| c.max_connections = 1));
    // Bob's first registration waits in the connect callback: past the early capacity
    // check, before the offline replay is loaded.
    let (entered_tx, entered) = oneshot::channel::<()>();
    let entered_tx = parking_lot::Mutex::new(Some(entered_tx));
    let gate = Arc::new(Notify::new());
    {
        let gate = gate.clone();
        hub.on_client_connect(move |conn| {
            let first_bob = conn.user_id() == "bob" && entered_tx.lock().is_some();
            if let Some(tx) = first_bob.then(|| entered_tx.lock().take()).flatten() {
                let _ = tx.send(());
            }
            let gate = gate.clone();
            async move {
                if first_bob {
                    gate.notified().await;
                }
                Ok(())
            }
        });
    }
    let report = hub
        .send_to_user_with_ack(
            "bob",
            HubMessage::text("ack me"),
            Duration::from_millis(10),
            0,
        )
        .await
        .unwrap();
    assert_eq!(report.outcomes[0].status, AckStatus::StoredOffline);

    let registering = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.register(Identity::new("bob")).await })
    };
    entered.await.unwrap();
    // Carol takes the node's only place meanwhile.
    let carol = hub.register(Identity::new("carol")).await.unwrap();
    gate.notify_one();
    let refused = registering.await.unwrap().unwrap_err();
    assert_eq!(refused, RegisterError::NodeFull { limit: 1 });
    // The early check refuses too.
    let refused = hub.register(Identity::new("bob")).await.unwrap_err();
    assert_eq!(refused, RegisterError::NodeFull { limit: 1 });
    let stats = hub.stats();
    assert_eq!(stats.acks_pending, 0, "the refusal leaked a pending ack");
    assert_eq!(stats.offline_replayed, 0, "the refusal counted a replay");
    assert_eq!(stats.connections_rejected, 2);

    // The message is still stored: bob gets it once there is room.
    drop(carol);
    let mut bob = hub.register(Identity::new("bob")).await.unwrap();
    assert_eq!(contents(&drain_messages(&mut bob)), ["ack me"]);
    let stats = hub.stats();
    assert_eq!((stats.acks_pending, stats.offline_replayed), (1, 1));
}

#[tokio::test]
async fn a_connection_admitted_while_stop_runs_is_refused_or_closed_with_1001() {
    let hub = started(HubConfig::default());
    let (entered_tx, entered) = oneshot::channel::<()>();
    let entered_tx = parking_lot::Mutex::new(Some(entered_tx));
    let gate = Arc::new(Notify::new());
    {
        let gate = gate.clone();
        hub.on_client_connect(move |_| {
            let gate = gate.clone();
            if let Some(tx) = entered_tx.lock().take() {
                let _ = tx.send(());
            }
            async move {
                gate.notified().await;
                Ok(())
            }
        });
    }
    let registering = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.register(Identity::new("late")).await })
    };
    entered.await.unwrap();
    let stopping = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.stop(Duration::from_secs(5)).await })
    };
    while hub.is_running() {
        tokio::task::yield_now().await;
    }
    gate.notify_one();
    match registering.await.unwrap() {
        Err(e) => assert_eq!(e, RegisterError::NotRunning),
        Ok(registration) => {
            assert_eq!(
                registration.connection().disconnect_reason(),
                Some(&DisconnectReason::ServerShutdown),
                "admitted after stop's snapshot: it would never get 1001"
            );
        }
    }
    assert_eq!(stopping.await.unwrap(), 0);
}

#[tokio::test]
async fn blank_ids_are_refused_by_membership_and_presence() {
    let hub = started(HubConfig::default());
    for blank in ["", "  ", "a\u{0}b"] {
        let group_id = Err(GroupError::InvalidId(InvalidId("group_id")));
        let user_id = Err(GroupError::InvalidId(InvalidId("user_id")));
        assert_eq!(hub.join_group(blank, "alice").await, group_id);
        assert_eq!(hub.join_group("vip", blank).await, user_id);
        assert_eq!(hub.leave_group(blank, "alice").await, group_id);
        assert_eq!(hub.leave_group("vip", blank).await, user_id);
        assert_eq!(
            hub.group_members(blank).await,
            Err(GroupError::InvalidId(InvalidId("group_id")))
        );
        assert_eq!(
            hub.disband_group(blank).await,
            Err(GroupError::InvalidId(InvalidId("group_id")))
        );
        assert_eq!(
            hub.user_groups(blank).await,
            Err(GroupError::InvalidId(InvalidId("user_id")))
        );
        assert_eq!(hub.user_connections(blank), Err(InvalidId("user_id")));
        assert!(matches!(
            hub.send_to_group(blank, HubMessage::text("x")).await,
            Err(SendError::InvalidTarget("group_id"))
        ));
    }
    assert_eq!(
        InvalidId("group_id").code(),
        SendError::InvalidTarget("x").code()
    );
    assert!(
        hub.group_members("vip").await.unwrap().is_empty(),
        "nothing was stored"
    );
}
