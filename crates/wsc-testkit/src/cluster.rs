//! The cross-node scenarios every backplane must pass, written once: each takes three
//! started hubs `a`, `b`, `c` of one cluster (in memory, on Redis, on a Redis Cluster) and
//! checks what crosses nodes. Waits are bounded and use tokio's clock, so the scenarios run
//! under paused time too.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wsc_hub::{
    AckStatus, BroadcastOptions, Hub, HubMessage, Identity, Outbound, Registration, UserPage,
};

use crate::WAIT;

mod desk;
pub use desk::*;

/// Defines one test per shared scenario, so every backend runs the same list. `$run` is
/// bound to the scenario inside `$body`, which builds three started hubs `a`, `b`, `c` and
/// awaits `$run([a, b, c])`:
///
/// ```text
/// wsc_testkit::cross_node_scenarios!(#[tokio::test] |run| {
///     let (a, b, c) = three_hubs();
///     run([&a, &b, &c]).await;
/// });
/// ```
#[macro_export]
macro_rules! cross_node_scenarios {
    (#[$attr:meta] |$run:ident| $body:block) => {
        $crate::cross_node_scenarios!(@each #[$attr] |$run| $body;
            a_user_send_reaches_each_device_on_other_nodes_once,
            a_broadcast_reaches_every_node_once,
            a_scoped_broadcast_stays_in_its_app_on_every_node,
            a_namespace_broadcast_stays_in_its_namespace_on_every_node,
            a_ticket_send_reaches_its_connections_on_other_nodes,
            presence_names_the_nodes_of_a_user,
            a_kick_closes_the_user_on_every_node_after_the_notice,
            group_membership_made_on_one_node_routes_on_another,
            a_membership_made_while_the_user_is_offline_reaches_the_user_on_any_node,
            group_limits_hold_across_nodes_under_concurrent_joins,
            a_group_disbanded_on_one_node_reaches_nobody_on_any_node,
            the_agent_limit_holds_across_nodes_under_concurrent_opens,
            ticket_participants_on_other_nodes_get_its_notices_and_messages,
            a_queued_ticket_goes_to_an_agent_connecting_on_another_node,
            observers_on_other_nodes_get_one_copy_of_each_send_in_their_scope,
            a_department_ticket_waits_for_an_agent_of_its_department_on_any_node,
            an_acknowledged_send_is_acked_by_a_connection_on_another_node,
            a_resend_reaches_the_other_node_too,
            an_acknowledged_send_to_a_connection_on_another_node,
            an_acknowledged_group_send_waits_for_every_connection_on_every_node,
            an_acknowledged_ticket_send_resends_to_a_silent_connection_on_another_node,
        );
    };
    (@each #[$attr:meta] |$run:ident| $body:block; $($name:ident),* $(,)?) => {$(
        #[$attr]
        async fn $name() {
            let $run = $crate::cluster::$name;
            $body
        }
    )*};
}

/// Polls `condition` (every 10 ms of tokio time) until it holds; fails after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next message frame of a registration (pings skipped), within [`WAIT`].
pub async fn next_message(registration: &mut Registration) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, registration.recv())
            .await
            .expect("a frame in time")
            .expect("queue open");
        if let Outbound::Message(payload) = frame {
            return serde_json::from_str(payload.as_str()).expect("a JSON frame");
        }
    }
}

/// An acknowledged send to a user, running in its own task (the test acks meanwhile).
fn spawn_user_ack(
    hub: &Hub,
    user: &'static str,
    text: &'static str,
    timeout: Duration,
    retries: u32,
) -> tokio::task::JoinHandle<Result<wsc_hub::AckReport, wsc_hub::SendError>> {
    let hub = hub.clone();
    tokio::spawn(async move {
        hub.send_to_user_with_ack(user, HubMessage::text(text), timeout, retries)
            .await
    })
}

/// Proves a registration got nothing more: a message queued to it now is its next frame.
async fn nothing_more(hub: &Hub, registration: &mut Registration) {
    let client = registration.connection().client_id().to_owned();
    hub.send_to_connection(&client, HubMessage::text("marker"))
        .await
        .expect("marker sent");
    assert_eq!(next_message(registration).await["content"], "marker");
}

/// A user with devices on `b` and `c` gets a send made on `a` once on each.
pub async fn a_user_send_reaches_each_device_on_other_nodes_once([a, b, c]: [&Hub; 3]) {
    let mut phone = b
        .register(Identity::new("bob").with_device_id("phone"))
        .await
        .unwrap();
    let mut laptop = c
        .register(Identity::new("bob").with_device_id("laptop"))
        .await
        .unwrap();
    let report = a
        .send_to_user("bob", HubMessage::text("from a"))
        .await
        .unwrap();
    assert_eq!(
        (report.delivered, report.nodes, report.stored_offline),
        (0, 2, false),
        "{report:?}"
    );
    for (hub, device) in [(b, &mut phone), (c, &mut laptop)] {
        let frame = next_message(device).await;
        assert_eq!(
            (frame["content"].as_str(), frame["receiver"].as_str()),
            (Some("from a"), Some("bob"))
        );
        nothing_more(hub, device).await;
    }
}

/// A broadcast made on `a` reaches a connection on every node once.
pub async fn a_broadcast_reaches_every_node_once([a, b, c]: [&Hub; 3]) {
    let mut on_a = a.register(Identity::new("u1")).await.unwrap();
    let mut on_b = b.register(Identity::new("u2")).await.unwrap();
    let mut on_c = c.register(Identity::new("u3")).await.unwrap();
    let report = a
        .broadcast(HubMessage::text("all"), BroadcastOptions::default())
        .await
        .unwrap();
    assert_eq!((report.delivered, report.nodes), (1, 3), "{report:?}");
    for (hub, registration) in [(a, &mut on_a), (b, &mut on_b), (c, &mut on_c)] {
        assert_eq!(next_message(registration).await["content"], "all");
        nothing_more(hub, registration).await;
    }
}

/// A broadcast scoped to an app reaches that app's connections on another node, and no
/// other app's.
pub async fn a_scoped_broadcast_stays_in_its_app_on_every_node([a, b, _]: [&Hub; 3]) {
    let mut app_a = b
        .register(Identity::new("x").with_scope("appA", ""))
        .await
        .unwrap();
    let mut app_b = b
        .register(Identity::new("y").with_scope("appB", ""))
        .await
        .unwrap();
    a.broadcast(
        HubMessage::text("only A"),
        BroadcastOptions::scoped("appA", ""),
    )
    .await
    .unwrap();
    assert_eq!(next_message(&mut app_a).await["content"], "only A");
    nothing_more(b, &mut app_b).await;
}

/// A broadcast scoped to a namespace of an app reaches that namespace's connections on the
/// other nodes, and not another namespace's.
pub async fn a_namespace_broadcast_stays_in_its_namespace_on_every_node([a, b, c]: [&Hub; 3]) {
    let mut sales = b
        .register(Identity::new("s").with_scope("shop", "sales"))
        .await
        .unwrap();
    let mut support = c
        .register(Identity::new("t").with_scope("shop", "support"))
        .await
        .unwrap();
    let report = a
        .broadcast(
            HubMessage::text("sales only"),
            BroadcastOptions::scoped("shop", "sales"),
        )
        .await
        .unwrap();
    assert_eq!(report.delivered, 0, "a has no connection: {report:?}");
    assert_eq!(next_message(&mut sales).await["content"], "sales only");
    nothing_more(c, &mut support).await;
}

/// A ticket send made on `a` reaches the ticket's connection on `b`, not another ticket's.
pub async fn a_ticket_send_reaches_its_connections_on_other_nodes([a, b, c]: [&Hub; 3]) {
    let mut agent = b
        .register(Identity::new("agent").with_tickets(["t-1"]))
        .await
        .unwrap();
    let mut other = c
        .register(Identity::new("other").with_tickets(["t-2"]))
        .await
        .unwrap();
    let report = a
        .send_to_ticket("t-1", HubMessage::text("about t-1"))
        .await
        .unwrap();
    assert_eq!(report.nodes, 2, "published to b and c: {report:?}");
    assert_eq!(next_message(&mut agent).await["content"], "about t-1");
    nothing_more(c, &mut other).await;
}

/// Presence names the nodes of a user, and forgets a node the user left; the online list
/// pages in name order, and a user counts once however many nodes it is on.
pub async fn presence_names_the_nodes_of_a_user([a, b, c]: [&Hub; 3]) {
    let bob_b = b.register(Identity::new("bob")).await.unwrap();
    let bob_c = c.register(Identity::new("bob")).await.unwrap();
    let _ann = a.register(Identity::new("ann")).await.unwrap();
    let presence = a.presence("bob").await.unwrap();
    assert!(presence.online);
    assert_eq!(presence.nodes, ["b", "c"]);
    assert!(
        presence.connections.is_empty(),
        "a holds none of bob's connections"
    );
    assert_eq!(a.cluster_online_users(0, 10).await.users, ["ann", "bob"]);
    assert_eq!(a.cluster_online_users(1, 10).await.users, ["bob"]);
    assert_eq!(b.cluster_online_user_count().await, 2);
    drop(bob_c);
    eventually("bob left c", || async {
        a.presence("bob").await.unwrap().nodes == ["b"]
    })
    .await;
    assert_eq!(c.cluster_online_user_count().await, 2, "bob is still on b");
    drop(bob_b);
    eventually("bob left every node", || async {
        c.cluster_online_users(0, 10).await == UserPage::new(1, vec!["ann".to_owned()])
    })
    .await;
}

/// A kick made on `a` closes the user's connection on `b`, after the notice.
pub async fn a_kick_closes_the_user_on_every_node_after_the_notice([a, b, _]: [&Hub; 3]) {
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    let report = a.kick_user("bob", "banned", true).await.unwrap();
    assert_eq!(report.kicked, 0, "a had no connection of bob");
    let notice = next_message(&mut bob).await;
    assert_eq!(notice["message_type"], "kick_out");
    assert_eq!(notice["data"]["reason"], "banned");
    tokio::time::timeout(WAIT, bob.connection().closed())
        .await
        .expect("bob is closed");
    assert!(!b.is_user_online("bob"));
}

/// An acknowledged send made on `a` completes with the ack of a connection on `b`; a
/// repeated ack is a harmless duplicate.
pub async fn an_acknowledged_send_is_acked_by_a_connection_on_another_node([a, b, _]: [&Hub; 3]) {
    let mut bob = b
        .register(Identity::new("bob").with_client_id("bob-phone"))
        .await
        .unwrap();
    let send = spawn_user_ack(a, "bob", "ack me", Duration::from_secs(30), 0);
    let frame = next_message(&mut bob).await;
    assert_eq!(
        (frame["content"].as_str(), frame["require_ack"].as_bool()),
        (Some("ack me"), Some(true))
    );
    let ack = serde_json::json!({"message_type": "ack", "message_id": frame["message_id"]});
    bob.handle_text(&ack.to_string()).await;
    let report = tokio::time::timeout(WAIT, send)
        .await
        .expect("the ack crossed back in time")
        .unwrap()
        .unwrap();
    assert_eq!(
        report.outcomes[0].status,
        AckStatus::Acked {
            client_id: "bob-phone".to_owned()
        }
    );
    assert_eq!((a.stats().acks_pending, a.stats().acks_confirmed), (0, 1));
    // Bob gets no `unknown_ack` error frame for a repeated ack.
    bob.handle_text(&ack.to_string()).await;
    nothing_more(b, &mut bob).await;
}

/// A resend after an ack timeout reaches the other node too, with the same id and number.
pub async fn a_resend_reaches_the_other_node_too([a, b, _]: [&Hub; 3]) {
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    let send = spawn_user_ack(a, "bob", "again", Duration::from_millis(300), 1);
    let first = next_message(&mut bob).await;
    let second = next_message(&mut bob).await;
    assert_eq!(first["message_id"], second["message_id"]);
    assert_eq!(first["seq_no"], second["seq_no"]);
    let ack = serde_json::json!({"message_type": "ack", "message_id": second["message_id"]});
    bob.handle_text(&ack.to_string()).await;
    let report = tokio::time::timeout(WAIT, send)
        .await
        .expect("settled")
        .unwrap()
        .unwrap();
    assert!(matches!(report.outcomes[0].status, AckStatus::Acked { .. }));
    assert_eq!(report.outcomes[0].attempts, 2);
}

/// An acknowledged send made on `a` to a user on `b` who never acks: both attempts reach
/// `b`, the origin reports the failure (`on_ack_failed`, stored offline), `b` reports
/// nothing, and the user gets the message replayed on connecting to `replay_on` (where the
/// origin's offline store is reachable).
pub async fn an_ack_that_never_comes_is_stored_offline_and_reported_on_the_origin(
    [a, b, _]: [&Hub; 3],
    replay_on: &Hub,
) {
    let failures = Arc::new(Mutex::new(Vec::new()));
    a.on_ack_failed({
        let failures = failures.clone();
        move |msg: &HubMessage, failure: &wsc_hub::AckFailure| {
            if let Ok(mut failures) = failures.lock() {
                failures.push((msg.message_id.clone(), failure.attempts));
            }
        }
    });
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    let send = spawn_user_ack(a, "bob", "ignored", Duration::from_millis(300), 1);
    let first = next_message(&mut bob).await;
    let second = next_message(&mut bob).await;
    assert_eq!(
        first["message_id"], second["message_id"],
        "the resend crossed too"
    );
    let report = tokio::time::timeout(WAIT, send)
        .await
        .expect("settled")
        .unwrap()
        .unwrap();
    assert_eq!(report.outcomes[0].status, AckStatus::StoredOffline);
    assert_eq!(report.outcomes[0].attempts, 2);
    let message_id = first["message_id"].as_str().unwrap().to_owned();
    assert_eq!(*failures.lock().unwrap(), [(message_id.clone(), 2)]);
    assert_eq!(
        b.stats().ack_failures,
        0,
        "only the origin reports the failure"
    );
    drop(bob);
    let mut again = replay_on.register(Identity::new("bob")).await.unwrap();
    let replayed = next_message(&mut again).await;
    assert_eq!(replayed["message_id"], message_id.as_str());
    assert_eq!(replayed["source"], "offline");
}

/// An acknowledged send made on `a` to one connection on `b` completes with that
/// connection's ack; unacked, every attempt reaches it and the origin reports a timeout.
pub async fn an_acknowledged_send_to_a_connection_on_another_node([a, b, _]: [&Hub; 3]) {
    let mut desk = b
        .register(Identity::new("agent").with_client_id("desk-1"))
        .await
        .unwrap();
    let send = |text: &'static str, timeout: Duration| {
        let a = a.clone();
        tokio::spawn(async move {
            a.send_to_connection_with_ack("desk-1", HubMessage::text(text), timeout, 1)
                .await
        })
    };
    let acked = send("ack me", Duration::from_secs(30));
    let frame = next_message(&mut desk).await;
    assert_eq!(frame["content"], "ack me");
    let ack = serde_json::json!({"message_type": "ack", "message_id": frame["message_id"]});
    desk.handle_text(&ack.to_string()).await;
    let report = tokio::time::timeout(WAIT, acked)
        .await
        .expect("acked in time")
        .unwrap()
        .unwrap();
    assert_eq!(
        report.outcomes[0].status,
        AckStatus::Acked {
            client_id: "desk-1".to_owned()
        }
    );

    let ignored = send("ignored", Duration::from_millis(300));
    let first = next_message(&mut desk).await;
    let second = next_message(&mut desk).await;
    assert_eq!(first["message_id"], second["message_id"]);
    let report = tokio::time::timeout(WAIT, ignored)
        .await
        .expect("settled")
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            report.outcomes[0].status.clone(),
            report.outcomes[0].attempts
        ),
        (AckStatus::TimedOut, 2)
    );
    assert_eq!(a.stats().ack_failures, 1);

    // No node has this connection: the origin cannot tell that from a silent one, so it
    // waits out the timeout.
    let nobody = a
        .send_to_connection_with_ack(
            "nobody",
            HubMessage::text("x"),
            Duration::from_millis(300),
            0,
        )
        .await
        .unwrap();
    let outcome = &nobody.outcomes[0];
    assert_eq!(
        (outcome.status.clone(), outcome.attempts),
        (AckStatus::TimedOut, 1)
    );
}

/// Acks each registration's next message (the message must be `message_id`).
async fn ack_next(registrations: &mut [&mut Registration], message_id: &Value) {
    for registration in registrations.iter_mut() {
        let frame = next_message(registration).await;
        assert_eq!(&frame["message_id"], message_id);
        let ack = serde_json::json!({"message_type": "ack", "message_id": message_id});
        registration.handle_text(&ack.to_string()).await;
    }
}

/// An acknowledged group send made on `a` reaches the group's connections on every node
/// and completes with one ack per connection, each crossing back to `a`.
pub async fn an_acknowledged_group_send_waits_for_every_connection_on_every_node(
    [a, b, c]: [&Hub; 3],
) {
    let member = |hub: &Hub, user: &str, client: &str| {
        let identity = Identity::new(user)
            .with_client_id(client)
            .with_groups(["crew"]);
        let hub = hub.clone();
        async move { hub.register(identity).await.unwrap() }
    };
    let mut here = member(a, "ann", "ann-a").await;
    let mut phone = member(b, "bob", "bob-phone").await;
    let mut laptop = member(b, "bob", "bob-laptop").await;
    let mut far = member(c, "cy", "cy-c").await;
    let send = {
        let a = a.clone();
        tokio::spawn(async move {
            let msg = HubMessage::text("all hands");
            a.send_to_group_with_ack("crew", msg, Duration::from_secs(30), 0)
                .await
        })
    };
    let first = next_message(&mut here).await;
    assert_eq!(first["content"], "all hands");
    let id = first["message_id"].clone();
    let ack = serde_json::json!({"message_type": "ack", "message_id": id});
    here.handle_text(&ack.to_string()).await;
    ack_next(&mut [&mut phone, &mut laptop, &mut far], &id).await;
    let report = tokio::time::timeout(WAIT, send)
        .await
        .expect("every ack crossed back in time")
        .unwrap()
        .unwrap();
    let mut outcomes: Vec<(String, AckStatus, u32)> = report
        .outcomes
        .into_iter()
        .map(|o| (o.target, o.status, o.attempts))
        .collect();
    outcomes.sort_by(|x, y| x.0.cmp(&y.0));
    let acked = |client: &str| {
        let status = AckStatus::Acked {
            client_id: client.to_owned(),
        };
        (client.to_owned(), status, 1)
    };
    assert_eq!(
        outcomes,
        [
            acked("ann-a"),
            acked("bob-laptop"),
            acked("bob-phone"),
            acked("cy-c")
        ]
    );
    assert_eq!(a.stats().acks_confirmed, 4);
    assert_eq!(a.stats().acks_pending, 0);
}

/// An acknowledged ticket send made on `a`: the connection on `b` that acks settles, the
/// silent one on `c` gets the resend and then fails on the origin, which stores the
/// message for its user; the sender's own connection is left out.
pub async fn an_acknowledged_ticket_send_resends_to_a_silent_connection_on_another_node(
    [a, b, c]: [&Hub; 3],
) {
    let mut agent = b
        .register(
            Identity::new("agent")
                .with_client_id("desk")
                .with_tickets(["t-9"]),
        )
        .await
        .unwrap();
    let mut silent = c
        .register(
            Identity::new("visitor")
                .with_client_id("tab")
                .with_tickets(["t-9"]),
        )
        .await
        .unwrap();
    let mut sender = c
        .register(Identity::new("sam").with_tickets(["t-9"]))
        .await
        .unwrap();
    let send = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut msg = HubMessage::text("reply?");
            msg.sender = "sam".to_owned();
            a.send_to_ticket_with_ack("t-9", msg, Duration::from_millis(300), 1)
                .await
        })
    };
    let first = next_message(&mut silent).await;
    let id = first["message_id"].clone();
    ack_next(&mut [&mut agent], &id).await;
    let again = next_message(&mut silent).await;
    assert_eq!(again["message_id"], id, "the resend reached c");
    let report = tokio::time::timeout(WAIT, send)
        .await
        .expect("settled")
        .unwrap()
        .unwrap();
    let mut outcomes: Vec<(String, AckStatus)> = report
        .outcomes
        .iter()
        .map(|o| (o.target.clone(), o.status.clone()))
        .collect();
    outcomes.sort_by(|x, y| x.0.cmp(&y.0));
    let desk = AckStatus::Acked {
        client_id: "desk".to_owned(),
    };
    assert_eq!(
        outcomes,
        [
            ("desk".to_owned(), desk),
            ("tab".to_owned(), AckStatus::StoredOffline)
        ]
    );
    let tab = report.outcomes.iter().find(|o| o.target == "tab").unwrap();
    assert_eq!(tab.attempts, 2);
    assert_eq!(a.stats().ack_failures, 1);
    nothing_more(c, &mut sender).await;
}
