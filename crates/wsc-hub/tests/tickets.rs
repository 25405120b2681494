//! Tickets on one node: auto-assignment to the least-loaded agent under its capacity, the
//! queue (VIP first, then oldest) drained as agents get room, transfer, close and the
//! inactivity timeout (paused time), the frames each participant gets, ticket messages
//! reaching participants only, and the refusals.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{drain_messages, started};
use wsc_hub::{
    Hub, HubConfig, HubMessage, Identity, NewTicket, Registration, TicketError, TicketState,
};

fn desk(capacity: usize) -> Hub {
    let mut config = HubConfig::default();
    config.max_tickets_per_agent = capacity;
    started(config)
}

async fn agent(hub: &Hub, id: &str) -> Registration {
    hub.register(Identity::new(id).with_user_type("agent"))
        .await
        .unwrap()
}

/// (message type, ticket id, the ticket's state and agent) of each frame ready now.
fn notices(registration: &mut Registration) -> Vec<(String, String, String, String)> {
    drain_messages(registration)
        .iter()
        .map(|f| {
            let ticket = &f["data"]["ticket"];
            let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
            (
                text(&f["message_type"]),
                text(&f["ticket_id"]),
                text(&ticket["state"]),
                text(&ticket["agent_id"]),
            )
        })
        .collect()
}

fn notice(kind: &str, ticket: &str, state: &str, agent: &str) -> (String, String, String, String) {
    (kind.into(), ticket.into(), state.into(), agent.into())
}

#[tokio::test]
async fn a_new_ticket_goes_to_the_least_loaded_agent_and_both_sides_are_told() {
    let hub = desk(5);
    let mut a1 = agent(&hub, "a1").await;
    let mut a2 = agent(&hub, "a2").await;
    let mut carl = hub.register(Identity::new("carl")).await.unwrap();
    let t1 = hub
        .open_ticket(NewTicket::new("carl").with_id("t1"))
        .await
        .unwrap();
    assert_eq!(
        (t1.state, t1.agent_id.as_str()),
        (TicketState::Assigned, "a1")
    );
    assert_eq!(
        notices(&mut carl),
        [
            notice("ticket_created", "t1", "assigned", "a1"),
            notice("ticket_assigned", "t1", "assigned", "a1"),
        ]
    );
    assert_eq!(
        notices(&mut a1),
        [notice("ticket_assigned", "t1", "assigned", "a1")]
    );
    for (id, expected) in [("t2", "a2"), ("t3", "a1"), ("t4", "a2")] {
        let ticket = hub
            .open_ticket(NewTicket::new("dina").with_id(id))
            .await
            .unwrap();
        assert_eq!(ticket.agent_id, expected, "{id}");
    }
    let loads: Vec<(String, usize, bool)> = hub
        .agent_workloads()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.agent_id, a.load, a.available))
        .collect();
    assert_eq!(loads, [("a1".into(), 2, true), ("a2".into(), 2, true)]);
    assert_eq!(notices(&mut a2).len(), 2);
}

#[tokio::test]
async fn without_room_tickets_queue_vip_first_and_a_freed_place_takes_the_next() {
    let hub = desk(1);
    let mut solo = agent(&hub, "solo").await;
    hub.open_ticket(NewTicket::new("c1").with_id("t1"))
        .await
        .unwrap();
    let queued = hub
        .open_ticket(NewTicket::new("c2").with_id("t2"))
        .await
        .unwrap();
    assert_eq!(
        (queued.state, queued.agent_id.as_str()),
        (TicketState::Queued, "")
    );
    hub.open_ticket(NewTicket::new("c3").with_id("t3").vip(true))
        .await
        .unwrap();
    let order: Vec<String> = hub
        .ticket_queue()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.ticket_id)
        .collect();
    assert_eq!(order, ["t3", "t2"]);
    drain_messages(&mut solo);

    let closed = hub.close_ticket("t1", "").await.unwrap();
    assert_eq!(
        (closed.state, closed.close_reason.as_str()),
        (TicketState::Closed, "closed")
    );
    assert_eq!(
        notices(&mut solo),
        [
            notice("ticket_closed", "t1", "closed", "solo"),
            notice("ticket_assigned", "t3", "assigned", "solo"),
        ]
    );
    hub.close_ticket("t3", "solved").await.unwrap();
    assert_eq!(hub.ticket("t2").await.unwrap().unwrap().agent_id, "solo");
    assert!(hub.ticket_queue().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_queued_ticket_waits_for_an_agent_to_come_and_an_agent_who_leaves_keeps_its_tickets() {
    let hub = desk(2);
    let mut carl = hub.register(Identity::new("carl")).await.unwrap();
    hub.open_ticket(NewTicket::new("carl").with_id("t1"))
        .await
        .unwrap();
    assert_eq!(
        notices(&mut carl),
        [notice("ticket_created", "t1", "queued", "")]
    );
    let first = agent(&hub, "ann").await;
    assert_eq!(hub.ticket("t1").await.unwrap().unwrap().agent_id, "ann");
    assert_eq!(
        notices(&mut carl),
        [notice("ticket_assigned", "t1", "assigned", "ann")]
    );
    drop(first);
    tokio::task::yield_now().await;
    let workload = hub.agent_workloads().await.unwrap();
    assert_eq!((workload[0].load, workload[0].available), (1, false));
    let t2 = hub
        .open_ticket(NewTicket::new("dina").with_id("t2"))
        .await
        .unwrap();
    assert_eq!(t2.state, TicketState::Queued, "nobody is available");
    assert_eq!(hub.ticket("t1").await.unwrap().unwrap().agent_id, "ann");
}

#[tokio::test]
async fn ticket_messages_reach_the_participants_only_and_follow_a_transfer() {
    let hub = desk(5);
    let mut a1 = agent(&hub, "a1").await;
    let mut a2 = agent(&hub, "a2").await;
    let mut carl = hub.register(Identity::new("carl")).await.unwrap();
    let mut outsider = hub.register(Identity::new("zed")).await.unwrap();
    hub.open_ticket(NewTicket::new("carl").with_id("t1"))
        .await
        .unwrap();
    for r in [&mut a1, &mut a2, &mut carl] {
        drain_messages(r);
    }
    let from_carl = HubMessage {
        sender: "carl".into(),
        ..HubMessage::text("hello")
    };
    let report = hub.send_to_ticket("t1", from_carl).await.unwrap();
    assert_eq!(report.delivered, 1, "the agent; the sender is skipped");
    assert_eq!(drain_messages(&mut a1)[0]["content"], "hello");
    assert!(drain_messages(&mut carl).is_empty());
    assert!(drain_messages(&mut a2).is_empty());

    let moved = hub.transfer_ticket("t1", "a2").await.unwrap();
    assert_eq!(moved.agent_id, "a2");
    for r in [&mut a1, &mut carl] {
        assert_eq!(
            notices(r),
            [notice("ticket_transfer", "t1", "assigned", "a2")]
        );
    }
    let to_a2 = drain_messages(&mut a2);
    assert_eq!(to_a2[0]["message_type"], "ticket_transfer");
    assert_eq!(
        (&to_a2[1]["content"], &to_a2[1]["source"], to_a2.len()),
        (
            &serde_json::json!("hello"),
            &serde_json::json!("offline"),
            2
        ),
        "the new agent gets the conversation so far"
    );
    hub.send_to_ticket("t1", HubMessage::text("now a2"))
        .await
        .unwrap();
    assert_eq!(drain_messages(&mut a2)[0]["content"], "now a2");
    assert_eq!(drain_messages(&mut carl)[0]["content"], "now a2");
    assert!(drain_messages(&mut a1).is_empty(), "a1 left the ticket");
    assert!(drain_messages(&mut outsider).is_empty());
    let loads: Vec<usize> = hub
        .agent_workloads()
        .await
        .unwrap()
        .iter()
        .map(|a| a.load)
        .collect();
    assert_eq!(loads, [0, 1]);

    hub.close_ticket("t1", "").await.unwrap();
    assert_eq!(
        notices(&mut carl),
        [notice("ticket_closed", "t1", "closed", "a2")]
    );
    let report = hub
        .send_to_ticket("t1", HubMessage::text("after close"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 0);
}

#[tokio::test]
async fn refusals_name_the_ticket_or_the_agent() {
    let hub = desk(1);
    let _busy = agent(&hub, "busy").await;
    hub.open_ticket(NewTicket::new("c").with_id("t1"))
        .await
        .unwrap();
    hub.open_ticket(NewTicket::new("c").with_id("t2"))
        .await
        .unwrap();
    let cases = [
        (
            hub.open_ticket(NewTicket::new("c").with_id("t1")).await,
            TicketError::AlreadyExists("t1".into()),
            "ticket_exists",
        ),
        (
            hub.transfer_ticket("t2", "busy").await,
            TicketError::AgentFull {
                agent_id: "busy".into(),
                limit: 1,
            },
            "agent_full",
        ),
        (
            hub.transfer_ticket("t2", "ghost").await,
            TicketError::AgentUnavailable("ghost".into()),
            "agent_unavailable",
        ),
        (
            hub.close_ticket("nope", "").await,
            TicketError::NotFound("nope".into()),
            "ticket_not_found",
        ),
    ];
    for (result, error, code) in cases {
        assert_eq!(result.as_ref().unwrap_err(), &error);
        assert_eq!(error.code(), code);
    }
    hub.close_ticket("t1", "").await.unwrap();
    let closed = hub.close_ticket("t1", "").await.unwrap_err();
    assert_eq!(closed, TicketError::Closed("t1".into()));
    assert_eq!(closed.to_string(), "ticket t1 is closed");
    assert_eq!(
        hub.open_ticket(NewTicket::new(" "))
            .await
            .unwrap_err()
            .code(),
        "invalid_target"
    );
    assert_eq!(hub.ticket("zzz").await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn an_idle_ticket_closes_after_the_timeout_and_activity_postpones_it() {
    let mut config = HubConfig::default();
    config.ticket_timeout = Duration::from_secs(60);
    config.heartbeat_interval = Duration::from_secs(5);
    config.client_timeout = Duration::from_secs(3600);
    let hub = started(config);
    let mut ann = agent(&hub, "ann").await;
    let mut carl = hub.register(Identity::new("carl")).await.unwrap();
    hub.open_ticket(NewTicket::new("carl").with_id("t1"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(50)).await;
    hub.send_to_ticket("t1", HubMessage::text("still here"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!(
        hub.ticket("t1").await.unwrap().unwrap().state,
        TicketState::Assigned,
        "100 s after opening, 50 s after the last message"
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    let ticket = hub.ticket("t1").await.unwrap().unwrap();
    assert_eq!(
        (ticket.state, ticket.close_reason.as_str()),
        (TicketState::Closed, "timeout")
    );
    for r in [&mut ann, &mut carl] {
        let last = notices(r).pop().unwrap();
        assert_eq!(last, notice("ticket_timeout_closed", "t1", "closed", "ann"));
    }
    assert_eq!(hub.agent_workloads().await.unwrap()[0].load, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_never_pass_an_agents_capacity() {
    let hub = desk(3);
    let _a = agent(&hub, "a").await;
    let _b = agent(&hub, "b").await;
    let opens: Vec<_> = (0..20)
        .map(|i| {
            let hub = hub.clone();
            tokio::spawn(async move { hub.open_ticket(NewTicket::new(format!("c{i}"))).await })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let loads: Vec<usize> = hub
        .agent_workloads()
        .await
        .unwrap()
        .iter()
        .map(|a| a.load)
        .collect();
    assert_eq!(loads, [3, 3]);
    assert_eq!(hub.ticket_queue().await.unwrap().len(), 14);
}

#[tokio::test]
async fn ticket_changes_are_events() {
    let hub = desk(5);
    let mut events = hub.subscribe_events();
    let _ann = agent(&hub, "ann").await;
    hub.open_ticket(NewTicket::new("carl").with_id("t1"))
        .await
        .unwrap();
    let _bob = agent(&hub, "bob").await;
    hub.transfer_ticket("t1", "bob").await.unwrap();
    hub.close_ticket("t1", "").await.unwrap();
    let mut names = Vec::new();
    while let Ok(event) = events.try_recv() {
        if event.name.starts_with("ticket.") {
            assert_eq!(event.detail["ticket_id"], "t1");
            assert_eq!(event.user_id, "carl");
            names.push(event.name);
        }
    }
    assert_eq!(
        names,
        [
            wsc_hub::events::TICKET_CREATED,
            wsc_hub::events::TICKET_ASSIGNED,
            wsc_hub::events::TICKET_TRANSFERRED,
            wsc_hub::events::TICKET_CLOSED,
        ]
    );
}

/// Frames a client sends (`handle_text`, the transport's inbound path).
async fn send_frame(registration: &mut Registration, frame: Value) {
    registration.handle_text(&frame.to_string()).await;
}

/// The `data.code` of each error frame ready now.
fn error_codes(registration: &mut Registration) -> Vec<String> {
    drain_messages(registration)
        .iter()
        .filter(|f| f["message_type"] == "error")
        .map(|f| f["data"]["code"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn clients_open_close_and_transfer_tickets_with_frames() {
    let hub = desk(5);
    let mut ann = agent(&hub, "ann").await;
    let mut bob = agent(&hub, "bob").await;
    let mut carl = hub.register(Identity::new("carl")).await.unwrap();
    let mut zed = hub.register(Identity::new("zed")).await.unwrap();

    send_frame(
        &mut carl,
        serde_json::json!({"message_type": "ticket_created", "ticket_id": "t1"}),
    )
    .await;
    assert_eq!(
        notices(&mut carl),
        [
            notice("ticket_created", "t1", "assigned", "ann"),
            notice("ticket_assigned", "t1", "assigned", "ann"),
        ]
    );
    drain_messages(&mut ann);
    send_frame(
        &mut ann,
        serde_json::json!({"id": "f1", "message_type": "ticket_created"}),
    )
    .await;
    assert_eq!(
        error_codes(&mut ann),
        ["ticket_forbidden"],
        "agents do not open tickets"
    );
    send_frame(
        &mut zed,
        serde_json::json!({"message_type": "ticket_closed", "ticket_id": "t1"}),
    )
    .await;
    assert_eq!(
        error_codes(&mut zed),
        ["ticket_forbidden"],
        "not a participant"
    );
    send_frame(&mut carl, serde_json::json!({"message_type": "ticket_transfer", "ticket_id": "t1", "receiver": "bob"})).await;
    assert_eq!(
        error_codes(&mut carl),
        ["ticket_forbidden"],
        "only its agent transfers"
    );
    send_frame(
        &mut ann,
        serde_json::json!({"message_type": "ticket_closed", "ticket_id": "nope"}),
    )
    .await;
    assert_eq!(error_codes(&mut ann), ["ticket_not_found"]);

    send_frame(&mut ann, serde_json::json!({"message_type": "ticket_transfer", "ticket_id": "t1", "receiver": "bob"})).await;
    assert_eq!(hub.ticket("t1").await.unwrap().unwrap().agent_id, "bob");
    assert_eq!(
        notices(&mut bob),
        [notice("ticket_transfer", "t1", "assigned", "bob")]
    );
    send_frame(&mut carl, serde_json::json!({"message_type": "ticket_closed", "ticket_id": "t1", "content": "solved"})).await;
    let closed = hub.ticket("t1").await.unwrap().unwrap();
    assert_eq!(
        (closed.state, closed.close_reason.as_str()),
        (TicketState::Closed, "solved")
    );
    assert_eq!(
        notices(&mut bob),
        [notice("ticket_closed", "t1", "closed", "bob")]
    );
}

#[tokio::test]
async fn with_client_requests_off_ticket_frames_reach_the_callbacks() {
    let mut config = HubConfig::default();
    config.ticket_client_requests = false;
    let hub = started(config);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    hub.on_message_received(move |_, msg| {
        let _ = tx.send(msg.message_type.to_string());
        Box::pin(async { Ok(()) })
    });
    let mut carl = hub.register(Identity::new("carl")).await.unwrap();
    send_frame(
        &mut carl,
        serde_json::json!({"message_type": "ticket_created", "ticket_id": "t1"}),
    )
    .await;
    assert_eq!(rx.try_recv().unwrap(), "ticket_created");
    assert_eq!(hub.ticket("t1").await.unwrap(), None);
}

#[tokio::test]
async fn an_agent_who_takes_a_ticket_later_gets_the_conversation_so_far() {
    let mut config = HubConfig::default();
    config.max_tickets_per_agent = 5;
    config.ticket_history_size = 2;
    let hub = started(config);
    hub.open_ticket(NewTicket::new("carl").with_id("t1"))
        .await
        .unwrap();
    for text in ["one", "two", "three"] {
        hub.send_to_ticket("t1", HubMessage::text(text))
            .await
            .unwrap();
    }
    tokio::task::yield_now().await;
    let mut ann = agent(&hub, "ann").await;
    let frames = drain_messages(&mut ann);
    let seen: Vec<(&str, &str, &str)> = frames
        .iter()
        .map(|f| {
            (
                f["message_type"].as_str().unwrap(),
                f["content"].as_str().unwrap_or(""),
                f["source"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("ticket_assigned", "", ""),
            ("text", "two", "offline"),
            ("text", "three", "offline"),
        ],
        "the last 2 kept, after the notice"
    );
    let _bob = agent(&hub, "bob").await;
    hub.send_to_ticket("t1", HubMessage::text("four"))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let mut bob = hub
        .register(Identity::new("bob").with_user_type("agent"))
        .await
        .unwrap();
    hub.transfer_ticket("t1", "bob").await.unwrap();
    let contents: Vec<String> = drain_messages(&mut bob)
        .iter()
        .map(|f| f["content"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        contents,
        ["", "three", "four"],
        "the notice, then the history"
    );
}

#[tokio::test]
async fn with_the_relay_on_participants_write_to_their_ticket_without_a_connect_binding() {
    let mut config = HubConfig::default();
    config.relay.enabled = true;
    let hub = started(config);
    let mut ann = agent(&hub, "ann").await;
    let mut carl = hub.register(Identity::new("carl")).await.unwrap();
    let mut zed = hub.register(Identity::new("zed")).await.unwrap();
    hub.open_ticket(NewTicket::new("carl").with_id("t1"))
        .await
        .unwrap();
    drain_messages(&mut ann);
    drain_messages(&mut carl);
    send_frame(
        &mut carl,
        serde_json::json!({"content": "help", "ticket_id": "t1"}),
    )
    .await;
    let got = drain_messages(&mut ann);
    assert_eq!(
        (got.len(), &got[0]["content"], &got[0]["sender"]),
        (1, &serde_json::json!("help"), &serde_json::json!("carl"))
    );
    send_frame(
        &mut zed,
        serde_json::json!({"content": "spy", "ticket_id": "t1"}),
    )
    .await;
    assert_eq!(error_codes(&mut zed), ["rejected"], "not a participant");
    assert!(drain_messages(&mut ann).is_empty());
}

#[tokio::test]
async fn a_department_ticket_goes_only_to_an_agent_of_its_department() {
    let hub = desk(1);
    let _gen = agent(&hub, "gen").await;
    let _bill = hub
        .register(
            Identity::new("bill")
                .with_user_type("agent")
                .with_groups(["billing"]),
        )
        .await
        .unwrap();
    let billing = |id: &str| NewTicket::new("c").with_id(id).with_department("billing");
    // gen and bill are equally loaded; only bill serves billing.
    assert_eq!(
        hub.open_ticket(billing("b1")).await.unwrap().agent_id,
        "bill"
    );
    assert_eq!(
        hub.open_ticket(NewTicket::new("c").with_id("p1"))
            .await
            .unwrap()
            .agent_id,
        "gen"
    );
    // Both full now: a billing ticket and a plain one queue, billing first.
    hub.open_ticket(billing("b2")).await.unwrap();
    hub.open_ticket(NewTicket::new("c").with_id("p2"))
        .await
        .unwrap();
    // gen's freed place skips the billing ticket it cannot serve and takes p2.
    hub.close_ticket("p1", "").await.unwrap();
    assert_eq!(hub.ticket("p2").await.unwrap().unwrap().agent_id, "gen");
    assert_eq!(
        hub.ticket("b2").await.unwrap().unwrap().state,
        TicketState::Queued
    );
    hub.close_ticket("b1", "").await.unwrap();
    assert_eq!(hub.ticket("b2").await.unwrap().unwrap().agent_id, "bill");
    let skills: Vec<(String, Vec<String>)> = hub
        .agent_workloads()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.agent_id, a.skills))
        .collect();
    assert_eq!(
        skills,
        [
            ("bill".to_owned(), vec!["billing".to_owned()]),
            ("gen".to_owned(), vec![])
        ]
    );
}
